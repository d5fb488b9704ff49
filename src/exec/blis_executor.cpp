#include "exec/blis_executor.h"

#include <blis.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/log.h"

namespace mure {
namespace {

struct Candidate {
  const char* name;
  arch_t id;
};

/// Kernel sets this CPU can execute, fastest-in-principle first.
/// aarch64: only the sets this BLIS build holds (blis.h's BLIS_CONFIG_*; Debian's arm64 build
/// holds cortexa57 alone, NEON kernels any aarch64 CPU runs): an id it lacks has no context.
std::vector<Candidate> Candidates(const CpuInfo& cpu) {
  std::vector<Candidate> out;
#if defined(__aarch64__)
#ifdef BLIS_CONFIG_ARMSVE
  if (cpu.sve) out.push_back({"armsve", BLIS_ARCH_ARMSVE});
#endif
#ifdef BLIS_CONFIG_FIRESTORM
  if (cpu.asimd) out.push_back({"firestorm", BLIS_ARCH_FIRESTORM});
#endif
#ifdef BLIS_CONFIG_THUNDERX2
  if (cpu.asimd) out.push_back({"thunderx2", BLIS_ARCH_THUNDERX2});
#endif
#ifdef BLIS_CONFIG_CORTEXA57
  if (cpu.asimd) out.push_back({"cortexa57", BLIS_ARCH_CORTEXA57});
#endif
#ifdef BLIS_CONFIG_CORTEXA53
  if (cpu.asimd) out.push_back({"cortexa53", BLIS_ARCH_CORTEXA53});
#endif
#ifdef BLIS_CONFIG_GENERIC
  out.push_back({"generic", BLIS_ARCH_GENERIC});
#endif
#else
  if (cpu.avx512f && cpu.avx512dq && cpu.avx512bw && cpu.avx512vl) out.push_back({"skx", BLIS_ARCH_SKX});
  if (cpu.avx2 && cpu.fma) {
    out.push_back({"zen3", BLIS_ARCH_ZEN3});
    out.push_back({"haswell", BLIS_ARCH_HASWELL});
  }
  out.push_back({"generic", BLIS_ARCH_GENERIC});
#endif
  return out;
}

cntx_t* ContextFor(arch_t id) { return bli_gks_lookup_nat_cntx(id); }

/// Single-thread sgemm GFLOP/s of each kernel set, n = 256: `out[i]` for `cntxs[i]` (0 for a null
/// one). The sets take turns, round by round (2 untimed rounds warm caches and pack buffers, then
/// the best of 7 timed ones per set): a spell of load from elsewhere (another node starting
/// beside this one) lands on every set alike instead of on whichever was being timed, which once
/// made one of five nodes launched together pick haswell over skx and run at half speed.
std::vector<double> Calibrate(const std::vector<cntx_t*>& cntxs) {
  constexpr dim_t n = 256;
  std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n, 0.0f);
  float one = 1.0f, zero = 0.0f;
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(1, &rntm);
  std::vector<double> best(cntxs.size(), 1e9);
  for (int round = 0; round < 9; ++round) {
    for (size_t i = 0; i < cntxs.size(); ++i) {
      if (!cntxs[i]) continue;
      auto t0 = std::chrono::steady_clock::now();
      bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, n, n, n, &one, a.data(), n, 1, b.data(), n, 1, &zero,
                   c.data(), n, 1, cntxs[i], &rntm);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (round >= 2) best[i] = std::min(best[i], s);
    }
  }
  std::vector<double> gflops(cntxs.size(), 0.0);
  for (size_t i = 0; i < cntxs.size(); ++i) {
    if (cntxs[i]) gflops[i] = 2.0 * n * n * n / best[i] / 1e9;
  }
  return gflops;
}

/// c{m,n} = a{m,k} b{k,n} on BLIS with `threads` threads; row-major with leading dimensions lda,
/// ldb, ldc (elements). Sizes derive from checked byte counts, so each fits in dim_t (int64).
void CallGemm(DType type, uint64_t m, uint64_t n, uint64_t k, const char* a, uint64_t lda, const char* b,
              uint64_t ldb, char* c, uint64_t ldc, cntx_t* cntx, unsigned threads) {
  const dim_t M = static_cast<dim_t>(m), N = static_cast<dim_t>(n), K = static_cast<dim_t>(k);
  const dim_t LA = static_cast<dim_t>(lda), LB = static_cast<dim_t>(ldb), LC = static_cast<dim_t>(ldc);
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(static_cast<dim_t>(threads), &rntm);
  auto in = [](const char* p) { return const_cast<char*>(p); };  // BLIS takes inputs as non-const
  if (type == DType::kF32) {
    float one = 1.0f, zero = 0.0f;
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, reinterpret_cast<float*>(in(a)), LA, 1,
                 reinterpret_cast<float*>(in(b)), LB, 1, &zero, reinterpret_cast<float*>(c), LC, 1, cntx, &rntm);
  } else if (type == DType::kC64) {
    // scomplex / dcomplex are {real, imag} pairs: Nx's layout, so the tensors go in as they are.
    scomplex one{1.0f, 0.0f}, zero{0.0f, 0.0f};
    bli_cgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, reinterpret_cast<scomplex*>(in(a)), LA, 1,
                 reinterpret_cast<scomplex*>(in(b)), LB, 1, &zero, reinterpret_cast<scomplex*>(c), LC, 1, cntx, &rntm);
  } else if (type == DType::kC128) {
    dcomplex one{1.0, 0.0}, zero{0.0, 0.0};
    bli_zgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, reinterpret_cast<dcomplex*>(in(a)), LA, 1,
                 reinterpret_cast<dcomplex*>(in(b)), LB, 1, &zero, reinterpret_cast<dcomplex*>(c), LC, 1, cntx, &rntm);
  } else {
    double one = 1.0, zero = 0.0;
    bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, reinterpret_cast<double*>(in(a)), LA, 1,
                 reinterpret_cast<double*>(in(b)), LB, 1, &zero, reinterpret_cast<double*>(c), LC, 1, cntx, &rntm);
  }
}

std::string Fixed(double v) {  // whole GFLOP/s; two digits below 10 (an emulated CPU: 0.25)
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2g" : "%.0f", v);
  return buf;
}

}  // namespace

BlisExecutor::~BlisExecutor() = default;

Result<std::unique_ptr<BlisExecutor>> BlisExecutor::Create(const Config& cfg) {
  std::unique_ptr<BlisExecutor> ex(new BlisExecutor());
  BlisInfo& info = ex->info_;
  info.cpu = DetectCpu();
  bli_init();
  info.version = bli_info_get_version_str();
  info.blis_default = bli_arch_string(bli_arch_query_id());
  info.threads = cfg.blis_threads ? cfg.blis_threads : info.cpu.usable_cpus;
  info.parallel = cfg.blis_parallel;
  if (info.parallel == "split" && info.threads > 1) ex->pool_ = std::make_unique<GemmPool>(info.threads);

  auto candidates = Candidates(info.cpu);
  if (cfg.blis_arch != "auto") {
    auto it = std::find_if(candidates.begin(), candidates.end(),
                           [&](const Candidate& c) { return cfg.blis_arch == c.name; });
    if (it == candidates.end()) {
      return Status(ErrorKind::kUnsupported, "blis_arch " + cfg.blis_arch + " cannot run on this CPU (" +
                                                 info.cpu.Describe() + ")");
    }
    cntx_t* cntx = ContextFor(it->id);
    if (!cntx) return Status(ErrorKind::kUnsupported, "this BLIS build has no " + cfg.blis_arch + " kernels");
    ex->cntx_ = cntx;
    info.arch = it->name;
    info.reason = "forced by config (blis_arch = " + cfg.blis_arch + ")";
  } else {
    std::vector<cntx_t*> cntxs;
    for (const auto& cand : candidates) cntxs.push_back(ContextFor(cand.id));
    const std::vector<double> gflops = Calibrate(cntxs);
    double best = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (!cntxs[i]) continue;
      info.calibration.emplace_back(candidates[i].name, gflops[i]);
      if (gflops[i] > best) {
        best = gflops[i];
        ex->cntx_ = cntxs[i];
        info.arch = candidates[i].name;
      }
    }
    if (!ex->cntx_) return Status::Internal("BLIS has no usable kernel set");
    info.reason = "calibrated at start-up (sgemm n=256, 1 thread, GFLOP/s:";
    for (auto& [name, g] : info.calibration) info.reason += " " + name + "=" + Fixed(g);
    info.reason += "); BLIS alone would pick " + info.blis_default;
  }
  LogInfo("BLIS " + info.version + ": kernels " + info.arch + ", " + std::to_string(info.threads) + " threads (" +
          (info.parallel == "split" ? "split: one single-threaded BLIS call per block of C" : "BLIS's own OpenMP threads") +
          "); " +
          info.reason + "; CPU " + info.cpu.Describe());
  return ex;
}

Status BlisExecutor::CheckGemm(const Tensor& a, const Tensor& b) {
  if (a.type() != b.type() || (a.type() != DType::kF32 && a.type() != DType::kF64)) {
    return Status(ErrorKind::kTypeMismatch, "matmul needs two {:f, 32} or two {:f, 64} tensors, got " +
                                                DTypeToString(a.type()) + " and " + DTypeToString(b.type()));
  }
  if (a.shape().size() != 2 || b.shape().size() != 2) {
    return Status(ErrorKind::kShapeMismatch, "matmul needs two matrices (rank 2), got shapes " +
                                                 ShapeToString(a.shape()) + " and " + ShapeToString(b.shape()));
  }
  if (a.shape()[1] != b.shape()[0]) {
    return Status(ErrorKind::kShapeMismatch, "matmul of " + ShapeToString(a.shape()) + " by " +
                                                 ShapeToString(b.shape()) + ": inner dimensions " +
                                                 std::to_string(a.shape()[1]) + " and " +
                                                 std::to_string(b.shape()[0]) + " differ");
  }
  return Status::Ok();
}

Status BlisExecutor::Gemm(const Tensor& a, const Tensor& b, Tensor& c) const {
  MURE_RETURN_IF_ERROR(CheckGemm(a, b));
  const uint64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  if (c.type() != a.type() || c.shape().size() != 2 || c.shape()[0] != m || c.shape()[1] != n) {
    return Status::Internal("gemm output tensor has the wrong type or shape");
  }
  return GemmRaw(a.type(), m, n, k, a.data(), b.data(), c.data());
}

Status BlisExecutor::GemmRaw(DType type, uint64_t m, uint64_t n, uint64_t k, const void* a, const void* b,
                             void* c) const {
  if (type != DType::kF32 && type != DType::kF64 && type != DType::kC64 && type != DType::kC128) {
    return Status::Internal("GemmRaw takes f32, f64, c64 or c128");
  }
  if (m == 0 || n == 0) return Status::Ok();
  if (k == 0) {
    std::memset(c, 0, m * n * DTypeSize(type));
    return Status::Ok();
  }
  auto* cntx = static_cast<cntx_t*>(cntx_);
  const size_t es = DTypeSize(type);
  const auto* ab = static_cast<const char*>(a);
  const auto* bb = static_cast<const char*>(b);
  auto* cb = static_cast<char*>(c);
  if (!pool_) {
    CallGemm(type, m, n, k, ab, k, bb, n, cb, n, cntx, info_.threads);
    return Status::Ok();
  }
  // Parts of whole 32-row (or column) blocks: 32 is a multiple of most BLIS 0.9 x86 kernels'
  // register blocks (skx sgemm 32 x 12, dgemm 16 x 14); elsewhere a part ends on one short block.
  const std::vector<GemmPart> parts = SplitGemm(m, n, k, pool_->threads(), 32);
  pool_->Run(static_cast<unsigned>(parts.size()), [&](unsigned i) {
    const GemmPart& p = parts[i];
    CallGemm(type, p.rows, p.cols, k, ab + p.row0 * k * es, k, bb + p.col0 * es, n, cb + (p.row0 * n + p.col0) * es, n,
             cntx, 1);
  });
  return Status::Ok();
}

}  // namespace mure
