// mure — the op set on the CPU: elementwise maps with broadcasting and Nx's type rules,
// reductions, conversions and shape ops, written plainly and generically over all twelve types.
// Shapes and types are validated by ir/ before these run; these check only what needs the data
// (take's indices). Matrix products go to BLIS (exec/blis_executor.h), not here.
#pragma once

#include <vector>

#include "ir/ops.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::cpu {

/// out = op(in); out has UnaryResultType(op, in.type()) and in's shape.
Status Unary(ir::UnaryOp op, const Tensor& in, Tensor& out);
/// out = op(a, b) with broadcasting; operands promoted to `compute` first.
Status Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out);
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

/// Element conversions, exposed for the tests' reference.
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BF16ToFloat(uint16_t b);
uint16_t FloatToBF16(float f);

}  // namespace mure::cpu
