// mure — planning one op: from a typed IR node (ir/nodes.h) and the types and shapes of its
// operands to the result's type and shape and the kernel that computes it. Two steps: the node is
// validated (shapes, types, sizes with checked arithmetic; pure: no allocation, no device), then
// bound to the executor its placement picks (exec/executor.h); each op is written once. The same
// planner serves single requests (operands are resident handles) and programs (operands are
// earlier values of the program).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "exec/executor.h"
#include "ir/nodes.h"
#include "mure/status.h"
#include "mure/types.h"
#include "store/tensor_store.h"

namespace mure {

/// One part of a tuple value (the result of lu, qr, eigh, svd): read with {:elem, v, i}.
struct PartInfo {
  DType type = DType::kF32;
  Shape shape;
  uint64_t offset = 0;  ///< where its bytes start in the tuple value's packed bytes
};

/// What the planner needs to know of an operand.
struct ValueInfo {
  DType type = DType::kF32;
  Shape shape;
  /// Empty for a tensor. A tuple value (type {:u, 8}, shape {packed bytes}) lists its parts; only
  /// Elem may read it, and no program may return it.
  std::vector<PartInfo> parts;
};

/// Computes `out` from the operand tensors, in the order of PlannedOp::operands.
using KernelFn = std::function<Status(const std::vector<const Tensor*>& ins, Tensor& out)>;

using Device = exec::Device;

struct PlannedOp {
  DType type = DType::kF32;        ///< result type
  Shape shape;                     ///< result shape
  std::vector<uint64_t> operands;  ///< ids (handles, or value ids in a program), kernel order
  KernelFn kernel;
  Device device = Device::kCpu;    ///< where the kernel must run
  std::vector<PartInfo> parts;     ///< a tuple result's parts (type and shape are its packed bytes)
  /// What the work costs, for EstimateMicros: set for the ops whose time is linear in their bytes
  /// (elementwise) or their flops (dot); `costed` false for every other op (never estimated).
  bool costed = false;
  uint64_t work_bytes = 0;  ///< operand and result bytes moved, weighted by the op's cost per byte
  uint64_t work_flops = 0;  ///< multiply-adds times 2 (dot)
};

/// The node's executors. They outlive every plan bound to them.
struct Executors {
  exec::Executor* cpu = nullptr;     ///< null: the CPU kernels without BLIS
  exec::Executor* opencl = nullptr;  ///< null: the node has no OpenCL device
  bool blis = false;                 ///< the CPU executor multiplies through BLIS
};

/// Looks an operand id up: its type and shape, or why it cannot be used.
using OperandLookup = std::function<Result<ValueInfo>(uint64_t id)>;

/// Plan a compute node. `placement` kOpenCl binds it to the OpenCL executor (kUnsupported without
/// one); kCpu and kAuto to the CPU executor, except the legacy add/multiply, which keep the
/// OpenCL device under kAuto (docs/protocol.md).
Result<PlannedOp> PlanOp(const ir::Node& node, const OperandLookup& lookup, const Executors& ex,
                         ir::Placement placement);

/// What the node measured of its devices at start-up, for placing ops the caller left to it.
struct CostModel {
  double cpu_gbps = 0;      ///< CPU executor, f32 add, GB/s moved
  double opencl_gbps = 0;   ///< OpenCL device, the same add
  double gemm_gflops = 0;   ///< BLIS sgemm, all threads
  /// Smallest result (elements) worth a trip to the OpenCL device: below it, launch and first-use
  /// compile costs outweigh a faster device.
  uint64_t opencl_min_elements = 1u << 20;
  double opencl_launch_us = 0;  ///< what one kernel launch costs on the OpenCL device, data aside
};

/// Microseconds `op` is expected to take on its device from `cost` (launch cost included), or
/// +infinity when the op is not costed or a speed is unknown. An estimate, for decisions (where to
/// run a tiny op), never a promise.
double EstimateMicros(const PlannedOp& op, const CostModel& cost);

/// Set `p`'s work (costed, work_bytes, work_flops) from its node and operands: PlanOp's last step
/// (sched/cost.cpp).
void SetWork(const ir::Node& node, const std::vector<ValueInfo>& in, PlannedOp& p);

/// Whether `op` may run on the thread that received it rather than on its device's queue: on
/// the CPU executor, estimated at most `max_us` (0: never), with nothing queued for its device
/// (`queued`), so that it neither overtakes earlier work nor holds the thread long.
bool RunsInline(const PlannedOp& op, const CostModel& cost, uint32_t max_us, uint32_t queued);

/// PlanOp with the placement decided: the caller's, or under kAuto the CPU executor (BLIS for
/// products) unless the op is elementwise, the OpenCL device measured clearly (1.5x) faster for
/// memory-bound work at start-up, and the result is large enough. The legacy add and multiply
/// (documented on the OpenCL device) keep their contract but run on the CPU executor when their
/// estimate there is lower than the device's, its launch cost included (a 1 Ki add).
Result<PlannedOp> PlanPlaced(const ir::Node& node, const OperandLookup& lookup, const Executors& ex,
                             ir::Placement placement, const CostModel& cost);

}  // namespace mure
