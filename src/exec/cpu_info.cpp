#include "exec/cpu_info.h"

#include <cpuid.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace mure {
namespace {
std::optional<CpuInfo> g_fake_cpu;  // set only by FakeCpuForTesting
}  // namespace

FakeCpuForTesting::FakeCpuForTesting(const CpuInfo& fake) { g_fake_cpu = fake; }
FakeCpuForTesting::~FakeCpuForTesting() { g_fake_cpu.reset(); }

CpuInfo DetectCpu() {
  if (g_fake_cpu) return *g_fake_cpu;
  CpuInfo info;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    char vendor[13];
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    info.vendor = vendor;
  }
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    unsigned base_family = (a >> 8) & 0xf, ext_family = (a >> 20) & 0xff;
    unsigned base_model = (a >> 4) & 0xf, ext_model = (a >> 16) & 0xf;
    info.family = base_family == 0xf ? base_family + ext_family : base_family;
    info.model = (base_family == 0xf || base_family == 0x6) ? (ext_model << 4) + base_model : base_model;
  }
  char brand[49] = {0};
  for (unsigned i = 0; i < 3; ++i) {
    if (__get_cpuid(0x80000002 + i, &a, &b, &c, &d)) {
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  info.brand = brand;
  while (!info.brand.empty() && info.brand.back() == ' ') info.brand.pop_back();
  __builtin_cpu_init();
  info.avx2 = __builtin_cpu_supports("avx2");
  info.fma = __builtin_cpu_supports("fma");
  info.avx512f = __builtin_cpu_supports("avx512f");
  info.avx512dq = __builtin_cpu_supports("avx512dq");
  info.avx512bw = __builtin_cpu_supports("avx512bw");
  info.avx512vl = __builtin_cpu_supports("avx512vl");
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  info.online_cpus = n > 0 ? static_cast<unsigned>(n) : 1;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const int usable = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 0;
  info.usable_cpus = usable > 0 ? std::min(static_cast<unsigned>(usable), info.online_cpus) : info.online_cpus;
  return info;
}

std::string CpuInfo::Describe() const {
  std::string s = vendor + " family " + std::to_string(family) + " model " + std::to_string(model) + " (";
  const std::pair<bool, const char*> flags[] = {{avx2, "avx2"},         {fma, "fma"},           {avx512f, "avx512f"},
                                                {avx512dq, "avx512dq"}, {avx512bw, "avx512bw"}, {avx512vl, "avx512vl"}};
  bool first = true;
  for (auto& [on, name] : flags) {
    if (!on) continue;
    if (!first) s += ' ';
    s += name;
    first = false;
  }
  return s + ")";
}

}  // namespace mure
