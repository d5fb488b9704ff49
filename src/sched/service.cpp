#include "sched/service.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "common/log.h"
#include "exec/cpu_ops.h"
#include "ir/ops.h"

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
    case Op::kMatmul: return Matmul(ctx, req, std::move(reply));
    case Op::kAdd:
    case Op::kMultiply: return Elementwise(ctx, req, std::move(reply));
    case Op::kBusy: return Busy(req, std::move(reply));
    case Op::kUnary: case Op::kBinary: case Op::kReduce: case Op::kAsType: case Op::kBitcast:
    case Op::kReshape: case Op::kTranspose: case Op::kSlice: case Op::kTake:
      return CpuOp(ctx, req, std::move(reply));
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
    w.Map(9);
    w.Atom("id").Atom("blis");
    w.Atom("kind").Atom("blas");
    w.Atom("name").Binary("BLIS " + b.version + " (" + b.arch + ")");
    w.Atom("arch").Binary(b.arch);
    w.Atom("arch_reason").Binary(b.reason);
    w.Atom("threads").UInt(b.threads);
    w.Atom("cpu").Binary(b.cpu.brand.empty() ? b.cpu.vendor : b.cpu.brand);
    w.Atom("cpu_features").Binary(b.cpu.Describe());
    w.Atom("queued").UInt(blis_queue_->pending());
  }
  if (opencl_) {
    const OpenClInfo& o = opencl_->info();
    w.Map(10);
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
  }
  w.Nil();
}

void Service::Stats(const RequestContext& ctx, Reply& reply) const {
  reply.Ok([&](TermWriter& w) {
    w.Map(10);
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

void Service::Matmul(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  auto fail = [&](const Status& s) { errors_.fetch_add(1); reply->Error(s); };
  if (!blis_) return fail(Status(ErrorKind::kUnsupported, "matmul needs the BLIS device, which is disabled on this node"));
  auto a = store_.Get(ctx.conn, req.a);
  if (!a.ok()) return fail(a.status());
  auto b = store_.Get(ctx.conn, req.b);
  if (!b.ok()) return fail(b.status());
  Status check = BlisExecutor::CheckGemm(**a, **b);
  if (!check.ok()) return fail(check);
  auto out = store_.Allocate((*a)->type(), Shape{(*a)->shape()[0], (*b)->shape()[1]});
  if (!out.ok()) return fail(out.status());
  Post(*blis_queue_, reply, [this, ctx, reply, a = std::move(*a), b = std::move(*b), out = std::move(*out)]() mutable {
    Status s;
    {
      std::lock_guard<std::mutex> gate(cpu_gate_);
      s = blis_->Gemm(*a, *b, *out);
    }
    if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
    Publish(ctx, std::move(out), *reply);
  });
}

void Service::Elementwise(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  auto fail = [&](const Status& s) { errors_.fetch_add(1); reply->Error(s); };
  const char* name = req.op == Op::kAdd ? "add" : "multiply";
  if (!opencl_) {
    return fail(Status(ErrorKind::kUnsupported, std::string(name) + " runs on the OpenCL device, and this node has "
                                                                    "none (see the node's log for why)"));
  }
  auto a = store_.Get(ctx.conn, req.a);
  if (!a.ok()) return fail(a.status());
  auto b = store_.Get(ctx.conn, req.b);
  if (!b.ok()) return fail(b.status());
  ElementwiseOp op = req.op == Op::kAdd ? ElementwiseOp::kAdd : ElementwiseOp::kMultiply;
  Status check = OpenClExecutor::CheckElementwise(op, **a, **b);
  if (!check.ok()) return fail(check);
  auto out = store_.Allocate((*a)->type(), (*a)->shape());
  if (!out.ok()) return fail(out.status());
  Post(*opencl_queue_, reply,
       [this, ctx, reply, op, a = std::move(*a), b = std::move(*b), out = std::move(*out)]() mutable {
         Status s;
         if (opencl_->is_cpu()) {
           std::lock_guard<std::mutex> gate(cpu_gate_);
           s = opencl_->Elementwise(op, *a, *b, *out);
         } else {
           s = opencl_->Elementwise(op, *a, *b, *out);
         }
         if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
         Publish(ctx, std::move(out), *reply);
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

void Service::CpuOp(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) {
  auto fail = [&](const Status& s) { errors_.fetch_add(1); reply->Error(s); };
  auto a = store_.Get(ctx.conn, req.a);
  if (!a.ok()) return fail(a.status());
  const Tensor& in = **a;
  std::shared_ptr<Tensor> b;  // second operand (binary, take)
  if (req.op == Op::kBinary || req.op == Op::kTake) {
    auto bb = store_.Get(ctx.conn, req.b);
    if (!bb.ok()) return fail(bb.status());
    b = std::move(*bb);
  }
  // Validate and plan: every check happens here, before anything is allocated.
  DType out_type = in.type();
  Shape out_shape = in.shape();
  std::function<Status(const Tensor&, Tensor&)> kernel;
  switch (req.op) {
    case Op::kUnary: {
      auto op = ir::UnaryFromName(req.name);
      if (!op) return fail(Status(ErrorKind::kUnknownOp, "unknown unary op :" + std::string(req.name.substr(0, 64)) +
                                                             "; unary ops: " + ir::UnaryNames()));
      auto t = ir::UnaryResultType(*op, in.type());
      if (!t.ok()) return fail(t.status());
      out_type = *t;
      kernel = [op = *op](const Tensor& x, Tensor& out) { return cpu::Unary(op, x, out); };
      break;
    }
    case Op::kBinary: {
      auto op = ir::BinaryFromName(req.name);
      if (!op) return fail(Status(ErrorKind::kUnknownOp, "unknown binary op :" + std::string(req.name.substr(0, 64)) +
                                                             "; binary ops: " + ir::BinaryNames()));
      auto types = ir::BinaryResultTypes(*op, in.type(), b->type());
      if (!types.ok()) return fail(types.status());
      auto shape = ir::BroadcastShapes(in.shape(), b->shape());
      if (!shape.ok()) return fail(shape.status());
      out_type = types->result;
      out_shape = std::move(*shape);
      kernel = [op = *op, b, compute = types->compute](const Tensor& x, Tensor& out) {
        return cpu::Binary(op, x, *b, compute, out);
      };
      break;
    }
    case Op::kReduce: {
      auto op = ir::ReduceFromName(req.name);
      if (!op) return fail(Status(ErrorKind::kUnknownOp, "unknown reduction :" + std::string(req.name.substr(0, 64)) +
                                                             "; reductions: " + ir::ReduceNames()));
      std::vector<int64_t> axes = req.v1;
      if (req.all_axes) {
        axes.clear();
        for (size_t i = 0; i < in.shape().size(); ++i) axes.push_back(static_cast<int64_t>(i));
      }
      auto plan = ir::PlanReduce(*op, in.type(), in.shape(), axes, req.keep_axes);
      if (!plan.ok()) return fail(plan.status());
      out_type = plan->out_type;
      out_shape = plan->out_shape;
      kernel = [op = *op, plan = std::move(*plan)](const Tensor& x, Tensor& out) {
        return cpu::Reduce(op, x, plan, out);
      };
      break;
    }
    case Op::kAsType:
      out_type = req.type;
      kernel = [](const Tensor& x, Tensor& out) { return cpu::AsType(x, out); };
      break;
    case Op::kBitcast:
      if (DTypeBits(req.type) != DTypeBits(in.type())) {
        return fail(Status(ErrorKind::kTypeMismatch, "bitcast needs types of the same width, got " +
                                                         DTypeToString(in.type()) + " to " + DTypeToString(req.type)));
      }
      out_type = req.type;
      kernel = [](const Tensor& x, Tensor& out) { return cpu::Bitcast(x, out); };
      break;
    case Op::kReshape: {
      Status s = ir::CheckReshape(in.shape(), req.shape);
      if (!s.ok()) return fail(s);
      out_shape = req.shape;
      kernel = [](const Tensor& x, Tensor& out) { return cpu::Bitcast(x, out); };
      break;
    }
    case Op::kTranspose: {
      auto shape = ir::TransposeShape(in.shape(), req.v1);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [perm = req.v1](const Tensor& x, Tensor& out) { return cpu::Transpose(x, perm, out); };
      break;
    }
    case Op::kSlice: {
      auto shape = ir::SliceShape(in.shape(), req.v1, req.v2, req.v3);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [starts = req.v1, strides = req.v3](const Tensor& x, Tensor& out) {
        return cpu::Slice(x, starts, strides, out);
      };
      break;
    }
    case Op::kTake: {
      auto shape = ir::TakeShape(in.shape(), b->type(), b->shape(), req.axis);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [b, axis = req.axis](const Tensor& x, Tensor& out) { return cpu::Take(x, *b, axis, out); };
      break;
    }
    default:
      return fail(Status::Internal("not a CPU op"));
  }
  auto out = store_.Allocate(out_type, out_shape);
  if (!out.ok()) return fail(out.status());
  Post(*blis_queue_, reply,
       [this, ctx, reply, a = std::move(*a), out = std::move(*out), kernel = std::move(kernel)]() mutable {
         Status s;
         {
           std::lock_guard<std::mutex> gate(cpu_gate_);
           s = kernel(*a, *out);
         }
         if (!s.ok()) { errors_.fetch_add(1); return reply->Error(s); }
         Publish(ctx, std::move(out), *reply);
       });
}

}  // namespace mure
