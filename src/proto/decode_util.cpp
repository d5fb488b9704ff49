#include "proto/decode_util.h"

#include <cmath>
#include <optional>

namespace mure::proto {
namespace {

/// The most tensors one concatenate or stack may join.
constexpr size_t kMaxHandles = 1024;

Status TooManyHandles(const char* what) {
  return Status::BadArg(std::string(what) + " holds more than " + std::to_string(kMaxHandles) + " tensors");
}

}  // namespace

std::string KindName(TermKind k) {
  switch (k) {
    case TermKind::kInteger: case TermKind::kBigInteger: return "an integer";
    case TermKind::kFloat: return "a float";
    case TermKind::kAtom: return "an atom";
    case TermKind::kTuple: return "a tuple";
    case TermKind::kList: case TermKind::kNil: case TermKind::kString: return "a list";
    case TermKind::kBinary: return "a binary";
    case TermKind::kBitBinary: return "a bitstring";
    case TermKind::kPid: return "a pid";
    case TermKind::kRef: return "a reference";
    case TermKind::kPort: return "a port";
    case TermKind::kMap: return "a map";
    case TermKind::kFun: case TermKind::kExport: return "a fun";
  }
  return "a term";
}

Result<DType> DecodeType(const TermTree& t, uint32_t n) {
  const Term& term = t[n];
  if (term.kind == TermKind::kTuple && term.count == 2) {
    uint32_t cls = t.Child(n, 0), bits = t.Child(n, 1);
    if (t[cls].kind == TermKind::kAtom && t[bits].kind == TermKind::kInteger) {
      if (auto d = DTypeFromNx(t[cls].data, t[bits].integer)) return *d;
      return Status(ErrorKind::kBadType, "type {:" + std::string(t[cls].data) + ", " +
                                             std::to_string(t[bits].integer) +
                                             "} is not supported; use {:u|:s, 8|16|32|64}, {:f, 16|32|64}, {:bf, 16} or {:c, 64|128}");
    }
  }
  return Status(ErrorKind::kBadType, "type must be a tuple like {:f, 32}, got " + KindName(term.kind));
}

Result<Shape> DecodeShape(const TermTree& t, uint32_t n) {
  const Term& term = t[n];
  if (term.kind != TermKind::kTuple) {
    return Status(ErrorKind::kBadShape, "shape must be a tuple of non-negative integers, got " + KindName(term.kind));
  }
  if (term.count > kMaxDims) {
    return Status(ErrorKind::kBadShape, "shape has " + std::to_string(term.count) + " dimensions; at most " +
                                            std::to_string(kMaxDims) + " are allowed");
  }
  Shape shape;
  shape.reserve(term.count);
  uint32_t c = n + 1;
  for (uint32_t i = 0; i < term.count; ++i, c = t[c].end) {
    if (t[c].kind == TermKind::kBigInteger) {
      return Status(ErrorKind::kBadShape, "dimension " + std::to_string(i) + " does not fit in 63 bits");
    }
    if (t[c].kind != TermKind::kInteger || t[c].integer < 0) {
      return Status(ErrorKind::kBadShape, "dimension " + std::to_string(i) + " must be a non-negative integer");
    }
    shape.push_back(static_cast<uint64_t>(t[c].integer));
  }
  return shape;
}

Result<uint64_t> DecodeHandle(const TermTree& t, uint32_t n, const char* what) {
  if (t[n].kind != TermKind::kInteger || t[n].integer <= 0) {
    return Status::BadArg(std::string(what) + " must be a tensor handle (a positive integer), got " +
                          KindName(t[n].kind));
  }
  return static_cast<uint64_t>(t[n].integer);
}

namespace {

/// One real number: an integer, a float, or Nx's :infinity / :neg_infinity / :nan.
std::optional<ir::Scalar> RealScalar(const TermTree& t, uint32_t n) {
  ir::Scalar s;
  if (t[n].kind == TermKind::kInteger) {
    s.i = t[n].integer;
    return s;
  }
  s.integer = false;
  if (t[n].kind == TermKind::kFloat) s.f = t[n].real;
  else if (t.IsAtom(n, "infinity")) s.f = INFINITY;
  else if (t.IsAtom(n, "neg_infinity")) s.f = -INFINITY;
  else if (t.IsAtom(n, "nan")) s.f = NAN;
  else return std::nullopt;
  return s;
}

}  // namespace

/// A number as above, or a complex one: `{re, im}`, two such numbers.
Result<ir::Scalar> DecodeScalar(const TermTree& t, uint32_t n, const char* what) {
  if (auto s = RealScalar(t, n)) return *s;
  if (t[n].kind == TermKind::kTuple && t[n].count == 2) {
    auto re = RealScalar(t, t.Child(n, 0)), im = RealScalar(t, t.Child(n, 1));
    if (re && im) {
      ir::Scalar s;
      s.integer = false;
      s.f = re->AsDouble();
      s.im = im->AsDouble();
      return s;
    }
  }
  return Status::BadArg(std::string(what) +
                        " must be a number (or :infinity, :neg_infinity, :nan), or {re, im} of two for a complex one");
}

Result<std::vector<uint64_t>> DecodeHandleList(const TermTree& t, uint32_t n, const char* what) {
  const Term& term = t[n];
  if (term.kind == TermKind::kString) {  // small handles arrive as a byte string
    // The cap holds whatever the encoding: the BEAM sends a list of integers below 256 as
    // STRING_EXT, up to 65,535 of them.
    if (term.data.size() > kMaxHandles) return TooManyHandles(what);
    std::vector<uint64_t> out;
    for (char c : term.data) {
      if (static_cast<uint8_t>(c) == 0) return Status::BadArg(std::string(what) + " must hold tensor handles");
      out.push_back(static_cast<uint8_t>(c));
    }
    return out;
  }
  if (term.kind == TermKind::kNil) return std::vector<uint64_t>{};  // [] (the op says what it needs)
  if (term.kind != TermKind::kList || term.improper) {
    return Status::BadArg(std::string(what) + " must be a list of tensor handles");
  }
  if (term.count > kMaxHandles) return TooManyHandles(what);
  std::vector<uint64_t> out;
  uint32_t c = n + 1;
  for (uint32_t i = 0; i < term.count; ++i, c = t[c].end) {
    if (t[c].kind != TermKind::kInteger || t[c].integer <= 0) {
      return Status::BadArg(std::string(what) + " must hold tensor handles (positive integers)");
    }
    out.push_back(static_cast<uint64_t>(t[c].integer));
  }
  return out;
}

Result<int64_t> DecodeInt(const TermTree& t, uint32_t n, const char* what) {
  if (t[n].kind != TermKind::kInteger) return Status::BadArg(std::string(what) + " must be an integer");
  return t[n].integer;
}

Result<std::vector<int64_t>> DecodeInts(const TermTree& t, uint32_t n, const char* what) {
  const Term& term = t[n];
  if (term.kind == TermKind::kString) {  // the BEAM sends a list of small integers as STRING_EXT
    if (term.data.size() > kMaxDims) return Status::BadArg(std::string(what) + " has more than 16 entries");
    std::vector<int64_t> out;
    for (char c : term.data) out.push_back(static_cast<uint8_t>(c));
    return out;
  }
  if (term.kind != TermKind::kTuple && term.kind != TermKind::kList && term.kind != TermKind::kNil) {
    return Status::BadArg(std::string(what) + " must be a tuple or list of integers, got " + KindName(term.kind));
  }
  if (term.improper) return Status::BadArg(std::string(what) + " must be a proper list");
  if (term.count > kMaxDims) return Status::BadArg(std::string(what) + " has more than 16 entries");
  std::vector<int64_t> out;
  uint32_t c = n + 1;
  for (uint32_t i = 0; i < term.count; ++i, c = t[c].end) {
    if (t[c].kind != TermKind::kInteger) return Status::BadArg(std::string(what) + " must hold integers only");
    out.push_back(t[c].integer);
  }
  return out;
}

Result<std::string_view> DecodeName(const TermTree& t, uint32_t n, const char* family) {
  if (t[n].kind != TermKind::kAtom) return Status::BadArg(std::string(family) + " op name must be an atom");
  return t[n].data;
}

}  // namespace mure::proto
