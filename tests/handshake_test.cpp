// The accepting side of the distribution handshake, driven by a scripted initiator over a socket
// pair: the happy path, a wrong cookie, a silent peer, an old peer.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>

#include "dist/handshake.h"
#include "dist_util.h"

using namespace mure;
using namespace mure::testing;

namespace {

std::string Hex(std::string_view d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (char c : d) { auto b = static_cast<uint8_t>(c); s.push_back(digits[b >> 4]); s.push_back(digits[b & 15]); }
  return s;
}

const HandshakeParams kNode{"mure@127.0.0.1", 77, "SECRET"};

/// Plays an OTP 25 initiator with `cookie`; returns what the acceptor answered.
Result<HandshakeResult> Run(Pair& p, const std::string& cookie, bool* acked) {
  auto node = std::async(std::launch::async, [&] {
    return AcceptHandshake(p.node, kNode, std::chrono::milliseconds(2000));
  });
  std::string name = "N";
  PutBe(name, dflag::kRequired | dflag::kDistMonitor | dflag::kPublished, 8);
  PutBe(name, 9, 4);
  PutBe(name, 13, 2);
  name += "app@127.0.0.1";
  SendMsg(p.peer, name);
  CHECK(RecvMsg(p.peer) == "sok");
  std::string ch = RecvMsg(p.peer);
  REQUIRE(ch[0] == 'N');
  uint64_t flags = Be(ch, 1, 8);
  CHECK((flags & dflag::kDistMonitorName) != 0);  // what ei's own handshake leaves out
  CHECK((flags & dflag::kPublished) == 0);        // a hidden node
  CHECK(Be(ch, 13, 4) == 77);
  CHECK(ch.substr(19) == "mure@127.0.0.1");
  uint32_t challenge = static_cast<uint32_t>(Be(ch, 9, 4));
  std::string reply = "r";
  PutBe(reply, 4242, 4);
  reply += ChallengeDigest(cookie, challenge);
  SendMsg(p.peer, reply);
  auto result = node.get();
  if (result.ok()) {
    std::string ack = RecvMsg(p.peer);
    *acked = ack == "a" + ChallengeDigest(cookie, 4242);
  }
  return result;
}

}  // namespace

TEST_CASE("the challenge digest is MD5 of the cookie and the decimal challenge (RFC 1321 vectors)", "[handshake]") {
  // The text digested is cookie ++ decimal(challenge): the RFC's vectors, split that way.
  CHECK(Hex(ChallengeDigest("", 1)) == "c4ca4238a0b923820dcc509a6f75849b");  // MD5("1")
  CHECK(Hex(ChallengeDigest("1234567890123456789012345678901234567890123456789012345678901234567890", 1234567890)) ==
        "57edf4a22be3c955ac49da2e2107b67a");
  CHECK(Hex(ChallengeDigest("abc", 4294967295u)) == "beec35cc2e8e170d9c45291c5c1eb475");  // hashlib.md5
}

TEST_CASE("an OTP 25 peer with the cookie is admitted and acknowledged", "[handshake]") {
  Pair p;
  bool acked = false;
  auto r = Run(p, "SECRET", &acked);
  REQUIRE(r.ok());
  CHECK(r->peer == "app@127.0.0.1");
  CHECK(acked);
}

TEST_CASE("a peer with the wrong cookie is refused", "[handshake][security]") {
  Pair p;
  bool acked = false;
  auto r = Run(p, "GUESS", &acked);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("wrong cookie"));
}

TEST_CASE("a silent peer is dropped at the deadline", "[handshake][security]") {
  Pair p;
  auto t0 = std::chrono::steady_clock::now();
  auto r = AcceptHandshake(p.node, kNode, std::chrono::milliseconds(200));
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("deadline"));
  CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("garbage and peers without the required capabilities are refused", "[handshake][security]") {
  {
    Pair p;
    SendMsg(p.peer, "GET / HTTP/1.1");
    CHECK_FALSE(AcceptHandshake(p.node, kNode, std::chrono::milliseconds(500)).ok());
  }
  {
    Pair p;
    std::string name = "N";
    PutBe(name, dflag::kExtendedReferences, 8);  // an ancient peer
    PutBe(name, 1, 4);
    PutBe(name, 3, 2);
    name += "x@y";
    SendMsg(p.peer, name);
    auto r = AcceptHandshake(p.node, kNode, std::chrono::milliseconds(500));
    REQUIRE_FALSE(r.ok());
    CHECK(RecvMsg(p.peer) == "snot_allowed");
  }
}
