// mure — element types and shapes, with checked size arithmetic.
//
// Sizes are computed once, here, with overflow checks; everything else derives from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mure/status.h"

namespace mure {

/// Nx's element types: `{:u, 8}` ... `{:bf, 16}`, and the complex `{:c, 64}` / `{:c, 128}` (a pair of
/// f32 / f64, real part first: Nx.BinaryBackend's layout).
enum class DType : uint8_t { kU8, kU16, kU32, kU64, kS8, kS16, kS32, kS64, kF16, kBF16, kF32, kF64, kC64, kC128 };

/// The most dimensions a tensor may have.
inline constexpr size_t kMaxDims = 16;

/// Nx's class letter of a type: "u", "s", "f", "bf" or "c".
std::string_view DTypeClass(DType t);
/// Bits per element (8 .. 128).
unsigned DTypeBits(DType t);
/// Bytes per element.
inline size_t DTypeSize(DType t) { return DTypeBits(t) / 8; }
/// The type for an Nx `{class, bits}` pair, if mure supports it.
std::optional<DType> DTypeFromNx(std::string_view cls, int64_t bits);
/// "{:f, 32}", for messages.
std::string DTypeToString(DType t);

/// A row-major shape; an empty shape is a scalar.
using Shape = std::vector<uint64_t>;

/// "{2, 3}", for messages.
std::string ShapeToString(const Shape& s);

/// Element count of a shape, or kBadShape when it has too many dims or the product of its
/// non-zero dims reaches 2^63 ({0, 2^40, 2^40} is refused: every sub-product of an accepted
/// shape's dims fits in an int64_t, so kernels and shape rules can form them without checks).
Result<uint64_t> ElementCount(const Shape& s);

/// Bytes of a tensor of this type and shape: product(shape) * itemsize, every multiply checked,
/// and the result must fit in size_t. kBadShape on overflow; the non-zero dims times the item
/// size must fit too, even for an empty tensor (so byte strides never wrap).
Result<uint64_t> ByteSize(DType t, const Shape& s);

}  // namespace mure
