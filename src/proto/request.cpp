#include "proto/request.h"

#include <cmath>

namespace mure::proto {
namespace {

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
                                             "} is not supported; use {:u|:s, 8|16|32|64}, {:f, 16|32|64} or {:bf, 16}");
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

Status Arity(const Term& term, uint32_t want, std::string_view op, const char* form) {
  if (term.count != want) {
    return Status::BadArg(std::string(op) + " takes " + form + "; got a tuple of " + std::to_string(term.count) +
                          " elements");
  }
  return Status::Ok();
}

struct OpEntry {
  std::string_view name;
  Op op;
};
constexpr OpEntry kOps[] = {
    {"hello", Op::kHello},   {"devices", Op::kDevices}, {"stats", Op::kStats},
    {"upload", Op::kUpload}, {"download", Op::kDownload}, {"free", Op::kFree},
    {"matmul", Op::kMatmul}, {"add", Op::kAdd},         {"multiply", Op::kMultiply},
    {"busy", Op::kBusy},     {"unary", Op::kUnary},       {"binary", Op::kBinary},
    {"reduce", Op::kReduce}, {"as_type", Op::kAsType},    {"bitcast", Op::kBitcast},
    {"reshape", Op::kReshape}, {"transpose", Op::kTranspose}, {"slice", Op::kSlice},
    {"take", Op::kTake},     {"iota", Op::kIota},         {"eye", Op::kEye},
    {"full", Op::kFull},     {"random_uniform", Op::kRandomUniform}, {"random_normal", Op::kRandomNormal},
    {"select", Op::kSelect}, {"clip", Op::kClip},         {"broadcast", Op::kBroadcast},
    {"reverse", Op::kReverse}, {"pad", Op::kPad},         {"concatenate", Op::kConcatenate},
    {"stack", Op::kStack},   {"put_slice", Op::kPutSlice}, {"gather", Op::kGather},
    {"sort", Op::kSort},     {"argsort", Op::kArgsort},   {"dot", Op::kDot},
    {"outer", Op::kOuter},   {"program", Op::kProgram},   {"alloc", Op::kAlloc},
    {"write", Op::kWrite},   {"read", Op::kRead},
};

constexpr uint32_t kMaxProgramNodes = 10000;
constexpr uint32_t kMaxProgramInputs = 1024;

/// A number: an integer, a float, or Nx's :infinity / :neg_infinity / :nan.
Result<ir::Scalar> DecodeScalar(const TermTree& t, uint32_t n, const char* what) {
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
  else return Status::BadArg(std::string(what) + " must be a number (or :infinity, :neg_infinity, :nan)");
  return s;
}

/// The most tensors one concatenate or stack may join.
constexpr size_t kMaxHandles = 1024;

Status TooManyHandles(const char* what) {
  return Status::BadArg(std::string(what) + " holds more than " + std::to_string(kMaxHandles) + " tensors");
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

}  // namespace

std::string NodeLabel(const Request& req) {
  return ":" + std::string(OpName(req.op)) + (req.name.empty() ? "" : " :" + std::string(req.name.substr(0, 64)));
}

std::vector<uint64_t> Operands(const Request& req) {
  switch (req.op) {
    case Op::kIota: case Op::kEye: case Op::kFull: case Op::kRandomUniform: case Op::kRandomNormal:
      return {};
    case Op::kConcatenate: case Op::kStack:
      return req.handles;
    default: {
      std::vector<uint64_t> ids{req.a};
      if (req.b) ids.push_back(req.b);
      if (req.c) ids.push_back(req.c);
      return ids;
    }
  }
}

std::string_view OpName(Op op) {
  for (const auto& e : kOps) if (e.op == op) return e.name;
  return "?";
}

std::string_view AllOpNames() {
  return "hello devices stats upload download free matmul add multiply unary binary reduce as_type bitcast reshape "
         "transpose slice take iota eye full random_uniform random_normal select clip broadcast reverse pad "
         "concatenate stack put_slice gather sort argsort dot outer program alloc write read";
}

std::optional<Envelope> ReadEnvelope(const TermTree& t, uint32_t root) {
  if (root >= t.size() || t[root].kind != TermKind::kTuple || t[root].count != 6) return std::nullopt;
  if (!t.IsAtom(t.Child(root, 0), "$mure")) return std::nullopt;
  uint32_t reply_to = t.Child(root, 2), ref = t.Child(root, 3);
  if (t[reply_to].kind != TermKind::kPid || t[ref].kind != TermKind::kRef) return std::nullopt;
  Envelope env;
  env.reply_to.assign(t[reply_to].raw);
  env.ref.assign(t[ref].raw);
  uint32_t version = t.Child(root, 1);
  env.version = t[version].kind == TermKind::kInteger ? t[version].integer : -1;
  uint32_t owner = t.Child(root, 4);
  if (t[owner].kind == TermKind::kPid) {
    env.owner.assign(t[owner].raw);
    env.owner_node.assign(t[owner].node);
  }
  env.request = t.Child(root, 5);
  return env;
}

std::string PidKey(std::string_view raw, std::string_view node) {
  size_t words = !raw.empty() && static_cast<uint8_t>(raw[0]) == 88 ? 12 : 9;  // NEW_PID_EXT : PID_EXT
  std::string key(node);
  key.push_back('/');
  if (raw.size() >= words) key.append(raw.substr(raw.size() - words));
  return key;
}

std::optional<Envelope> PeekEnvelope(std::string_view buf, size_t offset) {
  // 131, then SMALL_TUPLE_EXT of arity 6.
  if (buf.size() < offset + 3 || static_cast<uint8_t>(buf[offset]) != 131 ||
      static_cast<uint8_t>(buf[offset + 1]) != 104 || static_cast<uint8_t>(buf[offset + 2]) != 6) {
    return std::nullopt;
  }
  TermTree tree;
  Limits limits;
  limits.max_depth = 4;
  limits.max_terms = 64;
  uint32_t roots[5];
  size_t pos = offset + 3;
  for (int i = 0; i < 5; ++i) {
    roots[i] = tree.size();
    auto next = ParseTerm(buf, pos, tree, limits);
    if (!next.ok()) return std::nullopt;
    pos = *next;
  }
  if (!tree.IsAtom(roots[0], "$mure") || tree[roots[2]].kind != TermKind::kPid ||
      tree[roots[3]].kind != TermKind::kRef) {
    return std::nullopt;
  }
  Envelope env;
  env.version = tree[roots[1]].kind == TermKind::kInteger ? tree[roots[1]].integer : -1;
  env.reply_to.assign(tree[roots[2]].raw);
  env.ref.assign(tree[roots[3]].raw);
  if (tree[roots[4]].kind == TermKind::kPid) {
    env.owner.assign(tree[roots[4]].raw);
    env.owner_node.assign(tree[roots[4]].node);
  }
  return env;
}

Status CheckEnvelope(const TermTree&, uint32_t, const Envelope& env, std::string_view peer_node) {
  if (env.version != kProtocolVersion) {
    return Status(ErrorKind::kBadVersion, "this node speaks protocol version " + std::to_string(kProtocolVersion) +
                                              "; the request says " + std::to_string(env.version));
  }
  if (env.owner.empty()) return Status::BadArg("the owner (5th element of the envelope) must be a pid");
  if (env.owner_node != peer_node) {
    return Status::BadArg("the owner pid must live on the requesting node " + std::string(peer_node) + ", not " +
                          env.owner_node);
  }
  return Status::Ok();
}

Result<Request> DecodeRequest(const TermTree& t, uint32_t n, bool test_ops) {
  const Term& term = t[n];
  if (term.kind == TermKind::kTuple && term.count == 3 && t.IsAtom(n + 1, "on")) {
    uint32_t dev = t.Child(n, 1), inner = t.Child(n, 2);
    if (!t.IsAtom(dev, "cpu") && !t.IsAtom(dev, "opencl") && !t.IsAtom(dev, "auto")) {
      return Status::BadArg("{:on, device, request}: device must be :cpu, :opencl or :auto");
    }
    if (t[inner].kind == TermKind::kTuple && t[inner].count > 0 && t.IsAtom(inner + 1, "on")) {
      return Status::BadArg("{:on, device, request} cannot be nested");
    }
    auto r = DecodeRequest(t, inner, test_ops);
    if (!r.ok()) return r;
    r->placement = t.IsAtom(dev, "cpu") ? Placement::kCpu : t.IsAtom(dev, "opencl") ? Placement::kOpenCl
                                                                                      : Placement::kAuto;
    return r;
  }
  std::string_view name;
  if (term.kind == TermKind::kAtom) {
    name = term.data;
  } else if (term.kind == TermKind::kTuple && term.count > 0 && t[n + 1].kind == TermKind::kAtom) {
    name = t[n + 1].data;
  } else {
    return Status::BadArg("a request must be an atom or a tuple starting with an op atom, got " + KindName(term.kind));
  }
  const OpEntry* entry = nullptr;
  for (const auto& e : kOps) if (e.name == name) entry = &e;
  if (!entry || (entry->op == Op::kBusy && !test_ops)) {
    return Status(ErrorKind::kUnknownOp, "unknown op :" + std::string(name.substr(0, 64)) +
                                             "; this node knows " + std::string(AllOpNames()));
  }
  Request r;
  r.op = entry->op;
  const bool bare = term.kind == TermKind::kAtom;
  switch (r.op) {
    case Op::kHello:
    case Op::kDevices:
    case Op::kStats:
      if (!bare && term.count != 1) {
        return Status::BadArg(":" + std::string(name) + " takes no arguments");
      }
      return r;
    case Op::kUpload: {
      if (bare) return Status::BadArg("upload takes {:upload, type, shape, binary}");
      MURE_RETURN_IF_ERROR(Arity(term, 4, name, "{:upload, type, shape, binary}"));
      auto type = DecodeType(t, t.Child(n, 1));
      if (!type.ok()) return type.status();
      auto shape = DecodeShape(t, t.Child(n, 2));
      if (!shape.ok()) return shape.status();
      uint32_t data = t.Child(n, 3);
      if (t[data].kind != TermKind::kBinary) {
        return Status::BadArg("upload data must be a binary, got " + KindName(t[data].kind));
      }
      auto bytes = ByteSize(*type, *shape);
      if (!bytes.ok()) return bytes.status();
      if (*bytes != t[data].data.size()) {
        return Status(ErrorKind::kSizeMismatch,
                      "a " + DTypeToString(*type) + " tensor of shape " + ShapeToString(*shape) + " needs " +
                          std::to_string(*bytes) + " bytes; the binary has " + std::to_string(t[data].data.size()));
      }
      r.type = *type;
      r.shape = std::move(*shape);
      r.bytes = *bytes;
      r.data = t[data].data;
      return r;
    }
    case Op::kDownload:
    case Op::kFree: {
      if (bare) return Status::BadArg(std::string(name) + " takes {:" + std::string(name) + ", handle}");
      MURE_RETURN_IF_ERROR(Arity(term, 2, name, "{op, handle}"));
      auto h = DecodeHandle(t, t.Child(n, 1), "the handle");
      if (!h.ok()) return h.status();
      r.a = *h;
      return r;
    }
    case Op::kMatmul:
    case Op::kAdd:
    case Op::kMultiply: {
      if (bare) return Status::BadArg(std::string(name) + " takes {:" + std::string(name) + ", a, b}");
      MURE_RETURN_IF_ERROR(Arity(term, 3, name, "{op, a, b}"));
      auto a = DecodeHandle(t, t.Child(n, 1), "the first operand");
      if (!a.ok()) return a.status();
      auto b = DecodeHandle(t, t.Child(n, 2), "the second operand");
      if (!b.ok()) return b.status();
      r.a = *a;
      r.b = *b;
      return r;
    }
    case Op::kUnary: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("unary takes {:unary, name, h}") : Arity(term, 3, name, "{:unary, name, h}"));
      auto op = DecodeName(t, t.Child(n, 1), "unary");
      if (!op.ok()) return op.status();
      auto a = DecodeHandle(t, t.Child(n, 2), "the operand");
      if (!a.ok()) return a.status();
      r.name = *op;
      r.a = *a;
      return r;
    }
    case Op::kBinary: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("binary takes {:binary, name, a, b}")
                                : Arity(term, 4, name, "{:binary, name, a, b}"));
      auto op = DecodeName(t, t.Child(n, 1), "binary");
      if (!op.ok()) return op.status();
      auto a = DecodeHandle(t, t.Child(n, 2), "the first operand");
      if (!a.ok()) return a.status();
      auto b = DecodeHandle(t, t.Child(n, 3), "the second operand");
      if (!b.ok()) return b.status();
      r.name = *op;
      r.a = *a;
      r.b = *b;
      return r;
    }
    case Op::kReduce: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("reduce takes {:reduce, name, h, axes | :all, keep_axes}")
                                : Arity(term, 5, name, "{:reduce, name, h, axes | :all, keep_axes}"));
      auto op = DecodeName(t, t.Child(n, 1), "reduce");
      if (!op.ok()) return op.status();
      auto a = DecodeHandle(t, t.Child(n, 2), "the operand");
      if (!a.ok()) return a.status();
      uint32_t axes = t.Child(n, 3), keep = t.Child(n, 4);
      if (t.IsAtom(axes, "all")) {
        r.all_axes = true;
      } else {
        auto v = DecodeInts(t, axes, "reduce axes");
        if (!v.ok()) return v.status();
        r.v1 = std::move(*v);
      }
      if (!t.IsAtom(keep, "true") && !t.IsAtom(keep, "false")) return Status::BadArg("keep_axes must be true or false");
      r.keep_axes = t.IsAtom(keep, "true");
      r.name = *op;
      r.a = *a;
      return r;
    }
    case Op::kAsType:
    case Op::kBitcast: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg(std::string(name) + " takes {op, h, type}") : Arity(term, 3, name, "{op, h, type}"));
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto type = DecodeType(t, t.Child(n, 2));
      if (!type.ok()) return type.status();
      r.a = *a;
      r.type = *type;
      return r;
    }
    case Op::kReshape: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("reshape takes {:reshape, h, shape}") : Arity(term, 3, name, "{:reshape, h, shape}"));
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto shape = DecodeShape(t, t.Child(n, 2));
      if (!shape.ok()) return shape.status();
      r.a = *a;
      r.shape = std::move(*shape);
      return r;
    }
    case Op::kTranspose: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("transpose takes {:transpose, h, axes}") : Arity(term, 3, name, "{:transpose, h, axes}"));
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto v = DecodeInts(t, t.Child(n, 2), "transpose axes");
      if (!v.ok()) return v.status();
      r.a = *a;
      r.v1 = std::move(*v);
      return r;
    }
    case Op::kSlice: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("slice takes {:slice, h, starts, lengths, strides}")
                                : Arity(term, 5, name, "{:slice, h, starts, lengths, strides}"));
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto s = DecodeInts(t, t.Child(n, 2), "slice starts");
      if (!s.ok()) return s.status();
      auto l = DecodeInts(t, t.Child(n, 3), "slice lengths");
      if (!l.ok()) return l.status();
      auto st = DecodeInts(t, t.Child(n, 4), "slice strides");
      if (!st.ok()) return st.status();
      r.a = *a;
      r.v1 = std::move(*s);
      r.v2 = std::move(*l);
      r.v3 = std::move(*st);
      return r;
    }
    case Op::kTake: {
      MURE_RETURN_IF_ERROR(bare ? Status::BadArg("take takes {:take, h, indices, axis}") : Arity(term, 4, name, "{:take, h, indices, axis}"));
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto b = DecodeHandle(t, t.Child(n, 2), "the indices");
      if (!b.ok()) return b.status();
      uint32_t axis = t.Child(n, 3);
      if (t[axis].kind != TermKind::kInteger) return Status::BadArg("take's axis must be an integer");
      r.a = *a;
      r.b = *b;
      r.axis = t[axis].integer;
      return r;
    }
    case Op::kIota: case Op::kEye: case Op::kFull: case Op::kRandomUniform: case Op::kRandomNormal: {
      const uint32_t want = r.op == Op::kEye ? 3 : r.op == Op::kIota || r.op == Op::kFull ? 4 : 6;
      if (bare || term.count != want) {
        return Status::BadArg(std::string(name) + " takes " +
                              (r.op == Op::kEye ? "{:eye, type, shape}"
                               : r.op == Op::kIota ? "{:iota, type, shape, axis | nil}"
                               : r.op == Op::kFull ? "{:full, type, shape, value}"
                               : r.op == Op::kRandomUniform ? "{:random_uniform, type, shape, seed, min, max}"
                                                            : "{:random_normal, type, shape, seed, mean, std}"));
      }
      auto type = DecodeType(t, t.Child(n, 1));
      if (!type.ok()) return type.status();
      auto shape = DecodeShape(t, t.Child(n, 2));
      if (!shape.ok()) return shape.status();
      r.type = *type;
      r.shape = std::move(*shape);
      if (r.op == Op::kIota) {
        uint32_t ax = t.Child(n, 3);
        if (t.IsAtom(ax, "nil")) {
          r.axis = -1;
        } else {
          auto a = DecodeInt(t, ax, "iota's axis");
          if (!a.ok()) return a.status();
          auto norm = ir::NormalizeAxis(*a, r.shape.size(), "iota axis");
          if (!norm.ok()) return norm.status();
          r.axis = static_cast<int64_t>(*norm);
        }
      } else if (r.op == Op::kFull) {
        auto v = DecodeScalar(t, t.Child(n, 3), "full's value");
        if (!v.ok()) return v.status();
        r.s1 = *v;
      } else if (r.op != Op::kEye) {
        uint32_t seed = t.Child(n, 3);
        if (t[seed].kind != TermKind::kInteger && t[seed].kind != TermKind::kBigInteger) {
          return Status::BadArg("the seed must be an integer");
        }
        r.seed = static_cast<uint64_t>(t[seed].integer);
        auto lo = DecodeScalar(t, t.Child(n, 4), "the first parameter");
        if (!lo.ok()) return lo.status();
        auto hi = DecodeScalar(t, t.Child(n, 5), "the second parameter");
        if (!hi.ok()) return hi.status();
        r.s1 = *lo;
        r.s2 = *hi;
      }
      return r;
    }
    case Op::kSelect: case Op::kClip: {
      if (bare || term.count != 4) return Status::BadArg(std::string(name) + " takes three tensors");
      auto a = DecodeHandle(t, t.Child(n, 1), "the first operand");
      if (!a.ok()) return a.status();
      auto b = DecodeHandle(t, t.Child(n, 2), "the second operand");
      if (!b.ok()) return b.status();
      auto c = DecodeHandle(t, t.Child(n, 3), "the third operand");
      if (!c.ok()) return c.status();
      r.a = *a;
      r.b = *b;
      r.c = *c;
      return r;
    }
    case Op::kBroadcast: {
      if (bare || term.count != 4) return Status::BadArg("broadcast takes {:broadcast, h, shape, axes}");
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto shape = DecodeShape(t, t.Child(n, 2));
      if (!shape.ok()) return shape.status();
      auto axes = DecodeInts(t, t.Child(n, 3), "broadcast axes");
      if (!axes.ok()) return axes.status();
      r.a = *a;
      r.shape = std::move(*shape);
      r.v1 = std::move(*axes);
      return r;
    }
    case Op::kReverse: {
      if (bare || term.count != 3) return Status::BadArg("reverse takes {:reverse, h, axes}");
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto axes = DecodeInts(t, t.Child(n, 2), "reverse axes");
      if (!axes.ok()) return axes.status();
      r.a = *a;
      r.v1 = std::move(*axes);
      return r;
    }
    case Op::kPad: {
      if (bare || term.count != 4) return Status::BadArg("pad takes {:pad, h, value, [{low, high, interior}, ...]}");
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto v = DecodeScalar(t, t.Child(n, 2), "pad's value");
      if (!v.ok()) return v.status();
      uint32_t cfg = t.Child(n, 3);
      if ((t[cfg].kind != TermKind::kList && t[cfg].kind != TermKind::kNil) || t[cfg].improper || t[cfg].count > kMaxDims) {
        return Status::BadArg("pad's config must be a list of {low, high, interior} tuples");
      }
      uint32_t c = cfg + 1;
      for (uint32_t i = 0; i < t[cfg].count; ++i, c = t[c].end) {
        auto trip = DecodeInts(t, c, "a pad entry");
        if (!trip.ok() || trip->size() != 3 || t[c].kind != TermKind::kTuple) {
          return Status::BadArg("pad's config must be a list of {low, high, interior} tuples");
        }
        r.pad.push_back(ir::PadDim{(*trip)[0], (*trip)[1], (*trip)[2]});
      }
      r.a = *a;
      r.s1 = *v;
      return r;
    }
    case Op::kConcatenate: case Op::kStack: {
      if (bare || term.count != 3) return Status::BadArg(std::string(name) + " takes {op, [tensors], axis}");
      auto hs = DecodeHandleList(t, t.Child(n, 1), "the tensors");
      if (!hs.ok()) return hs.status();
      if (hs->empty()) return Status::BadArg(std::string(name) + " needs at least one tensor");
      auto ax = DecodeInt(t, t.Child(n, 2), "the axis");
      if (!ax.ok()) return ax.status();
      r.handles = std::move(*hs);
      r.axis = *ax;
      return r;
    }
    case Op::kPutSlice: {
      if (bare || term.count != 4) return Status::BadArg("put_slice takes {:put_slice, h, starts, update}");
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto s = DecodeInts(t, t.Child(n, 2), "put_slice starts");
      if (!s.ok()) return s.status();
      auto b = DecodeHandle(t, t.Child(n, 3), "the update");
      if (!b.ok()) return b.status();
      r.a = *a;
      r.v1 = std::move(*s);
      r.b = *b;
      return r;
    }
    case Op::kGather: case Op::kOuter: {
      if (bare || term.count != 3) return Status::BadArg(std::string(name) + " takes two tensors");
      auto a = DecodeHandle(t, t.Child(n, 1), "the first operand");
      if (!a.ok()) return a.status();
      auto b = DecodeHandle(t, t.Child(n, 2), "the second operand");
      if (!b.ok()) return b.status();
      r.a = *a;
      r.b = *b;
      return r;
    }
    case Op::kSort: case Op::kArgsort: {
      if (bare || term.count != 4) return Status::BadArg(std::string(name) + " takes {op, h, axis, :asc | :desc}");
      auto a = DecodeHandle(t, t.Child(n, 1), "the operand");
      if (!a.ok()) return a.status();
      auto ax = DecodeInt(t, t.Child(n, 2), "the axis");
      if (!ax.ok()) return ax.status();
      uint32_t dir = t.Child(n, 3);
      if (!t.IsAtom(dir, "asc") && !t.IsAtom(dir, "desc")) return Status::BadArg("direction must be :asc or :desc");
      r.a = *a;
      r.axis = *ax;
      r.descending = t.IsAtom(dir, "desc");
      return r;
    }
    case Op::kDot: {
      if (bare || term.count != 7) {
        return Status::BadArg("dot takes {:dot, a, contract_a, batch_a, b, contract_b, batch_b}");
      }
      auto a = DecodeHandle(t, t.Child(n, 1), "a");
      if (!a.ok()) return a.status();
      auto ca = DecodeInts(t, t.Child(n, 2), "contraction axes of a");
      if (!ca.ok()) return ca.status();
      auto ba = DecodeInts(t, t.Child(n, 3), "batch axes of a");
      if (!ba.ok()) return ba.status();
      auto b = DecodeHandle(t, t.Child(n, 4), "b");
      if (!b.ok()) return b.status();
      auto cb = DecodeInts(t, t.Child(n, 5), "contraction axes of b");
      if (!cb.ok()) return cb.status();
      auto bb = DecodeInts(t, t.Child(n, 6), "batch axes of b");
      if (!bb.ok()) return bb.status();
      r.a = *a;
      r.b = *b;
      r.v1 = std::move(*ca);
      r.v2 = std::move(*ba);
      r.v3 = std::move(*cb);
      r.v4 = std::move(*bb);
      return r;
    }
    case Op::kAlloc: {
      if (bare || term.count != 3) return Status::BadArg("alloc takes {:alloc, type, shape}");
      auto type = DecodeType(t, t.Child(n, 1));
      if (!type.ok()) return type.status();
      auto shape = DecodeShape(t, t.Child(n, 2));
      if (!shape.ok()) return shape.status();
      r.type = *type;
      r.shape = std::move(*shape);
      return r;
    }
    case Op::kWrite:
    case Op::kRead: {
      if (bare || term.count != 4) {
        return Status::BadArg(r.op == Op::kWrite ? "write takes {:write, h, byte_offset, binary}"
                                                 : "read takes {:read, h, byte_offset, byte_length}");
      }
      auto h = DecodeHandle(t, t.Child(n, 1), "the handle");
      if (!h.ok()) return h.status();
      auto off = DecodeInt(t, t.Child(n, 2), "the byte offset");
      if (!off.ok()) return off.status();
      if (*off < 0) return Status(ErrorKind::kOutOfRange, "the byte offset must be >= 0");
      r.a = *h;
      r.offset = static_cast<uint64_t>(*off);
      uint32_t last = t.Child(n, 3);
      if (r.op == Op::kWrite) {
        if (t[last].kind != TermKind::kBinary) return Status::BadArg("write's data must be a binary");
        r.data = t[last].data;
      } else {
        auto len = DecodeInt(t, last, "the byte length");
        if (!len.ok()) return len.status();
        if (*len < 0) return Status(ErrorKind::kOutOfRange, "the byte length must be >= 0");
        r.length = static_cast<uint64_t>(*len);
      }
      return r;
    }
    case Op::kProgram: {
      if (bare || (term.count != 4 && term.count != 5)) {
        return Status::BadArg("program takes {:program, inputs, nodes, outputs} or {:program, inputs, nodes, outputs, opts}");
      }
      auto prog = std::make_shared<Program>();
      uint32_t ins = t.Child(n, 1), nodes = t.Child(n, 2), outs = t.Child(n, 3);
      auto is_list = [&](uint32_t x) { return (t[x].kind == TermKind::kList && !t[x].improper) || t[x].kind == TermKind::kNil; };
      if (!is_list(ins) || !is_list(nodes) || !is_list(outs)) {
        return Status::BadArg("a program's inputs, nodes and outputs must be lists");
      }
      if (t[ins].count > kMaxProgramInputs) return Status::BadArg("a program takes at most 1024 inputs");
      if (t[nodes].count > kMaxProgramNodes) return Status::BadArg("a program holds at most 10000 nodes");
      if (t[outs].count > kMaxProgramInputs) return Status::BadArg("a program gives at most 1024 outputs");
      uint32_t c = ins + 1;
      for (uint32_t i = 0; i < t[ins].count; ++i, c = t[c].end) {
        const std::string where = "input " + std::to_string(i + 1) + ": ";
        ProgramInput in;
        if (t[c].kind == TermKind::kTuple && t[c].count == 2 && t.IsAtom(t.Child(c, 0), "handle")) {
          auto h = DecodeHandle(t, t.Child(c, 1), "the handle");
          if (!h.ok()) return Status(h.status().kind(), where + h.status().message());
          in.handle = *h;
        } else if (t[c].kind == TermKind::kTuple && t[c].count == 4 && t.IsAtom(t.Child(c, 0), "data")) {
          in.is_handle = false;
          auto type = DecodeType(t, t.Child(c, 1));
          if (!type.ok()) return Status(type.status().kind(), where + type.status().message());
          auto shape = DecodeShape(t, t.Child(c, 2));
          if (!shape.ok()) return Status(shape.status().kind(), where + shape.status().message());
          uint32_t data = t.Child(c, 3);
          if (t[data].kind != TermKind::kBinary) return Status::BadArg(where + "data must be a binary");
          auto bytes = ByteSize(*type, *shape);
          if (!bytes.ok()) return Status(bytes.status().kind(), where + bytes.status().message());
          if (*bytes != t[data].data.size()) {
            return Status(ErrorKind::kSizeMismatch, where + "needs " + std::to_string(*bytes) + " bytes; the binary has " +
                                                        std::to_string(t[data].data.size()));
          }
          in.type = *type;
          in.shape = std::move(*shape);
          in.bytes = *bytes;
          in.data = t[data].data;
        } else {
          return Status::BadArg(where + "must be {:handle, h} or {:data, type, shape, binary}");
        }
        prog->inputs.push_back(std::move(in));
      }
      c = nodes + 1;
      for (uint32_t i = 0; i < t[nodes].count; ++i, c = t[c].end) {
        auto node = DecodeRequest(t, c, false);
        const std::string where = "node " + std::to_string(i + 1) + ": ";
        if (!node.ok()) return Status(node.status().kind(), where + node.status().message());
        switch (node->op) {
          case Op::kHello: case Op::kDevices: case Op::kStats: case Op::kUpload: case Op::kDownload: case Op::kFree:
          case Op::kBusy: case Op::kProgram: case Op::kAlloc: case Op::kWrite: case Op::kRead:
            return Status::BadArg(where + ":" + std::string(OpName(node->op)) + " cannot be part of a program");
          default:
            break;
        }
        // Node i reads earlier values only: the inputs and nodes before it.
        const uint64_t earlier = prog->inputs.size() + i;
        for (uint64_t id : Operands(*node)) {
          if (id < 1 || id > earlier) {
            return Status::BadArg("node " + std::to_string(i + 1) + " (" + NodeLabel(*node) + "): value " +
                                  std::to_string(id) + " is not an earlier value (1.." + std::to_string(earlier) + ")");
          }
        }
        prog->nodes.push_back(std::move(*node));
      }
      c = outs + 1;
      for (uint32_t i = 0; i < t[outs].count; ++i, c = t[c].end) {
        if (t[c].kind != TermKind::kTuple || t[c].count != 2 || t[t.Child(c, 0)].kind != TermKind::kInteger ||
            (!t.IsAtom(t.Child(c, 1), "keep") && !t.IsAtom(t.Child(c, 1), "return"))) {
          return Status::BadArg("output " + std::to_string(i + 1) + " must be {value_id, :keep | :return}");
        }
        int64_t id = t[t.Child(c, 0)].integer;
        const uint64_t n_values = prog->inputs.size() + prog->nodes.size();
        if (id < 1 || static_cast<uint64_t>(id) > n_values) {
          return Status::BadArg("output " + std::to_string(i + 1) + ": value " + std::to_string(id) +
                                " does not exist (the program has " + std::to_string(n_values) + ")");
        }
        prog->outputs.emplace_back(static_cast<uint64_t>(id), t.IsAtom(t.Child(c, 1), "keep"));
      }
      if (term.count == 5) {
        uint32_t opts = t.Child(n, 4);
        if (t[opts].kind != TermKind::kMap) return Status::BadArg("a program's opts must be a map");
        uint32_t k = opts + 1;
        for (uint32_t i = 0; i < t[opts].count; i += 2) {
          uint32_t v = t[k].end;
          if (t.IsAtom(k, "device")) {
            if (t.IsAtom(v, "auto") || t.IsAtom(v, "cpu") || t.IsAtom(v, "opencl")) {
              prog->placement = t.IsAtom(v, "cpu") ? Placement::kCpu
                                : t.IsAtom(v, "opencl") ? Placement::kOpenCl : Placement::kAuto;
            } else {
              return Status::BadArg("device must be :auto, :cpu or :opencl");
            }
          } else {
            return Status::BadArg("unknown program option");
          }
          k = t[v].end;
        }
      }
      r.program = std::move(prog);
      return r;
    }
    case Op::kBusy: {
      if (bare) return Status::BadArg("busy takes {:busy, milliseconds}");
      MURE_RETURN_IF_ERROR(Arity(term, 2, name, "{:busy, milliseconds}"));
      uint32_t ms = t.Child(n, 1);
      if (t[ms].kind != TermKind::kInteger || t[ms].integer < 0 || t[ms].integer > 600000) {
        return Status::BadArg("busy takes milliseconds in 0..600000");
      }
      r.ms = static_cast<uint64_t>(t[ms].integer);
      return r;
    }
  }
  return Status::Internal("unhandled op");
}

}  // namespace mure::proto
