// mure — the linear-algebra ops on the CPU executor, through LAPACKE's _work entry points
// (column-major, workspace queried and then reserved on the node's budget: LAPACKE's own
// allocations would not be). The plan says the precision (ir/linalg.cpp: double for every type,
// rounded once to Nx's output type when stored); both are instantiated.
//
// Each matrix of the batch is staged column-major in scratch memory, factorised, and its results
// written row-major into the output (or the tuple value's parts). LAPACK's info is mapped to a
// Status: info < 0 is a bug of ours (kInternal), info > 0 a property of the data.
#include <lapacke.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "exec/cpu_elements.h"
#include "exec/cpu_executor.h"

namespace mure::exec {
namespace {

using ir::LinalgOp;
using ir::LinalgPlan;
using li = lapack_int;
using cpu::detail::LoadF;
using cpu::detail::StoreF;

// One name per LAPACK routine for both precisions.
li getrf(li m, li n, float* a, li lda, li* ipiv) { return LAPACKE_sgetrf_work(LAPACK_COL_MAJOR, m, n, a, lda, ipiv); }
li getrf(li m, li n, double* a, li lda, li* ipiv) { return LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, m, n, a, lda, ipiv); }
li potrf(li n, float* a) { return LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n); }
li potrf(li n, double* a) { return LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n); }
li geqrf(li m, li n, float* a, float* tau, float* w, li lw) {
  return LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, m, n, a, m, tau, w, lw);
}
li geqrf(li m, li n, double* a, double* tau, double* w, li lw) {
  return LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, m, n, a, m, tau, w, lw);
}
li orgqr(li m, li n, li k, float* a, const float* tau, float* w, li lw) {
  return LAPACKE_sorgqr_work(LAPACK_COL_MAJOR, m, n, k, a, m, tau, w, lw);
}
li orgqr(li m, li n, li k, double* a, const double* tau, double* w, li lw) {
  return LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, m, n, k, a, m, tau, w, lw);
}
li syevd(li n, float* a, float* w, float* work, li lw, li* iw, li liw) {
  return LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, a, n, w, work, lw, iw, liw);
}
li syevd(li n, double* a, double* w, double* work, li lw, li* iw, li liw) {
  return LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, a, n, w, work, lw, iw, liw);
}
li gesdd(char job, li m, li n, float* a, float* s, float* u, li ldu, float* vt, li ldvt, float* w, li lw, li* iw) {
  return LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, job, m, n, a, m, s, u, ldu, vt, ldvt, w, lw, iw);
}
li gesdd(char job, li m, li n, double* a, double* s, double* u, li ldu, double* vt, li ldvt, double* w, li lw,
         li* iw) {
  return LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, job, m, n, a, m, s, u, ldu, vt, ldvt, w, lw, iw);
}
li trtrs(char uplo, char trans, li n, li nrhs, const float* a, float* b) {
  return LAPACKE_strtrs_work(LAPACK_COL_MAJOR, uplo, trans, 'N', n, nrhs, a, n, b, n);
}
li trtrs(char uplo, char trans, li n, li nrhs, const double* a, double* b) {
  return LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, uplo, trans, 'N', n, nrhs, a, n, b, n);
}
li gesv(li n, li nrhs, float* a, li* ipiv, float* b) {
  return LAPACKE_sgesv_work(LAPACK_COL_MAJOR, n, nrhs, a, n, ipiv, b, n);
}
li gesv(li n, li nrhs, double* a, li* ipiv, double* b) {
  return LAPACKE_dgesv_work(LAPACK_COL_MAJOR, n, nrhs, a, n, ipiv, b, n);
}

/// A workspace size LAPACK reported (as a float) as a count, at least 1.
uint64_t WorkCount(double reported) { return reported < 1 ? 1 : static_cast<uint64_t>(reported) + 1; }

/// The kernel of one plan in precision T.
template <typename T>
class Kernel {
 public:
  Kernel(const LinalgPlan& p, const Tensor& a, const Tensor* b, Tensor& out)
      : p_(p), a_(a), b_(b), out_(out), m_(static_cast<li>(p.m)), n_(static_cast<li>(p.n)) {}

  Status Run() {
    const char* what = "linalg";
    switch (p_.op) {
      case LinalgOp::kLu: return Lu();
      case LinalgOp::kQr: return Qr();
      case LinalgOp::kCholesky: return Cholesky();
      case LinalgOp::kEigh: return Eigh();
      case LinalgOp::kSvd: return Svd();
      case LinalgOp::kTriangularSolve: return TriangularSolve();
      case LinalgOp::kSolve: return Solve();
      case LinalgOp::kDeterminant: return Determinant();
    }
    return Status::Internal(std::string(what) + ": unknown op");
  }

 private:
  std::string Name() const { return std::string(ir::LinalgName(p_.op)); }
  uint64_t MatElems() const { return p_.m * p_.n; }

  template <typename U>
  Result<Scratch<U>> Make(uint64_t count) {
    return Scratch<U>::Make(out_.budget(), count, Name() + "'s LAPACK workspace");
  }

  /// Matrix `bi` of a, column-major into `dst` (m x n, leading dimension m); true if all finite.
  bool LoadA(uint64_t bi, T* dst) const {
    const uint64_t base = bi * MatElems();
    bool finite = true;
    for (uint64_t i = 0; i < p_.m; ++i) {
      for (uint64_t j = 0; j < p_.n; ++j) {
        const T v = static_cast<T>(LoadF(p_.a_type, a_.data(), base + i * p_.n + j));
        finite = finite && std::isfinite(v);
        dst[i + j * p_.m] = v;
      }
    }
    return finite;
  }
  /// Element (i, j) of part `k`'s matrix `bi` (rows x cols, row-major), stored as its type.
  void Put(size_t k, uint64_t bi, uint64_t rows, uint64_t cols, uint64_t i, uint64_t j, double v) {
    const ir::LinalgPart& part = p_.parts[k];
    StoreF(part.type, out_.data() + part.offset, bi * rows * cols + i * cols + j, v);
  }
  void FillNaN(size_t k, uint64_t bi, uint64_t count) {
    const ir::LinalgPart& part = p_.parts[k];
    for (uint64_t e = 0; e < count; ++e) {
      StoreF(part.type, out_.data() + part.offset, bi * count + e, std::numeric_limits<double>::quiet_NaN());
    }
  }
  Status Info(li info, const char* routine) const {
    return Status::Internal(Name() + ": LAPACK's " + routine + " rejected argument " + std::to_string(-info));
  }

  Status Lu() {
    const uint64_t n = p_.n, nn = n * n;
    auto a = Make<T>(nn);
    if (!a.ok()) return a.status();
    auto ipiv = Make<li>(n);
    if (!ipiv.ok()) return ipiv.status();
    auto perm = Make<uint64_t>(n);
    if (!perm.ok()) return perm.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      LoadA(bi, a->data());
      const li info = getrf(n_, n_, a->data(), n_, ipiv->data());
      if (info < 0) return Info(info, "getrf");  // info > 0: U has an exact zero pivot; still A = P.L.U
      // The row swaps as a permutation: row i of P^T.A is row perm[i] of A, so P[perm[i], i] = 1.
      for (uint64_t i = 0; i < n; ++i) (*perm)[i] = i;
      for (uint64_t i = 0; i < n; ++i) std::swap((*perm)[i], (*perm)[static_cast<uint64_t>((*ipiv)[i] - 1)]);
      for (uint64_t i = 0; i < n; ++i) {
        for (uint64_t j = 0; j < n; ++j) {
          Put(0, bi, n, n, i, j, 0);
          const T v = (*a)[i + j * n];
          Put(1, bi, n, n, i, j, i > j ? v : i == j ? 1 : 0);
          Put(2, bi, n, n, i, j, i <= j ? v : 0);
        }
      }
      for (uint64_t i = 0; i < n; ++i) Put(0, bi, n, n, (*perm)[i], i, 1);
    }
    return Status::Ok();
  }

  Status Qr() {
    const uint64_t m = p_.m, n = p_.n, k = std::min(m, n);
    const uint64_t qc = p_.opts.complete ? m : k, rr = p_.opts.complete ? m : k;
    auto a = Make<T>(m * n);
    if (!a.ok()) return a.status();
    auto q = Make<T>(m * qc);
    if (!q.ok()) return q.status();
    auto tau = Make<T>(k);
    if (!tau.ok()) return tau.status();
    T query1 = 0, query2 = 0;
    const li k_ = static_cast<li>(k), qc_ = static_cast<li>(qc);
    li info = geqrf(m_, n_, a->data(), tau->data(), &query1, -1);
    if (info < 0) return Info(info, "geqrf");
    if (qc > 0) {
      info = orgqr(m_, qc_, k_, q->data(), tau->data(), &query2, -1);
      if (info < 0) return Info(info, "orgqr");
    }
    const uint64_t lw = std::max(WorkCount(query1), WorkCount(query2));
    if (lw > static_cast<uint64_t>(std::numeric_limits<li>::max())) return Status::Internal(Name() + ": workspace");
    auto work = Make<T>(lw);
    if (!work.ok()) return work.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      LoadA(bi, a->data());
      info = geqrf(m_, n_, a->data(), tau->data(), work->data(), static_cast<li>(lw));
      if (info < 0) return Info(info, "geqrf");
      // Nx's sign convention: a reflection maps its column onto +norm (R's diagonal >= 0 where
      // one was applied); LAPACK's onto -sign(alpha) * norm. Row i of R and column i of Q flip
      // together, so Q.R is unchanged (+ 0.0: a flipped zero prints as 0.0, not -0.0).
      auto sign = [&](uint64_t i) { return i < k && (*tau)[i] != 0 && (*a)[i + i * m] < 0 ? -1.0 : 1.0; };
      for (uint64_t i = 0; i < rr; ++i) {
        const double si = sign(i);
        for (uint64_t j = 0; j < n; ++j) Put(1, bi, rr, n, i, j, i <= j ? si * (*a)[i + j * m] + 0.0 : 0);
      }
      if (qc == 0) continue;
      for (uint64_t j = 0; j < qc; ++j) {
        for (uint64_t i = 0; i < m; ++i) (*q)[i + j * m] = j < k ? (*a)[i + j * m] : 0;
      }
      info = orgqr(m_, qc_, k_, q->data(), tau->data(), work->data(), static_cast<li>(lw));
      if (info < 0) return Info(info, "orgqr");
      for (uint64_t i = 0; i < m; ++i) {
        for (uint64_t j = 0; j < qc; ++j) Put(0, bi, m, qc, i, j, sign(j) * (*q)[i + j * m] + 0.0);
      }
    }
    return Status::Ok();
  }

  Status Cholesky() {
    const uint64_t n = p_.n;
    auto a = Make<T>(n * n);
    if (!a.ok()) return a.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      LoadA(bi, a->data());
      const li info = potrf(n_, a->data());
      if (info < 0) return Info(info, "potrf");
      if (info > 0) {  // not positive definite: NaN, as Nx's own composition gives (a square root of < 0)
        FillNaN(0, bi, n * n);
        continue;
      }
      for (uint64_t i = 0; i < n; ++i) {
        for (uint64_t j = 0; j < n; ++j) Put(0, bi, n, n, i, j, i >= j ? (*a)[i + j * n] : 0);
      }
    }
    return Status::Ok();
  }

  Status Eigh() {
    const uint64_t n = p_.n;
    auto a = Make<T>(n * n);
    if (!a.ok()) return a.status();
    auto w = Make<T>(n);
    if (!w.ok()) return w.status();
    T wq = 0;
    li iwq = 0;
    li info = syevd(n_, a->data(), w->data(), &wq, -1, &iwq, -1);
    if (info < 0) return Info(info, "syevd");
    const uint64_t lw = WorkCount(wq), liw = iwq < 1 ? 1 : static_cast<uint64_t>(iwq);
    auto work = Make<T>(lw);
    if (!work.ok()) return work.status();
    auto iwork = Make<li>(liw);
    if (!iwork.ok()) return iwork.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      if (!LoadA(bi, a->data())) {  // NaN or infinity: no eigen decomposition (NaN, never a hang)
        FillNaN(0, bi, n);
        FillNaN(1, bi, n * n);
        continue;
      }
      info = syevd(n_, a->data(), w->data(), work->data(), static_cast<li>(lw), iwork->data(), static_cast<li>(liw));
      if (info < 0) return Info(info, "syevd");
      if (info > 0) {
        return Status(ErrorKind::kBadArg, "eigh: LAPACK's syevd did not converge on matrix " + std::to_string(bi));
      }
      for (uint64_t i = 0; i < n; ++i) {
        Put(0, bi, 1, n, 0, i, (*w)[i]);
        for (uint64_t j = 0; j < n; ++j) Put(1, bi, n, n, i, j, (*a)[i + j * n]);
      }
    }
    return Status::Ok();
  }

  Status Svd() {
    const uint64_t m = p_.m, n = p_.n, k = std::min(m, n);
    const bool full = p_.opts.full_matrices;
    const uint64_t uc = full ? m : k, vr = full ? n : k;
    auto a = Make<T>(m * n);
    if (!a.ok()) return a.status();
    auto s = Make<T>(k);
    if (!s.ok()) return s.status();
    auto u = Make<T>(m * uc);
    if (!u.ok()) return u.status();
    auto vt = Make<T>(vr * n);
    if (!vt.ok()) return vt.status();
    auto iwork = Make<li>(8 * k + 1);
    if (!iwork.ok()) return iwork.status();
    const char job = full ? 'A' : 'S';
    const li ldu = std::max<li>(1, m_), ldvt = std::max<li>(1, static_cast<li>(vr));
    T wq = 0;
    li info = 0;
    if (k > 0) {
      info = gesdd(job, m_, n_, a->data(), s->data(), u->data(), ldu, vt->data(), ldvt, &wq, -1, iwork->data());
      if (info < 0) return Info(info, "gesdd");
    }
    const uint64_t lw = WorkCount(wq);
    if (lw > static_cast<uint64_t>(std::numeric_limits<li>::max())) return Status::Internal(Name() + ": workspace");
    auto work = Make<T>(lw);
    if (!work.ok()) return work.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      if (k == 0) {  // an empty matrix: the identity completes u and vt
        for (uint64_t i = 0; i < m; ++i)
          for (uint64_t j = 0; j < uc; ++j) Put(0, bi, m, uc, i, j, i == j ? 1 : 0);
        for (uint64_t i = 0; i < vr; ++i)
          for (uint64_t j = 0; j < n; ++j) Put(2, bi, vr, n, i, j, i == j ? 1 : 0);
        continue;
      }
      if (!LoadA(bi, a->data())) {
        FillNaN(0, bi, m * uc);
        FillNaN(1, bi, k);
        FillNaN(2, bi, vr * n);
        continue;
      }
      info = gesdd(job, m_, n_, a->data(), s->data(), u->data(), ldu, vt->data(), ldvt, work->data(),
                   static_cast<li>(lw), iwork->data());
      if (info < 0) return Info(info, "gesdd");
      if (info > 0) {
        return Status(ErrorKind::kBadArg, "svd: LAPACK's gesdd did not converge on matrix " + std::to_string(bi));
      }
      for (uint64_t i = 0; i < m; ++i)
        for (uint64_t j = 0; j < uc; ++j) Put(0, bi, m, uc, i, j, (*u)[i + j * m]);
      for (uint64_t i = 0; i < k; ++i) Put(1, bi, 1, k, 0, i, (*s)[i]);
      for (uint64_t i = 0; i < vr; ++i)
        for (uint64_t j = 0; j < n; ++j) Put(2, bi, vr, n, i, j, (*vt)[i + j * static_cast<uint64_t>(ldvt)]);
    }
    return Status::Ok();
  }

  /// b's matrix `bi` as the column-major n x nrhs right-hand side of a left-side solve (for a
  /// right-side one, x.a = b is a^T.x^T = b^T: b's rows become columns).
  void LoadB(uint64_t bi, bool right, T* dst) const {
    const uint64_t n = p_.n, r = p_.nrhs, base = bi * n * r;
    for (uint64_t i = 0; i < n; ++i) {
      for (uint64_t j = 0; j < r; ++j) {
        const uint64_t src = right ? j * n + i : i * r + j;
        dst[i + j * n] = static_cast<T>(LoadF(p_.b_type, b_->data(), base + src));
      }
    }
  }
  void StoreX(uint64_t bi, bool right, const T* x) {
    const uint64_t n = p_.n, r = p_.nrhs, base = bi * n * r;
    const ir::LinalgPart& part = p_.parts[0];
    for (uint64_t i = 0; i < n; ++i) {
      for (uint64_t j = 0; j < r; ++j) {
        StoreF(part.type, out_.data(), base + (right ? j * n + i : i * r + j), x[i + j * n]);
      }
    }
  }

  Status TriangularSolve() {
    const uint64_t n = p_.n;
    const bool right = !p_.opts.left_side;
    auto a = Make<T>(n * n);
    if (!a.ok()) return a.status();
    auto x = Make<T>(n * p_.nrhs);
    if (!x.ok()) return x.status();
    // a.x = b: op(a) as asked; x.a = b: op(a)^T.x^T = b^T.
    const char trans = (p_.opts.transpose_a != right) ? 'T' : 'N';
    const char uplo = p_.opts.lower ? 'L' : 'U';
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      LoadA(bi, a->data());
      LoadB(bi, right, x->data());
      const li info = trtrs(uplo, trans, n_, static_cast<li>(p_.nrhs), a->data(), x->data());
      if (info < 0) return Info(info, "trtrs");
      if (info > 0) {
        return Status(ErrorKind::kBadArg, "triangular_solve: can't solve for singular matrix (a's diagonal is 0 at " +
                                              std::to_string(info - 1) + (p_.batch > 1 ? " in matrix " + std::to_string(bi) : "") + ")");
      }
      StoreX(bi, right, x->data());
    }
    return Status::Ok();
  }

  Status Solve() {
    const uint64_t n = p_.n;
    auto a = Make<T>(n * n);
    if (!a.ok()) return a.status();
    auto x = Make<T>(n * p_.nrhs);
    if (!x.ok()) return x.status();
    auto ipiv = Make<li>(n);
    if (!ipiv.ok()) return ipiv.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      LoadA(bi, a->data());
      LoadB(bi, false, x->data());
      const li info = gesv(n_, static_cast<li>(p_.nrhs), a->data(), ipiv->data(), x->data());
      if (info < 0) return Info(info, "gesv");
      if (info > 0) {
        return Status(ErrorKind::kBadArg, "solve: can't solve for singular matrix (U(" + std::to_string(info - 1) +
                                              ", " + std::to_string(info - 1) + ") is exactly 0" +
                                              (p_.batch > 1 ? " in matrix " + std::to_string(bi) : "") + ")");
      }
      StoreX(bi, false, x->data());
    }
    return Status::Ok();
  }

  Status Determinant() {
    const uint64_t n = p_.n;
    auto a = Make<T>(n * n);
    if (!a.ok()) return a.status();
    auto ipiv = Make<li>(n);
    if (!ipiv.ok()) return ipiv.status();
    for (uint64_t bi = 0; bi < p_.batch; ++bi) {
      LoadA(bi, a->data());
      const li info = n ? getrf(n_, n_, a->data(), n_, ipiv->data()) : 0;
      if (info < 0) return Info(info, "getrf");
      double det = 1;  // in double: a product of n pivots overflows float long before double
      for (uint64_t i = 0; i < n; ++i) {
        det *= static_cast<double>((*a)[i + i * n]);
        if ((*ipiv)[i] != static_cast<li>(i + 1)) det = -det;
      }
      StoreF(p_.parts[0].type, out_.data(), bi, det + 0.0);  // + 0.0: a zero determinant is +0.0, as Nx's
    }
    return Status::Ok();
  }

  const LinalgPlan& p_;
  const Tensor& a_;
  const Tensor* b_;
  Tensor& out_;
  li m_, n_;
};

}  // namespace

Status CpuExecutor::Linalg(const ir::LinalgPlan& plan, const Tensor& a, const Tensor* b, Tensor& out) {
  const bool needs_b = plan.op == LinalgOp::kSolve || plan.op == LinalgOp::kTriangularSolve;
  if (needs_b != (b != nullptr)) return Status::Internal("linalg kernel called with the wrong operands");
  // The plan's sizes were validated against these tensors' shapes; a mismatch here is a bug.
  const uint64_t need = plan.tuple() ? plan.packed_bytes : plan.parts[0].bytes;
  if (out.bytes() < need) return Status::Internal("linalg kernel: output smaller than planned");
  if (plan.compute == DType::kF64) return Kernel<double>(plan, a, b, out).Run();
  return Kernel<float>(plan, a, b, out).Run();
}

}  // namespace mure::exec
