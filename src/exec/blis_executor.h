// mure — matrix products on BLIS, with the kernel set chosen on purpose.
//
// Debian's BLIS is a fat build that picks its kernels from the CPU at start-up, and picks the
// slow generic ones on CPUs it does not know (Zen 5). The node instead calibrates the candidate
// kernel sets this CPU can run (a few milliseconds at start) and uses the fastest through BLIS's
// expert API, or uses the one the config names. The choice and the reason are reported.
//
// Threads: with blis_parallel = split (the default) a product is cut into blocks of C, each one a
// single-threaded BLIS call on its own thread of a small pool (exec/gemm_pool.h: BLIS's own
// threads spin at barriers, which costs whole time slices whenever a core is shared); with
// blis_parallel = blis, BLIS's OpenMP threads do the whole product.
//
// Thread-safety: Gemm may be called from several threads; each call uses its own runtime object.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "exec/cpu_info.h"
#include "exec/gemm_pool.h"
#include "mure/config.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure {

struct BlisInfo {
  std::string arch;          ///< kernel set in use: "skx", "zen3", "haswell", "generic"
  std::string reason;        ///< why: calibration figures or "forced by config"
  std::string blis_default;  ///< what BLIS itself would have picked
  std::string version;       ///< BLIS version string
  unsigned threads = 1;      ///< threads per call
  std::string parallel;      ///< "split" (the node's threads, one BLIS call per block) or "blis" (OpenMP)
  CpuInfo cpu;
  std::vector<std::pair<std::string, double>> calibration;  ///< arch -> sgemm GFLOP/s, 1 thread
};

class BlisExecutor {
 public:
  /// Initialise BLIS and choose the kernel set (cfg.blis_arch: auto calibrates).
  static Result<std::unique_ptr<BlisExecutor>> Create(const Config& cfg);
  ~BlisExecutor();

  /// c = a x b for row-major a {m, k}, b {k, n}, c {m, n}; all f32 or all f64. Validates every
  /// dimension and type before BLIS sees them (BLIS aborts on argument errors).
  Status Gemm(const Tensor& a, const Tensor& b, Tensor& c) const;

  /// c{m,n} = a{m,k} b{k,n}, row-major contiguous f32 or f64 buffers (sizes already validated).
  Status GemmRaw(DType type, uint64_t m, uint64_t n, uint64_t k, const void* a, const void* b, void* c) const;

  /// The result shape and type of a x b, or the reason there is none.
  static Status CheckGemm(const Tensor& a, const Tensor& b);

  const BlisInfo& info() const { return info_; }

  /// The threads products are split over (null: one thread, or BLIS's own threads). The CPU
  /// executor splits large elementwise ops over the same pool: one set of threads for the node's
  /// CPU work, so two ops never oversubscribe the cores (the second runs on its caller alone).
  GemmPool* pool() const { return pool_.get(); }

 private:
  BlisExecutor() = default;
  void* cntx_ = nullptr;  ///< cntx_t* of the chosen kernel set
  std::unique_ptr<GemmPool> pool_;  ///< split mode with more than one thread
  BlisInfo info_;
};

}  // namespace mure
