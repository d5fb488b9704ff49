// BLIS gemm against the reference, for every kernel set this CPU can run, on awkward shapes.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "exec/blis_executor.h"
#include "reference.h"

using namespace mure;
using mure::testing::Random;
using mure::testing::RefMatmul;

namespace {

template <typename T>
void CheckGemm(const BlisExecutor& blis, TensorStore& store, DType type, uint64_t m, uint64_t k, uint64_t n) {
  INFO("gemm " << m << "x" << k << " by " << k << "x" << n << " with " << blis.info().arch);
  auto av = Random<T>(m * k, 1), bv = Random<T>(k * n, 2);
  auto a = *store.Allocate(type, {m, k});
  auto b = *store.Allocate(type, {k, n});
  auto c = *store.Allocate(type, {m, n});
  if (a->bytes()) std::memcpy(a->data(), av.data(), a->bytes());
  if (b->bytes()) std::memcpy(b->data(), bv.data(), b->bytes());
  if (c->bytes()) std::memset(c->data(), 0x7f, c->bytes());  // garbage that must be overwritten
  REQUIRE(blis.Gemm(*a, *b, *c).ok());
  auto want = RefMatmul(av, bv, m, k, n);
  const double tol = sizeof(T) == 4 ? 1e-4 : 1e-12;
  for (uint64_t i = 0; i < m * n; ++i) {
    REQUIRE(c->template as<T>()[i] == Approx(want[i]).margin(tol * (k + 1)));
  }
}

std::vector<std::string> ArchesForThisCpu() {
  CpuInfo cpu = DetectCpu();
  std::vector<std::string> out{"auto", "generic"};
  if (cpu.avx2 && cpu.fma) {
    out.push_back("zen3");
    out.push_back("haswell");
  }
  if (cpu.avx512f && cpu.avx512dq && cpu.avx512bw && cpu.avx512vl) out.push_back("skx");
  return out;
}

}  // namespace

TEST_CASE("gemm matches the reference on every usable kernel set", "[blis]") {
  for (const auto& arch : ArchesForThisCpu()) {
    Config cfg;
    cfg.blis_arch = arch;
    cfg.blis_threads = 2;
    auto blis = BlisExecutor::Create(cfg);
    REQUIRE(blis.ok());
    if (arch != "auto") CHECK((*blis)->info().arch == arch);
    CHECK_FALSE((*blis)->info().reason.empty());
    TensorStore store(1ull << 30);
    for (auto [m, k, n] : std::vector<std::tuple<uint64_t, uint64_t, uint64_t>>{
             {1, 1, 1}, {1, 7, 1}, {7, 1, 5}, {5, 9, 1}, {1, 9, 13}, {33, 17, 65}, {128, 64, 96}, {0, 4, 3},
             {3, 0, 4}, {3, 4, 0}}) {
      CheckGemm<float>(**blis, store, DType::kF32, m, k, n);
      CheckGemm<double>(**blis, store, DType::kF64, m, k, n);
    }
  }
}

TEST_CASE("auto calibration reports what it measured and picks the fastest", "[blis]") {
  Config cfg;
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE(blis.ok());
  const auto& info = (*blis)->info();
  REQUIRE_FALSE(info.calibration.empty());
  double best = 0;
  std::string best_arch;
  for (auto& [name, g] : info.calibration) {
    CHECK(g > 0);
    if (g > best) { best = g; best_arch = name; }
  }
  CHECK(info.arch == best_arch);
  CHECK_THAT(info.reason, Catch::Contains("calibrated"));
}

namespace {

/// The CPU's feature flags as the kernel reports them (/proc/cpuinfo), read without cpuid: the
/// reference DetectCpu() is checked against.
std::set<std::string> ProcCpuFlags(std::string* vendor) {
  std::ifstream in("/proc/cpuinfo");
  REQUIRE(in.good());
  std::set<std::string> flags;
  std::string line;
  bool have_flags = false;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_first_of(" \t"));
    std::istringstream value(line.substr(colon + 1));
    if (key == "vendor_id" && vendor->empty()) value >> *vendor;
    if (key == "flags" && !have_flags) {
      for (std::string f; value >> f;) flags.insert(f);
      have_flags = true;
    }
  }
  REQUIRE(have_flags);  // no flags line: this test cannot know the CPU, and says so
  return flags;
}

/// Which kernel sets a CPU with these flags can run, by BLIS's own requirements for them.
bool CanRun(const std::string& arch, bool avx2, bool fma, bool f, bool dq, bool bw, bool vl) {
  if (arch == "skx") return f && dq && bw && vl;
  if (arch == "zen3" || arch == "haswell") return avx2 && fma;
  return arch == "generic";
}
bool CanRun(const std::string& arch, const CpuInfo& c) {
  return CanRun(arch, c.avx2, c.fma, c.avx512f, c.avx512dq, c.avx512bw, c.avx512vl);
}

/// Creates an executor forced to `arch` and checks that it is accepted exactly when `can_run`,
/// and refused with kUnsupported naming the CPU otherwise.
void CheckForced(const std::string& arch, bool can_run, const CpuInfo& cpu) {
  INFO("blis_arch " << arch << " on " << cpu.Describe() << ", expected " << (can_run ? "accepted" : "refused"));
  Config cfg;
  cfg.blis_arch = arch;
  cfg.blis_threads = 1;
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE(blis.ok() == can_run);
  if (can_run) {
    CHECK((*blis)->info().arch == arch);
  } else {
    INFO("refusal: " << blis.status().message());
    CHECK(blis.status().kind() == ErrorKind::kUnsupported);
    CHECK_THAT(blis.status().message(), Catch::Contains("cannot run on this CPU (" + cpu.Describe() + ")"));
  }
}

const char* const kArches[] = {"skx", "zen3", "haswell", "generic"};

}  // namespace

TEST_CASE("an arch the CPU cannot run is refused, not tried", "[blis]") {
  const CpuInfo real = DetectCpu();

  SECTION("cpuid detection agrees with the kernel's /proc/cpuinfo") {
    std::string vendor;
    auto flags = ProcCpuFlags(&vendor);
    INFO("cpuid: " << real.Describe() << "; /proc/cpuinfo vendor " << vendor);
    CHECK(real.vendor == vendor);
    CHECK(real.avx2 == (flags.count("avx2") == 1));
    CHECK(real.fma == (flags.count("fma") == 1));
    CHECK(real.avx512f == (flags.count("avx512f") == 1));
    CHECK(real.avx512dq == (flags.count("avx512dq") == 1));
    CHECK(real.avx512bw == (flags.count("avx512bw") == 1));
    CHECK(real.avx512vl == (flags.count("avx512vl") == 1));
  }

  SECTION("on this CPU, each kernel set is accepted exactly when /proc/cpuinfo says it can run") {
    std::string vendor;
    auto f = ProcCpuFlags(&vendor);
    for (std::string arch : kArches) {
      CheckForced(arch, CanRun(arch, f.count("avx2"), f.count("fma"), f.count("avx512f"), f.count("avx512dq"),
                               f.count("avx512bw"), f.count("avx512vl")),
                  real);
    }
  }

  // CPUs this machine is not (subsets of its features, so nothing accepted can fault): the
  // refusals are checked on every machine, AVX-512 or not.
  SECTION("a CPU without AVX-512 is refused skx and nothing else it can run") {
    CpuInfo fake = real;
    fake.avx512f = fake.avx512dq = fake.avx512bw = fake.avx512vl = false;
    FakeCpuForTesting scope(fake);
    for (std::string arch : kArches) CheckForced(arch, CanRun(arch, fake), fake);
  }

  SECTION("skx needs all four AVX-512 subsets: one missing is a refusal") {
    for (int missing = 0; missing < 4; ++missing) {
      CpuInfo fake = real;
      bool* subsets[] = {&fake.avx512f, &fake.avx512dq, &fake.avx512bw, &fake.avx512vl};
      *subsets[missing] = false;
      FakeCpuForTesting scope(fake);
      CheckForced("skx", false, fake);
    }
  }

  SECTION("a CPU with neither AVX2 nor FMA runs generic only, forced or calibrated") {
    CpuInfo fake = real;
    fake.avx2 = fake.fma = false;
    fake.avx512f = fake.avx512dq = fake.avx512bw = fake.avx512vl = false;
    FakeCpuForTesting scope(fake);
    CheckForced("skx", false, fake);
    CheckForced("zen3", false, fake);
    CheckForced("haswell", false, fake);
    CheckForced("generic", true, fake);
    Config cfg;
    cfg.blis_threads = 1;
    auto blis = BlisExecutor::Create(cfg);  // auto: calibrates only what this CPU can run
    REQUIRE(blis.ok());
    const auto& cal = (*blis)->info().calibration;
    REQUIRE(cal.size() == 1);
    CHECK(cal[0].first == "generic");
    CHECK((*blis)->info().arch == "generic");
  }

  SECTION("AVX2 without FMA is not enough for zen3 or haswell") {
    CpuInfo fake = real;
    fake.fma = false;
    fake.avx512f = fake.avx512dq = fake.avx512bw = fake.avx512vl = false;
    FakeCpuForTesting scope(fake);
    CheckForced("zen3", false, fake);
    CheckForced("haswell", false, fake);
    CheckForced("generic", true, fake);
  }

  SECTION("a kernel set with no name BLIS knows is refused") {
    CheckForced("zen9", false, real);
  }
}

TEST_CASE("gemm validates types and shapes before BLIS sees them", "[blis][security]") {
  TensorStore store(1 << 20);
  auto a = *store.Allocate(DType::kF32, {2, 3});
  auto b = *store.Allocate(DType::kF32, {2, 3});
  auto d = *store.Allocate(DType::kF64, {3, 2});
  auto v = *store.Allocate(DType::kF32, {3});
  auto i = *store.Allocate(DType::kS32, {3, 3});
  CHECK(BlisExecutor::CheckGemm(*a, *b).kind() == ErrorKind::kShapeMismatch);
  CHECK(BlisExecutor::CheckGemm(*a, *d).kind() == ErrorKind::kTypeMismatch);
  CHECK(BlisExecutor::CheckGemm(*a, *v).kind() == ErrorKind::kShapeMismatch);
  CHECK(BlisExecutor::CheckGemm(*i, *i).kind() == ErrorKind::kTypeMismatch);
}
