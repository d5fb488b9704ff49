// The bounded term reader: round trips with the writer, and refusal of every lie a length can tell.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>

#include "proto/reply_terms.h"
#include "proto/term.h"

using namespace mure;
using namespace mure::proto;

namespace {

std::string Encode(const std::function<void(TermWriter&)>& f) {
  std::string out;
  TermWriter w(out);
  w.Version();
  f(w);
  return out;
}

std::string FakePid(const std::string& node, uint32_t id) {
  std::string out;
  out.push_back(static_cast<char>(88));
  TermWriter(out).Atom(node);
  for (int i = 0; i < 12; ++i) out.push_back(static_cast<char>(i == 3 ? id : 0));
  return out;
}

Result<size_t> Parse(const std::string& bytes, TermTree& t, Limits limits = {}) {
  return ParseExternal(bytes, 0, t, limits);
}

}  // namespace

TEST_CASE("writer output is read back exactly", "[term]") {
  std::string pid = FakePid("a@127.0.0.1", 7);
  std::string bytes = Encode([&](TermWriter& w) {
    w.Tuple(7).Atom("hello").Int(-5).UInt(1ull << 40).Double(2.5).Binary("xyz").Raw(pid);
    w.List(2).Int(1).Int(300).Nil();
  });
  TermTree t;
  auto end = Parse(bytes, t);
  REQUIRE(end.ok());
  CHECK(*end == bytes.size());
  REQUIRE(t[0].kind == TermKind::kTuple);
  REQUIRE(t[0].count == 7);
  CHECK(t.IsAtom(t.Child(0, 0), "hello"));
  CHECK(t[t.Child(0, 1)].integer == -5);
  CHECK(t[t.Child(0, 2)].integer == (1ll << 40));
  CHECK(t[t.Child(0, 3)].real == 2.5);
  CHECK(t[t.Child(0, 4)].data == "xyz");
  CHECK(t[t.Child(0, 5)].kind == TermKind::kPid);
  CHECK(t[t.Child(0, 5)].node == "a@127.0.0.1");
  CHECK(t[t.Child(0, 5)].raw == pid);
  uint32_t list = t.Child(0, 6);
  CHECK(t[list].kind == TermKind::kList);
  CHECK(t[list].count == 2);
  CHECK_FALSE(t[list].improper);
  CHECK(t[t.Child(list, 1)].integer == 300);
}

TEST_CASE("a MapWriter's arity is the number of its keys, nested maps counted apart", "[term]") {
  std::string bytes = Encode([](TermWriter& w) {
    MapWriter m(w);
    m.Key("a").Int(1);
    m.Key("inner");
    {
      MapWriter inner(w);
      inner.Key("x").Int(2);
      inner.Key("y").Int(3);
      inner.Key("z").Int(4);
    }
    m.Key("b").Int(5);
  });
  // After the version byte: 116 = MAP_EXT, then a 4-byte big-endian pair count (OTP's external
  // term format).
  REQUIRE(bytes.size() > 6);
  CHECK(static_cast<uint8_t>(bytes[1]) == 116);
  CHECK(bytes.substr(2, 4) == std::string("\0\0\0\3", 4));
  size_t inner = bytes.find(std::string("\x74\0\0\0", 4), 6);
  REQUIRE(inner != std::string::npos);
  CHECK(static_cast<uint8_t>(bytes[inner + 4]) == 3);
  TermTree t;
  auto end = Parse(bytes, t);
  REQUIRE(end.ok());
  CHECK(*end == bytes.size());
  CHECK(t[0].kind == TermKind::kMap);
}

TEST_CASE("integers at the edges of int64", "[term]") {
  for (int64_t v : {INT64_MIN, INT64_MIN + 1, int64_t{-1}, int64_t{0}, int64_t{255}, int64_t{256},
                    int64_t{INT32_MAX} + 1, INT64_MAX}) {
    TermTree t;
    auto bytes = Encode([&](TermWriter& w) { w.Int(v); });
    REQUIRE(Parse(bytes, t).ok());
    CHECK(t[0].kind == TermKind::kInteger);
    CHECK(t[0].integer == v);
  }
  TermTree t;
  auto big = Encode([](TermWriter& w) { w.UInt(UINT64_MAX); });
  REQUIRE(Parse(big, t).ok());
  CHECK(t[0].kind == TermKind::kBigInteger);
}

TEST_CASE("improper lists keep their tail as the last child", "[term]") {
  // [1 | 2]: LIST_EXT of 1 element with a non-nil tail.
  std::string bytes("\x83\x6c\x00\x00\x00\x01\x61\x01\x61\x02", 10);
  TermTree t;
  REQUIRE(Parse(bytes, t).ok());
  CHECK(t[0].improper);
  CHECK(t[0].count == 2);
  CHECK(t[t.Child(0, 1)].integer == 2);
}

TEST_CASE("lengths that lie are refused before anything is read", "[term][security]") {
  TermTree t;
  SECTION("binary claiming more bytes than present") {
    std::string b = "\x83\x6d\x00\x00\x03\xe8" + std::string(10, 'x');
    auto r = Parse(b, t);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("past the end"));
  }
  SECTION("binary length 0xFFFFFFFF") {
    std::string b = std::string("\x83\x6d\xff\xff\xff\xff", 6) + "ab";
    CHECK_FALSE(Parse(b, t).ok());
  }
  SECTION("list header of 2^31-1 elements with one byte left") {
    std::string b = std::string("\x83\x6c\x7f\xff\xff\xff\x6a", 7);
    CHECK_FALSE(Parse(b, t).ok());
  }
  SECTION("huge tuple arity") {
    std::string b = std::string("\x83\x69\xff\xff\xff\xff\x61\x01", 8);
    CHECK_FALSE(Parse(b, t).ok());
  }
  SECTION("map with 2^32-1 pairs") {
    std::string b = std::string("\x83\x74\xff\xff\xff\xff\x61\x01\x61\x02", 10);
    CHECK_FALSE(Parse(b, t).ok());
  }
  SECTION("big integer past the end") {
    std::string b = std::string("\x83\x6f\x7f\xff\xff\xff\x00\x01", 8);
    CHECK_FALSE(Parse(b, t).ok());
  }
  SECTION("fun whose size runs past the end") {
    std::string b = std::string("\x83\x70\x00\x01\x00\x00\x00", 7);
    CHECK_FALSE(Parse(b, t).ok());
  }
  SECTION("reference with absurd word count") {
    std::string b = std::string("\x83\x5a\xff\xff\x77\x01\x61", 7);
    CHECK_FALSE(Parse(b, t).ok());
  }
}

TEST_CASE("compressed terms, unknown tags and missing version are refused", "[term][security]") {
  TermTree t;
  auto r = Parse(std::string("\x83\x50\x00\x00\x00\x10\x78\x9c", 8), t);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("compressed"));
  CHECK_FALSE(Parse(std::string("\x83\x01", 2), t).ok());
  CHECK_FALSE(Parse(std::string("\x61\x01", 2), t).ok());
  CHECK_FALSE(Parse(std::string(), t).ok());
}

TEST_CASE("nesting is capped without recursion blowing up", "[term][security]") {
  // 200,000 nested one-element lists: [[[[...]]]]
  std::string b = "\x83";
  for (int i = 0; i < 200000; ++i) b += std::string("\x6c\x00\x00\x00\x01", 5);
  b += "\x6a";
  for (int i = 0; i < 200000; ++i) b += "\x6a";
  TermTree t;
  auto r = Parse(b, t);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("nesting deeper than"));
}

TEST_CASE("the number of terms is capped", "[term][security]") {
  std::string b = Encode([](TermWriter& w) {
    w.List(1000);
    for (int i = 0; i < 1000; ++i) w.Int(i);
    w.Nil();
  });
  TermTree t;
  Limits small;
  small.max_terms = 100;
  CHECK_FALSE(Parse(b, t, small).ok());
  t.Clear();
  CHECK(Parse(b, t).ok());
}

TEST_CASE("every truncation and every single-byte corruption of a request is handled", "[term][security]") {
  std::string pid = FakePid("client@127.0.0.1", 9);
  std::string bytes = Encode([&](TermWriter& w) {
    w.Tuple(6).Atom("$mure").Int(1).Raw(pid).Raw(pid).Raw(pid);
    w.Tuple(4).Atom("upload").Tuple(2).Atom("f").Int(32).Tuple(2).Int(2).Int(2).Binary(std::string(16, '\1'));
  });
  for (size_t len = 0; len < bytes.size(); ++len) {
    TermTree t;
    CHECK_FALSE(Parse(bytes.substr(0, len), t).ok());
  }
  std::mt19937 rng(42);
  size_t parsed = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int v : {0x00, 0xff, 0x7f, 0x80, static_cast<int>(rng() & 0xff)}) {
      std::string c = bytes;
      c[i] = static_cast<char>(v);
      TermTree t;
      auto r = Parse(c, t);  // must return, never crash or read out of bounds (see the ASan build)
      if (r.ok()) {
        ++parsed;
        CHECK(*r <= c.size());
      }
    }
  }
  CHECK(parsed > 0);
}

// The node's own replies (hello, devices, stats) are terms whose map and tuple arities match what
// follows them: each parses as exactly one term that ends where the bytes end, and every map
// key is an atom. (A map announced with fewer pairs than written reads back as a shorter map on
// the BEAM, silently dropping a counter.)
TEST_CASE("hello, devices and stats replies are each one well-formed term", "[term][reply]") {
  auto check = [](const std::string& bytes, TermKind kind) {
    TermTree tree;
    auto end = ParseExternal(bytes, 0, tree);
    REQUIRE(end.ok());
    CHECK(*end == bytes.size());
    REQUIRE(tree.size() > 0);
    CHECK(tree[0].kind == kind);
    for (uint32_t n = 0; n < tree.size(); ++n) {
      if (tree[n].kind != TermKind::kMap) continue;
      for (uint32_t i = 0; i < tree[n].count; i += 2) CHECK(tree[tree.Child(n, i)].kind == TermKind::kAtom);
    }
  };
  check(Encode([](TermWriter& w) { WriteStats(w, StatsInfo{}); }), TermKind::kMap);
  check(Encode([](TermWriter& w) { WriteHello(w, HelloInfo{}); }), TermKind::kMap);
  DevicesInfo both;
  both.blas.emplace();
  both.opencl.emplace();
  check(Encode([&](TermWriter& w) { WriteDevices(w, both); }), TermKind::kList);
}
