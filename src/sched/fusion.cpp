#include "sched/fusion.h"

#include <algorithm>
#include <functional>
#include <set>

namespace mure {

namespace {

uint64_t Elements(const Shape& s) {
  uint64_t n = 1;
  for (uint64_t d : s) n *= d;  // shapes here were checked when planned
  return n;
}

/// The fused step for an elementwise node, or nullopt when it cannot join a f32 chain.
std::optional<ocl::FusedStep> Step(const ir::Node& node, const PlannedOp& plan,
                                   const std::vector<ValueInfo>& values) {
  if (plan.type != DType::kF32) return std::nullopt;
  for (uint64_t id : plan.operands) {
    const ValueInfo& v = values[id - 1];
    if (v.type != DType::kF32) return std::nullopt;
    if (v.shape != plan.shape && Elements(v.shape) != 1) return std::nullopt;
  }
  ocl::FusedStep st;
  if (auto* u = std::get_if<ir::Unary>(&node)) {
    if (!u->op || !ocl::Fusible(*u->op)) return std::nullopt;
    st.kind = ocl::FusedStep::Kind::kUnary;
    st.unary = *u->op;
    return st;
  }
  auto* b = std::get_if<ir::Binary>(&node);
  if (!b || !b->op || !ocl::Fusible(*b->op)) return std::nullopt;
  st.kind = ocl::FusedStep::Kind::kBinary;
  st.binary = *b->op;
  return st;
}

}  // namespace

FusionPlan PlanFusion(const proto::Program& prog, const std::vector<PlannedOp>& plans,
                      const std::vector<ValueInfo>& values, bool allow_reduce) {
  const size_t n_in = prog.inputs.size();
  FusionPlan fp;
  fp.root.assign(plans.size(), -1);
  if (prog.placement == proto::Placement::kCpu) return fp;
  std::vector<uint64_t> uses(values.size() + 1, 0);
  std::vector<bool> is_output(values.size() + 1, false);
  for (const auto& p : plans)
    for (uint64_t id : p.operands) ++uses[id];
  for (const auto& [id, keep] : prog.outputs) {
    is_output[id] = true;
    ++uses[id];
  }
  auto node_of = [&](uint64_t id) -> int64_t { return id > n_in ? static_cast<int64_t>(id - n_in - 1) : -1; };
  std::vector<std::optional<ocl::FusedStep>> steps(plans.size());
  std::vector<int64_t> group(plans.size(), -1);  // node -> current group root
  for (size_t i = 0; i < plans.size(); ++i) {
    if (prog.nodes[i].placement == proto::Placement::kCpu) continue;
    steps[i] = Step(prog.nodes[i].node, plans[i], values);
    if (!steps[i]) continue;
    group[i] = static_cast<int64_t>(i);
    // Absorb operands that are elementwise nodes of this shape used only here.
    for (uint64_t id : plans[i].operands) {
      int64_t j = node_of(id);
      if (j < 0 || group[j] < 0 || uses[id] != 1 || is_output[id] || plans[j].shape != plans[i].shape) continue;
      for (size_t k = 0; k < i; ++k)
        if (group[k] == group[j] && k != static_cast<size_t>(j)) group[k] = static_cast<int64_t>(i);
      group[j] = static_cast<int64_t>(i);
    }
  }
  // A reduction over trailing axes of a group's root (used only there) tops the group.
  std::vector<bool> reduce_top(plans.size(), false);
  if (allow_reduce) {
    for (size_t i = 0; i < plans.size(); ++i) {
      auto* red = std::get_if<ir::Reduce>(&prog.nodes[i].node);
      if (!red || prog.nodes[i].placement == proto::Placement::kCpu || plans[i].type != DType::kF32) continue;
      if (!red->op || !ocl::FusibleReduce(*red->op)) continue;
      const uint64_t id = plans[i].operands[0];
      int64_t j = node_of(id);
      // A group already topped by a reduction takes no second one (its root has no elementwise
      // step to chain onto: a sum of row sums, as a mean of a loss is, runs as its own node).
      if (j < 0 || group[j] != j || reduce_top[j] || uses[id] != 1 || is_output[id]) continue;
      const Shape& in = values[id - 1].shape;
      std::vector<int64_t> axes = red->axes;
      if (red->all_axes) {
        axes.clear();
        for (size_t d = 0; d < in.size(); ++d) axes.push_back(static_cast<int64_t>(d));
      }
      std::set<uint64_t> ax;
      for (int64_t a : axes) ax.insert(static_cast<uint64_t>(a < 0 ? a + static_cast<int64_t>(in.size()) : a));
      bool trailing = !ax.empty() && *ax.rbegin() == in.size() - 1 && ax.size() == in.size() - *ax.begin();
      if (!trailing) continue;
      for (size_t k = 0; k <= static_cast<size_t>(j); ++k)
        if (group[k] == j) group[k] = static_cast<int64_t>(i);
      group[i] = static_cast<int64_t>(i);
      reduce_top[i] = true;
    }
  }
  // Build each group of two or more nodes.
  std::map<int64_t, std::vector<size_t>> members;
  for (size_t i = 0; i < plans.size(); ++i)
    if (group[i] >= 0) members[group[i]].push_back(i);
  for (auto& [root, list] : members) {
    if (list.size() < 2) continue;
    Fusion f;
    std::map<uint64_t, uint32_t> step_of;  // value id -> step index
    std::set<uint64_t> inside;
    for (size_t i : list) inside.insert(n_in + i + 1);
    const size_t top = static_cast<size_t>(root);
    const size_t last_elementwise = reduce_top[top] ? list[list.size() - 2] : top;
    // Inputs: operands from outside the group, in first-use order.
    for (size_t i : list) {
      if (reduce_top[top] && i == top) continue;
      for (uint64_t id : plans[i].operands) {
        if (inside.count(id) || step_of.count(id)) continue;
        step_of[id] = static_cast<uint32_t>(f.graph.steps.size());
        f.graph.steps.push_back(ocl::FusedStep{});
        f.graph.scalar_input.push_back(values[id - 1].shape != plans[last_elementwise].shape);
        f.inputs.push_back(id);
      }
    }
    for (size_t i : list) {
      if (reduce_top[top] && i == top) continue;
      ocl::FusedStep st = *steps[i];
      st.a = step_of.at(plans[i].operands[0]);
      if (plans[i].operands.size() > 1) st.b = step_of.at(plans[i].operands[1]);
      step_of[n_in + i + 1] = static_cast<uint32_t>(f.graph.steps.size());
      f.graph.steps.push_back(st);
    }
    f.elements = Elements(plans[last_elementwise].shape);
    if (reduce_top[top]) {
      f.graph.reduce = true;
      f.graph.reduce_op = *std::get<ir::Reduce>(prog.nodes[top].node).op;
      const uint64_t outs = Elements(plans[top].shape);
      f.row_length = outs ? f.elements / outs : 0;
    }
    for (size_t i : list) fp.root[i] = root;
    fp.groups.emplace(top, std::move(f));
  }
  return fp;
}

}  // namespace mure
