// The op set on the CPU executor: Nx's type rules and shapes, and values checked against plain
// expectations on every type class, with the edges (empty, size-1, broadcasting, NaN/Inf,
// integer wrap, division by zero, ties).
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <functional>
#include <cstring>
#include <vector>

#include "exec/blis_executor.h"
#include "exec/cpu_ops.h"
#include "ir/ops.h"
#include "cpu_fixture.h"

using namespace mure;
using namespace mure::ir;

using testing::Store;

namespace {

template <typename T>
std::shared_ptr<Tensor> Make(DType t, Shape s, std::vector<T> values) {
  auto x = *Store().Allocate(t, s);
  REQUIRE(values.size() * sizeof(T) == x->bytes());
  if (x->bytes()) std::memcpy(x->data(), values.data(), x->bytes());
  return x;
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(t.elements());
  if (t.bytes()) std::memcpy(v.data(), t.data(), t.bytes());
  return v;
}

std::shared_ptr<Tensor> RunBinary(BinaryOp op, const Tensor& a, const Tensor& b) {
  auto types = BinaryResultTypes(op, a.type(), b.type());
  REQUIRE(types.ok());
  auto shape = BroadcastShapes(a.shape(), b.shape());
  REQUIRE(shape.ok());
  auto out = *Store().Allocate(types->result, *shape);
  REQUIRE(cpu::Binary(op, a, b, types->compute, *out).ok());
  return out;
}

std::shared_ptr<Tensor> RunUnary(UnaryOp op, const Tensor& a) {
  auto t = UnaryResultType(op, a.type());
  REQUIRE(t.ok());
  auto out = *Store().Allocate(*t, a.shape());
  REQUIRE(cpu::Unary(op, a, *out).ok());
  return out;
}

std::shared_ptr<Tensor> RunReduce(ReduceOp op, const Tensor& a, std::vector<int64_t> axes, bool keep = false) {
  auto plan = PlanReduce(op, a.type(), a.shape(), axes, keep);
  REQUIRE(plan.ok());
  auto out = *Store().Allocate(plan->out_type, plan->out_shape);
  REQUIRE(cpu::Reduce(op, a, *plan, *out).ok());
  return out;
}

}  // namespace

TEST_CASE("type promotion follows Nx", "[ops][types]") {
  CHECK(MergeTypes(DType::kS32, DType::kF32) == DType::kF32);
  CHECK(MergeTypes(DType::kU8, DType::kS8) == DType::kS16);
  CHECK(MergeTypes(DType::kU64, DType::kS32) == DType::kS64);
  CHECK(MergeTypes(DType::kBF16, DType::kF16) == DType::kF32);
  CHECK(MergeTypes(DType::kBF16, DType::kF64) == DType::kF64);
  CHECK(MergeTypes(DType::kU8, DType::kU32) == DType::kU32);
  CHECK(MergeTypes(DType::kS64, DType::kF16) == DType::kF16);
  CHECK(BinaryResultTypes(BinaryOp::kDivide, DType::kS32, DType::kS32)->result == DType::kF32);
  CHECK(BinaryResultTypes(BinaryOp::kLess, DType::kF64, DType::kS8)->result == DType::kU8);
  CHECK(BinaryResultTypes(BinaryOp::kBitwiseAnd, DType::kF32, DType::kS8).status().kind() == ErrorKind::kTypeMismatch);
  CHECK(*UnaryResultType(UnaryOp::kExp, DType::kS64) == DType::kF32);
  CHECK(*UnaryResultType(UnaryOp::kAbs, DType::kS8) == DType::kS8);
  CHECK(UnaryResultType(UnaryOp::kPopulationCount, DType::kF32).status().kind() == ErrorKind::kTypeMismatch);
}

TEST_CASE("broadcasting aligns from the right", "[ops][shapes]") {
  CHECK(*BroadcastShapes({2, 3}, {3}) == Shape{2, 3});
  CHECK(*BroadcastShapes({4, 1, 3}, {5, 1}) == Shape{4, 5, 3});
  CHECK(*BroadcastShapes({}, {2, 2}) == Shape{2, 2});
  CHECK(*BroadcastShapes({0, 3}, {1, 3}) == Shape{0, 3});
  CHECK(BroadcastShapes({2, 3}, {2}).status().kind() == ErrorKind::kShapeMismatch);
}

TEST_CASE("binary ops with broadcasting and mixed types", "[ops]") {
  auto a = Make<int32_t>(DType::kS32, {2, 3}, {1, 2, 3, 4, 5, 6});
  auto b = Make<float>(DType::kF32, {3}, {0.5f, 1.5f, -1.0f});
  auto sum = RunBinary(BinaryOp::kAdd, *a, *b);
  CHECK(sum->type() == DType::kF32);
  CHECK(Values<float>(*sum) == std::vector<float>{1.5f, 3.5f, 2.0f, 4.5f, 6.5f, 5.0f});
  auto scalar = Make<int32_t>(DType::kS32, {}, {2});
  CHECK(Values<int32_t>(*RunBinary(BinaryOp::kMultiply, *a, *scalar)) == std::vector<int32_t>{2, 4, 6, 8, 10, 12});
  auto lt = RunBinary(BinaryOp::kLess, *a, *scalar);
  CHECK(lt->type() == DType::kU8);
  CHECK(Values<uint8_t>(*lt) == std::vector<uint8_t>{1, 0, 0, 0, 0, 0});
}

TEST_CASE("integer edges: wrap, division by zero, MIN / -1, shifts", "[ops]") {
  auto a = Make<int8_t>(DType::kS8, {4}, {127, -128, 7, -7});
  auto one = Make<int8_t>(DType::kS8, {}, {1});
  CHECK(Values<int8_t>(*RunBinary(BinaryOp::kAdd, *a, *one)) == std::vector<int8_t>{-128, -127, 8, -6});
  auto zero = Make<int8_t>(DType::kS8, {}, {0});
  CHECK(Values<int8_t>(*RunBinary(BinaryOp::kQuotient, *a, *zero)) == std::vector<int8_t>{-1, -1, -1, -1});
  CHECK(Values<int8_t>(*RunBinary(BinaryOp::kRemainder, *a, *zero)) == std::vector<int8_t>{127, -128, 7, -7});
  auto minus1 = Make<int8_t>(DType::kS8, {}, {-1});
  CHECK(Values<int8_t>(*RunBinary(BinaryOp::kQuotient, *a, *minus1)) == std::vector<int8_t>{-127, -128, -7, 7});
  auto two = Make<int8_t>(DType::kS8, {}, {2});
  CHECK(Values<int8_t>(*RunBinary(BinaryOp::kRemainder, *a, *two)) == std::vector<int8_t>{1, 0, 1, -1});
  auto u = Make<uint8_t>(DType::kU8, {3}, {1, 128, 255});
  auto s9 = Make<uint8_t>(DType::kU8, {}, {9});
  CHECK(Values<uint8_t>(*RunBinary(BinaryOp::kLeftShift, *u, *s9)) == std::vector<uint8_t>{0, 0, 0});
  auto s1 = Make<uint8_t>(DType::kU8, {}, {1});
  CHECK(Values<uint8_t>(*RunBinary(BinaryOp::kRightShift, *u, *s1)) == std::vector<uint8_t>{0, 64, 127});
  CHECK(Values<int8_t>(*RunBinary(BinaryOp::kRightShift, *a, *two)) == std::vector<int8_t>{31, -32, 1, -2});
  CHECK(Values<int8_t>(*RunUnary(UnaryOp::kAbs, *a)) == std::vector<int8_t>{127, -128, 7, 7});
  CHECK(Values<uint8_t>(*RunUnary(UnaryOp::kCountLeadingZeros, *u)) == std::vector<uint8_t>{7, 0, 0});
  CHECK(Values<uint8_t>(*RunUnary(UnaryOp::kPopulationCount, *u)) == std::vector<uint8_t>{1, 1, 8});
  auto small = Make<int8_t>(DType::kS8, {3}, {1, -1, 0});
  auto mixed = RunBinary(BinaryOp::kSubtract, *u, *small);
  CHECK(mixed->type() == DType::kS16);
  CHECK(Values<int16_t>(*mixed) == std::vector<int16_t>{0, 129, 255});
}

TEST_CASE("float edges: NaN and infinities", "[ops]") {
  auto a = Make<float>(DType::kF32, {4}, {NAN, INFINITY, -INFINITY, 1.0f});
  auto isnan = RunUnary(UnaryOp::kIsNan, *a);
  CHECK(Values<uint8_t>(*isnan) == std::vector<uint8_t>{1, 0, 0, 0});
  CHECK(Values<uint8_t>(*RunUnary(UnaryOp::kIsInfinity, *a)) == std::vector<uint8_t>{0, 1, 1, 0});
  auto zero = Make<float>(DType::kF32, {}, {0.0f});
  auto q = Values<float>(*RunBinary(BinaryOp::kDivide, *a, *zero));
  CHECK(std::isnan(q[0]));
  CHECK(q[1] == INFINITY);
  CHECK(q[3] == INFINITY);
  auto eq = Values<uint8_t>(*RunBinary(BinaryOp::kEqual, *a, *a));
  CHECK(eq == std::vector<uint8_t>{0, 1, 1, 1});
  auto mx = Values<float>(*RunBinary(BinaryOp::kMax, *a, *zero));
  CHECK(std::isnan(mx[0]));
  CHECK(mx[2] == 0.0f);
}

namespace {

// The reference for the transcendental test: libm itself, in double, on the value the executor
// was given (after rounding to the input type), then rounded to the result type. Sigmoid has no
// libm function; 0.5 + 0.5 tanh(x/2) is the same function by another formula than the executor's.
struct LibmOp {
  UnaryOp op;
  double (*f)(double);
};
const LibmOp kLibmOps[] = {
    {UnaryOp::kExp, [](double x) { return std::exp(x); }},
    {UnaryOp::kLog1p, [](double x) { return std::log1p(x); }},
    {UnaryOp::kSin, [](double x) { return std::sin(x); }},
    {UnaryOp::kTanh, [](double x) { return std::tanh(x); }},
    {UnaryOp::kSigmoid, [](double x) { return 0.5 + 0.5 * std::tanh(x / 2); }},
    {UnaryOp::kErf, [](double x) { return std::erf(x); }},
    {UnaryOp::kAtanh, [](double x) { return std::atanh(x); }},
    {UnaryOp::kCbrt, [](double x) { return std::cbrt(x); }},
};

/// Distance in units in the last place between two values of one type, given as bit patterns
/// of `bits` bits (sign-magnitude mapped onto a monotonic integer line): 0 for equal values
/// (and for two NaNs), huge for a NaN against a number.
uint64_t UlpDistance(uint64_t a, uint64_t b, unsigned bits, bool a_nan, bool b_nan) {
  if (a_nan || b_nan) return a_nan && b_nan ? 0 : ~uint64_t{0};
  const uint64_t sign = uint64_t{1} << (bits - 1);
  auto line = [&](uint64_t v) -> int64_t {
    int64_t mag = static_cast<int64_t>(v & (sign - 1));
    return (v & sign) ? -mag : mag;
  };
  int64_t d = line(a) - line(b);
  return static_cast<uint64_t>(d < 0 ? -d : d);
}
uint64_t UlpF64(double a, double b) {
  uint64_t x, y;
  std::memcpy(&x, &a, 8);
  std::memcpy(&y, &b, 8);
  return UlpDistance(x, y, 64, std::isnan(a), std::isnan(b));
}
uint64_t UlpF32(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return UlpDistance(x, y, 32, std::isnan(a), std::isnan(b));
}
uint64_t UlpF16(uint16_t a, uint16_t b) {
  return UlpDistance(a, b, 16, std::isnan(cpu::HalfToFloat(a)), std::isnan(cpu::HalfToFloat(b)));
}
uint64_t UlpBF16(uint16_t a, uint16_t b) {
  return UlpDistance(a, b, 16, std::isnan(cpu::BF16ToFloat(a)), std::isnan(cpu::BF16ToFloat(b)));
}

}  // namespace

// The README promises transcendentals within 4 ULP: f64 and f32 (and integers, computed as f32)
// are held to that against libm. f16/bf16 are computed in f32 and rounded to the type, so the
// result may sit one step of the type away from libm's value rounded to the type, never more.
TEST_CASE("unary float ops agree with libm on every float type and on integers", "[ops]") {
  constexpr uint64_t kUlp = 4;
  const std::vector<double> xs{0.1, 0.5, 0.9, -0.3};
  const std::vector<int32_t> ints{0, 1, -1, 2};
  for (const auto& [op, libm] : kLibmOps) {
    std::vector<float> x32;
    std::vector<uint16_t> x16, xbf;
    for (double x : xs) {
      x32.push_back(static_cast<float>(x));
      x16.push_back(cpu::FloatToHalf(static_cast<float>(x)));
      xbf.push_back(cpu::FloatToBF16(static_cast<float>(x)));
    }
    auto r64 = RunUnary(op, *Make<double>(DType::kF64, {4}, xs));
    auto r32 = RunUnary(op, *Make<float>(DType::kF32, {4}, x32));
    auto r16 = RunUnary(op, *Make<uint16_t>(DType::kF16, {4}, x16));
    auto rbf = RunUnary(op, *Make<uint16_t>(DType::kBF16, {4}, xbf));
    REQUIRE(r64->type() == DType::kF64);
    REQUIRE(r32->type() == DType::kF32);
    REQUIRE(r16->type() == DType::kF16);
    REQUIRE(rbf->type() == DType::kBF16);
    for (size_t i = 0; i < xs.size(); ++i) {
      const double want64 = libm(xs[i]);
      const float want32 = static_cast<float>(libm(static_cast<double>(x32[i])));
      const uint16_t want16 = cpu::FloatToHalf(static_cast<float>(libm(cpu::HalfToFloat(x16[i]))));
      const uint16_t wantbf = cpu::FloatToBF16(static_cast<float>(libm(cpu::BF16ToFloat(xbf[i]))));
      const double got64 = Values<double>(*r64)[i];
      const float got32 = Values<float>(*r32)[i];
      const uint16_t got16 = Values<uint16_t>(*r16)[i], gotbf = Values<uint16_t>(*rbf)[i];
      INFO(Name(op) << " at " << xs[i] << ": f64 " << got64 << " vs libm " << want64 << ", f32 " << got32
                    << " vs " << want32 << ", f16 " << cpu::HalfToFloat(got16) << " vs "
                    << cpu::HalfToFloat(want16) << ", bf16 " << cpu::BF16ToFloat(gotbf) << " vs "
                    << cpu::BF16ToFloat(wantbf));
      REQUIRE(std::isfinite(want64));  // the inputs are inside every op's domain
      CHECK(UlpF64(got64, want64) <= kUlp);
      CHECK(UlpF32(got32, want32) <= kUlp);
      CHECK(UlpF16(got16, want16) <= 1);
      CHECK(UlpBF16(gotbf, wantbf) <= 1);
    }
    // Integers are computed as f32: the same libm value rounded to float.
    auto ri = RunUnary(op, *Make<int32_t>(DType::kS32, {4}, ints));
    REQUIRE(ri->type() == DType::kF32);
    for (size_t i = 0; i < ints.size(); ++i) {
      const float want = static_cast<float>(libm(static_cast<double>(ints[i])));
      const float got = Values<float>(*ri)[i];
      INFO(Name(op) << " at integer " << ints[i] << ": " << got << " vs libm " << want);
      CHECK(UlpF32(got, want) <= kUlp);
    }
  }
}

TEST_CASE("half and bfloat16 conversions round to nearest even", "[ops][types]") {
  CHECK(cpu::FloatToHalf(1.0f) == 0x3c00);
  CHECK(cpu::FloatToHalf(65504.0f) == 0x7bff);
  CHECK(cpu::FloatToHalf(65520.0f) == 0x7c00);  // rounds to infinity
  CHECK(cpu::FloatToHalf(5.9604645e-08f) == 0x0001);  // smallest subnormal
  CHECK(cpu::HalfToFloat(0x0001) == 5.9604645e-08f);
  CHECK(std::isnan(cpu::HalfToFloat(cpu::FloatToHalf(NAN))));
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // every finite positive half round-trips
    REQUIRE(cpu::FloatToHalf(cpu::HalfToFloat(static_cast<uint16_t>(h))) == h);
  }
  CHECK(cpu::FloatToBF16(1.0f) == 0x3f80);
  CHECK(cpu::BF16ToFloat(cpu::FloatToBF16(3.140625f)) == 3.140625f);
  CHECK(std::isnan(cpu::BF16ToFloat(cpu::FloatToBF16(NAN))));
}

TEST_CASE("reductions over axes, keep_axes, empty tensors and ties", "[ops]") {
  auto a = Make<int32_t>(DType::kS32, {2, 3}, {1, 5, 5, -2, 0, 7});
  auto sum0 = RunReduce(ReduceOp::kSum, *a, {0});
  CHECK(sum0->type() == DType::kS64);
  CHECK(Values<int64_t>(*sum0) == std::vector<int64_t>{-1, 5, 12});
  auto sum_keep = RunReduce(ReduceOp::kSum, *a, {1}, true);
  CHECK(sum_keep->shape() == Shape{2, 1});
  CHECK(Values<int64_t>(*sum_keep) == std::vector<int64_t>{11, 5});
  CHECK(Values<int64_t>(*RunReduce(ReduceOp::kSum, *a, {0, 1})) == std::vector<int64_t>{16});
  CHECK(Values<int64_t>(*RunReduce(ReduceOp::kArgmax, *a, {1})) == std::vector<int64_t>{1, 2});  // first of the tie
  CHECK(Values<int64_t>(*RunReduce(ReduceOp::kArgmin, *a, {0, 1})) == std::vector<int64_t>{3});
  CHECK(Values<int32_t>(*RunReduce(ReduceOp::kReduceMax, *a, {-1})) == std::vector<int32_t>{5, 7});
  CHECK(Values<uint8_t>(*RunReduce(ReduceOp::kAll, *a, {})) == std::vector<uint8_t>{1, 1, 1, 1, 0, 1});
  CHECK(Values<uint8_t>(*RunReduce(ReduceOp::kAny, *a, {0, 1})) == std::vector<uint8_t>{1});
  auto empty = Make<float>(DType::kF32, {0, 2}, {});
  CHECK(Values<float>(*RunReduce(ReduceOp::kSum, *empty, {0})) == std::vector<float>{0, 0});
  CHECK(Values<float>(*RunReduce(ReduceOp::kProduct, *empty, {0})) == std::vector<float>{1, 1});
  CHECK(Values<float>(*RunReduce(ReduceOp::kReduceMax, *empty, {0}))[0] == -INFINITY);
  CHECK(PlanReduce(ReduceOp::kArgmax, DType::kF32, {0, 2}, {0}, false).status().kind() == ErrorKind::kShapeMismatch);
  CHECK_FALSE(PlanReduce(ReduceOp::kSum, DType::kF32, {2}, {1}, false).ok());
  CHECK_FALSE(PlanReduce(ReduceOp::kSum, DType::kF32, {2, 2}, {0, 0}, false).ok());
  auto nan = Make<float>(DType::kF32, {3}, {1.0f, NAN, 3.0f});
  CHECK(Values<int64_t>(*RunReduce(ReduceOp::kArgmax, *nan, {0})) == std::vector<int64_t>{1});
  CHECK(std::isnan(Values<float>(*RunReduce(ReduceOp::kReduceMax, *nan, {0}))[0]));
}

TEST_CASE("as_type saturates floats into integers and wraps integers", "[ops][types]") {
  auto f = Make<float>(DType::kF32, {5}, {1.9f, -1.9f, 300.0f, NAN, -1e10f});
  auto out = *Store().Allocate(DType::kS8, {5});
  REQUIRE(cpu::AsType(*f, *out).ok());
  CHECK(Values<int8_t>(*out) == std::vector<int8_t>{1, -1, 127, 0, -128});
  auto i = Make<int32_t>(DType::kS32, {2}, {257, -1});
  auto u8 = *Store().Allocate(DType::kU8, {2});
  REQUIRE(cpu::AsType(*i, *u8).ok());
  CHECK(Values<uint8_t>(*u8) == std::vector<uint8_t>{1, 255});
  auto big = Make<uint64_t>(DType::kU64, {1}, {~uint64_t{0}});
  auto d = *Store().Allocate(DType::kF64, {1});
  REQUIRE(cpu::AsType(*big, *d).ok());
  CHECK(Values<double>(*d)[0] == Approx(1.8446744073709552e19));
}

TEST_CASE("shape ops: transpose, slice and take, with every index checked", "[ops][security]") {
  auto a = Make<int16_t>(DType::kS16, {2, 3}, {0, 1, 2, 3, 4, 5});
  auto tshape = TransposeShape(a->shape(), {1, 0});
  REQUIRE(tshape.ok());
  auto t = *Store().Allocate(DType::kS16, *tshape);
  REQUIRE(cpu::Transpose(*a, {1, 0}, *t).ok());
  CHECK(Values<int16_t>(*t) == std::vector<int16_t>{0, 3, 1, 4, 2, 5});
  CHECK_FALSE(TransposeShape({2, 3}, {0, 0}).ok());

  auto sshape = SliceShape(a->shape(), {0, 1}, {2, 2}, {1, 1});
  REQUIRE(sshape.ok());
  auto s = *Store().Allocate(DType::kS16, *sshape);
  REQUIRE(cpu::Slice(*a, {0, 1}, {1, 1}, *s).ok());
  CHECK(Values<int16_t>(*s) == std::vector<int16_t>{1, 2, 4, 5});
  // As Nx: the length is the span of the input; the output has ceil(length / stride) elements.
  CHECK(*SliceShape({10}, {1}, {3}, {3}) == Shape{1});
  CHECK(*SliceShape({10}, {1}, {7}, {3}) == Shape{3});  // 1, 4, 7
  CHECK(*SliceShape({10}, {1}, {9}, {3}) == Shape{3});  // 1, 4, 7 (a stride that divides the length)
  CHECK(*SliceShape({10}, {0}, {10}, {4}) == Shape{3});  // 0, 4, 8
  CHECK(*SliceShape({10}, {0}, {10}, {20}) == Shape{1});  // a stride past the span keeps the start
  CHECK(*SliceShape({2, 8}, {0, 0}, {2, 4}, {1, 2}) == (Shape{2, 2}));
  CHECK(*SliceShape({2, 15, 30}, {0, 4, 11}, {2, 3, 9}, {2, 1, 3}) == (Shape{1, 3, 3}));
  CHECK(*SliceShape({10}, {3}, {0}, {2}) == Shape{0});
  CHECK(SliceShape({10}, {10}, {0}, {1}).ok());  // an empty slice at the end
  CHECK(SliceShape({10}, {11}, {0}, {1}).status().kind() == ErrorKind::kOutOfRange);
  CHECK(SliceShape({10}, {2}, {9}, {3}).status().kind() == ErrorKind::kOutOfRange);  // 2 + 9 > 10, never clamped
  CHECK(SliceShape({10}, {0}, {11}, {1}).status().kind() == ErrorKind::kOutOfRange);
  CHECK(SliceShape({10}, {-1}, {1}, {1}).status().kind() == ErrorKind::kOutOfRange);
  CHECK(SliceShape({10}, {1}, {-1}, {1}).status().kind() == ErrorKind::kOutOfRange);
  CHECK(SliceShape({10}, {0}, {1ll << 62}, {4}).status().kind() == ErrorKind::kOutOfRange);
  CHECK(SliceShape({10}, {INT64_MAX}, {INT64_MAX}, {1}).status().kind() == ErrorKind::kOutOfRange);  // no wrap
  CHECK(SliceShape({10}, {0}, {1}, {0}).status().kind() == ErrorKind::kBadArg);

  // Nx.slice's docs: iota({2, 15, 30}) from [0, 4, 11], lengths [2, 3, 9], strides [2, 1, 3].
  std::vector<int32_t> iota(2 * 15 * 30);
  for (size_t j = 0; j < iota.size(); ++j) iota[j] = static_cast<int32_t>(j);
  auto big = Make<int32_t>(DType::kS32, {2, 15, 30}, iota);
  auto nx = *Store().Allocate(DType::kS32, {1, 3, 3});
  REQUIRE(cpu::Slice(*big, {0, 4, 11}, {2, 1, 3}, *nx).ok());
  CHECK(Values<int32_t>(*nx) == std::vector<int32_t>{131, 134, 137, 161, 164, 167, 191, 194, 197});
  // slice(iota({2, 8}), [0, 0], [2, 4], strides: [1, 2]) is [[0, 2], [8, 10]].
  auto r = Make<int32_t>(DType::kS32, {2, 8}, std::vector<int32_t>(iota.begin(), iota.begin() + 16));
  auto nx2 = *Store().Allocate(DType::kS32, {2, 2});
  REQUIRE(cpu::Slice(*r, {0, 0}, {1, 2}, *nx2).ok());
  CHECK(Values<int32_t>(*nx2) == std::vector<int32_t>{0, 2, 8, 10});

  auto idx = Make<int32_t>(DType::kS32, {3}, {2, 0, 2});
  auto kshape = TakeShape(a->shape(), DType::kS32, idx->shape(), 1);
  REQUIRE(kshape.ok());
  auto k = *Store().Allocate(DType::kS16, *kshape);
  REQUIRE(cpu::Take(*a, *idx, 1, *k).ok());
  CHECK(Values<int16_t>(*k) == std::vector<int16_t>{2, 0, 2, 5, 3, 5});
  auto bad = Make<int32_t>(DType::kS32, {2}, {1, 3});
  auto k2 = *Store().Allocate(DType::kS16, {2, 2});
  std::memset(k2->data(), 0x55, k2->bytes());
  Status st = cpu::Take(*a, *bad, 1, *k2);
  CHECK(st.kind() == ErrorKind::kOutOfRange);
  CHECK_THAT(st.message(), Catch::Contains("index 3"));
  CHECK(Values<int16_t>(*k2) == std::vector<int16_t>{0x5555, 0x5555, 0x5555, 0x5555});  // nothing written
  auto neg = Make<int8_t>(DType::kS8, {1}, {-1});
  CHECK(cpu::Take(*a, *neg, 0, *k2).kind() == ErrorKind::kOutOfRange);
  CHECK(TakeShape({2}, DType::kF32, {1}, 0).status().kind() == ErrorKind::kTypeMismatch);
  CHECK_FALSE(TakeShape({2}, DType::kS32, {1}, 1).ok());
  CHECK(ir::CheckReshape({2, 3}, {3, 2}).ok());
  CHECK(ir::CheckReshape({2, 3}, {4}).kind() == ErrorKind::kShapeMismatch);
}

TEST_CASE("creation: iota, eye, full, and seeded random numbers", "[ops]") {
  auto io = *Store().Allocate(DType::kS32, {2, 3});
  REQUIRE(cpu::Iota(*io, 1).ok());
  CHECK(Values<int32_t>(*io) == std::vector<int32_t>{0, 1, 2, 0, 1, 2});
  REQUIRE(cpu::Iota(*io, -1).ok());
  CHECK(Values<int32_t>(*io) == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  auto eye = *Store().Allocate(DType::kF32, {2, 3});
  REQUIRE(cpu::Eye(*eye).ok());
  CHECK(Values<float>(*eye) == std::vector<float>{1, 0, 0, 0, 1, 0});
  auto full = *Store().Allocate(DType::kU8, {3});
  ir::Scalar v;
  v.i = 300;  // wraps like Nx's integer conversion
  REQUIRE(cpu::Fill(*full, v).ok());
  CHECK(Values<uint8_t>(*full) == std::vector<uint8_t>{44, 44, 44});

  auto u1 = *Store().Allocate(DType::kF32, {10000});
  auto u2 = *Store().Allocate(DType::kF32, {10000});
  REQUIRE(cpu::RandomUniform(*u1, 42, -1.0, 3.0).ok());
  REQUIRE(cpu::RandomUniform(*u2, 42, -1.0, 3.0).ok());
  auto x1 = Values<float>(*u1);
  CHECK(x1 == Values<float>(*u2));  // same seed, same numbers
  double mean = 0;
  for (float x : x1) {
    REQUIRE(x >= -1.0f);
    REQUIRE(x < 3.0f);
    mean += x;
  }
  CHECK(mean / x1.size() == Approx(1.0).margin(0.05));
  REQUIRE(cpu::RandomUniform(*u2, 43, -1.0, 3.0).ok());
  CHECK(x1 != Values<float>(*u2));
  auto nrm = *Store().Allocate(DType::kF64, {20000});
  REQUIRE(cpu::RandomNormal(*nrm, 7, 2.0, 0.5).ok());
  double m = 0, sq = 0;
  for (double x : Values<double>(*nrm)) { m += x; sq += x * x; }
  m /= 20000;
  CHECK(m == Approx(2.0).margin(0.02));
  CHECK(std::sqrt(sq / 20000 - m * m) == Approx(0.5).margin(0.02));
}

TEST_CASE("select and clip broadcast and promote", "[ops]") {
  auto pred = Make<uint8_t>(DType::kU8, {3}, {1, 0, 2});
  auto a = Make<int32_t>(DType::kS32, {2, 3}, {1, 2, 3, 4, 5, 6});
  auto b = Make<float>(DType::kF32, {}, {-1.5f});
  auto out = *Store().Allocate(DType::kF32, {2, 3});
  REQUIRE(cpu::Select(*pred, *a, *b, DType::kF32, *out).ok());
  CHECK(Values<float>(*out) == std::vector<float>{1, -1.5f, 3, 4, -1.5f, 6});
  auto lo = Make<int32_t>(DType::kS32, {}, {2});
  auto hi = Make<int32_t>(DType::kS32, {3}, {3, 4, 5});
  auto c = *Store().Allocate(DType::kS32, {2, 3});
  REQUIRE(cpu::Clip(*a, *lo, *hi, DType::kS32, *c).ok());
  CHECK(Values<int32_t>(*c) == std::vector<int32_t>{2, 2, 3, 3, 4, 5});
}

TEST_CASE("broadcast, reverse, pad (negative and interior), concatenate, stack, put_slice", "[ops]") {
  auto row = Make<int16_t>(DType::kS16, {3}, {1, 2, 3});
  REQUIRE(ir::CheckBroadcastTo({3}, {2, 3}, {1}).ok());
  CHECK_FALSE(ir::CheckBroadcastTo({3}, {3, 2}, {1}).ok());
  auto bc = *Store().Allocate(DType::kS16, {2, 3});
  REQUIRE(cpu::BroadcastTo(*row, {1}, *bc).ok());
  CHECK(Values<int16_t>(*bc) == std::vector<int16_t>{1, 2, 3, 1, 2, 3});
  auto col = *Store().Allocate(DType::kS16, {3, 2});
  REQUIRE(cpu::BroadcastTo(*row, {0}, *col).ok());
  CHECK(Values<int16_t>(*col) == std::vector<int16_t>{1, 1, 2, 2, 3, 3});

  auto m = Make<int16_t>(DType::kS16, {2, 3}, {0, 1, 2, 3, 4, 5});
  auto rv = *Store().Allocate(DType::kS16, {2, 3});
  REQUIRE(cpu::Reverse(*m, {1}, *rv).ok());
  CHECK(Values<int16_t>(*rv) == std::vector<int16_t>{2, 1, 0, 5, 4, 3});
  REQUIRE(cpu::Reverse(*m, {0, 1}, *rv).ok());
  CHECK(Values<int16_t>(*rv) == std::vector<int16_t>{5, 4, 3, 2, 1, 0});

  std::vector<ir::PadDim> cfg{{1, -1, 1}};
  auto ps = ir::PadShape({3}, cfg);
  REQUIRE(ps.ok());
  CHECK(*ps == Shape{5});  // 1 + 3 + 2 interior - 1
  auto padded = *Store().Allocate(DType::kS16, *ps);
  ir::Scalar nine;
  nine.i = 9;
  REQUIRE(cpu::Pad(*row, nine, cfg, *padded).ok());
  CHECK(Values<int16_t>(*padded) == std::vector<int16_t>{9, 1, 9, 2, 9});
  CHECK(ir::PadShape({3}, {{-4, 0, 0}}).status().kind() == ErrorKind::kOutOfRange);

  auto f = Make<float>(DType::kF32, {1, 3}, {0.5f, 1.5f, 2.5f});
  auto cs = ir::ConcatShape({{2, 3}, {1, 3}}, 0);
  REQUIRE(cs.ok());
  auto cat = *Store().Allocate(DType::kF32, *cs);
  REQUIRE(cpu::Concatenate({m.get(), f.get()}, {{2, 3}, {1, 3}}, 0, *cat).ok());
  CHECK(Values<float>(*cat) == std::vector<float>{0, 1, 2, 3, 4, 5, 0.5f, 1.5f, 2.5f});
  auto cat1 = *Store().Allocate(DType::kS16, {2, 6});
  REQUIRE(cpu::Concatenate({m.get(), m.get()}, {{2, 3}, {2, 3}}, 1, *cat1).ok());
  CHECK(Values<int16_t>(*cat1) == std::vector<int16_t>{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
  CHECK(ir::ConcatShape({{2, 3}, {2, 4}}, 0).status().kind() == ErrorKind::kShapeMismatch);
  // stack = concatenate along a new axis
  auto st = *Store().Allocate(DType::kS16, {3, 2});
  REQUIRE(cpu::Concatenate({row.get(), row.get()}, {{3, 1}, {3, 1}}, 1, *st).ok());
  CHECK(Values<int16_t>(*st) == std::vector<int16_t>{1, 1, 2, 2, 3, 3});

  auto upd = Make<int16_t>(DType::kS16, {1, 2}, {7, 8});
  REQUIRE(ir::CheckPutSlice({2, 3}, {1, 1}, {1, 2}).ok());
  CHECK(ir::CheckPutSlice({2, 3}, {1, 2}, {1, 2}).kind() == ErrorKind::kOutOfRange);
  auto put = *Store().Allocate(DType::kS16, {2, 3});
  REQUIRE(cpu::PutSlice(*m, {1, 1}, *upd, *put).ok());
  CHECK(Values<int16_t>(*put) == std::vector<int16_t>{0, 1, 2, 3, 7, 8});
}

TEST_CASE("gather checks every coordinate; sort and argsort are stable, NaN last", "[ops][security]") {
  auto m = Make<int16_t>(DType::kS16, {2, 3}, {0, 1, 2, 3, 4, 5});
  auto idx = Make<int64_t>(DType::kS64, {2, 2}, {1, 2, 0, 0});
  auto gs = ir::GatherShape(m->shape(), DType::kS64, idx->shape());
  REQUIRE(gs.ok());
  CHECK(*gs == Shape{2});
  auto g = *Store().Allocate(DType::kS16, *gs);
  REQUIRE(cpu::Gather(*m, *idx, *g).ok());
  CHECK(Values<int16_t>(*g) == std::vector<int16_t>{5, 0});
  auto bad = Make<int64_t>(DType::kS64, {1, 2}, {2, 0});
  auto g1 = *Store().Allocate(DType::kS16, {1});
  CHECK(cpu::Gather(*m, *bad, *g1).kind() == ErrorKind::kOutOfRange);
  CHECK(ir::GatherShape({2, 3}, DType::kS64, {4, 3}).status().kind() == ErrorKind::kShapeMismatch);

  auto v = Make<float>(DType::kF32, {6}, {3.0f, NAN, 1.0f, 3.0f, -2.0f, 1.0f});
  auto sorted = *Store().Allocate(DType::kF32, {6});
  REQUIRE(cpu::Sort(*v, 0, false, false, *sorted).ok());
  auto sv = Values<float>(*sorted);
  CHECK(std::vector<float>(sv.begin(), sv.end() - 1) == std::vector<float>{-2, 1, 1, 3, 3});
  CHECK(std::isnan(sv[5]));
  auto args = *Store().Allocate(DType::kS64, {6});
  REQUIRE(cpu::Sort(*v, 0, false, true, *args).ok());
  CHECK(Values<int64_t>(*args) == std::vector<int64_t>{4, 2, 5, 0, 3, 1});  // ties keep their order
  REQUIRE(cpu::Sort(*v, 0, true, true, *args).ok());
  CHECK(Values<int64_t>(*args) == std::vector<int64_t>{1, 0, 3, 2, 5, 4});
  auto cols = Make<int32_t>(DType::kS32, {2, 2}, {4, 1, 2, 3});
  auto cs = *Store().Allocate(DType::kS32, {2, 2});
  REQUIRE(cpu::Sort(*cols, 0, false, false, *cs).ok());
  CHECK(Values<int32_t>(*cs) == std::vector<int32_t>{2, 1, 4, 3});
}

TEST_CASE("dot with contraction and batch axes, through BLIS and plain loops, matches the reference", "[ops]") {
  // a {2(batch), 3, 4}, b {2(batch), 4, 5}: batched matmul; then integers and a transposed layout.
  std::vector<float> av(24), bv(40);
  for (size_t i = 0; i < av.size(); ++i) av[i] = static_cast<float>(i % 7) - 3;
  for (size_t i = 0; i < bv.size(); ++i) bv[i] = static_cast<float>(i % 5) - 2;
  auto a = Make<float>(DType::kF32, {2, 3, 4}, av);
  auto b = Make<float>(DType::kF32, {2, 4, 5}, bv);
  auto plan = ir::PlanDot(a->shape(), {2}, {0}, b->shape(), {1}, {0});
  REQUIRE(plan.ok());
  CHECK(plan->out_shape == Shape{2, 3, 5});
  Config cfg;
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE(blis.ok());
  cpu::GemmFn gemm = [&](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
    return (*blis)->GemmRaw(t, m, n, k, x, y, z);
  };
  auto with_blis = *Store().Allocate(DType::kF32, plan->out_shape);
  auto plain = *Store().Allocate(DType::kF32, plan->out_shape);
  REQUIRE(cpu::Dot(*a, *b, *plan, DType::kF32, gemm, *with_blis).ok());
  REQUIRE(cpu::Dot(*a, *b, *plan, DType::kF32, nullptr, *plain).ok());
  std::vector<float> want(30, 0);
  for (int bt = 0; bt < 2; ++bt)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 5; ++j)
        for (int q = 0; q < 4; ++q) want[bt * 15 + i * 5 + j] += av[bt * 12 + i * 4 + q] * bv[bt * 20 + q * 5 + j];
  CHECK(Values<float>(*with_blis) == want);
  CHECK(Values<float>(*plain) == want);
  // Contract a's axis 0 with b's axis 0 (a transposed operand), in s8 with wrap.
  auto ia = Make<int8_t>(DType::kS8, {2, 2}, {100, 1, 100, 2});
  auto ib = Make<int8_t>(DType::kS8, {2, 1}, {1, 1});
  auto p2 = ir::PlanDot(ia->shape(), {0}, {}, ib->shape(), {0}, {});
  REQUIRE(p2.ok());
  auto io = *Store().Allocate(DType::kS8, p2->out_shape);
  REQUIRE(cpu::Dot(*ia, *ib, *p2, DType::kS8, gemm, *io).ok());
  CHECK(Values<int8_t>(*io) == std::vector<int8_t>{static_cast<int8_t>(200), 3});
  CHECK(ir::PlanDot({2, 3}, {1}, {}, {4, 2}, {0}, {}).status().kind() == ErrorKind::kShapeMismatch);
  auto outer = *Store().Allocate(DType::kS16, {2, 3});
  REQUIRE(cpu::Outer(*Make<int16_t>(DType::kS16, {2}, {1, 2}), *Make<int16_t>(DType::kS16, {3}, {3, 4, 5}),
                     DType::kS16, *outer).ok());
  CHECK(Values<int16_t>(*outer) == std::vector<int16_t>{3, 4, 5, 6, 8, 10});
}

namespace {

double SecondsOf(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("empty tensors with huge dims cost nothing: no kernel walks their rows", "[ops][security]") {
  // Issue 11: sort of {2^33, 0} held the CPU for 34 s, concatenate of {2^30, 0} 8.2 s, take 2.4 s
  // (67c2630, one row at a time). 2^30 empty rows take seconds on that code; with no per-row
  // work each op here is microseconds, so a quarter of a second is a wide margin either way.
  const uint64_t rows = 1ull << 30;
  auto empty = Make<uint8_t>(DType::kU8, {rows, 0}, {});
  auto idx = Make<int64_t>(DType::kS64, {0}, {});
  SECTION("sort and argsort") {
    auto out = *Store().Allocate(DType::kU8, {rows, 0});
    auto arg = *Store().Allocate(DType::kS64, {rows, 0});
    Status st, sa;
    CHECK(SecondsOf([&] { st = cpu::Sort(*empty, 1, false, false, *out); }) < 0.25);
    CHECK(SecondsOf([&] { sa = cpu::Sort(*empty, 1, true, true, *arg); }) < 0.25);
    CHECK(st.ok());
    CHECK(sa.ok());
  }
  SECTION("concatenate and stack") {
    auto out = *Store().Allocate(DType::kU8, {rows, 0});
    Status st;
    CHECK(SecondsOf([&] { st = cpu::Concatenate({empty.get(), empty.get()}, {{rows, 0}, {rows, 0}}, 1, *out); }) < 0.25);
    CHECK(st.ok());
  }
  SECTION("take along the empty axis") {
    auto out = *Store().Allocate(DType::kU8, {rows, 0});
    Status st;
    CHECK(SecondsOf([&] { st = cpu::Take(*empty, *idx, 1, *out); }) < 0.25);
    CHECK(st.ok());
  }
  SECTION("dot with 2^30 empty batches, and outer with an empty side") {
    auto a = Make<float>(DType::kF32, {rows, 0, 2}, {});
    auto plan = PlanDot({rows, 0, 2}, {2}, {0}, {rows, 2, 0}, {1}, {0});
    REQUIRE(plan.ok());
    auto out = *Store().Allocate(DType::kF32, plan->out_shape);
    auto b = Make<float>(DType::kF32, {rows, 2, 0}, {});
    Status st;
    CHECK(SecondsOf([&] { st = cpu::Dot(*a, *b, *plan, DType::kF32, {}, *out); }) < 0.25);
    CHECK(st.ok());
    auto big = Make<uint8_t>(DType::kU8, {1u << 20}, std::vector<uint8_t>(1u << 20, 7));
    auto none = Make<uint8_t>(DType::kU8, {0}, {});
    auto outer = *Store().Allocate(DType::kU8, {1u << 20, 0});
    CHECK(cpu::Outer(*big, *none, DType::kU8, *outer).ok());
  }
  SECTION("a non-empty result of empty operands loops over the result only") {
    // pad of an empty tensor: the pad value everywhere; sum over an empty axis: the identity.
    auto col = Make<uint8_t>(DType::kU8, {0, 3}, {});
    auto padded = *Store().Allocate(DType::kU8, {2, 3});
    ir::Scalar nine;
    nine.i = 9;
    CHECK(cpu::Pad(*col, nine, {PadDim{1, 1, 1ll << 40}, PadDim{}}, *padded).ok());
    CHECK(Values<uint8_t>(*padded) == std::vector<uint8_t>(6, 9));
    auto wide = Make<uint8_t>(DType::kU8, {4, 0}, {});
    auto sums = RunReduce(ReduceOp::kSum, *wide, {1});
    CHECK(Values<uint64_t>(*sums) == std::vector<uint64_t>(4, 0));
  }
}

TEST_CASE("kernels' working memory is reserved on the node's budget", "[ops][security]") {
  // Issue 11: sort's scratch grew with the axis, outside the budget (364 MB of RSS for a 0-byte
  // {0, 2^24}); argsort of {0, 2^40} ended in std::length_error, an :internal reply.
  TensorStore small(1u << 20);  // 1 MiB
  auto in = *small.Allocate(DType::kF32, {1, 1u << 16});  // 256 KiB; sorting it needs 24 bytes an element
  std::memset(in->data(), 0, in->bytes());
  SECTION("sort and argsort") {
    auto out = *small.Allocate(DType::kF32, {1, 1u << 16});
    const uint64_t before = small.memory_used();
    Status st = cpu::Sort(*in, 1, false, false, *out);
    CHECK(st.kind() == ErrorKind::kOutOfMemory);
    CHECK(st.message().find("sort") != std::string::npos);
    CHECK(small.memory_used() == before);  // nothing left reserved
  }
  SECTION("gather's offsets") {
    auto idx = *small.Allocate(DType::kU8, {1u << 17, 2});  // 2^17 coordinates: 1 MiB of offsets
    std::memset(idx->data(), 0, idx->bytes());
    auto out = *small.Allocate(DType::kF32, {1u << 17});
    REQUIRE(out);
    CHECK(cpu::Gather(*in, *idx, *out).kind() == ErrorKind::kOutOfMemory);
  }
  SECTION("a sort that fits runs, and gives its working memory back") {
    TensorStore roomy(4u << 20);
    auto x = *roomy.Allocate(DType::kS32, {2, 3});
    const int32_t v[] = {3, 1, 2, -1, -1, -5};
    std::memcpy(x->data(), v, sizeof v);
    auto out = *roomy.Allocate(DType::kS64, {2, 3});
    const uint64_t before = roomy.memory_used();
    REQUIRE(cpu::Sort(*x, 1, false, true, *out).ok());
    CHECK(Values<int64_t>(*out) == std::vector<int64_t>{1, 2, 0, 2, 0, 1});
    CHECK(roomy.memory_used() == before);
  }
}

TEST_CASE("erf_inv inverts std::erf, has erf_inv(±1) = ±inf and NaN outside [-1, 1]", "[ops]") {
  // The reference is libm's erf, independent of the formula under test: erf(erf_inv(y)) == y to
  // a few ULP of y, or (in the tails, where erf is flat and y's ULP is all erf can resolve) erfc
  // of the result equals 1 - |y| to a few ULP of that.
  std::vector<double> ys{0.0, -0.0, 1e-300, -1e-30, 1e-8, 0.1, -0.25, 0.5, -0.75, 0.9, 0.99, -0.999, 0.999999,
                         1 - 1e-9, -(1 - 1e-12), 1 - 0x1p-52, 1 - 0x1p-53};
  for (int i = 1; i < 200; ++i) ys.push_back(-1 + i / 100.0);
  auto r64 = RunUnary(UnaryOp::kErfInv, *Make<double>(DType::kF64, {ys.size()}, ys));
  const auto got = Values<double>(*r64);
  for (size_t i = 0; i < ys.size(); ++i) {
    const double y = ys[i], x = got[i];
    INFO("erf_inv(" << y << ") = " << x);
    REQUIRE(std::isfinite(x));
    CHECK(std::signbit(x) == std::signbit(y));
    if (std::fabs(y) <= 0.5) {
      CHECK(std::fabs(std::erf(x) - y) <= 4 * std::fabs(y) * 0x1p-52 + 1e-320);
    } else {
      // erfc's condition number at x is 2x^2: x's own rounding moves erfc by that many ULP.
      CHECK(std::fabs(std::erfc(std::fabs(x)) - (1 - std::fabs(y))) <= (2 * x * x + 8) * (1 - std::fabs(y)) * 0x1p-52);
    }
  }
  // Published values: erf_inv(0.5) and erf_inv(-0.9).
  const std::vector<double> known{0.5, -0.9};
  auto rk = RunUnary(UnaryOp::kErfInv, *Make<double>(DType::kF64, {2}, known));
  CHECK(Values<double>(*rk)[0] == Approx(0.4769362762044699).epsilon(1e-15));
  CHECK(Values<double>(*rk)[1] == Approx(-1.1630871536766743).epsilon(1e-15));
  // The domain's edges, on f32 too (computed in double, rounded once).
  const std::vector<double> edges{1.0, -1.0, 1.5, -2.0, NAN, INFINITY};
  auto re = Values<double>(*RunUnary(UnaryOp::kErfInv, *Make<double>(DType::kF64, {6}, edges)));
  CHECK(re[0] == INFINITY);
  CHECK(re[1] == -INFINITY);
  for (size_t i = 2; i < 6; ++i) CHECK(std::isnan(re[i]));
  const std::vector<float> f32{0.5f, 1.0f, -1.0f, 1.0001f, 0.99999994f};
  auto rf = Values<float>(*RunUnary(UnaryOp::kErfInv, *Make<float>(DType::kF32, {5}, f32)));
  CHECK(rf[0] == static_cast<float>(0.4769362762044699));
  CHECK(rf[1] == INFINITY);
  CHECK(rf[2] == -INFINITY);
  CHECK(std::isnan(rf[3]));
  CHECK(std::erfc(static_cast<double>(rf[4])) == Approx(1 - static_cast<double>(0.99999994f)).epsilon(1e-5));
  // Integers become f32 first: erf_inv(0) = 0, erf_inv(±1) = ±inf, erf_inv(2) = NaN.
  auto ri = Values<float>(*RunUnary(UnaryOp::kErfInv, *Make<int32_t>(DType::kS32, {4}, {0, 1, -1, 2})));
  CHECK(ri[0] == 0.0f);
  CHECK(ri[1] == INFINITY);
  CHECK(ri[2] == -INFINITY);
  CHECK(std::isnan(ri[3]));
}
