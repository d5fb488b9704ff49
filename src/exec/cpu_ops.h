// mure — the op set on the CPU: elementwise maps with broadcasting and Nx's type rules,
// reductions, conversions and shape ops, written plainly and generically over all twelve types.
// Shapes and types are validated by ir/ before these run; these check only what needs the data
// (take's indices). Matrix products go to BLIS (exec/blis_executor.h), not here.
#pragma once

#include <functional>
#include <vector>

#include "ir/ops.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::cpu {

/// out = op(in); out has UnaryResultType(op, in.type()) and in's shape.
Status Unary(ir::UnaryOp op, const Tensor& in, Tensor& out);
/// out = op(a, b) with broadcasting; operands promoted to `compute` first.
Status Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out);

/// Parts of Unary and Binary, for running one op's elements on several threads: each element
/// of out depends on the same element of the operands alone. UnaryRange computes out's elements
/// [lo, hi) of Unary where FlatUnary holds (no complex type); BinaryRange those of Binary where
/// FlatBinary holds (f32 or f64 throughout, + - * /, operands of out's shape or scalars).
bool FlatUnary(const Tensor& in, const Tensor& out);
void UnaryRange(ir::UnaryOp op, const Tensor& in, Tensor& out, uint64_t lo, uint64_t hi);
bool FlatBinary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, const Tensor& out);
void BinaryRange(ir::BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, uint64_t lo, uint64_t hi);
/// out = reduction of in over plan.axes.
Status Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out);
/// out = in converted to out's type (floats to integers saturate, NaN becomes 0; integers wrap).
Status AsType(const Tensor& in, Tensor& out);
/// out = in's bytes reinterpreted (same element width).
Status Bitcast(const Tensor& in, Tensor& out);
/// out = in with axes permuted.
Status Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out);
/// out = in[starts + i * strides] per dimension (validated by ir::SliceShape).
Status Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides, Tensor& out);
/// out = take(in, indices, axis); every index is range-checked before anything is written.
Status Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out);

// ---- creation -----------------------------------------------------------------------------
/// out = the index along `axis` (or the flat index when axis < 0).
Status Iota(Tensor& out, int64_t axis);
/// out = 1 on the diagonal of the last two axes, else 0.
Status Eye(Tensor& out);
/// out = value everywhere (converted to out's type).
Status Fill(Tensor& out, const ir::Scalar& value);
/// Counter-based random numbers: element i depends only on (seed, i), so the same seed gives
/// the same numbers on every executor. Uniform in [lo, hi); normal(mean, std) by Box-Muller.
Status RandomUniform(Tensor& out, uint64_t seed, double lo, double hi);
Status RandomNormal(Tensor& out, uint64_t seed, double mean, double std);
/// The generator behind both: 64 random bits for (seed, counter).
uint64_t RandomBits(uint64_t seed, uint64_t counter);

// ---- selection ------------------------------------------------------------------------------
/// out = pred != 0 ? a : b, all three broadcast to out's shape, a and b promoted to `compute`.
Status Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out);
/// out = min(max(x, lo), hi), broadcast, promoted to `compute`.
Status Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out);

// ---- shape ------------------------------------------------------------------------------------
/// out = in broadcast to out's shape; in's dim i goes to out's axis axes[i].
Status BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out);
/// out = in reversed along `axes`.
Status Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out);
/// out = in padded (or cropped, for negative low/high) with `value`, interior padding too.
Status Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config, Tensor& out);
/// out = the inputs joined along `axis`, each converted to out's type. `shapes` are the inputs'
/// shapes as joined (stack passes them with a new size-1 axis).
Status Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                   Tensor& out);
/// out = in with `update` written at `starts` (both converted to out's type).
Status PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out);
/// The starts of a dynamic slice or put_slice (ir::DynamicSlice, ir::DynamicPutSlice): each scalar
/// integer tensor's value clamped as Nx clamps it, to [0, dims[i] - spans[i]] (`spans`: the slice's
/// lengths or the update's dims, each at most its dim: checked by the planner). Any executor
/// calls this on the host before its own Slice / PutSlice.
std::vector<int64_t> ClampedStarts(const std::vector<const Tensor*>& starts, const Shape& dims,
                                   const std::vector<uint64_t>& spans);
/// out = the elements of in at the coordinates in `indices` (last dim = rank of in); every
/// coordinate is range-checked before anything is written.
Status Gather(const Tensor& in, const Tensor& indices, Tensor& out);
/// Stable sort (or argsort, giving {:s, 64} indices) along `axis`; NaN sorts as the largest.
Status Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out);

// ---- linear algebra ------------------------------------------------------------------------------
/// A gemm for f32/f64 row-major c{m,n} = a{m,k} b{k,n} (BLIS), or empty to use plain loops.
using GemmFn = std::function<Status(DType type, uint64_t m, uint64_t n, uint64_t k, const void* a, const void* b,
                                    void* c)>;
/// out = dot(a, b) per plan, operands promoted to `compute` (out's type); f32/f64 through `gemm`
/// one batch at a time, other types with plain loops (integers wrap).
Status Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, const GemmFn& gemm, Tensor& out);
/// out = outer product: a's elements times b's, shape a.shape ++ b.shape.
Status Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out);

/// Element conversions, exposed for the tests' reference.
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BF16ToFloat(uint16_t b);
uint16_t FloatToBF16(float f);

}  // namespace mure::cpu
