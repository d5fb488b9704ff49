#include "sched/service.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <cmath>
#include <cstring>
#include <sstream>

#include "common/log.h"
#include "exec/cpu_ops.h"
#include "exec/opencl_ops.h"
#include "ir/ops.h"
#include "sched/program.h"

#ifndef MURE_VERSION
#define MURE_VERSION "0.0.0"
#endif

namespace mure {

using proto::Op;
using proto::TermWriter;

namespace {

void WriteType(TermWriter& w, DType t) {
  w.Tuple(2).Atom(DTypeClass(t)).Int(DTypeBits(t));
}

void WriteShape(TermWriter& w, const Shape& s) {
  w.Tuple(static_cast<uint32_t>(s.size()));
  for (uint64_t d : s) w.UInt(d);
}

}  // namespace

Service::Service(const Config& cfg, TensorStore& store, BlisExecutor* blis, OpenClExecutor* opencl)
    : cfg_(cfg), store_(store), blis_(blis), opencl_(opencl) {
  blis_queue_ = std::make_unique<WorkQueue>("blis", 1, cfg.queue_depth);
  if (opencl_) opencl_queue_ = std::make_unique<WorkQueue>("opencl", 1, cfg.queue_depth);
  if (opencl_) {
    std::string dir = cfg.kernel_cache_dir;
    if (dir == "none") dir.clear();
    if (dir.rfind("~/", 0) == 0) {
      const char* home = std::getenv("HOME");
      dir = home && *home ? std::string(home) + dir.substr(1) : std::string();
    }
    fused_ = std::make_unique<ocl::FusedKernels>(*opencl_, dir);
  }
  Calibrate();
}

void Service::Calibrate() {
  // Best of three, on data that fits neither in cache nor in doubt: 2 M f32 per operand.
  constexpr uint64_t kN = 2u << 20;
  TensorStore scratch(64u << 20);
  auto a = scratch.Allocate(DType::kF32, {kN});
  auto b = scratch.Allocate(DType::kF32, {kN});
  auto c = scratch.Allocate(DType::kF32, {kN});
  if (!a.ok() || !b.ok() || !c.ok()) return;
  for (uint64_t i = 0; i < kN; ++i) {
    (*a)->as<float>()[i] = 1.0f;
    (*b)->as<float>()[i] = 2.0f;
  }
  auto best_gbps = [&](const std::function<Status()>& run) {
    double best = 0;
    for (int rep = 0; rep < 4; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      if (!run().ok()) return 0.0;
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) best = std::max(best, 3.0 * 4 * kN / s / 1e9);  // the first run warms up
    }
    return best;
  };
  cost_.cpu_gbps = best_gbps([&] { return cpu::Binary(ir::BinaryOp::kAdd, **a, **b, DType::kF32, **c); });
  if (opencl_) {
    cost_.opencl_gbps = best_gbps([&] { return opencl_->ops().Binary(ir::BinaryOp::kAdd, **a, **b, DType::kF32, **c); });
  }
  if (blis_) {
    constexpr uint64_t kM = 512;
    auto x = scratch.Allocate(DType::kF32, {kM, kM});
    auto y = scratch.Allocate(DType::kF32, {kM, kM});
    auto z = scratch.Allocate(DType::kF32, {kM, kM});
    if (x.ok() && y.ok() && z.ok()) {
      std::memset((*x)->data(), 0, (*x)->bytes());
      std::memset((*y)->data(), 0, (*y)->bytes());
      double best = 0;
      for (int rep = 0; rep < 3; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        if (!blis_->Gemm(**x, **y, **z).ok()) break;
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep > 0) best = std::max(best, 2.0 * kM * kM * kM / s / 1e9);
      }
      cost_.gemm_gflops = best;
    }
  }
  LogInfo("cost model: CPU elementwise " + std::to_string(static_cast<int>(cost_.cpu_gbps)) + " GB/s, OpenCL " +
          std::to_string(static_cast<int>(cost_.opencl_gbps)) + " GB/s, BLIS sgemm " +
          std::to_string(static_cast<int>(cost_.gemm_gflops)) + " GFLOP/s");
}

Service::~Service() = default;

void Service::Post(WorkQueue& q, std::shared_ptr<Reply> reply, std::function<void()> job) {
  if (!q.TryPost(std::move(job))) {
    errors_.fetch_add(1);
    reply->Error(Status(ErrorKind::kOverloaded, q.name() + " queue is full"));
  }
}

void Service::Handle(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  requests_.fetch_add(1);
  switch (req.op) {
    case Op::kHello: return Hello(*reply);
    case Op::kDevices: return reply->Ok([&](TermWriter& w) { WriteDevices(w); });
    case Op::kStats: return Stats(ctx, *reply);
    case Op::kUpload: return Upload(ctx, req, *reply);
    case Op::kDownload: {
      auto t = store_.Get(ctx.conn, req.a);
      if (!t.ok()) { errors_.fetch_add(1); return reply->Error(t.status()); }
      if ((*t)->bytes() + 1024 > cfg_.max_message) {
        errors_.fetch_add(1);
        return reply->Error(Status(ErrorKind::kMessageTooLarge,
                                   "tensor " + std::to_string(req.a) + " holds " + std::to_string((*t)->bytes()) +
                                       " bytes, more than one message may carry (max_message = " +
                                       std::to_string(cfg_.max_message) + ")"));
      }
      return reply->OkTensorBytes(std::move(*t));
    }
    case Op::kFree: {
      Status s = store_.Free(ctx.conn, req.a);
      if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
      return reply->Ok([](TermWriter& w) { w.Atom("freed"); });
    }
    case Op::kBusy: return Busy(req, std::move(reply));
    case Op::kProgram: return RunProgram(ctx, req, std::move(reply));
    case Op::kAlloc: return Alloc(ctx, req, std::move(reply));
    case Op::kWrite: return Write(ctx, req, *reply);
    case Op::kRead: return Read(ctx, req, *reply);
    default:  // the op set, matmul, add, multiply
      return Compute(ctx, req, std::move(reply));
  }
}

void Service::Hello(Reply& reply) const {
  reply.Ok([&](TermWriter& w) {
    w.Map(7);
    w.Atom("protocol").Int(proto::kProtocolVersion);
    w.Atom("node").Atom(cfg_.name);
    w.Atom("version").Binary(MURE_VERSION);
    w.Atom("os_pid").Int(static_cast<int64_t>(::getpid()));
    w.Atom("devices");
    WriteDevices(w);
    w.Atom("limits").Map(4);
    w.Atom("max_message_bytes").UInt(cfg_.max_message);
    w.Atom("memory_limit_bytes").UInt(cfg_.memory_limit);
    w.Atom("queue_depth").UInt(cfg_.queue_depth);
    w.Atom("max_dims").UInt(kMaxDims);
    std::vector<std::string> ops;
    std::istringstream names{std::string(proto::AllOpNames())};
    for (std::string op; names >> op;) ops.push_back(op);
    if (cfg_.test_ops) ops.push_back("busy");
    w.Atom("ops").List(static_cast<uint32_t>(ops.size()));
    for (auto& op : ops) w.Atom(op);
    w.Nil();
  });
}

void Service::WriteDevices(TermWriter& w) const {
  uint32_t n = (blis_ ? 1 : 0) + (opencl_ ? 1 : 0);
  if (n) w.List(n);
  if (blis_) {
    const BlisInfo& b = blis_->info();
    w.Map(10);
    w.Atom("id").Atom("blis");
    w.Atom("kind").Atom("blas");
    w.Atom("name").Binary("BLIS " + b.version + " (" + b.arch + ")");
    w.Atom("arch").Binary(b.arch);
    w.Atom("arch_reason").Binary(b.reason);
    w.Atom("threads").UInt(b.threads);
    w.Atom("cpu").Binary(b.cpu.brand.empty() ? b.cpu.vendor : b.cpu.brand);
    w.Atom("cpu_features").Binary(b.cpu.Describe());
    w.Atom("queued").UInt(blis_queue_->pending());
    w.Atom("measured").Map(2);
    w.Atom("gemm_gflops").Double(cost_.gemm_gflops);
    w.Atom("elementwise_gbps").Double(cost_.cpu_gbps);
  }
  if (opencl_) {
    const OpenClInfo& o = opencl_->info();
    w.Map(11);
    w.Atom("id").Atom("opencl");
    w.Atom("kind").Atom("opencl");
    w.Atom("name").Binary(o.name);
    w.Atom("platform").Binary(o.platform);
    w.Atom("device_type").Atom(o.device_type);
    w.Atom("compute_units").UInt(o.compute_units);
    w.Atom("fp64").Bool(o.fp64);
    w.Atom("global_mem_bytes").UInt(o.global_mem_bytes);
    w.Atom("kernel_build_ms").Double(o.build_ms);
    w.Atom("queued").UInt(opencl_queue_->pending());
    w.Atom("measured").Map(1);
    w.Atom("elementwise_gbps").Double(cost_.opencl_gbps);
  }
  w.Nil();
}

void Service::Stats(const RequestContext& ctx, Reply& reply) const {
  reply.Ok([&](TermWriter& w) {
    w.Map(11);
    w.Atom("kernels").Map(8);
    ocl::FusedStats fs = fused_ ? fused_->stats() : ocl::FusedStats{};
    w.Atom("fused_compiled").UInt(fs.compiled);
    w.Atom("fused_disk_hits").UInt(fs.disk_hits);
    w.Atom("fused_compile_ms").Double(fs.compile_ms);
    ocl::CompileStats ks = opencl_ ? opencl_->ops().stats() : ocl::CompileStats{};
    w.Atom("compiled").UInt(ks.kernels_built);
    w.Atom("programs_built").UInt(ks.programs_built);
    w.Atom("cache_hits").UInt(ks.cache_hits);
    w.Atom("compile_ms").Double(ks.build_ms + ks.first_launch_ms);
    w.Atom("launches").UInt(ks.launches);
    w.Atom("refused_handshakes").UInt(refused_.load());
    w.Atom("tensors").UInt(store_.tensors());
    w.Atom("memory_cached_bytes").UInt(store_.memory_cached());
    w.Atom("memory_used_bytes").UInt(store_.memory_used());
    w.Atom("memory_limit_bytes").UInt(store_.memory_limit());
    w.Atom("connections").UInt(store_.connections());
    w.Atom("connection_tensors").UInt(store_.connection_tensors(ctx.conn));
    w.Atom("requests").UInt(requests_.load());
    w.Atom("errors").UInt(errors_.load());
    w.Atom("queued").UInt(blis_queue_->pending() + (opencl_queue_ ? opencl_queue_->pending() : 0));
  });
}

void Service::Upload(const RequestContext& ctx, const proto::Request& req, Reply& reply) {
  auto t = store_.Allocate(req.type, req.shape);
  if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
  if (req.bytes) std::memcpy((*t)->data(), req.data.data(), req.bytes);
  bool new_owner = false;
  auto h = store_.Insert(ctx.conn, ctx.owner, std::move(*t), &new_owner);
  if (!h.ok()) { errors_.fetch_add(1); return reply.Error(h.status()); }
  if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
  uint64_t handle = *h;
  reply.Ok([&](TermWriter& w) { w.UInt(handle); });
}

void Service::Publish(const RequestContext& ctx, std::shared_ptr<Tensor> out, Reply& reply) {
  DType type = out->type();
  Shape shape = out->shape();
  bool new_owner = false;
  auto h = store_.Insert(ctx.conn, ctx.owner, std::move(out), &new_owner);
  if (!h.ok()) { errors_.fetch_add(1); return reply.Error(h.status()); }
  if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
  uint64_t handle = *h;
  reply.Ok([&](TermWriter& w) {
    w.Tuple(3).UInt(handle);
    WriteType(w, type);
    WriteShape(w, shape);
  });
}



void Service::Busy(const proto::Request& req, std::shared_ptr<Reply> reply) {
  uint64_t ms = req.ms;
  Post(*blis_queue_, reply, [this, reply, ms] {
    // Occupies the executor like a long computation would (test-only op).
    std::lock_guard<std::mutex> gate(cpu_gate_);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    volatile uint64_t spin = 0;  // spin, as real compute would, so the I/O threads compete for CPU
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 10000; ++i) spin = spin + 1;
    }
    reply->Ok([&](TermWriter& w) { w.UInt(ms); });
  });
}


Status Service::RunKernel(const PlannedOp& op, const std::vector<const Tensor*>& ins, Tensor& out) {
  if (op.device == Device::kOpenCl) {
    std::lock_guard<std::mutex> device(opencl_mu_);  // one thread at a time on the OpenCL queue
    if (opencl_->is_cpu()) {
      std::lock_guard<std::mutex> gate(cpu_gate_);
      return op.kernel(ins, out);
    }
    return op.kernel(ins, out);
  }
  std::lock_guard<std::mutex> gate(cpu_gate_);
  return op.kernel(ins, out);
}

void Service::Compute(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  auto fail = [&](const Status& st) { errors_.fetch_add(1); reply->Error(st); };
  std::map<uint64_t, std::shared_ptr<Tensor>> seen;  // the operands, resolved once
  OperandLookup lookup = [&](uint64_t h) -> Result<ValueInfo> {
    auto it = seen.find(h);
    if (it == seen.end()) {
      auto t = store_.Get(ctx.conn, h);
      if (!t.ok()) return t.status();
      it = seen.emplace(h, std::move(*t)).first;
    }
    return ValueInfo{it->second->type(), it->second->shape()};
  };
  auto plan = PlanPlaced(req, lookup, blis_, opencl_, req.placement, cost_);
  if (!plan.ok()) return fail(plan.status());
  std::vector<std::shared_ptr<Tensor>> held;
  for (uint64_t id : plan->operands) held.push_back(seen.at(id));
  auto out = store_.Allocate(plan->type, plan->shape);
  if (!out.ok()) return fail(out.status());
  WorkQueue& q = plan->device == Device::kOpenCl ? *opencl_queue_ : *blis_queue_;
  Post(q, reply, [this, ctx, reply, held = std::move(held), plan = std::move(*plan), out = std::move(*out)]() mutable {
    if (reply->Abandoned()) return;  // the connection closed while this waited: nobody to answer
    std::vector<const Tensor*> ins;
    for (auto& t : held) ins.push_back(t.get());
    Status st = RunKernel(plan, ins, *out);
    if (!st.ok()) { errors_.fetch_add(1); return reply->Error(st); }
    Publish(ctx, std::move(out), *reply);
  });
}

void Service::Alloc(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  auto t = store_.Allocate(req.type, req.shape);
  if (!t.ok()) { errors_.fetch_add(1); return reply->Error(t.status()); }
  // Never hand out another tensor's bytes. Fresh pages are zero already; a reused buffer is
  // cleared, on a worker when it is large, so this connection's thread keeps reading and ticking
  // (the client sends no write before it has the handle this reply carries).
  if ((*t)->zeroed() || (*t)->bytes() < MemoryBudget::kLargeBuffer) {
    if (!(*t)->zeroed() && (*t)->bytes()) std::memset((*t)->data(), 0, (*t)->bytes());
    return Publish(ctx, std::move(*t), *reply);
  }
  Post(*blis_queue_, reply, [this, ctx, reply, t = std::move(*t)]() mutable {
    std::memset(t->data(), 0, t->bytes());
    Publish(ctx, std::move(t), *reply);
  });
}

Result<std::shared_ptr<Tensor>> Service::Range(const RequestContext& ctx, uint64_t handle, uint64_t offset,
                                               uint64_t length) const {
  auto t = store_.Get(ctx.conn, handle);
  if (!t.ok()) return t.status();
  uint64_t end = 0;
  if (__builtin_add_overflow(offset, length, &end) || end > (*t)->bytes()) {
    return Status(ErrorKind::kOutOfRange, "bytes " + std::to_string(offset) + " .. " + std::to_string(offset) + "+" +
                                              std::to_string(length) + " are outside tensor " +
                                              std::to_string(handle) + " of " + std::to_string((*t)->bytes()) +
                                              " bytes");
  }
  return t;
}

void Service::Write(const RequestContext& ctx, const proto::Request& req, Reply& reply) {
  auto t = Range(ctx, req.a, req.offset, req.data.size());
  if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
  if (!req.data.empty()) std::memcpy((*t)->data() + req.offset, req.data.data(), req.data.size());
  uint64_t n = req.data.size();
  reply.Ok([&](TermWriter& w) { w.UInt(n); });
}

void Service::Read(const RequestContext& ctx, const proto::Request& req, Reply& reply) {
  auto t = Range(ctx, req.a, req.offset, req.length);
  if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
  if (req.length + 1024 > cfg_.max_message) {
    errors_.fetch_add(1);
    return reply.Error(Status(ErrorKind::kMessageTooLarge, "a read of " + std::to_string(req.length) +
                                                               " bytes exceeds max_message; read smaller pieces"));
  }
  reply.OkTensorBytes(std::move(*t), req.offset, req.length);
}

void Service::RunProgram(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  auto fail = [&](const Status& st) { errors_.fetch_add(1); reply->Error(st); };
  const proto::Program& prog = *req.program;
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
  target.blis = blis_;
  target.opencl = opencl_;
  target.cost = &cost_;
  target.fuse = fused_ != nullptr;
  target.fuse_reductions = opencl_ && opencl_->info().fp64;
  target.max_message = cfg_.max_message;
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
  std::vector<PlannedOp> plans = std::move(planned->plans);
  std::vector<uint64_t> last_use = std::move(planned->last_use);
  FusionPlan fusion = std::move(planned->fusion);
  auto outputs = prog.outputs;
  const size_t n_inputs = prog.inputs.size();
  Post(*blis_queue_, reply, [this, ctx, reply, inputs = std::move(inputs), plans = std::move(plans), last_use,
                             outputs, n_inputs, fusion = std::move(fusion)]() mutable {
    if (reply->Abandoned()) return;  // the connection closed while this waited
    std::vector<std::shared_ptr<Tensor>> vals(n_inputs + plans.size() + 1);
    for (size_t i = 0; i < inputs.size(); ++i) vals[i + 1] = std::move(inputs[i]);
    for (size_t i = 0; i < plans.size(); ++i) {
      const uint64_t id = n_inputs + i + 1;
      if (fusion.root[i] >= 0 && static_cast<size_t>(fusion.root[i]) != i) continue;  // inside a fused kernel
      auto out = store_.Allocate(plans[i].type, plans[i].shape);
      if (!out.ok()) {
        errors_.fetch_add(1);
        return reply->Error(Status(out.status().kind(), "node " + std::to_string(i + 1) + ": " + out.status().message()));
      }
      std::vector<const Tensor*> ins;
      Status st;
      if (fusion.root[i] >= 0) {
        const Fusion& f = fusion.groups.at(i);
        for (uint64_t v : f.inputs) ins.push_back(vals[v].get());
        std::lock_guard<std::mutex> device(opencl_mu_);
        std::unique_lock<std::mutex> gate(cpu_gate_, std::defer_lock);
        if (opencl_->is_cpu()) gate.lock();
        st = fused_->Run(f.graph, ins, f.elements, f.row_length, **out);
      } else {
        for (uint64_t v : plans[i].operands) ins.push_back(vals[v].get());
        st = RunKernel(plans[i], ins, **out);
      }
      if (!st.ok()) {
        errors_.fetch_add(1);
        return reply->Error(Status(st.kind(), "node " + std::to_string(i + 1) + ": " + st.message()));
      }
      vals[id] = std::move(*out);
      const std::vector<uint64_t>& used = fusion.root[i] >= 0 ? fusion.groups.at(i).inputs : plans[i].operands;
      for (uint64_t v : used) {
        if (last_use[v] == id) vals[v].reset();  // an intermediate (or input) past its last use
      }
      if (last_use[id] == 0) vals[id].reset();
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
          errors_.fetch_add(1);
          return reply->Error(h.status());
        }
        if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
        kept.push_back(*h);
        w.Tuple(3).UInt(*h);
        WriteType(w, t->type());
        WriteShape(w, t->shape());
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
    reply->OkEncoded(std::move(*encoded));
  });
}

}  // namespace mure
