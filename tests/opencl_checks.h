// Helpers of the OpenCL op tests (opencl_ops_test.cpp, opencl_ops_more_test.cpp): inputs salted
// with the edges, and the comparisons of the device against the CPU executor.
#pragma once

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
#include <type_traits>
#include <vector>

#include "exec/blis_executor.h"
#include "exec/cpu_ops.h"
#include "exec/opencl_executor.h"
#include "exec/opencl_ops.h"
#include "ir/ops.h"
#include "element_bits.h"
#include "opencl_fixture.h"

namespace mure::testing::opencl_checks {

using namespace mure::ir;
using ocl::KernelRequest;

/// Garbage, so an element a kernel forgot to write shows.
inline std::shared_ptr<Tensor> AllocDirty(DType t, const Shape& s) {
  auto x = Alloc(t, s);
  if (x->bytes()) std::memset(x->data(), 0xa5, x->bytes());
  return x;
}

// ---- values ------------------------------------------------------------------------------------------

inline void PutF(DType t, uint8_t* p, uint64_t i, double v) {
  switch (t) {
    case DType::kF16: { uint16_t h = cpu::FloatToHalf(static_cast<float>(v)); std::memcpy(p + 2 * i, &h, 2); break; }
    case DType::kBF16: { uint16_t h = cpu::FloatToBF16(static_cast<float>(v)); std::memcpy(p + 2 * i, &h, 2); break; }
    case DType::kF32: { float f = static_cast<float>(v); std::memcpy(p + 4 * i, &f, 4); break; }
    default: std::memcpy(p + 8 * i, &v, 8); break;
  }
}

/// Random values of type t, salted with the edges of its class.
inline void FillRandom(Tensor& x, std::mt19937_64& rng) {
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

inline std::shared_ptr<Tensor> RandomTensor(DType t, const Shape& s, uint64_t seed) {
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

inline double SmallestNormal(DType t) {
  switch (t) {
    case DType::kF16: return 6.103515625e-05;
    case DType::kBF16: case DType::kF32: return std::numeric_limits<float>::min();
    default: return std::numeric_limits<double>::min();
  }
}

inline std::string Describe(DType t, const uint8_t* p, uint64_t i) {
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
inline void Compare(const Tensor& want, const Tensor& got, Tol tol, const std::string& what,
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
inline bool Approximate(UnaryOp op) { return !ir::Info(op).exact; }

/// Tolerance for a transcendental function's result of type t: a few ULP in f32/f64 (the device
/// computes f16/bf16/f32 in float with its own libm, the reference in double with glibc's), one
/// step of the narrow types. Seen on PoCL 3.1: at most 2 ULP (tan in f32, cbrt and tan in f64),
/// everything else within 1.
inline Tol Transcendental(DType t) {
  switch (t) {
    case DType::kF16: case DType::kBF16: return {1, SmallestNormal(t)};
    default: return {4, SmallestNormal(t)};
  }
}

inline std::string ShapeName(const Shape& s) { return ShapeToString(s); }

// Every op of the table (ir/ops.def), in its order: a new row is tested here without a list to edit.
// The complex-only rows (conjugate, real, imag: rule Complex or ComplexPart) run on the CPU
// executor only and are left out.
template <typename Op, typename Rows>
inline std::vector<Op> AllOps(const Rows& rows) {
  std::vector<Op> out;
  for (const auto& r : rows) {
    if constexpr (std::is_same_v<Op, UnaryOp>) {
      if (r.rule == ir::UnaryRule::kComplex || r.rule == ir::UnaryRule::kComplexPart) continue;
    }
    out.push_back(r.op);
  }
  return out;
}
inline const std::vector<UnaryOp> kUnaryOps = AllOps<UnaryOp>(ir::UnaryTable());
inline const std::vector<BinaryOp> kBinaryOps = AllOps<BinaryOp>(ir::BinaryTable());
inline const std::vector<ReduceOp> kReduceOps = AllOps<ReduceOp>(ir::ReduceTable());

inline uint64_t Seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return ((a * 1000003 + b) * 1000003 + c) * 1000003 + d + 12345;
}

// ---- runners --------------------------------------------------------------------------------------------

inline void CheckUnary(UnaryOp op, const Tensor& in) {
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

inline void CheckBinary(BinaryOp op, const Tensor& a, const Tensor& b) {
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

inline void CheckReduce(ReduceOp op, const Tensor& in, const std::vector<int64_t>& axes, bool keep, Tol tol = {}) {
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

inline void CheckAsType(const Tensor& in, DType to) {
  auto want = AllocDirty(to, in.shape()), got = AllocDirty(to, in.shape());
  REQUIRE(cpu::AsType(in, *want).ok());
  Status s = Ops().AsType(in, *got);
  std::string what = "as_type " + DTypeToString(in.type()) + " -> " + DTypeToString(to) + " " + ShapeName(in.shape());
  INFO(what << ": " << s.message());
  REQUIRE(s.ok());
  Compare(*want, *got, {}, what, [&](uint64_t i) { return Describe(in.type(), in.data(), i); });
}

inline ir::Scalar IntScalar(int64_t v) {
  ir::Scalar s;
  s.i = v;
  return s;
}
inline ir::Scalar FloatScalar(double v) {
  ir::Scalar s;
  s.integer = false;
  s.f = v;
  return s;
}

inline const std::vector<Shape> kUnaryShapes = {{}, {0}, {1}, {300}, {3, 1, 5}, {2, 0, 3}};
inline const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{}, {}},         {{300}, {300}},      {{2, 3}, {3}},   {{4, 1, 3}, {5, 1}}, {{}, {2, 2}},
    {{2, 2}, {}},     {{0, 3}, {1, 3}},    {{1}, {7}},      {{2, 1}, {1, 2}},    {{3, 1}, {0}},
    {{1, 1, 1}, {1}}, {{65, 3}, {65, 1}},
};

}  // namespace mure::testing::opencl_checks
