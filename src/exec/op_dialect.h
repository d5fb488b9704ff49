// mure — the C++ side of the op-formula dialect of ir/ops.def: what a formula may call, defined so
// that the same text compiles as C++ here (the CPU executor, on double and on 64-bit patterns) and
// as OpenCL C in the kernels. The float helpers are written once, in ir/ops.def, and expanded here
// and in the OpenCL prelude (exec/opencl_codegen.cpp); the few integer helpers below have their
// twins, same name, same arithmetic, in that prelude. Internal to src/exec.
#pragma once

#include <cmath>
#include <cstdint>

#include "ir/ops.h"

namespace mure::dialect {

using ulong = uint64_t;

// OpenCL's math built-ins: the C++ ones of the same name (the CPU computes floats in double).
using std::acos;
using std::acosh;
using std::asin;
using std::asinh;
using std::atan;
using std::atan2;
using std::atanh;
using std::cbrt;
using std::ceil;
using std::cos;
using std::copysign;
using std::cosh;
using std::erf;
using std::erfc;
using std::exp;
using std::expm1;
using std::fabs;
using std::floor;
using std::fmod;
using std::isinf;
using std::isnan;
using std::log;
using std::log1p;
using std::pow;
using std::round;
using std::sin;
using std::sinh;
using std::sqrt;
using std::tan;
using std::tanh;

// OpenCL's integer built-ins and reinterpretations.
inline int64_t as_long(uint64_t v) { return static_cast<int64_t>(v); }
inline uint64_t as_ulong(int64_t v) { return static_cast<uint64_t>(v); }
inline uint64_t clz(uint64_t v) { return v == 0 ? 64 : static_cast<uint64_t>(__builtin_clzll(v)); }
inline uint64_t popcount(uint64_t v) { return static_cast<uint64_t>(__builtin_popcountll(v)); }

// The mure_* helpers (twins in the OpenCL prelude).
/// b^e by squaring, wrapping.
inline uint64_t mure_ipow(uint64_t b, uint64_t e) {
  uint64_t r = 1;
  while (e) {
    if (e & 1) r *= b;
    b *= b;
    e >>= 1;
  }
  return r;
}
/// x < y on patterns, signed when `s`.
inline bool mure_lt(uint64_t x, uint64_t y, bool s) { return s ? as_long(x) < as_long(y) : x < y; }
/// A signed divisor made safe: 0 and -1 (answered by the edge rules, never divided by) become 1.
inline int64_t mure_divisor(uint64_t y) { return as_long(y) == 0 || as_long(y) == -1 ? 1 : as_long(y); }

// The float helpers of ir/ops.def, for double (the CPU computes floats in double).
#define MURE_FLOAT_HELPER(name, body) \
  inline double name(double x) {      \
    typedef double T;                 \
    body                              \
  }
#include "ir/ops.def"

// The reductions of ir/ops.def: the accumulator's start and step, floats in double, integers on
// 64-bit patterns of a type of width BITS (signed when S). The CPU executor and the fused
// kernels' host side use these; the kernels use the same formulas as text. MURE_NONE (argmax,
// argmin: their own rule) gives 0.
#define MURE_NONE 0
inline double ReduceFloatInit(ir::ReduceOp op) {
  switch (op) {
#define MURE_REDUCE(Id, name, rule, fusible, finit, fstep, iinit, istep) \
  case ir::ReduceOp::k##Id: return static_cast<double>(finit);
#include "ir/ops.def"
  }
  return 0;
}
inline double ReduceFloatStep(ir::ReduceOp op, double acc, double v) {
  switch (op) {
#define MURE_REDUCE(Id, name, rule, fusible, finit, fstep, iinit, istep) \
  case ir::ReduceOp::k##Id: return static_cast<double>(fstep);
#include "ir/ops.def"
  }
  return 0;
}
inline uint64_t ReduceIntInit(ir::ReduceOp op, bool S, uint64_t BITS) {
  const uint64_t MASK = BITS == 64 ? ~uint64_t{0} : (uint64_t{1} << BITS) - 1;
  const uint64_t SMIN = ~(MASK >> 1);  // the signed minimum, sign-extended
  switch (op) {
#define MURE_REDUCE(Id, name, rule, fusible, finit, fstep, iinit, istep) \
  case ir::ReduceOp::k##Id: return static_cast<uint64_t>(iinit);
#include "ir/ops.def"
  }
  return 0;
}
inline uint64_t ReduceIntStep(ir::ReduceOp op, bool S, uint64_t acc, uint64_t v) {
  switch (op) {
#define MURE_REDUCE(Id, name, rule, fusible, finit, fstep, iinit, istep) \
  case ir::ReduceOp::k##Id: return static_cast<uint64_t>(istep);
#include "ir/ops.def"
  }
  return 0;
}
#undef MURE_NONE

}  // namespace mure::dialect
