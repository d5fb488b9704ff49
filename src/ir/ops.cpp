#include "ir/ops.h"

#include <algorithm>

namespace mure::ir {
namespace {

struct UnaryEntry { std::string_view name; UnaryOp op; };
struct BinaryEntry { std::string_view name; BinaryOp op; };
struct ReduceEntry { std::string_view name; ReduceOp op; };

constexpr UnaryEntry kUnary[] = {
    {"negate", UnaryOp::kNegate}, {"abs", UnaryOp::kAbs}, {"sign", UnaryOp::kSign}, {"floor", UnaryOp::kFloor},
    {"ceil", UnaryOp::kCeil}, {"round", UnaryOp::kRound}, {"exp", UnaryOp::kExp}, {"expm1", UnaryOp::kExpm1},
    {"log", UnaryOp::kLog}, {"log1p", UnaryOp::kLog1p}, {"sqrt", UnaryOp::kSqrt}, {"rsqrt", UnaryOp::kRsqrt},
    {"cbrt", UnaryOp::kCbrt}, {"sin", UnaryOp::kSin}, {"cos", UnaryOp::kCos}, {"tan", UnaryOp::kTan},
    {"asin", UnaryOp::kAsin}, {"acos", UnaryOp::kAcos}, {"atan", UnaryOp::kAtan}, {"sinh", UnaryOp::kSinh},
    {"cosh", UnaryOp::kCosh}, {"tanh", UnaryOp::kTanh}, {"asinh", UnaryOp::kAsinh}, {"acosh", UnaryOp::kAcosh},
    {"atanh", UnaryOp::kAtanh}, {"sigmoid", UnaryOp::kSigmoid}, {"erf", UnaryOp::kErf}, {"erfc", UnaryOp::kErfc},
    {"is_nan", UnaryOp::kIsNan}, {"is_infinity", UnaryOp::kIsInfinity}, {"logical_not", UnaryOp::kLogicalNot},
    {"bitwise_not", UnaryOp::kBitwiseNot}, {"count_leading_zeros", UnaryOp::kCountLeadingZeros},
    {"population_count", UnaryOp::kPopulationCount},
};
constexpr BinaryEntry kBinary[] = {
    {"add", BinaryOp::kAdd}, {"subtract", BinaryOp::kSubtract}, {"multiply", BinaryOp::kMultiply},
    {"divide", BinaryOp::kDivide}, {"pow", BinaryOp::kPow}, {"remainder", BinaryOp::kRemainder},
    {"quotient", BinaryOp::kQuotient}, {"atan2", BinaryOp::kAtan2}, {"min", BinaryOp::kMin},
    {"max", BinaryOp::kMax}, {"equal", BinaryOp::kEqual}, {"not_equal", BinaryOp::kNotEqual},
    {"less", BinaryOp::kLess}, {"less_equal", BinaryOp::kLessEqual}, {"greater", BinaryOp::kGreater},
    {"greater_equal", BinaryOp::kGreaterEqual}, {"logical_and", BinaryOp::kLogicalAnd},
    {"logical_or", BinaryOp::kLogicalOr}, {"logical_xor", BinaryOp::kLogicalXor},
    {"bitwise_and", BinaryOp::kBitwiseAnd}, {"bitwise_or", BinaryOp::kBitwiseOr},
    {"bitwise_xor", BinaryOp::kBitwiseXor}, {"left_shift", BinaryOp::kLeftShift},
    {"right_shift", BinaryOp::kRightShift},
};
constexpr ReduceEntry kReduce[] = {
    {"sum", ReduceOp::kSum}, {"product", ReduceOp::kProduct}, {"reduce_max", ReduceOp::kReduceMax},
    {"reduce_min", ReduceOp::kReduceMin}, {"all", ReduceOp::kAll}, {"any", ReduceOp::kAny},
    {"argmax", ReduceOp::kArgmax}, {"argmin", ReduceOp::kArgmin},
};

template <typename Table, typename Op>
std::optional<Op> Find(const Table& table, std::string_view name) {
  for (const auto& e : table) if (e.name == name) return e.op;
  return std::nullopt;
}
template <typename Table, typename Op>
std::string_view NameOf(const Table& table, Op op) {
  for (const auto& e : table) if (e.op == op) return e.name;
  return "?";
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

/// Normalise an axis (negative counts from the end) or say why it is not one.
Result<uint64_t> Axis(int64_t axis, size_t rank, const char* what) {
  int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) {
    return Status(ErrorKind::kBadArg, std::string(what) + " " + std::to_string(axis) + " is not an axis of a rank-" +
                                          std::to_string(rank) + " tensor");
  }
  return static_cast<uint64_t>(axis < 0 ? axis + r : axis);
}

}  // namespace

std::optional<UnaryOp> UnaryFromName(std::string_view n) { return Find<decltype(kUnary), UnaryOp>(kUnary, n); }
std::optional<BinaryOp> BinaryFromName(std::string_view n) { return Find<decltype(kBinary), BinaryOp>(kBinary, n); }
std::optional<ReduceOp> ReduceFromName(std::string_view n) { return Find<decltype(kReduce), ReduceOp>(kReduce, n); }
std::string_view Name(UnaryOp op) { return NameOf(kUnary, op); }
std::string_view Name(BinaryOp op) { return NameOf(kBinary, op); }
std::string_view Name(ReduceOp op) { return NameOf(kReduce, op); }
std::string UnaryNames() { return Names(kUnary); }
std::string BinaryNames() { return Names(kBinary); }
std::string ReduceNames() { return Names(kReduce); }

DType MergeTypes(DType a, DType b) {
  if (a == b) return a;
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

DType ToFloating(DType t) { return IsFloat(t) ? t : DType::kF32; }

Result<DType> UnaryResultType(UnaryOp op, DType in) {
  switch (op) {
    case UnaryOp::kNegate: case UnaryOp::kAbs: case UnaryOp::kSign:
    case UnaryOp::kFloor: case UnaryOp::kCeil: case UnaryOp::kRound:
      return in;
    case UnaryOp::kIsNan: case UnaryOp::kIsInfinity: case UnaryOp::kLogicalNot:
      return DType::kU8;
    case UnaryOp::kBitwiseNot: case UnaryOp::kCountLeadingZeros: case UnaryOp::kPopulationCount:
      if (IsFloat(in)) return NeedsIntegers(Name(op), in);
      return in;
    default:
      return ToFloating(in);
  }
}

Result<BinaryTypes> BinaryResultTypes(BinaryOp op, DType a, DType b) {
  const DType m = MergeTypes(a, b);
  switch (op) {
    case BinaryOp::kDivide: case BinaryOp::kAtan2:
      return BinaryTypes{ToFloating(m), ToFloating(m)};
    case BinaryOp::kEqual: case BinaryOp::kNotEqual: case BinaryOp::kLess: case BinaryOp::kLessEqual:
    case BinaryOp::kGreater: case BinaryOp::kGreaterEqual: case BinaryOp::kLogicalAnd: case BinaryOp::kLogicalOr:
    case BinaryOp::kLogicalXor:
      return BinaryTypes{m, DType::kU8};
    case BinaryOp::kQuotient: case BinaryOp::kBitwiseAnd: case BinaryOp::kBitwiseOr: case BinaryOp::kBitwiseXor:
    case BinaryOp::kLeftShift: case BinaryOp::kRightShift:
      if (IsFloat(m)) {
        return Status(ErrorKind::kTypeMismatch, std::string(Name(op)) + " takes integer tensors, got " +
                                                    DTypeToString(a) + " and " + DTypeToString(b));
      }
      return BinaryTypes{m, m};
    default:
      return BinaryTypes{m, m};
  }
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
  return out;
}

Result<ReducePlan> PlanReduce(ReduceOp op, DType in, const Shape& shape, const std::vector<int64_t>& axes,
                              bool keep_axes) {
  ReducePlan plan;
  for (int64_t a : axes) {
    auto ax = Axis(a, shape.size(), "reduction axis");
    if (!ax.ok()) return ax.status();
    if (std::find(plan.axes.begin(), plan.axes.end(), *ax) != plan.axes.end()) {
      return Status::BadArg("reduction axis " + std::to_string(*ax) + " is given twice");
    }
    plan.axes.push_back(*ax);
  }
  std::sort(plan.axes.begin(), plan.axes.end());
  if (op == ReduceOp::kArgmax || op == ReduceOp::kArgmin) {
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
  switch (op) {
    case ReduceOp::kSum: case ReduceOp::kProduct:
      plan.out_type = IsFloat(in) ? in : IsSigned(in) ? DType::kS64 : DType::kU64;
      break;
    case ReduceOp::kReduceMax: case ReduceOp::kReduceMin:
      plan.out_type = in;
      break;
    case ReduceOp::kAll: case ReduceOp::kAny:
      plan.out_type = DType::kU8;
      break;
    case ReduceOp::kArgmax: case ReduceOp::kArgmin:
      plan.out_type = DType::kS64;
      break;
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
    const uint64_t start = static_cast<uint64_t>(starts[i]), len = static_cast<uint64_t>(lengths[i]),
                   stride = static_cast<uint64_t>(strides[i]);
    if (len > 0) {
      uint64_t last = 0;  // start + (len - 1) * stride, checked
      if (__builtin_mul_overflow(len - 1, stride, &last) || __builtin_add_overflow(last, start, &last) ||
          last >= in[i]) {
        return Status(ErrorKind::kOutOfRange, "slice of dimension " + std::to_string(i) + " (size " +
                                                  std::to_string(in[i]) + ") from " + std::to_string(start) + ", " +
                                                  std::to_string(len) + " elements with stride " +
                                                  std::to_string(stride) + " runs past its end");
      }
    } else if (start > in[i]) {
      return Status(ErrorKind::kOutOfRange, "slice start " + std::to_string(start) + " is past dimension " +
                                                std::to_string(i) + " (size " + std::to_string(in[i]) + ")");
    }
    out[i] = len;
  }
  return out;
}

Result<Shape> TakeShape(const Shape& in, DType index_type, const Shape& indices, int64_t axis) {
  if (IsFloat(index_type)) {
    return Status(ErrorKind::kTypeMismatch, "take's indices must be integers, got " + DTypeToString(index_type));
  }
  auto ax = Axis(axis, in.size(), "take axis");
  if (!ax.ok()) return ax.status();
  Shape out(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(*ax));
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(*ax) + 1, in.end());
  if (out.size() > kMaxDims) return Status(ErrorKind::kBadShape, "take's result would have more than 16 dimensions");
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

}  // namespace mure::ir
