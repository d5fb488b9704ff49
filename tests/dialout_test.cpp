// Dial-out (dist/dialer.h): the initiating side of the distribution handshake against the node's
// own acceptor and against scripted acceptors, the epmd port query against a scripted epmd, and
// the reconnect backoff's bounds.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>

#include "dist/dialer.h"
#include "dist/handshake.h"
#include "dist_util.h"
#include "mure/config.h"

using namespace mure;
using namespace mure::testing;

namespace {

using std::chrono::milliseconds;

const HandshakeParams kDialler{"mure_d@127.0.0.1", 91, "SECRET"};

/// A scripted coordinator: reads send_name, answers `status`, then (on "ok") a challenge from
/// `name` and an ack made with `ack_cookie`. Returns the send_name message.
std::string ScriptedCoordinator(int fd, const std::string& status, const std::string& name,
                                const std::string& ack_cookie) {
  std::string sn = RecvMsg(fd);
  SendMsg(fd, "s" + status);
  if (status != "ok") return sn;
  std::string ch = "N";
  PutBe(ch, dflag::kRequired | dflag::kPublished | dflag::kDistMonitor, 8);
  PutBe(ch, 123456, 4);
  PutBe(ch, 5, 4);
  PutBe(ch, name.size(), 2);
  ch += name;
  SendMsg(fd, ch);
  // The dialler may have given up at the challenge (a name it did not dial): no reply then.
  uint8_t len[2];
  if (read(fd, len, 2) != 2) return sn;
  std::string reply(static_cast<size_t>(len[0] << 8 | len[1]), '\0');
  if (read(fd, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) return sn;
  if (reply.size() == 21 && reply[0] == 'r' && reply.substr(5) == ChallengeDigest("SECRET", 123456)) {
    SendMsg(fd, "a" + ChallengeDigest(ack_cookie, static_cast<uint32_t>(Be(reply, 1, 4))));
  }
  return sn;
}

}  // namespace

TEST_CASE("connect, connect_backoff_max_ms and listen = none are checked", "[dialout][config]") {
  Config defaults, shipped;
  REQUIRE(LoadConfigFile(shipped, MURE_SOURCE_DIR "/config/mure.conf").ok());
  CHECK(shipped.connect == defaults.connect);
  CHECK(shipped.connect.empty());
  CHECK(shipped.connect_backoff_max_ms == defaults.connect_backoff_max_ms);
  CHECK(defaults.connect_backoff_max_ms == 30000);

  auto ok = Args({"--name", "m@10.0.0.5", "--connect", "app@10.0.0.1", "--listen", "none",
                  "--connect-backoff-max-ms", "5000"});
  REQUIRE(ok.ok());
  CHECK(ok->connect == "app@10.0.0.1");
  CHECK(ok->listen == "none");
  CHECK(ok->connect_backoff_max_ms == 5000);
  for (const char* bad : {"app", "@host", "app@", "a@b@c"}) {
    auto r = Args({"--name", "m@127.0.0.1", "--connect", bad});
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("--connect") && Catch::Contains("alive@host"));
  }
  auto nowhere = Args({"--name", "m@127.0.0.1", "--listen", "none"});
  REQUIRE_FALSE(nowhere.ok());
  CHECK_THAT(nowhere.status().message(), Catch::Contains("needs connect"));
  CHECK_FALSE(Args({"--name", "m@127.0.0.1", "--connect-backoff-max-ms", "10"}).ok());
}

TEST_CASE("the initiating handshake completes against the node's own acceptor", "[dialout][handshake]") {
  Pair p;
  const HandshakeParams coordinator{"app@127.0.0.1", 7, "SECRET"};
  auto accepted = std::async(std::launch::async, [&] { return AcceptHandshake(p.peer, coordinator, milliseconds(2000)); });
  auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(2000));
  auto acc = accepted.get();
  REQUIRE(dialled.ok());
  REQUIRE(acc.ok());
  CHECK(dialled->peer == "app@127.0.0.1");
  CHECK(acc->peer == "mure_d@127.0.0.1");
  // The dialler offers what the acceptor offers: a hidden node with named monitors.
  CHECK(acc->peer_flags == dflag::kOffered);
  CHECK((acc->peer_flags & dflag::kPublished) == 0);
  CHECK(dialled->peer_flags == dflag::kOffered);
}

TEST_CASE("a coordinator with another cookie refuses the dialler, and the dialler says so", "[dialout][security]") {
  Pair p;
  const HandshakeParams coordinator{"app@127.0.0.1", 7, "OTHER"};
  auto accepted = std::async(std::launch::async, [&] {
    auto r = AcceptHandshake(p.peer, coordinator, milliseconds(2000));
    ::shutdown(p.peer, SHUT_RDWR);  // as the connection does on a failed handshake
    return r;
  });
  auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(2000));
  auto acc = accepted.get();
  REQUIRE_FALSE(acc.ok());
  CHECK_THAT(acc.status().message(), Catch::Contains("wrong cookie"));
  REQUIRE_FALSE(dialled.ok());
  CHECK_THAT(dialled.status().message(), Catch::Contains("wrong cookie"));
}

TEST_CASE("the dialler checks the coordinator's ack: a peer without the cookie is not served", "[dialout][security]") {
  Pair p;
  auto coord = std::async(std::launch::async, [&] { return ScriptedCoordinator(p.peer, "ok", "app@127.0.0.1", "FAKE"); });
  auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(2000));
  std::string sn = coord.get();
  REQUIRE_FALSE(dialled.ok());
  CHECK_THAT(dialled.status().message(), Catch::Contains("another cookie"));
  // send_name: 'N', our flags, our creation, our name.
  REQUIRE(sn.size() == 15 + kDialler.node_name.size());
  CHECK(sn[0] == 'N');
  CHECK(Be(sn, 1, 8) == dflag::kOffered);
  CHECK(Be(sn, 9, 4) == 91);
  CHECK(sn.substr(15) == kDialler.node_name);
}

TEST_CASE("the dialler refuses a node that is not the one it dialled, and a refusal status", "[dialout][security]") {
  {
    Pair p;
    auto coord = std::async(std::launch::async, [&] { return ScriptedCoordinator(p.peer, "ok", "evil@127.0.0.1", "SECRET"); });
    auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(2000));
    REQUIRE_FALSE(dialled.ok());
    CHECK_THAT(dialled.status().message(), Catch::Contains("the node there is evil@127.0.0.1"));
    ::shutdown(p.node, SHUT_RDWR);
    coord.get();
  }
  {
    Pair p;
    auto coord = std::async(std::launch::async, [&] { return ScriptedCoordinator(p.peer, "not_allowed", "", ""); });
    auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(2000));
    coord.get();
    REQUIRE_FALSE(dialled.ok());
    CHECK_THAT(dialled.status().message(), Catch::Contains("not_allowed"));
  }
  {
    Pair p;
    auto coord = std::async(std::launch::async, [&] { return ScriptedCoordinator(p.peer, "ok", "app@127.0.0.1", "SECRET"); });
    auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(2000));
    coord.get();
    CHECK(dialled.ok());  // the script itself is a valid coordinator
  }
}

TEST_CASE("a silent coordinator ends the dial-out handshake at its deadline", "[dialout][handshake]") {
  Pair p;
  const auto t0 = std::chrono::steady_clock::now();
  auto dialled = InitiateHandshake(p.node, kDialler, "app@127.0.0.1", milliseconds(200));
  REQUIRE_FALSE(dialled.ok());
  CHECK_THAT(dialled.status().message(), Catch::Contains("deadline"));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("the coordinator's port comes from epmd's PORT2 answer", "[dialout]") {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(listen(lfd, 4) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  const uint16_t port = ntohs(sa.sin_port);
  // A scripted epmd: knows "app" at port 40123, nobody else.
  auto epmd = std::async(std::launch::async, [&] {
    std::string asked;
    for (int i = 0; i < 2; ++i) {
      int c = accept(lfd, nullptr, nullptr);
      REQUIRE(c >= 0);
      uint8_t l[2];
      ReadN(c, l, 2);
      std::string req(static_cast<size_t>(l[0] << 8 | l[1]), '\0');
      ReadN(c, req.data(), req.size());
      asked += req + ";";
      std::string ans = "w";
      if (req == "zapp") {
        ans.push_back('\0');
        PutBe(ans, 40123, 2);
        ans += "H";  // node type, protocol, versions, name, extra: ignored by the dialler
        ans.push_back('\0');
        PutBe(ans, 6, 2);
        PutBe(ans, 6, 2);
        PutBe(ans, 3, 2);
        ans += "app";
        PutBe(ans, 0, 2);
      } else {
        ans.push_back('\1');
      }
      REQUIRE(write(c, ans.data(), ans.size()) == static_cast<ssize_t>(ans.size()));
      close(c);
    }
    return asked;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  auto found = EpmdPortPlease("127.0.0.1", port, "app", deadline);
  auto missing = EpmdPortPlease("127.0.0.1", port, "nobody", deadline);
  CHECK(epmd.get() == "zapp;znobody;");
  close(lfd);
  REQUIRE(found.ok());
  CHECK(*found == 40123);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("no node named nobody"));
  // Nothing listening any more: said so, not a hang.
  auto none = EpmdPortPlease("127.0.0.1", port, "app", std::chrono::steady_clock::now() + std::chrono::seconds(2));
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.status().message(), Catch::Contains("no epmd answering"));
}

TEST_CASE("the reconnect backoff doubles from 250 ms up to its bound, with jitter in [half, all]", "[dialout]") {
  const milliseconds max(30000);
  CHECK(DialBackoff(1, max, 0.0) == milliseconds(125));
  CHECK(DialBackoff(1, max, 0.999999) == milliseconds(249));
  CHECK(DialBackoff(2, max, 0.0) == milliseconds(250));
  CHECK(DialBackoff(3, max, 0.0) == milliseconds(500));
  CHECK(DialBackoff(7, max, 0.0) == milliseconds(8000));   // 16 s, halved
  CHECK(DialBackoff(8, max, 0.0) == milliseconds(15000));  // 32 s capped at 30 s, then halved
  CHECK(DialBackoff(1000000, max, 0.999999) <= max);
  CHECK(DialBackoff(1000000, max, 0.0) == milliseconds(15000));
  CHECK(DialBackoff(3, milliseconds(100), 1.0) == milliseconds(100));
}
