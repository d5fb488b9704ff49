#include "exec/cpu_executor.h"

#include "exec/cpu_complex.h"
#include "exec/cpu_ops.h"

namespace mure::exec {

Status CpuExecutor::Unary(ir::UnaryOp op, const Tensor& in, Tensor& out) { return cpu::Unary(op, in, out); }
Status CpuExecutor::Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return cpu::Binary(op, a, b, compute, out);
}
Status CpuExecutor::Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  return cpu::Reduce(op, in, plan, out);
}
Status CpuExecutor::AsType(const Tensor& in, Tensor& out) { return cpu::AsType(in, out); }
Status CpuExecutor::Bitcast(const Tensor& in, Tensor& out) { return cpu::Bitcast(in, out); }
Status CpuExecutor::Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) {
  return cpu::Transpose(in, perm, out);
}
Status CpuExecutor::Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
                          Tensor& out) {
  return cpu::Slice(in, starts, strides, out);
}
Status CpuExecutor::Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) {
  return cpu::Take(in, indices, axis, out);
}
Status CpuExecutor::Iota(Tensor& out, int64_t axis) { return cpu::Iota(out, axis); }
Status CpuExecutor::Eye(Tensor& out) { return cpu::Eye(out); }
Status CpuExecutor::Fill(Tensor& out, const ir::Scalar& value) { return cpu::Fill(out, value); }
Status CpuExecutor::RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) {
  return cpu::RandomUniform(out, seed, lo, hi);
}
Status CpuExecutor::RandomNormal(Tensor& out, uint64_t seed, double mean, double std) {
  return cpu::RandomNormal(out, seed, mean, std);
}
Status CpuExecutor::Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return cpu::Select(pred, a, b, compute, out);
}
Status CpuExecutor::Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) {
  return cpu::Clip(x, lo, hi, compute, out);
}
Status CpuExecutor::BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  return cpu::BroadcastTo(in, axes, out);
}
Status CpuExecutor::Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  return cpu::Reverse(in, axes, out);
}
Status CpuExecutor::Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config,
                        Tensor& out) {
  return cpu::Pad(in, value, config, out);
}
Status CpuExecutor::Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                                Tensor& out) {
  return cpu::Concatenate(ins, shapes, axis, out);
}
Status CpuExecutor::PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out) {
  return cpu::PutSlice(in, starts, update, out);
}
Status CpuExecutor::Gather(const Tensor& in, const Tensor& indices, Tensor& out) {
  return cpu::Gather(in, indices, out);
}
Status CpuExecutor::Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) {
  return cpu::Sort(in, axis, descending, arg, out);
}
Status CpuExecutor::Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, Tensor& out) {
  cpu::GemmFn gemm;
  if (blis_) {
    gemm = [blis = blis_](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
      return blis->GemmRaw(t, m, n, k, x, y, z);
    };
  }
  return cpu::Dot(a, b, plan, compute, gemm, out);
}
Status CpuExecutor::Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return cpu::Outer(a, b, compute, out);
}

Status CpuExecutor::Fft(const Tensor& in, bool inverse, Tensor& out) { return cpu::Fft(in, inverse, out); }

}  // namespace mure::exec
