// mure — what the CPU says about itself (cpuid), so kernels are chosen, never assumed.
#pragma once

#include <string>

namespace mure {

/// x86-64: cpuid. aarch64: MIDR_EL1 (the kernel, or qemu-user, emulates the read at EL0) and the
/// hwcaps; vendor is the implementer's name, family its code, model the part number.
struct CpuInfo {
  std::string vendor;   ///< "AuthenticAMD", "GenuineIntel", ...; aarch64: "ARM", "Qualcomm", ...
  std::string brand;    ///< the model string (aarch64: what /proc/cpuinfo names, if anything)
  unsigned family = 0;  ///< display family (base + extended), e.g. 25 = Zen 3/4, 26 = Zen 5; aarch64: implementer
  unsigned model = 0;   ///< display model; aarch64: part number (MIDR_EL1 bits 15:4)
  bool aarch64 = false;
  bool avx2 = false, fma = false, avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
  bool asimd = false, sve = false, dotprod = false, fp16 = false;  ///< aarch64 (hwcaps)
  unsigned online_cpus = 1;
  unsigned usable_cpus = 1;  ///< CPUs this process may run on (its affinity mask: taskset, cgroup cpusets)
  /// "AuthenticAMD family 25 model 17 (avx2 fma avx512f ...)";
  /// aarch64: "aarch64 ARM implementer 0x41 part 0xd0c (asimd dotprod fp16)".
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
