// Service's program path: RunProgram validates a whole {program, ...} request, plans it
// (sched/program.cpp) and runs its nodes in order, loops and conditionals included, on the
// executors the plan chose; the one-op paths and transfers are in service.cpp.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include "exec/opencl_ops.h"
#include "sched/program.h"
#include "sched/service.h"

namespace mure {

using proto::TermWriter;
using proto::WriteHandle;
using proto::WriteShape;
using proto::WriteType;

void Service::RunProgram(const RequestContext& ctx, const proto::Program& prog, std::shared_ptr<Reply> reply) {
  auto fail = [&](const Status& st) { errors_.fetch_add(1); reply->Error(st); };
  // Values 1..n: inputs first, then nodes. Resident inputs are looked up; data inputs are only
  // described until the whole program has been validated.
  std::vector<std::shared_ptr<Tensor>> inputs(prog.inputs.size());
  std::vector<ValueInfo> infos;
  uint64_t data_bytes = 0;
  for (size_t i = 0; i < prog.inputs.size(); ++i) {
    const proto::ProgramInput& in = prog.inputs[i];
    if (in.is_handle) {
      auto t = store_.Get(ctx.conn, in.handle);
      if (!t.ok()) return fail(Status(t.status().kind(), "input " + std::to_string(i + 1) + ": " + t.status().message()));
      inputs[i] = *t;
      infos.push_back(ValueInfo{inputs[i]->type(), inputs[i]->shape()});
    } else {
      data_bytes += in.bytes;  // each was checked against its binary, which the frame holds
      infos.push_back(ValueInfo{in.type, in.shape});
    }
  }
  ProgramTarget target;
  target.exec = executors_;
  target.cost = &cost_;
  target.fuse = fused_ != nullptr;
  target.fuse_reductions = opencl_ && opencl_->info().fp64;
  target.max_message = cfg_.max_message;
  target.max_loop_iterations = cfg_.max_loop_iterations;
  auto planned = PlanProgram(prog, std::move(infos), target);
  if (!planned.ok()) return fail(planned.status());
  // The memory the program needs at its peak, its data inputs included.
  const uint64_t left = store_.memory_limit() - std::min(store_.memory_limit(), store_.memory_used());
  uint64_t need = 0;
  if (__builtin_add_overflow(planned->peak_bytes, data_bytes, &need) ||
      __builtin_add_overflow(need, planned->reply_bytes, &need) || need > left) {
    return fail(Status(ErrorKind::kOutOfMemory, "the program needs " +
                                                    (need < planned->peak_bytes ? std::string("more than 2^64")
                                                                                : std::to_string(need)) +
                                                    " bytes at its peak; the node has " + std::to_string(left) +
                                                    " of its limit left"));
  }
  // Only now: copy the data inputs in, while the frame is alive.
  for (size_t i = 0; i < prog.inputs.size(); ++i) {
    const proto::ProgramInput& in = prog.inputs[i];
    if (in.is_handle) continue;
    auto t = store_.Allocate(in.type, in.shape);
    if (!t.ok()) return fail(Status(t.status().kind(), "input " + std::to_string(i + 1) + ": " + t.status().message()));
    if (in.bytes) std::memcpy((*t)->data(), in.data.data(), in.bytes);
    inputs[i] = std::move(*t);
  }
  auto plan = std::make_shared<const ProgramPlan>(std::move(*planned));
  auto outputs = prog.outputs;
  const size_t n_inputs = prog.inputs.size();
  Post(*blis_queue_, reply, [this, ctx, reply, inputs = std::move(inputs), plan, outputs, n_inputs]() mutable {
    if (reply->Abandoned()) return;  // the connection closed while this waited
    std::vector<std::shared_ptr<Tensor>> vals(n_inputs + plan->plans.size() + 1);
    for (size_t i = 0; i < inputs.size(); ++i) vals[i + 1] = std::move(inputs[i]);
    inputs.clear();
    Status st = RunNodes(*plan, n_inputs, vals, *reply);
    if (!st.ok()) {
      vals.clear();  // the memory is the budget's again before the caller hears of the failure
      if (reply->Abandoned()) return;  // stopped because nobody waits for the answer
      errors_.fetch_add(1);
      return reply->Error(st);
    }
    // Keep or return each output; the reply carries them in order.
    std::vector<uint64_t> kept;
    auto unkeep = [&] {
      for (uint64_t h : kept) (void)store_.Free(ctx.conn, h);
    };
    std::vector<std::string> terms;  // per output, its term up to (not including) a returned binary
    uint64_t total = 0;
    for (auto& [id, keep] : outputs) {
      const std::shared_ptr<Tensor>& t = vals[id];
      std::string term;
      TermWriter w(term);
      if (keep) {
        bool new_owner = false;
        auto h = store_.Insert(ctx.conn, ctx.owner, t, &new_owner);
        if (!h.ok()) {
          unkeep();
          vals.clear();
          errors_.fetch_add(1);
          return reply->Error(h.status());
        }
        if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
        kept.push_back(*h);
        WriteHandle(w, *h, t->type(), t->shape());
      } else {
        w.Tuple(3);
        WriteType(w, t->type());
        WriteShape(w, t->shape());
        w.BinaryHeader(t->bytes());
        total += t->bytes();
      }
      total += term.size();
      terms.push_back(std::move(term));
    }
    // The value is encoded into memory of the budget (the returned outputs' copy is accounted
    // like a tensor) and sent from there; its size was checked against max_message when planned.
    std::string list, nil;
    TermWriter(list).List(static_cast<uint32_t>(outputs.size()));
    TermWriter(nil).Nil();
    total += list.size() + nil.size();
    auto encoded = store_.Allocate(DType::kU8, {total});
    if (!encoded.ok()) {
      unkeep();
      vals.clear();
      errors_.fetch_add(1);
      return reply->Error(Status(encoded.status().kind(), "the reply: " + encoded.status().message()));
    }
    uint8_t* p = (*encoded)->data();
    auto put = [&p](const void* bytes, uint64_t n) {
      if (n) std::memcpy(p, bytes, n);
      p += n;
    };
    put(list.data(), list.size());
    for (size_t i = 0; i < outputs.size(); ++i) {
      put(terms[i].data(), terms[i].size());
      if (!outputs[i].second) put(vals[outputs[i].first]->data(), vals[outputs[i].first]->bytes());
    }
    put(nil.data(), nil.size());
    vals.clear();  // intermediates released before the reply: a caller that reads stats sees them gone
    reply->OkEncoded(std::move(*encoded));
  });
}

Status Service::RunNodes(const ProgramPlan& plan, size_t n_inputs, std::vector<std::shared_ptr<Tensor>>& vals,
                         const Reply& reply) {
  const std::vector<PlannedOp>& plans = plan.plans;
  const FusionPlan& fusion = plan.fusion;
  const std::vector<uint64_t>& last_use = plan.last_use;
  for (size_t i = 0; i < plans.size(); ++i) {
    const uint64_t id = n_inputs + i + 1;
    program_nodes_.fetch_add(1, std::memory_order_relaxed);
    if (fusion.root[i] >= 0) {
      fused_nodes_.fetch_add(1, std::memory_order_relaxed);
      if (static_cast<size_t>(fusion.root[i]) != i) continue;  // inside a fused kernel, run with its root
      fused_groups_.fetch_add(1, std::memory_order_relaxed);
    }
    auto where = [&](const Status& st) { return Status(st.kind(), "node " + std::to_string(i + 1) + ": " + st.message()); };
    if (plan.control[i]) {
      std::vector<std::shared_ptr<Tensor>> ins;
      for (uint64_t v : plans[i].operands) ins.push_back(vals[v]);
      auto out = RunControl(*plan.control[i], plans[i], ins, reply);
      if (!out.ok()) return where(out.status());
      vals[id] = std::move(*out);
    } else {
      auto out = store_.Allocate(plans[i].type, plans[i].shape);
      if (!out.ok()) return where(out.status());
      std::vector<const Tensor*> ins;
      Status st;
      if (fusion.root[i] >= 0) {
        const Fusion& f = fusion.groups.at(i);
        for (uint64_t v : f.inputs) ins.push_back(vals[v].get());
        auto held = locks_.Hold(Device::kOpenCl);
        st = fused_->Run(f.graph, ins, f.elements, f.row_length, **out);
      } else {
        for (uint64_t v : plans[i].operands) ins.push_back(vals[v].get());
        st = RunKernel(plans[i], ins, **out);
      }
      if (!st.ok()) return where(st);
      vals[id] = std::move(*out);
    }
    const std::vector<uint64_t>& used = fusion.root[i] >= 0 ? fusion.groups.at(i).inputs : plans[i].operands;
    for (uint64_t v : used) {
      if (last_use[v] == id) vals[v].reset();  // an intermediate (or input) past its last use
    }
    if (last_use[id] == 0) vals[id].reset();
  }
  return Status::Ok();
}

namespace {

/// A scalar predicate of an integer type: non-zero when any of its bytes is.
bool Holds(const Tensor& pred) {
  for (uint64_t i = 0; i < pred.bytes(); ++i) {
    if (pred.data()[i] != 0) return true;
  }
  return false;
}

}  // namespace

Result<std::shared_ptr<Tensor>> Service::RunControl(const ControlPlan& ctl, const PlannedOp& op,
                                                    const std::vector<std::shared_ptr<Tensor>>& ins,
                                                    const Reply& reply) {
  // Runs region r on `args`: its outputs, in order.
  auto run = [&](size_t r, const std::vector<std::shared_ptr<Tensor>>& args, const char* name)
      -> Result<std::vector<std::shared_ptr<Tensor>>> {
    const ProgramPlan& p = ctl.regions[r];
    std::vector<std::shared_ptr<Tensor>> vals(args.size() + p.plans.size() + 1);
    for (size_t i = 0; i < args.size(); ++i) vals[i + 1] = args[i];
    Status st = RunNodes(p, args.size(), vals, reply);
    if (!st.ok()) return Status(st.kind(), std::string(name) + " " + st.message());
    std::vector<std::shared_ptr<Tensor>> outs;
    for (uint64_t id : ctl.outputs[r]) outs.push_back(vals[id]);
    return outs;
  };
  std::vector<std::shared_ptr<Tensor>> results;
  if (ctl.is_while) {
    const size_t k = ctl.outputs[1].size();
    std::vector<std::shared_ptr<Tensor>> args = ins;  // the state (1..k), then the invariants
    for (uint64_t done = 0;; ++done) {
      if (reply.Abandoned()) return Status(ErrorKind::kInternal, "the caller is gone");
      auto pred = run(0, args, "cond");
      if (!pred.ok()) return pred.status();
      if (!Holds(*(*pred)[0])) break;
      if (done == ctl.max_iterations) {
        return Status(ErrorKind::kOutOfRange,
                      "the loop ran " + std::to_string(done) + " iterations, its bound, and its condition still holds: " +
                          (ctl.node_cap ? "the node caps loops at max_loop_iterations = " +
                                              std::to_string(ctl.max_iterations) + " (config/mure.conf)"
                                        : "raise max_iterations (Mure.Compiler option :max_iterations)"));
      }
      auto next = run(1, args, "body");
      if (!next.ok()) return next.status();
      for (size_t i = 0; i < k; ++i) args[i] = std::move((*next)[i]);  // the old state freed here
      loop_iterations_.fetch_add(1, std::memory_order_relaxed);
    }
    args.resize(k);
    results = std::move(args);
  } else {
    std::vector<std::shared_ptr<Tensor>> captured(ins.begin() + 1, ins.end());
    const bool then_branch = Holds(*ins[0]);
    auto outs = run(then_branch ? 0 : 1, captured, then_branch ? "then" : "else");
    if (!outs.ok()) return outs.status();
    results = std::move(*outs);
  }
  auto packed = store_.Allocate(op.type, op.shape);
  if (!packed.ok()) return packed.status();
  for (size_t i = 0; i < results.size(); ++i) {
    const uint64_t offset = op.parts[i].offset, bytes = results[i]->bytes();
    if (offset > (*packed)->bytes() || bytes > (*packed)->bytes() - offset) {
      return Status::Internal("a part lies outside its tuple value");
    }
    if (bytes) std::memcpy((*packed)->data() + offset, results[i]->data(), bytes);
  }
  return packed;
}

}  // namespace mure
