// mure — what the CPU says about itself (cpuid), so kernels are chosen, never assumed.
#pragma once

#include <string>

namespace mure {

struct CpuInfo {
  std::string vendor;   ///< "AuthenticAMD", "GenuineIntel", ...
  std::string brand;    ///< the model string
  unsigned family = 0;  ///< display family (base + extended), e.g. 25 = Zen 3/4, 26 = Zen 5
  unsigned model = 0;   ///< display model
  bool avx2 = false, fma = false, avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
  unsigned online_cpus = 1;
  unsigned usable_cpus = 1;  ///< CPUs this process may run on (its affinity mask: taskset, cgroup cpusets)
  /// "AuthenticAMD family 25 model 17 (avx2 fma avx512f ...)".
  std::string Describe() const;
};

CpuInfo DetectCpu();

/// For tests only: while one lives, DetectCpu() returns `fake` instead of asking the CPU, so the
/// rules that refuse kernel sets can be checked for CPUs this machine is not. Give it a subset of
/// the real CPU's features (never more: kernels accepted for it may be run). Not thread-safe.
class FakeCpuForTesting {
 public:
  explicit FakeCpuForTesting(const CpuInfo& fake);
  ~FakeCpuForTesting();
  FakeCpuForTesting(const FakeCpuForTesting&) = delete;
  FakeCpuForTesting& operator=(const FakeCpuForTesting&) = delete;
};

}  // namespace mure
