// mure — the OpenCL device as an exec::Executor: the op set's generated kernels
// (exec/opencl_ops.h), and for elementwise binary ops on f32 operands of one shape (no
// broadcast) a fast path: the op's statement from the table in a kernel that streams contiguous
// blocks with no index arithmetic (exec/opencl_fused.h's one-step chain: the same bits as the
// per-op kernel, which recomputes broadcast indices per element).
//
// Thread-safety: as OpenClOps and FusedKernels (calls serialised inside).
#pragma once

#include <memory>

#include "exec/executor.h"
#include "exec/opencl_executor.h"
#include "exec/opencl_fused.h"

namespace mure::exec {

class OpenClDevice final : public Executor {
 public:
  explicit OpenClDevice(OpenClExecutor& device);
  ~OpenClDevice() override;

  OpenClExecutor& device_executor() { return device_; }

  Device device() const override { return Device::kOpenCl; }
  std::string_view name() const override { return "opencl"; }

  Status Unary(ir::UnaryOp op, const Tensor& in, Tensor& out) override;
  Status Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) override;
  Status Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) override;
  Status AsType(const Tensor& in, Tensor& out) override;
  Status Bitcast(const Tensor& in, Tensor& out) override;
  Status Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) override;
  Status Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
               Tensor& out) override;
  Status Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) override;
  Status Iota(Tensor& out, int64_t axis) override;
  Status Eye(Tensor& out) override;
  Status Fill(Tensor& out, const ir::Scalar& value) override;
  Status RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) override;
  Status RandomNormal(Tensor& out, uint64_t seed, double mean, double std) override;
  Status Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) override;
  Status Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) override;
  Status BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) override;
  Status Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) override;
  Status Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config, Tensor& out) override;
  Status Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                     Tensor& out) override;
  Status PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out) override;
  Status Gather(const Tensor& in, const Tensor& indices, Tensor& out) override;
  Status Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) override;
  Status Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, Tensor& out) override;
  Status Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) override;

  /// Whether Binary takes the same-shape fast path for these operands (tests hold it to that).
  static bool SameShapeFastPath(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, const Tensor& out);

 private:
  OpenClExecutor& device_;
  ocl::OpenClOps& ops_;
  std::unique_ptr<ocl::FusedKernels> same_shape_;  // the fast path's kernels (memory cache only)
};

}  // namespace mure::exec
