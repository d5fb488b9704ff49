// Decoding protocol v1 requests: each op, each error kind, named in the message.
#include <catch2/catch.hpp>

#include <deque>

#include "proto/request.h"
#include "test_util.h"

using namespace mure;
using namespace mure::proto;
using mure::testing::EnvelopeBytes;

namespace {

struct Decoded {
  TermTree tree;
  std::optional<proto::Envelope> env;
  Status check;
  std::optional<Request> req;
  Status status;
};

Decoded Decode(const std::string& bytes, bool test_ops = false) {
  Decoded d;
  auto end = ParseExternal(bytes, 0, d.tree);
  REQUIRE(end.ok());
  d.env = ReadEnvelope(d.tree, 0);
  REQUIRE(d.env);
  d.check = CheckEnvelope(d.tree, 0, *d.env, "client@127.0.0.1");
  auto r = DecodeRequest(d.tree, d.env->request, test_ops);
  if (r.ok()) d.req = r.value(); else d.status = r.status();
  return d;
}

}  // namespace

TEST_CASE("an upload decodes with its checked size and a view of the payload", "[request]") {
  auto d = Decode(EnvelopeBytes([](TermWriter& w) {
    w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(32).Tuple(2).Int(2).Int(3).Binary(std::string(24, 'a'));
  }));
  REQUIRE(d.check.ok());
  REQUIRE(d.req);
  auto* up = std::get_if<Upload>(&d.req->body);
  REQUIRE(up);
  CHECK(up->type == DType::kF32);
  CHECK(up->shape == Shape{2, 3});
  CHECK(up->bytes == 24);
  CHECK(up->data.size() == 24);
}

TEST_CASE("bare and tuple forms of the no-argument ops", "[request]") {
  for (auto name : {"hello", "devices", "stats"}) {
    auto bare = Decode(EnvelopeBytes([&](TermWriter& w) { w.Atom(name); }));
    CHECK(bare.req);
    auto tup = Decode(EnvelopeBytes([&](TermWriter& w) { w.Tuple(1).Atom(name); }));
    REQUIRE(tup.req);
    CHECK(OpName(tup.req->body) == name);
    auto two = Decode(EnvelopeBytes([&](TermWriter& w) { w.Tuple(2).Atom(name).Int(1); }));
    REQUIRE_FALSE(two.req);
    CHECK(two.status.message() == ":" + std::string(name) + " takes no arguments");
  }
}

TEST_CASE("each class of bad request gets its error kind and a message naming the problem", "[request][security]") {
  struct Case {
    const char* what;
    std::function<void(TermWriter&)> req;
    ErrorKind kind;
    const char* says;
  };
  std::vector<Case> cases = {
      {"unknown op", [](TermWriter& w) { w.Tuple(2).Atom("explode").Int(1); }, ErrorKind::kUnknownOp, "explode"},
      {"busy without --test-ops", [](TermWriter& w) { w.Tuple(2).Atom("busy").Int(1); }, ErrorKind::kUnknownOp, "busy"},
      {"wrong arity", [](TermWriter& w) { w.Tuple(2).Atom("matmul").Int(1); }, ErrorKind::kBadArg, "takes"},
      {"request not a tuple", [](TermWriter& w) { w.Int(7); }, ErrorKind::kBadArg, "request must be"},
      {"bad type", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(8).Tuple(0).Binary("");
       }, ErrorKind::kBadType, "{:f, 8}"},
      {"type not a tuple", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Atom("f32").Tuple(0).Binary("");
       }, ErrorKind::kBadType, "type must be"},
      {"negative dim", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("u").Int(8).Tuple(1).Int(-1).Binary("");
       }, ErrorKind::kBadShape, "non-negative"},
      {"17 dims", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("u").Int(8).Tuple(17);
         for (int i = 0; i < 17; ++i) w.Int(1);
         w.Binary("\1");
       }, ErrorKind::kBadShape, "at most 16"},
      {"shape product overflows 64 bits", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("u").Int(8).Tuple(2).Int(1ll << 40).Int(1ll << 40).Binary("");
       }, ErrorKind::kBadShape, "2^64"},
      {"size x itemsize overflows", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(64).Tuple(1).Int(1ll << 62).Binary("");
       }, ErrorKind::kBadShape, "2^63"},
      {"binary of the wrong size", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(32).Tuple(1).Int(3).Binary("12345678");
       }, ErrorKind::kSizeMismatch, "needs 12 bytes"},
      {"data not a binary", [](TermWriter& w) {
         w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(32).Tuple(0).Int(0);
       }, ErrorKind::kBadArg, "binary"},
      {"handle not an integer", [](TermWriter& w) { w.Tuple(2).Atom("download").Atom("x"); }, ErrorKind::kBadArg,
       "handle"},
      {"handle zero", [](TermWriter& w) { w.Tuple(2).Atom("free").Int(0); }, ErrorKind::kBadArg, "positive"},
  };
  for (auto& c : cases) {
    INFO(c.what);
    auto d = Decode(EnvelopeBytes(c.req));
    REQUIRE_FALSE(d.req);
    CHECK(d.status.kind() == c.kind);
    CHECK_THAT(d.status.message(), Catch::Contains(c.says));
  }
}

TEST_CASE("shm requests: the reusable forms decode, hostile ones are refused", "[request][shm][security]") {
  auto alloc = Decode(EnvelopeBytes([](TermWriter& w) { w.Tuple(3).Atom("shm_alloc").Int(64).Atom("reuse"); }));
  REQUIRE(alloc.req);
  CHECK(std::get<ShmAlloc>(alloc.req->body).bytes == 64);
  CHECK(std::get<ShmAlloc>(alloc.req->body).reuse);
  auto once = Decode(EnvelopeBytes([](TermWriter& w) { w.Tuple(2).Atom("shm_alloc").Int(64); }));
  REQUIRE(once.req);
  CHECK_FALSE(std::get<ShmAlloc>(once.req->body).reuse);
  auto into = Decode(EnvelopeBytes([](TermWriter& w) { w.Tuple(3).Atom("shm_download").Int(5).Int(7); }));
  REQUIRE(into.req);
  CHECK(std::get<ShmDownload>(into.req->body).handle == 5);
  CHECK(std::get<ShmDownload>(into.req->body).segment == 7);
  auto fresh = Decode(EnvelopeBytes([](TermWriter& w) { w.Tuple(2).Atom("shm_download").Int(5); }));
  REQUIRE(fresh.req);
  CHECK(std::get<ShmDownload>(fresh.req->body).segment == 0);

  struct Bad {
    const char* what;
    std::function<void(TermWriter&)> req;
    ErrorKind kind;
  };
  const Bad bad[] = {
      {"another atom than reuse", [](TermWriter& w) { w.Tuple(3).Atom("shm_alloc").Int(8).Atom("nope"); },
       ErrorKind::kBadArg},
      {"reuse as a binary", [](TermWriter& w) { w.Tuple(3).Atom("shm_alloc").Int(8).Binary("reuse"); },
       ErrorKind::kBadArg},
      {"4 elements", [](TermWriter& w) { w.Tuple(4).Atom("shm_alloc").Int(8).Atom("reuse").Int(1); },
       ErrorKind::kBadArg},
      {"0 bytes, reusable", [](TermWriter& w) { w.Tuple(3).Atom("shm_alloc").Int(0).Atom("reuse"); },
       ErrorKind::kOutOfRange},
      {"a path as the segment", [](TermWriter& w) { w.Tuple(3).Atom("shm_download").Int(1).Binary("/dev/shm/x"); },
       ErrorKind::kBadArg},
      {"segment 0", [](TermWriter& w) { w.Tuple(3).Atom("shm_download").Int(1).Int(0); }, ErrorKind::kBadArg},
      {"a negative segment", [](TermWriter& w) { w.Tuple(3).Atom("shm_download").Int(1).Int(-3); },
       ErrorKind::kBadArg},
      {"4-element download", [](TermWriter& w) { w.Tuple(4).Atom("shm_download").Int(1).Int(2).Int(3); },
       ErrorKind::kBadArg},
  };
  for (const auto& c : bad) {
    INFO(c.what);
    auto d = Decode(EnvelopeBytes(c.req));
    REQUIRE_FALSE(d.req);
    CHECK(d.status.kind() == c.kind);
  }
}

TEST_CASE("busy is an op only with test ops enabled", "[request]") {
  auto d = Decode(EnvelopeBytes([](TermWriter& w) { w.Tuple(2).Atom("busy").Int(10); }), true);
  REQUIRE(d.req);
  REQUIRE(std::holds_alternative<Busy>(d.req->body));
  CHECK(std::get<Busy>(d.req->body).ms == 10);
}

TEST_CASE("envelope checks: version and owner", "[request]") {
  auto d = Decode(EnvelopeBytes([](TermWriter& w) { w.Atom("hello"); }, 2));
  CHECK(d.check.kind() == ErrorKind::kBadVersion);
  auto foreign = Decode(EnvelopeBytes([](TermWriter& w) { w.Atom("hello"); }, 1, "other@127.0.0.1"));
  CHECK_FALSE(foreign.check.ok());
  CHECK_THAT(foreign.check.message(), Catch::Contains("owner pid must live on the requesting node"));
}

TEST_CASE("things that are not envelopes cannot be answered", "[request]") {
  std::string out;
  TermWriter(out).Version().Tuple(3).Atom("$mure").Int(1).Int(2);
  TermTree t;
  REQUIRE(ParseExternal(out, 0, t).ok());
  CHECK_FALSE(ReadEnvelope(t, 0));
}

TEST_CASE("an envelope is found in a prefix whose request is cut off or too deep", "[request]") {
  std::string full = EnvelopeBytes([](TermWriter& w) {
    w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(32).Tuple(1).Int(1000).Binary(std::string(4000, 'z'));
  });
  auto env = PeekEnvelope(full.substr(0, 200), 0);
  REQUIRE(env);
  CHECK(env->version == 1);
  CHECK(env->ref == mure::testing::Ref("client@127.0.0.1", 2));
  CHECK_FALSE(PeekEnvelope(full.substr(0, 20), 0));
}

TEST_CASE("pid keys ignore the atom encoding of the node", "[request]") {
  std::string a = mure::testing::Pid("n@h", 5);
  std::string b = a;
  b[1] = static_cast<char>(100);  // ATOM_EXT instead of SMALL_ATOM_UTF8: different bytes, same pid
  b.insert(2, 1, '\0');
  CHECK(PidKey(a, "n@h") == PidKey(b, "n@h"));
  CHECK(PidKey(a, "n@h") != PidKey(mure::testing::Pid("n@h", 6), "n@h"));
}

TEST_CASE("integer lists arrive as STRING_EXT from the BEAM and are read as integers", "[request]") {
  std::string out;
  TermWriter w(out);
  w.Version().Tuple(6).Atom("$mure").Int(1).Raw(mure::testing::Pid("client@127.0.0.1", 1))
      .Raw(mure::testing::Ref("client@127.0.0.1", 2)).Raw(mure::testing::Pid("client@127.0.0.1", 3));
  w.Tuple(5).Atom("reduce").Atom("sum").Int(7);
  out += std::string("\x6b\x00\x02\x00\x01", 5);  // STRING_EXT [0, 1]
  w.Atom("false");
  auto d = Decode(out);
  REQUIRE(d.req);
  REQUIRE(std::holds_alternative<ir::Node>(d.req->body));
  const auto& node = std::get<ir::Node>(d.req->body);
  REQUIRE(std::holds_alternative<ir::Reduce>(node));
  CHECK(std::get<ir::Reduce>(node).axes == std::vector<int64_t>{0, 1});
  CHECK(std::get<ir::Reduce>(node).op == ir::ReduceOp::kSum);
}

namespace {

/// The compute node of a decoded request (fails the test when it is something else). A node's
/// views (an op's name as sent) point into its frame: the frames are kept for the whole run.
ir::Node NodeOf(const std::function<void(TermWriter&)>& write) {
  static std::deque<std::string> frames;
  frames.push_back(EnvelopeBytes(write));
  auto d = Decode(frames.back());
  INFO(d.status.message());
  REQUIRE(d.req);
  REQUIRE(std::holds_alternative<ir::Node>(d.req->body));
  return std::get<ir::Node>(d.req->body);
}

}  // namespace

TEST_CASE("the legacy matmul, add and multiply decode to dot and binary nodes", "[request][ir]") {
  ir::Node mm = NodeOf([](TermWriter& w) { w.Tuple(3).Atom("matmul").Int(4).Int(5); });
  REQUIRE(std::holds_alternative<ir::Dot>(mm));
  const auto& dot = std::get<ir::Dot>(mm);
  CHECK(dot.a == 4);
  CHECK(dot.b == 5);
  CHECK(dot.contract_a == std::vector<int64_t>{1});
  CHECK(dot.contract_b == std::vector<int64_t>{0});
  CHECK(dot.batch_a.empty());
  CHECK(dot.batch_b.empty());
  CHECK(dot.legacy == ir::Legacy::kMatmul);
  CHECK(ir::Label(mm) == ":matmul");
  for (auto [atom, op] : {std::pair{"add", ir::BinaryOp::kAdd}, std::pair{"multiply", ir::BinaryOp::kMultiply}}) {
    ir::Node n = NodeOf([atom = atom](TermWriter& w) { w.Tuple(3).Atom(atom).Int(1).Int(2); });
    REQUIRE(std::holds_alternative<ir::Binary>(n));
    const auto& b = std::get<ir::Binary>(n);
    CHECK(b.op == op);
    CHECK(b.a == 1);
    CHECK(b.b == 2);
    CHECK(b.legacy != ir::Legacy::kNone);
    CHECK(ir::Label(n) == ":" + std::string(atom));
    CHECK(ir::Operands(n) == std::vector<ir::Id>{1, 2});
  }
  // The general forms carry no legacy contract.
  ir::Node add = NodeOf([](TermWriter& w) { w.Tuple(4).Atom("binary").Atom("add").Int(1).Int(2); });
  CHECK(std::get<ir::Binary>(add).legacy == ir::Legacy::kNone);
  CHECK(ir::Label(add) == ":binary :add");
}

TEST_CASE("nodes carry their arguments in named fields", "[request][ir]") {
  ir::Node sl = NodeOf([](TermWriter& w) {
    w.Tuple(5).Atom("slice").Int(3).Tuple(2).Int(0).Int(1).List(2).Int(2).Int(2).Nil().Tuple(2).Int(1).Int(1);
  });
  REQUIRE(std::holds_alternative<ir::Slice>(sl));
  CHECK(std::get<ir::Slice>(sl).x == 3);
  CHECK(std::get<ir::Slice>(sl).starts == std::vector<int64_t>{0, 1});
  CHECK(std::get<ir::Slice>(sl).lengths == std::vector<int64_t>{2, 2});
  CHECK(std::get<ir::Slice>(sl).strides == std::vector<int64_t>{1, 1});

  ir::Node dot = NodeOf([](TermWriter& w) {
    w.Tuple(7).Atom("dot").Int(1).Tuple(1).Int(2).Tuple(1).Int(0).Int(9).Tuple(1).Int(1).Tuple(1).Int(0);
  });
  REQUIRE(std::holds_alternative<ir::Dot>(dot));
  const auto& d = std::get<ir::Dot>(dot);
  CHECK((d.a == 1 && d.b == 9));
  CHECK(d.contract_a == std::vector<int64_t>{2});
  CHECK(d.batch_a == std::vector<int64_t>{0});
  CHECK(d.contract_b == std::vector<int64_t>{1});
  CHECK(d.batch_b == std::vector<int64_t>{0});
  CHECK(d.legacy == ir::Legacy::kNone);

  ir::Node sel = NodeOf([](TermWriter& w) { w.Tuple(4).Atom("select").Int(7).Int(8).Int(9); });
  CHECK(ir::Operands(sel) == std::vector<ir::Id>{7, 8, 9});
  ir::Node iota = NodeOf([](TermWriter& w) { w.Tuple(4).Atom("iota").Tuple(2).Atom("s").Int(32).Tuple(2).Int(2).Int(3).Int(-1); });
  REQUIRE(std::holds_alternative<ir::Iota>(iota));
  CHECK(std::get<ir::Iota>(iota).axis == 1);  // normalised when decoded
  CHECK(ir::Operands(iota).empty());
  ir::Node st = NodeOf([](TermWriter& w) { w.Tuple(3).Atom("stack").List(2).Int(4).Int(5).Nil().Int(0); });
  CHECK(std::holds_alternative<ir::Stack>(st));
  CHECK(ir::Operands(st) == std::vector<ir::Id>{4, 5});
  ir::Node unknown = NodeOf([](TermWriter& w) { w.Tuple(3).Atom("unary").Atom("nope").Int(1); });
  CHECK_FALSE(std::get<ir::Unary>(unknown).op);  // refused when planned, after its operand is found
  CHECK(ir::Label(unknown) == ":unary :nope");
}

TEST_CASE("an arity no decoder takes is answered with the op's form", "[request][ir]") {
  struct Case {
    std::function<void(TermWriter&)> req;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](TermWriter& w) { w.Atom("matmul"); }, "matmul takes {:matmul, a, b}"},
      {[](TermWriter& w) { w.Tuple(2).Atom("matmul").Int(1); }, "matmul takes {:matmul, a, b}; got a tuple of 2 elements"},
      {[](TermWriter& w) { w.Tuple(4).Atom("add").Int(1).Int(2).Int(3); }, "add takes {:add, a, b}; got a tuple of 4 elements"},
      {[](TermWriter& w) { w.Atom("upload"); }, "upload takes {:upload, type, shape, binary}"},
      {[](TermWriter& w) { w.Tuple(2).Atom("select").Int(1); }, "select takes three tensors"},
      {[](TermWriter& w) { w.Tuple(3).Atom("program").Nil().Nil(); },
       "program takes {:program, inputs, nodes, outputs} or {:program, inputs, nodes, outputs, opts}"},
      {[](TermWriter& w) { w.Tuple(3).Atom("binary").Atom("add").Int(1); },
       "binary takes {:binary, name, a, b}; got a tuple of 3 elements"},
  };
  for (auto& c : cases) {
    auto d = Decode(EnvelopeBytes(c.req));
    REQUIRE_FALSE(d.req);
    CHECK(d.status.kind() == ErrorKind::kBadArg);
    CHECK(d.status.message() == c.message);
  }
}

TEST_CASE("a program's nodes are typed nodes with their placement", "[request][ir][program]") {
  auto d = Decode(EnvelopeBytes([](TermWriter& w) {
    w.Tuple(4).Atom("program");
    w.List(1).Tuple(2).Atom("handle").Int(5).Nil();
    w.List(2);
    w.Tuple(3).Atom("on").Atom("cpu").Tuple(2).Atom("free").Int(1);
    w.Tuple(3).Atom("add").Int(1).Int(1);
    w.Nil();
    w.Nil();
  }));
  REQUIRE_FALSE(d.req);
  CHECK(d.status.message() == "node 1: :free cannot be part of a program");
  auto ok = Decode(EnvelopeBytes([](TermWriter& w) {
    w.Tuple(4).Atom("program");
    w.List(1).Tuple(2).Atom("handle").Int(5).Nil();
    w.List(2);
    w.Tuple(3).Atom("on").Atom("cpu").Tuple(3).Atom("unary").Atom("exp").Int(1);
    w.Tuple(3).Atom("matmul").Int(1).Int(2);
    w.Nil();
    w.List(1).Tuple(2).Int(3).Atom("return").Nil();
  }));
  REQUIRE(ok.req);
  const auto& prog = *std::get<RunProgram>(ok.req->body).program;
  REQUIRE(prog.nodes.size() == 2);
  CHECK(prog.nodes[0].placement == Placement::kCpu);
  CHECK(std::holds_alternative<ir::Unary>(prog.nodes[0].node));
  CHECK(prog.nodes[1].placement == Placement::kAuto);
  CHECK(std::get<ir::Dot>(prog.nodes[1].node).legacy == ir::Legacy::kMatmul);
}
