// The aarch64 side of CPU detection and BLIS kernel choice, as far as an x86-64 build can check it:
// how an aarch64 CPU is described, that the config takes the arm64 kernel-set names, and that an
// x86-64 node refuses them as kernels this CPU cannot run. The aarch64 node itself is checked
// under qemu-aarch64 by elixir_client/test/cluster/aarch64_test.exs.
#include <catch2/catch.hpp>

#include "exec/blis_executor.h"
#include "exec/cpu_info.h"
#include "mure/config.h"

using namespace mure;

TEST_CASE("an aarch64 CPU is described by implementer, part and hwcaps", "[cpu][aarch64]") {
  CpuInfo a76;
  a76.aarch64 = true;
  a76.vendor = "ARM";
  a76.family = 0x41;
  a76.model = 0xd0b;
  a76.asimd = a76.dotprod = a76.fp16 = true;
  CHECK(a76.Describe() == "aarch64 ARM implementer 0x41 part 0xd0b (asimd dotprod fp16)");

  CpuInfo qemu_max = a76;
  qemu_max.vendor = "software (emulator)";
  qemu_max.family = 0x00;
  qemu_max.model = 0x051;
  qemu_max.sve = true;
  CHECK(qemu_max.Describe() == "aarch64 software (emulator) implementer 0x00 part 0x051 (asimd sve dotprod fp16)");

  // An x86-64 CPU keeps its own form.
  CpuInfo zen;
  zen.vendor = "AuthenticAMD";
  zen.family = 25;
  zen.model = 17;
  zen.avx2 = zen.fma = true;
  CHECK(zen.Describe() == "AuthenticAMD family 25 model 17 (avx2 fma)");
}

TEST_CASE("blis_arch takes the arm64 kernel sets by name, and refuses unknown ones", "[config][aarch64]") {
  for (const char* arch : {"cortexa57", "cortexa53", "thunderx2", "firestorm", "armsve", "skx", "generic"}) {
    Config cfg;
    INFO(arch);
    CHECK(ApplySetting(cfg, "blis_arch", arch).ok());
    CHECK(cfg.blis_arch == arch);
  }
  Config cfg;
  Status s = ApplySetting(cfg, "blis_arch", "cortexa76");
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("cortexa57, cortexa53") && Catch::Contains("\"cortexa76\""));
}

#if defined(__x86_64__)
TEST_CASE("an x86-64 node refuses an arm64 kernel set as one its CPU cannot run", "[blis][aarch64]") {
  Config cfg;
  cfg.blis_arch = "cortexa57";
  cfg.blis_threads = 1;
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE_FALSE(blis.ok());
  CHECK(blis.status().kind() == ErrorKind::kUnsupported);
  CHECK_THAT(blis.status().message(), Catch::Contains("blis_arch cortexa57 cannot run on this CPU (" +
                                                      DetectCpu().Describe() + ")"));
  CHECK_FALSE(DetectCpu().aarch64);
}
#endif
