#include "sched/program.h"

#include <algorithm>
#include <string>

namespace mure {

namespace {

/// Room for the reply's envelope and, per output, its tuple, type and shape terms.
constexpr uint64_t kReplyOverhead = 1024;
constexpr uint64_t kPerOutputOverhead = 256;

}  // namespace

Result<ProgramPlan> PlanProgram(const proto::Program& prog, std::vector<ValueInfo> inputs, const ProgramTarget& target) {
  ProgramPlan pp;
  pp.values = std::move(inputs);
  const size_t n_in = prog.inputs.size();
  if (pp.values.size() != n_in) return Status::Internal("program planned with the wrong number of inputs");
  // 1. Every node, against the values before it.
  for (size_t i = 0; i < prog.nodes.size(); ++i) {
    const uint64_t limit = pp.values.size();
    OperandLookup lookup = [&](uint64_t id) -> Result<ValueInfo> {
      if (id < 1 || id > limit) {
        return Status::BadArg("value " + std::to_string(id) + " is not an earlier value (1.." + std::to_string(limit) + ")");
      }
      return pp.values[id - 1];
    };
    const proto::Placement where =
        prog.nodes[i].placement != proto::Placement::kAuto ? prog.nodes[i].placement : prog.placement;
    auto plan = PlanPlaced(prog.nodes[i].node, lookup, target.exec, where, *target.cost);
    if (!plan.ok()) {
      return Status(plan.status().kind(),
                    "node " + std::to_string(i + 1) + " (" + ir::Label(prog.nodes[i].node) + "): " + plan.status().message());
    }
    pp.values.push_back(ValueInfo{plan->type, plan->shape, plan->parts});
    pp.plans.push_back(std::move(*plan));
  }
  // 2. Every output names a value of the program.
  const uint64_t n_values = pp.values.size();
  for (size_t i = 0; i < prog.outputs.size(); ++i) {
    const uint64_t id = prog.outputs[i].first;
    if (id < 1 || id > n_values) {
      return Status::BadArg("output " + std::to_string(i + 1) + ": value " + std::to_string(id) +
                            " does not exist (the program has " + std::to_string(n_values) + ")");
    }
    if (!pp.values[id - 1].parts.empty()) {
      return Status::BadArg("output " + std::to_string(i + 1) + ": value " + std::to_string(id) + " is a tuple of " +
                            std::to_string(pp.values[id - 1].parts.size()) +
                            " tensors: return its parts, each read with {:elem, v, i}");
    }
  }
  // Validation is complete: from here on every id read from the program is in range.
  std::vector<uint64_t> sizes(n_values + 1, 0);
  for (uint64_t id = 1; id <= n_values; ++id) {
    auto b = ByteSize(pp.values[id - 1].type, pp.values[id - 1].shape);
    if (!b.ok()) return Status(b.status().kind(), "value " + std::to_string(id) + ": " + b.status().message());
    sizes[id] = *b;
  }
  // 3. The reply: returned outputs travel in it, so it must fit in one frame.
  pp.reply_bytes = kReplyOverhead;
  std::string returned;
  for (size_t i = 0; i < prog.outputs.size(); ++i) {
    const auto& [id, keep] = prog.outputs[i];
    const uint64_t bytes = kPerOutputOverhead + (keep ? 0 : sizes[id]);  // sizes are below 2^63
    if (__builtin_add_overflow(pp.reply_bytes, bytes, &pp.reply_bytes)) pp.reply_bytes = UINT64_MAX;
    if (!keep) returned += (returned.empty() ? "" : ", ") + std::to_string(i + 1);
  }
  if (pp.reply_bytes > target.max_message) {
    return Status(ErrorKind::kMessageTooLarge,
                  "the outputs to return (" + returned + ") make a reply of about " + std::to_string(pp.reply_bytes) +
                      " bytes, more than one message may carry (max_message = " + std::to_string(target.max_message) +
                      "): keep them on the node (:keep) and read them with Mure.download/2, which fetches a large "
                      "tensor in pieces ({:read, handle, offset, length})");
  }
  // 4. Fusion of elementwise chains into generated kernels.
  if (target.fuse) pp.fusion = PlanFusion(prog, pp.plans, pp.values, target.fuse_reductions);
  pp.fusion.root.resize(pp.plans.size(), -1);
  // 5. Last uses: a fused node's operands are read when its group's root runs.
  pp.last_use.assign(n_values + 1, 0);
  for (size_t i = 0; i < pp.plans.size(); ++i) {
    const uint64_t at = n_in + (pp.fusion.root[i] >= 0 ? static_cast<size_t>(pp.fusion.root[i]) : i) + 1;
    for (uint64_t id : pp.plans[i].operands) pp.last_use[id] = std::max(pp.last_use[id], at);
  }
  for (const auto& [id, keep] : prog.outputs) pp.last_use[id] = UINT64_MAX;  // outputs live to the end
  // 6. The memory at the peak, with intermediates freed after their last use (saturating: a
  //    program whose values add up past 2^64 bytes is as refused as one over the limit).
  uint64_t live = 0;
  for (size_t i = 0; i < pp.plans.size(); ++i) {
    const uint64_t id = n_in + i + 1;
    if (__builtin_add_overflow(live, sizes[id], &live)) live = UINT64_MAX;
    pp.peak_bytes = std::max(pp.peak_bytes, live);
    if (live == UINT64_MAX) break;
    std::vector<uint64_t> operands = pp.plans[i].operands;  // multiply(x, x) frees x once
    std::sort(operands.begin(), operands.end());
    operands.erase(std::unique(operands.begin(), operands.end()), operands.end());
    for (uint64_t in : operands) {
      if (in > n_in && pp.last_use[in] == id) live -= sizes[in];
    }
    if (pp.last_use[id] == 0) live -= sizes[id];  // computed but unused: freed at once
  }
  return pp;
}

}  // namespace mure
