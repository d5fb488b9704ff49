// fft / ifft on the CPU executor (FFTW) through the planner, against a direct O(n^2) DFT written
// here: powers of two, primes and other lengths, batched over leading axes, cut and zero-padded
// rows, real and complex inputs; and the requests the planner refuses.
#include <catch2/catch.hpp>

#include <cmath>
#include <complex>
#include <cstring>
#include <map>
#include <random>

#include "exec/cpu_executor.h"
#include "exec/opencl_device.h"
#include "sched/planner.h"
#include "opencl_fixture.h"
#include "operands.h"

using namespace mure;
using C = std::complex<double>;

namespace {

using testing::Alloc;
using testing::Operands;

/// A tensor of `type` ({:c, 64}, {:c, 128}, {:f, 32}, {:s, 32}) holding `v` (real types: real parts).
std::shared_ptr<Tensor> Make(DType type, const Shape& shape, const std::vector<C>& v) {
  auto t = Alloc(type, shape);
  REQUIRE(t->elements() == v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    switch (type) {
      case DType::kC64: t->as<float>()[2 * i] = float(v[i].real()); t->as<float>()[2 * i + 1] = float(v[i].imag()); break;
      case DType::kC128: t->as<double>()[2 * i] = v[i].real(); t->as<double>()[2 * i + 1] = v[i].imag(); break;
      case DType::kF32: t->as<float>()[i] = float(v[i].real()); break;
      case DType::kS32: t->as<int32_t>()[i] = int32_t(v[i].real()); break;
      default: FAIL("unexpected type");
    }
  }
  return t;
}

C At(const Tensor& t, size_t i) {
  if (t.type() == DType::kC64) return {t.as<float>()[2 * i], t.as<float>()[2 * i + 1]};
  return {t.as<double>()[2 * i], t.as<double>()[2 * i + 1]};
}

/// The direct DFT of one row, cut or zero-padded to n first (Nx's rule), scaled by 1/n if inverse.
std::vector<C> Dft(std::vector<C> row, size_t n, bool inverse) {
  row.resize(n, C(0));
  std::vector<C> out(n);
  const double sign = inverse ? 1 : -1;
  for (size_t k = 0; k < n; ++k) {
    C acc = 0;
    for (size_t j = 0; j < n; ++j) acc += row[j] * std::polar(1.0, sign * 2 * M_PI * double((j * k) % n) / double(n));
    out[k] = inverse ? acc / double(n) : acc;
  }
  return out;
}

std::vector<C> Random(size_t n, unsigned seed, bool complex) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<C> v(n);
  for (auto& x : v) x = complex ? C(d(gen), d(gen)) : C(std::round(d(gen) * 8), 0);
  return v;
}

}  // namespace

TEST_CASE("fft and ifft match a direct DFT: 2^k, primes, batches, cut and padded rows", "[fft][complex]") {
  exec::CpuExecutor cpu(nullptr);
  const Executors ex{&cpu, nullptr, false};
  const DType type = GENERATE(DType::kC64, DType::kC128, DType::kF32, DType::kS32);
  const bool inverse = GENERATE(false, true);
  // {rows, input length, fft length}
  const auto dims = GENERATE(std::vector<uint64_t>{1, 8, 8}, std::vector<uint64_t>{3, 16, 16},
                             std::vector<uint64_t>{2, 7, 7}, std::vector<uint64_t>{4, 13, 13},
                             std::vector<uint64_t>{1, 1, 1}, std::vector<uint64_t>{5, 6, 10},
                             std::vector<uint64_t>{2, 12, 5}, std::vector<uint64_t>{1, 97, 97},
                             std::vector<uint64_t>{2, 64, 64});
  const uint64_t rows = dims[0], m = dims[1], n = dims[2];
  Operands vals;
  const auto input = Random(rows * m, unsigned(rows * 131 + m * 7 + n), type == DType::kC64 || type == DType::kC128);
  vals.byid[1] = Make(type, {rows, m}, input);
  auto plan = PlanOp(ir::Fft{1, int64_t(n), inverse}, vals.lookup, ex, ir::Placement::kAuto);
  REQUIRE(plan.ok());
  CHECK(plan->type == (type == DType::kC128 ? DType::kC128 : DType::kC64));  // Nx.Type.to_complex
  CHECK(plan->shape == Shape{rows, n});
  auto out = vals.Run(*plan);
  const double tol = plan->type == DType::kC64 ? 2e-5 : 1e-12;
  for (uint64_t r = 0; r < rows; ++r) {
    const std::vector<C> row(input.begin() + long(r * m), input.begin() + long((r + 1) * m));
    const auto want = Dft(row, n, inverse);
    for (uint64_t k = 0; k < n; ++k) {
      INFO("row " << r << " k " << k << " got " << At(*out, r * n + k) << " want " << want[k]);
      CHECK(std::abs(At(*out, r * n + k) - want[k]) <= tol * (1 + std::sqrt(double(m)) * 8));
    }
  }
}

TEST_CASE("fft runs over the last axis of any rank, and ifft(fft(x)) is x", "[fft][complex]") {
  exec::CpuExecutor cpu(nullptr);
  const Executors ex{&cpu, nullptr, false};
  Operands vals;
  const auto input = Random(2 * 3 * 11, 5, true);
  vals.byid[1] = Make(DType::kC128, {2, 3, 11}, input);
  auto f = PlanOp(ir::Fft{1, 11, false}, vals.lookup, ex, ir::Placement::kCpu);
  REQUIRE(f.ok());
  vals.byid[2] = vals.Run(*f);
  auto i = PlanOp(ir::Fft{2, 11, true}, vals.lookup, ex, ir::Placement::kCpu);
  REQUIRE(i.ok());
  auto back = vals.Run(*i);
  for (size_t k = 0; k < input.size(); ++k) CHECK(std::abs(At(*back, k) - input[k]) < 1e-13);
}

TEST_CASE("fft's bad requests are refused with a reason, before any kernel runs", "[fft][complex][security]") {
  exec::CpuExecutor cpu(nullptr);
  const Executors ex{&cpu, nullptr, false};
  Operands vals;
  vals.byid[1] = Make(DType::kC64, {4}, Random(4, 1, true));
  vals.byid[2] = Make(DType::kF32, {}, {C(1)});
  for (int64_t len : {int64_t{0}, int64_t{-3}, int64_t{1} << 31, std::numeric_limits<int64_t>::max()}) {
    auto p = PlanOp(ir::Fft{1, len, false}, vals.lookup, ex, ir::Placement::kAuto);
    REQUIRE_FALSE(p.ok());
    CHECK(p.status().kind() == ErrorKind::kBadArg);
    CHECK_THAT(p.status().message(), Catch::StartsWith("fft's length must be between 1 and 2^31-1"));
  }
  auto scalar = PlanOp(ir::Fft{2, 4, true}, vals.lookup, ex, ir::Placement::kAuto);
  REQUIRE_FALSE(scalar.ok());
  CHECK(scalar.status().kind() == ErrorKind::kBadShape);
  CHECK_THAT(scalar.status().message(), Catch::StartsWith("ifft needs a tensor of rank 1 or more"));
  // A length whose result passes no budget: refused by the shape rule, not by an allocation.
  vals.byid[3] = Make(DType::kC64, {1u << 20, 1}, std::vector<C>(1u << 20));
  auto huge = PlanOp(ir::Fft{3, int64_t{1} << 30, false}, vals.lookup, ex, ir::Placement::kAuto);
  CHECK(huge.ok());  // 2^50 elements of 8 bytes fit the shape rule; the store's budget refuses them
  if (huge.ok()) CHECK_FALSE(testing::Store().Allocate(huge->type, huge->shape).ok());
}

TEST_CASE("complex and fft stay on the CPU executor; placed on OpenCL they are refused", "[fft][complex][opencl]") {
  exec::CpuExecutor cpu(nullptr);
  exec::OpenClDevice opencl(testing::Device());
  const Executors ex{&cpu, &opencl, false};
  Operands vals;
  vals.byid[1] = Make(DType::kC64, {4}, Random(4, 2, true));
  vals.byid[2] = Make(DType::kF32, {4}, Random(4, 3, false));
  auto fft = PlanOp(ir::Fft{2, 4, false}, vals.lookup, ex, ir::Placement::kOpenCl);
  REQUIRE_FALSE(fft.ok());
  CHECK(fft.status().kind() == ErrorKind::kUnsupported);
  CHECK_THAT(fft.status().message(), Catch::Contains("complex") && Catch::Contains("CPU executor only"));
  auto add = PlanOp(ir::Binary{"add", ir::BinaryOp::kAdd, 1, 2}, vals.lookup, ex, ir::Placement::kOpenCl);
  REQUIRE_FALSE(add.ok());
  CHECK(add.status().kind() == ErrorKind::kUnsupported);
  auto fft_auto = PlanOp(ir::Fft{1, 4, false}, vals.lookup, ex, ir::Placement::kAuto);
  REQUIRE(fft_auto.ok());
  CHECK(fft_auto->device == Device::kCpu);
  auto add_auto = PlanOp(ir::Binary{"add", ir::BinaryOp::kAdd, 1, 2}, vals.lookup, ex, ir::Placement::kAuto);
  REQUIRE(add_auto.ok());
  CHECK(add_auto->device == Device::kCpu);
  CHECK(add_auto->type == DType::kC64);
}
