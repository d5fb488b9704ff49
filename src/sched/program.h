// mure — planning a whole program before any of it runs.
//
// PlanProgram is the one gate a program passes: every node is validated against the values before
// it (types, shapes, ids), every output id is checked, and only then do the passes that read the
// program by id (fusion, last uses, the memory peak, the reply's size) run. It allocates no tensor
// and touches no device: the service allocates and posts only what it returns.
#pragma once

#include <cstdint>
#include <vector>

#include "mure/status.h"
#include "proto/request.h"
#include "sched/fusion.h"
#include "sched/planner.h"

namespace mure {

/// What the node offers a program: its executors (null when disabled), its cost model, whether
/// generated fused kernels exist (and may fuse reductions), and the reply size limit.
struct ProgramTarget {
  Executors exec;
  const CostModel* cost = nullptr;
  bool fuse = false;             ///< the device can run generated fused kernels
  bool fuse_reductions = false;  ///< ... with a reduction on top (needs double precision)
  uint64_t max_message = 0;      ///< the largest reply frame the node sends
};

struct ProgramPlan {
  std::vector<ValueInfo> values;   ///< by value id - 1: inputs, then nodes
  std::vector<PlannedOp> plans;    ///< per node
  FusionPlan fusion;               ///< root per node (-1: runs alone) and the fused groups
  std::vector<uint64_t> last_use;  ///< by value id: the value id of its last reader; 0 unused, UINT64_MAX output
  uint64_t peak_bytes = 0;         ///< node results alive at once at the peak (intermediates freed after last use)
  uint64_t reply_bytes = 0;        ///< the reply frame's size, returned outputs included (an upper bound)
};

/// Validate and plan `prog`, whose inputs have the types and shapes `inputs` (one per input).
/// Errors name the node or output at fault. Pure: no allocation, no kernel.
Result<ProgramPlan> PlanProgram(const proto::Program& prog, std::vector<ValueInfo> inputs, const ProgramTarget& target);

}  // namespace mure
