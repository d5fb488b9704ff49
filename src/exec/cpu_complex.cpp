#include "exec/cpu_complex.h"

#include <algorithm>
#include <cmath>
#include <complex>

#include "exec/cpu_elements.h"

namespace mure::cpu {
namespace {

using namespace detail;
using C = std::complex<double>;
using ir::BinaryOp;
using ir::ReduceOp;
using ir::UnaryOp;

// The complex rows of ir/ops.def, expanded as C++ over std::complex<double>.
C UnaryC(UnaryOp op, C z) {
  using std::abs, std::exp, std::log, std::sqrt, std::sin, std::cos, std::tan, std::asin, std::acos, std::atan;
  using std::sinh, std::cosh, std::tanh, std::asinh, std::acosh, std::atanh, std::conj, std::isnan, std::isinf;
  switch (op) {
#define MURE_COMPLEX_UNARY(Id, rule, cexpr) \
  case UnaryOp::k##Id: return C(cexpr);
#include "ir/ops.def"
    default: return C(NAN, NAN);  // refused by ir::UnaryResultType first
  }
}

C BinaryC(BinaryOp op, C x, C y) {
  using std::pow;
  switch (op) {
#define MURE_COMPLEX_BINARY(Id, cexpr) \
  case BinaryOp::k##Id: return C(cexpr);
#include "ir/ops.def"
    default: return C(NAN, NAN);  // refused by ir::BinaryResultTypes first
  }
}

C ReduceInit(ReduceOp op) {
  switch (op) {
#define MURE_COMPLEX_REDUCE(Id, cinit, cstep) \
  case ReduceOp::k##Id: return C(cinit);
#include "ir/ops.def"
    default: return C(NAN, NAN);  // refused by ir::PlanReduce first
  }
}

C ReduceStep(ReduceOp op, C acc, C v) {
  switch (op) {
#define MURE_COMPLEX_REDUCE(Id, cinit, cstep) \
  case ReduceOp::k##Id: return C(cstep);
#include "ir/ops.def"
    default: return C(NAN, NAN);
  }
}

}  // namespace

Status ComplexUnary(UnaryOp op, const Tensor& in, Tensor& out) {
  if (!ir::IsComplex(in.type()) && !ir::IsComplex(out.type())) return Status::Internal("ComplexUnary without complex");
  const DType it = in.type(), ot = out.type();
  // The operand in the op's complex type first (conjugate of a real tensor: in the result's type).
  const DType ct = ir::IsComplex(it) ? it : ot;
  const uint64_t n = in.elements();
  for (uint64_t i = 0; i < n; ++i) StoreC(ot, out.data(), i, UnaryC(op, RoundC(ct, LoadC(it, in.data(), i))));
  return Status::Ok();
}

Status ComplexBinary(BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  if (!ir::IsComplex(compute)) return Status::Internal("ComplexBinary needs a complex compute type");
  const auto sa = BroadcastStrides(a.shape(), out.shape());
  const auto sb = BroadcastStrides(b.shape(), out.shape());
  const DType at = a.type(), bt = b.type(), ot = out.type();
  ForEachIndex(out.shape(), sa, sb, [&](uint64_t i, uint64_t ia, uint64_t ib) {
    const C x = RoundC(compute, LoadC(at, a.data(), ia)), y = RoundC(compute, LoadC(bt, b.data(), ib));
    StoreC(ot, out.data(), i, BinaryC(op, x, y));
  });
  return Status::Ok();
}

Status ComplexReduce(ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  if (!ir::IsComplex(in.type()) || !ir::TakesComplex(op)) return Status::Internal("ComplexReduce of a non-complex op");
  const Shape& shape = in.shape();
  const auto [so, sr] = ReduceStrides(shape, plan.axes);
  const uint64_t outs = out.elements();
  auto acc_s = Scratch<C>::Make(out.budget(), outs, ir::Name(op));  // 16 bytes per result
  if (!acc_s.ok()) return acc_s.status();
  C* acc = acc_s->data();
  std::fill(acc, acc + outs, ReduceInit(op));
  const DType it = in.type();
  ForEachIndex(shape, so, sr, [&](uint64_t lin, uint64_t o, uint64_t) {
    acc[o] = ReduceStep(op, acc[o], LoadC(it, in.data(), lin));
  });
  for (uint64_t o = 0; o < outs; ++o) StoreC(out.type(), out.data(), o, acc[o]);
  return Status::Ok();
}

Status ComplexAsType(const Tensor& in, Tensor& out) {
  const uint64_t n = in.elements();
  for (uint64_t i = 0; i < n; ++i) StoreC(out.type(), out.data(), i, LoadC(in.type(), in.data(), i));
  return Status::Ok();
}

}  // namespace mure::cpu
