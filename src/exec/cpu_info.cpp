#include "exec/cpu_info.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>

#include <fstream>
#endif
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

namespace mure {
namespace {
std::optional<CpuInfo> g_fake_cpu;  // set only by FakeCpuForTesting

void CountCpus(CpuInfo& info) {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  info.online_cpus = n > 0 ? static_cast<unsigned>(n) : 1;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const int usable = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 0;
  info.usable_cpus = usable > 0 ? std::min(static_cast<unsigned>(usable), info.online_cpus) : info.online_cpus;
}

std::string Hex(unsigned v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, v);
  return buf;
}

#if defined(__aarch64__)
/// The implementer codes of MIDR_EL1 (Arm ARM, D19.2.100); 0x00 is "reserved for software use",
/// which is what qemu's emulated "max" CPU reports.
const char* Implementer(unsigned code) {
  switch (code) {
    case 0x00: return "software (emulator)";
    case 0x41: return "ARM";
    case 0x42: return "Broadcom";
    case 0x43: return "Cavium";
    case 0x46: return "Fujitsu";
    case 0x48: return "HiSilicon";
    case 0x4e: return "NVIDIA";
    case 0x51: return "Qualcomm";
    case 0x53: return "Samsung";
    case 0x61: return "Apple";
    case 0xc0: return "Ampere";
    default: return "unknown";
  }
}

/// Arm's own cores (implementer 0x41), by part number: the common ones of phones and boards.
const char* ArmPart(unsigned part) {
  switch (part) {
    case 0xd03: return "Cortex-A53";
    case 0xd04: return "Cortex-A35";
    case 0xd05: return "Cortex-A55";
    case 0xd07: return "Cortex-A57";
    case 0xd08: return "Cortex-A72";
    case 0xd09: return "Cortex-A73";
    case 0xd0a: return "Cortex-A75";
    case 0xd0b: return "Cortex-A76";
    case 0xd0c: return "Neoverse-N1";
    case 0xd0d: return "Cortex-A77";
    case 0xd40: return "Neoverse-V1";
    case 0xd41: return "Cortex-A78";
    case 0xd44: return "Cortex-X1";
    case 0xd46: return "Cortex-A510";
    case 0xd47: return "Cortex-A710";
    case 0xd48: return "Cortex-X2";
    case 0xd49: return "Neoverse-N2";
    case 0xd4d: return "Cortex-A715";
    case 0xd4e: return "Cortex-X3";
    case 0xd4f: return "Neoverse-V2";
    case 0xd80: return "Cortex-A520";
    case 0xd81: return "Cortex-A720";
    case 0xd82: return "Cortex-X4";
    default: return nullptr;
  }
}

void DetectAarch64(CpuInfo& info) {
  info.aarch64 = true;
  const unsigned long hwcap = ::getauxval(AT_HWCAP);
  info.asimd = hwcap & HWCAP_ASIMD;
  info.sve = hwcap & HWCAP_SVE;
  info.dotprod = hwcap & HWCAP_ASIMDDP;
  info.fp16 = hwcap & HWCAP_ASIMDHP;
  if (hwcap & HWCAP_CPUID) {  // the kernel (or qemu-user) emulates EL0 reads of the ID registers
    uint64_t midr = 0;
    asm volatile("mrs %0, MIDR_EL1" : "=r"(midr));
    info.family = static_cast<unsigned>((midr >> 24) & 0xff);
    info.model = static_cast<unsigned>((midr >> 4) & 0xfff);
    info.vendor = Implementer(info.family);
  } else {
    info.vendor = "unknown";
  }
  // A name for people, where the kernel gives one (qemu-user shows the host's file: ignored then).
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("Hardware", 0) == 0 || line.rfind("Model", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) info.brand = line.substr(line.find_first_not_of(" \t", colon + 1));
    }
    if (line.rfind("vendor_id", 0) == 0) {  // an x86 host's file under qemu-user
      info.brand.clear();
      break;
    }
  }
  if (info.brand.empty()) {  // what MIDR_EL1 says, e.g. "aarch64 ARM Cortex-A76"
    const char* part = info.family == 0x41 ? ArmPart(info.model) : nullptr;
    info.brand = "aarch64 " + info.vendor + " " + (part ? std::string(part) : "part " + Hex(info.model, 3));
  }
}
#endif
}  // namespace

FakeCpuForTesting::FakeCpuForTesting(const CpuInfo& fake) { g_fake_cpu = fake; }
FakeCpuForTesting::~FakeCpuForTesting() { g_fake_cpu.reset(); }

CpuInfo DetectCpu() {
  if (g_fake_cpu) return *g_fake_cpu;
  CpuInfo info;
  CountCpus(info);
#if defined(__aarch64__)
  DetectAarch64(info);
#elif defined(__x86_64__) || defined(__i386__)
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
#endif
  return info;
}

std::string CpuInfo::Describe() const {
  std::string s = aarch64 ? "aarch64 " + vendor + " implementer " + Hex(family, 2) + " part " + Hex(model, 3) + " ("
                          : vendor + " family " + std::to_string(family) + " model " + std::to_string(model) + " (";
  const std::pair<bool, const char*> flags[] = {{avx2, "avx2"},         {fma, "fma"},           {avx512f, "avx512f"},
                                                {avx512dq, "avx512dq"}, {avx512bw, "avx512bw"}, {avx512vl, "avx512vl"},
                                                {asimd, "asimd"},       {sve, "sve"},           {dotprod, "dotprod"},
                                                {fp16, "fp16"}};
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
