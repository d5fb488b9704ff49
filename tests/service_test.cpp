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
  TensorStore store{1ull << 30};
  std::unique_ptr<BlisExecutor> blis;
  std::unique_ptr<Service> service;
  std::shared_ptr<WaitSink> sink = std::make_shared<WaitSink>();
  RequestContext ctx;
  Fixture() {
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
