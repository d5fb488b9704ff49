// The planner's two steps over the real executors (BLIS and PoCL): validation keeps the legacy
// requests' contract and messages, binding puts each node on the executor its placement picks,
// and the OpenCL executor's same-shape binary fast path gives the generic kernel's bits.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>

#include "exec/cpu_executor.h"
#include "exec/cpu_ops.h"
#include "exec/opencl_device.h"
#include "exec/opencl_ops.h"
#include "sched/planner.h"
#include "opencl_fixture.h"
#include "operands.h"

using namespace mure;

namespace {

using testing::Blis;
using testing::Store;

std::shared_ptr<Tensor> Alloc(DType t, const Shape& s) {
  auto x = Store().Allocate(t, s);
  REQUIRE(x.ok());
  if (x.value()->bytes()) std::memset(x.value()->data(), 0xa5, x.value()->bytes());  // garbage shows
  return std::move(*x);
}

std::shared_ptr<Tensor> F32(const Shape& s, const std::vector<float>& v) {
  auto t = Alloc(DType::kF32, s);
  REQUIRE(v.size() == t->elements());
  std::memcpy(t->data(), v.data(), t->bytes());
  return t;
}

using testing::Operands;

/// Elements with the same bits (two NaNs agree whatever their sign and payload: which NaN operand
/// propagates is the compiler's choice, as tests/op_table_test.cpp says).
uint64_t SameBits(const Tensor& x, const Tensor& y) {
  uint64_t same = 0;
  for (uint64_t i = 0; i < x.elements(); ++i) {
    const float p = x.as<float>()[i], q = y.as<float>()[i];
    same += (std::isnan(p) && std::isnan(q)) || std::memcmp(&p, &q, 4) == 0;
  }
  return same;
}

ir::Node LegacyBinary(ir::Legacy l, uint64_t a, uint64_t b) {
  const bool add = l == ir::Legacy::kAdd;
  return ir::Binary{add ? "add" : "multiply", add ? ir::BinaryOp::kAdd : ir::BinaryOp::kMultiply, a, b, l};
}

ir::Node Matmul(uint64_t a, uint64_t b) { return ir::Dot{a, {1}, {}, b, {0}, {}, ir::Legacy::kMatmul}; }

}  // namespace

TEST_CASE("legacy add and multiply keep their contract and the OpenCL device", "[planner][executor][opencl]") {
  exec::CpuExecutor cpu(&Blis());
  exec::OpenClDevice opencl(testing::Device());
  const Executors with{&cpu, &opencl, true}, without{&cpu, nullptr, true};
  Operands ops;
  ops.byid[1] = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  ops.byid[2] = F32({2, 3}, {0.5f, -1, 2, 8, 0, -6});
  ops.byid[3] = Alloc(DType::kF64, {2, 3});
  ops.byid[4] = F32({3, 2}, {1, 1, 1, 1, 1, 1});
  ops.byid[5] = F32({3}, {10, 20, 30});

  auto add = PlanOp(LegacyBinary(ir::Legacy::kAdd, 1, 2), ops.lookup, with, ir::Placement::kAuto);
  REQUIRE(add.ok());
  CHECK(add->device == Device::kOpenCl);
  auto sum = ops.Run(*add);
  const float want_sum[] = {1.5f, 1, 5, 12, 5, 0};
  CHECK(std::memcmp(sum->data(), want_sum, sizeof want_sum) == 0);
  auto mul = PlanOp(LegacyBinary(ir::Legacy::kMultiply, 1, 2), ops.lookup, with, ir::Placement::kAuto);
  REQUIRE(mul.ok());
  auto prod = ops.Run(*mul);
  const float want_prod[] = {0.5f, -2, 6, 32, 0, -36};
  CHECK(std::memcmp(prod->data(), want_prod, sizeof want_prod) == 0);

  auto types = PlanOp(LegacyBinary(ir::Legacy::kAdd, 1, 3), ops.lookup, with, ir::Placement::kAuto);
  REQUIRE_FALSE(types.ok());
  CHECK(types.status().kind() == ErrorKind::kTypeMismatch);
  CHECK(types.status().message() == "add on the OpenCL device takes {:f, 32} tensors, got {:f, 32} and {:f, 64}");
  auto shapes = PlanOp(LegacyBinary(ir::Legacy::kMultiply, 1, 4), ops.lookup, with, ir::Placement::kOpenCl);
  REQUIRE_FALSE(shapes.ok());
  CHECK(shapes.status().kind() == ErrorKind::kShapeMismatch);
  CHECK_THAT(shapes.status().message(), Catch::StartsWith("multiply needs equal shapes, got"));
  auto none = PlanOp(LegacyBinary(ir::Legacy::kAdd, 1, 2), ops.lookup, without, ir::Placement::kAuto);
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().kind() == ErrorKind::kUnsupported);
  CHECK_THAT(none.status().message(), Catch::StartsWith("add runs on the OpenCL device, and this node has none"));
  auto unknown = PlanOp(LegacyBinary(ir::Legacy::kAdd, 1, 99), ops.lookup, without, ir::Placement::kAuto);
  CHECK(unknown.status().kind() == ErrorKind::kUnknownHandle);  // operands are looked up first, as before

  // Placed on the CPU, the same request is the general binary op: Nx broadcasting and types.
  auto bc = PlanOp(LegacyBinary(ir::Legacy::kAdd, 1, 5), ops.lookup, without, ir::Placement::kCpu);
  REQUIRE(bc.ok());
  CHECK(bc->device == Device::kCpu);
  CHECK(bc->shape == Shape{2, 3});
  auto r = ops.Run(*bc);
  const float want_bc[] = {11, 22, 33, 14, 25, 36};
  CHECK(std::memcmp(r->data(), want_bc, sizeof want_bc) == 0);
}

TEST_CASE("legacy matmul is a dot node with matmul's contract, on BLIS or the device", "[planner][executor][opencl]") {
  exec::CpuExecutor cpu(&Blis());
  exec::OpenClDevice opencl(testing::Device());
  const Executors both{&cpu, &opencl, true}, no_blis{&cpu, nullptr, false};
  Operands ops;
  ops.byid[1] = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  ops.byid[2] = F32({3, 2}, {1, 0, 0, 1, 1, 1});
  ops.byid[3] = Alloc(DType::kS32, {3, 3});
  const float want[] = {4, 5, 10, 11};
  for (auto placement : {ir::Placement::kAuto, ir::Placement::kCpu, ir::Placement::kOpenCl}) {
    auto p = PlanOp(Matmul(1, 2), ops.lookup, both, placement);
    REQUIRE(p.ok());
    CHECK(p->device == (placement == ir::Placement::kOpenCl ? Device::kOpenCl : Device::kCpu));
    CHECK(p->shape == Shape{2, 2});
    auto out = ops.Run(*p);
    CHECK(std::memcmp(out->data(), want, sizeof want) == 0);
  }
  auto shapes = PlanOp(Matmul(1, 1), ops.lookup, both, ir::Placement::kAuto);
  CHECK(shapes.status().kind() == ErrorKind::kShapeMismatch);
  CHECK(shapes.status().message() == "matmul of {2, 3} by {2, 3}: needs {m, k} and {k, n}");
  auto ints = PlanOp(Matmul(3, 3), ops.lookup, both, ir::Placement::kAuto);
  CHECK(ints.status().kind() == ErrorKind::kTypeMismatch);
  CHECK_THAT(ints.status().message(), Catch::StartsWith("matmul needs two {:f, 32} or two {:f, 64} tensors"));
  auto off = PlanOp(Matmul(1, 2), ops.lookup, no_blis, ir::Placement::kAuto);
  CHECK(off.status().kind() == ErrorKind::kUnsupported);
  // The general dot of the same integers is fine: the contract is the legacy request's only.
  auto dot = PlanOp(ir::Dot{3, {1}, {}, 3, {0}, {}}, ops.lookup, no_blis, ir::Placement::kAuto);
  CHECK(dot.ok());
}

TEST_CASE("the same-shape fast path gives the generic OpenCL kernel's and the CPU's bits", "[executor][opencl]") {
  exec::OpenClDevice dev(testing::Device());
  const uint64_t n = 100003;  // not a multiple of any block or work-group size
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1000, 1000);
  auto a = Alloc(DType::kF32, {n}), b = Alloc(DType::kF32, {n});
  float* pa = a->as<float>();
  float* pb = b->as<float>();
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::max(), 1e-30f, 3.0f};
  for (uint64_t i = 0; i < n; ++i) {
    pa[i] = i < 81 ? specials[i % 9] : u(rng);
    pb[i] = i < 81 ? specials[i / 9] : u(rng);
  }
  int fast = 0;
  for (const auto& info : ir::BinaryTable()) {
    if (!info.has_float) continue;
    INFO(info.name);
    auto types = ir::BinaryResultTypes(info.op, DType::kF32, DType::kF32);
    REQUIRE(types.ok());
    if (types->result != DType::kF32) continue;
    const bool takes_fast = exec::OpenClDevice::SameShapeFastPath(info.op, *a, *b, DType::kF32, *Alloc(DType::kF32, {n}));
    fast += takes_fast;
    auto via_device = Alloc(DType::kF32, {n}), via_kernel = Alloc(DType::kF32, {n}), via_cpu = Alloc(DType::kF32, {n});
    REQUIRE(dev.Binary(info.op, *a, *b, DType::kF32, *via_device).ok());
    REQUIRE(testing::Device().ops().Binary(info.op, *a, *b, DType::kF32, *via_kernel).ok());
    REQUIRE(cpu::Binary(info.op, *a, *b, DType::kF32, *via_cpu).ok());
    CHECK(SameBits(*via_device, *via_kernel) == n);
    if (info.exact) CHECK(SameBits(*via_device, *via_cpu) == n);
  }
  CHECK(fast >= 6);  // add subtract multiply divide remainder min max (the exact fusible rows)
  CHECK(exec::OpenClDevice::SameShapeFastPath(ir::BinaryOp::kAdd, *a, *b, DType::kF32, *Alloc(DType::kF32, {n})));
  // Broadcasting, other types and inexact rows take the generic kernel.
  auto s = Alloc(DType::kF32, {1});
  CHECK_FALSE(exec::OpenClDevice::SameShapeFastPath(ir::BinaryOp::kAdd, *a, *s, DType::kF32, *Alloc(DType::kF32, {n})));
  auto d = Alloc(DType::kF64, {n});
  CHECK_FALSE(exec::OpenClDevice::SameShapeFastPath(ir::BinaryOp::kAdd, *d, *d, DType::kF64, *Alloc(DType::kF64, {n})));
  CHECK_FALSE(exec::OpenClDevice::SameShapeFastPath(ir::BinaryOp::kPow, *a, *b, DType::kF32, *Alloc(DType::kF32, {n})));
}
