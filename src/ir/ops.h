// mure — the op set's rules: which ops exist, which types they take and give, and the shapes they
// produce (Nx's names, type tuples and broadcasting). This is the IR's validation layer: every
// check happens here, before any allocation or kernel runs, and every rejection names the
// argument and the reason.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mure/status.h"
#include "mure/types.h"

namespace mure::ir {

// The op families, one enumerator per row of ir/ops.def (in its order).
enum class UnaryOp {
#define MURE_UNARY(Id, name, rule, fexpr, iexpr, fusible, exact) k##Id,
#include "ir/ops.def"
};

enum class BinaryOp {
#define MURE_BINARY(Id, name, rule, fexpr, iexpr, fusible, exact) k##Id,
#include "ir/ops.def"
};

enum class ReduceOp {
#define MURE_REDUCE(Id, name, rule, fusible, ...) k##Id,
#include "ir/ops.def"
};

/// The type-rule classes of ir/ops.def (its header says what each means).
enum class UnaryRule { kSame, kFloating, kPredicate, kIntegerOnly, kComplex, kComplexPart };
enum class BinaryRule { kMerge, kFloating, kCompare, kIntegerOnly };
enum class ReduceRule { kWiden, kSame, kPredicate, kIndex };

/// What ir/ops.def says of one op.
struct UnaryInfo {
  UnaryOp op;
  std::string_view name;
  UnaryRule rule;
  bool fusible;  ///< may be a step of a fused f32 chain
  bool exact;    ///< CPU and OpenCL give the same bits (false: transcendental, within README's bound)
  bool has_float, has_integer;  ///< which formulas the row has
};
struct BinaryInfo {
  BinaryOp op;
  std::string_view name;
  BinaryRule rule;
  bool fusible, exact, has_float, has_integer;
};
struct ReduceInfo {
  ReduceOp op;
  std::string_view name;
  ReduceRule rule;
  bool fusible;
};
/// Every row of each family, in the table's order.
const std::vector<UnaryInfo>& UnaryTable();
const std::vector<BinaryInfo>& BinaryTable();
const std::vector<ReduceInfo>& ReduceTable();
const UnaryInfo& Info(UnaryOp op);
const BinaryInfo& Info(BinaryOp op);
const ReduceInfo& Info(ReduceOp op);

/// The complex table's rules (ir/ops.def): what a unary op gives for a complex operand.
enum class ComplexRule { kSame, kReal, kPredicate };
/// The op's complex row, or nullopt when it does not take complex operands.
std::optional<ComplexRule> ComplexUnaryRule(UnaryOp op);
bool TakesComplex(BinaryOp op);
bool TakesComplex(ReduceOp op);

std::optional<UnaryOp> UnaryFromName(std::string_view name);
std::optional<BinaryOp> BinaryFromName(std::string_view name);
std::optional<ReduceOp> ReduceFromName(std::string_view name);
std::string_view Name(UnaryOp op);
std::string_view Name(BinaryOp op);
std::string_view Name(ReduceOp op);
/// Space-separated names of each family (for hello and error messages).
std::string UnaryNames();
std::string BinaryNames();
std::string ReduceNames();

inline bool IsFloat(DType t) { return t == DType::kF16 || t == DType::kBF16 || t == DType::kF32 || t == DType::kF64; }
inline bool IsSigned(DType t) { return t == DType::kS8 || t == DType::kS16 || t == DType::kS32 || t == DType::kS64; }
inline bool IsUnsigned(DType t) { return t == DType::kU8 || t == DType::kU16 || t == DType::kU32 || t == DType::kU64; }
inline bool IsComplex(DType t) { return t == DType::kC64 || t == DType::kC128; }
inline bool IsInteger(DType t) { return !IsFloat(t) && !IsComplex(t); }
/// The real type of a complex type's parts ({:c, 64} -> {:f, 32}); other types unchanged.
inline DType RealPart(DType t) { return t == DType::kC64 ? DType::kF32 : t == DType::kC128 ? DType::kF64 : t; }
/// Nx.Type.to_complex: {:f, 64} -> {:c, 128}, complex stays, everything else -> {:c, 64}.
inline DType ToComplex(DType t) { return IsComplex(t) ? t : t == DType::kF64 ? DType::kC128 : DType::kC64; }

/// Nx.Type.merge: the type two operands are promoted to ({:s, 32} + {:f, 32} -> {:f, 32}).
DType MergeTypes(DType a, DType b);
/// Nx.Type.to_floating: floats stay, integers become {:f, 32}.
DType ToFloating(DType t);

/// The result type of a unary op on `in`, or the reason it does not apply.
Result<DType> UnaryResultType(UnaryOp op, DType in);
/// The type the operands are promoted to before a binary op (`compute`) and the result type.
struct BinaryTypes {
  DType compute;
  DType result;
};
Result<BinaryTypes> BinaryResultTypes(BinaryOp op, DType a, DType b);
/// Nx's broadcasting: align from the right; each pair of dims equal, or one of them 1.
Result<Shape> BroadcastShapes(const Shape& a, const Shape& b);

/// Validated reduction: sorted unique axes and the output shape (with or without kept axes).
struct ReducePlan {
  std::vector<uint64_t> axes;
  Shape out_shape;
  DType out_type = DType::kF32;
};
Result<ReducePlan> PlanReduce(ReduceOp op, DType in, const Shape& shape, const std::vector<int64_t>& axes,
                              bool keep_axes);

/// A slice, as Nx.slice/4: start, length and stride per dim. The length is the span of the input,
/// [start, start + length), which must lie inside the dim (refused with kOutOfRange, never
/// clamped); the output keeps every stride-th element of it, ceil(length / stride) of them.
Result<Shape> SliceShape(const Shape& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& lengths,
                         const std::vector<int64_t>& strides);
/// dynamic_slice's lengths and strides (its starts are clamped to fit when it runs): one each per
/// dim, each length in 0..dim, each stride at least 1; the result shape as SliceShape's.
Result<Shape> DynamicSliceShape(const Shape& in, const std::vector<int64_t>& lengths,
                                const std::vector<int64_t>& strides);
/// take(t, indices, axis): t.shape[:axis] ++ indices.shape ++ t.shape[axis+1:]; indices integer.
Result<Shape> TakeShape(const Shape& in, DType index_type, const Shape& indices, int64_t axis);
/// A number sent with a request (a fill or pad value, a random range): integer or float.
struct Scalar {
  bool integer = true;
  int64_t i = 0;
  double f = 0;
  double im = 0;  ///< the imaginary part of a complex scalar ({re, im} on the wire; integer is false)
  double AsDouble() const { return integer ? static_cast<double>(i) : f; }
};

/// Normalise an axis (negative counts from the end), or kBadArg naming `what`.
Result<uint64_t> NormalizeAxis(int64_t axis, size_t rank, const char* what);

/// broadcast(t, shape, axes): axes[i] is where t's dim i goes; each dim is 1 or equal to it.
Status CheckBroadcastTo(const Shape& in, const Shape& out, const std::vector<int64_t>& axes);
/// pad: per dim {low, high, interior}; low/high may be negative (cropping), interior >= 0.
struct PadDim {
  int64_t lo = 0, hi = 0, interior = 0;
};
Result<Shape> PadShape(const Shape& in, const std::vector<PadDim>& config);
/// concatenate along `axis`: all ranks equal, all dims equal but the axis.
Result<Shape> ConcatShape(const std::vector<Shape>& ins, uint64_t axis);
/// put_slice: the update fits inside the tensor at `starts` (no clamping: outside is an error).
Status CheckPutSlice(const Shape& in, const std::vector<int64_t>& starts, const Shape& update);
/// dynamic_put_slice: the update has the tensor's rank and fits in it (its starts are clamped to
/// keep it inside when it runs).
Status CheckDynamicPutSlice(const Shape& in, const Shape& update);
/// gather(t, indices): indices' last dim has rank(t) entries (full coordinates); result shape is
/// indices.shape without its last dim.
Result<Shape> GatherShape(const Shape& in, DType index_type, const Shape& indices);
/// dot with contraction and batch axes (Nx.dot/6): the normalised axes and the result shape
/// (batch dims, then a's free dims, then b's free dims).
struct DotPlan {
  std::vector<uint64_t> ca, ba, cb, bb;  ///< contraction and batch axes of a and b
  std::vector<uint64_t> fa, fb;          ///< free axes of a and b
  uint64_t batch = 1, m = 1, k = 1, n = 1;
  Shape out_shape;
};
Result<DotPlan> PlanDot(const Shape& a, const std::vector<int64_t>& ca, const std::vector<int64_t>& ba, const Shape& b,
                        const std::vector<int64_t>& cb, const std::vector<int64_t>& bb);

/// A reshape keeps the element count.
Status CheckReshape(const Shape& in, const Shape& out);
/// A transpose's axes are a permutation of 0..rank-1. Returns the output shape.
Result<Shape> TransposeShape(const Shape& in, const std::vector<int64_t>& perm);

}  // namespace mure::ir
