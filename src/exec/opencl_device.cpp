#include "exec/opencl_device.h"

#include "exec/opencl_ops.h"

namespace mure::exec {

OpenClDevice::OpenClDevice(OpenClExecutor& device)
    : device_(device), ops_(device.ops()), same_shape_(std::make_unique<ocl::FusedKernels>(device, std::string())) {}

OpenClDevice::~OpenClDevice() = default;

bool OpenClDevice::SameShapeFastPath(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute,
                                     const Tensor& out) {
  // Exact rows only: their fused step gives the per-op kernel's bits on every device.
  return a.type() == DType::kF32 && b.type() == DType::kF32 && compute == DType::kF32 &&
         out.type() == DType::kF32 && a.shape() == out.shape() && b.shape() == out.shape() && ocl::Fusible(op) &&
         ir::Info(op).exact;
}

Status OpenClDevice::Unary(ir::UnaryOp op, const Tensor& in, Tensor& out) { return ops_.Unary(op, in, out); }
Status OpenClDevice::Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  if (SameShapeFastPath(op, a, b, compute, out)) {
    ocl::FusedGraph g;
    g.steps.resize(2);  // the two inputs
    ocl::FusedStep st;
    st.kind = ocl::FusedStep::Kind::kBinary;
    st.binary = op;
    st.a = 0;
    st.b = 1;
    g.steps.push_back(st);
    g.scalar_input = {false, false};
    return same_shape_->Run(g, {&a, &b}, out.elements(), 1, out);
  }
  return ops_.Binary(op, a, b, compute, out);
}
Status OpenClDevice::Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  return ops_.Reduce(op, in, plan, out);
}
Status OpenClDevice::AsType(const Tensor& in, Tensor& out) { return ops_.AsType(in, out); }
Status OpenClDevice::Bitcast(const Tensor& in, Tensor& out) { return ops_.Bitcast(in, out); }
Status OpenClDevice::Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) {
  return ops_.Transpose(in, perm, out);
}
Status OpenClDevice::Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
                           Tensor& out) {
  return ops_.Slice(in, starts, strides, out);
}
Status OpenClDevice::Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) {
  return ops_.Take(in, indices, axis, out);
}
Status OpenClDevice::Iota(Tensor& out, int64_t axis) { return ops_.Iota(out, axis); }
Status OpenClDevice::Eye(Tensor& out) { return ops_.Eye(out); }
Status OpenClDevice::Fill(Tensor& out, const ir::Scalar& value) { return ops_.Fill(out, value); }
Status OpenClDevice::RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) {
  return ops_.RandomUniform(out, seed, lo, hi);
}
Status OpenClDevice::RandomNormal(Tensor& out, uint64_t seed, double mean, double std) {
  return ops_.RandomNormal(out, seed, mean, std);
}
Status OpenClDevice::Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return ops_.Select(pred, a, b, compute, out);
}
Status OpenClDevice::Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) {
  return ops_.Clip(x, lo, hi, compute, out);
}
Status OpenClDevice::BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  return ops_.BroadcastTo(in, axes, out);
}
Status OpenClDevice::Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  return ops_.Reverse(in, axes, out);
}
Status OpenClDevice::Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config,
                         Tensor& out) {
  return ops_.Pad(in, value, config, out);
}
Status OpenClDevice::Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes,
                                 uint64_t axis, Tensor& out) {
  return ops_.Concatenate(ins, shapes, axis, out);
}
Status OpenClDevice::PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update,
                              Tensor& out) {
  return ops_.PutSlice(in, starts, update, out);
}
Status OpenClDevice::Gather(const Tensor& in, const Tensor& indices, Tensor& out) {
  return ops_.Gather(in, indices, out);
}
Status OpenClDevice::Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) {
  return ops_.Sort(in, axis, descending, arg, out);
}
Status OpenClDevice::Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, Tensor& out) {
  return ops_.Dot(a, b, plan, compute, out);
}
Status OpenClDevice::Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return ops_.Outer(a, b, compute, out);
}

}  // namespace mure::exec
