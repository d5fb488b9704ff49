// The acceptor's gate: pending handshakes limited per source and in total, a back-off for a
// source whose handshakes keep failing, and a table that does not grow without bound.
#include <catch2/catch.hpp>

#include <string>

#include "dist/handshake_gate.h"

using namespace mure;
using Clock = HandshakeGate::Clock;
using std::chrono::seconds;

namespace {
HandshakeLimits Limits(size_t total, size_t per_source, uint32_t failures, int backoff_s) {
  HandshakeLimits l;
  l.max_pending = total;
  l.max_pending_per_source = per_source;
  l.max_failures = failures;
  l.failure_window = seconds(60);
  l.backoff = seconds(backoff_s);
  return l;
}
}  // namespace

TEST_CASE("one source cannot take every pending handshake", "[dist][security]") {
  HandshakeGate gate(Limits(256, 16, 0, 60));
  const auto t = Clock::now();
  int admitted = 0;
  for (int i = 0; i < 300; ++i) admitted += gate.Admit("127.0.0.1", t).ok() ? 1 : 0;
  CHECK(admitted == 16);
  CHECK(gate.pending_from("127.0.0.1") == 16);
  Status refused = gate.Admit("127.0.0.1", t);
  CHECK(refused.kind() == ErrorKind::kOverloaded);
  CHECK_THAT(refused.message(), Catch::Contains("from this address"));
  // Another source still gets in; a finished handshake frees its slot.
  CHECK(gate.Admit("127.0.0.2", t).ok());
  gate.Finish("127.0.0.1", true, t);
  CHECK(gate.Admit("127.0.0.1", t).ok());
  CHECK(gate.pending() == 17);
}

TEST_CASE("the total limit holds across sources", "[dist][security]") {
  HandshakeGate gate(Limits(40, 16, 0, 60));
  const auto t = Clock::now();
  int admitted = 0;
  for (int s = 0; s < 10; ++s) {
    for (int i = 0; i < 16; ++i) admitted += gate.Admit("10.0.0." + std::to_string(s), t).ok() ? 1 : 0;
  }
  CHECK(admitted == 40);
  CHECK(gate.pending() == 40);
  CHECK_THAT(gate.Admit("10.0.1.1", t).message(), Catch::Contains("already pending"));
}

TEST_CASE("a source whose handshakes keep failing is refused for the back-off, then let in again", "[dist][security]") {
  HandshakeGate gate(Limits(256, 16, 5, 30));
  auto t = Clock::now();
  for (int i = 0; i < 4; ++i) {
    REQUIRE(gate.Admit("192.0.2.1", t).ok());
    CHECK_FALSE(gate.Finish("192.0.2.1", false, t));
  }
  REQUIRE(gate.Admit("192.0.2.1", t).ok());
  CHECK(gate.Finish("192.0.2.1", false, t));  // the fifth: back-off starts, reported once
  Status refused = gate.Admit("192.0.2.1", t + seconds(1));
  CHECK(refused.kind() == ErrorKind::kOverloaded);
  CHECK_THAT(refused.message(), Catch::Contains("failed handshakes"));
  CHECK(gate.Admit("192.0.2.2", t + seconds(1)).ok());  // others are not affected
  CHECK_FALSE(gate.Admit("192.0.2.1", t + seconds(29)).ok());
  CHECK(gate.Admit("192.0.2.1", t + seconds(31)).ok());
  CHECK(gate.pending() == 2);
}

TEST_CASE("failures spread wider than the window never trigger the back-off; successes never count",
          "[dist][security]") {
  HandshakeGate gate(Limits(256, 16, 3, 30));
  auto t = Clock::now();
  for (int i = 0; i < 10; ++i) {
    REQUIRE(gate.Admit("192.0.2.9", t).ok());
    CHECK_FALSE(gate.Finish("192.0.2.9", false, t));
    REQUIRE(gate.Admit("192.0.2.9", t).ok());
    CHECK_FALSE(gate.Finish("192.0.2.9", false, t));
    t += seconds(61);  // a new window: two failures in each
  }
  for (int i = 0; i < 100; ++i) {
    REQUIRE(gate.Admit("192.0.2.9", t).ok());
    CHECK_FALSE(gate.Finish("192.0.2.9", true, t));
  }
  CHECK(gate.pending() == 0);
}

TEST_CASE("the gate forgets idle sources", "[dist][security]") {
  HandshakeGate gate(Limits(100000, 16, 5, 30));
  auto t = Clock::now();
  for (int i = 0; i < 5000; ++i) {
    std::string src = "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1";
    REQUIRE(gate.Admit(src, t).ok());
    gate.Finish(src, true, t);
  }
  REQUIRE(gate.Admit("10.200.0.1", t + seconds(2)).ok());
  CHECK(gate.tracked_sources() <= 2);
}
