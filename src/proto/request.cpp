// mure — decoding a request: {:on, device, request}, then the decoder table's row for the
// request's {atom, arity} (this file's rows for the requests that are not compute ops, and
// proto/decode_ops.cpp's for the compute ops), and programs, whose nodes decode the same way.
#include "proto/request.h"

#include <array>
#include <utility>

#include "proto/decode_util.h"

namespace mure::proto {
namespace {

constexpr uint32_t kMaxProgramNodes = 10000;
constexpr uint32_t kMaxProgramInputs = 1024;
/// How deep while/if regions may nest inside one another.
constexpr int kMaxControlDepth = 8;

/// What is left of a program's node limit: every node of every region counts against it.
struct NodeBudget {
  uint32_t left = kMaxProgramNodes;
};

Result<Body> DecodeNoArgs(const Args& a) {
  if (a.name == "hello") return Body(Hello{});
  if (a.name == "devices") return Body(Devices{});
  return Body(Stats{});
}

Result<Body> DecodeUpload(const Args& a) {
  const TermTree& t = a.t;
  auto type = DecodeType(t, a.Arg(1));
  if (!type.ok()) return type.status();
  auto shape = DecodeShape(t, a.Arg(2));
  if (!shape.ok()) return shape.status();
  uint32_t data = a.Arg(3);
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
  return Body(Upload{*type, std::move(*shape), *bytes, t[data].data});
}

Result<Body> DecodeHandleOp(const Args& a) {  // download, free
  auto h = DecodeHandle(a.t, a.Arg(1), "the handle");
  if (!h.ok()) return h.status();
  if (a.name == "download") return Body(Download{*h});
  return Body(Free{*h});
}

Result<Body> DecodeBusy(const Args& a) {
  uint32_t ms = a.Arg(1);
  if (a.t[ms].kind != TermKind::kInteger || a.t[ms].integer < 0 || a.t[ms].integer > 600000) {
    return Status::BadArg("busy takes milliseconds in 0..600000");
  }
  return Body(Busy{static_cast<uint64_t>(a.t[ms].integer)});
}

Result<Body> DecodeAlloc(const Args& a) {
  auto type = DecodeType(a.t, a.Arg(1));
  if (!type.ok()) return type.status();
  auto shape = DecodeShape(a.t, a.Arg(2));
  if (!shape.ok()) return shape.status();
  return Body(Alloc{*type, std::move(*shape)});
}

Result<Body> DecodeRange(const Args& a) {  // write, read
  const TermTree& t = a.t;
  auto h = DecodeHandle(t, a.Arg(1), "the handle");
  if (!h.ok()) return h.status();
  auto off = DecodeInt(t, a.Arg(2), "the byte offset");
  if (!off.ok()) return off.status();
  if (*off < 0) return Status(ErrorKind::kOutOfRange, "the byte offset must be >= 0");
  uint32_t last = a.Arg(3);
  if (a.name == "write") {
    if (t[last].kind != TermKind::kBinary) return Status::BadArg("write's data must be a binary");
    return Body(Write{*h, static_cast<uint64_t>(*off), t[last].data});
  }
  auto len = DecodeInt(t, last, "the byte length");
  if (!len.ok()) return len.status();
  if (*len < 0) return Status(ErrorKind::kOutOfRange, "the byte length must be >= 0");
  return Body(Read{*h, static_cast<uint64_t>(*off), static_cast<uint64_t>(*len)});
}

Result<Body> DecodeGive(const Args& a) {
  auto h = DecodeHandle(a.t, a.Arg(1), "the handle");
  if (!h.ok()) return h.status();
  uint32_t pid = a.Arg(2);
  if (a.t[pid].kind != TermKind::kPid) {
    return Status::BadArg("give's new owner must be a pid, got " + KindName(a.t[pid].kind));
  }
  return Body(Give{*h, a.t[pid].raw, a.t[pid].node});
}

/// A segment id (a positive integer) at argument `i`.
Result<uint64_t> DecodeSegment(const Args& a, uint32_t i) {
  uint32_t seg = a.Arg(i);
  if (a.t[seg].kind != TermKind::kInteger || a.t[seg].integer <= 0) {
    return Status::BadArg(std::string(a.name) + ": the segment must be an id from shm_alloc or shm_download (a "
                          "positive integer), got " + KindName(a.t[seg].kind));
  }
  return static_cast<uint64_t>(a.t[seg].integer);
}

Result<Body> DecodeShm(const Args& a) {  // shm_alloc, shm_upload, shm_download, shm_free
  if (a.name == "shm_download") {
    auto h = DecodeHandle(a.t, a.Arg(1), "the handle");
    if (!h.ok()) return h.status();
    if (a.t[a.n].count < 3) return Body(ShmDownload{*h});
    auto into = DecodeSegment(a, 2);
    if (!into.ok()) return into.status();
    return Body(ShmDownload{*h, *into});
  }
  if (a.name == "shm_alloc") {
    auto n = DecodeInt(a.t, a.Arg(1), "the byte size");
    if (!n.ok()) return n.status();
    if (*n < 1) return Status(ErrorKind::kOutOfRange, "a shared segment holds at least 1 byte");
    bool reuse = false;
    if (a.t[a.n].count >= 3) {
      uint32_t r = a.Arg(2);
      if (!a.t.IsAtom(r, "reuse")) {
        return Status::BadArg("shm_alloc's third element must be the atom reuse, got " + KindName(a.t[r].kind));
      }
      reuse = true;
    }
    return Body(ShmAlloc{static_cast<uint64_t>(*n), reuse});
  }
  auto seg = DecodeSegment(a, 1);
  if (!seg.ok()) return seg.status();
  const uint64_t id = *seg;
  if (a.name == "shm_free") return Body(ShmFree{id});
  auto type = DecodeType(a.t, a.Arg(2));
  if (!type.ok()) return type.status();
  auto shape = DecodeShape(a.t, a.Arg(3));
  if (!shape.ok()) return shape.status();
  auto bytes = ByteSize(*type, *shape);
  if (!bytes.ok()) return bytes.status();
  return Body(ShmUpload{id, *type, std::move(*shape)});
}

Result<Body> DecodeProgram(const Args& a);

Result<Body> DecodeControlAlone(const Args& a) {
  return Status::BadArg(":" + std::string(a.name) +
                        " is a node of a program, not a request: send it inside {:program, inputs, nodes, outputs}");
}

constexpr Decoder kRequestDecoders[] = {
    {"hello", 0, DecodeNoArgs, "", Usage::kNoArgs},
    {"hello", 1, DecodeNoArgs, "", Usage::kNoArgs},
    {"devices", 0, DecodeNoArgs, "", Usage::kNoArgs},
    {"devices", 1, DecodeNoArgs, "", Usage::kNoArgs},
    {"stats", 0, DecodeNoArgs, "", Usage::kNoArgs},
    {"stats", 1, DecodeNoArgs, "", Usage::kNoArgs},
    {"upload", 4, DecodeUpload, "{:upload, type, shape, binary}", Usage::kCount},
    {"download", 2, DecodeHandleOp, "{:download, handle}", Usage::kCount},
    {"free", 2, DecodeHandleOp, "{:free, handle}", Usage::kCount},
    {"busy", 2, DecodeBusy, "{:busy, milliseconds}", Usage::kCount, true},
    {"program", 4, DecodeProgram, "{:program, inputs, nodes, outputs} or {:program, inputs, nodes, outputs, opts}",
     Usage::kPlain},
    {"program", 5, DecodeProgram, "{:program, inputs, nodes, outputs} or {:program, inputs, nodes, outputs, opts}",
     Usage::kPlain},
    {"alloc", 3, DecodeAlloc, "{:alloc, type, shape}", Usage::kPlain},
    {"write", 4, DecodeRange, "{:write, h, byte_offset, binary}", Usage::kPlain},
    {"read", 4, DecodeRange, "{:read, h, byte_offset, byte_length}", Usage::kPlain},
    {"give", 3, DecodeGive, "{:give, handle, pid}", Usage::kCount},
    {"shm_alloc", 2, DecodeShm, "{:shm_alloc, bytes} or {:shm_alloc, bytes, :reuse}", Usage::kCount},
    {"shm_alloc", 3, DecodeShm, "{:shm_alloc, bytes} or {:shm_alloc, bytes, :reuse}", Usage::kCount},
    {"shm_upload", 4, DecodeShm, "{:shm_upload, segment, type, shape}", Usage::kCount},
    {"shm_download", 2, DecodeShm, "{:shm_download, handle} or {:shm_download, handle, segment}", Usage::kCount},
    {"shm_download", 3, DecodeShm, "{:shm_download, handle} or {:shm_download, handle, segment}", Usage::kCount},
    {"shm_free", 2, DecodeShm, "{:shm_free, segment}", Usage::kCount},
    {"while", 6, DecodeControlAlone,
     "{:while, inits, invariants, {cond_nodes, pred_id}, {body_nodes, out_ids}, max_iterations} (inside a program)",
     Usage::kPlain},
    {"if", 5, DecodeControlAlone,
     "{:if, pred_id, captured, {then_nodes, then_out_ids}, {else_nodes, else_out_ids}} (inside a program)",
     Usage::kPlain},
};

/// The request's row: by atom and arity. `known` tells whether any row has the atom.
const Decoder* FindDecoder(std::string_view atom, uint32_t arity, bool test_ops, const Decoder** known) {
  *known = nullptr;
  for (std::span<const Decoder> table : {std::span<const Decoder>(kRequestDecoders), NodeDecoders()}) {
    for (const Decoder& d : table) {
      if (d.atom != atom || (d.test_only && !test_ops)) continue;
      if (!*known) *known = &d;
      if (d.arity == arity) return &d;
    }
  }
  return nullptr;
}

Status WrongArity(const Decoder& d, bool bare, uint32_t count) {
  if (d.usage == Usage::kNoArgs) return Status::BadArg(":" + std::string(d.atom) + " takes no arguments");
  std::string msg = std::string(d.atom) + " takes " + std::string(d.form);
  if (d.usage == Usage::kCount && !bare) msg += "; got a tuple of " + std::to_string(count) + " elements";
  return Status::BadArg(msg);
}

Result<std::pair<Body, Placement>> DecodePlaced(const TermTree& t, uint32_t n, bool test_ops);

bool IsPlainList(const TermTree& t, uint32_t x) {
  return (t[x].kind == TermKind::kList && !t[x].improper) || t[x].kind == TermKind::kNil;
}

Status DecodeNodes(const TermTree& t, uint32_t list, Program& prog, NodeBudget& budget, int depth);

/// A list of value ids, each in 1..`limit`, at most `max` of them.
Result<std::vector<uint64_t>> DecodeIds(const TermTree& t, uint32_t list, uint64_t limit, uint32_t max,
                                        const std::string& what) {
  std::vector<uint64_t> ids;
  if (t[list].kind == TermKind::kString) {  // the BEAM sends a list of integers below 256 as STRING_EXT
    if (t[list].data.size() > max) return Status::BadArg(what + " holds more than " + std::to_string(max) + " ids");
    for (size_t i = 0; i < t[list].data.size(); ++i) {
      const uint64_t id = static_cast<uint8_t>(t[list].data[i]);
      if (id < 1 || id > limit) {
        return Status::BadArg(what + ": element " + std::to_string(i + 1) + " is not a value id in 1.." +
                              std::to_string(limit));
      }
      ids.push_back(id);
    }
    return ids;
  }
  if (!IsPlainList(t, list)) return Status::BadArg(what + " must be a list of value ids");
  if (t[list].count > max) return Status::BadArg(what + " holds more than " + std::to_string(max) + " ids");
  uint32_t c = list + 1;
  for (uint32_t i = 0; i < t[list].count; ++i, c = t[c].end) {
    if (t[c].kind != TermKind::kInteger || t[c].integer < 1 || static_cast<uint64_t>(t[c].integer) > limit) {
      return Status::BadArg(what + ": element " + std::to_string(i + 1) + " is not a value id in 1.." +
                            std::to_string(limit));
    }
    ids.push_back(static_cast<uint64_t>(t[c].integer));
  }
  return ids;
}

/// A region `{nodes, out}`: a program of its own whose `n_inputs` inputs are handed in by the
/// control node; `out` is one value id (`single`) or a list of them.
Result<ir::Region> DecodeRegion(const TermTree& t, uint32_t n, uint64_t n_inputs, bool single,
                                NodeBudget& budget, int depth, const std::string& what) {
  if (t[n].kind != TermKind::kTuple || t[n].count != 2 || !IsPlainList(t, t.Child(n, 0))) {
    return Status::BadArg(what + " must be {nodes, " + (single ? "value_id" : "[value_id]") + "}");
  }
  auto prog = std::make_shared<Program>();
  prog->inputs.resize(n_inputs);  // described by the control node when planned
  if (Status st = DecodeNodes(t, t.Child(n, 0), *prog, budget, depth); !st.ok()) {
    return Status(st.kind(), what + " " + st.message());
  }
  const uint64_t n_values = n_inputs + prog->nodes.size();
  const uint32_t out = t.Child(n, 1);
  if (single) {
    if (t[out].kind != TermKind::kInteger || t[out].integer < 1 || static_cast<uint64_t>(t[out].integer) > n_values) {
      return Status::BadArg(what + ": the predicate must be a value id in 1.." + std::to_string(n_values));
    }
    prog->outputs.emplace_back(static_cast<uint64_t>(t[out].integer), false);
  } else {
    auto ids = DecodeIds(t, out, n_values, kMaxProgramInputs, what + " outputs");
    if (!ids.ok()) return ids.status();
    for (uint64_t id : *ids) prog->outputs.emplace_back(id, false);
  }
  return ir::Region(std::move(prog));
}

/// {:while, ...} or {:if, ...} as node of a program whose nodes before it give `earlier` values.
Result<ir::Node> DecodeControl(const TermTree& t, uint32_t n, uint64_t earlier, NodeBudget& budget, int depth) {
  if (depth + 1 > kMaxControlDepth) {
    return Status::BadArg("while and if nest at most " + std::to_string(kMaxControlDepth) + " deep");
  }
  if (t.IsAtom(n + 1, "while")) {
    if (t[n].count != 6) {
      return Status::BadArg("while takes {:while, inits, invariants, {cond_nodes, pred_id}, {body_nodes, out_ids}, "
                            "max_iterations}");
    }
    ir::While w;
    auto inits = DecodeIds(t, t.Child(n, 1), earlier, kMaxProgramInputs / 2, "the inits");
    if (!inits.ok()) return inits.status();
    if (inits->empty()) return Status::BadArg("a while needs at least one init value (its state)");
    auto inv = DecodeIds(t, t.Child(n, 2), earlier, kMaxProgramInputs / 2, "the invariants");
    if (!inv.ok()) return inv.status();
    w.inits = std::move(*inits);
    w.invariants = std::move(*inv);
    const uint64_t n_in = w.inits.size() + w.invariants.size();
    auto cond = DecodeRegion(t, t.Child(n, 3), n_in, true, budget, depth + 1, "cond");
    if (!cond.ok()) return cond.status();
    auto body = DecodeRegion(t, t.Child(n, 4), n_in, false, budget, depth + 1, "body");
    if (!body.ok()) return body.status();
    if ((*body)->outputs.size() != w.inits.size()) {
      return Status::BadArg("body gives " + std::to_string((*body)->outputs.size()) + " outputs for a state of " +
                            std::to_string(w.inits.size()));
    }
    const uint32_t max = t.Child(n, 5);
    if (t[max].kind != TermKind::kInteger || t[max].integer < 1) {
      return Status::BadArg("max_iterations must be a positive integer");
    }
    w.cond = std::move(*cond);
    w.body = std::move(*body);
    w.max_iterations = static_cast<uint64_t>(t[max].integer);
    return ir::Node(std::move(w));
  }
  if (t[n].count != 5) {
    return Status::BadArg("if takes {:if, pred_id, captured, {then_nodes, then_out_ids}, {else_nodes, else_out_ids}}");
  }
  ir::If f;
  const uint32_t pred = t.Child(n, 1);
  if (t[pred].kind != TermKind::kInteger || t[pred].integer < 1 || static_cast<uint64_t>(t[pred].integer) > earlier) {
    return Status::BadArg("the predicate must be a value id in 1.." + std::to_string(earlier));
  }
  f.pred = static_cast<uint64_t>(t[pred].integer);
  auto cap = DecodeIds(t, t.Child(n, 2), earlier, kMaxProgramInputs, "the captured values");
  if (!cap.ok()) return cap.status();
  f.captured = std::move(*cap);
  auto then_r = DecodeRegion(t, t.Child(n, 3), f.captured.size(), false, budget, depth + 1, "then");
  if (!then_r.ok()) return then_r.status();
  auto else_r = DecodeRegion(t, t.Child(n, 4), f.captured.size(), false, budget, depth + 1, "else");
  if (!else_r.ok()) return else_r.status();
  if ((*then_r)->outputs.size() != (*else_r)->outputs.size() || (*then_r)->outputs.empty()) {
    return Status::BadArg("then gives " + std::to_string((*then_r)->outputs.size()) + " outputs and else " +
                          std::to_string((*else_r)->outputs.size()) + ": both must give the same number (at least 1)");
  }
  f.then_branch = std::move(*then_r);
  f.else_branch = std::move(*else_r);
  return ir::Node(std::move(f));
}

/// The nodes of `list` into `prog` (whose inputs are set): each reads earlier values only.
Status DecodeNodes(const TermTree& t, uint32_t list, Program& prog, NodeBudget& budget, int depth) {
  uint32_t c = list + 1;
  for (uint32_t i = 0; i < t[list].count; ++i, c = t[c].end) {
    const std::string where = "node " + std::to_string(i + 1);
    if (budget.left == 0) {
      return Status::BadArg(where + ": a program holds at most " + std::to_string(kMaxProgramNodes) +
                            " nodes, those of its while and if regions included");
    }
    --budget.left;
    const uint64_t earlier = prog.inputs.size() + i;
    if (t[c].kind == TermKind::kTuple && t[c].count > 0 && (t.IsAtom(c + 1, "while") || t.IsAtom(c + 1, "if"))) {
      auto node = DecodeControl(t, c, earlier, budget, depth);
      if (!node.ok()) {
        return Status(node.status().kind(),
                      where + " (:" + std::string(t[c + 1].data) + "): " + node.status().message());
      }
      prog.nodes.push_back(ProgramNode{std::move(*node), Placement::kAuto});
      continue;
    }
    auto placed = DecodePlaced(t, c, false);
    if (!placed.ok()) return Status(placed.status().kind(), where + ": " + placed.status().message());
    ir::Node* node = std::get_if<ir::Node>(&placed->first);
    if (!node) {
      return Status::BadArg(where + ": :" + std::string(OpName(placed->first)) + " cannot be part of a program");
    }
    // Node i reads earlier values only: the inputs and nodes before it.
    for (uint64_t id : ir::Operands(*node)) {
      if (id < 1 || id > earlier) {
        return Status::BadArg(where + " (" + ir::Label(*node) + "): value " + std::to_string(id) +
                              " is not an earlier value (1.." + std::to_string(earlier) + ")");
      }
    }
    prog.nodes.push_back(ProgramNode{std::move(*node), placed->second});
  }
  return Status::Ok();
}

Result<Body> DecodeProgram(const Args& a) {
  const TermTree& t = a.t;
  auto prog = std::make_shared<Program>();
  uint32_t ins = a.Arg(1), nodes = a.Arg(2), outs = a.Arg(3);
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
  NodeBudget budget;
  MURE_RETURN_IF_ERROR(DecodeNodes(t, nodes, *prog, budget, 0));
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
  if (t[a.n].count == 5) {
    uint32_t opts = a.Arg(4);
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
  return Body(RunProgram{std::move(prog)});
}

Result<std::pair<Body, Placement>> DecodePlaced(const TermTree& t, uint32_t n, bool test_ops) {
  const Term& term = t[n];
  if (term.kind == TermKind::kTuple && term.count == 3 && t.IsAtom(n + 1, "on")) {
    uint32_t dev = t.Child(n, 1), inner = t.Child(n, 2);
    if (!t.IsAtom(dev, "cpu") && !t.IsAtom(dev, "opencl") && !t.IsAtom(dev, "auto")) {
      return Status::BadArg("{:on, device, request}: device must be :cpu, :opencl or :auto");
    }
    if (t[inner].kind == TermKind::kTuple && t[inner].count > 0 && t.IsAtom(inner + 1, "on")) {
      return Status::BadArg("{:on, device, request} cannot be nested");
    }
    auto r = DecodePlaced(t, inner, test_ops);
    if (!r.ok()) return r;
    r->second = t.IsAtom(dev, "cpu") ? Placement::kCpu : t.IsAtom(dev, "opencl") ? Placement::kOpenCl
                                                                                 : Placement::kAuto;
    return r;
  }
  std::string_view name;
  const bool bare = term.kind == TermKind::kAtom;
  if (bare) {
    name = term.data;
  } else if (term.kind == TermKind::kTuple && term.count > 0 && t[n + 1].kind == TermKind::kAtom) {
    name = t[n + 1].data;
  } else {
    return Status::BadArg("a request must be an atom or a tuple starting with an op atom, got " + KindName(term.kind));
  }
  const Decoder* known = nullptr;
  const Decoder* d = FindDecoder(name, bare ? 0 : term.count, test_ops, &known);
  if (!known) {
    return Status(ErrorKind::kUnknownOp, "unknown op :" + std::string(name.substr(0, 64)) + "; this node knows " +
                                             std::string(AllOpNames()));
  }
  if (!d) return WrongArity(*known, bare, term.count);
  auto body = d->decode(Args{t, n, name});
  if (!body.ok()) return body.status();
  return std::pair<Body, Placement>(std::move(*body), Placement::kAuto);
}

}  // namespace

std::string_view OpName(const Body& body) {
  static constexpr std::array<std::string_view, std::variant_size_v<Body>> kNames = {
      "", "hello", "devices", "stats", "upload", "download", "free", "busy", "alloc", "write", "read", "program", "give",
      "shm_alloc", "shm_upload", "shm_download", "shm_free"};
  if (auto* node = std::get_if<ir::Node>(&body)) return ir::AtomName(*node);
  return kNames[body.index()];
}

std::string_view AllOpNames() {
  return "hello devices stats upload download free matmul add multiply unary binary reduce as_type bitcast reshape "
         "transpose slice take iota eye full random_uniform random_normal select clip broadcast reverse pad "
         "concatenate stack put_slice gather sort argsort dot outer fft ifft "
         "lu qr cholesky eigh svd triangular_solve solve determinant elem "
         "window window_scatter indexed cumulative dynamic_slice dynamic_put_slice program alloc write read give "
         "shm_alloc shm_upload shm_download shm_free while if";
}

Result<Request> DecodeRequest(const TermTree& t, uint32_t n, bool test_ops) {
  auto placed = DecodePlaced(t, n, test_ops);
  if (!placed.ok()) return placed.status();
  return Request{std::move(placed->first), placed->second};
}

}  // namespace mure::proto
