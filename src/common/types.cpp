#include "mure/types.h"

#include <limits>

namespace mure {

std::string_view DTypeClass(DType t) {
  switch (t) {
    case DType::kU8: case DType::kU16: case DType::kU32: case DType::kU64: return "u";
    case DType::kS8: case DType::kS16: case DType::kS32: case DType::kS64: return "s";
    case DType::kF16: case DType::kF32: case DType::kF64: return "f";
    case DType::kBF16: return "bf";
    case DType::kC64: case DType::kC128: return "c";
  }
  return "?";
}

unsigned DTypeBits(DType t) {
  switch (t) {
    case DType::kU8: case DType::kS8: return 8;
    case DType::kU16: case DType::kS16: case DType::kF16: case DType::kBF16: return 16;
    case DType::kU32: case DType::kS32: case DType::kF32: return 32;
    case DType::kU64: case DType::kS64: case DType::kF64: case DType::kC64: return 64;
    case DType::kC128: return 128;
  }
  return 0;
}

std::optional<DType> DTypeFromNx(std::string_view cls, int64_t bits) {
  if (cls == "u") {
    switch (bits) { case 8: return DType::kU8; case 16: return DType::kU16; case 32: return DType::kU32; case 64: return DType::kU64; }
  } else if (cls == "s") {
    switch (bits) { case 8: return DType::kS8; case 16: return DType::kS16; case 32: return DType::kS32; case 64: return DType::kS64; }
  } else if (cls == "f") {
    switch (bits) { case 16: return DType::kF16; case 32: return DType::kF32; case 64: return DType::kF64; }
  } else if (cls == "bf" && bits == 16) {
    return DType::kBF16;
  } else if (cls == "c") {
    switch (bits) { case 64: return DType::kC64; case 128: return DType::kC128; }
  }
  return std::nullopt;
}

std::string DTypeToString(DType t) {
  return "{:" + std::string(DTypeClass(t)) + ", " + std::to_string(DTypeBits(t)) + "}";
}

std::string ShapeToString(const Shape& s) {
  std::string out = "{";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "}";
}

namespace {

/// The product of a shape's non-zero dims, or nullopt when it does not stay below 2^63.
///
/// The rule: a shape's dims must multiply without overflow *even when one of them is 0*. The
/// plain product of {0, 2^40, 2^40} is 0 and never overflows, but every kernel and shape rule
/// forms sub-products of the dims (strides, rows = outer * inner, m * n of a dot, an output
/// that keeps some of the dims and drops the 0); bounding the product of the non-zero dims
/// bounds every such sub-product, so none of them can wrap once a shape has passed here. 2^63
/// (not 2^64) so that a count or an offset also fits in an int64_t and in OpenCL's long.
std::optional<uint64_t> NonZeroProduct(const Shape& s) {
  uint64_t n = 1;
  for (uint64_t d : s) {
    if (d == 0) continue;
    if (__builtin_mul_overflow(n, d, &n) || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
  }
  return n;
}

}  // namespace

Result<uint64_t> ElementCount(const Shape& s) {
  if (s.size() > kMaxDims) {
    return Status(ErrorKind::kBadShape, "shape " + ShapeToString(s) + " has " + std::to_string(s.size()) +
                                            " dimensions; at most " + std::to_string(kMaxDims) + " are allowed");
  }
  auto nonzero = NonZeroProduct(s);
  if (!nonzero) {
    uint64_t full = 1;
    bool wraps = false;
    for (uint64_t d : s) wraps = wraps || (d != 0 && __builtin_mul_overflow(full, d, &full));
    return Status(ErrorKind::kBadShape, "shape " + ShapeToString(s) +
                                            (wraps ? " has more than 2^64 elements"
                                                   : "'s dimensions multiply to 2^63 or more") +
                                            " (a 0 among them does not excuse the others)");
  }
  for (uint64_t d : s) {
    if (d == 0) return uint64_t{0};
  }
  return *nonzero;
}

Result<uint64_t> ByteSize(DType t, const Shape& s) {
  auto n = ElementCount(s);
  if (!n.ok()) return n.status();
  // The same rule in bytes: the non-zero dims times the item size must fit, so byte strides and
  // offsets of an empty tensor cannot wrap either.
  const uint64_t item = static_cast<uint64_t>(DTypeSize(t));
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(*NonZeroProduct(s), item, &bytes) ||
      bytes > static_cast<uint64_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
    return Status(ErrorKind::kBadShape, "a " + DTypeToString(t) + " tensor of shape " + ShapeToString(s) +
                                            " would need 2^63 bytes or more");
  }
  return *n == 0 ? uint64_t{0} : bytes;
}

}  // namespace mure
