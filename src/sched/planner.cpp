#include "sched/planner.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "exec/cpu_executor.h"
#include "exec/cpu_ops.h"
#include "ir/ops.h"
#include "ir/window.h"

namespace mure {

namespace {

using Ins = std::vector<const Tensor*>;
/// The op's kernel on whichever executor the node is bound to.
using Run = std::function<Status(exec::Executor& ex, const Ins& x, Tensor& out)>;

/// A validated node: its result and how any executor computes it.
struct Checked {
  DType type = DType::kF32;
  Shape shape;
  Run run;
  std::vector<PartInfo> parts;  ///< a tuple result's parts
};

Status Unknown(const char* family, std::string_view name, const std::string& known) {
  return Status(ErrorKind::kUnknownOp,
                "unknown " + std::string(family) + " :" + std::string(name.substr(0, 64)) + "; known: " + known);
}

/// The documented contract of protocol v1's first ops, kept for their requests: matmul of two
/// {:f, 32} or two {:f, 64} matrices, add and multiply of {:f, 32} tensors of one shape.
Status CheckLegacy(ir::Legacy legacy, const ValueInfo& a, const ValueInfo& b) {
  if (legacy == ir::Legacy::kMatmul) {
    if (a.type != b.type || (a.type != DType::kF32 && a.type != DType::kF64)) {
      return Status(ErrorKind::kTypeMismatch, "matmul needs two {:f, 32} or two {:f, 64} tensors, got " +
                                                  DTypeToString(a.type) + " and " + DTypeToString(b.type));
    }
    if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[1] != b.shape[0]) {
      return Status(ErrorKind::kShapeMismatch, "matmul of " + ShapeToString(a.shape) + " by " +
                                                   ShapeToString(b.shape) + ": needs {m, k} and {k, n}");
    }
    return Status::Ok();
  }
  const std::string name = legacy == ir::Legacy::kAdd ? "add" : "multiply";
  if (a.type != DType::kF32 || b.type != DType::kF32) {
    return Status(ErrorKind::kTypeMismatch, name + " on the OpenCL device takes {:f, 32} tensors, got " +
                                                DTypeToString(a.type) + " and " + DTypeToString(b.type));
  }
  if (a.shape != b.shape) {
    return Status(ErrorKind::kShapeMismatch,
                  name + " needs equal shapes, got " + ShapeToString(a.shape) + " and " + ShapeToString(b.shape));
  }
  return Status::Ok();
}

/// Validation: the result of each node from its operands (`in`, kernel order). Pure.
struct Check {
  const std::vector<ValueInfo>& in;
  ir::Placement placement;

  Checked Same(Run run) const { return Checked{in[0].type, in[0].shape, std::move(run)}; }

  Result<Checked> operator()(const ir::Unary& n) const {
    if (!n.op) return Unknown("unary op", n.name, ir::UnaryNames());
    auto t = ir::UnaryResultType(*n.op, in[0].type);
    if (!t.ok()) return t.status();
    return Checked{*t, in[0].shape, [op = *n.op](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Unary(op, *x[0], out);
                   }};
  }
  Result<Checked> operator()(const ir::Binary& n) const {
    // The legacy requests keep their contract on the device they were documented for.
    if (n.legacy != ir::Legacy::kNone && placement != ir::Placement::kCpu) {
      MURE_RETURN_IF_ERROR(CheckLegacy(n.legacy, in[0], in[1]));
    }
    if (!n.op) return Unknown("binary op", n.name, ir::BinaryNames());
    auto types = ir::BinaryResultTypes(*n.op, in[0].type, in[1].type);
    if (!types.ok()) return types.status();
    auto shape = ir::BroadcastShapes(in[0].shape, in[1].shape);
    if (!shape.ok()) return shape.status();
    return Checked{types->result, std::move(*shape),
                   [op = *n.op, compute = types->compute](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Binary(op, *x[0], *x[1], compute, out);
                   }};
  }
  Result<Checked> operator()(const ir::Reduce& n) const {
    if (!n.op) return Unknown("reduction", n.name, ir::ReduceNames());
    std::vector<int64_t> axes = n.axes;
    if (n.all_axes) {
      axes.clear();
      for (size_t i = 0; i < in[0].shape.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    auto plan = ir::PlanReduce(*n.op, in[0].type, in[0].shape, axes, n.keep_axes);
    if (!plan.ok()) return plan.status();
    Checked c{plan->out_type, plan->out_shape, {}};
    c.run = [op = *n.op, plan = std::move(*plan)](exec::Executor& e, const Ins& x, Tensor& out) {
      return e.Reduce(op, *x[0], plan, out);
    };
    return c;
  }
  Result<Checked> operator()(const ir::AsType& n) const {
    return Checked{n.type, in[0].shape, [](exec::Executor& e, const Ins& x, Tensor& out) { return e.AsType(*x[0], out); }};
  }
  Result<Checked> operator()(const ir::Bitcast& n) const {
    if (DTypeBits(n.type) != DTypeBits(in[0].type)) {
      return Status(ErrorKind::kTypeMismatch, "bitcast needs types of the same width, got " +
                                                  DTypeToString(in[0].type) + " to " + DTypeToString(n.type));
    }
    return Checked{n.type, in[0].shape, [](exec::Executor& e, const Ins& x, Tensor& out) { return e.Bitcast(*x[0], out); }};
  }
  Result<Checked> operator()(const ir::Reshape& n) const {
    MURE_RETURN_IF_ERROR(ir::CheckReshape(in[0].shape, n.shape));
    return Checked{in[0].type, n.shape, [](exec::Executor& e, const Ins& x, Tensor& out) { return e.Bitcast(*x[0], out); }};
  }
  Result<Checked> operator()(const ir::Transpose& n) const {
    auto shape = ir::TransposeShape(in[0].shape, n.axes);
    if (!shape.ok()) return shape.status();
    return Checked{in[0].type, std::move(*shape), [perm = n.axes](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Transpose(*x[0], perm, out);
                   }};
  }
  Result<Checked> operator()(const ir::Slice& n) const {
    auto shape = ir::SliceShape(in[0].shape, n.starts, n.lengths, n.strides);
    if (!shape.ok()) return shape.status();
    return Checked{in[0].type, std::move(*shape),
                   [starts = n.starts, strides = n.strides](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Slice(*x[0], starts, strides, out);
                   }};
  }
  Result<Checked> operator()(const ir::Take& n) const {
    auto shape = ir::TakeShape(in[0].shape, in[1].type, in[1].shape, n.axis);
    if (!shape.ok()) return shape.status();
    return Checked{in[0].type, std::move(*shape), [axis = n.axis](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Take(*x[0], *x[1], axis, out);
                   }};
  }
  Result<Checked> operator()(const ir::Iota& n) const {
    return Checked{n.type, n.shape, [axis = n.axis](exec::Executor& e, const Ins&, Tensor& out) { return e.Iota(out, axis); }};
  }
  Result<Checked> operator()(const ir::Eye& n) const {
    if (n.shape.size() < 2) return Status(ErrorKind::kBadShape, "eye needs a shape of rank 2 or more");
    return Checked{n.type, n.shape, [](exec::Executor& e, const Ins&, Tensor& out) { return e.Eye(out); }};
  }
  Result<Checked> operator()(const ir::Full& n) const {
    if (n.value.im != 0 && !ir::IsComplex(n.type)) {
      return Status::BadArg("full: a complex value {re, im} needs a complex type, got " + DTypeToString(n.type));
    }
    return Checked{n.type, n.shape, [v = n.value](exec::Executor& e, const Ins&, Tensor& out) { return e.Fill(out, v); }};
  }
  Result<Checked> operator()(const ir::RandomUniform& n) const {
    if (!ir::IsFloat(n.type)) {
      return Status(ErrorKind::kTypeMismatch, "random_uniform makes floats; got " + DTypeToString(n.type));
    }
    const double lo = n.min.AsDouble(), hi = n.max.AsDouble();
    if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) return Status::BadArg("random_uniform needs finite min <= max");
    return Checked{n.type, n.shape, [seed = n.seed, lo, hi](exec::Executor& e, const Ins&, Tensor& out) {
                     return e.RandomUniform(out, seed, lo, hi);
                   }};
  }
  Result<Checked> operator()(const ir::RandomNormal& n) const {
    if (!ir::IsFloat(n.type)) {
      return Status(ErrorKind::kTypeMismatch, "random_normal makes floats; got " + DTypeToString(n.type));
    }
    const double mean = n.mean.AsDouble(), sd = n.std.AsDouble();
    if (!std::isfinite(mean) || !std::isfinite(sd) || sd < 0) {
      return Status::BadArg("random_normal needs a finite mean and std >= 0");
    }
    return Checked{n.type, n.shape, [seed = n.seed, mean, sd](exec::Executor& e, const Ins&, Tensor& out) {
                     return e.RandomNormal(out, seed, mean, sd);
                   }};
  }
  /// select and clip: the three operands broadcast together.
  Result<Shape> Broadcast3() const {
    auto bc = ir::BroadcastShapes(in[1].shape, in[2].shape);
    if (!bc.ok()) return bc.status();
    return ir::BroadcastShapes(in[0].shape, *bc);
  }
  Result<Checked> operator()(const ir::Select&) const {
    auto shape = Broadcast3();
    if (!shape.ok()) return shape.status();
    const DType t = ir::MergeTypes(in[1].type, in[2].type);
    return Checked{t, std::move(*shape), [t](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Select(*x[0], *x[1], *x[2], t, out);
                   }};
  }
  Result<Checked> operator()(const ir::Clip&) const {
    auto shape = Broadcast3();
    if (!shape.ok()) return shape.status();
    const DType t = ir::MergeTypes(in[0].type, ir::MergeTypes(in[1].type, in[2].type));
    if (ir::IsComplex(t)) return Status(ErrorKind::kTypeMismatch, "clip is not defined on complex tensors (no order)");
    return Checked{t, std::move(*shape), [t](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Clip(*x[0], *x[1], *x[2], t, out);
                   }};
  }
  Result<Checked> operator()(const ir::Broadcast& n) const {
    MURE_RETURN_IF_ERROR(ir::CheckBroadcastTo(in[0].shape, n.shape, n.axes));
    return Checked{in[0].type, n.shape, [axes = n.axes](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.BroadcastTo(*x[0], axes, out);
                   }};
  }
  Result<Checked> operator()(const ir::Reverse& n) const {
    std::vector<int64_t> axes;
    for (int64_t ax : n.axes) {
      auto k = ir::NormalizeAxis(ax, in[0].shape.size(), "reverse axis");
      if (!k.ok()) return k.status();
      if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(*k)) != axes.end()) {
        return Status::BadArg("reverse axis " + std::to_string(*k) + " is given twice");
      }
      axes.push_back(static_cast<int64_t>(*k));
    }
    return Same([axes](exec::Executor& e, const Ins& x, Tensor& out) { return e.Reverse(*x[0], axes, out); });
  }
  Result<Checked> operator()(const ir::Pad& n) const {
    if (n.value.im != 0 && !ir::IsComplex(in[0].type)) {
      return Status::BadArg("pad: a complex value {re, im} needs a complex tensor, got " + DTypeToString(in[0].type));
    }
    auto shape = ir::PadShape(in[0].shape, n.config);
    if (!shape.ok()) return shape.status();
    return Checked{in[0].type, std::move(*shape), [v = n.value, cfg = n.config](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Pad(*x[0], v, cfg, out);
                   }};
  }
  Result<Checked> Join(int64_t axis_in, bool stack) const {
    if (in.empty()) return Status::BadArg(std::string(stack ? "stack" : "concatenate") + " needs at least one tensor");
    std::vector<Shape> shapes;
    for (auto& v : in) shapes.push_back(v.shape);
    const size_t rank = shapes[0].size() + (stack ? 1 : 0);
    auto axis = ir::NormalizeAxis(axis_in, rank, "axis");
    if (!axis.ok()) return axis.status();
    if (stack) {
      for (size_t i = 0; i < shapes.size(); ++i) {
        Shape& s = shapes[i];
        if (s.size() + 1 != rank) {
          return Status(ErrorKind::kShapeMismatch, "stack needs tensors of one rank; got " + std::to_string(s.size()) +
                                                       " and " + std::to_string(rank - 1));
        }
        if (s != in[0].shape) {
          return Status(ErrorKind::kShapeMismatch, "stack: tensor " + std::to_string(i) + " has shape " +
                                                       ShapeToString(s) + ", the first has " +
                                                       ShapeToString(in[0].shape) + " (stacked tensors have one shape)");
        }
      }
      for (auto& s : shapes) s.insert(s.begin() + static_cast<std::ptrdiff_t>(*axis), 1);
    }
    auto shape = ir::ConcatShape(shapes, *axis);
    if (!shape.ok()) return shape.status();
    DType t = in[0].type;
    for (auto& v : in) t = ir::MergeTypes(t, v.type);
    return Checked{t, std::move(*shape), [shapes, ax = *axis](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Concatenate(x, shapes, ax, out);
                   }};
  }
  Result<Checked> operator()(const ir::Concatenate& n) const { return Join(n.axis, false); }
  Result<Checked> operator()(const ir::Stack& n) const { return Join(n.axis, true); }
  Result<Checked> operator()(const ir::PutSlice& n) const {
    MURE_RETURN_IF_ERROR(ir::CheckPutSlice(in[0].shape, n.starts, in[1].shape));
    return Checked{ir::MergeTypes(in[0].type, in[1].type), in[0].shape,
                   [starts = n.starts](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.PutSlice(*x[0], starts, *x[1], out);
                   }};
  }
  /// The starts of a dynamic slice, operands `first`..: one scalar integer tensor per axis of x.
  Status CheckStarts(const char* op, size_t first) const {
    const size_t rank = in[0].shape.size(), count = in.size() - first;
    if (count != rank) {
      return Status::BadArg(std::string(op) + " of a rank-" + std::to_string(rank) + " tensor needs " +
                            std::to_string(rank) + " starts (one scalar integer tensor per axis); got " +
                            std::to_string(count));
    }
    for (size_t i = first; i < in.size(); ++i) {
      const std::string which = std::string(op) + ": start " + std::to_string(i - first) + " (axis " +
                                std::to_string(i - first) + ")";
      if (!in[i].shape.empty()) {
        return Status(ErrorKind::kShapeMismatch,
                      which + " must be a scalar tensor, got shape " + ShapeToString(in[i].shape));
      }
      if (!ir::IsInteger(in[i].type)) {
        return Status(ErrorKind::kTypeMismatch,
                      which + " must be an integer tensor, got " + DTypeToString(in[i].type));
      }
    }
    return Status::Ok();
  }
  Result<Checked> operator()(const ir::DynamicSlice& n) const {
    MURE_RETURN_IF_ERROR(CheckStarts("dynamic_slice", 1));
    const Shape& dims = in[0].shape;
    auto shape = ir::DynamicSliceShape(dims, n.lengths, n.strides);
    if (!shape.ok()) return shape.status();
    std::vector<uint64_t> spans(n.lengths.begin(), n.lengths.end());
    return Checked{in[0].type, std::move(*shape),
                   [dims, spans, strides = n.strides](exec::Executor& e, const Ins& x, Tensor& out) {
                     const Ins starts(x.begin() + 1, x.end());
                     return e.Slice(*x[0], cpu::ClampedStarts(starts, dims, spans), strides, out);
                   }};
  }
  Result<Checked> operator()(const ir::DynamicPutSlice&) const {
    MURE_RETURN_IF_ERROR(CheckStarts("dynamic_put_slice", 2));
    const Shape& dims = in[0].shape;
    const Shape& update = in[1].shape;
    MURE_RETURN_IF_ERROR(ir::CheckDynamicPutSlice(dims, update));
    return Checked{ir::MergeTypes(in[0].type, in[1].type), dims,
                   [dims, spans = update](exec::Executor& e, const Ins& x, Tensor& out) {
                     const Ins starts(x.begin() + 2, x.end());
                     return e.PutSlice(*x[0], cpu::ClampedStarts(starts, dims, spans), *x[1], out);
                   }};
  }
  Result<Checked> operator()(const ir::Gather&) const {
    auto shape = ir::GatherShape(in[0].shape, in[1].type, in[1].shape);
    if (!shape.ok()) return shape.status();
    return Checked{in[0].type, std::move(*shape),
                   [](exec::Executor& e, const Ins& x, Tensor& out) { return e.Gather(*x[0], *x[1], out); }};
  }
  Result<Checked> SortLike(int64_t axis_in, bool desc, bool arg) const {
    auto axis = ir::NormalizeAxis(axis_in, in[0].shape.size(), "sort axis");
    if (!axis.ok()) return axis.status();
    if (ir::IsComplex(in[0].type)) {
      return Status(ErrorKind::kTypeMismatch, std::string(arg ? "argsort" : "sort") +
                                                  " is not defined on complex tensors (no order), got " +
                                                  DTypeToString(in[0].type));
    }
    return Checked{arg ? DType::kS64 : in[0].type, in[0].shape,
                   [ax = *axis, desc, arg](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Sort(*x[0], ax, desc, arg, out);
                   }};
  }
  Result<Checked> operator()(const ir::Sort& n) const { return SortLike(n.axis, n.descending, false); }
  Result<Checked> operator()(const ir::Argsort& n) const { return SortLike(n.axis, n.descending, true); }
  Result<Checked> operator()(const ir::Dot& n) const {
    if (n.legacy != ir::Legacy::kNone) MURE_RETURN_IF_ERROR(CheckLegacy(n.legacy, in[0], in[1]));
    auto plan = ir::PlanDot(in[0].shape, n.contract_a, n.batch_a, in[1].shape, n.contract_b, n.batch_b);
    if (!plan.ok()) return plan.status();
    const DType t = ir::MergeTypes(in[0].type, in[1].type);
    Checked c{t, plan->out_shape, {}};
    c.run = [plan = std::move(*plan), t](exec::Executor& e, const Ins& x, Tensor& out) {
      return e.Dot(*x[0], *x[1], plan, t, out);
    };
    return c;
  }
  Result<Checked> operator()(const ir::Linalg& n) const {
    const bool has_b = n.b != 0;
    auto plan = ir::PlanLinalg(n.op, n.opts, in[0].type, in[0].shape, has_b, has_b ? in[1].type : DType::kF32,
                               has_b ? in[1].shape : Shape{});
    if (!plan.ok()) return plan.status();
    Checked c;
    if (plan->tuple()) {
      c.type = DType::kU8;
      c.shape = {plan->packed_bytes};
      for (const ir::LinalgPart& part : plan->parts) c.parts.push_back(PartInfo{part.type, part.shape, part.offset});
    } else {
      c.type = plan->parts[0].type;
      c.shape = plan->parts[0].shape;
    }
    c.run = [plan = std::move(*plan)](exec::Executor& e, const Ins& x, Tensor& out) {
      return e.Linalg(plan, *x[0], x.size() > 1 ? x[1] : nullptr, out);
    };
    return c;
  }
  Result<Checked> operator()(const ir::Elem& n) const {
    const auto& parts = in[0].parts;
    if (parts.empty()) {
      return Status::BadArg("elem reads a part of a tuple value (the result of lu, qr, eigh or svd); its operand is "
                            "a tensor");
    }
    if (n.index < 0 || static_cast<uint64_t>(n.index) >= parts.size()) {
      return Status(ErrorKind::kOutOfRange, "elem index " + std::to_string(n.index) + " is outside the tuple's " +
                                                std::to_string(parts.size()) + " parts (0.." +
                                                std::to_string(parts.size() - 1) + ")");
    }
    const PartInfo& part = parts[static_cast<size_t>(n.index)];
    auto bytes = ByteSize(part.type, part.shape);
    if (!bytes.ok()) return bytes.status();
    return Checked{part.type, part.shape, [offset = part.offset, bytes = *bytes](exec::Executor&, const Ins& x, Tensor& out) {
                     uint64_t end = 0;
                     if (__builtin_add_overflow(offset, bytes, &end) || end > x[0]->bytes() || bytes > out.bytes()) {
                       return Status::Internal("elem: the part lies outside its tuple value");
                     }
                     if (bytes) std::memcpy(out.data(), x[0]->data() + offset, bytes);
                     return Status::Ok();
                   }};
  }
  Result<Checked> operator()(const ir::Outer&) const {
    const DType t = ir::MergeTypes(in[0].type, in[1].type);
    Shape shape = in[0].shape;
    shape.insert(shape.end(), in[1].shape.begin(), in[1].shape.end());
    if (shape.size() > kMaxDims) return Status(ErrorKind::kBadShape, "outer's result would have more than 16 dims");
    return Checked{t, std::move(shape), [t](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Outer(*x[0], *x[1], t, out);
                   }};
  }
  Result<Checked> operator()(const ir::Fft& n) const {
    const char* op = n.inverse ? "ifft" : "fft";
    if (in[0].shape.empty()) {
      return Status(ErrorKind::kBadShape, std::string(op) + " needs a tensor of rank 1 or more (it runs over the last axis)");
    }
    if (n.length < 1 || n.length > INT_MAX) {
      return Status::BadArg(std::string(op) + "'s length must be between 1 and 2^31-1 (FFTW's limit), got " +
                            std::to_string(n.length));
    }
    Shape shape = in[0].shape;
    shape.back() = static_cast<uint64_t>(n.length);
    return Checked{ir::ToComplex(in[0].type), std::move(shape), [inverse = n.inverse](exec::Executor& e, const Ins& x, Tensor& out) {
                     return e.Fft(*x[0], inverse, out);
                   }};
  }
  /// The window, scatter and scan kernels take real types.
  static Status RealOnly(const char* op, std::initializer_list<DType> types) {
    for (DType t : types) {
      if (ir::IsComplex(t)) {
        return Status(ErrorKind::kTypeMismatch, std::string(op) + " takes real tensors, got " + DTypeToString(t));
      }
    }
    return Status::Ok();
  }
  Result<Checked> operator()(const ir::Window& n) const {
    if (!n.op) return Unknown("reduction", n.name, ir::ReduceNames());
    MURE_RETURN_IF_ERROR(RealOnly("window", {in[0].type}));
    MURE_RETURN_IF_ERROR(ir::CheckWindowReduction("window", *n.op));
    auto plan = ir::PlanWindow("window", in[0].shape, n.dims, n.strides, n.padding, n.dilations);
    if (!plan.ok()) return plan.status();
    Checked c{in[0].type, plan->out_shape, {}};
    c.run = [op = *n.op, plan = std::move(*plan), init = n.init](exec::Executor& e, const Ins& x, Tensor& out) {
      return e.Window(op, *x[0], plan, init, out);
    };
    return c;
  }
  Result<Checked> operator()(const ir::WindowScatter& n) const {
    if (n.name != "max" && n.name != "min") {
      return Status(ErrorKind::kUnknownOp, "unknown window_scatter :" + std::string(n.name.substr(0, 64)) +
                                               "; known: max min");
    }
    MURE_RETURN_IF_ERROR(RealOnly("window_scatter", {in[0].type, in[1].type}));
    std::vector<int64_t> ones(in[0].shape.size(), 1);
    auto plan = ir::PlanWindow("window_scatter", in[0].shape, n.dims, n.strides, n.padding, ones);
    if (!plan.ok()) return plan.status();
    if (in[1].shape != plan->out_shape) {
      return Status(ErrorKind::kShapeMismatch, "window_scatter: the source has shape " + ShapeToString(in[1].shape) +
                                                   "; the windows of " + ShapeToString(in[0].shape) + " make " +
                                                   ShapeToString(plan->out_shape));
    }
    Checked c{ir::MergeTypes(in[0].type, in[1].type), in[0].shape, {}};
    c.run = [max = n.name == "max", plan = std::move(*plan), init = n.init](exec::Executor& e, const Ins& x,
                                                                             Tensor& out) {
      return e.WindowScatter(max, *x[0], *x[1], plan, init, out);
    };
    return c;
  }
  Result<Checked> operator()(const ir::Indexed& n) const {
    if (n.name != "add" && n.name != "put") {
      return Status(ErrorKind::kUnknownOp, "unknown indexed :" + std::string(n.name.substr(0, 64)) + "; known: add put");
    }
    MURE_RETURN_IF_ERROR(RealOnly("indexed", {in[0].type, in[1].type, in[2].type}));
    auto plan = ir::PlanIndexed(in[0].shape, in[1].type, in[1].shape, in[2].shape, n.axes);
    if (!plan.ok()) return plan.status();
    Checked c{ir::MergeTypes(in[0].type, in[2].type), in[0].shape, {}};
    c.run = [add = n.name == "add", plan = std::move(*plan)](exec::Executor& e, const Ins& x, Tensor& out) {
      return e.Indexed(add, *x[0], *x[1], *x[2], plan, out);
    };
    return c;
  }
  Result<Checked> operator()(const ir::Cumulative& n) const {
    if (!n.op) return Unknown("reduction", n.name, ir::ReduceNames());
    MURE_RETURN_IF_ERROR(ir::CheckWindowReduction("cumulative", *n.op));
    MURE_RETURN_IF_ERROR(RealOnly("cumulative", {in[0].type}));
    auto axis = ir::NormalizeAxis(n.axis, in[0].shape.size(), "cumulative axis");
    if (!axis.ok()) return axis.status();
    return Same([op = *n.op, ax = *axis, rev = n.reverse](exec::Executor& e, const Ins& x, Tensor& out) {
      return e.Cumulative(op, *x[0], ax, rev, out);
    });
  }
  // Control flow is planned by PlanProgram (sched/program.h), region by region; the decoder
  // refuses it outside a program, so these answer only a caller that skipped it.
  Result<Checked> operator()(const ir::While&) const {
    return Status::BadArg(":while is a node of a program: send it inside {:program, inputs, nodes, outputs}");
  }
  Result<Checked> operator()(const ir::If&) const {
    return Status::BadArg(":if is a node of a program: send it inside {:program, inputs, nodes, outputs}");
  }
};

/// Complex types and FFTs run on the CPU executor only.
bool NeedsCpu(const ir::Node& node, const std::vector<ValueInfo>& in, DType result) {
  if (std::holds_alternative<ir::Fft>(node) || ir::IsComplex(result)) return true;
  for (const auto& v : in) if (ir::IsComplex(v.type)) return true;
  return false;
}

bool IsLegacyElementwise(const ir::Node& node) {
  auto* b = std::get_if<ir::Binary>(&node);
  return b && b->legacy != ir::Legacy::kNone;
}

}  // namespace

Result<PlannedOp> PlanOp(const ir::Node& node, const OperandLookup& lookup, const Executors& ex,
                         ir::Placement placement) {
  // Binding: which executor the placement picks.
  if (placement == ir::Placement::kOpenCl && !ex.opencl) {
    return Status(ErrorKind::kUnsupported, "this node has no OpenCL device (see its log for why); run the op with "
                                           "device :cpu or :auto");
  }
  // Validation: pure (no allocation, no device).
  PlannedOp p;
  p.operands = ir::Operands(node);  // kernel order: a, then b, then c; joins list theirs
  std::vector<ValueInfo> in;
  for (uint64_t id : p.operands) {
    auto info = lookup(id);
    if (!info.ok()) return info.status();
    in.push_back(std::move(*info));
  }
  // A tuple value is read only through elem: no other op knows its packed bytes.
  const bool is_elem = std::holds_alternative<ir::Elem>(node);
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].parts.empty() && !is_elem) {
      return Status::BadArg("operand " + std::to_string(i + 1) + " is a tuple of " + std::to_string(in[i].parts.size()) +
                            " tensors (the result of lu, qr, eigh or svd): read a part with {:elem, v, i}");
    }
  }
  // Linear algebra runs on the CPU executor (LAPACK); elem is a copy, done there too.
  if (std::holds_alternative<ir::Linalg>(node) || is_elem) {
    if (placement == ir::Placement::kOpenCl && !is_elem) {
      return Status(ErrorKind::kUnsupported, std::string(ir::AtomName(node)) +
                                                 " runs on the CPU only (LAPACK), not on the OpenCL device: place it "
                                                 ":cpu or :auto");
    }
    placement = ir::Placement::kCpu;
  }
  if (IsLegacyElementwise(node) && placement == ir::Placement::kAuto) {
    if (!ex.opencl) {
      return Status(ErrorKind::kUnsupported, std::string(ir::AtomName(node)) +
                                                 " runs on the OpenCL device, and this node has none (see the node's "
                                                 "log for why)");
    }
    placement = ir::Placement::kOpenCl;  // documented as an OpenCL op
  }
  if (auto* dot = std::get_if<ir::Dot>(&node);
      dot && dot->legacy == ir::Legacy::kMatmul && placement != ir::Placement::kOpenCl && !ex.blis) {
    return Status(ErrorKind::kUnsupported, "matmul needs the BLIS device, which is disabled on this node");
  }
  static exec::CpuExecutor plain_cpu(nullptr);
  exec::Executor* executor = placement == ir::Placement::kOpenCl ? ex.opencl : ex.cpu ? ex.cpu : &plain_cpu;

  auto checked = std::visit(Check{in, placement}, node);
  if (!checked.ok()) return checked.status();
  if (executor->device() != exec::Device::kCpu && NeedsCpu(node, in, checked->type)) {
    if (placement == ir::Placement::kOpenCl) {
      return Status(ErrorKind::kUnsupported, ir::Label(node) + " with complex types or an FFT runs on the CPU executor "
                                             "only; place it :cpu or :auto");
    }
    executor = ex.cpu ? ex.cpu : &plain_cpu;
  }
  p.type = checked->type;
  p.shape = std::move(checked->shape);
  p.parts = std::move(checked->parts);
  p.device = executor->device();
  // Every result passes the shape rule (types.h) before a kernel is bound to it, whatever rule
  // made the shape, so the kernels' own sub-products of its dims cannot wrap.
  auto bytes = ByteSize(p.type, p.shape);
  if (!bytes.ok()) return bytes.status();
  // Work is bounded by what the request really costs, and an empty result costs nothing: no
  // kernel runs for it, on either executor, whatever the operands' dims ({2^33, 0} has 2^33
  // empty rows that a kernel would otherwise walk one by one, holding the CPU for minutes).
  // Kernels whose result is not empty loop over that result, never over empty rows of their
  // operands (pad of an empty tensor, a reduction over an empty axis, dot with k = 0).
  // take is the exception: its indices are data and are range-checked even when the result is
  // empty, as before (that walk is bounded by the indices' real bytes; cpu::Take returns after it).
  if (*ElementCount(p.shape) == 0 && !std::holds_alternative<ir::Take>(node) &&
      !std::holds_alternative<ir::Indexed>(node)) {
    p.kernel = [](const Ins&, Tensor&) { return Status::Ok(); };
    return p;
  }
  // Binding.
  p.kernel = [executor, run = std::move(checked->run)](const Ins& x, Tensor& out) { return run(*executor, x, out); };
  SetWork(node, in, p);
  return p;
}

Result<PlannedOp> PlanPlaced(const ir::Node& node, const OperandLookup& lookup, const Executors& ex,
                             ir::Placement placement, const CostModel& cost) {
  auto plan = PlanOp(node, lookup, ex, placement);
  if (placement == ir::Placement::kAuto && plan.ok() && plan->device == Device::kOpenCl && IsLegacyElementwise(node)) {
    // add / multiply: their contract (one shape, f32) was checked for the device; the CPU
    // computes the same result, and wins where the device's launch cost outweighs its speed.
    auto here = PlanOp(node, lookup, ex, ir::Placement::kCpu);
    if (here.ok() && here->type == plan->type && here->shape == plan->shape &&
        EstimateMicros(*here, cost) < EstimateMicros(*plan, cost)) {
      return here;
    }
    return plan;
  }
  if (placement != ir::Placement::kAuto || !plan.ok() || !ex.opencl || plan->device == Device::kOpenCl) return plan;
  // Only memory-bound elementwise work is worth moving by its measured bandwidth; products stay
  // on BLIS, and reductions, sorts and shape ops on the CPU executor.
  if (!std::holds_alternative<ir::Unary>(node) && !std::holds_alternative<ir::Binary>(node) &&
      !std::holds_alternative<ir::Select>(node) && !std::holds_alternative<ir::Clip>(node) &&
      !std::holds_alternative<ir::AsType>(node)) {
    return plan;
  }
  auto elements = ElementCount(plan->shape);
  if (!elements.ok() || *elements < cost.opencl_min_elements || cost.opencl_gbps <= 1.5 * cost.cpu_gbps) return plan;
  auto there = PlanOp(node, lookup, ex, ir::Placement::kOpenCl);
  return there.ok() ? there : plan;
}

}  // namespace mure
