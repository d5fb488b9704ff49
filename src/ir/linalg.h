// mure — the linear-algebra ops' rules (Nx.LinAlg's shapes and types): lu, qr, cholesky, eigh,
// svd, triangular_solve, solve and determinant, batched over leading axes. Pure validation: the
// CPU executor (exec/cpu_linalg.cpp) runs a plan made here through LAPACK(E).
//
// lu, qr, eigh and svd yield several tensors: their node's value is a *tuple value* (the parts
// packed into one byte buffer, each at an aligned offset) that only {:elem, v, i} reads; see
// docs/protocol.md "Linear algebra".
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "mure/status.h"
#include "mure/types.h"

namespace mure::ir {

enum class LinalgOp { kLu, kQr, kCholesky, kEigh, kSvd, kTriangularSolve, kSolve, kDeterminant };

/// The op's request atom ("lu", "triangular_solve", ...).
std::string_view LinalgName(LinalgOp op);

/// Options of the ops that take some (the others ignore them).
struct LinalgOptions {
  bool complete = false;       ///< qr: mode :complete (else :reduced)
  bool full_matrices = true;   ///< svd: u {m, m} and vt {n, n} (else {m, k} and {k, n})
  bool left_side = true;       ///< triangular_solve: a.x = b (else x.a = b)
  bool lower = true;           ///< triangular_solve: a is lower triangular
  bool transpose_a = false;    ///< triangular_solve: transform_a :transpose
};

/// One result tensor of a plan, and where it sits in a tuple value.
struct LinalgPart {
  DType type = DType::kF32;
  Shape shape;
  uint64_t bytes = 0;
  uint64_t offset = 0;  ///< in the packed tuple value (0 for single-result ops)
};

/// A validated linear-algebra op: a batch of m x n matrices (and b's right-hand sides).
struct LinalgPlan {
  LinalgOp op = LinalgOp::kLu;
  LinalgOptions opts;
  DType a_type = DType::kF32, b_type = DType::kF32;
  DType compute = DType::kF64;  ///< what LAPACK runs in: kF64 (kF32 is supported by the kernels)
  uint64_t batch = 1, m = 0, n = 0;
  uint64_t nrhs = 0;        ///< solve / triangular_solve: b's columns (1 for a vector)
  bool b_vector = false;    ///< b is a batch of vectors
  std::vector<LinalgPart> parts;  ///< the results, in Nx's order
  uint64_t packed_bytes = 0;      ///< tuple ops: the packed value's size
  bool tuple() const { return parts.size() > 1; }
};

/// Offsets of tuple parts are multiples of this.
inline constexpr uint64_t kPartAlignment = 64;

/// LAPACK indexes with 32-bit integers: matrices beyond this many elements are refused.
inline constexpr uint64_t kLapackMaxElements = (1ull << 31) - 1;

/// Validate `op` on a (and b for solve / triangular_solve: pass has_b). Errors name the rule.
Result<LinalgPlan> PlanLinalg(LinalgOp op, const LinalgOptions& opts, DType a_type, const Shape& a, bool has_b,
                              DType b_type, const Shape& b);

}  // namespace mure::ir
