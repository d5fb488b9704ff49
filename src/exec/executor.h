// mure — one interface for the devices that run the op set. The planner (sched/planner.cpp)
// validates a node first (shapes, types, sizes: pure) and then binds it to one Executor; an op is
// written once there, whatever device runs it.
//
// Implementations: exec::CpuExecutor (exec/cpu_executor.h: the plain CPU kernels of
// exec/cpu_ops.h, products through BLIS) and exec::OpenClDevice (exec/opencl_device.h: the
// generated kernels of exec/opencl_ops.h). Every method has the contract of its cpu:: namesake:
// shapes and types were validated by ir/ before it runs; it checks only what needs the data
// (take's and gather's indices) or the device (kUnsupported for {:f, 64} without double
// precision).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/linalg.h"
#include "ir/ops.h"
#include "ir/window.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::exec {

/// Where an executor runs; the service serialises work per device (sched/device_locks.h).
enum class Device { kCpu, kOpenCl };

class Executor {
 public:
  virtual ~Executor() = default;

  virtual Device device() const = 0;
  /// "cpu", "opencl": for messages.
  virtual std::string_view name() const = 0;

  virtual Status Unary(ir::UnaryOp op, const Tensor& in, Tensor& out) = 0;
  virtual Status Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) = 0;
  virtual Status Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) = 0;
  virtual Status AsType(const Tensor& in, Tensor& out) = 0;
  /// Also reshape: the bytes as they are.
  virtual Status Bitcast(const Tensor& in, Tensor& out) = 0;
  virtual Status Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) = 0;
  virtual Status Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
                       Tensor& out) = 0;
  virtual Status Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) = 0;
  virtual Status Iota(Tensor& out, int64_t axis) = 0;
  virtual Status Eye(Tensor& out) = 0;
  virtual Status Fill(Tensor& out, const ir::Scalar& value) = 0;
  virtual Status RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) = 0;
  virtual Status RandomNormal(Tensor& out, uint64_t seed, double mean, double std) = 0;
  virtual Status Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) = 0;
  virtual Status Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) = 0;
  virtual Status BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) = 0;
  virtual Status Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) = 0;
  virtual Status Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config,
                     Tensor& out) = 0;
  virtual Status Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                             Tensor& out) = 0;
  virtual Status PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update,
                          Tensor& out) = 0;
  virtual Status Gather(const Tensor& in, const Tensor& indices, Tensor& out) = 0;
  virtual Status Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) = 0;
  /// Floating products go through the device's fastest matrix product (BLIS on the CPU).
  virtual Status Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, Tensor& out) = 0;
  virtual Status Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) = 0;
  /// fft / ifft over the last axis (cpu::Fft's contract); devices without it refuse.
  virtual Status Fft(const Tensor& in, bool inverse, Tensor& out) {
    return Status(ErrorKind::kUnsupported, std::string(inverse ? "ifft" : "fft") + " runs on the CPU executor only");
  }
  /// Linear algebra (ir/linalg.h): `out` is the single result, or the tuple value whose parts sit
  /// at plan.parts[i].offset. `b` is null for the ops of one operand. Only the CPU executor
  /// (exec/cpu_linalg.cpp, LAPACK) has it; the planner places these ops there.
  virtual Status Linalg(const ir::LinalgPlan& plan, const Tensor& /*a*/, const Tensor* /*b*/, Tensor& /*out*/) {
    return Status(ErrorKind::kUnsupported, std::string(ir::LinalgName(plan.op)) + " runs on the CPU only (LAPACK); "
                                           "place it :cpu or :auto");
  }

  // The window, scatter and cumulative ops (ir/window.h). The CPU executor has them; an
  // executor without one answers kUnsupported, naming the op and where it does run.
  /// out = op over every window of `in` (padding and accumulator start: `init`).
  virtual Status Window(ir::ReduceOp op, const Tensor& in, const ir::WindowPlan& plan,
                        const std::optional<ir::Scalar>& init, Tensor& out) {
    (void)op, (void)in, (void)plan, (void)init, (void)out;
    return NotHere("window");
  }
  /// out = init everywhere, plus each source value at its window's max (min) of `in`.
  virtual Status WindowScatter(bool max, const Tensor& in, const Tensor& source, const ir::WindowPlan& plan,
                               const ir::Scalar& init, Tensor& out) {
    (void)max, (void)in, (void)source, (void)plan, (void)init, (void)out;
    return NotHere("window_scatter");
  }
  /// out = in with the updates added (add) or written (put) at the indices' positions.
  virtual Status Indexed(bool add, const Tensor& in, const Tensor& indices, const Tensor& updates,
                         const ir::IndexedPlan& plan, Tensor& out) {
    (void)add, (void)in, (void)indices, (void)updates, (void)plan, (void)out;
    return NotHere("indexed");
  }
  /// out = the running op along `axis` (from the end when `reverse`).
  virtual Status Cumulative(ir::ReduceOp op, const Tensor& in, uint64_t axis, bool reverse, Tensor& out) {
    (void)op, (void)in, (void)axis, (void)reverse, (void)out;
    return NotHere("cumulative");
  }

 protected:
  Status NotHere(std::string_view op) const {
    return Status(ErrorKind::kUnsupported, std::string(op) + " has no kernel on the " + std::string(name()) +
                                               " device; run it with device :cpu or :auto");
  }
};

}  // namespace mure::exec
