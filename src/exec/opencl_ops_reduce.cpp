// mure — OpenClOps, reductions, sort, dot and outer (the class: exec/opencl_ops.h; how its files
// divide: exec/opencl_internal.h).
#include <algorithm>
#include <cstring>

#include "common/signals.h"
#include "exec/opencl_internal.h"

namespace mure::ocl {

using ir::BinaryOp;
using ir::ReduceOp;
using namespace detail;

Status OpenClOps::Reduce(ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = ReduceKernel(op, in.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& shape = in.shape();
  const size_t rank = shape.size();
  std::vector<bool> reduced(rank, false);
  for (uint64_t ax : plan.axes) {
    if (ax >= rank) return Status::Internal("reduction axis out of range");
    reduced[ax] = true;
  }
  const auto st = RowMajorStrides(shape);
  std::vector<uint64_t> kshape, kstride, rshape, rstride;
  for (size_t d = 0; d < rank; ++d) {
    (reduced[d] ? rshape : kshape).push_back(shape[d]);
    (reduced[d] ? rstride : kstride).push_back(st[d]);
  }
  if (rshape.empty()) {  // nothing reduced: each output reduces its one element
    rshape.push_back(1);
    rstride.push_back(0);
  }
  uint64_t outer = 1;
  for (size_t j = 0; j + 1 < rshape.size(); ++j) outer *= rshape[j];
  if (rshape.back() == 0) outer = 0;
  std::vector<uint64_t> meta{kshape.size()};
  meta.insert(meta.end(), kshape.begin(), kshape.end());
  meta.insert(meta.end(), kstride.begin(), kstride.end());
  meta.push_back(rshape.size());
  meta.insert(meta.end(), rshape.begin(), rshape.end());
  meta.insert(meta.end(), rstride.begin(), rstride.end());
  meta.push_back(outer);
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto ma = Input(in);
  if (!ma.ok()) return ma.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*ma), M(*mo), L(n), M(*mm)}, n, *mo, out.bytes());
}

Status OpenClOps::Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = in.shape();
  if (axis >= s.size() || out.shape() != s) return Status::Internal("sort mismatch");
  auto src = SortKernel(in.type(), descending, arg, fp64_);
  if (!src.ok()) return src.status();
  if (out.elements() == 0) return Status::Ok();
  uint64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  const uint64_t n = s[axis], rows = outer * inner;
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  Reservation hold;  // the scratch's bytes stay on the budget until the kernel has finished
  auto scratch = DeviceScratch(2 * rows * n * sizeof(uint64_t), out.budget(), hold);
  if (!scratch.ok()) return scratch.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*o), L(rows), L(n), L(inner), M(*scratch)}, rows, *o, out.bytes());
}

Status OpenClOps::Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& p, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.type() != compute) return Status::Internal("dot output type mismatch");
  auto mm_src = MatmulKernel(compute, fp64_);
  if (!mm_src.ok()) return mm_src.status();
  for (DType t : {a.type(), b.type()}) {
    auto src = CopyKernel(t, compute, fp64_);
    if (!src.ok()) return src.status();
  }
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  // a as [batch, m, k] and b as [batch, k, n], contiguous, in the compute type (cpu::Dot's
  // PermuteConvert, on the device).
  std::vector<uint64_t> pa = p.ba, pb = p.bb;
  pa.insert(pa.end(), p.fa.begin(), p.fa.end());
  pa.insert(pa.end(), p.ca.begin(), p.ca.end());
  pb.insert(pb.end(), p.cb.begin(), p.cb.end());
  pb.insert(pb.end(), p.fb.begin(), p.fb.end());
  const size_t item = DTypeSize(compute);
  Reservation hold_a, hold_b;  // the staged operands' bytes, on the budget until the product is done
  auto stage = [&](const Tensor& x, const std::vector<uint64_t>& perm, Reservation& hold) -> Result<ClMem> {
    if (perm.size() != x.shape().size()) return Status::Internal("dot plan does not match an operand's rank");
    auto buf = DeviceScratch(x.elements() * item, out.budget(), hold);
    if (!buf.ok()) return buf.status();
    if (x.elements() == 0) return buf;
    const auto st = RowMajorStrides(x.shape());
    Shape ps(perm.size());
    std::vector<uint64_t> pst(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      if (perm[i] >= x.shape().size()) return Status::Internal("dot axis out of range");
      ps[i] = x.shape()[perm[i]];
      pst[i] = st[perm[i]];
    }
    auto mi = Input(x);
    if (!mi.ok()) return mi.status();
    MURE_RETURN_IF_ERROR(EnqueueCopy(x.type(), *mi, compute, *buf, ps, pst, RowMajorStrides(ps), 0, 0));
    return buf;
  };
  auto A = stage(a, pa, hold_a);
  if (!A.ok()) return A.status();
  auto B = stage(b, pb, hold_b);
  if (!B.ok()) return B.status();
  auto e = Kernel(*mm_src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  if (p.batch * p.m * p.n != n) return Status::Internal("dot plan does not match the output");
  return Launch(**e, {M(*A), M(*B), M(*o), L(n), L(p.m), L(p.n), L(p.k)}, n, *o, out.bytes());
}

Status OpenClOps::Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  // a's elements times b's: a multiply with a's strides on the leading axes and b's on the rest
  // (cpu::Outer's values: operands rounded to `compute`, one product).
  auto src = BinaryKernel(BinaryOp::kMultiply, a.type(), b.type(), compute, out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  const size_t ra = a.shape().size(), rb = b.shape().size();
  if (ra + rb != os.size()) return Status::Internal("outer rank mismatch");
  const auto sa = RowMajorStrides(a.shape()), sb = RowMajorStrides(b.shape());
  std::vector<uint64_t> meta{os.size()};
  meta.insert(meta.end(), os.begin(), os.end());
  meta.insert(meta.end(), sa.begin(), sa.end());
  meta.insert(meta.end(), rb, 0);
  meta.insert(meta.end(), ra, 0);
  meta.insert(meta.end(), sb.begin(), sb.end());
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto ma = Input(a);
  if (!ma.ok()) return ma.status();
  auto mb = Input(b);
  if (!mb.ok()) return mb.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*ma), M(*mb), M(*mo), L(n), M(*mm), U(3)}, n, *mo, out.bytes());
}
}  // namespace mure::ocl
