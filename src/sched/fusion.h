// mure — finding the parts of a program worth fusing into one generated kernel.
//
// A group is a tree of f32 elementwise nodes of one shape (operands from outside the group of
// that shape, or scalars) whose inner values are used by nothing else and are not outputs,
// optionally topped by a reduction over trailing axes. Each group with two or more nodes runs as
// one kernel (exec/opencl_fused.h): its inner values are never materialised.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "exec/opencl_fused.h"
#include "proto/request.h"
#include "sched/planner.h"

namespace mure {

struct Fusion {
  ocl::FusedGraph graph;
  std::vector<uint64_t> inputs;  ///< value ids of the kernel's inputs, in order
  uint64_t elements = 0;         ///< elements of the chain (before any reduction)
  uint64_t row_length = 1;       ///< reduction: elements reduced into each output
};

struct FusionPlan {
  /// Per node: -1 when it runs alone; else the index of its group's root node.
  std::vector<int64_t> root;
  /// Per root node index: the group.
  std::map<size_t, Fusion> groups;
};

/// `values` are the program's values (1-based ids: inputs, then nodes); `plans` the planned nodes.
/// `allow_reduce`: the device can fuse reductions (they accumulate in double).
FusionPlan PlanFusion(const proto::Program& prog, const std::vector<PlannedOp>& plans,
                      const std::vector<ValueInfo>& values, bool allow_reduce);

}  // namespace mure
