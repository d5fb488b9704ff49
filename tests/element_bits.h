// mure tests — reading elements back as bit patterns and floats, and how far apart two floats are,
// for the tests that compare executors element by element (op_table_test, opencl_ops_test), and
// the lists of element types they walk.
#pragma once

#include <cstdint>
#include <cstring>

#include "exec/cpu_ops.h"
#include "mure/types.h"

namespace mure::testing {

/// Every element type, and the integer ones.
inline constexpr DType kAllTypes[] = {DType::kU8,  DType::kU16, DType::kU32,  DType::kU64, DType::kS8,  DType::kS16,
                                      DType::kS32, DType::kS64, DType::kF16, DType::kBF16, DType::kF32, DType::kF64};
inline constexpr DType kIntTypes[] = {DType::kU8, DType::kU16, DType::kU32, DType::kU64,
                                      DType::kS8, DType::kS16, DType::kS32, DType::kS64};

/// Element i's bit pattern (zero-extended to 64 bits).
inline uint64_t Bits(DType t, const uint8_t* p, uint64_t i) {
  uint64_t v = 0;
  std::memcpy(&v, p + DTypeSize(t) * i, DTypeSize(t));
  return v;
}

/// Element i of a float tensor (f16, bf16, f32, f64) as a double.
inline double FloatValue(DType t, const uint8_t* p, uint64_t i) {
  const uint64_t b = Bits(t, p, i);
  switch (t) {
    case DType::kF16: return cpu::HalfToFloat(static_cast<uint16_t>(b));
    case DType::kBF16: return cpu::BF16ToFloat(static_cast<uint16_t>(b));
    case DType::kF32: { float f; std::memcpy(&f, &b, 4); return f; }
    default: { double d; std::memcpy(&d, &b, 8); return d; }
  }
}

/// Representable steps between two floats of type t, from their bit patterns (-0 and +0 are the
/// same step).
inline uint64_t UlpDistance(DType t, uint64_t a, uint64_t b) {
  const unsigned bits = DTypeBits(t);
  auto ordered = [&](uint64_t x) -> int64_t {
    const uint64_t sign = uint64_t{1} << (bits - 1);
    const int64_t mag = static_cast<int64_t>(x & (sign - 1));
    return (x & sign) ? -mag : mag;
  };
  const int64_t d = ordered(a) - ordered(b);
  return static_cast<uint64_t>(d < 0 ? -d : d);
}

}  // namespace mure::testing
