// mure — planning one op: from a decoded request and the types and shapes of its operands to the
// result's type and shape and the kernel that computes it. Everything is checked here, before any
// memory is allocated or any kernel runs. The same planner serves single requests (operands are
// resident handles) and programs (operands are earlier values of the program).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "exec/blis_executor.h"
#include "exec/opencl_executor.h"
#include "mure/status.h"
#include "mure/types.h"
#include "proto/request.h"
#include "store/tensor_store.h"

namespace mure {

/// What the planner needs to know of an operand.
struct ValueInfo {
  DType type = DType::kF32;
  Shape shape;
};

/// Computes `out` from the operand tensors, in the order of PlannedOp::operands.
using KernelFn = std::function<Status(const std::vector<const Tensor*>& ins, Tensor& out)>;

enum class Device { kCpu, kOpenCl };

struct PlannedOp {
  DType type = DType::kF32;        ///< result type
  Shape shape;                     ///< result shape
  std::vector<uint64_t> operands;  ///< ids (handles, or value ids in a program), kernel order
  KernelFn kernel;
  Device device = Device::kCpu;    ///< where the kernel must run
};

/// Looks an operand id up: its type and shape, or why it cannot be used.
using OperandLookup = std::function<Result<ValueInfo>(uint64_t id)>;

/// Plan a compute op (the op set, matmul, add, multiply). `blis`/`opencl` may be null when that
/// device is disabled; ops that need it are then kUnsupported.
/// `placement` kOpenCl runs the op on the OpenCL device (kUnsupported for ops it lacks); kCpu
/// and kAuto run the op set on the CPU executor (add/multiply keep the OpenCL device under kAuto).
Result<PlannedOp> PlanOp(const proto::Request& req, const OperandLookup& lookup, BlisExecutor* blis,
                         OpenClExecutor* opencl, proto::Placement placement);

/// What the node measured of its devices at start-up, for placing ops the caller left to it.
struct CostModel {
  double cpu_gbps = 0;      ///< CPU executor, f32 add, GB/s moved
  double opencl_gbps = 0;   ///< OpenCL device, the same add
  double gemm_gflops = 0;   ///< BLIS sgemm, all threads
  /// Smallest result (elements) worth a trip to the OpenCL device: below it, launch and first-use
  /// compile costs outweigh a faster device.
  uint64_t opencl_min_elements = 1u << 20;
};

/// PlanOp with the placement decided: the caller's, or under kAuto the CPU executor (BLIS for
/// products) unless the op is elementwise, the OpenCL device measured clearly (1.5x) faster for
/// memory-bound work at start-up, and the result is large enough.
Result<PlannedOp> PlanPlaced(const proto::Request& req, const OperandLookup& lookup, BlisExecutor* blis,
                             OpenClExecutor* opencl, proto::Placement placement, const CostModel& cost);

/// True for requests PlanOp takes (compute ops; not hello, upload, programs...).
bool IsComputeOp(proto::Op op);

}  // namespace mure
