// The gemm split (exec/gemm_pool.h): how products are cut, the pool that runs the parts, and
// BLIS products through both threading modes against the reference.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "exec/blis_executor.h"
#include "exec/gemm_pool.h"
#include "reference.h"

using namespace mure;

namespace {

/// The parts tile c{m, n} exactly, in order, along one dimension, on `align` boundaries, and
/// differ in length by at most one block.
void CheckTiles(const std::vector<GemmPart>& parts, uint64_t m, uint64_t n, uint64_t align) {
  INFO("c {" << m << ", " << n << "} in " << parts.size() << " parts");
  REQUIRE_FALSE(parts.empty());
  const bool by_rows = parts.size() == 1 || parts[0].cols == n;
  uint64_t next = 0, shortest = ~uint64_t{0}, longest = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const GemmPart& p = parts[i];
    const uint64_t start = by_rows ? p.row0 : p.col0, len = by_rows ? p.rows : p.cols;
    CHECK(start == next);
    CHECK(len > 0);
    if (by_rows) CHECK((p.col0 == 0 && p.cols == n));
    else CHECK((p.row0 == 0 && p.rows == m));
    if (i + 1 < parts.size()) CHECK(len % align == 0);
    shortest = std::min(shortest, len);
    longest = std::max(longest, len);
    next = start + len;
  }
  CHECK(next == (by_rows ? m : n));
  CHECK(longest - shortest <= align);
}

}  // namespace

TEST_CASE("SplitGemm cuts large products along the longer side into near-equal blocks", "[gemm_split]") {
  // Square 1024 on 2 threads: two halves of rows.
  auto two = SplitGemm(1024, 1024, 1024, 2, 32);
  REQUIRE(two.size() == 2);
  CHECK(two[0] == GemmPart{0, 512, 0, 1024});
  CHECK(two[1] == GemmPart{512, 512, 0, 1024});
  // Wide: columns are cut.
  auto wide = SplitGemm(64, 4096, 512, 2, 32);
  REQUIRE(wide.size() == 2);
  CHECK(wide[0] == GemmPart{0, 64, 0, 2048});
  CHECK(wide[1] == GemmPart{0, 64, 2048, 2048});
  for (auto [m, n, k, t] : std::vector<std::tuple<uint64_t, uint64_t, uint64_t, unsigned>>{
           {1000, 999, 777, 2}, {4096, 4096, 4096, 2}, {333, 7000, 64, 3}, {2049, 2048, 2048, 4}, {97, 96, 5000, 2},
           {100000, 1, 1000, 2}, {1, 100000, 1000, 16}}) {
    auto parts = SplitGemm(m, n, k, t, 32);
    CHECK(parts.size() <= t);
    CheckTiles(parts, m, n, 32);
  }
}

TEST_CASE("SplitGemm keeps small or degenerate products whole", "[gemm_split]") {
  const GemmPart whole{0, 1024, 0, 1024};
  CHECK(SplitGemm(1024, 1024, 1024, 1) == std::vector<GemmPart>{whole});  // one thread
  CHECK(SplitGemm(128, 128, 128, 2) == std::vector<GemmPart>{GemmPart{0, 128, 0, 128}});  // too little work
  CHECK(SplitGemm(0, 1024, 1024, 2) == std::vector<GemmPart>{GemmPart{0, 0, 0, 1024}});
  CHECK(SplitGemm(1024, 1024, 0, 2) == std::vector<GemmPart>{whole});
  // Enough work, but a single block along the longer side: nothing to cut.
  CHECK(SplitGemm(20, 20, 1 << 20, 2, 32).size() == 1);
  // The work bound holds without overflow for huge dimensions.
  CHECK(SplitGemm(uint64_t{1} << 40, 1 << 20, 1 << 20, 2).size() == 2);
  // Just below and at the bound (m * n * k against kGemmSplitMinWork).
  CHECK(SplitGemm(256, 256, kGemmSplitMinWork / (256 * 256) - 1, 2).size() == 1);
  CHECK(SplitGemm(256, 256, kGemmSplitMinWork / (256 * 256), 2).size() == 2);
}

TEST_CASE("GemmPool runs every part once, part 0 on the caller, the rest on its workers", "[gemm_split]") {
  GemmPool pool(3);
  REQUIRE(pool.threads() == 3);
  for (unsigned parts = 1; parts <= 3; ++parts) {
    std::vector<std::atomic<int>> runs(parts);
    std::vector<std::thread::id> who(parts);
    pool.Run(parts, [&](unsigned i) {
      runs[i].fetch_add(1);
      who[i] = std::this_thread::get_id();
    });
    for (unsigned i = 0; i < parts; ++i) CHECK(runs[i].load() == 1);
    CHECK(who[0] == std::this_thread::get_id());
    std::set<std::thread::id> distinct(who.begin(), who.end());
    CHECK(distinct.size() == parts);
  }
}

TEST_CASE("GemmPool serves concurrent callers correctly (one of them on its own thread)", "[gemm_split]") {
  GemmPool pool(2);
  std::atomic<long> sum{0};
  auto caller = [&] {
    for (int r = 0; r < 300; ++r) pool.Run(2, [&](unsigned i) { sum.fetch_add(i + 1); });
  };
  std::thread t1(caller), t2(caller);
  t1.join();
  t2.join();
  CHECK(sum.load() == 2 * 300 * 3);
}

TEST_CASE("split and BLIS-threaded products match the reference at sizes that are cut", "[gemm_split][blis]") {
  for (const char* mode : {"split", "blis"}) {
    Config cfg;
    cfg.blis_threads = 2;
    cfg.blis_parallel = mode;
    auto blis = BlisExecutor::Create(cfg);
    REQUIRE(blis.ok());
    CHECK((*blis)->info().parallel == mode);
    TensorStore store(1ull << 30);
    // Rows cut (one part ends on a short block), columns cut, and complex.
    for (auto [m, k, n] : std::vector<std::tuple<uint64_t, uint64_t, uint64_t>>{{301, 200, 257}, {70, 300, 901}}) {
      INFO(mode << ": " << m << "x" << k << " by " << k << "x" << n);
      REQUIRE(SplitGemm(m, n, k, 2).size() == 2);
      auto av = testing::Random<double>(m * k, 3), bv = testing::Random<double>(k * n, 4);
      auto want = testing::RefMatmul(av, bv, m, k, n);
      std::vector<float> af(av.begin(), av.end()), bf(bv.begin(), bv.end());
      auto wantf = testing::RefMatmul(af, bf, m, k, n);
      for (DType type : {DType::kF32, DType::kF64}) {
        auto a = *store.Allocate(type, {m, k});
        auto b = *store.Allocate(type, {k, n});
        auto c = *store.Allocate(type, {m, n});
        std::memcpy(a->data(), type == DType::kF32 ? static_cast<const void*>(af.data()) : av.data(), a->bytes());
        std::memcpy(b->data(), type == DType::kF32 ? static_cast<const void*>(bf.data()) : bv.data(), b->bytes());
        std::memset(c->data(), 0x7f, c->bytes());
        REQUIRE((*blis)->Gemm(*a, *b, *c).ok());
        for (uint64_t i = 0; i < m * n; ++i) {
          if (type == DType::kF32) REQUIRE(c->as<float>()[i] == Approx(wantf[i]).margin(1e-3));
          else REQUIRE(c->as<double>()[i] == Approx(want[i]).margin(1e-9));
        }
      }
    }
  }
}

TEST_CASE("blis_parallel and the default thread count come from the config and the CPU", "[gemm_split]") {
  Config cfg;
  CHECK(cfg.blis_parallel == "split");
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE(blis.ok());
  const CpuInfo cpu = DetectCpu();
  CHECK(cpu.usable_cpus >= 1);
  CHECK(cpu.usable_cpus <= cpu.online_cpus);
  CHECK((*blis)->info().threads == cpu.usable_cpus);
}
