// libFuzzer target: whole programs, with the OpenCL device on.
//
// Each input is read as a small byte code (Builder below) that describes a program: data inputs of
// a few types and shapes (empty and size-1 dims among them), up to eight nodes (unary, binary,
// reduce, select, as_type, reshape, dynamic_slice, elem, and while and if nodes whose regions hold
// nodes of the same kinds, two deep; each on :auto, :cpu or :opencl), outputs to keep or return,
// and the program's device. Value ids come from the input too, so they are sometimes out of range
// (a later value, 99, 2^40). The program is encoded as the term a client sends,
// {:program, inputs, nodes, outputs, %{device: d}}, wrapped in a request envelope and a SEND
// frame, and goes through the connection's own dispatch (mure::Dispatch, dist/dispatch.cpp):
//   proto::ParseExternal -> proto::ReadEnvelope -> proto::DecodeRequest -> mure::Service::Handle
// against a real Service with the BLIS executor AND the OpenCL device (PoCL on the CPU), so that
// validation, fusion planning, the fused-kernel generator, the per-op kernels of both executors and
// the reply's encoding all run. Every decoded program is also planned again, pure (PlanProgram,
// fusion on), with one of its ids replaced by an input-chosen one: the planner must refuse what
// the decoder would have refused, without touching memory outside the program.
//
// Checks besides the sanitizers: exactly one reply per request, and an empty store once the
// connection is closed (fuzz_common.h). Compiling kernels dominates the time of a new input, so
// the op alphabet is small: the kernels of a run are compiled once each and then cached.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "dist/dispatch.h"
#include "exec/cpu_executor.h"
#include "exec/opencl_device.h"
#include "exec/opencl_executor.h"
#include "fuzz_common.h"
#include "proto/request.h"
#include "proto/term.h"
#include "sched/program.h"
#include "sched/service.h"

using namespace mure;
using namespace mure::proto;

namespace {

/// Reads the input a byte at a time; zeros once it is used up.
struct Bytes {
  const uint8_t* p;
  size_t n;
  uint8_t Next() {
    if (!n) return 0;
    --n;
    return *p++;
  }
};

constexpr const char* kUnary[] = {"exp", "negate", "sigmoid", "abs", "sqrt", "log", "tanh", "floor", "is_nan", "bitwise_not"};
constexpr const char* kBinary[] = {"add", "multiply", "subtract", "divide", "max", "less", "pow", "bitwise_and"};
constexpr const char* kReduce[] = {"sum", "reduce_max", "argmax", "product", "any"};
constexpr const char* kTypes[][2] = {{"f", "32"}, {"f", "32"}, {"u", "8"}, {"s", "32"}, {"f", "16"}};
const std::vector<std::vector<uint64_t>> kShapes = {{}, {4}, {2, 3}, {3, 2}, {0, 3}, {2, 0}, {1, 3}, {2, 3}};

/// A value id from a byte: mostly a value of the program (1..n), sometimes the next ones, 0, 99
/// or 2^40.
uint64_t PickId(uint8_t b, uint64_t n) {
  switch (b) {
    case 0xff: return uint64_t{1} << 40;
    case 0xfe: return 99;
    case 0xfd: return 0;
    default: return b % (n + 2) + 1;
  }
}

void WriteType(TermWriter& w, uint8_t b) {
  const auto& t = kTypes[b % 5];
  w.Tuple(2).Atom(t[0]).Int(std::stoi(t[1]));
}

void WriteIds(TermWriter& w, const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) w.UInt(id);
}

/// Writes a list of up to `max_nodes` nodes after `n_before` values (a program's inputs, or a
/// region's state, invariants or captured values) and returns how many it wrote. `depth` counts
/// the regions around it: while and if nodes nest two deep, with regions of up to three nodes.
uint64_t WriteNodes(TermWriter& w, Bytes& in, uint64_t n_before, uint8_t max_nodes, int depth) {
  const uint8_t n_nodes = in.Next() % (max_nodes + 1);
  w.List(n_nodes);
  for (uint8_t i = 0; i < n_nodes; ++i) {
    const uint64_t n_values = n_before + i;
    const uint8_t kind = in.Next(), where = in.Next();
    if (where % 4 == 1) w.Tuple(3).Atom("on").Atom("cpu");
    if (where % 4 == 2) w.Tuple(3).Atom("on").Atom("opencl");
    const uint64_t a = PickId(in.Next(), n_values), b = PickId(in.Next(), n_values);
    switch (kind % 12) {
      case 0: case 1: case 2:
        w.Tuple(3).Atom("unary").Atom(kUnary[in.Next() % 10]);
        WriteIds(w, {a});
        break;
      case 3: case 4:
        w.Tuple(4).Atom("binary").Atom(kBinary[in.Next() % 8]);
        WriteIds(w, {a, b});
        break;
      case 5: {
        const uint8_t r = in.Next();
        w.Tuple(5).Atom("reduce").Atom(kReduce[r % 5]);
        WriteIds(w, {a});
        if (r & 0x10) {
          w.Atom("all");
        } else {
          w.List(1).Int(static_cast<int8_t>(in.Next()) % 3).Nil();
        }
        w.Bool(r & 0x20);
        break;
      }
      case 6:
        w.Tuple(4).Atom("select");
        WriteIds(w, {a, b, PickId(in.Next(), n_values)});
        break;
      case 7:
        if (in.Next() & 1) {
          w.Tuple(3).Atom("as_type");
          WriteIds(w, {a});
          WriteType(w, in.Next());
        } else {
          w.Tuple(3).Atom("reshape");
          WriteIds(w, {a});
          const std::vector<uint64_t>& shape = kShapes[in.Next() % kShapes.size()];
          w.Tuple(static_cast<uint32_t>(shape.size()));
          for (uint64_t d : shape) w.UInt(d);
        }
        break;
      case 8: {  // {while, Inits, Invariants, {CondNodes, PredId}, {BodyNodes, OutIds}, Max}
        if (depth >= 2) {
          w.Tuple(3).Atom("elem");
          WriteIds(w, {a});
          w.Int(in.Next() % 3);
          break;
        }
        const uint8_t shape = in.Next();
        const uint64_t k = 1 + shape % 2, m = shape / 2 % 2;
        w.Tuple(6).Atom("while").List(static_cast<uint32_t>(k));
        if (k == 2) WriteIds(w, {a, b}); else WriteIds(w, {a});
        w.Nil();
        if (m) {
          w.List(1);
          WriteIds(w, {PickId(in.Next(), n_values)});
        }
        w.Nil();
        w.Tuple(2);
        const uint64_t cond = WriteNodes(w, in, k + m, 3, depth + 1);
        w.UInt(PickId(in.Next(), k + m + cond));
        w.Tuple(2);
        const uint64_t body = WriteNodes(w, in, k + m, 3, depth + 1);
        w.List(static_cast<uint32_t>(k));
        for (uint64_t j = 0; j < k; ++j) w.UInt(PickId(in.Next(), k + m + body));
        w.Nil();
        // Small bounds, so that a loop whose condition always holds ends quickly (out_of_range).
        const uint8_t max = in.Next();
        w.UInt(max == 0xff ? uint64_t{1} << 40 : max % 9);
        break;
      }
      case 9: {  // {if, PredId, Captured, {ThenNodes, ThenOutIds}, {ElseNodes, ElseOutIds}}
        if (depth >= 2) {
          w.Tuple(3).Atom("elem");
          WriteIds(w, {a});
          w.Int(in.Next() % 3);
          break;
        }
        const uint64_t captured = 1 + in.Next() % 2, outs = 1 + in.Next() % 2;
        w.Tuple(5).Atom("if").UInt(a).List(static_cast<uint32_t>(captured));
        for (uint64_t j = 0; j < captured; ++j) w.UInt(j == 0 ? b : PickId(in.Next(), n_values));
        w.Nil();
        for (int branch = 0; branch < 2; ++branch) {
          w.Tuple(2);
          const uint64_t nodes = WriteNodes(w, in, captured, 3, depth + 1);
          w.List(static_cast<uint32_t>(outs));
          for (uint64_t j = 0; j < outs; ++j) w.UInt(PickId(in.Next(), captured + nodes));
          w.Nil();
        }
        break;
      }
      case 10:  // a part of a while's or an if's tuple value
        w.Tuple(3).Atom("elem");
        WriteIds(w, {a});
        w.Int(in.Next() % 3);
        break;
      case 11: {  // {dynamic_slice, X, [Start...], Lengths, Strides}: starts are scalar tensors
        const uint8_t rank = in.Next() % 3;
        w.Tuple(5).Atom("dynamic_slice").UInt(a).List(rank);
        for (uint8_t j = 0; j < rank; ++j) w.UInt(j == 0 ? b : PickId(in.Next(), n_values));
        w.Nil();
        for (int part = 0; part < 2; ++part) {
          w.List(rank);
          for (uint8_t j = 0; j < rank; ++j) w.Int(static_cast<int8_t>(in.Next()) % 4);
          w.Nil();
        }
        break;
      }
    }
  }
  w.Nil();
  return n_nodes;
}

/// The request term (with version byte) the input describes.
std::string BuildProgram(Bytes& in) {
  std::string out;
  TermWriter w(out);
  w.Version().Tuple(5).Atom("program");
  const uint8_t n_inputs = 1 + in.Next() % 3;
  w.List(n_inputs);
  for (uint8_t i = 0; i < n_inputs; ++i) {
    const uint8_t tb = in.Next(), sb = in.Next();
    const auto& t = kTypes[tb % 5];
    const std::vector<uint64_t>& shape = kShapes[sb % kShapes.size()];
    uint64_t elements = 1;
    for (uint64_t d : shape) elements *= d;
    std::string data(elements * static_cast<uint64_t>(std::stoi(t[1])) / 8, '\0');
    for (char& c : data) c = static_cast<char>(in.Next());
    w.Tuple(4).Atom("data");
    WriteType(w, tb);
    w.Tuple(static_cast<uint32_t>(shape.size()));
    for (uint64_t d : shape) w.UInt(d);
    w.Binary(data);
  }
  w.Nil();
  const uint64_t n_nodes = WriteNodes(w, in, n_inputs, 8, 0);
  const uint8_t n_outputs = 1 + in.Next() % 3;
  w.List(n_outputs);
  for (uint8_t i = 0; i < n_outputs; ++i) {
    const uint8_t b = in.Next();
    w.Tuple(2).UInt(PickId(b, n_inputs + n_nodes)).Atom(in.Next() & 1 ? "keep" : "return");
  }
  w.Nil();
  static constexpr const char* kDevices[] = {"auto", "cpu", "opencl"};
  w.Map(1).Atom("device").Atom(kDevices[in.Next() % 3]);
  return out;
}

struct Harness : fuzz::World {
  Harness() : fuzz::World(/*with_opencl=*/true) { SetLogLevel(LogLevel::kError); }
};

Harness& H() {
  static Harness* h = new Harness;
  return *h;
}

/// Plan `prog` again, pure and with fusion on, after replacing one of its ids with `id`: the
/// planner refuses ids out of range by itself (it must not rely on the decoder).
void PlanMutated(Harness& h, const Program& decoded, uint8_t which, uint64_t id) {
  Program prog = decoded;
  if (prog.outputs.empty()) return;
  if (which & 1 || prog.nodes.empty()) {
    prog.outputs[which / 2 % prog.outputs.size()].first = id;
  } else {
    // The node's first operand, whatever its kind (creation nodes have none).
    std::visit(
        [id](auto& n) {
          if constexpr (requires { n.x; }) n.x = id;
          else if constexpr (requires { n.a; }) n.a = id;
          else if constexpr (requires { n.pred; }) n.pred = id;
          else if constexpr (requires { n.xs; }) n.xs[0] = id;
        },
        prog.nodes[which / 2 % prog.nodes.size()].node);
  }
  std::vector<ValueInfo> inputs;
  for (const ProgramInput& in : prog.inputs) inputs.push_back(ValueInfo{in.type, in.shape});
  CostModel cost;
  static exec::CpuExecutor cpu(h.blis);
  static std::unique_ptr<exec::OpenClDevice> opencl =
      h.opencl ? std::make_unique<exec::OpenClDevice>(*h.opencl) : nullptr;
  ProgramTarget target;
  target.exec = Executors{&cpu, opencl.get(), h.blis != nullptr};
  target.cost = &cost;
  target.fuse = true;
  target.fuse_reductions = true;
  target.max_message = h.cfg.max_message;
  auto plan = PlanProgram(prog, std::move(inputs), target);
  const uint64_t values = prog.inputs.size() + prog.nodes.size();
  if (plan.ok() && (id == 0 || id > values)) {
    std::fprintf(stderr, "fuzz: PlanProgram accepted value id %llu of a program of %llu values\n",
                 static_cast<unsigned long long>(id), static_cast<unsigned long long>(values));
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = H();
  h.ResetStore();
  Bytes in{data, size};
  const uint8_t mutate_which = in.Next(), mutate_id = in.Next();
  std::string term = BuildProgram(in);

  TermTree tree;
  auto end = ParseExternal(term, 0, tree);
  if (!end.ok()) {
    std::fprintf(stderr, "fuzz: the harness built a term the reader refuses: %s\n", end.status().ToString().c_str());
    std::abort();
  }
  auto req = DecodeRequest(tree, 0, false);
  if (req.ok()) {
    const auto* run = std::get_if<RunProgram>(&req->body);
    if (!run) {
      std::fprintf(stderr, "fuzz: a program term decoded to another request\n");
      std::abort();
    }
    PlanMutated(h, *run->program, mutate_which, PickId(mutate_id, run->program->inputs.size() + run->program->nodes.size()));
  }

  // The frame a client's SEND to the node carries: 'p', {2, '', To}, the envelope around the term.
  std::string frame(1, 'p');
  TermWriter(frame).Version().Tuple(3).Int(2).Atom("").Raw(testing::Pid(fuzz::kNodeName, 1));
  frame += testing::EnvelopeBytes([&](TermWriter& w) { w.Raw(std::string_view(term).substr(1)); }, 1,
                                  fuzz::kPeerNode);

  const uint64_t conn = h.store.OpenConnection();
  {
    auto sink = std::make_shared<fuzz::CountingSink>();
    Dispatch dispatch(h.service, h.store, h.cfg, fuzz::kPeerNode, conn, nullptr);
    Status st = frame.size() > h.cfg.max_message ? dispatch.OnOversized(frame, frame.size(), sink)
                                                 : dispatch.OnFrame(frame, sink);
    if (!st.ok() || dispatch.answers() != 1) {
      std::fprintf(stderr, "fuzz: the dispatch took a program's frame for %llu requests (%s)\n",
                   static_cast<unsigned long long>(dispatch.answers()), st.ToString().c_str());
      std::abort();
    }
    fuzz::AwaitOrDie([&] { return sink->frames.load() >= 1; }, std::chrono::seconds(60), "a program got no reply");
    if (sink->frames.load() != 1) {
      std::fprintf(stderr, "fuzz: %llu replies to one program\n", static_cast<unsigned long long>(sink->frames.load()));
      std::abort();
    }
  }
  h.store.CloseConnection(conn);
  h.Settle();
  return 0;
}
