// mure — OpenClOps, the elementwise and creation ops (the class: exec/opencl_ops.h; how its files
// divide: exec/opencl_internal.h).
#include <algorithm>
#include <cstring>

#include "common/signals.h"
#include "exec/opencl_internal.h"

namespace mure::ocl {

using ir::BinaryOp;
using ir::UnaryOp;
using namespace detail;

Status OpenClOps::Unary(UnaryOp op, const Tensor& in, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.elements() != in.elements()) return Status::Internal("unary output size mismatch");
  auto src = UnaryKernel(op, in.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*o), L(n)}, n, *o, out.bytes());
}

Status OpenClOps::Binary(BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = BinaryKernel(op, a.type(), b.type(), compute, out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  if (a.shape().size() > os.size() || b.shape().size() > os.size()) return Status::Internal("binary rank mismatch");
  uint32_t mode = 3;
  std::vector<uint64_t> meta;
  if (a.shape() == os && b.shape() == os) {
    mode = 0;
  } else if (a.shape() == os && b.elements() == 1) {
    mode = 1;
  } else if (b.shape() == os && a.elements() == 1) {
    mode = 2;
  } else {
    const auto sa = BroadcastStrides(a.shape(), os), sb = BroadcastStrides(b.shape(), os);
    meta.push_back(os.size());
    meta.insert(meta.end(), os.begin(), os.end());
    meta.insert(meta.end(), sa.begin(), sa.end());
    meta.insert(meta.end(), sb.begin(), sb.end());
  }
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
  return Launch(**e, {M(*ma), M(*mb), M(*mo), L(n), M(*mm), U(mode)}, n, *mo, out.bytes());
}

Status OpenClOps::AsType(const Tensor& in, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.elements() != in.elements()) return Status::Internal("as_type output size mismatch");
  auto src = AsTypeKernel(in.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*o), L(n)}, n, *o, out.bytes());
}

Status OpenClOps::Bitcast(const Tensor& in, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (in.bytes() != out.bytes()) return Status::Internal("bitcast size mismatch");
  if (in.bytes() == 0) return Status::Ok();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  cl_int err = clEnqueueCopyBuffer(queue_, a->get(), o->get(), 0, 0, in.bytes(), 0, nullptr, nullptr);
  Status s = err == CL_SUCCESS ? Finish(*o, out.bytes()) : Status::Internal(ClErrorText("clEnqueueCopyBuffer", err));
  if (err == CL_SUCCESS) stats_.launches += 1;
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::Iota(Tensor& out, int64_t axis) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = IotaKernel(out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& s = out.shape();
  uint64_t inner = 1, dim = n;
  if (axis >= 0) {
    if (static_cast<size_t>(axis) >= s.size()) return Status::Internal("iota axis out of range");
    dim = s[static_cast<size_t>(axis)];
    for (size_t d = static_cast<size_t>(axis) + 1; d < s.size(); ++d) inner *= s[d];
  }
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(inner), L(dim)}, n, *o, out.bytes());
}

Status OpenClOps::Eye(Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = out.shape();
  if (s.size() < 2) return Status::Internal("eye of rank < 2");
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  ir::Scalar one, zero;
  one.i = 1;
  KernelSource src = EyeKernel(static_cast<unsigned>(DTypeSize(out.type())));
  auto e = Kernel(src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(s[s.size() - 2]), L(s[s.size() - 1]), L(ScalarPattern(out.type(), one)),
                      L(ScalarPattern(out.type(), zero))},
                n, *o, out.bytes());
}

Status OpenClOps::Fill(Tensor& out, const ir::Scalar& value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.bytes() == 0) return Status::Ok();
  const uint64_t pattern = ScalarPattern(out.type(), value);
  auto o = Output(out);
  if (!o.ok()) return o.status();
  cl_int err = clEnqueueFillBuffer(queue_, o->get(), &pattern, DTypeSize(out.type()), 0, out.bytes(), 0, nullptr,
                                   nullptr);
  Status s = err == CL_SUCCESS ? Finish(*o, out.bytes()) : Status::Internal(ClErrorText("clEnqueueFillBuffer", err));
  if (err == CL_SUCCESS) stats_.launches += 1;
  RestoreFatalSignals();
  return s;
}

namespace {
uint64_t ParamBits(double v, bool fp64) {
  if (fp64) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return b;
  }
  float f = static_cast<float>(v);
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
}  // namespace

Status OpenClOps::RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = RandomKernel(out.type(), false, fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(seed), L(ParamBits(lo, fp64_)), L(ParamBits(hi, fp64_))}, n, *o, out.bytes());
}

Status OpenClOps::RandomNormal(Tensor& out, uint64_t seed, double mean, double std) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = RandomKernel(out.type(), true, fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(seed), L(ParamBits(mean, fp64_)), L(ParamBits(std, fp64_))}, n, *o,
                out.bytes());
}

namespace {
/// meta for a 3-operand broadcast, and its mode (0 when every operand has out's shape).
uint32_t TernaryMeta(const Tensor& x, const Tensor& y, const Tensor& z, const Shape& os, std::vector<uint64_t>& meta) {
  if (x.shape() == os && y.shape() == os && z.shape() == os) return 0;
  meta.push_back(os.size());
  meta.insert(meta.end(), os.begin(), os.end());
  for (const Tensor* t : {&x, &y, &z}) {
    auto st = BroadcastStrides(t->shape(), os);
    meta.insert(meta.end(), st.begin(), st.end());
  }
  return 1;
}
}  // namespace

Status OpenClOps::Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  (void)compute;  // as in cpu::Select: each operand converts to out's type
  auto src = SelectKernel(pred.type(), a.type(), b.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  if (pred.shape().size() > os.size() || a.shape().size() > os.size() || b.shape().size() > os.size()) {
    return Status::Internal("select rank mismatch");
  }
  std::vector<uint64_t> meta;
  const uint32_t mode = TernaryMeta(pred, a, b, os, meta);
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto mp = Input(pred);
  if (!mp.ok()) return mp.status();
  auto ma = Input(a);
  if (!ma.ok()) return ma.status();
  auto mb = Input(b);
  if (!mb.ok()) return mb.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*mp), M(*ma), M(*mb), M(*mo), L(n), M(*mm), U(mode)}, n, *mo, out.bytes());
}

Status OpenClOps::Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = ClipKernel(x.type(), lo.type(), hi.type(), compute, out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  if (x.shape().size() > os.size() || lo.shape().size() > os.size() || hi.shape().size() > os.size()) {
    return Status::Internal("clip rank mismatch");
  }
  std::vector<uint64_t> meta;
  const uint32_t mode = TernaryMeta(x, lo, hi, os, meta);
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto mx = Input(x);
  if (!mx.ok()) return mx.status();
  auto ml = Input(lo);
  if (!ml.ok()) return ml.status();
  auto mh = Input(hi);
  if (!mh.ok()) return mh.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*mx), M(*ml), M(*mh), M(*mo), L(n), M(*mm), U(mode)}, n, *mo, out.bytes());
}
}  // namespace mure::ocl
