// mure — the rules of the window, scatter and cumulative ops (ir::Window, ir::WindowScatter,
// ir::Indexed, ir::Cumulative): shapes, types and sizes with checked arithmetic, before any
// allocation or kernel runs. The kernels (exec/cpu_window.h) trust what these return.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "ir/ops.h"
#include "mure/status.h"
#include "mure/types.h"

namespace mure::ir {

/// The most element steps one window op may take (output elements times window elements):
/// 2^36, about a minute of one core. A larger request is refused with kBadShape before it runs.
inline constexpr uint64_t kMaxWindowWork = uint64_t{1} << 36;

/// A validated window: per dim the window size, stride, dilation and padding, and the result.
struct WindowPlan {
  std::vector<uint64_t> dims, strides, dilations, lo, hi;
  Shape out_shape;
  uint64_t window_elements = 1;
};

/// Nx's window rule (Nx.Shape.pool): per dim, padded = lo + d + hi and the dilated window
/// (dims - 1) * dilation + 1 must fit in it; the result has (padded - window) / stride + 1.
/// Strides and dilations >= 1, padding >= 0 (Nx's window ops take no negative padding), one of
/// each per dim of `in`. `op` names the request in messages.
Result<WindowPlan> PlanWindow(const char* op, const Shape& in, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& strides,
                              const std::vector<std::pair<int64_t, int64_t>>& padding,
                              const std::vector<int64_t>& dilations);

/// The reductions a window or cumulative op takes: sum, product, reduce_max, reduce_min.
Status CheckWindowReduction(const char* op, ReduceOp r);

/// A validated indexed_add / indexed_put: `axes` are the target's axes the k index columns
/// address (increasing), `rest` the others, in order; the updates' window spans `window` of
/// them (each at most the target's dim) and is written from coordinate 0 of each.
struct IndexedPlan {
  std::vector<uint64_t> axes, rest;
  Shape window;
  uint64_t rows = 0, k = 0;
};

/// indices {n, k} of an integer type, updates {n, w...} with one w per axis not in `axes`
/// (w <= the target's dim); `axes` k increasing axes of the target (empty: 0..k-1).
Result<IndexedPlan> PlanIndexed(const Shape& target, DType index_type, const Shape& indices, const Shape& updates,
                                const std::vector<int64_t>& axes);

}  // namespace mure::ir
