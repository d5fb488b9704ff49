// mure — the window, scatter and cumulative ops on the CPU (ir/window.h has their rules):
// window reductions over the op table's reductions, window_scatter (select and scatter),
// indexed add/put and cumulative scans, written plainly over all twelve types. Floats
// accumulate in double, integers on 64-bit patterns (wrapping to the type when stored), with
// each reduction's start and step taken from ir/ops.def (exec/op_dialect.h).
// Shapes and types are validated by ir/ before these run; indexed checks its indices (data).
#pragma once

#include <cstdint>
#include <optional>

#include "ir/ops.h"
#include "ir/window.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::cpu {

/// out (in's type, plan.out_shape) = `op` folded over each window of `in`, starting from `init`
/// (absent: the op's start in ir/ops.def); positions in the padding hold that start too.
Status Window(ir::ReduceOp op, const Tensor& in, const ir::WindowPlan& plan, const std::optional<ir::Scalar>& init, Tensor& out);
/// out (in's shape) = `init` everywhere, plus, for each window (source element s, row-major),
/// source[s] at the position of the window's largest (smallest) element of `in`: of equal ones
/// the last, as Nx.BinaryBackend's `greater_equal` selection; padding is never selected.
Status WindowScatter(bool max, const Tensor& in, const Tensor& source, const ir::WindowPlan& plan,
                     const ir::Scalar& init, Tensor& out);
/// out = in, then for each row r of indices (k coordinates along plan.axes) the update window
/// updates[r] added (add) or written (put, the last row wins) from there. Every coordinate is
/// range-checked before anything is written.
Status Indexed(bool add, const Tensor& in, const Tensor& indices, const Tensor& updates, const ir::IndexedPlan& plan,
               Tensor& out);
/// out[.., i, ..] = `op` of in[.., 0..i, ..] along `axis` (of in[.., i..n-1, ..] when `reverse`).
Status Cumulative(ir::ReduceOp op, const Tensor& in, uint64_t axis, bool reverse, Tensor& out);

}  // namespace mure::cpu
