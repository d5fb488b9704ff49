#include "ir/window.h"

#include <string>

namespace mure::ir {
namespace {

std::string Dim(size_t i) { return "dimension " + std::to_string(i); }

}  // namespace

Status CheckWindowReduction(const char* op, ReduceOp r) {
  if (r == ReduceOp::kSum || r == ReduceOp::kProduct || r == ReduceOp::kReduceMax || r == ReduceOp::kReduceMin) {
    return Status::Ok();
  }
  return Status::BadArg(std::string(op) + " takes sum, product, reduce_max or reduce_min, not " +
                        std::string(Name(r)));
}

Result<WindowPlan> PlanWindow(const char* op, const Shape& in, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& strides,
                              const std::vector<std::pair<int64_t, int64_t>>& padding,
                              const std::vector<int64_t>& dilations) {
  const size_t rank = in.size();
  const std::string name(op);
  if (dims.size() != rank || strides.size() != rank || padding.size() != rank || dilations.size() != rank) {
    return Status(ErrorKind::kShapeMismatch,
                  name + " of a rank-" + std::to_string(rank) + " tensor needs " + std::to_string(rank) +
                      " window dims, strides, {lo, hi} paddings and dilations; got " + std::to_string(dims.size()) +
                      ", " + std::to_string(strides.size()) + ", " + std::to_string(padding.size()) + " and " +
                      std::to_string(dilations.size()));
  }
  WindowPlan p;
  constexpr int64_t kLimit = int64_t{1} << 48;  // keeps every sum and product below in range
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 1) return Status::BadArg(name + ": the window's " + Dim(i) + " must be at least 1");
    if (strides[i] < 1) return Status::BadArg(name + ": the stride of " + Dim(i) + " must be at least 1");
    if (dilations[i] < 1) return Status::BadArg(name + ": the dilation of " + Dim(i) + " must be at least 1");
    const auto [lo, hi] = padding[i];
    if (lo < 0 || hi < 0) return Status::BadArg(name + ": the padding of " + Dim(i) + " must be >= 0");
    if (lo > kLimit || hi > kLimit || dims[i] > kLimit || strides[i] > kLimit || dilations[i] > kLimit) {
      return Status(ErrorKind::kBadShape, name + ": the window, stride, dilation or padding of " + Dim(i) +
                                              " is too large (at most 2^48)");
    }
    // padded = lo + d + hi; span = (w - 1) * dilation + 1: both checked.
    uint64_t padded = 0, span = 0;
    if (__builtin_add_overflow(in[i], static_cast<uint64_t>(lo + hi), &padded) ||
        __builtin_mul_overflow(static_cast<uint64_t>(dims[i] - 1), static_cast<uint64_t>(dilations[i]), &span) ||
        __builtin_add_overflow(span, uint64_t{1}, &span)) {
      return Status(ErrorKind::kBadShape, name + ": the padded " + Dim(i) + " or the dilated window overflows");
    }
    if (span > padded) {
      return Status(ErrorKind::kShapeMismatch, name + ": the window of " + Dim(i) + " spans " + std::to_string(span) +
                                                   " elements (dilated), more than the " + std::to_string(padded) +
                                                   " of the padded tensor");
    }
    p.dims.push_back(static_cast<uint64_t>(dims[i]));
    p.strides.push_back(static_cast<uint64_t>(strides[i]));
    p.dilations.push_back(static_cast<uint64_t>(dilations[i]));
    p.lo.push_back(static_cast<uint64_t>(lo));
    p.hi.push_back(static_cast<uint64_t>(hi));
    p.out_shape.push_back((padded - span) / static_cast<uint64_t>(strides[i]) + 1);
    if (__builtin_mul_overflow(p.window_elements, p.dims.back(), &p.window_elements)) {
      return Status(ErrorKind::kBadShape, name + ": the window holds 2^64 elements or more");
    }
  }
  auto n = ElementCount(p.out_shape);
  if (!n.ok()) return n.status();
  uint64_t work = 0;
  if (__builtin_mul_overflow(*n, p.window_elements, &work) || work > kMaxWindowWork) {
    return Status(ErrorKind::kBadShape, name + ": " + std::to_string(*n) + " windows of " +
                                            std::to_string(p.window_elements) +
                                            " elements are more than the 2^36 element steps one request may take");
  }
  return p;
}

Result<IndexedPlan> PlanIndexed(const Shape& target, DType index_type, const Shape& indices, const Shape& updates,
                                const std::vector<int64_t>& axes) {
  if (IsFloat(index_type)) {
    return Status(ErrorKind::kTypeMismatch, "indexed's indices must be integers, got " + DTypeToString(index_type));
  }
  if (indices.size() != 2) {
    return Status(ErrorKind::kShapeMismatch, "indexed's indices must be a {n, k} matrix, got the shape " +
                                                 ShapeToString(indices));
  }
  IndexedPlan p;
  p.rows = indices[0];
  p.k = indices[1];
  const size_t rank = target.size();
  if (p.k > rank) {
    return Status(ErrorKind::kShapeMismatch, "indexed: " + std::to_string(p.k) + " index columns for a rank-" +
                                                 std::to_string(rank) + " tensor");
  }
  std::vector<bool> used(rank, false);
  if (axes.empty()) {
    for (uint64_t a = 0; a < p.k; ++a) p.axes.push_back(a);
  } else {
    if (axes.size() != p.k) {
      return Status::BadArg("indexed: " + std::to_string(axes.size()) + " axes for " + std::to_string(p.k) +
                            " index columns");
    }
    for (int64_t a : axes) {
      auto ax = NormalizeAxis(a, rank, "indexed axis");
      if (!ax.ok()) return ax.status();
      if (!p.axes.empty() && *ax <= p.axes.back()) return Status::BadArg("indexed: axes must be strictly increasing");
      p.axes.push_back(*ax);
    }
  }
  for (uint64_t a : p.axes) used[a] = true;
  for (uint64_t d = 0; d < rank; ++d) if (!used[d]) p.rest.push_back(d);
  if (updates.size() != 1 + p.rest.size() || updates[0] != p.rows) {
    return Status(ErrorKind::kShapeMismatch, "indexed: updates of shape " + ShapeToString(updates) +
                                                 " for indices " + ShapeToString(indices) + " into " +
                                                 ShapeToString(target) + " must be {" + std::to_string(p.rows) +
                                                 "} followed by one dim per axis not indexed (" +
                                                 std::to_string(p.rest.size()) + ")");
  }
  for (size_t j = 0; j < p.rest.size(); ++j) {
    if (updates[j + 1] > target[p.rest[j]]) {
      return Status(ErrorKind::kShapeMismatch, "indexed: dimension " + std::to_string(j + 1) + " of the updates " +
                                                   ShapeToString(updates) + " is larger than axis " +
                                                   std::to_string(p.rest[j]) + " of " + ShapeToString(target));
    }
    p.window.push_back(updates[j + 1]);
  }
  return p;
}

}  // namespace mure::ir
