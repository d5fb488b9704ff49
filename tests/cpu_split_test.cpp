// Large elementwise ops on the CPU executor are split over BLIS's thread pool (exec/cpu_executor.cpp):
// every element written exactly once, at the part boundaries too, with the same bits as a plain loop
// here; and two ops at once (the pool busy with one) both right.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

#include "exec/blis_executor.h"
#include "exec/cpu_executor.h"
#include "cpu_fixture.h"

using namespace mure;

namespace {

BlisExecutor& TwoThreads() {
  static std::unique_ptr<BlisExecutor> blis = [] {
    Config cfg;
    cfg.blis_arch = "generic";
    cfg.blis_threads = 2;
    cfg.blis_parallel = "split";
    return std::move(BlisExecutor::Create(cfg).value());
  }();
  return *blis;
}

template <typename T>
std::shared_ptr<Tensor> Filled(DType type, uint64_t n, uint32_t seed) {
  auto t = *testing::Store().Allocate(type, {n});
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-4, 4);
  for (uint64_t i = 0; i < n; ++i) t->as<T>()[i] = static_cast<T>(d(gen));
  return t;
}

template <typename T>
std::shared_ptr<Tensor> Garbage(DType type, const Shape& shape) {
  auto t = *testing::Store().Allocate(type, shape);
  for (uint64_t i = 0; i < t->elements(); ++i) t->as<T>()[i] = std::numeric_limits<T>::quiet_NaN();
  return t;
}

template <typename T>
bool SameBits(T x, T y) {
  return std::memcmp(&x, &y, sizeof x) == 0;
}

}  // namespace

TEST_CASE("the CPU executor splits large elementwise ops over BLIS's threads", "[cpu][split]") {
  exec::CpuExecutor cpu(&TwoThreads());
  REQUIRE(cpu.pool() != nullptr);
  REQUIRE(cpu.pool()->threads() == 2);
  // Below, at and above the size that is split; lengths that are not multiples of the 64-element cut.
  const uint64_t n = GENERATE(uint64_t{1} << 10, (uint64_t{1} << 20) - 1, uint64_t{1} << 20,
                              (uint64_t{1} << 20) + 37, 3 * (uint64_t{1} << 20) + 5);
  INFO("n = " << n);

  SECTION("f32 add, both operands full") {
    auto a = Filled<float>(DType::kF32, n, 1), b = Filled<float>(DType::kF32, n, 2);
    auto out = Garbage<float>(DType::kF32, {n});
    REQUIRE(cpu.Binary(ir::BinaryOp::kAdd, *a, *b, DType::kF32, *out).ok());
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < n; ++i) {
      if (!SameBits(out->as<float>()[i], a->as<float>()[i] + b->as<float>()[i])) ++wrong;
    }
    CHECK(wrong == 0);
  }
  SECTION("f64 multiply by a scalar") {
    auto a = Filled<double>(DType::kF64, n, 3);
    auto s = *testing::Store().Allocate(DType::kF64, {});
    s->as<double>()[0] = 1.0 / 3.0;
    auto out = Garbage<double>(DType::kF64, {n});
    REQUIRE(cpu.Binary(ir::BinaryOp::kMultiply, *s, *a, DType::kF64, *out).ok());
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < n; ++i) {
      if (!SameBits(out->as<double>()[i], (1.0 / 3.0) * a->as<double>()[i])) ++wrong;
    }
    CHECK(wrong == 0);
  }
  SECTION("f32 exp (computed in double, rounded once)") {
    auto a = Filled<float>(DType::kF32, n, 4);
    auto out = Garbage<float>(DType::kF32, {n});
    REQUIRE(cpu.Unary(ir::UnaryOp::kExp, *a, *out).ok());
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const float want = static_cast<float>(std::exp(static_cast<double>(a->as<float>()[i])));
      if (!SameBits(out->as<float>()[i], want)) ++wrong;
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("two large elementwise ops at once on one pool are both right", "[cpu][split]") {
  exec::CpuExecutor cpu(&TwoThreads());
  const uint64_t n = 4 * (uint64_t{1} << 20) + 3;
  auto a = Filled<float>(DType::kF32, n, 5), b = Filled<float>(DType::kF32, n, 6);
  auto sum = Garbage<float>(DType::kF32, {n}), diff = Garbage<float>(DType::kF32, {n});
  for (int round = 0; round < 4; ++round) {
    Status s1, s2;
    std::thread other([&] { s2 = cpu.Binary(ir::BinaryOp::kSubtract, *a, *b, DType::kF32, *diff); });
    s1 = cpu.Binary(ir::BinaryOp::kAdd, *a, *b, DType::kF32, *sum);
    other.join();
    REQUIRE(s1.ok());
    REQUIRE(s2.ok());
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const float x = a->as<float>()[i], y = b->as<float>()[i];
      if (!SameBits(sum->as<float>()[i], x + y) || !SameBits(diff->as<float>()[i], x - y)) ++wrong;
    }
    CHECK(wrong == 0);
  }
}
