#include "sched/service.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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
    default:  // the op set
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
  auto fail = [&](const Status& st) { errors_.fetch_add(1); reply->Error(st); };
  auto get = [&](uint64_t h) { return store_.Get(ctx.conn, h); };
  // Operands, by the request's handles.
  std::shared_ptr<Tensor> a, b, c;
  const bool creation = req.op == Op::kIota || req.op == Op::kEye || req.op == Op::kFull ||
                        req.op == Op::kRandomUniform || req.op == Op::kRandomNormal;
  const bool multi = req.op == Op::kConcatenate || req.op == Op::kStack;
  if (!creation && !multi) {
    auto x = get(req.a);
    if (!x.ok()) return fail(x.status());
    a = std::move(*x);
  }
  if (req.b) {
    auto x = get(req.b);
    if (!x.ok()) return fail(x.status());
    b = std::move(*x);
  }
  if (req.c) {
    auto x = get(req.c);
    if (!x.ok()) return fail(x.status());
    c = std::move(*x);
  }
  // Validate and plan: every check happens here, before anything is allocated.
  DType out_type = a ? a->type() : req.type;
  Shape out_shape = a ? a->shape() : req.shape;
  std::function<Status(Tensor&)> kernel;
  switch (req.op) {
    case Op::kUnary: {
      auto op = ir::UnaryFromName(req.name);
      if (!op) return fail(Status(ErrorKind::kUnknownOp, "unknown unary op :" + std::string(req.name.substr(0, 64)) +
                                                             "; unary ops: " + ir::UnaryNames()));
      auto t = ir::UnaryResultType(*op, a->type());
      if (!t.ok()) return fail(t.status());
      out_type = *t;
      kernel = [op = *op, a](Tensor& out) { return cpu::Unary(op, *a, out); };
      break;
    }
    case Op::kBinary: {
      auto op = ir::BinaryFromName(req.name);
      if (!op) return fail(Status(ErrorKind::kUnknownOp, "unknown binary op :" + std::string(req.name.substr(0, 64)) +
                                                             "; binary ops: " + ir::BinaryNames()));
      auto types = ir::BinaryResultTypes(*op, a->type(), b->type());
      if (!types.ok()) return fail(types.status());
      auto shape = ir::BroadcastShapes(a->shape(), b->shape());
      if (!shape.ok()) return fail(shape.status());
      out_type = types->result;
      out_shape = std::move(*shape);
      kernel = [op = *op, a, b, compute = types->compute](Tensor& out) { return cpu::Binary(op, *a, *b, compute, out); };
      break;
    }
    case Op::kReduce: {
      auto op = ir::ReduceFromName(req.name);
      if (!op) return fail(Status(ErrorKind::kUnknownOp, "unknown reduction :" + std::string(req.name.substr(0, 64)) +
                                                             "; reductions: " + ir::ReduceNames()));
      std::vector<int64_t> axes = req.v1;
      if (req.all_axes) {
        axes.clear();
        for (size_t i = 0; i < a->shape().size(); ++i) axes.push_back(static_cast<int64_t>(i));
      }
      auto plan = ir::PlanReduce(*op, a->type(), a->shape(), axes, req.keep_axes);
      if (!plan.ok()) return fail(plan.status());
      out_type = plan->out_type;
      out_shape = plan->out_shape;
      kernel = [op = *op, a, plan = std::move(*plan)](Tensor& out) { return cpu::Reduce(op, *a, plan, out); };
      break;
    }
    case Op::kAsType:
      out_type = req.type;
      kernel = [a](Tensor& out) { return cpu::AsType(*a, out); };
      break;
    case Op::kBitcast:
      if (DTypeBits(req.type) != DTypeBits(a->type())) {
        return fail(Status(ErrorKind::kTypeMismatch, "bitcast needs types of the same width, got " +
                                                         DTypeToString(a->type()) + " to " + DTypeToString(req.type)));
      }
      out_type = req.type;
      kernel = [a](Tensor& out) { return cpu::Bitcast(*a, out); };
      break;
    case Op::kReshape: {
      Status st = ir::CheckReshape(a->shape(), req.shape);
      if (!st.ok()) return fail(st);
      out_shape = req.shape;
      kernel = [a](Tensor& out) { return cpu::Bitcast(*a, out); };
      break;
    }
    case Op::kTranspose: {
      auto shape = ir::TransposeShape(a->shape(), req.v1);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [a, perm = req.v1](Tensor& out) { return cpu::Transpose(*a, perm, out); };
      break;
    }
    case Op::kSlice: {
      auto shape = ir::SliceShape(a->shape(), req.v1, req.v2, req.v3);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [a, starts = req.v1, strides = req.v3](Tensor& out) { return cpu::Slice(*a, starts, strides, out); };
      break;
    }
    case Op::kTake: {
      auto shape = ir::TakeShape(a->shape(), b->type(), b->shape(), req.axis);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [a, b, axis = req.axis](Tensor& out) { return cpu::Take(*a, *b, axis, out); };
      break;
    }
    case Op::kIota:
      kernel = [axis = req.axis](Tensor& out) { return cpu::Iota(out, axis); };
      break;
    case Op::kEye:
      if (req.shape.size() < 2) return fail(Status(ErrorKind::kBadShape, "eye needs a shape of rank 2 or more"));
      kernel = [](Tensor& out) { return cpu::Eye(out); };
      break;
    case Op::kFull:
      kernel = [v = req.s1](Tensor& out) { return cpu::Fill(out, v); };
      break;
    case Op::kRandomUniform:
    case Op::kRandomNormal: {
      if (!ir::IsFloat(req.type)) {
        return fail(Status(ErrorKind::kTypeMismatch, std::string(proto::OpName(req.op)) + " makes floats; got " +
                                                         DTypeToString(req.type)));
      }
      double p1 = req.s1.AsDouble(), p2 = req.s2.AsDouble();
      if (!std::isfinite(p1) || !std::isfinite(p2) || (req.op == Op::kRandomUniform ? p2 < p1 : p2 < 0)) {
        return fail(Status::BadArg(req.op == Op::kRandomUniform ? "random_uniform needs finite min <= max"
                                                                : "random_normal needs a finite mean and std >= 0"));
      }
      bool uniform = req.op == Op::kRandomUniform;
      kernel = [uniform, seed = req.seed, p1, p2](Tensor& out) {
        return uniform ? cpu::RandomUniform(out, seed, p1, p2) : cpu::RandomNormal(out, seed, p1, p2);
      };
      break;
    }
    case Op::kSelect: {
      auto ab = ir::BroadcastShapes(b->shape(), c->shape());
      if (!ab.ok()) return fail(ab.status());
      auto shape = ir::BroadcastShapes(a->shape(), *ab);
      if (!shape.ok()) return fail(shape.status());
      out_type = ir::MergeTypes(b->type(), c->type());
      out_shape = std::move(*shape);
      kernel = [a, b, c, t = out_type](Tensor& out) { return cpu::Select(*a, *b, *c, t, out); };
      break;
    }
    case Op::kClip: {
      auto lh = ir::BroadcastShapes(b->shape(), c->shape());
      if (!lh.ok()) return fail(lh.status());
      auto shape = ir::BroadcastShapes(a->shape(), *lh);
      if (!shape.ok()) return fail(shape.status());
      out_type = ir::MergeTypes(a->type(), ir::MergeTypes(b->type(), c->type()));
      out_shape = std::move(*shape);
      kernel = [a, b, c, t = out_type](Tensor& out) { return cpu::Clip(*a, *b, *c, t, out); };
      break;
    }
    case Op::kBroadcast: {
      Status st = ir::CheckBroadcastTo(a->shape(), req.shape, req.v1);
      if (!st.ok()) return fail(st);
      out_shape = req.shape;
      kernel = [a, axes = req.v1](Tensor& out) { return cpu::BroadcastTo(*a, axes, out); };
      break;
    }
    case Op::kReverse: {
      std::vector<int64_t> axes;
      for (int64_t ax : req.v1) {
        auto n = ir::NormalizeAxis(ax, a->shape().size(), "reverse axis");
        if (!n.ok()) return fail(n.status());
        if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(*n)) != axes.end()) {
          return fail(Status::BadArg("reverse axis " + std::to_string(*n) + " is given twice"));
        }
        axes.push_back(static_cast<int64_t>(*n));
      }
      kernel = [a, axes](Tensor& out) { return cpu::Reverse(*a, axes, out); };
      break;
    }
    case Op::kPad: {
      auto shape = ir::PadShape(a->shape(), req.pad);
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [a, v = req.s1, cfg = req.pad](Tensor& out) { return cpu::Pad(*a, v, cfg, out); };
      break;
    }
    case Op::kConcatenate:
    case Op::kStack: {
      std::vector<std::shared_ptr<Tensor>> ins;
      std::vector<Shape> shapes;
      for (uint64_t h : req.handles) {
        auto x = get(h);
        if (!x.ok()) return fail(x.status());
        shapes.push_back((*x)->shape());
        ins.push_back(std::move(*x));
      }
      const size_t rank = shapes[0].size() + (req.op == Op::kStack ? 1 : 0);
      auto axis = ir::NormalizeAxis(req.axis, rank, "axis");
      if (!axis.ok()) return fail(axis.status());
      if (req.op == Op::kStack) {
        for (auto& s : shapes) {
          if (s.size() + 1 != rank) {
            return fail(Status(ErrorKind::kShapeMismatch, "stack needs tensors of one shape; got ranks " +
                                                              std::to_string(s.size()) + " and " +
                                                              std::to_string(rank - 1)));
          }
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(*axis), 1);
        }
      }
      auto shape = ir::ConcatShape(shapes, *axis);
      if (!shape.ok()) return fail(shape.status());
      out_type = ins[0]->type();
      for (auto& x : ins) out_type = ir::MergeTypes(out_type, x->type());
      out_shape = std::move(*shape);
      kernel = [ins, shapes, ax = *axis](Tensor& out) {
        std::vector<const Tensor*> raw;
        for (auto& x : ins) raw.push_back(x.get());
        return cpu::Concatenate(raw, shapes, ax, out);
      };
      break;
    }
    case Op::kPutSlice: {
      Status st = ir::CheckPutSlice(a->shape(), req.v1, b->shape());
      if (!st.ok()) return fail(st);
      out_type = ir::MergeTypes(a->type(), b->type());
      kernel = [a, b, starts = req.v1](Tensor& out) { return cpu::PutSlice(*a, starts, *b, out); };
      break;
    }
    case Op::kGather: {
      auto shape = ir::GatherShape(a->shape(), b->type(), b->shape());
      if (!shape.ok()) return fail(shape.status());
      out_shape = std::move(*shape);
      kernel = [a, b](Tensor& out) { return cpu::Gather(*a, *b, out); };
      break;
    }
    case Op::kSort:
    case Op::kArgsort: {
      auto axis = ir::NormalizeAxis(req.axis, a->shape().size(), "sort axis");
      if (!axis.ok()) return fail(axis.status());
      bool arg = req.op == Op::kArgsort;
      if (arg) out_type = DType::kS64;
      kernel = [a, ax = *axis, desc = req.descending, arg](Tensor& out) { return cpu::Sort(*a, ax, desc, arg, out); };
      break;
    }
    case Op::kDot: {
      auto plan = ir::PlanDot(a->shape(), req.v1, req.v2, b->shape(), req.v3, req.v4);
      if (!plan.ok()) return fail(plan.status());
      out_type = ir::MergeTypes(a->type(), b->type());
      out_shape = plan->out_shape;
      cpu::GemmFn gemm;
      if (blis_) {
        gemm = [blis = blis_](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
          return blis->GemmRaw(t, m, n, k, x, y, z);
        };
      }
      kernel = [a, b, plan = std::move(*plan), t = out_type, gemm](Tensor& out) {
        return cpu::Dot(*a, *b, plan, t, gemm, out);
      };
      break;
    }
    case Op::kOuter: {
      out_type = ir::MergeTypes(a->type(), b->type());
      out_shape = a->shape();
      out_shape.insert(out_shape.end(), b->shape().begin(), b->shape().end());
      if (out_shape.size() > kMaxDims) return fail(Status(ErrorKind::kBadShape, "outer's result would have more than 16 dims"));
      kernel = [a, b, t = out_type](Tensor& out) { return cpu::Outer(*a, *b, t, out); };
      break;
    }
    default:
      return fail(Status::Internal("not a CPU op"));
  }
  auto out = store_.Allocate(out_type, out_shape);
  if (!out.ok()) return fail(out.status());
  Post(*blis_queue_, reply, [this, ctx, reply, out = std::move(*out), kernel = std::move(kernel)]() mutable {
    Status st;
    {
      std::lock_guard<std::mutex> gate(cpu_gate_);
      st = kernel(*out);
    }
    if (!st.ok()) { errors_.fetch_add(1); return reply->Error(st); }
    Publish(ctx, std::move(out), *reply);
  });
}

}  // namespace mure
