#include "ir/ops.h"

#include <algorithm>

namespace mure::ir {
namespace {

#define MURE_HAS(expr) (std::string_view(#expr) != "MURE_NONE")

const std::vector<UnaryInfo>& UnaryRows() {
  static const std::vector<UnaryInfo> rows = {
#define MURE_UNARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  {UnaryOp::k##Id, name, UnaryRule::k##rule, fusible != 0, exact != 0, MURE_HAS(fexpr), MURE_HAS(iexpr)},
#include "ir/ops.def"
  };
  return rows;
}
const std::vector<BinaryInfo>& BinaryRows() {
  static const std::vector<BinaryInfo> rows = {
#define MURE_BINARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  {BinaryOp::k##Id, name, BinaryRule::k##rule, fusible != 0, exact != 0, MURE_HAS(fexpr), MURE_HAS(iexpr)},
#include "ir/ops.def"
  };
  return rows;
}
const std::vector<ReduceInfo>& ReduceRows() {
  static const std::vector<ReduceInfo> rows = {
#define MURE_REDUCE(Id, name, rule, fusible, ...) {ReduceOp::k##Id, name, ReduceRule::k##rule, fusible != 0},
#include "ir/ops.def"
  };
  return rows;
}
#undef MURE_HAS

template <typename Table, typename Op>
std::optional<Op> Find(const Table& table, std::string_view name) {
  for (const auto& e : table) if (e.name == name) return e.op;
  return std::nullopt;
}
template <typename Table>
std::string Names(const Table& table) {
  std::string out;
  for (const auto& e : table) {
    if (!out.empty()) out += ' ';
    out += e.name;
  }
  return out;
}

DType Make(std::string_view cls, unsigned bits) { return *DTypeFromNx(cls, bits); }

Status NeedsIntegers(std::string_view op, DType t) {
  return Status(ErrorKind::kTypeMismatch, std::string(op) + " takes integer tensors, got " + DTypeToString(t));
}

Result<uint64_t> Axis(int64_t axis, size_t rank, const char* what) {
  int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) {
    return Status(ErrorKind::kBadArg, std::string(what) + " " + std::to_string(axis) + " is not an axis of a rank-" +
                                          std::to_string(rank) + " tensor");
  }
  return static_cast<uint64_t>(axis < 0 ? axis + r : axis);
}

}  // namespace

// The enumerators follow the rows, so an op's row is at its enumerator's index.
const std::vector<UnaryInfo>& UnaryTable() { return UnaryRows(); }
const std::vector<BinaryInfo>& BinaryTable() { return BinaryRows(); }
const std::vector<ReduceInfo>& ReduceTable() { return ReduceRows(); }
const UnaryInfo& Info(UnaryOp op) { return UnaryRows()[static_cast<size_t>(op)]; }
const BinaryInfo& Info(BinaryOp op) { return BinaryRows()[static_cast<size_t>(op)]; }
const ReduceInfo& Info(ReduceOp op) { return ReduceRows()[static_cast<size_t>(op)]; }

std::optional<UnaryOp> UnaryFromName(std::string_view n) { return Find<std::vector<UnaryInfo>, UnaryOp>(UnaryRows(), n); }
std::optional<BinaryOp> BinaryFromName(std::string_view n) { return Find<std::vector<BinaryInfo>, BinaryOp>(BinaryRows(), n); }
std::optional<ReduceOp> ReduceFromName(std::string_view n) { return Find<std::vector<ReduceInfo>, ReduceOp>(ReduceRows(), n); }
std::string_view Name(UnaryOp op) {
  const size_t i = static_cast<size_t>(op);
  return i < UnaryRows().size() ? UnaryRows()[i].name : "?";
}
std::string_view Name(BinaryOp op) {
  const size_t i = static_cast<size_t>(op);
  return i < BinaryRows().size() ? BinaryRows()[i].name : "?";
}
std::string_view Name(ReduceOp op) {
  const size_t i = static_cast<size_t>(op);
  return i < ReduceRows().size() ? ReduceRows()[i].name : "?";
}
std::string UnaryNames() { return Names(UnaryRows()); }
std::string BinaryNames() { return Names(BinaryRows()); }
std::string ReduceNames() { return Names(ReduceRows()); }

std::optional<ComplexRule> ComplexUnaryRule(UnaryOp op) {
  switch (op) {
#define MURE_COMPLEX_UNARY(Id, rule, cexpr) \
  case UnaryOp::k##Id: return ComplexRule::k##rule;
#include "ir/ops.def"
    default: return std::nullopt;
  }
}
bool TakesComplex(BinaryOp op) {
  switch (op) {
#define MURE_COMPLEX_BINARY(Id, cexpr) \
  case BinaryOp::k##Id: return true;
#include "ir/ops.def"
    default: return false;
  }
}
bool TakesComplex(ReduceOp op) {
  switch (op) {
#define MURE_COMPLEX_REDUCE(Id, cinit, cstep) \
  case ReduceOp::k##Id: return true;
#include "ir/ops.def"
    default: return false;
  }
}

namespace {
Status NotOnComplex(std::string_view op, DType t) {
  return Status(ErrorKind::kTypeMismatch, std::string(op) + " is not defined on complex tensors, got " +
                                              DTypeToString(t));
}
}  // namespace

DType MergeTypes(DType a, DType b) {
  if (a == b) return a;
  // Nx.Type.merge: a complex type wins over every real one ({:c, 64} with {:f, 64} stays {:c, 64}).
  if (IsComplex(a) || IsComplex(b)) {
    if (IsComplex(a) && IsComplex(b)) return DType::kC128;
    return IsComplex(a) ? a : b;
  }
  const unsigned ba = DTypeBits(a), bb = DTypeBits(b);
  if (IsFloat(a) && IsFloat(b)) {
    if (a == DType::kBF16 || b == DType::kBF16) {
      DType other = a == DType::kBF16 ? b : a;  // bf16 with f16 -> f32; with f32/f64 -> that
      return DTypeBits(other) > 16 ? other : DType::kF32;
    }
    return ba >= bb ? a : b;
  }
  if (IsFloat(a)) return a;
  if (IsFloat(b)) return b;
  if (IsSigned(a) == IsSigned(b)) return ba >= bb ? a : b;
  // Signed with unsigned: a signed type wide enough for both (at most 64 bits).
  unsigned s = IsSigned(a) ? ba : bb, u = IsSigned(a) ? bb : ba;
  return Make("s", std::max(s, std::min(2 * u, 64u)));
}

DType ToFloating(DType t) { return IsFloat(t) || IsComplex(t) ? t : DType::kF32; }

Result<DType> UnaryResultType(UnaryOp op, DType in) {
  if (IsComplex(in)) {
    auto rule = ComplexUnaryRule(op);
    if (!rule) return NotOnComplex(Name(op), in);
    switch (*rule) {
      case ComplexRule::kSame: return in;
      case ComplexRule::kReal: return RealPart(in);
      case ComplexRule::kPredicate: return DType::kU8;
    }
  }
  switch (Info(op).rule) {
    case UnaryRule::kComplex: return ToComplex(in);
    case UnaryRule::kComplexPart:
      return Status(ErrorKind::kTypeMismatch, std::string(Name(op)) + " takes complex tensors ({:c, 64} or {:c, 128}), got " +
                                                  DTypeToString(in));
    case UnaryRule::kSame: return in;
    case UnaryRule::kPredicate: return DType::kU8;
    case UnaryRule::kIntegerOnly:
      if (!IsInteger(in)) return NeedsIntegers(Name(op), in);
      return in;
    case UnaryRule::kFloating: break;
  }
  return ToFloating(in);
}

Result<BinaryTypes> BinaryResultTypes(BinaryOp op, DType a, DType b) {
  const DType m = MergeTypes(a, b);
  if (IsComplex(m) && !TakesComplex(op)) {
    return Status(ErrorKind::kTypeMismatch, std::string(Name(op)) + " is not defined on complex tensors, got " +
                                                DTypeToString(a) + " and " + DTypeToString(b));
  }
  switch (Info(op).rule) {
    case BinaryRule::kFloating: return BinaryTypes{ToFloating(m), ToFloating(m)};
    case BinaryRule::kCompare: return BinaryTypes{m, DType::kU8};
    case BinaryRule::kIntegerOnly:
      if (!IsInteger(m)) {
        return Status(ErrorKind::kTypeMismatch, std::string(Name(op)) + " takes integer tensors, got " +
                                                    DTypeToString(a) + " and " + DTypeToString(b));
      }
      break;
    case BinaryRule::kMerge: break;
  }
  return BinaryTypes{m, m};
}

Result<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    uint64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    uint64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return Status(ErrorKind::kShapeMismatch, "shapes " + ShapeToString(a) + " and " + ShapeToString(b) +
                                                   " cannot be broadcast together (dimension " + std::to_string(i) +
                                                   ": " + std::to_string(da) + " vs " + std::to_string(db) + ")");
    }
    out[i] = da == 1 ? db : da;
  }
  // Each operand passed the shape rule, but the result mixes their dims ({2^40, 1} with {1, 2^40}).
  auto n = ElementCount(out);
  if (!n.ok()) return n.status();
  return out;
}

Result<ReducePlan> PlanReduce(ReduceOp op, DType in, const Shape& shape, const std::vector<int64_t>& axes,
                              bool keep_axes) {
  ReducePlan plan;
  if (IsComplex(in) && !TakesComplex(op)) return NotOnComplex(Name(op), in);
  for (int64_t a : axes) {
    auto ax = Axis(a, shape.size(), "reduction axis");
    if (!ax.ok()) return ax.status();
    if (std::find(plan.axes.begin(), plan.axes.end(), *ax) != plan.axes.end()) {
      return Status::BadArg("reduction axis " + std::to_string(*ax) + " is given twice");
    }
    plan.axes.push_back(*ax);
  }
  std::sort(plan.axes.begin(), plan.axes.end());
  if (Info(op).rule == ReduceRule::kIndex) {
    if (plan.axes.size() > 1 && plan.axes.size() != shape.size()) {
      return Status::BadArg(std::string(Name(op)) + " takes one axis, or all of them");
    }
    for (uint64_t ax : plan.axes) {
      if (shape[ax] == 0) {
        return Status(ErrorKind::kShapeMismatch, std::string(Name(op)) + " of an empty axis has no answer");
      }
    }
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    bool reduced = std::find(plan.axes.begin(), plan.axes.end(), i) != plan.axes.end();
    if (!reduced) plan.out_shape.push_back(shape[i]);
    else if (keep_axes) plan.out_shape.push_back(1);
  }
  switch (Info(op).rule) {
    case ReduceRule::kWiden: plan.out_type = !IsInteger(in) ? in : IsSigned(in) ? DType::kS64 : DType::kU64; break;
    case ReduceRule::kSame: plan.out_type = in; break;
    case ReduceRule::kPredicate: plan.out_type = DType::kU8; break;
    case ReduceRule::kIndex: plan.out_type = DType::kS64; break;
  }
  return plan;
}

Result<Shape> SliceShape(const Shape& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& lengths,
                         const std::vector<int64_t>& strides) {
  const size_t rank = in.size();
  if (starts.size() != rank || lengths.size() != rank || strides.size() != rank) {
    return Status::BadArg("slice of a rank-" + std::to_string(rank) + " tensor needs " + std::to_string(rank) +
                          " starts, lengths and strides; got " + std::to_string(starts.size()) + ", " +
                          std::to_string(lengths.size()) + " and " + std::to_string(strides.size()));
  }
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    if (strides[i] < 1) return Status::BadArg("slice stride " + std::to_string(i) + " must be at least 1");
    if (starts[i] < 0 || lengths[i] < 0) {
      return Status(ErrorKind::kOutOfRange, "slice start and length of dimension " + std::to_string(i) +
                                                " must be non-negative");
    }
    // As Nx.slice/4: `len` is the span of the input the slice covers, [start, start + len), and
    // the output keeps every stride-th element of it: ceil(len / stride) elements. The span must
    // lie inside the dimension (Nx would clamp the start; mure refuses, it never clamps).
    const uint64_t start = static_cast<uint64_t>(starts[i]), len = static_cast<uint64_t>(lengths[i]),
                   stride = static_cast<uint64_t>(strides[i]);
    uint64_t end = 0;  // start + len, checked
    if (__builtin_add_overflow(start, len, &end) || end > in[i]) {
      return Status(ErrorKind::kOutOfRange, "slice of dimension " + std::to_string(i) + " (size " +
                                                std::to_string(in[i]) + ") from " + std::to_string(start) +
                                                " with length " + std::to_string(len) + " runs past its end");
    }
    out[i] = len / stride + (len % stride != 0 ? 1 : 0);
  }
  return out;
}

Result<Shape> DynamicSliceShape(const Shape& in, const std::vector<int64_t>& lengths,
                                const std::vector<int64_t>& strides) {
  if (lengths.size() != in.size() || strides.size() != in.size()) {
    return Status::BadArg("dynamic_slice of a rank-" + std::to_string(in.size()) + " tensor needs " +
                          std::to_string(in.size()) + " lengths and strides; got " + std::to_string(lengths.size()) +
                          " and " + std::to_string(strides.size()));
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (lengths[i] < 0 || static_cast<uint64_t>(lengths[i]) > in[i]) {
      return Status(ErrorKind::kOutOfRange, "dynamic_slice: length " + std::to_string(lengths[i]) + " of dimension " +
                                                std::to_string(i) + " is outside 0.." + std::to_string(in[i]) +
                                                " (its size)");
    }
  }
  return SliceShape(in, std::vector<int64_t>(in.size(), 0), lengths, strides);  // from 0: the strides' rule
}

Result<Shape> TakeShape(const Shape& in, DType index_type, const Shape& indices, int64_t axis) {
  if (!IsInteger(index_type)) {
    return Status(ErrorKind::kTypeMismatch, "take's indices must be integers, got " + DTypeToString(index_type));
  }
  auto ax = Axis(axis, in.size(), "take axis");
  if (!ax.ok()) return ax.status();
  Shape out(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(*ax));
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(*ax) + 1, in.end());
  if (out.size() > kMaxDims) return Status(ErrorKind::kBadShape, "take's result would have more than 16 dimensions");
  // The result mixes the tensor's dims with the indices' ({0, 2^62} taking {0, 2^10}).
  auto n = ElementCount(out);
  if (!n.ok()) return n.status();
  return out;
}

Status CheckReshape(const Shape& in, const Shape& out) {
  auto a = ElementCount(in);
  auto b = ElementCount(out);
  if (!b.ok()) return b.status();
  if (*a != *b) {
    return Status(ErrorKind::kShapeMismatch, "cannot reshape " + ShapeToString(in) + " (" + std::to_string(*a) +
                                                 " elements) to " + ShapeToString(out) + " (" + std::to_string(*b) +
                                                 " elements)");
  }
  return Status::Ok();
}

Result<Shape> TransposeShape(const Shape& in, const std::vector<int64_t>& perm) {
  if (perm.size() != in.size()) {
    return Status::BadArg("transpose of a rank-" + std::to_string(in.size()) + " tensor needs " +
                          std::to_string(in.size()) + " axes, got " + std::to_string(perm.size()));
  }
  Shape out(in.size());
  std::vector<bool> seen(in.size(), false);
  for (size_t i = 0; i < perm.size(); ++i) {
    auto ax = Axis(perm[i], in.size(), "transpose axis");
    if (!ax.ok()) return ax.status();
    if (seen[*ax]) return Status::BadArg("transpose axes must be a permutation; " + std::to_string(*ax) + " repeats");
    seen[*ax] = true;
    out[i] = in[*ax];
  }
  return out;
}

Result<uint64_t> NormalizeAxis(int64_t axis, size_t rank, const char* what) { return Axis(axis, rank, what); }

Status CheckBroadcastTo(const Shape& in, const Shape& out, const std::vector<int64_t>& axes) {
  auto n = ElementCount(out);  // the requested shape is the client's, not a tensor's
  if (!n.ok()) return n.status();
  if (axes.size() != in.size()) {
    return Status::BadArg("broadcast of a rank-" + std::to_string(in.size()) + " tensor needs " +
                          std::to_string(in.size()) + " axes, got " + std::to_string(axes.size()));
  }
  int64_t prev = -1;
  for (size_t i = 0; i < axes.size(); ++i) {
    auto ax = Axis(axes[i], out.size(), "broadcast axis");
    if (!ax.ok()) return ax.status();
    if (static_cast<int64_t>(*ax) <= prev) return Status::BadArg("broadcast axes must be strictly increasing");
    prev = static_cast<int64_t>(*ax);
    if (in[i] != 1 && in[i] != out[*ax]) {
      return Status(ErrorKind::kShapeMismatch, "cannot broadcast " + ShapeToString(in) + " to " + ShapeToString(out) +
                                                   ": dimension " + std::to_string(i) + " (" + std::to_string(in[i]) +
                                                   ") is neither 1 nor " + std::to_string(out[*ax]));
    }
  }
  return Status::Ok();
}

Result<Shape> PadShape(const Shape& in, const std::vector<PadDim>& config) {
  if (config.size() != in.size()) {
    return Status::BadArg("pad of a rank-" + std::to_string(in.size()) + " tensor needs " +
                          std::to_string(in.size()) + " {low, high, interior} entries, got " +
                          std::to_string(config.size()));
  }
  Shape out(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const PadDim& p = config[i];
    const int64_t limit = int64_t{1} << 48;  // keeps every sum below in range
    if (p.interior < 0) return Status::BadArg("pad interior of dimension " + std::to_string(i) + " must be >= 0");
    if (p.lo < -limit || p.lo > limit || p.hi < -limit || p.hi > limit || p.interior > limit ||
        in[i] > static_cast<uint64_t>(limit)) {
      return Status(ErrorKind::kBadShape, "pad sizes of dimension " + std::to_string(i) + " are too large");
    }
    // span = d + (d - 1) * interior, the padded extent before low/high: every step checked, and
    // kept below 2^62 so that the kernels' lo + idx * (interior + 1) (idx < d) cannot wrap either.
    // The 2^48 bounds above do not bound the product: 65,537 elements with interior 2^48 is 2^64.
    const int64_t d = static_cast<int64_t>(in[i]);
    int64_t span = 0, size = 0;
    if (d > 0 && (__builtin_mul_overflow(d - 1, p.interior, &span) || __builtin_add_overflow(span, d, &span) ||
                  span >= (int64_t{1} << 62))) {
      return Status(ErrorKind::kBadShape, "pad of dimension " + std::to_string(i) + " (" + std::to_string(d) +
                                              " elements) with interior padding " + std::to_string(p.interior) +
                                              " would hold 2^62 elements or more");
    }
    size = p.lo + p.hi + span;  // |lo|, |hi| <= 2^48 and span < 2^62: cannot overflow
    if (size < 0) {
      return Status(ErrorKind::kOutOfRange, "pad of dimension " + std::to_string(i) + " crops more than its " +
                                                std::to_string(d) + " elements");
    }
    out[i] = static_cast<uint64_t>(size);
  }
  auto bytes = ElementCount(out);
  if (!bytes.ok()) return bytes.status();
  return out;
}

Result<Shape> ConcatShape(const std::vector<Shape>& ins, uint64_t axis) {
  if (ins.empty()) return Status::BadArg("concatenate needs at least one tensor");
  Shape out = ins[0];
  if (axis >= out.size()) return Status::BadArg("concatenate axis " + std::to_string(axis) + " is out of range");
  out[axis] = 0;
  for (size_t t = 0; t < ins.size(); ++t) {
    const Shape& s = ins[t];
    if (s.size() != out.size()) {
      return Status(ErrorKind::kShapeMismatch, "concatenate: tensor " + std::to_string(t) + " has rank " +
                                                   std::to_string(s.size()) + ", the first has " +
                                                   std::to_string(out.size()));
    }
    for (size_t d = 0; d < s.size(); ++d) {
      if (d != axis && s[d] != ins[0][d]) {
        return Status(ErrorKind::kShapeMismatch, "concatenate: tensor " + std::to_string(t) + " has shape " +
                                                     ShapeToString(s) + ", which differs from " +
                                                     ShapeToString(ins[0]) + " outside axis " + std::to_string(axis));
      }
    }
    if (__builtin_add_overflow(out[axis], s[axis], &out[axis])) {
      return Status(ErrorKind::kBadShape, "concatenate: the joined axis " + std::to_string(axis) +
                                              " would have 2^64 elements or more");
    }
  }
  auto n = ElementCount(out);
  if (!n.ok()) return n.status();
  return out;
}

Status CheckPutSlice(const Shape& in, const std::vector<int64_t>& starts, const Shape& update) {
  if (starts.size() != in.size() || update.size() != in.size()) {
    return Status::BadArg("put_slice of a rank-" + std::to_string(in.size()) + " tensor needs " +
                          std::to_string(in.size()) + " starts and an update of the same rank");
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (starts[i] < 0 || update[i] > in[i] || static_cast<uint64_t>(starts[i]) > in[i] - update[i]) {
      return Status(ErrorKind::kOutOfRange, "put_slice: an update of " + std::to_string(update[i]) +
                                                " elements at " + std::to_string(starts[i]) + " does not fit in dimension " +
                                                std::to_string(i) + " (size " + std::to_string(in[i]) + ")");
    }
  }
  return Status::Ok();
}

Status CheckDynamicPutSlice(const Shape& in, const Shape& update) {
  if (update.size() != in.size()) {
    return Status(ErrorKind::kShapeMismatch, "dynamic_put_slice: the update " + ShapeToString(update) +
                                                 " must have the rank of the tensor " + ShapeToString(in));
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (update[i] > in[i]) {
      return Status(ErrorKind::kOutOfRange, "dynamic_put_slice: the update " + ShapeToString(update) +
                                                " is larger than the tensor " + ShapeToString(in) + " in dimension " +
                                                std::to_string(i));
    }
  }
  return Status::Ok();
}

Result<Shape> GatherShape(const Shape& in, DType index_type, const Shape& indices) {
  if (!IsInteger(index_type)) {
    return Status(ErrorKind::kTypeMismatch, "gather's indices must be integers, got " + DTypeToString(index_type));
  }
  if (indices.empty() || indices.back() != in.size()) {
    return Status(ErrorKind::kShapeMismatch, "gather's indices " + ShapeToString(indices) +
                                                 " must end in a dimension of " + std::to_string(in.size()) +
                                                 " (one coordinate per axis of the tensor)");
  }
  return Shape(indices.begin(), indices.end() - 1);  // a sub-shape of the indices': passes the rule
}

Result<DotPlan> PlanDot(const Shape& a, const std::vector<int64_t>& ca, const std::vector<int64_t>& ba, const Shape& b,
                        const std::vector<int64_t>& cb, const std::vector<int64_t>& bb) {
  DotPlan p;
  auto norm = [](const std::vector<int64_t>& axes, const Shape& s, std::vector<uint64_t>& out, const char* what) -> Status {
    std::vector<bool> seen(s.size(), false);
    for (int64_t a : axes) {
      auto ax = Axis(a, s.size(), what);
      if (!ax.ok()) return ax.status();
      if (seen[*ax]) return Status::BadArg(std::string(what) + " " + std::to_string(*ax) + " is given twice");
      seen[*ax] = true;
      out.push_back(*ax);
    }
    return Status::Ok();
  };
  MURE_RETURN_IF_ERROR(norm(ca, a, p.ca, "contraction axis of a"));
  MURE_RETURN_IF_ERROR(norm(ba, a, p.ba, "batch axis of a"));
  MURE_RETURN_IF_ERROR(norm(cb, b, p.cb, "contraction axis of b"));
  MURE_RETURN_IF_ERROR(norm(bb, b, p.bb, "batch axis of b"));
  if (p.ca.size() != p.cb.size() || p.ba.size() != p.bb.size()) {
    return Status::BadArg("dot needs as many contraction (and batch) axes on a as on b");
  }
  for (size_t i = 0; i < p.ca.size(); ++i) {
    if (a[p.ca[i]] != b[p.cb[i]]) {
      return Status(ErrorKind::kShapeMismatch, "dot: contraction axis " + std::to_string(p.ca[i]) + " of " +
                                                   ShapeToString(a) + " and axis " + std::to_string(p.cb[i]) +
                                                   " of " + ShapeToString(b) + " differ");
    }
    if (__builtin_mul_overflow(p.k, a[p.ca[i]], &p.k)) return Status(ErrorKind::kBadShape, "dot: k overflows");
  }
  for (size_t i = 0; i < p.ba.size(); ++i) {
    if (a[p.ba[i]] != b[p.bb[i]]) {
      return Status(ErrorKind::kShapeMismatch, "dot: batch axis " + std::to_string(p.ba[i]) + " of " +
                                                   ShapeToString(a) + " and axis " + std::to_string(p.bb[i]) +
                                                   " of " + ShapeToString(b) + " differ");
    }
    if (__builtin_mul_overflow(p.batch, a[p.ba[i]], &p.batch)) return Status(ErrorKind::kBadShape, "dot: batch overflows");
    p.out_shape.push_back(a[p.ba[i]]);
  }
  auto free_axes = [&](const std::vector<uint64_t>& contract, const std::vector<uint64_t>& batch, const Shape& shape,
                       std::vector<uint64_t>& free, uint64_t& size) {
    for (uint64_t d = 0; d < shape.size(); ++d) {
      bool used = std::find(contract.begin(), contract.end(), d) != contract.end() ||
                  std::find(batch.begin(), batch.end(), d) != batch.end();
      if (used) continue;
      free.push_back(d);
      if (__builtin_mul_overflow(size, shape[d], &size)) return false;
      p.out_shape.push_back(shape[d]);
    }
    return true;
  };
  // k, m and the batch are sub-products of a's dims (b's for n), which passed the shape rule;
  // m * n is not, so the result shape is checked as a whole below.
  if (!free_axes(p.ca, p.ba, a, p.fa, p.m) || !free_axes(p.cb, p.bb, b, p.fb, p.n)) {
    return Status(ErrorKind::kBadShape, "dot: a free dimension's product overflows");
  }
  for (uint64_t d : p.ca) if (std::find(p.ba.begin(), p.ba.end(), d) != p.ba.end())
    return Status::BadArg("an axis of a is both a contraction and a batch axis");
  for (uint64_t d : p.cb) if (std::find(p.bb.begin(), p.bb.end(), d) != p.bb.end())
    return Status::BadArg("an axis of b is both a contraction and a batch axis");
  if (p.out_shape.size() > kMaxDims) return Status(ErrorKind::kBadShape, "dot's result would have more than 16 dims");
  auto n = ElementCount(p.out_shape);  // e.g. {2^40, 0} . {0, 2^40}: k = 0, but m * n = 2^80
  if (!n.ok()) return Status(ErrorKind::kBadShape, "dot's result: " + n.status().message());
  return p;
}

}  // namespace mure::ir
