// mure — the CPU executor: exec::Executor over the plain kernels of exec/cpu_ops.h, with
// floating products through BLIS when the node has it.
//
// Thread-safety: as cpu:: (stateless) and BlisExecutor::GemmRaw: any thread.
#pragma once

#include "exec/blis_executor.h"
#include "exec/executor.h"

namespace mure::exec {

class CpuExecutor final : public Executor {
 public:
  /// `blis` may be null (disabled): products then run as plain loops.
  explicit CpuExecutor(const BlisExecutor* blis) : blis_(blis) {}

  bool has_blis() const { return blis_ != nullptr; }
  /// The threads large elementwise ops are split over (BLIS's pool; null: this thread alone).
  GemmPool* pool() const { return blis_ ? blis_->pool() : nullptr; }

  Device device() const override { return Device::kCpu; }
  std::string_view name() const override { return "cpu"; }

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
  Status Fft(const Tensor& in, bool inverse, Tensor& out) override;
  /// LAPACK(E): exec/cpu_linalg.cpp.
  Status Linalg(const ir::LinalgPlan& plan, const Tensor& a, const Tensor* b, Tensor& out) override;
  Status Window(ir::ReduceOp op, const Tensor& in, const ir::WindowPlan& plan, const std::optional<ir::Scalar>& init,
                Tensor& out) override;
  Status WindowScatter(bool max, const Tensor& in, const Tensor& source, const ir::WindowPlan& plan,
                       const ir::Scalar& init, Tensor& out) override;
  Status Indexed(bool add, const Tensor& in, const Tensor& indices, const Tensor& updates,
                 const ir::IndexedPlan& plan, Tensor& out) override;
  Status Cumulative(ir::ReduceOp op, const Tensor& in, uint64_t axis, bool reverse, Tensor& out) override;

 private:
  const BlisExecutor* blis_;
};

}  // namespace mure::exec
