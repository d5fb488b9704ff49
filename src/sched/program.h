// mure — planning a whole program before any of it runs.
//
// PlanProgram is the one gate a program passes: every node is validated against the values before
// it (types, shapes, ids), every output id is checked, and only then do the passes that read the
// program by id (fusion, last uses, the memory peak, the reply's size) run. It allocates no tensor
// and touches no device: the service allocates and posts only what it returns.
#pragma once

#include <cstdint>
#include <memory>
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
  uint64_t max_loop_iterations = 10'000'000;  ///< the node's cap on one while's iterations
};

struct ControlPlan;

struct ProgramPlan {
  std::vector<ValueInfo> values;   ///< by value id - 1: inputs, then nodes
  std::vector<PlannedOp> plans;    ///< per node
  FusionPlan fusion;               ///< root per node (-1: runs alone) and the fused groups
  std::vector<uint64_t> last_use;  ///< by value id: the value id of its last reader; 0 unused, UINT64_MAX output
  uint64_t peak_bytes = 0;         ///< node results alive at once at the peak (intermediates freed after last use)
  uint64_t reply_bytes = 0;        ///< the reply frame's size, returned outputs included (an upper bound)
  /// Per node: its planned regions when it is a while or an if, else null.
  std::vector<std::shared_ptr<const ControlPlan>> control;
};

/// A while or if node, planned: its regions (each a program of its own), how the tuple value packs
/// their results, and the iteration bound.
struct ControlPlan {
  bool is_while = false;
  std::vector<ProgramPlan> regions;    ///< while: cond, body; if: then, else
  std::vector<size_t> region_inputs;   ///< per region, its number of inputs
  std::vector<std::vector<uint64_t>> outputs;  ///< per region, its output value ids
  uint64_t max_iterations = 0;         ///< while: the bound that applies (the request's or the node's)
  bool node_cap = false;               ///< ... it is the node's max_loop_iterations
  uint64_t state_bytes = 0;            ///< while: the state's bytes
  uint64_t transient_bytes = 0;        ///< held while it runs besides its result: state + largest region peak
};

/// Validate and plan `prog`; `region` plans a while/if region (its outputs are not replied, so no
/// reply size is checked). While and if nodes are planned region by region, recursively., whose inputs have the types and shapes `inputs` (one per input).
/// Errors name the node or output at fault. Pure: no allocation, no kernel.
Result<ProgramPlan> PlanProgram(const proto::Program& prog, std::vector<ValueInfo> inputs, const ProgramTarget& target,
                                bool region = false);

}  // namespace mure
