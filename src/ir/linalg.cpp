#include "ir/linalg.h"

#include <string>

#include "ir/ops.h"

namespace mure::ir {

std::string_view LinalgName(LinalgOp op) {
  switch (op) {
    case LinalgOp::kLu: return "lu";
    case LinalgOp::kQr: return "qr";
    case LinalgOp::kCholesky: return "cholesky";
    case LinalgOp::kEigh: return "eigh";
    case LinalgOp::kSvd: return "svd";
    case LinalgOp::kTriangularSolve: return "triangular_solve";
    case LinalgOp::kSolve: return "solve";
    case LinalgOp::kDeterminant: return "determinant";
  }
  return "?";
}

namespace {

Shape With(const Shape& batch, std::initializer_list<uint64_t> tail) {
  Shape s = batch;
  s.insert(s.end(), tail.begin(), tail.end());
  return s;
}

Status Bad(LinalgOp op, ErrorKind kind, const std::string& why) {
  return Status(kind, std::string(LinalgName(op)) + ": " + why);
}

}  // namespace

Result<LinalgPlan> PlanLinalg(LinalgOp op, const LinalgOptions& opts, DType a_type, const Shape& a, bool has_b,
                              DType b_type, const Shape& b) {
  LinalgPlan p;
  p.op = op;
  p.opts = opts;
  p.a_type = a_type;
  p.b_type = b_type;
  const bool needs_b = op == LinalgOp::kTriangularSolve || op == LinalgOp::kSolve;
  if (needs_b != has_b) return Status::Internal("linalg planned with the wrong operands");
  if (IsComplex(a_type) || (has_b && IsComplex(b_type))) {
    return Bad(op, ErrorKind::kTypeMismatch,
               "takes real matrices only (the node's LAPACK ops are real), got " +
                   DTypeToString(IsComplex(a_type) ? a_type : b_type));
  }
  if (a.size() < 2) {
    return Bad(op, ErrorKind::kBadShape, "needs a matrix or a batch of matrices (rank 2 or more), got shape " +
                                             ShapeToString(a));
  }
  const Shape batch(a.begin(), a.end() - 2);
  p.m = a[a.size() - 2];
  p.n = a[a.size() - 1];
  auto count = ElementCount(batch);
  if (!count.ok()) return count.status();
  p.batch = *count;
  const bool square_only = op != LinalgOp::kQr && op != LinalgOp::kSvd;
  if (square_only && p.m != p.n) {
    return Bad(op, ErrorKind::kShapeMismatch, "needs square matrices, got shape " + ShapeToString(a));
  }
  uint64_t elems = 0;
  if (__builtin_mul_overflow(p.m, p.n, &elems) || elems > kLapackMaxElements) {
    return Bad(op, ErrorKind::kBadShape, "a matrix of " + std::to_string(p.m) + " x " + std::to_string(p.n) +
                                             " is beyond LAPACK's 32-bit indexing (at most 2^31 - 1 elements)");
  }
  DType out = ToFloating(a_type);
  if (has_b) out = ToFloating(MergeTypes(a_type, b_type));
  // LAPACK runs in double for every type: an f32 result is then LAPACK's double result rounded
  // once, as Nx.BinaryBackend's (which computes in f64) - single-precision LAPACK differs from
  // it in the last places of every printed f32 (Nx's own doctests show it).
  p.compute = DType::kF64;
  const uint64_t m = p.m, n = p.n, k = std::min(p.m, p.n);
  switch (op) {
    case LinalgOp::kLu:
      p.parts = {{a_type, a}, {out, a}, {out, a}};
      break;
    case LinalgOp::kQr:
      if (opts.complete) p.parts = {{out, With(batch, {m, m})}, {out, With(batch, {m, n})}};
      else p.parts = {{out, With(batch, {m, k})}, {out, With(batch, {k, n})}};
      break;
    case LinalgOp::kCholesky:
      p.parts = {{out, a}};
      break;
    case LinalgOp::kEigh:
      p.parts = {{out, With(batch, {n})}, {out, a}};
      break;
    case LinalgOp::kSvd:
      if (opts.full_matrices) {
        p.parts = {{out, With(batch, {m, m})}, {out, With(batch, {k})}, {out, With(batch, {n, n})}};
      } else {
        p.parts = {{out, With(batch, {m, k})}, {out, With(batch, {k})}, {out, With(batch, {k, n})}};
      }
      break;
    case LinalgOp::kDeterminant:
      p.parts = {{out, batch}};
      break;
    case LinalgOp::kTriangularSolve:
    case LinalgOp::kSolve: {
      // Nx.Shape.triangular_solve / solve: b is a batch of vectors {..., n} or of matrices
      // {..., n, k} (left side) / {..., k, n} (triangular_solve's right side), a's batch shape.
      const bool right = op == LinalgOp::kTriangularSolve && !opts.left_side;
      const bool as_vector = b.size() == a.size() - 1 && Shape(b.begin(), b.end() - 1) == batch && b.back() == n;
      const bool as_matrix = b.size() == a.size() && Shape(b.begin(), b.end() - 2) == batch &&
                             (right ? b.back() == n : b[b.size() - 2] == n);
      if (!as_vector && !as_matrix) {
        return Bad(op, ErrorKind::kShapeMismatch,
                   "incompatible dimensions for a " + ShapeToString(a) + " and b " + ShapeToString(b) +
                       ": b must have a's batch shape and end in {" + std::to_string(n) + "} or " +
                       (right ? "{k, " + std::to_string(n) + "}" : "{" + std::to_string(n) + ", k}"));
      }
      p.b_vector = as_vector;
      p.nrhs = as_vector ? 1 : (right ? b[b.size() - 2] : b.back());
      uint64_t b_elems = 0;
      if (__builtin_mul_overflow(p.nrhs, n, &b_elems) || b_elems > kLapackMaxElements) {
        return Bad(op, ErrorKind::kBadShape, "b's matrices are beyond LAPACK's 32-bit indexing");
      }
      p.parts = {{out, b}};
      break;
    }
  }
  // Sizes and the packed layout, with checked arithmetic.
  for (LinalgPart& part : p.parts) {
    auto bytes = ByteSize(part.type, part.shape);
    if (!bytes.ok()) return bytes.status();
    part.bytes = *bytes;
  }
  if (p.tuple()) {
    uint64_t at = 0;
    for (LinalgPart& part : p.parts) {
      part.offset = at;
      uint64_t end = 0, rounded = 0;
      if (__builtin_add_overflow(at, part.bytes, &end) ||
          __builtin_add_overflow(end, kPartAlignment - 1, &rounded)) {
        return Bad(op, ErrorKind::kBadShape, "results of more than 2^64 bytes");
      }
      at = rounded / kPartAlignment * kPartAlignment;
    }
    p.packed_bytes = at;
  }
  return p;
}

}  // namespace mure::ir
