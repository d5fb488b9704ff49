// Shared by the targets that drive a whole mure::Connection over a socket pair (fuzz_wire.cpp,
// fuzz_tls.cpp): socket I/O, the initiator's side of a correct distribution handshake, and the
// wait for the connection to end.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "dist/connection.h"
#include "dist/handshake.h"
#include "dist/wire.h"
#include "fuzz_common.h"

namespace mure::fuzz {

/// The world of a connection target: World plus the node's identity and handshake parameters.
struct ConnectionWorld : World {
  NodeIdentity identity{kNodeName, 77, ""};
  HandshakeParams params{kNodeName, 77, kCookie};
  ConnectionWorld() { SetLogLevel(LogLevel::kError); }
};

inline void PutBe(std::string& s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}

inline bool WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

inline bool ReadAll(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::recv(fd, c, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// The initiator's side of a correct handshake (as OTP 25 does it), each message behind a
/// `len_bytes` length (2 over TCP; 4 inside TLS, as inet_tls_dist does). `write(const
/// std::string&)` and `read(void*, size_t)` move exact byte counts and say whether they could.
/// False when the node broke off; aborts (a finding) when it acknowledges with a wrong digest.
template <typename Write, typename Read>
bool InitiatorHandshake(size_t len_bytes, Write write, Read read) {
  auto send_msg = [&](const std::string& body) {
    std::string out;
    PutBe(out, body.size(), static_cast<int>(len_bytes));
    return write(out + body);
  };
  auto recv_msg = [&](std::string& body) {
    uint8_t len[4] = {};
    if (!read(len, len_bytes)) return false;
    size_t n = 0;
    for (size_t i = 0; i < len_bytes; ++i) n = n << 8 | len[i];
    if (n > 1024) return false;  // no handshake message of the node's is that long
    body.assign(n, '\0');
    return read(body.data(), body.size());
  };
  std::string name = "N";
  PutBe(name, dflag::kRequired | dflag::kDistMonitor | dflag::kDistMonitorName | dflag::kPublished, 8);
  PutBe(name, 9, 4);
  PutBe(name, std::strlen(kPeerNode), 2);
  name += kPeerNode;
  std::string status, challenge, ack;
  if (!send_msg(name) || !recv_msg(status) || status != "sok") return false;
  if (!recv_msg(challenge) || challenge.size() < 17 || challenge[0] != 'N') return false;
  uint32_t c = 0;
  for (int i = 0; i < 4; ++i) c = c << 8 | static_cast<uint8_t>(challenge[9 + static_cast<size_t>(i)]);
  std::string reply = "r";
  PutBe(reply, 4242, 4);
  reply += ChallengeDigest(kCookie, c);
  if (!send_msg(reply) || !recv_msg(ack)) return false;
  if (ack != "a" + ChallengeDigest(kCookie, 4242)) {
    std::fprintf(stderr, "fuzz: the node acknowledged with a wrong digest\n");
    std::abort();
  }
  return true;
}

/// Polls `fd` until `step(revents)` says the node's side is over (returns false), or the
/// connection's thread has ended while nothing arrives (a refused handshake leaves the socket to
/// the owner of the Connection, as the node's reaper does). `events()` is what to poll for now.
/// Aborts (a finding) when neither happens within 10 s.
template <typename Events, typename Step>
void PumpUntilEnd(int fd, const Connection& conn, Events events, Step step) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "fuzz: the connection neither closed nor ended within 10 s\n");
      std::abort();
    }
    pollfd pfd{fd, events(), 0};
    int r = ::poll(&pfd, 1, 2);
    if (r < 0) continue;
    if (r == 0 && conn.finished()) break;
    if (!step(pfd.revents)) break;
  }
}

/// Reads and drops what the node writes until it closes (plain socket).
inline void DrainUntilEnd(int fd, const Connection& conn) {
  PumpUntilEnd(fd, conn, [] { return static_cast<short>(POLLIN); }, [&](short revents) {
    if (revents == 0) return true;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return false;
    return !(n < 0 && errno != EAGAIN && errno != EINTR);
  });
}

/// Writes `data` on a thread of its own and half-closes, while this one reads until the node's
/// side ends, so that neither side can stall the other (the input in the clear).
inline void SendAndDrain(int fd, const Connection& conn, const uint8_t* data, size_t size) {
  std::thread writer([&] {
    WriteAll(fd, data, size);
    ::shutdown(fd, SHUT_WR);
  });
  DrainUntilEnd(fd, conn);
  writer.join();
}

/// After the input: the Connection's thread must end and the connection be finished.
inline void JoinFinished(Connection& conn) {
  conn.Join();
  if (!conn.finished()) {
    std::fprintf(stderr, "fuzz: the connection's thread ended without finishing\n");
    std::abort();
  }
}

}  // namespace mure::fuzz
