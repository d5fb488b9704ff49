#include "sched/planner.h"

#include <algorithm>
#include <cmath>

#include "exec/cpu_ops.h"
#include "exec/opencl_ops.h"
#include "ir/ops.h"

namespace mure {

using proto::Op;

bool IsComputeOp(Op op) {
  switch (op) {
    case Op::kHello: case Op::kDevices: case Op::kStats: case Op::kUpload: case Op::kDownload: case Op::kFree:
    case Op::kBusy: case Op::kProgram: case Op::kAlloc: case Op::kWrite: case Op::kRead:
      return false;
    default:
      return true;
  }
}

namespace {

Result<PlannedOp> PlanKernel(const proto::Request& req, const OperandLookup& lookup, BlisExecutor* blis,
                             OpenClExecutor* opencl, proto::Placement placement) {
  PlannedOp p;
  const bool on_opencl = placement == proto::Placement::kOpenCl;
  if (on_opencl && !opencl) {
    return Status(ErrorKind::kUnsupported, "this node has no OpenCL device (see its log for why); run the op with "
                                           "device :cpu or :auto");
  }
  // Every compute op has OpenCL kernels; {:f, 64} arithmetic on a device without double
  // precision answers :unsupported from the kernel generator, before anything is built.
  if (on_opencl) p.device = Device::kOpenCl;
  ocl::OpenClOps* ops = on_opencl ? &opencl->ops() : nullptr;
  p.operands = proto::Operands(req);  // kernel order: a, then b, then c; joins list theirs
  std::vector<ValueInfo> in;
  for (uint64_t id : p.operands) {
    auto info = lookup(id);
    if (!info.ok()) return info.status();
    in.push_back(std::move(*info));
  }
  p.type = in.empty() ? req.type : in[0].type;
  p.shape = in.empty() ? req.shape : in[0].shape;
  auto unknown = [](const char* family, std::string_view name, const std::string& known) {
    return Status(ErrorKind::kUnknownOp,
                  "unknown " + std::string(family) + " :" + std::string(name.substr(0, 64)) + "; known: " + known);
  };

  switch (req.op) {
    case Op::kMatmul: {
      if (!blis && !ops) {
        return Status(ErrorKind::kUnsupported, "matmul needs the BLIS device, which is disabled on this node");
      }
      const ValueInfo &a = in[0], &b = in[1];
      if (a.type != b.type || (a.type != DType::kF32 && a.type != DType::kF64)) {
        return Status(ErrorKind::kTypeMismatch, "matmul needs two {:f, 32} or two {:f, 64} tensors, got " +
                                                    DTypeToString(a.type) + " and " + DTypeToString(b.type));
      }
      if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[1] != b.shape[0]) {
        return Status(ErrorKind::kShapeMismatch, "matmul of " + ShapeToString(a.shape) + " by " +
                                                     ShapeToString(b.shape) + ": needs {m, k} and {k, n}");
      }
      p.shape = {a.shape[0], b.shape[1]};
      if (ops) {  // the same product through the device's dot kernel
        auto plan = ir::PlanDot(a.shape, {1}, {}, b.shape, {0}, {});
        if (!plan.ok()) return plan.status();
        p.kernel = [ops, plan = std::move(*plan), t = a.type](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Dot(*x[0], *x[1], plan, t, out);
        };
        return p;
      }
      p.kernel = [blis](const std::vector<const Tensor*>& x, Tensor& out) { return blis->Gemm(*x[0], *x[1], out); };
      return p;
    }
    case Op::kAdd:
    case Op::kMultiply: {
      const char* name = req.op == Op::kAdd ? "add" : "multiply";
      if (placement == proto::Placement::kCpu) {  // the same op on the CPU executor
        ir::BinaryOp bop = req.op == Op::kAdd ? ir::BinaryOp::kAdd : ir::BinaryOp::kMultiply;
        auto types = ir::BinaryResultTypes(bop, in[0].type, in[1].type);
        if (!types.ok()) return types.status();
        auto shape = ir::BroadcastShapes(in[0].shape, in[1].shape);
        if (!shape.ok()) return shape.status();
        p.type = types->result;
        p.shape = std::move(*shape);
        p.kernel = [bop, compute = types->compute](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Binary(bop, *x[0], *x[1], compute, out);
        };
        return p;
      }
      if (!opencl) {
        return Status(ErrorKind::kUnsupported, std::string(name) + " runs on the OpenCL device, and this node has none "
                                                                   "(see the node's log for why)");
      }
      if (in[0].type != DType::kF32 || in[1].type != DType::kF32) {
        return Status(ErrorKind::kTypeMismatch, std::string(name) + " on the OpenCL device takes {:f, 32} tensors, got " +
                                                    DTypeToString(in[0].type) + " and " + DTypeToString(in[1].type));
      }
      if (in[0].shape != in[1].shape) {
        return Status(ErrorKind::kShapeMismatch, std::string(name) + " needs equal shapes, got " +
                                                     ShapeToString(in[0].shape) + " and " + ShapeToString(in[1].shape));
      }
      ElementwiseOp op = req.op == Op::kAdd ? ElementwiseOp::kAdd : ElementwiseOp::kMultiply;
      p.device = Device::kOpenCl;
      p.kernel = [opencl, op](const std::vector<const Tensor*>& x, Tensor& out) {
        return opencl->Elementwise(op, *x[0], *x[1], out);
      };
      return p;
    }
    case Op::kUnary: {
      auto op = ir::UnaryFromName(req.name);
      if (!op) return unknown("unary op", req.name, ir::UnaryNames());
      auto t = ir::UnaryResultType(*op, in[0].type);
      if (!t.ok()) return t.status();
      p.type = *t;
      if (ops) {
        p.kernel = [ops, op = *op](const std::vector<const Tensor*>& x, Tensor& out) { return ops->Unary(op, *x[0], out); };
      } else {
        p.kernel = [op = *op](const std::vector<const Tensor*>& x, Tensor& out) { return cpu::Unary(op, *x[0], out); };
      }
      return p;
    }
    case Op::kBinary: {
      auto op = ir::BinaryFromName(req.name);
      if (!op) return unknown("binary op", req.name, ir::BinaryNames());
      auto types = ir::BinaryResultTypes(*op, in[0].type, in[1].type);
      if (!types.ok()) return types.status();
      auto shape = ir::BroadcastShapes(in[0].shape, in[1].shape);
      if (!shape.ok()) return shape.status();
      p.type = types->result;
      p.shape = std::move(*shape);
      if (ops) {
        p.kernel = [ops, op = *op, compute = types->compute](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Binary(op, *x[0], *x[1], compute, out);
        };
      } else {
        p.kernel = [op = *op, compute = types->compute](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Binary(op, *x[0], *x[1], compute, out);
        };
      }
      return p;
    }
    case Op::kReduce: {
      auto op = ir::ReduceFromName(req.name);
      if (!op) return unknown("reduction", req.name, ir::ReduceNames());
      std::vector<int64_t> axes = req.v1;
      if (req.all_axes) {
        axes.clear();
        for (size_t i = 0; i < in[0].shape.size(); ++i) axes.push_back(static_cast<int64_t>(i));
      }
      auto plan = ir::PlanReduce(*op, in[0].type, in[0].shape, axes, req.keep_axes);
      if (!plan.ok()) return plan.status();
      p.type = plan->out_type;
      p.shape = plan->out_shape;
      if (ops) {
        p.kernel = [ops, op = *op, plan = std::move(*plan)](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Reduce(op, *x[0], plan, out);
        };
      } else {
        p.kernel = [op = *op, plan = std::move(*plan)](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Reduce(op, *x[0], plan, out);
        };
      }
      return p;
    }
    case Op::kAsType:
      p.type = req.type;
      if (ops) {
        p.kernel = [ops](const std::vector<const Tensor*>& x, Tensor& out) { return ops->AsType(*x[0], out); };
      } else {
        p.kernel = [](const std::vector<const Tensor*>& x, Tensor& out) { return cpu::AsType(*x[0], out); };
      }
      return p;
    case Op::kBitcast:
      if (DTypeBits(req.type) != DTypeBits(in[0].type)) {
        return Status(ErrorKind::kTypeMismatch, "bitcast needs types of the same width, got " +
                                                    DTypeToString(in[0].type) + " to " + DTypeToString(req.type));
      }
      p.type = req.type;
      if (ops) {
        p.kernel = [ops](const std::vector<const Tensor*>& x, Tensor& out) { return ops->Bitcast(*x[0], out); };
      } else {
        p.kernel = [](const std::vector<const Tensor*>& x, Tensor& out) { return cpu::Bitcast(*x[0], out); };
      }
      return p;
    case Op::kReshape: {
      MURE_RETURN_IF_ERROR(ir::CheckReshape(in[0].shape, req.shape));
      p.shape = req.shape;
      if (ops) {
        p.kernel = [ops](const std::vector<const Tensor*>& x, Tensor& out) { return ops->Bitcast(*x[0], out); };
      } else {
        p.kernel = [](const std::vector<const Tensor*>& x, Tensor& out) { return cpu::Bitcast(*x[0], out); };
      }
      return p;
    }
    case Op::kTranspose: {
      auto shape = ir::TransposeShape(in[0].shape, req.v1);
      if (!shape.ok()) return shape.status();
      p.shape = std::move(*shape);
      if (ops) {
        p.kernel = [ops, perm = req.v1](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Transpose(*x[0], perm, out);
        };
      } else {
        p.kernel = [perm = req.v1](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Transpose(*x[0], perm, out);
        };
      }
      return p;
    }
    case Op::kSlice: {
      auto shape = ir::SliceShape(in[0].shape, req.v1, req.v2, req.v3);
      if (!shape.ok()) return shape.status();
      p.shape = std::move(*shape);
      if (ops) {
        p.kernel = [ops, starts = req.v1, strides = req.v3](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Slice(*x[0], starts, strides, out);
        };
      } else {
        p.kernel = [starts = req.v1, strides = req.v3](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Slice(*x[0], starts, strides, out);
        };
      }
      return p;
    }
    case Op::kTake: {
      auto shape = ir::TakeShape(in[0].shape, in[1].type, in[1].shape, req.axis);
      if (!shape.ok()) return shape.status();
      p.shape = std::move(*shape);
      if (ops) {
        p.kernel = [ops, axis = req.axis](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Take(*x[0], *x[1], axis, out);
        };
      } else {
        p.kernel = [axis = req.axis](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Take(*x[0], *x[1], axis, out);
        };
      }
      return p;
    }
    case Op::kIota:
      if (ops) p.kernel = [ops, axis = req.axis](const std::vector<const Tensor*>&, Tensor& out) { return ops->Iota(out, axis); };
      else p.kernel = [axis = req.axis](const std::vector<const Tensor*>&, Tensor& out) { return cpu::Iota(out, axis); };
      return p;
    case Op::kEye:
      if (req.shape.size() < 2) return Status(ErrorKind::kBadShape, "eye needs a shape of rank 2 or more");
      if (ops) p.kernel = [ops](const std::vector<const Tensor*>&, Tensor& out) { return ops->Eye(out); };
      else p.kernel = [](const std::vector<const Tensor*>&, Tensor& out) { return cpu::Eye(out); };
      return p;
    case Op::kFull:
      if (ops) p.kernel = [ops, v = req.s1](const std::vector<const Tensor*>&, Tensor& out) { return ops->Fill(out, v); };
      else p.kernel = [v = req.s1](const std::vector<const Tensor*>&, Tensor& out) { return cpu::Fill(out, v); };
      return p;
    case Op::kRandomUniform:
    case Op::kRandomNormal: {
      if (!ir::IsFloat(req.type)) {
        return Status(ErrorKind::kTypeMismatch, std::string(proto::OpName(req.op)) + " makes floats; got " +
                                                    DTypeToString(req.type));
      }
      const double p1 = req.s1.AsDouble(), p2 = req.s2.AsDouble();
      const bool uniform = req.op == Op::kRandomUniform;
      if (!std::isfinite(p1) || !std::isfinite(p2) || (uniform ? p2 < p1 : p2 < 0)) {
        return Status::BadArg(uniform ? "random_uniform needs finite min <= max"
                                      : "random_normal needs a finite mean and std >= 0");
      }
      if (ops) {
        p.kernel = [ops, uniform, seed = req.seed, p1, p2](const std::vector<const Tensor*>&, Tensor& out) {
          return uniform ? ops->RandomUniform(out, seed, p1, p2) : ops->RandomNormal(out, seed, p1, p2);
        };
      } else {
        p.kernel = [uniform, seed = req.seed, p1, p2](const std::vector<const Tensor*>&, Tensor& out) {
          return uniform ? cpu::RandomUniform(out, seed, p1, p2) : cpu::RandomNormal(out, seed, p1, p2);
        };
      }
      return p;
    }
    case Op::kSelect:
    case Op::kClip: {
      auto bc = ir::BroadcastShapes(in[1].shape, in[2].shape);
      if (!bc.ok()) return bc.status();
      auto shape = ir::BroadcastShapes(in[0].shape, *bc);
      if (!shape.ok()) return shape.status();
      p.shape = std::move(*shape);
      if (req.op == Op::kSelect) {
        p.type = ir::MergeTypes(in[1].type, in[2].type);
        if (ops) {
          p.kernel = [ops, t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
            return ops->Select(*x[0], *x[1], *x[2], t, out);
          };
        } else {
          p.kernel = [t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
            return cpu::Select(*x[0], *x[1], *x[2], t, out);
          };
        }
      } else {
        p.type = ir::MergeTypes(in[0].type, ir::MergeTypes(in[1].type, in[2].type));
        if (ops) {
          p.kernel = [ops, t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
            return ops->Clip(*x[0], *x[1], *x[2], t, out);
          };
        } else {
          p.kernel = [t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
            return cpu::Clip(*x[0], *x[1], *x[2], t, out);
          };
        }
      }
      return p;
    }
    case Op::kBroadcast: {
      MURE_RETURN_IF_ERROR(ir::CheckBroadcastTo(in[0].shape, req.shape, req.v1));
      p.shape = req.shape;
      if (ops) {
        p.kernel = [ops, axes = req.v1](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->BroadcastTo(*x[0], axes, out);
        };
      } else {
        p.kernel = [axes = req.v1](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::BroadcastTo(*x[0], axes, out);
        };
      }
      return p;
    }
    case Op::kReverse: {
      std::vector<int64_t> axes;
      for (int64_t ax : req.v1) {
        auto n = ir::NormalizeAxis(ax, in[0].shape.size(), "reverse axis");
        if (!n.ok()) return n.status();
        if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(*n)) != axes.end()) {
          return Status::BadArg("reverse axis " + std::to_string(*n) + " is given twice");
        }
        axes.push_back(static_cast<int64_t>(*n));
      }
      if (ops) p.kernel = [ops, axes](const std::vector<const Tensor*>& x, Tensor& out) { return ops->Reverse(*x[0], axes, out); };
      else p.kernel = [axes](const std::vector<const Tensor*>& x, Tensor& out) { return cpu::Reverse(*x[0], axes, out); };
      return p;
    }
    case Op::kPad: {
      auto shape = ir::PadShape(in[0].shape, req.pad);
      if (!shape.ok()) return shape.status();
      p.shape = std::move(*shape);
      if (ops) {
        p.kernel = [ops, v = req.s1, cfg = req.pad](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Pad(*x[0], v, cfg, out);
        };
      } else {
        p.kernel = [v = req.s1, cfg = req.pad](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Pad(*x[0], v, cfg, out);
        };
      }
      return p;
    }
    case Op::kConcatenate:
    case Op::kStack: {
      if (in.empty()) return Status::BadArg(std::string(proto::OpName(req.op)) + " needs at least one tensor");
      std::vector<Shape> shapes;
      for (auto& v : in) shapes.push_back(v.shape);
      const size_t rank = shapes[0].size() + (req.op == Op::kStack ? 1 : 0);
      auto axis = ir::NormalizeAxis(req.axis, rank, "axis");
      if (!axis.ok()) return axis.status();
      if (req.op == Op::kStack) {
        for (auto& s : shapes) {
          if (s.size() + 1 != rank) {
            return Status(ErrorKind::kShapeMismatch, "stack needs tensors of one rank; got " +
                                                         std::to_string(s.size()) + " and " + std::to_string(rank - 1));
          }
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(*axis), 1);
        }
      }
      auto shape = ir::ConcatShape(shapes, *axis);
      if (!shape.ok()) return shape.status();
      p.type = in[0].type;
      for (auto& v : in) p.type = ir::MergeTypes(p.type, v.type);
      p.shape = std::move(*shape);
      if (ops) {
        p.kernel = [ops, shapes, ax = *axis](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Concatenate(x, shapes, ax, out);
        };
      } else {
        p.kernel = [shapes, ax = *axis](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Concatenate(x, shapes, ax, out);
        };
      }
      return p;
    }
    case Op::kPutSlice: {
      MURE_RETURN_IF_ERROR(ir::CheckPutSlice(in[0].shape, req.v1, in[1].shape));
      p.type = ir::MergeTypes(in[0].type, in[1].type);
      if (ops) {
        p.kernel = [ops, starts = req.v1](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->PutSlice(*x[0], starts, *x[1], out);
        };
      } else {
        p.kernel = [starts = req.v1](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::PutSlice(*x[0], starts, *x[1], out);
        };
      }
      return p;
    }
    case Op::kGather: {
      auto shape = ir::GatherShape(in[0].shape, in[1].type, in[1].shape);
      if (!shape.ok()) return shape.status();
      p.shape = std::move(*shape);
      if (ops) p.kernel = [ops](const std::vector<const Tensor*>& x, Tensor& out) { return ops->Gather(*x[0], *x[1], out); };
      else p.kernel = [](const std::vector<const Tensor*>& x, Tensor& out) { return cpu::Gather(*x[0], *x[1], out); };
      return p;
    }
    case Op::kSort:
    case Op::kArgsort: {
      auto axis = ir::NormalizeAxis(req.axis, in[0].shape.size(), "sort axis");
      if (!axis.ok()) return axis.status();
      const bool arg = req.op == Op::kArgsort;
      if (arg) p.type = DType::kS64;
      if (ops) {
        p.kernel = [ops, ax = *axis, desc = req.descending, arg](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Sort(*x[0], ax, desc, arg, out);
        };
      } else {
        p.kernel = [ax = *axis, desc = req.descending, arg](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Sort(*x[0], ax, desc, arg, out);
        };
      }
      return p;
    }
    case Op::kDot: {
      auto plan = ir::PlanDot(in[0].shape, req.v1, req.v2, in[1].shape, req.v3, req.v4);
      if (!plan.ok()) return plan.status();
      p.type = ir::MergeTypes(in[0].type, in[1].type);
      p.shape = plan->out_shape;
      cpu::GemmFn gemm;
      if (blis) {
        gemm = [blis](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
          return blis->GemmRaw(t, m, n, k, x, y, z);
        };
      }
      if (ops) {
        p.kernel = [ops, plan = std::move(*plan), t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Dot(*x[0], *x[1], plan, t, out);
        };
      } else {
        p.kernel = [plan = std::move(*plan), t = p.type, gemm](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Dot(*x[0], *x[1], plan, t, gemm, out);
        };
      }
      return p;
    }
    case Op::kOuter: {
      p.type = ir::MergeTypes(in[0].type, in[1].type);
      p.shape = in[0].shape;
      p.shape.insert(p.shape.end(), in[1].shape.begin(), in[1].shape.end());
      if (p.shape.size() > kMaxDims) return Status(ErrorKind::kBadShape, "outer's result would have more than 16 dims");
      if (ops) {
        p.kernel = [ops, t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
          return ops->Outer(*x[0], *x[1], t, out);
        };
      } else {
        p.kernel = [t = p.type](const std::vector<const Tensor*>& x, Tensor& out) {
          return cpu::Outer(*x[0], *x[1], t, out);
        };
      }
      return p;
    }
    default:
      return Status::Internal("not a compute op: " + std::string(proto::OpName(req.op)));
  }
}

}  // namespace

Result<PlannedOp> PlanOp(const proto::Request& req, const OperandLookup& lookup, BlisExecutor* blis,
                         OpenClExecutor* opencl, proto::Placement placement) {
  auto p = PlanKernel(req, lookup, blis, opencl, placement);
  if (!p.ok()) return p;
  // Every result passes the shape rule (types.h) before a kernel is bound to it, whatever rule
  // made the shape, so the kernels' own sub-products of its dims cannot wrap.
  auto bytes = ByteSize(p->type, p->shape);
  if (!bytes.ok()) return bytes.status();
  // Work is bounded by what the request really costs, and an empty result costs nothing: no
  // kernel runs for it, on either executor, whatever the operands' dims ({2^33, 0} has 2^33
  // empty rows that a kernel would otherwise walk one by one, holding the CPU for minutes).
  // Kernels whose result is not empty loop over that result, never over empty rows of their
  // operands (pad of an empty tensor, a reduction over an empty axis, dot with k = 0).
  // take is the exception: its indices are data and are range-checked even when the result is
  // empty, as before (that walk is bounded by the indices' real bytes; cpu::Take returns after it).
  if (*ElementCount(p->shape) == 0 && req.op != Op::kTake) {
    p->kernel = [](const std::vector<const Tensor*>&, Tensor&) { return Status::Ok(); };
  }
  return p;
}

Result<PlannedOp> PlanPlaced(const proto::Request& req, const OperandLookup& lookup, BlisExecutor* blis,
                             OpenClExecutor* opencl, proto::Placement placement, const CostModel& cost) {
  auto plan = PlanOp(req, lookup, blis, opencl, placement);
  if (placement != proto::Placement::kAuto || !plan.ok() || !opencl || plan->device == Device::kOpenCl) return plan;
  // Only memory-bound elementwise work is worth moving by its measured bandwidth; products stay
  // on BLIS, and reductions, sorts and shape ops on the CPU executor.
  switch (req.op) {
    case Op::kUnary: case Op::kBinary: case Op::kSelect: case Op::kClip: case Op::kAsType:
      break;
    default:
      return plan;
  }
  auto elements = ElementCount(plan->shape);
  if (!elements.ok() || *elements < cost.opencl_min_elements || cost.opencl_gbps <= 1.5 * cost.cpu_gbps) return plan;
  auto there = PlanOp(req, lookup, blis, opencl, proto::Placement::kOpenCl);
  return there.ok() ? there : plan;
}

}  // namespace mure
