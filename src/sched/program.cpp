#include "sched/program.h"

#include <algorithm>
#include <string>
#include <utility>

#include "ir/linalg.h"

namespace mure {

namespace {

/// Room for the reply's envelope and, per output, its tuple, type and shape terms.
constexpr uint64_t kReplyOverhead = 1024;
constexpr uint64_t kPerOutputOverhead = 256;

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

bool IsInteger(DType t) { return DTypeClass(t) == "u" || DTypeClass(t) == "s"; }

std::string Describe(const ValueInfo& v) { return DTypeToString(v.type) + " " + ShapeToString(v.shape); }

/// The infos of `ids` (earlier values of the enclosing program), each a tensor.
Result<std::vector<ValueInfo>> TensorInfos(const std::vector<uint64_t>& ids, const std::vector<ValueInfo>& values,
                                           const std::string& what) {
  std::vector<ValueInfo> infos;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 1 || ids[i] > values.size()) {
      return Status::BadArg(what + " " + std::to_string(i + 1) + ": value " + std::to_string(ids[i]) +
                            " is not an earlier value (1.." + std::to_string(values.size()) + ")");
    }
    const ValueInfo& v = values[ids[i] - 1];
    if (!v.parts.empty()) {
      return Status::BadArg(what + " " + std::to_string(i + 1) + ": value " + std::to_string(ids[i]) +
                            " is a tuple: pass its parts, each read with {:elem, v, i}");
    }
    infos.push_back(v);
  }
  return infos;
}

/// A region planned with its inputs, errors prefixed with the region's name.
Result<ProgramPlan> PlanRegion(const ir::Region& region, std::vector<ValueInfo> inputs, const ProgramTarget& target,
                               const std::string& name) {
  auto plan = PlanProgram(*region, std::move(inputs), target, true);
  if (!plan.ok()) return Status(plan.status().kind(), name + " " + plan.status().message());
  return plan;
}

/// The tuple value of `parts`: each part 64-byte aligned in the packed bytes, as lu/qr pack theirs.
Result<std::vector<PartInfo>> PackParts(const std::vector<ValueInfo>& parts, uint64_t* packed) {
  std::vector<PartInfo> out;
  uint64_t at = 0;
  for (const ValueInfo& v : parts) {
    auto bytes = ByteSize(v.type, v.shape);
    if (!bytes.ok()) return bytes.status();
    uint64_t end = 0, rounded = 0;
    if (__builtin_add_overflow(at, *bytes, &end) || __builtin_add_overflow(end, ir::kPartAlignment - 1, &rounded)) {
      return Status(ErrorKind::kBadShape, "results of more than 2^64 bytes");
    }
    out.push_back(PartInfo{v.type, v.shape, at});
    at = rounded / ir::kPartAlignment * ir::kPartAlignment;
  }
  *packed = at;
  return out;
}

/// A while or if node against the values before it: its regions planned, its tuple value laid out.
Result<std::pair<PlannedOp, std::shared_ptr<const ControlPlan>>> PlanControl(const ir::Node& node,
                                                                             const std::vector<ValueInfo>& values,
                                                                             const ProgramTarget& target) {
  auto ctl = std::make_shared<ControlPlan>();
  std::vector<ValueInfo> results;
  if (auto* w = std::get_if<ir::While>(&node)) {
    ctl->is_while = true;
    auto state = TensorInfos(w->inits, values, "init");
    if (!state.ok()) return state.status();
    auto inv = TensorInfos(w->invariants, values, "invariant");
    if (!inv.ok()) return inv.status();
    std::vector<ValueInfo> ins = *state;
    ins.insert(ins.end(), inv->begin(), inv->end());
    auto cond = PlanRegion(w->cond, ins, target, "cond");
    if (!cond.ok()) return cond.status();
    const uint64_t pred = w->cond->outputs.at(0).first;
    const ValueInfo& p = cond->values[pred - 1];
    if (!p.shape.empty() || !IsInteger(p.type)) {
      return Status(ErrorKind::kTypeMismatch, "cond: the predicate (value " + std::to_string(pred) +
                                                  ") must be an integer scalar (shape {}), got " + Describe(p));
    }
    auto body = PlanRegion(w->body, ins, target, "body");
    if (!body.ok()) return body.status();
    for (size_t i = 0; i < state->size(); ++i) {
      const uint64_t id = w->body->outputs[i].first;
      const ValueInfo& o = body->values[id - 1];
      const ValueInfo& s = (*state)[i];
      if (o.type != s.type || o.shape != s.shape) {
        return Status(o.type != s.type ? ErrorKind::kTypeMismatch : ErrorKind::kShapeMismatch,
                      "body output " + std::to_string(i + 1) + " (value " + std::to_string(id) + ") is " +
                          Describe(o) + "; state part " + std::to_string(i + 1) + " is " + Describe(s) +
                          ": each output must keep its part's type and shape");
      }
      auto bytes = ByteSize(s.type, s.shape);
      if (!bytes.ok()) return bytes.status();
      ctl->state_bytes = SaturatingAdd(ctl->state_bytes, *bytes);
    }
    ctl->max_iterations = std::min(w->max_iterations, target.max_loop_iterations);
    ctl->node_cap = w->max_iterations > target.max_loop_iterations;
    ctl->transient_bytes = SaturatingAdd(ctl->state_bytes, std::max(cond->peak_bytes, body->peak_bytes));
    for (const ir::Region* r : {&w->cond, &w->body}) {
      ctl->region_inputs.push_back((*r)->inputs.size());
      std::vector<uint64_t> outs;
      for (const auto& [id, keep] : (*r)->outputs) outs.push_back(id);
      ctl->outputs.push_back(std::move(outs));
    }
    ctl->regions.push_back(std::move(*cond));
    ctl->regions.push_back(std::move(*body));
    results = std::move(*state);
  } else {
    const auto& f = std::get<ir::If>(node);
    auto pred = TensorInfos({f.pred}, values, "predicate");
    if (!pred.ok()) return pred.status();
    const ValueInfo& p = (*pred)[0];
    if (!p.shape.empty() || !IsInteger(p.type)) {
      return Status(ErrorKind::kTypeMismatch, "the predicate (value " + std::to_string(f.pred) +
                                                  ") must be an integer scalar (shape {}), got " + Describe(p));
    }
    auto ins = TensorInfos(f.captured, values, "captured");
    if (!ins.ok()) return ins.status();
    auto then_p = PlanRegion(f.then_branch, *ins, target, "then");
    if (!then_p.ok()) return then_p.status();
    auto else_p = PlanRegion(f.else_branch, *ins, target, "else");
    if (!else_p.ok()) return else_p.status();
    for (size_t i = 0; i < f.then_branch->outputs.size(); ++i) {
      const ValueInfo& a = then_p->values[f.then_branch->outputs[i].first - 1];
      const ValueInfo& b = else_p->values[f.else_branch->outputs[i].first - 1];
      if (a.type != b.type || a.shape != b.shape) {
        return Status(a.type != b.type ? ErrorKind::kTypeMismatch : ErrorKind::kShapeMismatch,
                      "output " + std::to_string(i + 1) + " is " + Describe(a) + " in then and " + Describe(b) +
                          " in else: both branches must give the same types and shapes");
      }
      results.push_back(a);
    }
    ctl->transient_bytes = std::max(then_p->peak_bytes, else_p->peak_bytes);
    for (const ir::Region* r : {&f.then_branch, &f.else_branch}) {
      ctl->region_inputs.push_back((*r)->inputs.size());
      std::vector<uint64_t> outs;
      for (const auto& [id, keep] : (*r)->outputs) outs.push_back(id);
      ctl->outputs.push_back(std::move(outs));
    }
    ctl->regions.push_back(std::move(*then_p));
    ctl->regions.push_back(std::move(*else_p));
  }
  PlannedOp op;
  uint64_t packed = 0;
  auto parts = PackParts(results, &packed);
  if (!parts.ok()) return parts.status();
  op.type = DType::kU8;
  op.shape = {packed};
  op.operands = ir::Operands(node);
  op.device = Device::kCpu;
  op.parts = std::move(*parts);
  return std::pair<PlannedOp, std::shared_ptr<const ControlPlan>>(std::move(op), std::move(ctl));
}

}  // namespace

Result<ProgramPlan> PlanProgram(const proto::Program& prog, std::vector<ValueInfo> inputs, const ProgramTarget& target,
                                bool region) {
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
    if (std::holds_alternative<ir::While>(prog.nodes[i].node) || std::holds_alternative<ir::If>(prog.nodes[i].node)) {
      auto planned = PlanControl(prog.nodes[i].node, pp.values, target);
      if (!planned.ok()) {
        return Status(planned.status().kind(), "node " + std::to_string(i + 1) + " (" +
                                                   ir::Label(prog.nodes[i].node) + "): " + planned.status().message());
      }
      pp.values.push_back(ValueInfo{planned->first.type, planned->first.shape, planned->first.parts});
      pp.plans.push_back(std::move(planned->first));
      pp.control.push_back(std::move(planned->second));
      continue;
    }
    const proto::Placement where =
        prog.nodes[i].placement != proto::Placement::kAuto ? prog.nodes[i].placement : prog.placement;
    auto plan = PlanPlaced(prog.nodes[i].node, lookup, target.exec, where, *target.cost);
    if (!plan.ok()) {
      return Status(plan.status().kind(),
                    "node " + std::to_string(i + 1) + " (" + ir::Label(prog.nodes[i].node) + "): " + plan.status().message());
    }
    pp.values.push_back(ValueInfo{plan->type, plan->shape, plan->parts});
    pp.plans.push_back(std::move(*plan));
    pp.control.push_back(nullptr);
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
  if (!region && pp.reply_bytes > target.max_message) {
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
    if (pp.control[i]) pp.peak_bytes = std::max(pp.peak_bytes, SaturatingAdd(live, pp.control[i]->transient_bytes));
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
