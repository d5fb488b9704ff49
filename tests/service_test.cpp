// The service end to end without sockets: requests decoded from real encodings, answered through
// a capture sink. Programs, transfers in pieces, and the planner's checks.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "proto/request.h"
#include "sched/program.h"
#include "sched/service.h"
#include "test_util.h"

using namespace mure;
using namespace mure::proto;

namespace {

struct WaitSink : ReplySink {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<OutFrame> frames;
  void Send(OutFrame f) override {
    std::lock_guard<std::mutex> lock(mu);
    frames.push_back(std::move(f));
    cv.notify_all();
  }
  OutFrame WaitOne() {
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !frames.empty(); }));
    OutFrame f = std::move(frames.front());
    frames.erase(frames.begin());
    return f;
  }
};

struct Fixture {
  Config cfg;
  TensorStore store;
  std::unique_ptr<BlisExecutor> blis;
  std::unique_ptr<Service> service;
  std::shared_ptr<WaitSink> sink = std::make_shared<WaitSink>();
  RequestContext ctx;
  explicit Fixture(uint64_t memory_limit = 1ull << 30) : store(memory_limit) {
    cfg.blis_arch = "generic";
    blis = std::move(BlisExecutor::Create(cfg).value());
    service = std::make_unique<Service>(cfg, store, blis.get(), nullptr);
    ctx.conn = store.OpenConnection();
    ctx.owner = "owner";
  }
  /// Send one request (the term written by `req`), wait for the reply, return its result term.
  std::string Call(const std::function<void(TermWriter&)>& req, TermTree& reply_tree, uint32_t& result) {
    std::string bytes = mure::testing::EnvelopeBytes(req);
    TermTree t;
    REQUIRE(ParseExternal(bytes, 0, t).ok());
    auto env = ReadEnvelope(t, 0);
    REQUIRE(env);
    auto r = DecodeRequest(t, env->request, false);
    auto reply = std::make_shared<Reply>(sink, env->reply_to, env->ref);
    if (!r.ok()) {
      reply->Error(r.status());
    } else {
      service->Handle(ctx, *r, reply);
    }
    reply.reset();
    OutFrame f = sink->WaitOne();
    std::string frame = f.head;
    if (f.tail_len) frame.append(reinterpret_cast<const char*>(f.tail), f.tail_len);
    std::string_view payload(frame.data() + 4, frame.size() - 4);
    TermTree ctrl;
    auto pos = ParseExternal(payload, 1, ctrl);
    REQUIRE(pos.ok());
    reply_tree.Clear();
    REQUIRE(ParseExternal(payload, *pos, reply_tree).ok());
    result = reply_tree.Child(0, 2);
    return frame;  // keeps the views of reply_tree alive
  }
};

std::string F32(std::initializer_list<float> xs) {
  std::string s;
  for (float x : xs) s.append(reinterpret_cast<const char*>(&x), 4);
  return s;
}

}  // namespace

TEST_CASE("a program runs as one request and returns or keeps its outputs", "[service][program]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  // x {2,3} as data; y = exp(x + row); s = sum(y, axis 1); keep y, return s.
  auto frame = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program");
    w.List(2).Tuple(4).Atom("data").Tuple(2).Atom("f").Int(32).Tuple(2).Int(2).Int(3).Binary(F32({0, 1, 2, 3, 4, 5}));
    w.Tuple(4).Atom("data").Tuple(2).Atom("f").Int(32).Tuple(1).Int(3).Binary(F32({1, 1, 1})).Nil();
    w.List(3).Tuple(4).Atom("binary").Atom("add").Int(1).Int(2);
    w.Tuple(3).Atom("unary").Atom("log").Int(3);
    w.Tuple(5).Atom("reduce").Atom("sum").Int(4).List(1).Int(1).Nil().Atom("false").Nil();
    w.List(2).Tuple(2).Int(4).Atom("keep").Tuple(2).Int(5).Atom("return").Nil();
  }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  uint32_t list = rt.Child(res, 1);
  REQUIRE(rt[list].count == 2);
  uint32_t kept = rt.Child(list, 0), ret = rt.Child(list, 1);
  CHECK(rt[rt.Child(kept, 0)].integer > 0);  // a handle
  std::string_view bytes = rt[rt.Child(ret, 2)].data;
  REQUIRE(bytes.size() == 8);
  float s[2];
  std::memcpy(s, bytes.data(), 8);
  CHECK(s[0] == Approx(std::log(1.f) + std::log(2.f) + std::log(3.f)));
  CHECK(s[1] == Approx(std::log(4.f) + std::log(5.f) + std::log(6.f)));
  CHECK(fx.store.tensors() == 1);  // the kept output; intermediates and data inputs are gone
}

TEST_CASE("a bad program is rejected whole, with one error naming the node", "[service][program][security]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  auto frame = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program");
    w.List(1).Tuple(4).Atom("data").Tuple(2).Atom("s").Int(32).Tuple(1).Int(2).Binary(std::string(8, '\0')).Nil();
    w.List(2).Tuple(3).Atom("unary").Atom("negate").Int(1);
    w.Tuple(4).Atom("binary").Atom("add").Int(2).Int(3).Nil();  // value 3 is itself
    w.List(1).Tuple(2).Int(3).Atom("return").Nil();
  }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "error"));
  uint32_t reason = rt.Child(res, 1);
  CHECK_THAT(std::string(rt[rt.Child(reason, 1)].data), Catch::Contains("node 2"));
  CHECK(fx.store.tensors() == 0);
  // An op that cannot be part of a program, and a shape error deep inside.
  auto f2 = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program").Nil().List(1).Atom("hello").Nil().Nil();
  }, rt, res);
  CHECK(rt.IsAtom(rt.Child(res, 0), "error"));
  auto f3 = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program").Nil();
    w.List(2).Tuple(4).Atom("iota").Tuple(2).Atom("f").Int(32).Tuple(1).Int(3).Atom("nil");
    w.Tuple(4).Atom("binary").Atom("add").Int(1).Int(1).Nil();
    w.List(1).Tuple(2).Int(9).Atom("return").Nil();
  }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "error"));
  CHECK_THAT(std::string(rt[rt.Child(rt.Child(res, 1), 1)].data), Catch::Contains("output 1"));
}

TEST_CASE("a program needing more memory than the node has is refused before it runs", "[service][program][security]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  auto frame = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program").Nil();
    w.List(1).Tuple(4).Atom("full").Tuple(2).Atom("f").Int(64).Tuple(1).Int(1ll << 28).Double(1.0).Nil();
    w.List(1).Tuple(2).Int(1).Atom("keep").Nil();
  }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "error"));
  uint32_t reason = rt.Child(res, 1);
  CHECK(rt.IsAtom(rt.Child(reason, 0), "out_of_memory"));
  CHECK_THAT(std::string(rt[rt.Child(reason, 1)].data), Catch::Contains("peak"));
  CHECK(fx.store.memory_used() == 0);
}

TEST_CASE("alloc, write and read move a tensor in pieces, inside its bounds only", "[service][security]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  auto f1 = fx.Call([](TermWriter& w) { w.Tuple(3).Atom("alloc").Tuple(2).Atom("u").Int(8).Tuple(1).Int(8); }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  const int64_t h = rt[rt.Child(rt.Child(res, 1), 0)].integer;
  auto f2 = fx.Call([&](TermWriter& w) { w.Tuple(4).Atom("write").Int(h).Int(6).Binary("ab"); }, rt, res);
  CHECK(rt[rt.Child(res, 1)].integer == 2);
  auto f3 = fx.Call([&](TermWriter& w) { w.Tuple(4).Atom("write").Int(h).Int(7).Binary("ab"); }, rt, res);
  CHECK(rt.IsAtom(rt.Child(rt.Child(res, 1), 0), "out_of_range"));
  auto f4 = fx.Call([&](TermWriter& w) { w.Tuple(4).Atom("read").Int(h).Int(4).Int(4); }, rt, res);
  CHECK(rt[rt.Child(res, 1)].data == std::string_view("\0\0ab", 4));
  auto f5 = fx.Call([&](TermWriter& w) { w.Tuple(4).Atom("read").Int(h).Int(INT64_MAX).Int(INT64_MAX); }, rt, res);
  CHECK(rt.IsAtom(rt.Child(rt.Child(res, 1), 0), "out_of_range"));
  auto f6 = fx.Call([&](TermWriter& w) { w.Tuple(4).Atom("read").Int(h).Int(-1).Int(1); }, rt, res);
  CHECK(rt.IsAtom(rt.Child(rt.Child(res, 1), 0), "out_of_range"));
}

namespace {

/// A program built as the decoder would build it, but without the decoder's id checks: what
/// PlanProgram sees if a later change forgets them.
proto::ProgramNode Unary(std::string_view name, uint64_t x) {
  return proto::ProgramNode{ir::Unary{name, ir::UnaryFromName(name), x}};
}
proto::ProgramNode Binary(std::string_view name, uint64_t a, uint64_t b) {
  return proto::ProgramNode{ir::Binary{name, ir::BinaryFromName(name), a, b}};
}

ProgramTarget FuseTarget(const CostModel& cost) {
  ProgramTarget t;
  t.cost = &cost;
  t.fuse = true;  // fusion planning runs as with an OpenCL device, and must never see a bad id
  t.fuse_reductions = true;
  t.max_message = 1u << 20;
  return t;
}

}  // namespace

TEST_CASE("PlanProgram refuses ids out of range before any pass reads them", "[program][security]") {
  CostModel cost;
  proto::Program prog;
  prog.inputs.resize(1);
  prog.nodes.push_back(Unary("exp", 1));
  prog.nodes.push_back(Unary("negate", 2));
  const std::vector<ValueInfo> in{ValueInfo{DType::kF32, {4}}};
  for (uint64_t id : {uint64_t{0}, uint64_t{4}, uint64_t{99}, uint64_t{1} << 40, UINT64_MAX}) {
    INFO("output id " << id);
    prog.outputs = {{id, false}};
    auto plan = PlanProgram(prog, in, FuseTarget(cost));
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.status().kind() == ErrorKind::kBadArg);
    CHECK_THAT(plan.status().message(), Catch::Contains("output 1"));
    // An operand that is not an earlier value.
    proto::Program bad = prog;
    bad.outputs = {{3, false}};
    std::get<ir::Unary>(bad.nodes[1].node).x = id == 0 ? 3 : id;
    auto plan2 = PlanProgram(bad, in, FuseTarget(cost));
    REQUIRE_FALSE(plan2.ok());
    CHECK_THAT(plan2.status().message(), Catch::Contains("node 2"));
  }
  prog.outputs = {{3, false}};
  auto good = PlanProgram(prog, in, FuseTarget(cost));
  REQUIRE(good.ok());
  CHECK(good->fusion.groups.size() == 1);  // exp -> negate, one kernel
}

TEST_CASE("PlanProgram tops a fused group with one reduction, never a second", "[program]") {
  // sum(sum(x * y, axes: [1])): the row sum tops the multiply's group; the total runs alone
  // (fused onto the row sum it read a step that does not exist: the digits model's loss was -0.0).
  CostModel cost;
  proto::Program prog;
  prog.inputs.resize(2);
  prog.nodes.push_back(Binary("multiply", 1, 2));  // 3
  prog.nodes.push_back(proto::ProgramNode{ir::Reduce{"sum", ir::ReduceFromName("sum"), 3, {1}, false, false}});  // 4
  prog.nodes.push_back(proto::ProgramNode{ir::Reduce{"sum", ir::ReduceFromName("sum"), 4, {}, true, false}});  // 5
  prog.outputs = {{5, false}};
  const std::vector<ValueInfo> in{ValueInfo{DType::kF32, {4, 3}}, ValueInfo{DType::kF32, {4, 3}}};
  auto plan = PlanProgram(prog, in, FuseTarget(cost));
  REQUIRE(plan.ok());
  REQUIRE(plan->fusion.groups.size() == 1);
  CHECK(plan->fusion.groups.count(1) == 1);  // rooted at the row sum (node index 1)
  CHECK(plan->fusion.root == std::vector<int64_t>{1, 1, -1});
}

TEST_CASE("PlanProgram's peak counts an operand used twice once", "[program]") {
  CostModel cost;
  proto::Program prog;
  prog.inputs.resize(1);
  prog.nodes.push_back(Unary("exp", 1));             // 2
  prog.nodes.push_back(Binary("multiply", 2, 2));    // 3 = 2 * 2: frees 2 (once)
  prog.nodes.push_back(Unary("exp", 1));             // 4
  prog.nodes.push_back(Binary("add", 3, 4));         // 5: 3, 4 and 5 alive at once
  prog.outputs = {{5, true}};
  ProgramTarget target = FuseTarget(cost);
  target.fuse = false;  // every value materialised
  auto plan = PlanProgram(prog, {ValueInfo{DType::kF32, {1000}}}, target);
  REQUIRE(plan.ok());
  CHECK(plan->peak_bytes == 3 * 4000);
}

TEST_CASE("PlanProgram refuses returned outputs that would not fit in one reply", "[program][security]") {
  CostModel cost;
  proto::Program prog;
  prog.inputs.resize(1);
  const std::vector<ValueInfo> in{ValueInfo{DType::kU8, {300000}}};
  prog.outputs.assign(3, {1, false});  // 900,000 bytes back: fits in 1 MiB
  CHECK(PlanProgram(prog, in, FuseTarget(cost)).ok());
  prog.outputs.assign(4, {1, false});  // 1,200,000: does not
  auto plan = PlanProgram(prog, in, FuseTarget(cost));
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.status().kind() == ErrorKind::kMessageTooLarge);
  CHECK_THAT(plan.status().message(), Catch::Contains("Mure.download"));
  prog.outputs.assign(4, {1, true});  // kept outputs do not travel
  CHECK(PlanProgram(prog, in, FuseTarget(cost)).ok());
}

// ---- while and if nodes ----------------------------------------------------------------------

namespace {

/// {:full, {:s, 64}, {}, v}
void FullS64(TermWriter& w, int64_t v) { w.Tuple(4).Atom("full").Tuple(2).Atom("s").Int(64).Tuple(0).Int(v); }
void Bin(TermWriter& w, const char* op, int64_t a, int64_t b) { w.Tuple(4).Atom("binary").Atom(op).Int(a).Int(b); }
void Ids(TermWriter& w, std::initializer_list<int64_t> ids) {
  if (ids.size() == 0) { w.Nil(); return; }
  w.List(static_cast<uint32_t>(ids.size()));
  for (int64_t id : ids) w.Int(id);
  w.Nil();
}

/// The factorial of n as a program: state {acc, n}; while n > 0: acc *= n, n -= 1. Returns acc.
void Factorial(TermWriter& w, int64_t n, int64_t max_iterations) {
  w.Tuple(4).Atom("program").Nil();
  w.List(4);
  FullS64(w, 1);
  FullS64(w, n);
  w.Tuple(6).Atom("while");
  Ids(w, {1, 2});
  w.Nil();
  w.Tuple(2).List(2);
  FullS64(w, 0);
  Bin(w, "greater", 2, 3);
  w.Nil().Int(4);
  w.Tuple(2).List(3);
  Bin(w, "multiply", 1, 2);
  FullS64(w, 1);
  Bin(w, "subtract", 2, 4);
  w.Nil();
  Ids(w, {3, 5});
  w.Int(max_iterations);
  w.Tuple(3).Atom("elem").Int(3).Int(0).Nil();
  w.List(1).Tuple(2).Int(4).Atom("return").Nil();
}

int64_t S64(std::string_view bytes) {
  int64_t v = 0;
  REQUIRE(bytes.size() == 8);
  std::memcpy(&v, bytes.data(), 8);
  return v;
}

std::string ErrorText(const TermTree& rt, uint32_t res) {
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "error"));
  return std::string(rt[rt.Child(rt.Child(res, 1), 1)].data);
}

/// depth nested whiles, each running its inner loop in its body: the innermost body adds 1.
void Nested(TermWriter& w, int depth) {
  // State {x}; cond: x < 1 (runs once); body: the next level, or x + 1.
  w.Tuple(6).Atom("while");
  Ids(w, {1});
  w.Nil();
  w.Tuple(2).List(2);
  FullS64(w, 1);
  Bin(w, "less", 1, 2);
  w.Nil().Int(3);
  if (depth == 1) {
    w.Tuple(2).List(2);
    FullS64(w, 1);
    Bin(w, "add", 1, 2);
    w.Nil();
    Ids(w, {3});
  } else {
    w.Tuple(2).List(2);
    Nested(w, depth - 1);
    w.Tuple(3).Atom("elem").Int(2).Int(0).Nil();
    Ids(w, {3});
  }
  w.Int(10);
}

}  // namespace

TEST_CASE("a while node runs its loop on the node: factorial", "[service][program][control]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  auto frame = fx.Call([](TermWriter& w) { Factorial(w, 10, 100); }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  CHECK(S64(rt[rt.Child(rt.Child(rt.Child(res, 1), 0), 2)].data) == 3628800);
  CHECK(fx.store.memory_used() == 0);
  // Zero iterations: the state as it came in.
  auto f0 = fx.Call([](TermWriter& w) { Factorial(w, 0, 1); }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  CHECK(S64(rt[rt.Child(rt.Child(rt.Child(res, 1), 0), 2)].data) == 1);
}

TEST_CASE("a while past its max_iterations is an error naming the bound", "[service][program][control]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  auto frame = fx.Call([](TermWriter& w) { Factorial(w, 10, 9); }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(rt.Child(res, 1), 0), "out_of_range"));
  CHECK_THAT(ErrorText(rt, res), Catch::Contains("node 3") && Catch::Contains("9 iterations") &&
                                     Catch::Contains("max_iterations"));
  CHECK(fx.store.memory_used() == 0);
  // The node's own cap applies when it is lower, and says so.
  fx.cfg.max_loop_iterations = 4;
  auto f2 = fx.Call([](TermWriter& w) { Factorial(w, 10, 100); }, rt, res);
  CHECK_THAT(ErrorText(rt, res), Catch::Contains("max_loop_iterations = 4"));
  auto f3 = fx.Call([](TermWriter& w) { Factorial(w, 4, 100); }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  CHECK(S64(rt[rt.Child(rt.Child(rt.Child(res, 1), 0), 2)].data) == 24);
}

TEST_CASE("bad while and if nodes are refused before anything runs", "[service][program][control][security]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  SECTION("as a single request") {
    auto f = fx.Call([](TermWriter& w) {
      w.Tuple(6).Atom("while");
      Ids(w, {1});
      w.Nil().Tuple(2).Nil().Int(1).Tuple(2).Nil().Nil().Int(1);
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("node of a program"));
  }
  SECTION("a body output of another type than its state part") {
    auto f = fx.Call([](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(2);
      FullS64(w, 3);
      w.Tuple(6).Atom("while");
      Ids(w, {1});
      w.Nil().Tuple(2).Nil().Int(1);
      w.Tuple(2).List(1).Tuple(3).Atom("as_type").Int(1).Tuple(2).Atom("f").Int(32).Nil();
      Ids(w, {2});
      w.Int(5).Nil();
      w.List(1).Tuple(2).Int(1).Atom("return").Nil();
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("node 2 (:while): body output 1") &&
                                       Catch::Contains("state part 1 is {:s, 64}"));
  }
  SECTION("a predicate that is not an integer scalar, and an error deep in a region") {
    auto f = fx.Call([](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(2);
      w.Tuple(4).Atom("full").Tuple(2).Atom("f").Int(32).Tuple(1).Int(2).Double(1.0);
      w.Tuple(6).Atom("while");
      Ids(w, {1});
      w.Nil().Tuple(2).Nil().Int(1).Tuple(2).Nil();
      Ids(w, {1});
      w.Int(5).Nil();
      w.List(1).Tuple(2).Int(1).Atom("return").Nil();
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("predicate") && Catch::Contains("integer scalar"));
    auto f2 = fx.Call([](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(2);
      FullS64(w, 3);
      w.Tuple(6).Atom("while");
      Ids(w, {1});
      w.Nil().Tuple(2).List(1).Tuple(3).Atom("reshape").Int(1).Tuple(1).Int(2).Nil().Int(2);
      w.Tuple(2).Nil();
      Ids(w, {1});
      w.Int(5).Nil();
      w.List(1).Tuple(2).Int(1).Atom("return").Nil();
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("node 2 (:while): cond node 1 (:reshape): "));
  }
  SECTION("an id of a region outside the region's numbering") {
    auto f = fx.Call([](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(2);
      FullS64(w, 3);
      w.Tuple(6).Atom("while");
      Ids(w, {1});
      w.Nil().Tuple(2).Nil().Int(1).Tuple(2).List(1);
      Bin(w, "add", 1, 2);  // value 2 is the node itself
      w.Nil();
      Ids(w, {2});
      w.Int(5).Nil();
      w.List(1).Tuple(2).Int(1).Atom("return").Nil();
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("node 2 (:while): body node 1 (:binary :add): value 2 is not an earlier"));
  }
  SECTION("nesting deeper than 8") {
    auto f = fx.Call([](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(3);
      FullS64(w, 0);
      Nested(w, 9);
      w.Tuple(3).Atom("elem").Int(2).Int(0).Nil();
      w.List(1).Tuple(2).Int(3).Atom("return").Nil();
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("nest at most 8"));
  }
  SECTION("more than 10000 nodes, those of regions included") {
    auto f = fx.Call([](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(2);
      FullS64(w, 0);
      w.Tuple(6).Atom("while");
      Ids(w, {1});
      w.Nil().Tuple(2).Nil().Int(1).Tuple(2).List(10000);
      for (int i = 0; i < 10000; ++i) FullS64(w, i);
      w.Nil();
      Ids(w, {2});
      w.Int(5).Nil();
      w.List(1).Tuple(2).Int(1).Atom("return").Nil();
    }, rt, res);
    CHECK_THAT(ErrorText(rt, res), Catch::Contains("at most 10000 nodes"));
  }
  CHECK(fx.store.memory_used() == 0);
}

TEST_CASE("whiles nest 8 deep, and if picks its branch", "[service][program][control]") {
  Fixture fx;
  TermTree rt;
  uint32_t res;
  auto frame = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program").Nil().List(3);
    FullS64(w, 0);
    Nested(w, 8);
    w.Tuple(3).Atom("elem").Int(2).Int(0).Nil();
    w.List(1).Tuple(2).Int(3).Atom("return").Nil();
  }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  CHECK(S64(rt[rt.Child(rt.Child(rt.Child(res, 1), 0), 2)].data) == 1);
  for (int64_t p : {0, 7}) {
    // {:if, pred, [a, b], then: a - b, else: a * b}
    auto f = fx.Call([p](TermWriter& w) {
      w.Tuple(4).Atom("program").Nil().List(5);
      FullS64(w, p);
      FullS64(w, 6);
      FullS64(w, 4);
      w.Tuple(5).Atom("if").Int(1);
      Ids(w, {2, 3});
      w.Tuple(2).List(1);
      Bin(w, "subtract", 1, 2);
      w.Nil();
      Ids(w, {3});
      w.Tuple(2).List(1);
      Bin(w, "multiply", 1, 2);
      w.Nil();
      Ids(w, {3});
      w.Tuple(3).Atom("elem").Int(4).Int(0).Nil();
      w.List(1).Tuple(2).Int(5).Atom("return").Nil();
    }, rt, res);
    REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
    CHECK(S64(rt[rt.Child(rt.Child(rt.Child(res, 1), 0), 2)].data) == (p ? 2 : 24));
  }
}

TEST_CASE("a while's memory does not grow with its iterations", "[service][program][control]") {
  // A 256 KiB state updated 2000 times under a 4 MiB limit: 500 MiB if any iteration's values
  // outlived it.
  Fixture fx(4ull << 20);
  TermTree rt;
  uint32_t res;
  auto frame = fx.Call([](TermWriter& w) {
    w.Tuple(4).Atom("program").Nil().List(4);
    w.Tuple(4).Atom("full").Tuple(2).Atom("f").Int(32).Tuple(1).Int(65536).Double(0.0);
    FullS64(w, 0);
    w.Tuple(6).Atom("while");
    Ids(w, {1, 2});
    w.Nil();
    w.Tuple(2).List(2);
    FullS64(w, 2000);
    Bin(w, "less", 2, 3);
    w.Nil().Int(4);
    w.Tuple(2).List(4);
    w.Tuple(4).Atom("full").Tuple(2).Atom("f").Int(32).Tuple(0).Double(0.5);
    Bin(w, "add", 1, 3);
    FullS64(w, 1);
    Bin(w, "add", 2, 5);
    w.Nil();
    Ids(w, {4, 6});
    w.Int(1000000);
    w.Tuple(3).Atom("elem").Int(3).Int(0).Nil();
    w.List(1).Tuple(2).Int(4).Atom("keep").Nil();
  }, rt, res);
  REQUIRE(rt.IsAtom(rt.Child(res, 0), "ok"));
  CHECK(fx.store.memory_used() == 65536 * 4 + 256);  // the kept output (and its handle's bookkeeping) only
  auto t = fx.store.Get(fx.ctx.conn, static_cast<uint64_t>(rt[rt.Child(rt.Child(rt.Child(res, 1), 0), 0)].integer));
  REQUIRE(t.ok());
  float v[2];
  std::memcpy(v, (*t)->data(), 4);
  std::memcpy(v + 1, (*t)->data() + 65535 * 4, 4);
  CHECK(v[0] == 1000.0f);
  CHECK(v[1] == 1000.0f);
}
