#include "sched/service.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>

#include "exec/calibration.h"
#include "exec/opencl_ops.h"
#include "sched/program.h"
#include "store/shm_segments.h"

#ifndef MURE_VERSION
#define MURE_VERSION "0.0.0"
#endif

namespace mure {

using proto::TermWriter;

using proto::WriteHandle;
using proto::WriteShape;
using proto::WriteType;

Service::Service(const Config& cfg, TensorStore& store, BlisExecutor* blis, OpenClExecutor* opencl)
    : cfg_(cfg), store_(store), blis_(blis), opencl_(opencl), locks_(opencl && opencl->is_cpu()) {
  const std::chrono::microseconds spin(cfg.spin_us);
  blis_queue_ = std::make_unique<WorkQueue>("blis", 1, cfg.queue_depth, spin);
  if (opencl_) opencl_queue_ = std::make_unique<WorkQueue>("opencl", 1, cfg.queue_depth, spin);
  if (opencl_) {
    std::string dir = cfg.kernel_cache_dir;
    if (dir == "none") dir.clear();
    if (dir.rfind("~/", 0) == 0) {
      const char* home = std::getenv("HOME");
      dir = home && *home ? std::string(home) + dir.substr(1) : std::string();
    }
    fused_ = std::make_unique<ocl::FusedKernels>(*opencl_, dir);
    opencl_exec_ = std::make_unique<exec::OpenClDevice>(*opencl_);
  }
  cpu_exec_ = std::make_unique<exec::CpuExecutor>(blis_);
  executors_.cpu = cpu_exec_.get();
  executors_.opencl = opencl_exec_.get();
  executors_.blis = blis_ != nullptr;
  const DeviceSpeeds speeds = MeasureDevices(blis_, opencl_);
  cost_.cpu_gbps = speeds.cpu_gbps;
  cost_.opencl_gbps = speeds.opencl_gbps;
  cost_.gemm_gflops = speeds.gemm_gflops;
  cost_.opencl_launch_us = speeds.opencl_launch_us;
}

Service::~Service() = default;

void Service::Post(WorkQueue& q, std::shared_ptr<Reply> reply, std::function<void()> job) {
  if (!q.TryPost(std::move(job))) {
    errors_.fetch_add(1);
    reply->Error(Status(ErrorKind::kOverloaded, q.name() + " queue is full"));
  }
}

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

void Service::Handle(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  requests_.fetch_add(1);
  std::visit(
      Overloaded{
          [&](const ir::Node& node) { Compute(ctx, node, req.placement, std::move(reply)); },
          [&](const proto::Hello&) { reply->Ok([&](TermWriter& w) { proto::WriteHello(w, Hello()); }); },
          [&](const proto::Devices&) { reply->Ok([&](TermWriter& w) { proto::WriteDevices(w, Devices()); }); },
          [&](const proto::Stats&) { reply->Ok([&](TermWriter& w) { proto::WriteStats(w, Stats(ctx)); }); },
          [&](const proto::Upload& r) { Upload(ctx, r, *reply); },
          [&](const proto::Download& r) {
            auto t = store_.Get(ctx.conn, r.handle);
            if (!t.ok()) { errors_.fetch_add(1); return reply->Error(t.status()); }
            if ((*t)->bytes() + 1024 > cfg_.max_message) {
              errors_.fetch_add(1);
              return reply->Error(Status(ErrorKind::kMessageTooLarge,
                                         "tensor " + std::to_string(r.handle) + " holds " +
                                             std::to_string((*t)->bytes()) +
                                             " bytes, more than one message may carry (max_message = " +
                                             std::to_string(cfg_.max_message) + ")"));
            }
            reply->OkTensorBytes(std::move(*t));
          },
          [&](const proto::Free& r) {
            Status s = store_.Free(ctx.conn, r.handle);
            if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
            reply->Ok([](TermWriter& w) { w.Atom("freed"); });
          },
          [&](const proto::Busy& r) { Busy(r, std::move(reply)); },
          [&](const proto::RunProgram& r) { RunProgram(ctx, *r.program, std::move(reply)); },
          [&](const proto::Alloc& r) { Alloc(ctx, r, std::move(reply)); },
          [&](const proto::Write& r) { Write(ctx, r, *reply); },
          [&](const proto::Read& r) { Read(ctx, r, *reply); },
          [&](const proto::Give& r) {
            if (r.pid_node != ctx.peer_node) {
              errors_.fetch_add(1);
              return reply->Error(Status::BadArg("give: the new owner must be a pid of the requesting node " +
                                                 ctx.peer_node + ", not of " + std::string(r.pid_node)));
            }
            bool new_owner = false;
            Status s = store_.Reown(ctx.conn, r.handle, proto::PidKey(r.pid, r.pid_node), &new_owner);
            if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
            // A new owner already gone is answered DOWN at once, and its tensors freed then.
            if (new_owner && ctx.monitor_owner) ctx.monitor_owner(std::string(r.pid));
            reply->Ok([](TermWriter& w) { w.Atom("given"); });
          },
          [&](const proto::ShmAlloc& r) {
            bool new_owner = false;
            auto ticket = store_.shm().Create(ctx.conn, ctx.owner, r.bytes, &new_owner, r.reuse);
            ShmReply(ctx, std::move(ticket), new_owner, *reply);
          },
          [&](const proto::ShmUpload& r) { ShmUpload(ctx, r, *reply); },
          [&](const proto::ShmDownload& r) {
            auto t = store_.Get(ctx.conn, r.handle);
            if (!t.ok()) { errors_.fetch_add(1); return reply->Error(t.status()); }
            bool new_owner = false;
            // Into the client's reusable segment (copied before the reply), or a new sealed one.
            auto ticket = r.segment ? store_.shm().CopyFromTensor(ctx.conn, r.segment, **t)
                                    : store_.shm().Export(ctx.conn, ctx.owner, **t, &new_owner);
            ShmReply(ctx, std::move(ticket), new_owner, *reply);
          },
          [&](const proto::ShmFree& r) {
            Status s = store_.shm().Free(ctx.conn, r.segment);
            if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
            reply->Ok([](TermWriter& w) { w.Atom("freed"); });
          },
      },
      req.body);
}

proto::HelloInfo Service::Hello() const {
  proto::HelloInfo h;
  h.node = cfg_.name;
  h.version = MURE_VERSION;
  h.os_pid = static_cast<int64_t>(::getpid());
  h.max_message = cfg_.max_message;
  h.memory_limit = cfg_.memory_limit;
  h.queue_depth = cfg_.queue_depth;
  h.max_loop_iterations = cfg_.max_loop_iterations;
  h.test_ops = cfg_.test_ops;
  h.devices = Devices();
  return h;
}

proto::DevicesInfo Service::Devices() const {
  proto::DevicesInfo d;
  if (blis_) {
    const BlisInfo& b = blis_->info();
    proto::BlasDeviceInfo& o = d.blas.emplace();
    o.version = b.version;
    o.arch = b.arch;
    o.arch_reason = b.reason;
    o.threads = b.threads;
    o.cpu = b.cpu.brand.empty() ? b.cpu.vendor : b.cpu.brand;
    o.cpu_features = b.cpu.Describe();
    o.queued = blis_queue_->pending();
    o.gemm_gflops = cost_.gemm_gflops;
    o.elementwise_gbps = cost_.cpu_gbps;
  }
  if (opencl_) {
    const OpenClInfo& c = opencl_->info();
    proto::OpenClDeviceInfo& o = d.opencl.emplace();
    o.name = c.name;
    o.platform = c.platform;
    o.device_type = c.device_type;
    o.compute_units = c.compute_units;
    o.fp64 = c.fp64;
    o.global_mem_bytes = c.global_mem_bytes;
    o.kernel_build_ms = c.build_ms;
    o.queued = opencl_queue_->pending();
    o.elementwise_gbps = cost_.opencl_gbps;
  }
  return d;
}

proto::StatsInfo Service::Stats(const RequestContext& ctx) const {
  proto::StatsInfo s;
  ocl::FusedStats fs = fused_ ? fused_->stats() : ocl::FusedStats{};
  s.fused_compiled = fs.compiled;
  s.fused_disk_hits = fs.disk_hits;
  s.fused_compile_ms = fs.compile_ms;
  ocl::CompileStats ks = opencl_ ? opencl_->ops().stats() : ocl::CompileStats{};
  s.kernels_compiled = ks.kernels_built;
  s.programs_built = ks.programs_built;
  s.cache_hits = ks.cache_hits;
  s.compile_ms = ks.build_ms + ks.first_launch_ms;
  s.launches = ks.launches;
  s.refused_handshakes = refused_.load();
  s.tensors = store_.tensors();
  s.memory_cached_bytes = store_.memory_cached();
  s.memory_used_bytes = store_.memory_used();
  s.memory_limit_bytes = store_.memory_limit();
  s.connections = store_.connections();
  s.connection_tensors = store_.connection_tensors(ctx.conn);
  s.shm_segments = store_.shm().count();
  s.requests = requests_.load();
  s.errors = errors_.load();
  s.queued = blis_queue_->pending() + (opencl_queue_ ? opencl_queue_->pending() : 0);
  s.loop_iterations = loop_iterations_.load();
  s.inline_runs = inline_runs_.load();
  s.program_nodes = program_nodes_.load();
  s.fused_nodes = fused_nodes_.load();
  s.fused_groups = fused_groups_.load();
  return s;
}

void Service::Upload(const RequestContext& ctx, const proto::Upload& req, Reply& reply) {
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

void Service::ShmReply(const RequestContext& ctx, Result<ShmTicket> ticket, bool new_owner, Reply& reply) {
  if (!ticket.ok()) { errors_.fetch_add(1); return reply.Error(ticket.status()); }
  // An owner already gone is answered DOWN at once, and its segments dropped then.
  if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
  reply.Ok([&](TermWriter& w) {
    w.Tuple(3).UInt(ticket->id).Binary(ticket->path).Binary(ticket->tag);
  });
}

void Service::ShmUpload(const RequestContext& ctx, const proto::ShmUpload& req, Reply& reply) {
  if (!store_.shm().Reusable(ctx.conn, req.segment)) {
    auto t = store_.shm().Adopt(ctx.conn, req.segment, req.type, req.shape);
    if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
    return Publish(ctx, std::move(*t), reply);
  }
  // A reusable segment stays writable by the client: its bytes are copied into the tensor now.
  auto t = store_.Allocate(req.type, req.shape);
  if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
  Status s = store_.shm().CopyToTensor(ctx.conn, req.segment, **t);
  if (!s.ok()) { errors_.fetch_add(1); return reply.Error(s); }
  Publish(ctx, std::move(*t), reply);
}

void Service::Publish(const RequestContext& ctx, std::shared_ptr<Tensor> out, Reply& reply) {
  DType type = out->type();
  Shape shape = out->shape();
  bool new_owner = false;
  auto h = store_.Insert(ctx.conn, ctx.owner, std::move(out), &new_owner);
  if (!h.ok()) { errors_.fetch_add(1); return reply.Error(h.status()); }
  if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
  uint64_t handle = *h;
  reply.Ok([&](TermWriter& w) { WriteHandle(w, handle, type, shape); });
}

void Service::Busy(const proto::Busy& req, std::shared_ptr<Reply> reply) {
  uint64_t ms = req.ms;
  Post(*blis_queue_, reply, [this, reply, ms] {
    // Occupies the executor like a long computation would (test-only op).
    auto held = locks_.Hold(Device::kCpu);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    volatile uint64_t spin = 0;  // spin, as real compute would, so the I/O threads compete for CPU
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 10000; ++i) spin = spin + 1;
    }
    reply->Ok([&](TermWriter& w) { w.UInt(ms); });
  });
}

Status Service::RunKernel(const PlannedOp& op, const std::vector<const Tensor*>& ins, Tensor& out) {
  auto held = locks_.Hold(op.device);
  return op.kernel(ins, out);
}

void Service::Compute(const RequestContext& ctx, const ir::Node& node, proto::Placement placement,
                      std::shared_ptr<Reply> reply) {
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
  auto plan = PlanPlaced(node, lookup, executors_, placement, cost_);
  if (!plan.ok()) return fail(plan.status());
  std::vector<std::shared_ptr<Tensor>> held;
  for (uint64_t id : plan->operands) held.push_back(seen.at(id));
  auto out = store_.Allocate(plan->type, plan->shape);
  if (!out.ok()) return fail(out.status());
  if (!plan->parts.empty()) return ComputeTuple(ctx, std::move(*plan), std::move(held), std::move(*out), reply);
  WorkQueue& q = plan->device == Device::kOpenCl ? *opencl_queue_ : *blis_queue_;
  // Tiny work runs here, on the connection's thread, when nothing waits for its device (so the
  // device's order is kept) and the device is free now (never waiting: ticks go on).
  if (RunsInline(*plan, cost_, cfg_.inline_max_us, q.pending())) {
    if (auto held_locks = locks_.TryHold(plan->device)) {
      inline_runs_.fetch_add(1, std::memory_order_relaxed);
      std::vector<const Tensor*> ins;
      for (auto& t : held) ins.push_back(t.get());
      Status st;
      try {  // the work queues' firewall (sched/work_queue.cpp), here too: a kernel never takes a thread down
        st = plan->kernel(ins, **out);
      } catch (const std::exception& e) {
        st = Status::Internal(std::string("the kernel threw: ") + e.what());
      }
      held_locks.reset();
      if (!st.ok()) {
        out->reset();  // released before the caller hears of the failure
        return fail(st);
      }
      return Publish(ctx, std::move(*out), *reply);
    }
  }
  Post(q, reply, [this, ctx, reply, held = std::move(held), plan = std::move(*plan), out = std::move(*out)]() mutable {
    if (reply->Abandoned()) return;  // the connection closed while this waited: nobody to answer
    std::vector<const Tensor*> ins;
    for (auto& t : held) ins.push_back(t.get());
    Status st = RunKernel(plan, ins, *out);
    if (!st.ok()) {
      out.reset();  // released before the caller hears of the failure
      errors_.fetch_add(1);
      return reply->Error(st);
    }
    Publish(ctx, std::move(out), *reply);
  });
}

void Service::ComputeTuple(const RequestContext& ctx, PlannedOp plan, std::vector<std::shared_ptr<Tensor>> held,
                           std::shared_ptr<Tensor> packed, std::shared_ptr<Reply> reply) {
  // Every part is reserved before any work: a request the budget cannot hold fails here.
  std::vector<std::shared_ptr<Tensor>> parts;
  for (const PartInfo& part : plan.parts) {
    auto t = store_.Allocate(part.type, part.shape);
    if (!t.ok()) { errors_.fetch_add(1); return reply->Error(t.status()); }
    parts.push_back(std::move(*t));
  }
  Post(*blis_queue_, reply, [this, ctx, reply, held = std::move(held), plan = std::move(plan),
                             packed = std::move(packed), parts = std::move(parts)]() mutable {
    if (reply->Abandoned()) return;
    std::vector<const Tensor*> ins;
    for (auto& t : held) ins.push_back(t.get());
    Status st = RunKernel(plan, ins, *packed);
    if (!st.ok()) {
      packed.reset();  // released before the caller hears of the failure
      parts.clear();
      errors_.fetch_add(1);
      return reply->Error(st);
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      const uint64_t offset = plan.parts[i].offset, bytes = parts[i]->bytes();
      if (offset > packed->bytes() || bytes > packed->bytes() - offset) {
        errors_.fetch_add(1);
        return reply->Error(Status::Internal("a part lies outside its tuple value"));
      }
      if (bytes) std::memcpy(parts[i]->data(), packed->data() + offset, bytes);
    }
    packed.reset();
    // One handle per part, in order; on a failure the ones made are freed again.
    std::vector<uint64_t> handles;
    for (auto& t : parts) {
      bool new_owner = false;
      auto h = store_.Insert(ctx.conn, ctx.owner, t, &new_owner);
      if (!h.ok()) {
        for (uint64_t made : handles) (void)store_.Free(ctx.conn, made);
        parts.clear();
        errors_.fetch_add(1);
        return reply->Error(h.status());
      }
      if (new_owner && ctx.monitor_owner) ctx.monitor_owner(ctx.owner_pid);
      handles.push_back(*h);
    }
    reply->Ok([&](TermWriter& w) {
      w.List(static_cast<uint32_t>(handles.size()));
      for (size_t i = 0; i < handles.size(); ++i) WriteHandle(w, handles[i], parts[i]->type(), parts[i]->shape());
      w.Nil();
    });
  });
}

void Service::Alloc(const RequestContext& ctx, const proto::Alloc& req, std::shared_ptr<Reply> reply) {
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

void Service::Write(const RequestContext& ctx, const proto::Write& req, Reply& reply) {
  auto t = Range(ctx, req.handle, req.offset, req.data.size());
  if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
  if (!req.data.empty()) std::memcpy((*t)->data() + req.offset, req.data.data(), req.data.size());
  uint64_t n = req.data.size();
  reply.Ok([&](TermWriter& w) { w.UInt(n); });
}

void Service::Read(const RequestContext& ctx, const proto::Read& req, Reply& reply) {
  auto t = Range(ctx, req.handle, req.offset, req.length);
  if (!t.ok()) { errors_.fetch_add(1); return reply.Error(t.status()); }
  if (req.length + 1024 > cfg_.max_message) {
    errors_.fetch_add(1);
    return reply.Error(Status(ErrorKind::kMessageTooLarge, "a read of " + std::to_string(req.length) +
                                                               " bytes exceeds max_message; read smaller pieces"));
  }
  reply.OkTensorBytes(std::move(*t), req.offset, req.length);
}

}  // namespace mure
