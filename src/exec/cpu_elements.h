// mure — element access for the CPU kernels: load any of the fourteen types as a double or as a
// 64-bit integer pattern, store back with Nx's conversion rules, and walk strided index spaces.
// A complex element loads as its real part and a real value stores with imaginary part 0 (Nx's
// as_type); LoadC/StoreC move whole complex values.
// Internal to src/exec (cpu_ops.cpp, cpu_shape_ops.cpp).
#pragma once

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "exec/cpu_ops.h"
#include "ir/ops.h"
#include "mure/types.h"

namespace mure::cpu::detail {

using ir::IsFloat;
using ir::IsSigned;

template <typename T>
T Get(const uint8_t* p, uint64_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));
  return v;
}
template <typename T>
void Put(uint8_t* p, uint64_t i, T v) {
  std::memcpy(p + i * sizeof(T), &v, sizeof(T));
}

/// Element i as a double (exact for every type but 64-bit integers beyond 2^53).
inline double LoadF(DType t, const uint8_t* p, uint64_t i) {
  switch (t) {
    case DType::kU8: return Get<uint8_t>(p, i);
    case DType::kU16: return Get<uint16_t>(p, i);
    case DType::kU32: return Get<uint32_t>(p, i);
    case DType::kU64: return static_cast<double>(Get<uint64_t>(p, i));
    case DType::kS8: return Get<int8_t>(p, i);
    case DType::kS16: return Get<int16_t>(p, i);
    case DType::kS32: return Get<int32_t>(p, i);
    case DType::kS64: return static_cast<double>(Get<int64_t>(p, i));
    case DType::kF16: return HalfToFloat(Get<uint16_t>(p, i));
    case DType::kBF16: return BF16ToFloat(Get<uint16_t>(p, i));
    case DType::kF32: return Get<float>(p, i);
    case DType::kF64: return Get<double>(p, i);
    case DType::kC64: return Get<float>(p, 2 * i);
    case DType::kC128: return Get<double>(p, 2 * i);
  }
  return 0;
}

/// Element i of an integer tensor as its 64-bit two's-complement pattern (sign- or zero-extended).
inline uint64_t LoadI(DType t, const uint8_t* p, uint64_t i) {
  switch (t) {
    case DType::kU8: return Get<uint8_t>(p, i);
    case DType::kU16: return Get<uint16_t>(p, i);
    case DType::kU32: return Get<uint32_t>(p, i);
    case DType::kU64: return Get<uint64_t>(p, i);
    case DType::kS8: return static_cast<uint64_t>(static_cast<int64_t>(Get<int8_t>(p, i)));
    case DType::kS16: return static_cast<uint64_t>(static_cast<int64_t>(Get<int16_t>(p, i)));
    case DType::kS32: return static_cast<uint64_t>(static_cast<int64_t>(Get<int32_t>(p, i)));
    case DType::kS64: return static_cast<uint64_t>(Get<int64_t>(p, i));
    default: return static_cast<uint64_t>(static_cast<int64_t>(LoadF(t, p, i)));
  }
}

/// Saturating float -> integer of `bits` (NaN -> 0), as a bit pattern.
template <typename I>
uint64_t Saturate(double v) {
  if (std::isnan(v)) return 0;
  constexpr double lo = static_cast<double>(std::numeric_limits<I>::min());
  constexpr double hi = static_cast<double>(std::numeric_limits<I>::max());
  if (v <= lo) return static_cast<uint64_t>(std::numeric_limits<I>::min());
  if (v >= hi) return static_cast<uint64_t>(std::numeric_limits<I>::max());
  return static_cast<uint64_t>(static_cast<I>(v));
}

/// Store an integer bit pattern (wrapping to the type's width).
inline void StoreI(DType t, uint8_t* p, uint64_t i, uint64_t v) {
  switch (t) {
    case DType::kU8: case DType::kS8: Put<uint8_t>(p, i, static_cast<uint8_t>(v)); return;
    case DType::kU16: case DType::kS16: Put<uint16_t>(p, i, static_cast<uint16_t>(v)); return;
    case DType::kU32: case DType::kS32: Put<uint32_t>(p, i, static_cast<uint32_t>(v)); return;
    case DType::kU64: case DType::kS64: Put<uint64_t>(p, i, v); return;
    case DType::kF16: Put<uint16_t>(p, i, FloatToHalf(static_cast<float>(static_cast<int64_t>(v)))); return;
    case DType::kBF16: Put<uint16_t>(p, i, FloatToBF16(static_cast<float>(static_cast<int64_t>(v)))); return;
    case DType::kF32: Put<float>(p, i, static_cast<float>(static_cast<int64_t>(v))); return;
    case DType::kF64: Put<double>(p, i, static_cast<double>(static_cast<int64_t>(v))); return;
    case DType::kC64: Put<float>(p, 2 * i, static_cast<float>(static_cast<int64_t>(v))); Put<float>(p, 2 * i + 1, 0.0f); return;
    case DType::kC128: Put<double>(p, 2 * i, static_cast<double>(static_cast<int64_t>(v))); Put<double>(p, 2 * i + 1, 0.0); return;
  }
}

/// Store a double: floats round to the type, integers saturate (NaN -> 0).
inline void StoreF(DType t, uint8_t* p, uint64_t i, double v) {
  switch (t) {
    case DType::kF16: Put<uint16_t>(p, i, FloatToHalf(static_cast<float>(v))); return;
    case DType::kBF16: Put<uint16_t>(p, i, FloatToBF16(static_cast<float>(v))); return;
    case DType::kF32: Put<float>(p, i, static_cast<float>(v)); return;
    case DType::kF64: Put<double>(p, i, v); return;
    case DType::kC64: Put<float>(p, 2 * i, static_cast<float>(v)); Put<float>(p, 2 * i + 1, 0.0f); return;
    case DType::kC128: Put<double>(p, 2 * i, v); Put<double>(p, 2 * i + 1, 0.0); return;
    case DType::kU8: StoreI(t, p, i, Saturate<uint8_t>(v)); return;
    case DType::kU16: StoreI(t, p, i, Saturate<uint16_t>(v)); return;
    case DType::kU32: StoreI(t, p, i, Saturate<uint32_t>(v)); return;
    case DType::kU64: StoreI(t, p, i, Saturate<uint64_t>(v)); return;
    case DType::kS8: StoreI(t, p, i, Saturate<int8_t>(v)); return;
    case DType::kS16: StoreI(t, p, i, Saturate<int16_t>(v)); return;
    case DType::kS32: StoreI(t, p, i, Saturate<int32_t>(v)); return;
    case DType::kS64: StoreI(t, p, i, Saturate<int64_t>(v)); return;
  }
}

/// A double rounded to a float type's precision (what converting an operand to it does).
inline double RoundTo(DType t, double v) {
  switch (t) {
    case DType::kF16: return HalfToFloat(FloatToHalf(static_cast<float>(v)));
    case DType::kBF16: return BF16ToFloat(FloatToBF16(static_cast<float>(v)));
    case DType::kF32: case DType::kC64: return static_cast<float>(v);
    default: return v;
  }
}

/// Element i as a complex double (real types: imaginary part 0).
inline std::complex<double> LoadC(DType t, const uint8_t* p, uint64_t i) {
  if (t == DType::kC64) return {Get<float>(p, 2 * i), Get<float>(p, 2 * i + 1)};
  if (t == DType::kC128) return {Get<double>(p, 2 * i), Get<double>(p, 2 * i + 1)};
  if (IsFloat(t)) return LoadF(t, p, i);
  const uint64_t v = LoadI(t, p, i);
  return IsSigned(t) ? static_cast<double>(static_cast<int64_t>(v)) : static_cast<double>(v);
}

/// A complex double rounded to a complex type's precision ({:c, 64}: each part to float).
inline std::complex<double> RoundC(DType t, std::complex<double> v) {
  if (t != DType::kC64) return v;
  return {static_cast<float>(v.real()), static_cast<float>(v.imag())};
}

/// Store a complex double: complex types round each part, real types take the real part.
inline void StoreC(DType t, uint8_t* p, uint64_t i, std::complex<double> v) {
  if (t == DType::kC64) {
    Put<float>(p, 2 * i, static_cast<float>(v.real()));
    Put<float>(p, 2 * i + 1, static_cast<float>(v.imag()));
  } else if (t == DType::kC128) {
    Put<double>(p, 2 * i, v.real());
    Put<double>(p, 2 * i + 1, v.imag());
  } else {
    StoreF(t, p, i, v.real());
  }
}

/// Sign-extend (signed types) or mask (unsigned types) a pattern to the type's width.
inline uint64_t Normalize(DType t, uint64_t v) {
  unsigned bits = DTypeBits(t);
  if (bits == 64) return v;
  uint64_t mask = (uint64_t{1} << bits) - 1;
  v &= mask;
  if (IsSigned(t) && (v >> (bits - 1))) v |= ~mask;
  return v;
}

inline std::vector<uint64_t> RowMajorStrides(const Shape& s) {
  std::vector<uint64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

/// A reduction's walk over `shape`: per axis, its stride into the output (0 along the reduced
/// `axes`) and into the reduced sub-space (0 along the kept axes).
inline std::pair<std::vector<uint64_t>, std::vector<uint64_t>> ReduceStrides(const Shape& shape,
                                                                             const std::vector<uint64_t>& axes) {
  const size_t rank = shape.size();
  std::vector<bool> reduced(rank, false);
  for (uint64_t ax : axes) reduced[ax] = true;
  Shape kept, red;
  for (size_t d = 0; d < rank; ++d) (reduced[d] ? red : kept).push_back(shape[d]);
  auto kept_st = RowMajorStrides(kept), red_st = RowMajorStrides(red);
  std::vector<uint64_t> so(rank, 0), sr(rank, 0);
  for (size_t d = 0, k = 0, r = 0; d < rank; ++d) {
    if (reduced[d]) sr[d] = red_st[r++]; else so[d] = kept_st[k++];
  }
  return {so, sr};
}

/// Strides of `in` seen through a broadcast to `out` (0 where `in` has size 1 or is missing).
inline std::vector<uint64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<uint64_t> st(out.size(), 0);
  auto own = RowMajorStrides(in);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[lead + i] = in[i] == 1 ? 0 : own[i];
  return st;
}

/// Calls f(linear, offset_a, offset_b) for every index of `shape` in row-major order.
template <typename F>
void ForEachIndex(const Shape& shape, const std::vector<uint64_t>& sa, const std::vector<uint64_t>& sb, F&& f) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  if (n == 0) return;
  const size_t rank = shape.size();
  std::vector<uint64_t> idx(rank, 0);
  uint64_t oa = 0, ob = 0;
  for (uint64_t i = 0; i < n; ++i) {
    f(i, oa, ob);
    for (size_t d = rank; d-- > 0;) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < shape[d]) break;
      oa -= sa[d] * shape[d];
      ob -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace mure::cpu::detail
