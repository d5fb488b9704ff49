#include "mure/types.h"

#include <limits>

namespace mure {

std::string_view DTypeClass(DType t) {
  switch (t) {
    case DType::kU8: case DType::kU16: case DType::kU32: case DType::kU64: return "u";
    case DType::kS8: case DType::kS16: case DType::kS32: case DType::kS64: return "s";
    case DType::kF16: case DType::kF32: case DType::kF64: return "f";
    case DType::kBF16: return "bf";
  }
  return "?";
}

unsigned DTypeBits(DType t) {
  switch (t) {
    case DType::kU8: case DType::kS8: return 8;
    case DType::kU16: case DType::kS16: case DType::kF16: case DType::kBF16: return 16;
    case DType::kU32: case DType::kS32: case DType::kF32: return 32;
    case DType::kU64: case DType::kS64: case DType::kF64: return 64;
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

Result<uint64_t> ElementCount(const Shape& s) {
  if (s.size() > kMaxDims) {
    return Status(ErrorKind::kBadShape, "shape " + ShapeToString(s) + " has " + std::to_string(s.size()) +
                                            " dimensions; at most " + std::to_string(kMaxDims) + " are allowed");
  }
  uint64_t n = 1;
  for (uint64_t d : s) {
    if (__builtin_mul_overflow(n, d, &n)) {
      return Status(ErrorKind::kBadShape, "shape " + ShapeToString(s) + " has more than 2^64 elements");
    }
  }
  return n;
}

Result<uint64_t> ByteSize(DType t, const Shape& s) {
  auto n = ElementCount(s);
  if (!n.ok()) return n.status();
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(*n, static_cast<uint64_t>(DTypeSize(t)), &bytes) ||
      bytes > static_cast<uint64_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
    return Status(ErrorKind::kBadShape, "a " + DTypeToString(t) + " tensor of shape " + ShapeToString(s) +
                                            " would need more than 2^63 bytes");
  }
  return bytes;
}

}  // namespace mure
