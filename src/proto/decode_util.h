// mure — reading the argument terms of requests: types, shapes, handles, integers, numbers. Each
// returns the value or a Status naming the argument (`what`) and what it should have been.
// Shared by the request decoders (proto/request.cpp, proto/decode_ops.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ops.h"
#include "mure/status.h"
#include "mure/types.h"
#include "proto/request.h"
#include "proto/term.h"

namespace mure::proto {

/// "an integer", "a tuple", ...: a term kind as messages name it.
std::string KindName(TermKind k);

/// {:f, 32} and the other Nx types.
Result<DType> DecodeType(const TermTree& t, uint32_t n);
/// A tuple of at most kMaxDims non-negative integers.
Result<Shape> DecodeShape(const TermTree& t, uint32_t n);
/// A positive integer.
Result<uint64_t> DecodeHandle(const TermTree& t, uint32_t n, const char* what);
/// A list of at most 1024 handles.
Result<std::vector<uint64_t>> DecodeHandleList(const TermTree& t, uint32_t n, const char* what);
Result<int64_t> DecodeInt(const TermTree& t, uint32_t n, const char* what);
/// A tuple or list of at most kMaxDims integers.
Result<std::vector<int64_t>> DecodeInts(const TermTree& t, uint32_t n, const char* what);
/// A number: an integer, a float, or Nx's :infinity / :neg_infinity / :nan.
Result<ir::Scalar> DecodeScalar(const TermTree& t, uint32_t n, const char* what);
/// An op name atom of `family` (unary, binary, reduce).
Result<std::string_view> DecodeName(const TermTree& t, uint32_t n, const char* family);

/// The arguments of one request tuple `{atom, arg1, arg2, ...}`.
struct Args {
  const TermTree& t;
  uint32_t n;             ///< the request term
  std::string_view name;  ///< its atom
  /// The i-th argument (1: the first after the atom).
  uint32_t Arg(uint32_t i) const { return t.Child(n, i); }
};

/// How a request with an arity no decoder takes is answered: "<atom> takes <form>", with
/// "; got a tuple of N elements" (kCount), without (kPlain), or ":<atom> takes no arguments".
enum class Usage { kCount, kPlain, kNoArgs };

/// One row of the decoder table: the request `{atom, ...}` of `arity` elements (the atom
/// included; 0 is the bare atom) is read by `decode`.
struct Decoder {
  std::string_view atom;
  uint32_t arity;
  Result<Body> (*decode)(const Args&);
  std::string_view form;
  Usage usage;
  bool test_only = false;  ///< only with --test-ops
};

/// The rows of the compute ops (proto/decode_ops.cpp): each decodes to an ir::Node.
std::span<const Decoder> NodeDecoders();

}  // namespace mure::proto
