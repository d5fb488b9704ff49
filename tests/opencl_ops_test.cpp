// The op set on the OpenCL device (exec/opencl_ops.h), cross-checked against the plain CPU
// implementation (exec/cpu_ops.h) on every op and every type it accepts: seeded random inputs
// salted with the edges (NaN, infinities, signed zeros, subnormals, integer MIN/MAX, shift
// counts around the width, zero divisors), shapes with empty tensors, size-1 axes, scalars and
// broadcasting edges. Integer results, comparisons, conversions, shape ops, min/max and the four
// float arithmetic ops must match bit for bit (any NaN matches any NaN); transcendental float
// functions within a few ULP of the result type. There is no skipping: without an OpenCL device
// these tests fail.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "exec/blis_executor.h"
#include "exec/cpu_ops.h"
#include "exec/opencl_executor.h"
#include "exec/opencl_ops.h"
#include "ir/ops.h"
#include "element_bits.h"
#include "opencl_fixture.h"

using namespace mure;
using namespace mure::ir;
using ocl::KernelRequest;
using testing::Alloc;
using testing::Bits;
using testing::Device;
using testing::kAllTypes;
using testing::kIntTypes;
using testing::Ops;
using testing::UlpDistance;

namespace {

/// Garbage, so an element a kernel forgot to write shows.
std::shared_ptr<Tensor> AllocDirty(DType t, const Shape& s) {
  auto x = Alloc(t, s);
  if (x->bytes()) std::memset(x->data(), 0xa5, x->bytes());
  return x;
}

// ---- values ------------------------------------------------------------------------------------------

void PutF(DType t, uint8_t* p, uint64_t i, double v) {
  switch (t) {
    case DType::kF16: { uint16_t h = cpu::FloatToHalf(static_cast<float>(v)); std::memcpy(p + 2 * i, &h, 2); break; }
    case DType::kBF16: { uint16_t h = cpu::FloatToBF16(static_cast<float>(v)); std::memcpy(p + 2 * i, &h, 2); break; }
    case DType::kF32: { float f = static_cast<float>(v); std::memcpy(p + 4 * i, &f, 4); break; }
    default: std::memcpy(p + 8 * i, &v, 8); break;
  }
}

/// Random values of type t, salted with the edges of its class.
void FillRandom(Tensor& x, std::mt19937_64& rng) {
  const DType t = x.type();
  const uint64_t n = x.elements();
  uint8_t* p = x.data();
  std::uniform_int_distribution<int> pick(0, 99);
  if (IsFloat(t)) {
    static const double specials[] = {0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 2.5, 3.5,
                                      INFINITY, -INFINITY, NAN, -NAN, 1e-40, -3e-39, 1e-310, 5e-324,
                                      3.4028234663852886e38, -3.4028234663852886e38, 1.7976931348623157e308,
                                      65504, 65520, -65536, 1e30, -1e30, 3e9, -3e9, 4294967295.0, 4294967296.0,
                                      2147483647.0, -2147483648.0, 9.2233720368547758e18, -9.3e18, 1.9e19, 2e19,
                                      255.5, 255.49, 127.9, -128.7, -129.0, 32767.5, 65535.9, 0.9999999,
                                      1e-8, 1.5707963267948966, 3.141592653589793, 88.8, -88.8, -100, 100, 710,
                                      -745, 1e-20, 6.1e-5, 5.96e-8, 1e-45};
    const size_t ns = sizeof specials / sizeof specials[0];
    for (uint64_t i = 0; i < n; ++i) {
      int k = pick(rng);
      double v;
      if (k < 25) {
        v = specials[rng() % ns];
      } else if (k < 60) {
        v = std::uniform_real_distribution<double>(-4, 4)(rng);
      } else if (k < 75) {
        v = std::uniform_real_distribution<double>(-1, 1)(rng);
      } else if (k < 90) {
        v = std::pow(10.0, std::uniform_real_distribution<double>(-30, 30)(rng)) * ((rng() & 1) ? 1 : -1);
      } else if (t == DType::kF16 || t == DType::kBF16) {  // any pattern at all, NaN payloads included
        uint16_t h = static_cast<uint16_t>(rng());
        std::memcpy(p + 2 * i, &h, 2);
        continue;
      } else {
        v = std::round(std::uniform_real_distribution<double>(-300, 300)(rng)) + ((rng() & 1) ? 0.5 : 0);
      }
      PutF(t, p, i, v);
    }
    return;
  }
  const unsigned bits = DTypeBits(t);
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  const uint64_t top = uint64_t{1} << (bits - 1);
  const uint64_t specials[] = {0, 1, ~uint64_t{0}, 2, ~uint64_t{1}, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                               top, top - 1, top + 1, mask, mask - 1, 100, 127, 128, 255, 256};
  const size_t ns = sizeof specials / sizeof specials[0];
  for (uint64_t i = 0; i < n; ++i) {
    int k = pick(rng);
    uint64_t v;
    if (k < 30) v = specials[rng() % ns];
    else if (k < 65) v = static_cast<uint64_t>(std::uniform_int_distribution<int64_t>(-20, 20)(rng));
    else v = rng();
    std::memcpy(p + DTypeSize(t) * i, &v, DTypeSize(t));  // little-endian: the low bytes
  }
}

std::shared_ptr<Tensor> RandomTensor(DType t, const Shape& s, uint64_t seed) {
  auto x = Alloc(t, s);
  std::mt19937_64 rng(seed);
  FillRandom(*x, rng);
  return x;
}

// ---- comparison ----------------------------------------------------------------------------------------

struct Tol {
  uint64_t ulps = 0;    ///< allowed distance in units in the last place of the result type
  double abs = 0;       ///< or this much absolute difference (results near underflow)
};

double SmallestNormal(DType t) {
  switch (t) {
    case DType::kF16: return 6.103515625e-05;
    case DType::kBF16: case DType::kF32: return std::numeric_limits<float>::min();
    default: return std::numeric_limits<double>::min();
  }
}

std::string Describe(DType t, const uint8_t* p, uint64_t i) {
  std::ostringstream os;
  if (IsFloat(t)) {
    os.precision(17);
    os << testing::FloatValue(t, p, i) << " (0x" << std::hex << Bits(t, p, i) << ")";
  } else if (IsSigned(t)) {
    uint64_t v = Bits(t, p, i);
    unsigned b = DTypeBits(t);
    int64_t s = b == 64 ? static_cast<int64_t>(v) : static_cast<int64_t>(v << (64 - b)) >> (64 - b);
    os << s;
  } else {
    os << Bits(t, p, i);
  }
  return os.str();
}

/// Element-by-element comparison; `input` describes element i's operands for the message.
void Compare(const Tensor& want, const Tensor& got, Tol tol, const std::string& what,
             const std::function<std::string(uint64_t)>& input = nullptr) {
  REQUIRE(want.type() == got.type());
  REQUIRE(want.shape() == got.shape());
  const DType t = want.type();
  uint64_t bad = 0;
  std::string first;
  for (uint64_t i = 0; i < want.elements(); ++i) {
    const uint64_t wb = Bits(t, want.data(), i), gb = Bits(t, got.data(), i);
    if (wb == gb) continue;
    if (IsFloat(t)) {
      const double w = testing::FloatValue(t, want.data(), i), g = testing::FloatValue(t, got.data(), i);
      if (std::isnan(w) && std::isnan(g)) continue;
      if (!std::isnan(w) && !std::isnan(g)) {
        if (tol.ulps && UlpDistance(t, wb, gb) <= tol.ulps) continue;
        if (tol.abs > 0 && std::fabs(w - g) <= tol.abs) continue;
      }
    }
    if (bad++ < 3) {
      first += "\n  element " + std::to_string(i) + ": cpu " + Describe(t, want.data(), i) + ", opencl " +
               Describe(t, got.data(), i) + (input ? " from " + input(i) : "");
    }
  }
  INFO(what << ": " << bad << " of " << want.elements() << " elements differ" << first);
  CHECK(bad == 0);
}

/// The table's word (ir/ops.def): not exact = a transcendental function, within README's bound.
bool Approximate(UnaryOp op) { return !ir::Info(op).exact; }

/// Tolerance for a transcendental function's result of type t: a few ULP in f32/f64 (the device
/// computes f16/bf16/f32 in float with its own libm, the reference in double with glibc's), one
/// step of the narrow types. Seen on PoCL 3.1: at most 2 ULP (tan in f32, cbrt and tan in f64),
/// everything else within 1.
Tol Transcendental(DType t) {
  switch (t) {
    case DType::kF16: case DType::kBF16: return {1, SmallestNormal(t)};
    default: return {4, SmallestNormal(t)};
  }
}

std::string ShapeName(const Shape& s) { return ShapeToString(s); }

// Every op of the table (ir/ops.def), in its order: a new row is tested here without a list to edit.
template <typename Op, typename Rows>
std::vector<Op> AllOps(const Rows& rows) {
  std::vector<Op> out;
  for (const auto& r : rows) out.push_back(r.op);
  return out;
}
const std::vector<UnaryOp> kUnaryOps = AllOps<UnaryOp>(ir::UnaryTable());
const std::vector<BinaryOp> kBinaryOps = AllOps<BinaryOp>(ir::BinaryTable());
const std::vector<ReduceOp> kReduceOps = AllOps<ReduceOp>(ir::ReduceTable());

uint64_t Seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return ((a * 1000003 + b) * 1000003 + c) * 1000003 + d + 12345;
}

// ---- runners --------------------------------------------------------------------------------------------

void CheckUnary(UnaryOp op, const Tensor& in) {
  auto t = UnaryResultType(op, in.type());
  REQUIRE(t.ok());
  auto want = AllocDirty(*t, in.shape()), got = AllocDirty(*t, in.shape());
  REQUIRE(cpu::Unary(op, in, *want).ok());
  Status s = Ops().Unary(op, in, *got);
  std::string what = std::string(Name(op)) + " " + DTypeToString(in.type()) + " " + ShapeName(in.shape());
  INFO(what << ": " << s.message());
  REQUIRE(s.ok());
  Compare(*want, *got, Approximate(op) && IsFloat(*t) ? Transcendental(*t) : Tol{}, what,
          [&](uint64_t i) { return Describe(in.type(), in.data(), i); });
}

void CheckBinary(BinaryOp op, const Tensor& a, const Tensor& b) {
  auto types = BinaryResultTypes(op, a.type(), b.type());
  REQUIRE(types.ok());
  auto shape = BroadcastShapes(a.shape(), b.shape());
  REQUIRE(shape.ok());
  auto want = AllocDirty(types->result, *shape), got = AllocDirty(types->result, *shape);
  REQUIRE(cpu::Binary(op, a, b, types->compute, *want).ok());
  Status s = Ops().Binary(op, a, b, types->compute, *got);
  std::string what = std::string(Name(op)) + " " + DTypeToString(a.type()) + ShapeName(a.shape()) + " " +
                     DTypeToString(b.type()) + ShapeName(b.shape());
  INFO(what << ": " << s.message());
  REQUIRE(s.ok());
  const bool approx = !ir::Info(op).exact;
  // Operands of element i (for the message): recompute the broadcast.
  auto operands = [&](uint64_t i) {
    const Shape& os = *shape;
    auto offset = [&](const Shape& in) {
      uint64_t rem = i, off = 0, stride = 1;
      for (size_t d = os.size(); d-- > 0;) {
        uint64_t k = rem % os[d];
        rem /= os[d];
        size_t lead = os.size() - in.size();
        if (d >= lead) {
          uint64_t dim = in[d - lead];
          if (dim != 1) off += k * stride;
          stride *= dim;
        }
      }
      return off;
    };
    return Describe(a.type(), a.data(), offset(a.shape())) + ", " + Describe(b.type(), b.data(), offset(b.shape()));
  };
  Compare(*want, *got, approx && IsFloat(types->result) ? Transcendental(types->result) : Tol{}, what, operands);
}

void CheckReduce(ReduceOp op, const Tensor& in, const std::vector<int64_t>& axes, bool keep, Tol tol = {}) {
  auto plan = PlanReduce(op, in.type(), in.shape(), axes, keep);
  if (!plan.ok()) return;  // argmax of an empty axis, several axes but not all: ir/ says no
  auto want = AllocDirty(plan->out_type, plan->out_shape), got = AllocDirty(plan->out_type, plan->out_shape);
  REQUIRE(cpu::Reduce(op, in, *plan, *want).ok());
  Status s = Ops().Reduce(op, in, *plan, *got);
  std::ostringstream what;
  what << Name(op) << " " << DTypeToString(in.type()) << " " << ShapeName(in.shape()) << " axes {";
  for (int64_t a : axes) what << a << " ";
  what << "} keep " << keep;
  INFO(what.str() << ": " << s.message());
  REQUIRE(s.ok());
  Compare(*want, *got, tol, what.str());
}

void CheckAsType(const Tensor& in, DType to) {
  auto want = AllocDirty(to, in.shape()), got = AllocDirty(to, in.shape());
  REQUIRE(cpu::AsType(in, *want).ok());
  Status s = Ops().AsType(in, *got);
  std::string what = "as_type " + DTypeToString(in.type()) + " -> " + DTypeToString(to) + " " + ShapeName(in.shape());
  INFO(what << ": " << s.message());
  REQUIRE(s.ok());
  Compare(*want, *got, {}, what, [&](uint64_t i) { return Describe(in.type(), in.data(), i); });
}

ir::Scalar IntScalar(int64_t v) {
  ir::Scalar s;
  s.i = v;
  return s;
}
ir::Scalar FloatScalar(double v) {
  ir::Scalar s;
  s.integer = false;
  s.f = v;
  return s;
}

const std::vector<Shape> kUnaryShapes = {{}, {0}, {1}, {300}, {3, 1, 5}, {2, 0, 3}};
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{}, {}},         {{300}, {300}},      {{2, 3}, {3}},   {{4, 1, 3}, {5, 1}}, {{}, {2, 2}},
    {{2, 2}, {}},     {{0, 3}, {1, 3}},    {{1}, {7}},      {{2, 1}, {1, 2}},    {{3, 1}, {0}},
    {{1, 1, 1}, {1}}, {{65, 3}, {65, 1}},
};

}  // namespace

namespace {
/// Every half and bfloat16 pattern to f32/f64 and back, and f32/f64 values next to every
/// rounding edge (ties included). Uses the as_type and negate variants.
void RoundTrips() {
  for (DType t : {DType::kF16, DType::kBF16}) {
    auto all = Alloc(t, {65536});
    for (uint32_t h = 0; h < 65536; ++h) std::memcpy(all->data() + 2 * h, &h, 2);
    CheckAsType(*all, DType::kF32);
    CheckAsType(*all, DType::kF64);
    CheckUnary(UnaryOp::kNegate, *all);
    auto f = Alloc(DType::kF32, {65536 * 4});
    std::mt19937_64 rng(7);
    for (uint32_t i = 0; i < 65536 * 4; ++i) {
      // A half or bf16 value with random low bits: every rounding case, ties included.
      uint32_t bits;
      if (t == DType::kF16) {
        float base = cpu::HalfToFloat(static_cast<uint16_t>(i >> 2));
        std::memcpy(&bits, &base, 4);
        bits += (i & 3) == 0 ? 0 : (i & 3) == 1 ? 0x1000 : static_cast<uint32_t>(rng() & 0x1fff);
      } else {
        bits = (i >> 2) << 16 | ((i & 3) == 0 ? 0 : (i & 3) == 1 ? 0x8000 : static_cast<uint32_t>(rng() & 0xffff));
      }
      std::memcpy(f->data() + 4 * i, &bits, 4);
    }
    CheckAsType(*f, t);
    auto d = Alloc(DType::kF64, {65536 * 4});
    for (uint64_t i = 0; i < 65536 * 4; ++i) PutF(DType::kF64, d->data(), i, testing::FloatValue(DType::kF32, f->data(), i));
    CheckAsType(*d, t);
  }
}

/// Integer edge rules (wrap, x / 0, MIN / -1, shifts past the width, pow) on every s8/u8 pair and
/// 64-bit edges; float NaN, infinities, signed zeros and division by zero. Same-type variants.
void EdgeBinary() {
  // Exhaustive s8/u8 pairs for the ops with edge rules (wrap, x / 0, MIN / -1, shifts, pow).
  for (DType t : {DType::kS8, DType::kU8}) {
    auto a = Alloc(t, {256, 1}), b = Alloc(t, {1, 256});
    for (uint32_t i = 0; i < 256; ++i) {
      a->data()[i] = static_cast<uint8_t>(i);
      b->data()[i] = static_cast<uint8_t>(i);
    }
    for (BinaryOp op : {BinaryOp::kAdd, BinaryOp::kMultiply, BinaryOp::kQuotient, BinaryOp::kRemainder,
                        BinaryOp::kPow, BinaryOp::kLeftShift, BinaryOp::kRightShift, BinaryOp::kMin,
                        BinaryOp::kLess, BinaryOp::kDivide}) {
      CheckBinary(op, *a, *b);
    }
  }
  // 64-bit MIN / -1, MIN rem -1, x / 0, shifts by 63, 64 and negative counts.
  const int64_t mn = std::numeric_limits<int64_t>::min(), mx = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> xs{mn, mn, 7, -7, mx, 1, -1, 5, -5, 1, -1, 3};
  std::vector<int64_t> ys{-1, 0, 0, -1, -1, 63, 64, -1, 65, -3, -3, 40};
  for (DType t : {DType::kS64, DType::kU64}) {
    auto a = Alloc(t, {12}), b = Alloc(t, {12});
    std::memcpy(a->data(), xs.data(), 96);
    std::memcpy(b->data(), ys.data(), 96);
    for (BinaryOp op : kBinaryOps) {
      if (BinaryResultTypes(op, t, t).ok()) CheckBinary(op, *a, *b);
    }
  }
  // Float NaN, infinities, signed zeros and division by zero on every float type.
  std::vector<double> fx{NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 0.0, NAN, 2.0};
  std::vector<double> fy{1.0, INFINITY, 0.0, -0.0, 0.0, 0.0, -0.0, 0.0, NAN, NAN};
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32, DType::kF64}) {
    auto a = Alloc(t, {10}), b = Alloc(t, {10});
    for (uint64_t i = 0; i < 10; ++i) {
      PutF(t, a->data(), i, fx[i]);
      PutF(t, b->data(), i, fy[i]);
    }
    for (BinaryOp op : kBinaryOps) {
      if (BinaryResultTypes(op, t, t).ok()) CheckBinary(op, *a, *b);
    }
  }
}

/// Unary float ops on NaN, infinities and signed zeros.
void EdgeUnary() {
  std::vector<double> fx{NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 1e-40, -NAN, 2.0};
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32, DType::kF64}) {
    auto a = Alloc(t, {10});
    for (uint64_t i = 0; i < 10; ++i) PutF(t, a->data(), i, fx[i]);
    for (UnaryOp op : kUnaryOps) {
      if (UnaryResultType(op, t).ok()) CheckUnary(op, *a);
    }
  }
}

}  // namespace

TEST_CASE("unary ops on the OpenCL device match the CPU on every type and float edge", "[opencl][ops]") {
  std::vector<KernelRequest> want;
  for (DType t : kAllTypes) {
    for (UnaryOp op : kUnaryOps) {
      if (UnaryResultType(op, t).ok()) want.push_back(KernelRequest::Unary(op, t));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Ops().Prebuild(want);
  INFO(s.message());
  REQUIRE(s.ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto built = Ops().stats().kernels_built;
  std::printf("[opencl_ops] prebuilt %zu unary variants in %.0f ms\n", want.size(), ms);
  for (DType t : kAllTypes) {
    for (UnaryOp op : kUnaryOps) {
      if (!UnaryResultType(op, t).ok()) {
        // ir/ rejects it first; the generator refuses it too.
        CHECK_FALSE(ocl::UnaryKernel(op, t, t, true).ok());
        continue;
      }
      for (size_t si = 0; si < kUnaryShapes.size(); ++si) {
        auto in = RandomTensor(t, kUnaryShapes[si], Seed(static_cast<uint64_t>(op), static_cast<uint64_t>(t), si));
        CheckUnary(op, *in);
      }
    }
  }
  EdgeUnary();
  CHECK(Ops().stats().kernels_built == built);  // Prebuild built exactly what the ops asked for
}

TEST_CASE("binary ops on the OpenCL device match the CPU on every type and broadcast and edge rule", "[opencl][ops]") {
  // Every op on every same-type pair; every pair of types on add (promotion and conversion of
  // each operand); every op on a set of mixed pairs that exercise promotion rules.
  const std::vector<std::pair<DType, DType>> mixed = {
      {DType::kU8, DType::kS8},   {DType::kU64, DType::kS64}, {DType::kS32, DType::kF32}, {DType::kS64, DType::kF16},
      {DType::kU64, DType::kBF16}, {DType::kF16, DType::kBF16}, {DType::kBF16, DType::kF64}, {DType::kU32, DType::kF64},
      {DType::kS8, DType::kU64},  {DType::kU16, DType::kS32}};
  std::vector<std::pair<DType, DType>> every_op;
  for (DType t : kAllTypes) every_op.push_back({t, t});
  every_op.insert(every_op.end(), mixed.begin(), mixed.end());
  std::vector<KernelRequest> want;
  for (auto [ta, tb] : every_op) {
    for (BinaryOp op : kBinaryOps) {
      if (BinaryResultTypes(op, ta, tb).ok()) want.push_back(KernelRequest::Binary(op, ta, tb));
    }
  }
  for (DType ta : kAllTypes) {
    for (DType tb : kAllTypes) want.push_back(KernelRequest::Binary(BinaryOp::kAdd, ta, tb));
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Ops().Prebuild(want);
  INFO(s.message());
  REQUIRE(s.ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[opencl_ops] prebuilt %zu binary variants in %.0f ms\n", want.size(), ms);
  const auto built = Ops().stats().kernels_built;

  for (auto [ta, tb] : every_op) {
    for (BinaryOp op : kBinaryOps) {
      if (!BinaryResultTypes(op, ta, tb).ok()) continue;
      for (size_t pi = 0; pi < kBroadcastPairs.size(); ++pi) {
        const uint64_t seed = Seed(static_cast<uint64_t>(op), static_cast<uint64_t>(ta), static_cast<uint64_t>(tb), pi);
        auto a = RandomTensor(ta, kBroadcastPairs[pi].first, seed);
        auto b = RandomTensor(tb, kBroadcastPairs[pi].second, seed + 1);
        CheckBinary(op, *a, *b);
      }
      // The same tensor on both sides.
      auto x = RandomTensor(ta, {33}, Seed(static_cast<uint64_t>(op), 99, static_cast<uint64_t>(ta)));
      if (ta == tb) CheckBinary(op, *x, *x);
    }
  }
  for (DType ta : kAllTypes) {
    for (DType tb : kAllTypes) {
      auto a = RandomTensor(ta, {4, 50}, Seed(1, static_cast<uint64_t>(ta), static_cast<uint64_t>(tb)));
      auto b = RandomTensor(tb, {50}, Seed(2, static_cast<uint64_t>(ta), static_cast<uint64_t>(tb)));
      CheckBinary(BinaryOp::kAdd, *a, *b);
    }
  }
  EdgeBinary();
  CHECK(Ops().stats().kernels_built == built);
}

TEST_CASE("reductions on the OpenCL device match the CPU on every type", "[opencl][ops]") {
  std::vector<KernelRequest> want;
  for (DType t : kAllTypes) {
    for (ReduceOp op : kReduceOps) want.push_back(KernelRequest::Reduce(op, t));
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Ops().Prebuild(want);
  INFO(s.message());
  REQUIRE(s.ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[opencl_ops] prebuilt %zu reduction variants in %.0f ms\n", want.size(), ms);
  const auto built = Ops().stats().kernels_built;
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
    bool keep;
  };
  const std::vector<Case> cases = {
      {{}, {}, false},          {{0}, {0}, false},          {{5}, {0}, false},         {{1}, {0}, true},
      {{3, 4}, {0}, false},     {{3, 4}, {1}, true},        {{3, 4}, {0, 1}, false},   {{3, 4}, {}, false},
      {{2, 3, 4}, {0, 2}, false}, {{2, 3, 4}, {1, 2}, true}, {{2, 3, 4}, {0, 1, 2}, true}, {{2, 3, 4}, {-2}, false},
      {{2, 0, 3}, {1}, false},  {{2, 0, 3}, {0, 2}, false}, {{4, 1, 3}, {1}, false},   {{300}, {0}, false},
      {{2, 3, 1, 4, 2}, {0, 2, 4}, false},
  };
  // With double on the device, float sums and products accumulate as the reference does: exact.
  REQUIRE(Ops().fp64());
  for (DType t : kAllTypes) {
    for (ReduceOp op : kReduceOps) {
      for (size_t ci = 0; ci < cases.size(); ++ci) {
        auto in = RandomTensor(t, cases[ci].shape, Seed(static_cast<uint64_t>(op), static_cast<uint64_t>(t), ci));
        CheckReduce(op, *in, cases[ci].axes, cases[ci].keep);
      }
    }
  }
  // Ties and NaN: first occurrence wins, NaN wins.
  auto ties = Alloc(DType::kF32, {2, 4});
  std::vector<float> tv{1, 3, 3, -1, NAN, 2, NAN, 2};
  std::memcpy(ties->data(), tv.data(), 32);
  for (ReduceOp op : kReduceOps) {
    CheckReduce(op, *ties, {1}, false);
    CheckReduce(op, *ties, {0}, false);
    CheckReduce(op, *ties, {0, 1}, false);
  }
  CHECK(Ops().stats().kernels_built == built);
}

TEST_CASE("as_type on the OpenCL device matches the CPU for every pair of types and every f16 and bf16 pattern", "[opencl][ops][types]") {
  std::vector<KernelRequest> want;
  for (DType a : kAllTypes) {
    for (DType b : kAllTypes) want.push_back(KernelRequest::AsType(a, b));
  }
  want.push_back(KernelRequest::Unary(UnaryOp::kNegate, DType::kF16));
  want.push_back(KernelRequest::Unary(UnaryOp::kNegate, DType::kBF16));
  REQUIRE(Ops().Prebuild(want).ok());
  const auto built = Ops().stats().kernels_built;
  RoundTrips();
  for (DType a : kAllTypes) {
    auto in = RandomTensor(a, {400}, Seed(static_cast<uint64_t>(a), 77));
    auto empty = Alloc(a, {0, 2});
    for (DType b : kAllTypes) {
      CheckAsType(*in, b);
      CheckAsType(*empty, b);
    }
  }
  // Integers beyond 2^53 go through double first, as the reference does (a double rounding).
  std::vector<uint64_t> big{(uint64_t{1} << 53) + 1, (uint64_t{1} << 63) + (uint64_t{1} << 39) + 1,
                            ~uint64_t{0}, (uint64_t{1} << 54) + 3, 0x8000008000000000ull, 0x7fffffbfffffffffull,
                            0xffffff7fffffffffull, 0xffffff8000000000ull};
  for (DType from : {DType::kU64, DType::kS64}) {
    auto in = Alloc(from, {8});
    std::memcpy(in->data(), big.data(), 64);
    for (DType to : {DType::kF16, DType::kBF16, DType::kF32, DType::kF64}) CheckAsType(*in, to);
  }
  CHECK(Ops().stats().kernels_built == built);
}

TEST_CASE("shape ops on the OpenCL device match the CPU", "[opencl][ops][security]") {
  std::vector<KernelRequest> want;
  for (DType t : kAllTypes) want.push_back(KernelRequest::Transpose(t));
  for (DType t : {DType::kU8, DType::kS16, DType::kF32, DType::kF64}) {
    for (DType x : kIntTypes) want.push_back(KernelRequest::Take(t, x));
  }
  REQUIRE(Ops().Prebuild(want).ok());
  const auto built = Ops().stats().kernels_built;

  for (DType t : kAllTypes) {
    // transpose
    struct TCase { Shape shape; std::vector<int64_t> perm; };
    for (const TCase& c : std::vector<TCase>{{{}, {}}, {{5}, {0}}, {{2, 3}, {1, 0}}, {{2, 3, 4}, {2, 0, 1}},
                                              {{2, 3, 4}, {-1, -3, 1}}, {{1, 0, 3}, {2, 1, 0}}, {{3, 1, 2, 2}, {3, 1, 0, 2}}}) {
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), c.shape.size()));
      auto shape = TransposeShape(in->shape(), c.perm);
      REQUIRE(shape.ok());
      auto want_t = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
      REQUIRE(cpu::Transpose(*in, c.perm, *want_t).ok());
      REQUIRE(Ops().Transpose(*in, c.perm, *got).ok());
      Compare(*want_t, *got, {}, "transpose " + DTypeToString(t) + " " + ShapeName(c.shape));
    }
    // slice
    struct SCase { Shape shape; std::vector<int64_t> starts, lengths, strides; };
    for (const SCase& c : std::vector<SCase>{{{10}, {1}, {3}, {3}}, {{10}, {10}, {0}, {1}}, {{}, {}, {}, {}},
                                              {{4, 5}, {1, 0}, {2, 5}, {2, 1}}, {{4, 5}, {0, 4}, {4, 1}, {1, 1}},
                                              {{3, 4, 5}, {1, 1, 1}, {2, 0, 2}, {1, 1, 3}},
                                              {{3, 4, 5}, {2, 3, 0}, {1, 1, 5}, {5, 5, 1}},
                                              // As Nx: lengths are spans; strides need not divide them.
                                              {{2, 15, 30}, {0, 4, 11}, {2, 3, 9}, {2, 1, 3}},
                                              {{2, 8}, {0, 0}, {2, 4}, {1, 2}}, {{7, 9}, {1, 2}, {6, 7}, {4, 3}},
                                              {{10}, {0}, {10}, {20}}, {{6, 5}, {2, 1}, {0, 4}, {3, 2}}}) {
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), 5, c.shape.size()));
      auto shape = SliceShape(in->shape(), c.starts, c.lengths, c.strides);
      REQUIRE(shape.ok());
      auto want_s = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
      REQUIRE(cpu::Slice(*in, c.starts, c.strides, *want_s).ok());
      REQUIRE(Ops().Slice(*in, c.starts, c.strides, *got).ok());
      Compare(*want_s, *got, {}, "slice " + DTypeToString(t) + " " + ShapeName(c.shape));
    }
    // bitcast to every type of the same width
    auto in = RandomTensor(t, {3, 7}, Seed(static_cast<uint64_t>(t), 9));
    for (DType to : kAllTypes) {
      if (DTypeBits(to) != DTypeBits(t)) continue;
      auto want_b = AllocDirty(to, in->shape()), got = AllocDirty(to, in->shape());
      REQUIRE(cpu::Bitcast(*in, *want_b).ok());
      REQUIRE(Ops().Bitcast(*in, *got).ok());
      CHECK(std::memcmp(want_b->data(), got->data(), got->bytes()) == 0);
    }
    auto empty = Alloc(t, {0});
    auto empty_out = Alloc(t, {0});
    CHECK(Ops().Bitcast(*empty, *empty_out).ok());
  }

  // take: every index type, several axes and index shapes; every element type width.
  for (DType t : {DType::kU8, DType::kS16, DType::kF32, DType::kF64}) {
    auto in = RandomTensor(t, {3, 4, 5}, Seed(static_cast<uint64_t>(t), 11));
    for (DType x : kIntTypes) {
      for (int64_t axis : {0, 1, 2, -1}) {
        const uint64_t dim = in->shape()[static_cast<size_t>(axis < 0 ? axis + 3 : axis)];
        for (const Shape& is : std::vector<Shape>{{}, {0}, {4}, {2, 3}}) {
          auto idx = Alloc(x, is);
          std::mt19937_64 rng(Seed(static_cast<uint64_t>(x), static_cast<uint64_t>(axis), is.size()));
          for (uint64_t j = 0; j < idx->elements(); ++j) {
            uint64_t v = rng() % dim;
            std::memcpy(idx->data() + j * DTypeSize(x), &v, DTypeSize(x));
          }
          auto shape = TakeShape(in->shape(), x, is, axis);
          REQUIRE(shape.ok());
          auto want_k = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
          REQUIRE(cpu::Take(*in, *idx, axis, *want_k).ok());
          Status s = Ops().Take(*in, *idx, axis, *got);
          INFO(s.message());
          REQUIRE(s.ok());
          Compare(*want_k, *got, {}, "take " + DTypeToString(t) + " indices " + DTypeToString(x));
        }
      }
      // Out of range (too big, negative, huge unsigned): refused before anything is written,
      // with the reference's message.
      auto idx = Alloc(x, {6});
      std::vector<uint64_t> bad{1, 0, 2, IsSigned(x) ? ~uint64_t{0} : uint64_t{4}, 7, ~uint64_t{0}};
      for (uint64_t j = 0; j < 6; ++j) std::memcpy(idx->data() + j * DTypeSize(x), &bad[j], DTypeSize(x));
      auto shape = TakeShape(in->shape(), x, {6}, 1);
      REQUIRE(shape.ok());
      auto want_k = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
      Status ws = cpu::Take(*in, *idx, 1, *want_k);
      Status gs = Ops().Take(*in, *idx, 1, *got);
      CHECK(ws.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.message() == ws.message());
      std::vector<uint8_t> dirty(got->bytes(), 0xa5);
      CHECK(std::memcmp(got->data(), dirty.data(), got->bytes()) == 0);  // nothing written
    }
  }
  // Indices into an empty axis, and a bad index among many (its chunk found, then the first one).
  auto in = Alloc(DType::kF32, {2, 0});
  auto idx = Alloc(DType::kS32, {1});
  int32_t zero = 0;
  std::memcpy(idx->data(), &zero, 4);
  auto out = Alloc(DType::kF32, {2, 1});
  CHECK(Ops().Take(*in, *idx, 1, *out).kind() == ErrorKind::kOutOfRange);
  CHECK(Ops().Take(*in, *idx, 1, *out).message() == cpu::Take(*in, *idx, 1, *out).message());
  auto src = RandomTensor(DType::kF32, {10}, 3);
  auto many = Alloc(DType::kU16, {100000});
  for (uint64_t j = 0; j < 100000; ++j) {
    uint16_t v = j == 77777 ? 10 : j == 99999 ? 11 : static_cast<uint16_t>(j % 10);
    std::memcpy(many->data() + 2 * j, &v, 2);
  }
  auto many_out = Alloc(DType::kF32, {100000});
  Status gs = Ops().Take(*src, *many, 0, *many_out);
  CHECK(gs.kind() == ErrorKind::kOutOfRange);
  CHECK(gs.message() == cpu::Take(*src, *many, 0, *many_out).message());
  CHECK_THAT(gs.message(), Catch::Contains("element 77777"));
  CHECK(Ops().stats().kernels_built == built);  // Prebuild built them all
}

TEST_CASE("the kernel cache compiles each variant once", "[opencl][ops]") {
  auto& ops = Ops();
  auto a = RandomTensor(DType::kF32, {1000}, 1), b = RandomTensor(DType::kF32, {1000}, 2);
  auto c = RandomTensor(DType::kF32, {10, 100}, 3), d = RandomTensor(DType::kF32, {100}, 4);
  auto out1 = Alloc(DType::kF32, {1000}), out2 = Alloc(DType::kF32, {10, 100});
  const auto before = ops.stats();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(ops.Binary(BinaryOp::kAtan2, *a, *b, DType::kF32, *out1).ok());
  const auto t1 = std::chrono::steady_clock::now();
  const auto after_first = ops.stats();
  CHECK(after_first.kernels_built <= before.kernels_built + 1);  // built now (or by an earlier test case)
  REQUIRE(ops.Binary(BinaryOp::kAtan2, *c, *d, DType::kF32, *out2).ok());  // another shape: same kernel
  const auto t2 = std::chrono::steady_clock::now();
  const auto after = ops.stats();
  CHECK(after.kernels_built == after_first.kernels_built);
  CHECK(after.cache_hits == after_first.cache_hits + 1);
  CHECK(after.launches == after_first.launches + 1);
  auto ms = [](auto x, auto y) { return std::chrono::duration<double, std::milli>(y - x).count(); };
  std::printf("[opencl_ops] atan2 f32: first call %.1f ms (build + first launch), cached call %.2f ms; "
              "%llu programs, %llu kernels built so far in %.0f ms, first launches %.0f ms\n",
              ms(t0, t1), ms(t1, t2), static_cast<unsigned long long>(after.programs_built),
              static_cast<unsigned long long>(after.kernels_built), after.build_ms, after.first_launch_ms);
  CHECK(ops.cached_kernels() >= 1);
  // A failing generator builds nothing.
  CHECK_FALSE(ocl::BinaryKernel(BinaryOp::kBitwiseAnd, DType::kF32, DType::kF32, DType::kF32, DType::kF32, true).ok());
}

TEST_CASE("without double precision f64 is unsupported and nothing is built", "[opencl][ops][types]") {
  auto& dev = Device();
  auto made = ocl::OpenClOps::Create(dev.context(), dev.device(), dev.queue(), /*fp64=*/false);
  REQUIRE(made.ok());
  auto& ops = **made;
  auto d = RandomTensor(DType::kF64, {4}, 1), f = RandomTensor(DType::kF32, {4}, 2);
  auto i = RandomTensor(DType::kS32, {4}, 3);
  auto dout = Alloc(DType::kF64, {4}), fout = Alloc(DType::kF32, {4}), u8 = Alloc(DType::kU8, {4});
  auto empty = Alloc(DType::kF64, {0}), empty_out = Alloc(DType::kF64, {0});
  std::vector<Status> refused = {
      ops.Unary(UnaryOp::kExp, *d, *dout),
      ops.Unary(UnaryOp::kIsNan, *d, *u8),
      ops.Unary(UnaryOp::kNegate, *empty, *empty_out),  // even with nothing to compute
      ops.Binary(BinaryOp::kAdd, *d, *i, DType::kF64, *dout),
      ops.Binary(BinaryOp::kLess, *f, *d, DType::kF64, *u8),
      ops.AsType(*f, *dout),
      ops.AsType(*d, *fout),
  };
  auto plan = PlanReduce(ReduceOp::kSum, DType::kF64, {4}, {0}, false);
  auto rout = Alloc(DType::kF64, {});
  refused.push_back(ops.Reduce(ReduceOp::kSum, *d, *plan, *rout));
  for (const Status& s : refused) {
    INFO(s.message());
    CHECK(s.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(s.message(), Catch::Contains("{:f, 64}"));
  }
  // The second part: everything that computes with doubles says so; moving 8-byte elements
  // needs no double precision.
  auto s64 = RandomTensor(DType::kS64, {4}, 4);
  auto splan = PlanDot({4}, {0}, {}, {4}, {0}, {});
  REQUIRE(splan.ok());
  auto dscalar = Alloc(DType::kF64, {});
  refused.push_back(ops.Iota(*dout, -1));
  refused.push_back(ops.RandomUniform(*dout, 1, 0, 1));
  refused.push_back(ops.Sort(*d, 0, false, false, *dout));
  refused.push_back(ops.Dot(*d, *d, *splan, DType::kF64, *dscalar));
  refused.push_back(ops.Outer(*d, *empty, DType::kF64, *empty_out));
  refused.push_back(ops.Select(*u8, *d, *d, DType::kF64, *dout));
  refused.push_back(ops.Clip(*d, *d, *d, DType::kF64, *dout));
  {
    std::vector<const Tensor*> ins{i.get(), d.get()};
    auto joined = Alloc(DType::kF64, {8});
    refused.push_back(ops.Concatenate(ins, {{4}, {4}}, 0, *joined));
    refused.push_back(ops.PutSlice(*d, {0}, *i, *dout));
  }
  CHECK_THAT(refused[0].message(), Catch::Contains("exp"));
  CHECK(ops.Prebuild({KernelRequest::Unary(UnaryOp::kSin, DType::kF64)}).kind() == ErrorKind::kUnsupported);
  CHECK(ops.stats().programs_built == 0);
  CHECK(ops.cached_kernels() == 0);
  {
    auto moved = Alloc(DType::kF64, {4}), want = Alloc(DType::kF64, {4});
    CHECK(ops.Reverse(*d, {0}, *moved).ok());
    REQUIRE(cpu::Reverse(*d, {0}, *want).ok());
    Compare(*want, *moved, {}, "reverse f64 without fp64");
    CHECK(ops.Fill(*moved, FloatScalar(0.1)).ok());
    REQUIRE(cpu::Fill(*want, FloatScalar(0.1)).ok());
    Compare(*want, *moved, {}, "full f64 without fp64");
    auto bits = Alloc(DType::kS64, {4});
    CHECK(ops.Bitcast(*d, *bits).ok());
    CHECK(std::memcmp(bits->data(), d->data(), 32) == 0);
  }
  {
    // Random numbers in float without double: close to the reference's, not identical.
    auto want = Alloc(DType::kF32, {1000}), got = Alloc(DType::kF32, {1000});
    REQUIRE(cpu::RandomUniform(*want, 9, -2, 3).ok());
    REQUIRE(ops.RandomUniform(*got, 9, -2, 3).ok());
    Compare(*want, *got, {0, 1e-6}, "random_uniform in float");  // lo + (hi - lo) * u: absolute error
    REQUIRE(cpu::RandomNormal(*want, 9, 1, 2).ok());
    REQUIRE(ops.RandomNormal(*got, 9, 1, 2).ok());
    Compare(*want, *got, {0, 1e-5}, "random_normal in float");
  }

  // f32 still works, and float sums accumulate in float: close to the reference, not exact.
  auto x = Alloc(DType::kF32, {64, 100});
  std::mt19937_64 rng(5);
  for (uint64_t k = 0; k < x->elements(); ++k) {
    float v = std::uniform_real_distribution<float>(0.5f, 2.0f)(rng);
    std::memcpy(x->data() + 4 * k, &v, 4);
  }
  CHECK(ops.Unary(UnaryOp::kExp, *f, *fout).ok());
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kReduceMax, ReduceOp::kArgmin}) {
    auto p = PlanReduce(op, DType::kF32, x->shape(), {1}, false);
    REQUIRE(p.ok());
    auto want = Alloc(p->out_type, p->out_shape), got = Alloc(p->out_type, p->out_shape);
    REQUIRE(cpu::Reduce(op, *x, *p, *want).ok());
    REQUIRE(ops.Reduce(op, *x, *p, *got).ok());
    Compare(*want, *got, op == ReduceOp::kSum ? Tol{64, 0} : Tol{}, std::string(Name(op)) + " in float");
  }
}

TEST_CASE("generated sources and a kernel that fails to build reports its log", "[opencl][ops]") {
  auto& dev = Device();
  auto made = ocl::OpenClOps::Create(dev.context(), dev.device(), dev.queue(), true);
  REQUIRE(made.ok());
  auto k = ocl::UnaryKernel(UnaryOp::kExp, DType::kF32, DType::kF32, true);
  REQUIRE(k.ok());
  CHECK_THAT(ocl::ProgramSource(*k), Catch::Contains("__kernel void mure_k("));
  CHECK_THAT(ocl::ProgramSource(*k), !Catch::Contains("cl_khr_fp64"));
  auto k64 = ocl::UnaryKernel(UnaryOp::kExp, DType::kF64, DType::kF64, true);
  REQUIRE(k64.ok());
  CHECK_THAT(ocl::ProgramSource(*k64), Catch::Contains("cl_khr_fp64"));
  ocl::KernelSource broken = *k;
  broken.text += "__kernel void oops(__global float* p) { p[0] = undefined_thing; }\n";
  Status s = (*made)->Compile({broken});
  CHECK(s.kind() == ErrorKind::kInternal);
  CHECK_THAT(s.message(), Catch::Contains("clBuildProgram"));
  CHECK_THAT(s.message(), Catch::Contains("undefined_thing"));  // the build log
  CHECK((*made)->cached_kernels() == 0);
  CHECK((*made)->Compile({*k}).ok());
  CHECK((*made)->cached_kernels() == 1);
  CHECK((*made)->Compile({*k}).ok());  // cached: nothing built
  CHECK((*made)->stats().programs_built == 1);
}

// ---- the second part of the op set ------------------------------------------------------------------

namespace {

/// Build these generated variants in one program (every REQUIRE'd variant must generate).
void CompileAll(const std::vector<Result<ocl::KernelSource>>& sources) {
  std::vector<ocl::KernelSource> ks;
  for (const auto& s : sources) {
    INFO((s.ok() ? std::string() : s.status().message()));
    REQUIRE(s.ok());
    ks.push_back(s.value());
  }
  Status st = Ops().Compile(ks);
  INFO(st.message());
  REQUIRE(st.ok());
}

template <typename CpuFn, typename OclFn>
void CheckBoth(DType t, const Shape& s, CpuFn cpu_fn, OclFn ocl_fn, Tol tol, const std::string& what) {
  auto want = AllocDirty(t, s), got = AllocDirty(t, s);
  Status ws = cpu_fn(*want);
  INFO(what << ": cpu " << ws.message());
  REQUIRE(ws.ok());
  Status gs = ocl_fn(*got);
  INFO(what << ": opencl " << gs.message());
  REQUIRE(gs.ok());
  Compare(*want, *got, tol, what);
}

}  // namespace

TEST_CASE("creation ops on the OpenCL device match the CPU", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) {
    srcs.push_back(ocl::IotaKernel(t, true));
    srcs.push_back(ocl::EyeKernel(static_cast<unsigned>(DTypeSize(t))));
    if (IsFloat(t)) {
      srcs.push_back(ocl::RandomKernel(t, false, true));
      srcs.push_back(ocl::RandomKernel(t, true, true));
    }
  }
  CompileAll(srcs);
  for (DType t : kAllTypes) {
    for (const Shape& s : std::vector<Shape>{{}, {0}, {7}, {2, 3, 4}, {3, 0, 2}}) {
      for (int64_t axis = -1; axis < static_cast<int64_t>(s.size()); ++axis) {
        CheckBoth(t, s, [&](Tensor& o) { return cpu::Iota(o, axis); }, [&](Tensor& o) { return Ops().Iota(o, axis); },
                  {}, "iota " + DTypeToString(t) + " " + ShapeName(s) + " axis " + std::to_string(axis));
      }
    }
    auto big = Alloc(t, {70000});  // past 2^16: u8/s8/f16/bf16 wrap, saturate or round
    auto want = Alloc(t, {70000});
    REQUIRE(cpu::Iota(*want, -1).ok());
    REQUIRE(Ops().Iota(*big, -1).ok());
    Compare(*want, *big, {}, "iota " + DTypeToString(t) + " {70000}");
    for (const Shape& s : std::vector<Shape>{{3, 3}, {2, 3, 4}, {0, 2}, {4, 2}, {1, 1}}) {
      CheckBoth(t, s, [&](Tensor& o) { return cpu::Eye(o); }, [&](Tensor& o) { return Ops().Eye(o); }, {},
                "eye " + DTypeToString(t) + " " + ShapeName(s));
    }
    for (const ir::Scalar& v : {IntScalar(300), IntScalar(-1), IntScalar(std::numeric_limits<int64_t>::min()),
                                FloatScalar(2.5), FloatScalar(-2.5), FloatScalar(NAN), FloatScalar(1e30),
                                FloatScalar(-INFINITY)}) {
      for (const Shape& s : std::vector<Shape>{{}, {0, 3}, {5, 3}}) {
        CheckBoth(t, s, [&](Tensor& o) { return cpu::Fill(o, v); }, [&](Tensor& o) { return Ops().Fill(o, v); }, {},
                  "full " + DTypeToString(t) + " " + ShapeName(s) + " " + std::to_string(v.AsDouble()));
      }
    }
    if (!IsFloat(t)) continue;
    // The same counter-based numbers; uniform bit for bit (double on the device), normal through
    // the device's log/cos/sqrt: within a few ULP.
    for (uint64_t seed : {uint64_t{0}, uint64_t{42}, ~uint64_t{0}}) {
      for (auto [lo, hi] : std::vector<std::pair<double, double>>{{0, 1}, {-2, 3}, {5, 5}, {-1e-3, 1e30}}) {
        CheckBoth(t, {1000}, [&](Tensor& o) { return cpu::RandomUniform(o, seed, lo, hi); },
                  [&](Tensor& o) { return Ops().RandomUniform(o, seed, lo, hi); }, {},
                  "random_uniform " + DTypeToString(t));
      }
      for (auto [mean, sd] : std::vector<std::pair<double, double>>{{0, 1}, {3, 0.5}, {-1, 0}}) {
        CheckBoth(t, {1000}, [&](Tensor& o) { return cpu::RandomNormal(o, seed, mean, sd); },
                  [&](Tensor& o) { return Ops().RandomNormal(o, seed, mean, sd); }, Transcendental(t),
                  "random_normal " + DTypeToString(t));
      }
    }
    CheckBoth(t, {0}, [&](Tensor& o) { return cpu::RandomNormal(o, 1, 0, 1); },
              [&](Tensor& o) { return Ops().RandomNormal(o, 1, 0, 1); }, {}, "random_normal empty");
  }
}

TEST_CASE("select and clip on the OpenCL device match the CPU", "[opencl][ops]") {
  const std::vector<std::array<DType, 3>> combos = {
      {DType::kU8, DType::kF32, DType::kF32},  {DType::kU8, DType::kS8, DType::kU64},
      {DType::kF32, DType::kF16, DType::kBF16}, {DType::kS32, DType::kS64, DType::kF64},
      {DType::kF64, DType::kU16, DType::kS16}, {DType::kU8, DType::kF16, DType::kF16},
      {DType::kS16, DType::kU32, DType::kS32}, {DType::kBF16, DType::kBF16, DType::kBF16}};
  std::vector<Result<ocl::KernelSource>> srcs;
  for (auto [p, a, b] : combos) {
    const DType sel = MergeTypes(a, b), clip = MergeTypes(p, MergeTypes(a, b));
    srcs.push_back(ocl::SelectKernel(p, a, b, sel, true));
    srcs.push_back(ocl::ClipKernel(p, a, b, clip, clip, true));
  }
  CompileAll(srcs);
  const std::vector<std::array<Shape, 3>> shapes = {
      {Shape{}, Shape{}, Shape{}},       {Shape{40}, Shape{40}, Shape{40}}, {Shape{2, 3}, Shape{3}, Shape{}},
      {Shape{4, 1}, Shape{1, 5}, Shape{5}}, {Shape{0, 3}, Shape{3}, Shape{1, 3}}, {Shape{}, Shape{2, 2}, Shape{2, 1}}};
  for (auto [p, a, b] : combos) {
    for (size_t si = 0; si < shapes.size(); ++si) {
      auto x = RandomTensor(p, shapes[si][0], Seed(static_cast<uint64_t>(p), si, 1));
      auto y = RandomTensor(a, shapes[si][1], Seed(static_cast<uint64_t>(a), si, 2));
      auto z = RandomTensor(b, shapes[si][2], Seed(static_cast<uint64_t>(b), si, 3));
      auto os = BroadcastShapes(x->shape(), *BroadcastShapes(y->shape(), z->shape()));
      REQUIRE(os.ok());
      const DType sel = MergeTypes(a, b), clip = MergeTypes(p, MergeTypes(a, b));
      const std::string what = DTypeToString(p) + " " + DTypeToString(a) + " " + DTypeToString(b) + " " +
                               ShapeName(shapes[si][0]) + ShapeName(shapes[si][1]) + ShapeName(shapes[si][2]);
      CheckBoth(sel, *os, [&](Tensor& o) { return cpu::Select(*x, *y, *z, sel, o); },
                [&](Tensor& o) { return Ops().Select(*x, *y, *z, sel, o); }, {}, "select " + what);
      CheckBoth(clip, *os, [&](Tensor& o) { return cpu::Clip(*x, *y, *z, clip, o); },
                [&](Tensor& o) { return Ops().Clip(*x, *y, *z, clip, o); }, {}, "clip " + what);
    }
  }
}

TEST_CASE("broadcast reverse pad concatenate and put_slice on the OpenCL device match the CPU", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) srcs.push_back(ocl::CopyKernel(t, t, true));
  const std::vector<std::pair<DType, DType>> conversions = {
      {DType::kU8, DType::kS16}, {DType::kS8, DType::kF32}, {DType::kF16, DType::kF32}, {DType::kBF16, DType::kF32},
      {DType::kU64, DType::kF64}, {DType::kF32, DType::kF64}, {DType::kS32, DType::kS64}, {DType::kF16, DType::kF64}};
  for (auto [from, to] : conversions) srcs.push_back(ocl::CopyKernel(from, to, true));
  CompileAll(srcs);
  REQUIRE(Ops().Prebuild({KernelRequest::Transpose(DType::kU8), KernelRequest::Transpose(DType::kU16),
                  KernelRequest::Transpose(DType::kU32), KernelRequest::Transpose(DType::kU64)}).ok());
  for (DType t : kAllTypes) {
    const std::string tn = DTypeToString(t);
    struct BCase { Shape in, out; std::vector<int64_t> axes; };
    for (const BCase& c : std::vector<BCase>{{{}, {2, 3}, {}}, {{3}, {2, 3}, {1}}, {{2, 1}, {2, 4}, {0, 1}},
                                              {{3}, {3, 2}, {0}}, {{1, 3}, {4, 2, 3}, {1, 2}}, {{2}, {0, 2}, {1}}}) {
      REQUIRE(CheckBroadcastTo(c.in, c.out, c.axes).ok());
      auto in = RandomTensor(t, c.in, Seed(static_cast<uint64_t>(t), 21, c.out.size()));
      CheckBoth(t, c.out, [&](Tensor& o) { return cpu::BroadcastTo(*in, c.axes, o); },
                [&](Tensor& o) { return Ops().BroadcastTo(*in, c.axes, o); }, {}, "broadcast " + tn);
    }
    struct RCase { Shape shape; std::vector<int64_t> axes; };
    for (const RCase& c : std::vector<RCase>{{{}, {}}, {{5}, {0}}, {{2, 3, 4}, {0, 2}}, {{2, 3, 4}, {}},
                                              {{2, 3, 4}, {1}}, {{2, 0, 3}, {1}}, {{3, 1}, {0, 1}}}) {
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), 22, c.axes.size()));
      CheckBoth(t, c.shape, [&](Tensor& o) { return cpu::Reverse(*in, c.axes, o); },
                [&](Tensor& o) { return Ops().Reverse(*in, c.axes, o); }, {}, "reverse " + tn);
    }
    struct PCase { Shape shape; std::vector<PadDim> cfg; };
    for (const PCase& c : std::vector<PCase>{{{3}, {{1, 2, 0}}}, {{3}, {{0, 0, 2}}}, {{2, 3}, {{-1, 1, 1}, {2, -2, 0}}},
                                              {{4}, {{-2, -1, 0}}}, {{4}, {{-3, 0, 1}}}, {{}, {}}, {{0, 2}, {{1, 1, 0}, {0, 1, 3}}},
                                              {{3, 2}, {{-5, 2, 0}, {0, 0, 0}}}, {{5}, {{-1, -1, 2}}}}) {
      auto shape = PadShape(c.shape, c.cfg);
      INFO("pad " << ShapeName(c.shape));
      REQUIRE(shape.ok());
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), 23, c.shape.size()));
      for (const ir::Scalar& v : {IntScalar(-3), FloatScalar(0.5)}) {
        CheckBoth(t, *shape, [&](Tensor& o) { return cpu::Pad(*in, v, c.cfg, o); },
                  [&](Tensor& o) { return Ops().Pad(*in, v, c.cfg, o); }, {}, "pad " + tn + " " + ShapeName(c.shape));
      }
    }
    // concatenate (same type), three inputs, one of them empty along the axis
    for (uint64_t axis : {uint64_t{0}, uint64_t{1}}) {
      std::vector<Shape> shapes = axis == 0 ? std::vector<Shape>{{2, 3}, {0, 3}, {4, 3}}
                                            : std::vector<Shape>{{2, 1}, {2, 0}, {2, 5}};
      std::vector<std::shared_ptr<Tensor>> hold;
      std::vector<const Tensor*> ins;
      for (size_t i = 0; i < shapes.size(); ++i) {
        hold.push_back(RandomTensor(t, shapes[i], Seed(static_cast<uint64_t>(t), 24, i, axis)));
        ins.push_back(hold.back().get());
      }
      auto shape = ConcatShape(shapes, axis);
      REQUIRE(shape.ok());
      CheckBoth(t, *shape, [&](Tensor& o) { return cpu::Concatenate(ins, shapes, axis, o); },
                [&](Tensor& o) { return Ops().Concatenate(ins, shapes, axis, o); }, {}, "concatenate " + tn);
    }
    // put_slice (same type)
    auto base = RandomTensor(t, {4, 5}, Seed(static_cast<uint64_t>(t), 25));
    for (auto [us, starts] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
             {{2, 2}, {1, 3}}, {{4, 5}, {0, 0}}, {{0, 2}, {4, 1}}, {{1, 1}, {3, 4}}}) {
      REQUIRE(CheckPutSlice(base->shape(), starts, us).ok());
      auto upd = RandomTensor(t, us, Seed(static_cast<uint64_t>(t), 26, us[0]));
      CheckBoth(t, base->shape(), [&](Tensor& o) { return cpu::PutSlice(*base, starts, *upd, o); },
                [&](Tensor& o) { return Ops().PutSlice(*base, starts, *upd, o); }, {}, "put_slice " + tn);
    }
  }
  // Mixed types: the joins and put_slice convert into the merged type.
  for (auto [from, to] : conversions) {
    auto a = RandomTensor(from, {2, 3}, Seed(static_cast<uint64_t>(from), 27));
    auto b = RandomTensor(to, {1, 3}, Seed(static_cast<uint64_t>(to), 28));
    std::vector<const Tensor*> ins{a.get(), b.get()};
    std::vector<Shape> shapes{{2, 3}, {1, 3}};
    CheckBoth(to, {3, 3}, [&](Tensor& o) { return cpu::Concatenate(ins, shapes, 0, o); },
              [&](Tensor& o) { return Ops().Concatenate(ins, shapes, 0, o); }, {},
              "concatenate " + DTypeToString(from) + " " + DTypeToString(to));
    auto big = RandomTensor(to, {3, 4}, Seed(static_cast<uint64_t>(to), 29));
    CheckBoth(to, {3, 4}, [&](Tensor& o) { return cpu::PutSlice(*big, {1, 1}, *a, o); },
              [&](Tensor& o) { return Ops().PutSlice(*big, {1, 1}, *a, o); }, {},
              "put_slice " + DTypeToString(from) + " into " + DTypeToString(to));
    CheckBoth(to, {2, 3}, [&](Tensor& o) { return cpu::PutSlice(*a, {0, 0}, *b, o); },
              [&](Tensor& o) { return Ops().PutSlice(*a, {0, 0}, *b, o); }, {},
              "put_slice " + DTypeToString(to) + " into " + DTypeToString(from) + " as " + DTypeToString(to));
  }
}

TEST_CASE("gather on the OpenCL device matches the CPU and checks every coordinate", "[opencl][ops][security]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType x : kIntTypes) {
    srcs.push_back(ocl::GatherCheckKernel(x));
    for (unsigned w : {1u, 2u, 4u, 8u}) srcs.push_back(ocl::GatherCopyKernel(w, x));
  }
  CompileAll(srcs);
  for (DType t : {DType::kU8, DType::kBF16, DType::kF32, DType::kS64}) {
    auto in = RandomTensor(t, {3, 4, 5}, Seed(static_cast<uint64_t>(t), 31));
    for (DType x : kIntTypes) {
      for (const Shape& is : std::vector<Shape>{{3}, {4, 3}, {0, 3}, {2, 2, 3}}) {
        auto idx = Alloc(x, is);
        std::mt19937_64 rng(Seed(static_cast<uint64_t>(x), is.size()));
        for (uint64_t j = 0; j < idx->elements(); ++j) {
          uint64_t v = rng() % in->shape()[j % 3];
          std::memcpy(idx->data() + j * DTypeSize(x), &v, DTypeSize(x));
        }
        auto shape = GatherShape(in->shape(), x, is);
        REQUIRE(shape.ok());
        CheckBoth(t, *shape, [&](Tensor& o) { return cpu::Gather(*in, *idx, o); },
                  [&](Tensor& o) { return Ops().Gather(*in, *idx, o); }, {},
                  "gather " + DTypeToString(t) + " indices " + DTypeToString(x) + ShapeName(is));
      }
      // The first bad coordinate (entry-major), refused before anything is written.
      auto idx = Alloc(x, {3, 3});
      std::vector<uint64_t> vals{0, 1, 2, 2, 9, 9, 1, 4, 9};
      if (IsSigned(x)) vals[5] = ~uint64_t{0};
      for (uint64_t j = 0; j < 9; ++j) std::memcpy(idx->data() + j * DTypeSize(x), &vals[j], DTypeSize(x));
      auto want = AllocDirty(t, {3}), got = AllocDirty(t, {3});
      Status ws = cpu::Gather(*in, *idx, *want), gs = Ops().Gather(*in, *idx, *got);
      CHECK(ws.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.message() == ws.message());
      std::vector<uint8_t> dirty(got->bytes(), 0xa5);
      CHECK(std::memcmp(got->data(), dirty.data(), got->bytes()) == 0);
    }
  }
  auto scalar = RandomTensor(DType::kF32, {}, 1);
  auto none = Alloc(DType::kS32, {4, 0});
  CheckBoth(DType::kF32, {4}, [&](Tensor& o) { return cpu::Gather(*scalar, *none, o); },
            [&](Tensor& o) { return Ops().Gather(*scalar, *none, o); }, {}, "gather from a scalar");
}

TEST_CASE("sort and argsort on the OpenCL device match the CPU", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) {
    for (bool desc : {false, true}) {
      for (bool arg : {false, true}) srcs.push_back(ocl::SortKernel(t, desc, arg, true));
    }
  }
  CompileAll(srcs);
  for (DType t : kAllTypes) {
    for (const Shape& s : std::vector<Shape>{{}, {0}, {1}, {37}, {4, 9}, {3, 1, 5}, {2, 0, 3}, {2, 130}}) {
      auto in = RandomTensor(t, s, Seed(static_cast<uint64_t>(t), 41, s.size()));
      if (in->elements() > 8) {  // ties: repeat some elements along the rows
        const size_t item = DTypeSize(t);
        for (uint64_t i = 0; i + 3 < in->elements(); i += 4) std::memcpy(in->data() + (i + 3) * item, in->data() + i * item, item);
      }
      for (uint64_t axis = 0; axis < std::max<size_t>(s.size(), 1); ++axis) {
        if (s.empty()) break;
        for (bool desc : {false, true}) {
          for (bool arg : {false, true}) {
            const std::string what = std::string(arg ? "argsort" : "sort") + (desc ? " desc " : " ") +
                                     DTypeToString(t) + " " + ShapeName(s) + " axis " + std::to_string(axis);
            CheckBoth(arg ? DType::kS64 : t, s, [&](Tensor& o) { return cpu::Sort(*in, axis, desc, arg, o); },
                      [&](Tensor& o) { return Ops().Sort(*in, axis, desc, arg, o); }, {}, what);
          }
        }
      }
    }
  }
}

TEST_CASE("dot and outer on the OpenCL device match the CPU's plain loops", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) {
    srcs.push_back(ocl::MatmulKernel(t, true));
    srcs.push_back(ocl::CopyKernel(t, t, true));
    srcs.push_back(ocl::BinaryKernel(BinaryOp::kMultiply, t, t, t, t, true));
  }
  for (auto [a, b] : std::vector<std::pair<DType, DType>>{{DType::kS8, DType::kU8}, {DType::kF16, DType::kBF16},
                                                          {DType::kS32, DType::kF32}}) {
    const DType c = MergeTypes(a, b);
    srcs.push_back(ocl::CopyKernel(a, c, true));
    srcs.push_back(ocl::CopyKernel(b, c, true));
    srcs.push_back(ocl::MatmulKernel(c, true));
    srcs.push_back(ocl::BinaryKernel(BinaryOp::kMultiply, a, b, c, c, true));
  }
  CompileAll(srcs);
  struct DCase {
    Shape a, b;
    std::vector<int64_t> ca, ba, cb, bb;
  };
  const std::vector<DCase> cases = {
      {{3, 4}, {4, 5}, {1}, {}, {0}, {}},          {{4}, {4}, {0}, {}, {0}, {}},
      {{2, 3, 4}, {2, 4, 5}, {2}, {0}, {1}, {0}},  {{4, 3}, {5, 4}, {0}, {}, {1}, {}},
      {{3, 0}, {0, 2}, {1}, {}, {0}, {}},          {{2, 3}, {4}, {}, {}, {}, {}},
      {{2, 3, 4}, {3, 4, 2}, {1, 2}, {}, {0, 1}, {}}, {{0, 3}, {3, 2}, {1}, {}, {0}, {}},
      {{5, 40}, {40, 3}, {1}, {}, {0}, {}},
  };
  auto run = [&](DType ta, DType tb) {
    const DType c = MergeTypes(ta, tb);
    for (size_t ci = 0; ci < cases.size(); ++ci) {
      const DCase& d = cases[ci];
      auto plan = PlanDot(d.a, d.ca, d.ba, d.b, d.cb, d.bb);
      INFO("dot case " << ci);
      REQUIRE(plan.ok());
      auto a = RandomTensor(ta, d.a, Seed(static_cast<uint64_t>(ta), 51, ci));
      auto b = RandomTensor(tb, d.b, Seed(static_cast<uint64_t>(tb), 52, ci));
      CheckBoth(c, plan->out_shape, [&](Tensor& o) { return cpu::Dot(*a, *b, *plan, c, cpu::GemmFn(), o); },
                [&](Tensor& o) { return Ops().Dot(*a, *b, *plan, c, o); }, {},
                "dot " + DTypeToString(ta) + " " + DTypeToString(tb) + " case " + std::to_string(ci));
    }
    for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{3}, {4}}, {{}, {2, 2}}, {{2, 0}, {3}}, {{2, 3}, {1, 2}}}) {
      auto a = RandomTensor(ta, sa, Seed(static_cast<uint64_t>(ta), 53, sa.size()));
      auto b = RandomTensor(tb, sb, Seed(static_cast<uint64_t>(tb), 54, sb.size()));
      Shape os = sa;
      os.insert(os.end(), sb.begin(), sb.end());
      CheckBoth(c, os, [&](Tensor& o) { return cpu::Outer(*a, *b, c, o); },
                [&](Tensor& o) { return Ops().Outer(*a, *b, c, o); }, {},
                "outer " + DTypeToString(ta) + " " + DTypeToString(tb));
    }
  };
  for (DType t : kAllTypes) run(t, t);
  run(DType::kS8, DType::kU8);
  run(DType::kF16, DType::kBF16);
  run(DType::kS32, DType::kF32);
}

TEST_CASE("empty work on the OpenCL device matches the CPU and launches nothing per empty row", "[opencl][ops][security]") {
  // Issue 11: zero-byte tensors with 2^30+ rows; no kernel is launched with a work-item per empty
  // row, and the CPU executor answers the same, as fast.
  const uint64_t rows = 1ull << 30;
  auto empty = Alloc(DType::kU8, {rows, 0});
  auto none = Alloc(DType::kS64, {0});
  auto timed = [](const char* what, const std::function<Status()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    Status st = f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(what << " took " << s << " s: " << st.message());
    CHECK(st.ok());
    CHECK(s < 0.25);
  };
  const uint64_t launches = Ops().stats().launches;
  auto o1 = Alloc(DType::kU8, {rows, 0}), o2 = Alloc(DType::kS64, {rows, 0}), o3 = Alloc(DType::kU8, {rows, 0});
  auto o4 = Alloc(DType::kU8, {rows, 0});
  timed("opencl sort", [&] { return Ops().Sort(*empty, 1, false, false, *o1); });
  timed("opencl argsort", [&] { return Ops().Sort(*empty, 1, true, true, *o2); });
  timed("opencl concatenate", [&] { return Ops().Concatenate({empty.get(), empty.get()}, {{rows, 0}, {rows, 0}}, 1, *o3); });
  timed("opencl take", [&] { return Ops().Take(*empty, *none, 1, *o4); });
  CHECK(Ops().stats().launches == launches);
  timed("cpu sort", [&] { return cpu::Sort(*empty, 1, false, false, *o1); });
  timed("cpu argsort", [&] { return cpu::Sort(*empty, 1, true, true, *o2); });
  timed("cpu concatenate", [&] { return cpu::Concatenate({empty.get(), empty.get()}, {{rows, 0}, {rows, 0}}, 1, *o3); });
  timed("cpu take", [&] { return cpu::Take(*empty, *none, 1, *o4); });
  // A non-empty result of an empty operand: pad fills, a sum over the empty axis gives 0, on both.
  auto col = Alloc(DType::kU8, {0, 3});
  ir::Scalar nine;
  nine.i = 9;
  auto pc = AllocDirty(DType::kU8, {2, 3}), po = AllocDirty(DType::kU8, {2, 3});
  REQUIRE(cpu::Pad(*col, nine, {PadDim{1, 1, 1ll << 40}, PadDim{}}, *pc).ok());
  REQUIRE(Ops().Pad(*col, nine, {PadDim{1, 1, 1ll << 40}, PadDim{}}, *po).ok());
  CHECK(std::memcmp(pc->data(), po->data(), 6) == 0);
}

TEST_CASE("the OpenCL device's scratch is reserved on the node's budget", "[opencl][ops][security]") {
  // Sort's device scratch is 16 bytes an element; dot stages converted operands. Both count.
  TensorStore small(1u << 20);
  auto in = *small.Allocate(DType::kF32, {1, 1u << 16});  // 256 KiB: sorting it needs 1 MiB more
  std::memset(in->data(), 0, in->bytes());
  auto out = *small.Allocate(DType::kF32, {1, 1u << 16});
  const uint64_t before = small.memory_used();
  Status st = Ops().Sort(*in, 1, false, false, *out);
  CHECK(st.kind() == ErrorKind::kOutOfMemory);
  CHECK(small.memory_used() == before);
  auto a = *small.Allocate(DType::kU8, {256, 256});  // staged as f32: 256 KiB more
  std::memset(a->data(), 1, a->bytes());
  auto b = *small.Allocate(DType::kF32, {256, 1});
  std::memset(b->data(), 0, b->bytes());
  auto plan = PlanDot({256, 256}, {1}, {}, {256, 1}, {0}, {});
  REQUIRE(plan.ok());
  auto c = *small.Allocate(DType::kF32, {256, 1});
  in.reset();
  out.reset();
  // ~100 KB left on the budget: a staged as f32 needs 256 KiB.
  auto filler = *small.Allocate(DType::kU8, {(1u << 20) - small.memory_used() - 100000});
  CHECK(Ops().Dot(*a, *b, *plan, DType::kF32, *c).kind() == ErrorKind::kOutOfMemory);
}

// What holds between the two executors for float products: the CPU executor's f32/f64 dot and
// matmul run on BLIS, which sums in the type itself, in its own blocked order, with FMA; the OpenCL
// kernel sums the products in double and rounds once. They are not the same bits; each is within
// the classic bound of a k-term sum, so they differ by at most (gamma_k + u) * sum |a_i * b_i|
// (f32; u = 2^-24, gamma_k = k u / (1 - k u)) or 2 gamma_k * sum |a_i * b_i| (f64). The reference
// sum |a_i * b_i| is computed here, in long double, independently of both.
TEST_CASE("f32 and f64 dot on the OpenCL device and on BLIS agree within the bound of a k-term sum",
          "[opencl][ops][blis]") {
  Config cfg;
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE(blis.ok());
  cpu::GemmFn gemm = [&](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
    return (*blis)->GemmRaw(t, m, n, k, x, y, z);
  };
  const uint64_t m = 129, k = 257, n = 65;
  for (DType t : {DType::kF32, DType::kF64}) {
    INFO(DTypeToString(t));
    auto a = Alloc(t, {m, k});
    auto b = Alloc(t, {k, n});
    std::mt19937_64 rng(77);
    std::uniform_real_distribution<double> uni(-1.0, 1.0);
    std::vector<long double> av(m * k), bv(k * n);
    for (uint64_t i = 0; i < m * k; ++i) {
      const double v = uni(rng);
      if (t == DType::kF32) a->as<float>()[i] = static_cast<float>(v), av[i] = a->as<float>()[i];
      else a->as<double>()[i] = v, av[i] = v;
    }
    for (uint64_t i = 0; i < k * n; ++i) {
      const double v = uni(rng);
      if (t == DType::kF32) b->as<float>()[i] = static_cast<float>(v), bv[i] = b->as<float>()[i];
      else b->as<double>()[i] = v, bv[i] = v;
    }
    auto plan = PlanDot({m, k}, {1}, {}, {k, n}, {0}, {});
    REQUIRE(plan.ok());
    auto on_blis = Alloc(t, {m, n});
    auto on_device = Alloc(t, {m, n});
    REQUIRE(cpu::Dot(*a, *b, *plan, t, gemm, *on_blis).ok());
    REQUIRE(Ops().Dot(*a, *b, *plan, t, *on_device).ok());
    const long double u = t == DType::kF32 ? std::ldexp(1.0L, -24) : std::ldexp(1.0L, -53);
    const long double gamma = k * u / (1 - k * u);
    const long double factor = t == DType::kF32 ? gamma + u : 2 * gamma;
    uint64_t differing = 0;
    long double worst = 0;
    for (uint64_t i = 0; i < m; ++i) {
      for (uint64_t j = 0; j < n; ++j) {
        long double mag = 0;
        for (uint64_t p = 0; p < k; ++p) mag += std::fabs(av[i * k + p] * bv[p * n + j]);
        const long double x = t == DType::kF32 ? on_blis->as<float>()[i * n + j] : on_blis->as<double>()[i * n + j];
        const long double y =
            t == DType::kF32 ? on_device->as<float>()[i * n + j] : on_device->as<double>()[i * n + j];
        const long double diff = std::fabs(x - y);
        differing += diff != 0;
        worst = std::max(worst, diff / (factor * mag));
        if (diff > factor * mag) FAIL("element " << i << "," << j << ": BLIS " << static_cast<double>(x) << ", OpenCL "
                                                 << static_cast<double>(y) << ", bound " << static_cast<double>(factor * mag));
      }
    }
    INFO(differing << " of " << m * n << " elements differ; worst at " << static_cast<double>(worst) << " of the bound");
    CHECK(worst <= 1);
  }
}
