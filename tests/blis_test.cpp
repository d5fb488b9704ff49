// BLIS gemm against the reference, for every kernel set this CPU can run, on awkward shapes.
#include <catch2/catch.hpp>

#include <cstring>

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

TEST_CASE("an arch the CPU cannot run is refused, not tried", "[blis]") {
  CpuInfo cpu = DetectCpu();
  if (cpu.avx512f) {
    SUCCEED("this CPU runs skx kernels; nothing to refuse");
    return;
  }
  Config cfg;
  cfg.blis_arch = "skx";
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE_FALSE(blis.ok());
  CHECK(blis.status().kind() == ErrorKind::kUnsupported);
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
