// The complex types on the CPU executor: the complex rows of ir/ops.def against std::complex
// computed here, Nx's type rules for complex (merge, abs/real/imag to the real type, conjugate of
// a real tensor), conversions, data movement, dot through BLIS (cgemm/zgemm) against plain sums,
// and the ops complex does not take.
#include <catch2/catch.hpp>

#include <complex>
#include <cstring>
#include <map>
#include <random>

#include "exec/blis_executor.h"
#include "exec/cpu_executor.h"
#include "exec/cpu_ops.h"
#include "ir/ops.h"
#include "sched/planner.h"
#include "cpu_fixture.h"

using namespace mure;
using namespace mure::ir;
using C = std::complex<double>;

namespace {

std::shared_ptr<Tensor> MakeC(DType type, const Shape& shape, const std::vector<C>& v) {
  auto t = *testing::Store().Allocate(type, shape);
  REQUIRE(t->elements() == v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (type == DType::kC64) {
      t->as<float>()[2 * i] = float(v[i].real());
      t->as<float>()[2 * i + 1] = float(v[i].imag());
    } else if (type == DType::kC128) {
      t->as<double>()[2 * i] = v[i].real();
      t->as<double>()[2 * i + 1] = v[i].imag();
    } else if (type == DType::kF32) {
      t->as<float>()[i] = float(v[i].real());
    } else if (type == DType::kF64) {
      t->as<double>()[i] = v[i].real();
    } else if (type == DType::kS64) {
      t->as<int64_t>()[i] = int64_t(v[i].real());
    } else {
      FAIL("unexpected type");
    }
  }
  return t;
}

C Get(const Tensor& t, size_t i) {
  switch (t.type()) {
    case DType::kC64: return {t.as<float>()[2 * i], t.as<float>()[2 * i + 1]};
    case DType::kC128: return {t.as<double>()[2 * i], t.as<double>()[2 * i + 1]};
    case DType::kF32: return t.as<float>()[i];
    case DType::kF64: return t.as<double>()[i];
    case DType::kU8: return t.as<uint8_t>()[i];
    case DType::kS64: return double(t.as<int64_t>()[i]);
    default: FAIL("unexpected type"); return 0;
  }
}

/// A value as the type holds it (c64: each part rounded to float).
C Held(DType t, C v) { return t == DType::kC64 ? C(float(v.real()), float(v.imag())) : v; }

bool Close(C got, C want, DType t) {
  if (std::isnan(want.real()) || std::isnan(want.imag())) return std::isnan(got.real()) || std::isnan(got.imag());
  const double tol = (t == DType::kC64 || t == DType::kF32) ? 1e-5 : 1e-13;
  return std::abs(got - want) <= tol * (1 + std::abs(want));
}

const std::vector<C> kSample = {C(1, 2), C(-0.5, 0.25), C(3, -4), C(0, 0), C(-2, 0), C(0.1, -0.7)};

std::shared_ptr<Tensor> RunUnaryC(UnaryOp op, const Tensor& x) {
  auto t = UnaryResultType(op, x.type());
  REQUIRE(t.ok());
  auto out = *testing::Store().Allocate(*t, x.shape());
  REQUIRE(cpu::Unary(op, x, *out).ok());
  return out;
}

}  // namespace

TEST_CASE("complex unary ops follow std::complex, with Nx's result types", "[complex]") {
  const DType t = GENERATE(DType::kC64, DType::kC128);
  auto x = MakeC(t, {6}, kSample);
  const DType real = t == DType::kC64 ? DType::kF32 : DType::kF64;
  struct Case { UnaryOp op; DType type; std::function<C(C)> ref; };
  const std::vector<Case> cases = {
      {UnaryOp::kNegate, t, [](C z) { return -z; }},
      {UnaryOp::kAbs, real, [](C z) { return C(std::abs(z)); }},
      {UnaryOp::kExp, t, [](C z) { return std::exp(z); }},
      {UnaryOp::kSqrt, t, [](C z) { return std::sqrt(z); }},
      {UnaryOp::kSin, t, [](C z) { return std::sin(z); }},
      {UnaryOp::kCos, t, [](C z) { return std::cos(z); }},
      {UnaryOp::kTanh, t, [](C z) { return std::tanh(z); }},
      {UnaryOp::kConjugate, t, [](C z) { return std::conj(z); }},
      {UnaryOp::kReal, real, [](C z) { return C(z.real()); }},
      {UnaryOp::kImag, real, [](C z) { return C(z.imag()); }},
      {UnaryOp::kIsNan, DType::kU8, [](C) { return C(0); }},
  };
  for (const auto& c : cases) {
    auto out = RunUnaryC(c.op, *x);
    CHECK(out->type() == c.type);
    for (size_t i = 0; i < kSample.size(); ++i) {
      INFO(Name(c.op) << " of " << kSample[i]);
      CHECK(Close(Get(*out, i), Held(c.type, c.ref(Held(t, kSample[i]))), c.type));
    }
  }
  // log of 0 is -inf + 0i, as std::log says.
  auto lg = RunUnaryC(UnaryOp::kLog, *x);
  CHECK(std::isinf(Get(*lg, 3).real()));
}

TEST_CASE("complex binary ops, broadcasting and mixing with real operands", "[complex]") {
  auto a = MakeC(DType::kC128, {2, 3}, kSample);
  auto b = MakeC(DType::kF32, {3}, {C(2), C(-1), C(0.5)});
  auto c64 = MakeC(DType::kC64, {3}, {C(1, 1), C(0, -2), C(3, 0.5)});
  struct Case { BinaryOp op; std::function<C(C, C)> ref; };
  const std::vector<Case> cases = {
      {BinaryOp::kAdd, [](C x, C y) { return x + y; }},
      {BinaryOp::kSubtract, [](C x, C y) { return x - y; }},
      {BinaryOp::kMultiply, [](C x, C y) { return x * y; }},
      {BinaryOp::kDivide, [](C x, C y) { return x / y; }},
      {BinaryOp::kPow, [](C x, C y) { return std::pow(x, y); }},
  };
  for (const Tensor* rhs : {b.get(), c64.get()}) {
    for (const auto& c : cases) {
      auto types = BinaryResultTypes(c.op, a->type(), rhs->type());
      REQUIRE(types.ok());
      CHECK(types->result == DType::kC128);
      auto out = *testing::Store().Allocate(types->result, {2, 3});
      REQUIRE(cpu::Binary(c.op, *a, *rhs, types->compute, *out).ok());
      for (size_t i = 0; i < 6; ++i) {
        INFO(Name(c.op) << " at " << i);
        CHECK(Close(Get(*out, i), c.ref(kSample[i], Get(*rhs, i % 3)), DType::kC128));
      }
    }
  }
  // equal / not_equal compare both parts and give {:u, 8}.
  auto x = MakeC(DType::kC64, {3}, {C(1, 2), C(1, 2), C(1, 0)});
  auto y = MakeC(DType::kC64, {3}, {C(1, 2), C(1, -2), C(1, 0)});
  auto eq = *testing::Store().Allocate(DType::kU8, {3});
  auto types = BinaryResultTypes(BinaryOp::kEqual, x->type(), y->type());
  REQUIRE(types.ok());
  CHECK(types->result == DType::kU8);
  REQUIRE(cpu::Binary(BinaryOp::kEqual, *x, *y, types->compute, *eq).ok());
  CHECK(std::vector<uint8_t>(eq->as<uint8_t>(), eq->as<uint8_t>() + 3) == std::vector<uint8_t>{1, 0, 1});
}

TEST_CASE("Nx's type rules for complex", "[complex]") {
  CHECK(MergeTypes(DType::kC64, DType::kF64) == DType::kC64);  // Nx.Type.merge: the complex class wins
  CHECK(MergeTypes(DType::kS64, DType::kC64) == DType::kC64);
  CHECK(MergeTypes(DType::kC64, DType::kC128) == DType::kC128);
  CHECK(*UnaryResultType(UnaryOp::kConjugate, DType::kF32) == DType::kC64);  // Nx.Type.to_complex
  CHECK(*UnaryResultType(UnaryOp::kConjugate, DType::kF64) == DType::kC128);
  CHECK(*UnaryResultType(UnaryOp::kConjugate, DType::kS8) == DType::kC64);
  auto real_of_real = UnaryResultType(UnaryOp::kReal, DType::kF32);
  REQUIRE_FALSE(real_of_real.ok());
  CHECK(real_of_real.status().message() == "real takes complex tensors ({:c, 64} or {:c, 128}), got {:f, 32}");
  auto floor = UnaryResultType(UnaryOp::kFloor, DType::kC64);
  REQUIRE_FALSE(floor.ok());
  CHECK(floor.status().kind() == ErrorKind::kTypeMismatch);
  CHECK(floor.status().message() == "floor is not defined on complex tensors, got {:c, 64}");
  auto bitand_ = BinaryResultTypes(BinaryOp::kBitwiseAnd, DType::kC64, DType::kS32);
  REQUIRE_FALSE(bitand_.ok());
  auto less = BinaryResultTypes(BinaryOp::kLess, DType::kC128, DType::kF32);
  REQUIRE_FALSE(less.ok());
  CHECK(less.status().message() == "less is not defined on complex tensors, got {:c, 128} and {:f, 32}");
  auto max = PlanReduce(ReduceOp::kReduceMax, DType::kC64, {3}, {0}, false);
  REQUIRE_FALSE(max.ok());
  auto take = TakeShape({3}, DType::kC64, {2}, 0);
  REQUIRE_FALSE(take.ok());  // complex indices are not integers
  CHECK(*DTypeFromNx("c", 64) == DType::kC64);
  CHECK(DTypeToString(DType::kC128) == "{:c, 128}");
  CHECK(DTypeSize(DType::kC128) == 16);
  CHECK_FALSE(DTypeFromNx("c", 32).has_value());
}

TEST_CASE("complex sums and products, as_type both ways, fill and pad with a complex value", "[complex]") {
  auto x = MakeC(DType::kC128, {2, 3}, kSample);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kProduct}) {
    auto plan = PlanReduce(op, x->type(), x->shape(), {1}, false);
    REQUIRE(plan.ok());
    CHECK(plan->out_type == DType::kC128);
    auto out = *testing::Store().Allocate(plan->out_type, plan->out_shape);
    REQUIRE(cpu::Reduce(op, *x, *plan, *out).ok());
    for (size_t r = 0; r < 2; ++r) {
      C acc = op == ReduceOp::kSum ? C(0) : C(1);
      for (size_t j = 0; j < 3; ++j) acc = op == ReduceOp::kSum ? acc + kSample[r * 3 + j] : acc * kSample[r * 3 + j];
      CHECK(Close(Get(*out, r), acc, DType::kC128));
    }
  }
  // as_type: real -> complex has imaginary part 0; complex -> real keeps the real part (Nx).
  auto r = MakeC(DType::kS64, {3}, {C(-3), C(7), C(1 << 30)});
  auto rc = *testing::Store().Allocate(DType::kC64, {3});
  REQUIRE(cpu::AsType(*r, *rc).ok());
  CHECK(Get(*rc, 0) == C(-3, 0));
  CHECK(Get(*rc, 2) == C(1 << 30, 0));
  auto cr = *testing::Store().Allocate(DType::kF32, {2, 3});
  REQUIRE(cpu::AsType(*x, *cr).ok());
  CHECK(Get(*cr, 2) == C(3));
  auto narrow = *testing::Store().Allocate(DType::kC64, {2, 3});
  REQUIRE(cpu::AsType(*x, *narrow).ok());
  CHECK(Close(Get(*narrow, 5), kSample[5], DType::kC64));
  CHECK(Get(*narrow, 5).real() == double(float(0.1)));
  // fill and pad take {re, im} scalars.
  Scalar v;
  v.integer = false;
  v.f = 1.5;
  v.im = -2;
  auto filled = *testing::Store().Allocate(DType::kC128, {4});
  REQUIRE(cpu::Fill(*filled, v).ok());
  CHECK(Get(*filled, 3) == C(1.5, -2));
  auto small = MakeC(DType::kC64, {2}, {C(1, 1), C(2, 2)});
  auto padded = *testing::Store().Allocate(DType::kC64, {4});
  REQUIRE(cpu::Pad(*small, v, {PadDim{1, 1, 0}}, *padded).ok());
  CHECK(Get(*padded, 0) == C(1.5, -2));
  CHECK(Get(*padded, 1) == C(1, 1));
  CHECK(Get(*padded, 3) == C(1.5, -2));
}

TEST_CASE("complex data movement copies whole elements", "[complex]") {
  std::vector<C> v;
  for (int i = 0; i < 12; ++i) v.push_back(C(i, -i * 0.5));
  auto x = MakeC(DType::kC128, {3, 4}, v);
  auto t = *testing::Store().Allocate(DType::kC128, {4, 3});
  REQUIRE(cpu::Transpose(*x, {1, 0}, *t).ok());
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) CHECK(Get(*t, j * 3 + i) == v[i * 4 + j]);
  auto s = *testing::Store().Allocate(DType::kC128, {2, 2});
  REQUIRE(cpu::Slice(*x, {1, 1}, {1, 2}, *s).ok());
  CHECK(Get(*s, 0) == v[5]);
  CHECK(Get(*s, 1) == v[7]);
  CHECK(Get(*s, 3) == v[11]);
  auto rev = *testing::Store().Allocate(DType::kC128, {3, 4});
  REQUIRE(cpu::Reverse(*x, {1}, *rev).ok());
  CHECK(Get(*rev, 0) == v[3]);
  // concatenate of a real and a complex tensor: the real one gains imaginary parts 0.
  auto re = MakeC(DType::kF32, {1, 4}, {C(9), C(8), C(7), C(6)});
  auto cat = *testing::Store().Allocate(DType::kC128, {4, 4});
  REQUIRE(cpu::Concatenate({x.get(), re.get()}, {{3, 4}, {1, 4}}, 0, *cat).ok());
  CHECK(Get(*cat, 11) == v[11]);
  CHECK(Get(*cat, 12) == C(9, 0));
}

TEST_CASE("complex dot goes through BLIS cgemm/zgemm and matches plain sums", "[complex][blis]") {
  exec::CpuExecutor with_blis(&testing::Blis()), plain(nullptr);
  const DType t = GENERATE(DType::kC64, DType::kC128);
  const uint64_t m = 5, k = 7, n = 3;
  std::mt19937 gen(42);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<C> av(m * k), bv(k * n);
  for (auto& z : av) z = Held(t, C(d(gen), d(gen)));
  for (auto& z : bv) z = Held(t, C(d(gen), d(gen)));
  auto a = MakeC(t, {m, k}, av);
  auto b = MakeC(t, {k, n}, bv);
  auto plan = PlanDot(a->shape(), {1}, {}, b->shape(), {0}, {});
  REQUIRE(plan.ok());
  for (exec::CpuExecutor* ex : {&with_blis, &plain}) {
    auto out = *testing::Store().Allocate(t, {m, n});
    REQUIRE(ex->Dot(*a, *b, *plan, t, *out).ok());
    for (uint64_t i = 0; i < m; ++i) {
      for (uint64_t j = 0; j < n; ++j) {
        C acc = 0;
        for (uint64_t q = 0; q < k; ++q) acc += av[i * k + q] * bv[q * n + j];
        CHECK(Close(Get(*out, i * n + j), acc, t));
      }
    }
  }
}

TEST_CASE("the planner refuses what complex does not take", "[complex][planner]") {
  exec::CpuExecutor cpu(nullptr);
  const Executors ex{&cpu, nullptr, false};
  std::map<uint64_t, std::shared_ptr<Tensor>> byid;
  byid[1] = MakeC(DType::kC64, {3}, {C(1), C(2), C(3)});
  OperandLookup lookup = [&](uint64_t id) -> Result<ValueInfo> {
    return ValueInfo{byid.at(id)->type(), byid.at(id)->shape()};
  };
  auto sort = PlanOp(Sort{1, 0, false}, lookup, ex, Placement::kAuto);
  REQUIRE_FALSE(sort.ok());
  CHECK(sort.status().message() == "sort is not defined on complex tensors (no order), got {:c, 64}");
  auto clip = PlanOp(Clip{1, 1, 1}, lookup, ex, Placement::kAuto);
  REQUIRE_FALSE(clip.ok());
  auto erf = PlanOp(ir::Unary{"erf", UnaryOp::kErf, 1}, lookup, ex, Placement::kAuto);
  REQUIRE_FALSE(erf.ok());
  CHECK(erf.status().message() == "erf is not defined on complex tensors, got {:c, 64}");
  auto bitcast = PlanOp(Bitcast{1, DType::kU64}, lookup, ex, Placement::kAuto);
  CHECK(bitcast.ok());  // 64 bits both
  auto bitcast_bad = PlanOp(Bitcast{1, DType::kF32}, lookup, ex, Placement::kAuto);
  CHECK_FALSE(bitcast_bad.ok());
}
