// mure — OpenClOps, the shape ops (the class: exec/opencl_ops.h; how its files
// divide: exec/opencl_internal.h).
#include <algorithm>
#include <cstring>

#include "common/signals.h"
#include "exec/opencl_internal.h"

namespace mure::ocl {

using namespace detail;

Status OpenClOps::GatherCopy(const Tensor& in, const std::vector<uint64_t>& strides, uint64_t base, Tensor& out) {
  KernelSource src = GatherKernel(static_cast<unsigned>(DTypeSize(in.type())));
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  if (strides.size() != out.shape().size()) return Status::Internal("gather rank mismatch");
  std::vector<uint64_t> meta{out.shape().size()};
  meta.insert(meta.end(), out.shape().begin(), out.shape().end());
  meta.insert(meta.end(), strides.begin(), strides.end());
  auto e = Kernel(src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*a), M(*o), L(n), M(*mm), L(base)}, n, *o, out.bytes());
}

Status OpenClOps::Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (perm.size() != rank || out.type() != in.type()) return Status::Internal("transpose mismatch");
  const auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> sa(rank);
  for (size_t d = 0; d < rank; ++d) {
    int64_t p = perm[d] < 0 ? perm[d] + static_cast<int64_t>(rank) : perm[d];
    if (p < 0 || static_cast<size_t>(p) >= rank) return Status::Internal("transpose axis out of range");
    sa[d] = st[static_cast<size_t>(p)];
  }
  return GatherCopy(in, sa, 0, out);
}

Status OpenClOps::Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
                        Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (starts.size() != rank || strides.size() != rank || out.type() != in.type()) {
    return Status::Internal("slice mismatch");
  }
  const auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> sa(rank);
  uint64_t base = 0;
  for (size_t d = 0; d < rank; ++d) {
    sa[d] = st[d] * static_cast<uint64_t>(strides[d]);
    base += st[d] * static_cast<uint64_t>(starts[d]);
  }
  return GatherCopy(in, sa, base, out);
}

Status OpenClOps::Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = in.shape();
  const int64_t r = static_cast<int64_t>(s.size());
  if (axis < -r || axis >= r || out.type() != in.type()) return Status::Internal("take mismatch");
  const size_t ax = static_cast<size_t>(axis < 0 ? axis + r : axis);
  const uint64_t dim = s[ax];
  const uint64_t count = indices.elements();
  const DType xt = indices.type();
  const unsigned width = static_cast<unsigned>(DTypeSize(in.type()));
  auto check_src = TakeCheckKernel(xt);
  if (!check_src.ok()) return check_src.status();
  auto take_src = TakeKernel(width, xt);
  if (!take_src.ok()) return take_src.status();
  ClMem mi;
  if (count > 0) {
    // Every index is checked, on the device, before anything is written: each work-item checks a
    // chunk of indices and atomic_min's its chunk number on finding a bad one; the host then
    // names the first bad index of that chunk.
    const auto [chunk, groups] = ChunksFor(count);
    auto ec = Kernel(*check_src);
    if (!ec.ok()) return ec.status();
    auto idx = Input(indices);
    if (!idx.ok()) return idx.status();
    mi = std::move(*idx);
    auto flagged = RunCheck(**ec, {M(mi), L(count), L(dim), L(chunk)}, groups);
    if (!flagged.ok()) return flagged.status();
    const cl_uint bad = *flagged, none = ~cl_uint{0};
    if (bad != none) {
      const uint64_t end = std::min<uint64_t>((uint64_t{bad} + 1) * chunk, count);
      for (uint64_t j = uint64_t{bad} * chunk; j < end; ++j) {
        const uint64_t v = LoadI(xt, indices.data(), j);
        if (v >= dim) {
          return Status(ErrorKind::kOutOfRange,
                        "take: index " + std::to_string(static_cast<int64_t>(v)) + " (element " + std::to_string(j) +
                            " of the indices) is outside axis " + std::to_string(ax) + " of size " +
                            std::to_string(dim));
        }
      }
      return Status::Internal("take: the device flagged index chunk " + std::to_string(bad) +
                              " but the host finds no bad index in it");
    }
  }
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  uint64_t post = 1;
  for (size_t d = ax + 1; d < s.size(); ++d) post *= s[d];
  auto e = Kernel(*take_src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(mi), M(*o), L(n), L(count), L(dim), L(post)}, n, *o, out.bytes());
}

Status OpenClOps::BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = out.shape().size();
  if (axes.size() != in.shape().size() || out.type() != in.type()) return Status::Internal("broadcast mismatch");
  const auto own = RowMajorStrides(in.shape());
  std::vector<uint64_t> st(rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(rank) : axes[i];
    if (a < 0 || static_cast<size_t>(a) >= rank) return Status::Internal("broadcast axis out of range");
    st[static_cast<size_t>(a)] = in.shape()[i] == 1 ? 0 : own[i];
  }
  return GatherCopy(in, st, 0, out);
}

Status OpenClOps::Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (out.shape() != in.shape() || out.type() != in.type()) return Status::Internal("reverse mismatch");
  const auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> walk = st;
  uint64_t base = 0;
  for (int64_t a : axes) {
    const int64_t ax = a < 0 ? a + static_cast<int64_t>(rank) : a;
    if (ax < 0 || static_cast<size_t>(ax) >= rank) return Status::Internal("reverse axis out of range");
    const size_t d = static_cast<size_t>(ax);
    if (in.shape()[d] == 0) return Status::Ok();
    base += (in.shape()[d] - 1) * st[d];
    walk[d] = 0 - st[d];  // a negative stride, in modular arithmetic (the kernel's too)
  }
  return GatherCopy(in, walk, base, out);
}

Status OpenClOps::Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (config.size() != rank || out.shape().size() != rank || out.type() != in.type()) {
    return Status::Internal("pad mismatch");
  }
  if (out.bytes() == 0) return Status::Ok();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  const uint64_t pattern = ScalarPattern(out.type(), value);
  cl_int err = clEnqueueFillBuffer(queue_, mo->get(), &pattern, DTypeSize(out.type()), 0, out.bytes(), 0, nullptr,
                                   nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueFillBuffer", err));
  stats_.launches += 1;
  // The input elements that land inside: per dim a contiguous index range [i0, i1), placed at
  // lo + idx * (interior + 1).
  const auto ist = RowMajorStrides(in.shape()), ost = RowMajorStrides(out.shape());
  Shape walk(rank);
  std::vector<uint64_t> is(rank), os(rank);
  uint64_t ibase = 0, obase = 0;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t lo = config[d].lo, step = config[d].interior + 1, odim = static_cast<int64_t>(out.shape()[d]);
    const int64_t idim = static_cast<int64_t>(in.shape()[d]);
    int64_t i0 = lo >= 0 ? 0 : (-lo + step - 1) / step;
    int64_t i1 = odim - lo <= 0 ? 0 : std::min<int64_t>(idim, (odim - lo + step - 1) / step);
    i0 = std::min(i0, idim);
    if (i1 < i0) i1 = i0;
    walk[d] = static_cast<uint64_t>(i1 - i0);
    is[d] = ist[d];
    // A dim that copies at most one element needs no stride; leaving step * ost[d] out keeps a
    // huge interior (whose product with the stride would wrap) out of the kernel's arithmetic.
    os[d] = walk[d] > 1 ? static_cast<uint64_t>(step) * ost[d] : 0;
    ibase += static_cast<uint64_t>(i0) * ist[d];
    obase += static_cast<uint64_t>(lo + i0 * step) * ost[d];
  }
  Status s = Status::Ok();
  if (in.bytes() != 0) {
    auto mi = Input(in);
    if (!mi.ok()) return mi.status();
    s = EnqueueCopy(in.type(), *mi, out.type(), *mo, walk, is, os, ibase, obase);
  }
  if (s.ok()) s = Finish(*mo, out.bytes());
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                              Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& os = out.shape();
  if (ins.size() != shapes.size() || axis >= os.size()) return Status::Internal("concatenate mismatch");
  for (const Tensor* x : ins) {  // every variant checked before anything runs
    auto src = CopyKernel(x->type(), out.type(), fp64_);
    if (!src.ok()) return src.status();
  }
  if (out.bytes() == 0) return Status::Ok();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  const auto ost = RowMajorStrides(os);
  uint64_t at = 0;
  std::vector<ClMem> held;
  for (size_t t = 0; t < ins.size(); ++t) {
    const Tensor& x = *ins[t];
    if (shapes[t].size() != os.size()) return Status::Internal("concatenate rank mismatch");
    if (x.elements() != 0) {
      auto mi = Input(x);
      if (!mi.ok()) return mi.status();
      Status s = EnqueueCopy(x.type(), *mi, out.type(), *mo, shapes[t], RowMajorStrides(shapes[t]), ost, 0,
                             at * ost[axis]);
      if (!s.ok()) return s;
      held.push_back(std::move(*mi));
    }
    at += shapes[t][axis];
  }
  Status s = Finish(*mo, out.bytes());
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (starts.size() != rank || update.shape().size() != rank || out.shape() != in.shape()) {
    return Status::Internal("put_slice mismatch");
  }
  for (DType t : {in.type(), update.type()}) {
    auto src = CopyKernel(t, out.type(), fp64_);
    if (!src.ok()) return src.status();
  }
  if (out.bytes() == 0) return Status::Ok();
  const auto st = RowMajorStrides(in.shape());
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mi = Input(in);
  if (!mi.ok()) return mi.status();
  Status s = EnqueueCopy(in.type(), *mi, out.type(), *mo, in.shape(), st, st, 0, 0);
  if (!s.ok()) return s;
  ClMem mu;
  if (update.elements() != 0) {
    uint64_t base = 0;
    for (size_t d = 0; d < rank; ++d) base += static_cast<uint64_t>(starts[d]) * st[d];
    auto m = Input(update);
    if (!m.ok()) return m.status();
    mu = std::move(*m);
    s = EnqueueCopy(update.type(), mu, out.type(), *mo, update.shape(), RowMajorStrides(update.shape()), st, 0, base);
    if (!s.ok()) return s;
  }
  s = Finish(*mo, out.bytes());
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::Gather(const Tensor& in, const Tensor& indices, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = in.shape();
  const uint64_t rank = s.size();
  const uint64_t count = out.elements();
  const DType xt = indices.type();
  if (out.type() != in.type() || indices.elements() != count * rank) return Status::Internal("gather mismatch");
  auto check_src = GatherCheckKernel(xt);
  if (!check_src.ok()) return check_src.status();
  auto copy_src = GatherCopyKernel(static_cast<unsigned>(DTypeSize(in.type())), xt);
  if (!copy_src.ok()) return copy_src.status();
  if (count == 0) return Status::Ok();
  const auto st = RowMajorStrides(s);
  std::vector<uint64_t> meta(s.begin(), s.end());
  meta.insert(meta.end(), st.begin(), st.end());
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  auto mx = Input(indices);
  if (!mx.ok()) return mx.status();
  if (rank > 0) {
    // Every coordinate checked, on the device, before anything is written (as take's).
    const auto [chunk, groups] = ChunksFor(count);
    auto ec = Kernel(*check_src);
    if (!ec.ok()) return ec.status();
    auto bad = RunCheck(**ec, {M(*mx), L(count), L(rank), M(*mm), L(chunk)}, groups);
    if (!bad.ok()) return bad.status();
    if (*bad != ~cl_uint{0}) {
      const uint64_t end = std::min<uint64_t>((uint64_t{*bad} + 1) * chunk, count);
      for (uint64_t e = uint64_t{*bad} * chunk; e < end; ++e) {
        for (uint64_t d = 0; d < rank; ++d) {
          const uint64_t v = LoadI(xt, indices.data(), e * rank + d);
          if (v >= s[d]) {
            return Status(ErrorKind::kOutOfRange, "gather: coordinate " + std::to_string(static_cast<int64_t>(v)) +
                                                      " of entry " + std::to_string(e) + " is outside axis " +
                                                      std::to_string(d) + " of size " + std::to_string(s[d]));
          }
        }
      }
      return Status::Internal("gather: the device flagged entry chunk " + std::to_string(*bad) +
                              " but the host finds no bad coordinate in it");
    }
  }
  auto e = Kernel(*copy_src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*mx), M(*o), L(count), L(rank), M(*mm)}, count, *o, out.bytes());
}
}  // namespace mure::ocl
