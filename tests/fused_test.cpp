// The JIT's fused kernels against the op-by-op CPU results, and their caches.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>

#include "exec/cpu_ops.h"
#include "exec/opencl_fused.h"
#include "opencl_fixture.h"
#include "reference.h"

using namespace mure;
using namespace mure::ocl;
using ir::BinaryOp;
using ir::ReduceOp;
using ir::UnaryOp;
using testing::Store;

namespace {

/// A fresh device per test (its own kernel caches), unlike opencl_fixture.h's shared one.
std::unique_ptr<OpenClExecutor> Device() {
  Config cfg;
  auto ex = OpenClExecutor::Create(cfg);
  if (!ex.ok()) FAIL("no OpenCL device: " << ex.status().message() << " — this test does not skip");
  return std::move(ex.value());
}

std::shared_ptr<Tensor> F32(const std::vector<float>& v, Shape s) {
  auto t = *Store().Allocate(DType::kF32, s);
  if (t->bytes()) std::memcpy(t->data(), v.data(), t->bytes());
  return t;
}

FusedStep In() { return FusedStep{}; }
FusedStep Un(UnaryOp op, uint32_t a) {
  FusedStep s;
  s.kind = FusedStep::Kind::kUnary;
  s.unary = op;
  s.a = a;
  return s;
}
FusedStep Bin(BinaryOp op, uint32_t a, uint32_t b) {
  FusedStep s;
  s.kind = FusedStep::Kind::kBinary;
  s.binary = op;
  s.a = a;
  s.b = b;
  return s;
}

std::string TempDir() {
  char tmpl[] = "/tmp/mure_kcache_XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  return tmpl;
}

}  // namespace

TEST_CASE("a fused chain equals the same ops run one by one on the CPU", "[fused][opencl]") {
  auto dev = Device();
  FusedKernels jit(*dev, "");
  const uint64_t n = 100003;
  auto xv = testing::Random<float>(n, 11), yv = testing::Random<float>(n, 12);
  xv[5] = NAN;
  yv[7] = INFINITY;
  auto x = F32(xv, {n}), y = F32(yv, {n}), two = F32({2.0f}, {});
  // z = |sigmoid(x * y + x) - y| + max(x, 2)   (a scalar input, NaN through max)
  FusedGraph g;
  g.steps = {In(), In(), In(),
             Bin(BinaryOp::kMultiply, 0, 1), Bin(BinaryOp::kAdd, 3, 0), Un(UnaryOp::kSigmoid, 4),
             Bin(BinaryOp::kSubtract, 5, 1), Un(UnaryOp::kAbs, 6), Bin(BinaryOp::kMax, 0, 2),
             Bin(BinaryOp::kAdd, 7, 8)};
  g.scalar_input = {false, false, true};
  auto fused = *Store().Allocate(DType::kF32, {n});
  REQUIRE(jit.Run(g, {x.get(), y.get(), two.get()}, n, 1, *fused).ok());

  auto step = [&](auto&& f) { auto t = *Store().Allocate(DType::kF32, {n}); REQUIRE(f(*t).ok()); return t; };
  auto t3 = step([&](Tensor& o) { return cpu::Binary(BinaryOp::kMultiply, *x, *y, DType::kF32, o); });
  auto t4 = step([&](Tensor& o) { return cpu::Binary(BinaryOp::kAdd, *t3, *x, DType::kF32, o); });
  auto t5 = step([&](Tensor& o) { return cpu::Unary(UnaryOp::kSigmoid, *t4, o); });
  auto t6 = step([&](Tensor& o) { return cpu::Binary(BinaryOp::kSubtract, *t5, *y, DType::kF32, o); });
  auto t7 = step([&](Tensor& o) { return cpu::Unary(UnaryOp::kAbs, *t6, o); });
  auto t8 = step([&](Tensor& o) { return cpu::Binary(BinaryOp::kMax, *x, *two, DType::kF32, o); });
  auto t9 = step([&](Tensor& o) { return cpu::Binary(BinaryOp::kAdd, *t7, *t8, DType::kF32, o); });
  for (uint64_t i = 0; i < n; ++i) {
    float want = t9->as<float>()[i], got = fused->as<float>()[i];
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(got == Approx(want).epsilon(1e-6).margin(1e-6));
    }
  }
  CHECK(jit.stats().compiled == 1);
  REQUIRE(jit.Run(g, {x.get(), y.get(), two.get()}, n, 1, *fused).ok());
  CHECK(jit.stats().compiled == 1);  // the second run found it in memory
  CHECK(jit.stats().memory_hits == 1);
}

TEST_CASE("a chain topped by a reduction over rows equals the op-by-op result", "[fused][opencl]") {
  auto dev = Device();
  FusedKernels jit(*dev, "");
  const uint64_t rows = 3, len = 70001;
  auto xv = testing::Random<float>(rows * len, 21);
  auto x = F32(xv, {rows, len});
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kReduceMax, ReduceOp::kReduceMin, ReduceOp::kProduct}) {
    INFO(ir::Name(op));
    FusedGraph g;
    // exp(x) / 2 (product: of values near 1, so it stays finite)
    g.steps = {In(), In(), Un(UnaryOp::kExp, 0), Bin(BinaryOp::kDivide, 2, 1)};
    g.scalar_input = {false, true};
    auto scale = F32({op == ReduceOp::kProduct ? 2.7f : 2.0f}, {});
    g.reduce = true;
    g.reduce_op = op;
    auto fused = *Store().Allocate(DType::kF32, {rows});
    REQUIRE(jit.Run(g, {x.get(), scale.get()}, rows * len, len, *fused).ok());
    auto e = *Store().Allocate(DType::kF32, {rows, len});
    REQUIRE(cpu::Unary(UnaryOp::kExp, *x, *e).ok());
    auto d = *Store().Allocate(DType::kF32, {rows, len});
    REQUIRE(cpu::Binary(BinaryOp::kDivide, *e, *scale, DType::kF32, *d).ok());
    auto plan = ir::PlanReduce(op, DType::kF32, {rows, len}, {1}, false);
    auto want = *Store().Allocate(DType::kF32, {rows});
    REQUIRE(cpu::Reduce(op, *d, *plan, *want).ok());
    for (uint64_t r = 0; r < rows; ++r) {
      CHECK(fused->as<float>()[r] == Approx(want->as<float>()[r]).epsilon(1e-5));
    }
  }
}

TEST_CASE("compiled kernels are kept on disk: a new process-wide cache loads them", "[fused][opencl]") {
  auto dev = Device();
  const std::string dir = TempDir();
  FusedGraph g;
  g.steps = {In(), Un(UnaryOp::kTanh, 0), Un(UnaryOp::kNegate, 1)};
  g.scalar_input = {false};
  auto x = F32({0.5f, -1.0f, 2.0f}, {3});
  auto out = *Store().Allocate(DType::kF32, {3});
  {
    FusedKernels first(*dev, dir);
    REQUIRE(first.Run(g, {x.get()}, 3, 1, *out).ok());
    CHECK(first.stats().compiled == 1);
    CHECK(first.stats().disk_hits == 0);
  }
  FusedKernels second(*dev, dir);  // as after a restart: empty memory cache
  REQUIRE(second.Run(g, {x.get()}, 3, 1, *out).ok());
  CHECK(second.stats().compiled == 0);
  CHECK(second.stats().disk_hits == 1);
  CHECK(out->as<float>()[0] == Approx(-std::tanh(0.5f)));
  std::string cmd = "rm -rf '" + dir + "'";
  CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("the fused-kernel caches are capped: memory by count, disk by bytes", "[fused][opencl][security]") {
  auto dev = Device();
  const std::string dir = TempDir();
  auto x = F32({0.5f, -1.0f, 2.0f}, {3});
  auto out = *Store().Allocate(DType::kF32, {3});
  // Chains a client could vary without end: x * c0 + c1 ... with ever more steps.
  auto chain = [](int n) {
    FusedGraph g;
    g.steps = {In()};
    g.scalar_input = {false};
    for (int i = 0; i < n; ++i) g.steps.push_back(Un(i % 2 ? UnaryOp::kNegate : UnaryOp::kTanh, static_cast<uint32_t>(i)));
    return g;
  };
  auto expect = [&](int n) {
    float v = 0.5f;
    for (int i = 0; i < n; ++i) v = i % 2 ? -v : std::tanh(v);
    return v;
  };
  FusedCacheLimits limits;
  limits.max_in_memory = 3;
  limits.max_disk_bytes = 1;  // nothing fits: no binary is written
  FusedKernels jit(*dev, dir, limits);
  for (int n = 2; n <= 7; ++n) {
    REQUIRE(jit.Run(chain(n), {x.get()}, 3, 1, *out).ok());
    CHECK(out->as<float>()[0] == Approx(expect(n)));
  }
  FusedStats s = jit.stats();
  CHECK(s.compiled == 6);
  CHECK(s.in_memory == 3);
  CHECK(s.evicted == 3);
  CHECK(s.disk_skipped == 6);
  CHECK(s.disk_bytes == 0);
  // The most recent ones are still there; an evicted one is compiled again, right.
  REQUIRE(jit.Run(chain(7), {x.get()}, 3, 1, *out).ok());
  CHECK(jit.stats().memory_hits == 1);
  REQUIRE(jit.Run(chain(2), {x.get()}, 3, 1, *out).ok());
  CHECK(jit.stats().compiled == 7);
  CHECK(out->as<float>()[0] == Approx(expect(2)));
  std::string cmd = "test -z \"$(ls -A '" + dir + "')\" && rm -rf '" + dir + "'";
  CHECK(std::system(cmd.c_str()) == 0);  // the folder stayed empty
}
