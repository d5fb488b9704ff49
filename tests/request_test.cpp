// Decoding protocol v1 requests: each op, each error kind, named in the message.
#include <catch2/catch.hpp>

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
  CHECK(d.req->op == Op::kUpload);
  CHECK(d.req->type == DType::kF32);
  CHECK(d.req->shape == Shape{2, 3});
  CHECK(d.req->bytes == 24);
  CHECK(d.req->data.size() == 24);
}

TEST_CASE("bare and tuple forms of the no-argument ops", "[request]") {
  for (auto name : {"hello", "devices", "stats"}) {
    auto bare = Decode(EnvelopeBytes([&](TermWriter& w) { w.Atom(name); }));
    CHECK(bare.req);
    auto tup = Decode(EnvelopeBytes([&](TermWriter& w) { w.Tuple(1).Atom(name); }));
    CHECK(tup.req);
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

TEST_CASE("busy is an op only with test ops enabled", "[request]") {
  auto d = Decode(EnvelopeBytes([](TermWriter& w) { w.Tuple(2).Atom("busy").Int(10); }), true);
  REQUIRE(d.req);
  CHECK(d.req->ms == 10);
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
  CHECK(d.req->v1 == std::vector<int64_t>{0, 1});
}
