// mure — decoders of the compute ops: wire terms (docs/protocol.md) to ir::Node structs. The
// table at the end maps {atom, arity} to its decoder; the legacy matmul/add/multiply requests
// decode to dot and binary nodes.
#include <string>
#include <utility>

#include "proto/decode_util.h"

namespace mure::proto {
namespace {

#define MURE_TRY(var, expr)            \
  auto var##_r = (expr);               \
  if (!var##_r.ok()) return var##_r.status(); \
  auto var = std::move(*var##_r)

Result<Body> Node(ir::Node n) { return Body(std::move(n)); }

Result<Body> DecodeMatmul(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the first operand"));
  MURE_TRY(y, DecodeHandle(a.t, a.Arg(2), "the second operand"));
  return Node(ir::Dot{x, {1}, {}, y, {0}, {}, ir::Legacy::kMatmul});
}

Result<Body> DecodeAddMultiply(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the first operand"));
  MURE_TRY(y, DecodeHandle(a.t, a.Arg(2), "the second operand"));
  const bool add = a.name == "add";
  return Node(ir::Binary{a.name, add ? ir::BinaryOp::kAdd : ir::BinaryOp::kMultiply, x, y,
                         add ? ir::Legacy::kAdd : ir::Legacy::kMultiply});
}

Result<Body> DecodeUnary(const Args& a) {
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "unary"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the operand"));
  return Node(ir::Unary{name, ir::UnaryFromName(name), x});
}

Result<Body> DecodeBinary(const Args& a) {
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "binary"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the first operand"));
  MURE_TRY(y, DecodeHandle(a.t, a.Arg(3), "the second operand"));
  return Node(ir::Binary{name, ir::BinaryFromName(name), x, y, ir::Legacy::kNone});
}

Result<Body> DecodeReduce(const Args& a) {
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "reduce"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the operand"));
  ir::Reduce r;
  uint32_t axes = a.Arg(3), keep = a.Arg(4);
  if (a.t.IsAtom(axes, "all")) {
    r.all_axes = true;
  } else {
    MURE_TRY(v, DecodeInts(a.t, axes, "reduce axes"));
    r.axes = std::move(v);
  }
  if (!a.t.IsAtom(keep, "true") && !a.t.IsAtom(keep, "false")) return Status::BadArg("keep_axes must be true or false");
  r.keep_axes = a.t.IsAtom(keep, "true");
  r.name = name;
  r.op = ir::ReduceFromName(name);
  r.x = x;
  return Node(std::move(r));
}

Result<Body> DecodeConvert(const Args& a) {  // as_type, bitcast
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(type, DecodeType(a.t, a.Arg(2)));
  if (a.name == "as_type") return Node(ir::AsType{x, type});
  return Node(ir::Bitcast{x, type});
}

Result<Body> DecodeReshape(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(shape, DecodeShape(a.t, a.Arg(2)));
  return Node(ir::Reshape{x, std::move(shape)});
}

Result<Body> DecodeTranspose(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(axes, DecodeInts(a.t, a.Arg(2), "transpose axes"));
  return Node(ir::Transpose{x, std::move(axes)});
}

Result<Body> DecodeSlice(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(starts, DecodeInts(a.t, a.Arg(2), "slice starts"));
  MURE_TRY(lengths, DecodeInts(a.t, a.Arg(3), "slice lengths"));
  MURE_TRY(strides, DecodeInts(a.t, a.Arg(4), "slice strides"));
  return Node(ir::Slice{x, std::move(starts), std::move(lengths), std::move(strides)});
}

Result<Body> DecodeTake(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(idx, DecodeHandle(a.t, a.Arg(2), "the indices"));
  uint32_t axis = a.Arg(3);
  if (a.t[axis].kind != TermKind::kInteger) return Status::BadArg("take's axis must be an integer");
  return Node(ir::Take{x, idx, a.t[axis].integer});
}

Result<Body> DecodeCreation(const Args& a) {  // iota, eye, full, random_uniform, random_normal
  MURE_TRY(type, DecodeType(a.t, a.Arg(1)));
  MURE_TRY(shape, DecodeShape(a.t, a.Arg(2)));
  if (a.name == "eye") return Node(ir::Eye{type, std::move(shape)});
  if (a.name == "iota") {
    int64_t axis = -1;
    if (!a.t.IsAtom(a.Arg(3), "nil")) {
      MURE_TRY(ax, DecodeInt(a.t, a.Arg(3), "iota's axis"));
      MURE_TRY(norm, ir::NormalizeAxis(ax, shape.size(), "iota axis"));
      axis = static_cast<int64_t>(norm);
    }
    return Node(ir::Iota{type, std::move(shape), axis});
  }
  if (a.name == "full") {
    MURE_TRY(v, DecodeScalar(a.t, a.Arg(3), "full's value"));
    return Node(ir::Full{type, std::move(shape), v});
  }
  uint32_t seed = a.Arg(3);
  if (a.t[seed].kind != TermKind::kInteger) {
    return Status::BadArg(a.t[seed].kind == TermKind::kBigInteger
                              ? "the seed must be an integer in -2^63..2^63-1"
                              : "the seed must be an integer");
  }
  MURE_TRY(p1, DecodeScalar(a.t, a.Arg(4), "the first parameter"));
  MURE_TRY(p2, DecodeScalar(a.t, a.Arg(5), "the second parameter"));
  const uint64_t s = static_cast<uint64_t>(a.t[seed].integer);
  if (a.name == "random_uniform") return Node(ir::RandomUniform{type, std::move(shape), s, p1, p2});
  return Node(ir::RandomNormal{type, std::move(shape), s, p1, p2});
}

Result<Body> DecodeTernary(const Args& a) {  // select, clip
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the first operand"));
  MURE_TRY(y, DecodeHandle(a.t, a.Arg(2), "the second operand"));
  MURE_TRY(z, DecodeHandle(a.t, a.Arg(3), "the third operand"));
  if (a.name == "select") return Node(ir::Select{x, y, z});
  return Node(ir::Clip{x, y, z});
}

Result<Body> DecodeBroadcast(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(shape, DecodeShape(a.t, a.Arg(2)));
  MURE_TRY(axes, DecodeInts(a.t, a.Arg(3), "broadcast axes"));
  return Node(ir::Broadcast{x, std::move(shape), std::move(axes)});
}

Result<Body> DecodeReverse(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(axes, DecodeInts(a.t, a.Arg(2), "reverse axes"));
  return Node(ir::Reverse{x, std::move(axes)});
}

Result<Body> DecodePad(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(v, DecodeScalar(a.t, a.Arg(2), "pad's value"));
  const TermTree& t = a.t;
  uint32_t cfg = a.Arg(3);
  if ((t[cfg].kind != TermKind::kList && t[cfg].kind != TermKind::kNil) || t[cfg].improper || t[cfg].count > kMaxDims) {
    return Status::BadArg("pad's config must be a list of {low, high, interior} tuples");
  }
  ir::Pad p{x, v, {}};
  uint32_t c = cfg + 1;
  for (uint32_t i = 0; i < t[cfg].count; ++i, c = t[c].end) {
    auto trip = DecodeInts(t, c, "a pad entry");
    if (!trip.ok() || trip->size() != 3 || t[c].kind != TermKind::kTuple) {
      return Status::BadArg("pad's config must be a list of {low, high, interior} tuples");
    }
    p.config.push_back(ir::PadDim{(*trip)[0], (*trip)[1], (*trip)[2]});
  }
  return Node(std::move(p));
}

Result<Body> DecodeJoin(const Args& a) {  // concatenate, stack
  MURE_TRY(xs, DecodeHandleList(a.t, a.Arg(1), "the tensors"));
  if (xs.empty()) return Status::BadArg(std::string(a.name) + " needs at least one tensor");
  MURE_TRY(axis, DecodeInt(a.t, a.Arg(2), "the axis"));
  if (a.name == "stack") return Node(ir::Stack{std::move(xs), axis});
  return Node(ir::Concatenate{std::move(xs), axis});
}

Result<Body> DecodePutSlice(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(starts, DecodeInts(a.t, a.Arg(2), "put_slice starts"));
  MURE_TRY(update, DecodeHandle(a.t, a.Arg(3), "the update"));
  return Node(ir::PutSlice{x, std::move(starts), update});
}

/// The starts of a dynamic slice: a list of tensor ids, one per axis (the planner checks the count
/// against the rank, and that each is a scalar integer tensor).
Result<std::vector<uint64_t>> DecodeStarts(const Args& a, uint32_t n) {
  const std::string what = std::string(a.name) + " starts";
  MURE_TRY(starts, DecodeHandleList(a.t, n, what.c_str()));
  if (starts.size() > kMaxDims) {
    return Status::BadArg(what + ": one scalar integer tensor per axis, at most " + std::to_string(kMaxDims) +
                          "; got " + std::to_string(starts.size()));
  }
  return starts;
}

Result<Body> DecodeDynamicSlice(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(starts, DecodeStarts(a, a.Arg(2)));
  MURE_TRY(lengths, DecodeInts(a.t, a.Arg(3), "dynamic_slice lengths"));
  MURE_TRY(strides, DecodeInts(a.t, a.Arg(4), "dynamic_slice strides"));
  return Node(ir::DynamicSlice{x, std::move(starts), std::move(lengths), std::move(strides)});
}

Result<Body> DecodeDynamicPutSlice(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(starts, DecodeStarts(a, a.Arg(2)));
  MURE_TRY(update, DecodeHandle(a.t, a.Arg(3), "the update"));
  return Node(ir::DynamicPutSlice{x, std::move(starts), update});
}

Result<Body> DecodePair(const Args& a) {  // gather, outer
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the first operand"));
  MURE_TRY(y, DecodeHandle(a.t, a.Arg(2), "the second operand"));
  if (a.name == "gather") return Node(ir::Gather{x, y});
  return Node(ir::Outer{x, y});
}

Result<Body> DecodeSort(const Args& a) {  // sort, argsort
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(axis, DecodeInt(a.t, a.Arg(2), "the axis"));
  uint32_t dir = a.Arg(3);
  if (!a.t.IsAtom(dir, "asc") && !a.t.IsAtom(dir, "desc")) return Status::BadArg("direction must be :asc or :desc");
  const bool desc = a.t.IsAtom(dir, "desc");
  if (a.name == "argsort") return Node(ir::Argsort{x, axis, desc});
  return Node(ir::Sort{x, axis, desc});
}

Result<Body> DecodeDot(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "a"));
  MURE_TRY(ca, DecodeInts(a.t, a.Arg(2), "contraction axes of a"));
  MURE_TRY(ba, DecodeInts(a.t, a.Arg(3), "batch axes of a"));
  MURE_TRY(y, DecodeHandle(a.t, a.Arg(4), "b"));
  MURE_TRY(cb, DecodeInts(a.t, a.Arg(5), "contraction axes of b"));
  MURE_TRY(bb, DecodeInts(a.t, a.Arg(6), "batch axes of b"));
  return Node(ir::Dot{x, std::move(ca), std::move(ba), y, std::move(cb), std::move(bb), ir::Legacy::kNone});
}

Result<Body> DecodeFft(const Args& a) {  // fft, ifft
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the operand"));
  MURE_TRY(length, DecodeInt(a.t, a.Arg(2), "the length"));
  return Node(ir::Fft{x, length, a.name == "ifft"});
}

Result<bool> DecodeBool(const TermTree& t, uint32_t n, const char* what) {
  if (t.IsAtom(n, "true")) return true;
  if (t.IsAtom(n, "false")) return false;
  return Status::BadArg(std::string(what) + " must be true or false");
}

Result<Body> DecodeLinalg(const Args& a) {  // lu, qr, cholesky, eigh, svd, determinant, solve, triangular_solve
  ir::Linalg l;
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), a.name == "solve" || a.name == "triangular_solve" ? "a" : "the operand"));
  l.a = x;
  if (a.name == "lu") l.op = ir::LinalgOp::kLu;
  if (a.name == "cholesky") l.op = ir::LinalgOp::kCholesky;
  if (a.name == "eigh") l.op = ir::LinalgOp::kEigh;
  if (a.name == "determinant") l.op = ir::LinalgOp::kDeterminant;
  if (a.name == "qr") {
    l.op = ir::LinalgOp::kQr;
    if (!a.t.IsAtom(a.Arg(2), "reduced") && !a.t.IsAtom(a.Arg(2), "complete")) {
      return Status::BadArg("qr's mode must be :reduced or :complete");
    }
    l.opts.complete = a.t.IsAtom(a.Arg(2), "complete");
  }
  if (a.name == "svd") {
    l.op = ir::LinalgOp::kSvd;
    MURE_TRY(full, DecodeBool(a.t, a.Arg(2), "svd's full_matrices"));
    l.opts.full_matrices = full;
  }
  if (a.name == "solve" || a.name == "triangular_solve") {
    MURE_TRY(y, DecodeHandle(a.t, a.Arg(2), "b"));
    l.b = y;
    l.op = a.name == "solve" ? ir::LinalgOp::kSolve : ir::LinalgOp::kTriangularSolve;
  }
  if (a.name == "triangular_solve") {
    MURE_TRY(left, DecodeBool(a.t, a.Arg(3), "triangular_solve's left_side"));
    MURE_TRY(lower, DecodeBool(a.t, a.Arg(4), "triangular_solve's lower"));
    if (!a.t.IsAtom(a.Arg(5), "none") && !a.t.IsAtom(a.Arg(5), "transpose")) {
      return Status::BadArg("triangular_solve's transform_a must be :none or :transpose (complex :conjugate is not "
                            "supported)");
    }
    l.opts.left_side = left;
    l.opts.lower = lower;
    l.opts.transpose_a = a.t.IsAtom(a.Arg(5), "transpose");
  }
  return Node(l);
}

Result<Body> DecodeElem(const Args& a) {
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(1), "the tuple value"));
  MURE_TRY(i, DecodeInt(a.t, a.Arg(2), "the part's index"));
  return Node(ir::Elem{x, i});
}

/// A list of {lo, hi} pairs (window padding), at most kMaxDims.
Result<std::vector<std::pair<int64_t, int64_t>>> DecodePadPairs(const TermTree& t, uint32_t n, const char* what) {
  if ((t[n].kind != TermKind::kList && t[n].kind != TermKind::kNil) || t[n].improper || t[n].count > kMaxDims) {
    return Status::BadArg(std::string(what) + " must be a list of {low, high} tuples");
  }
  std::vector<std::pair<int64_t, int64_t>> out;
  uint32_t c = n + 1;
  for (uint32_t i = 0; i < t[n].count; ++i, c = t[c].end) {
    auto pair = DecodeInts(t, c, what);
    if (!pair.ok() || pair->size() != 2 || t[c].kind != TermKind::kTuple) {
      return Status::BadArg(std::string(what) + " must be a list of {low, high} tuples");
    }
    out.emplace_back((*pair)[0], (*pair)[1]);
  }
  return out;
}

Result<Body> DecodeWindow(const Args& a) {  // arity 7, or 8 with the init value
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "reduce"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the operand"));
  MURE_TRY(dims, DecodeInts(a.t, a.Arg(3), "window dims"));
  MURE_TRY(strides, DecodeInts(a.t, a.Arg(4), "window strides"));
  MURE_TRY(padding, DecodePadPairs(a.t, a.Arg(5), "window padding"));
  MURE_TRY(dilations, DecodeInts(a.t, a.Arg(6), "window dilations"));
  ir::Window w{name, ir::ReduceFromName(name), x, std::move(dims), std::move(strides), std::move(padding),
               std::move(dilations), std::nullopt};
  if (a.t[a.n].count == 8) {
    MURE_TRY(init, DecodeScalar(a.t, a.Arg(7), "the window's init value"));
    w.init = init;
  }
  return Node(std::move(w));
}

Result<Body> DecodeWindowScatter(const Args& a) {
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "window_scatter"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the operand"));
  MURE_TRY(source, DecodeHandle(a.t, a.Arg(3), "the source"));
  MURE_TRY(init, DecodeScalar(a.t, a.Arg(4), "the init value"));
  MURE_TRY(dims, DecodeInts(a.t, a.Arg(5), "window dims"));
  MURE_TRY(strides, DecodeInts(a.t, a.Arg(6), "window strides"));
  MURE_TRY(padding, DecodePadPairs(a.t, a.Arg(7), "window padding"));
  return Node(ir::WindowScatter{name, x, source, init, std::move(dims), std::move(strides), std::move(padding)});
}

Result<Body> DecodeIndexed(const Args& a) {
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "indexed"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the target"));
  MURE_TRY(indices, DecodeHandle(a.t, a.Arg(3), "the indices"));
  MURE_TRY(updates, DecodeHandle(a.t, a.Arg(4), "the updates"));
  MURE_TRY(axes, DecodeInts(a.t, a.Arg(5), "indexed axes"));
  return Node(ir::Indexed{name, x, indices, updates, std::move(axes)});
}

Result<Body> DecodeCumulative(const Args& a) {
  MURE_TRY(name, DecodeName(a.t, a.Arg(1), "reduce"));
  MURE_TRY(x, DecodeHandle(a.t, a.Arg(2), "the operand"));
  MURE_TRY(axis, DecodeInt(a.t, a.Arg(3), "the axis"));
  uint32_t rev = a.Arg(4);
  if (!a.t.IsAtom(rev, "true") && !a.t.IsAtom(rev, "false")) return Status::BadArg("reverse must be true or false");
  return Node(ir::Cumulative{name, ir::ReduceFromName(name), x, axis, a.t.IsAtom(rev, "true")});
}

#undef MURE_TRY

constexpr Decoder kNodeDecoders[] = {
    {"matmul", 3, DecodeMatmul, "{:matmul, a, b}", Usage::kCount},
    {"add", 3, DecodeAddMultiply, "{:add, a, b}", Usage::kCount},
    {"multiply", 3, DecodeAddMultiply, "{:multiply, a, b}", Usage::kCount},
    {"unary", 3, DecodeUnary, "{:unary, name, h}", Usage::kCount},
    {"binary", 4, DecodeBinary, "{:binary, name, a, b}", Usage::kCount},
    {"reduce", 5, DecodeReduce, "{:reduce, name, h, axes | :all, keep_axes}", Usage::kCount},
    {"as_type", 3, DecodeConvert, "{op, h, type}", Usage::kCount},
    {"bitcast", 3, DecodeConvert, "{op, h, type}", Usage::kCount},
    {"reshape", 3, DecodeReshape, "{:reshape, h, shape}", Usage::kCount},
    {"transpose", 3, DecodeTranspose, "{:transpose, h, axes}", Usage::kCount},
    {"slice", 5, DecodeSlice, "{:slice, h, starts, lengths, strides}", Usage::kCount},
    {"take", 4, DecodeTake, "{:take, h, indices, axis}", Usage::kCount},
    {"iota", 4, DecodeCreation, "{:iota, type, shape, axis | nil}", Usage::kPlain},
    {"eye", 3, DecodeCreation, "{:eye, type, shape}", Usage::kPlain},
    {"full", 4, DecodeCreation, "{:full, type, shape, value}", Usage::kPlain},
    {"random_uniform", 6, DecodeCreation, "{:random_uniform, type, shape, seed, min, max}", Usage::kPlain},
    {"random_normal", 6, DecodeCreation, "{:random_normal, type, shape, seed, mean, std}", Usage::kPlain},
    {"select", 4, DecodeTernary, "three tensors", Usage::kPlain},
    {"clip", 4, DecodeTernary, "three tensors", Usage::kPlain},
    {"broadcast", 4, DecodeBroadcast, "{:broadcast, h, shape, axes}", Usage::kPlain},
    {"reverse", 3, DecodeReverse, "{:reverse, h, axes}", Usage::kPlain},
    {"pad", 4, DecodePad, "{:pad, h, value, [{low, high, interior}, ...]}", Usage::kPlain},
    {"concatenate", 3, DecodeJoin, "{op, [tensors], axis}", Usage::kPlain},
    {"stack", 3, DecodeJoin, "{op, [tensors], axis}", Usage::kPlain},
    {"put_slice", 4, DecodePutSlice, "{:put_slice, h, starts, update}", Usage::kPlain},
    {"gather", 3, DecodePair, "two tensors", Usage::kPlain},
    {"outer", 3, DecodePair, "two tensors", Usage::kPlain},
    {"sort", 4, DecodeSort, "{op, h, axis, :asc | :desc}", Usage::kPlain},
    {"argsort", 4, DecodeSort, "{op, h, axis, :asc | :desc}", Usage::kPlain},
    {"dot", 7, DecodeDot, "{:dot, a, contract_a, batch_a, b, contract_b, batch_b}", Usage::kPlain},
    {"fft", 3, DecodeFft, "{op, h, length}", Usage::kPlain},
    {"ifft", 3, DecodeFft, "{op, h, length}", Usage::kPlain},
    {"lu", 2, DecodeLinalg, "{:lu, h}", Usage::kPlain},
    {"qr", 3, DecodeLinalg, "{:qr, h, :reduced | :complete}", Usage::kPlain},
    {"cholesky", 2, DecodeLinalg, "{:cholesky, h}", Usage::kPlain},
    {"eigh", 2, DecodeLinalg, "{:eigh, h}", Usage::kPlain},
    {"svd", 3, DecodeLinalg, "{:svd, h, full_matrices}", Usage::kPlain},
    {"determinant", 2, DecodeLinalg, "{:determinant, h}", Usage::kPlain},
    {"solve", 3, DecodeLinalg, "{:solve, a, b}", Usage::kPlain},
    {"triangular_solve", 6, DecodeLinalg, "{:triangular_solve, a, b, left_side, lower, :none | :transpose}",
     Usage::kPlain},
    {"elem", 3, DecodeElem, "{:elem, v, i}", Usage::kPlain},
    {"window", 7, DecodeWindow, "{:window, op, h, dims, strides, [{lo, hi}], dilations} (or with an init value)",
     Usage::kPlain},
    {"window", 8, DecodeWindow, "{:window, op, h, dims, strides, [{lo, hi}], dilations, init}", Usage::kPlain},
    {"window_scatter", 8, DecodeWindowScatter, "{:window_scatter, :max | :min, h, source, init, dims, strides, [{lo, hi}]}",
     Usage::kPlain},
    {"indexed", 6, DecodeIndexed, "{:indexed, :add | :put, h, indices, updates, axes}", Usage::kPlain},
    {"cumulative", 5, DecodeCumulative, "{:cumulative, op, h, axis, reverse}", Usage::kPlain},
    {"dynamic_slice", 5, DecodeDynamicSlice, "{:dynamic_slice, h, [start tensor], lengths, strides}", Usage::kCount},
    {"dynamic_put_slice", 4, DecodeDynamicPutSlice, "{:dynamic_put_slice, h, [start tensor], update}", Usage::kCount},
};

}  // namespace

std::span<const Decoder> NodeDecoders() { return kNodeDecoders; }

}  // namespace mure::proto
