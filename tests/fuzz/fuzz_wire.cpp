// libFuzzer target: a real mure::Connection (dist/connection.cpp) over a socket pair.
//
// The first byte of the input picks what the rest is:
//   even: the bytes an initiator sends from the first byte of the handshake on
//         (dist/handshake.cpp AcceptHandshake: send_name, challenge reply, under a deadline);
//   odd:  the post-handshake stream (fuzz_common.h), sent after a correct OTP 25 handshake that
//         the harness performs itself, so the connection's own frame reader runs: the length
//         prefix against max_message, ticks, oversized frames read in part and discarded, the
//         control message, the dispatch, the store, the BLIS queue and the reply writer.
// The harness then half-closes its side, reads whatever the node writes until the node closes,
// and joins the connection's thread. Sanitizers, libFuzzer's malloc limit and its timeout catch
// what goes wrong; a connection that never ends is a hang (-timeout).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "dist/connection.h"
#include "dist/handshake.h"
#include "dist/wire.h"
#include "fuzz_common.h"
#include "sched/service.h"
#include "store/tensor_store.h"

using namespace mure;

namespace {

struct Harness : fuzz::World {
  NodeIdentity identity{fuzz::kNodeName, 77, ""};
  HandshakeParams params{fuzz::kNodeName, 77, fuzz::kCookie};
  Harness() { SetLogLevel(LogLevel::kError); }
};

Harness& H() {
  static Harness* h = new Harness;
  return *h;
}

void PutBe(std::string& s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}

bool WriteAll(int fd, const void* p, size_t n) {
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

bool ReadAll(int fd, void* p, size_t n) {
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

bool SendMsg(int fd, const std::string& body) {
  std::string out;
  PutBe(out, body.size(), 2);
  out += body;
  return WriteAll(fd, out.data(), out.size());
}

bool RecvMsg(int fd, std::string& body) {
  uint8_t len[2];
  if (!ReadAll(fd, len, 2)) return false;
  body.assign(static_cast<size_t>(len[0] << 8 | len[1]), '\0');
  return ReadAll(fd, body.data(), body.size());
}

/// The initiator's side of a correct handshake (as OTP 25 does it).
bool Handshake(int fd) {
  std::string name = "N";
  PutBe(name, dflag::kRequired | dflag::kDistMonitor | dflag::kDistMonitorName | dflag::kPublished, 8);
  PutBe(name, 9, 4);
  PutBe(name, std::strlen(fuzz::kPeerNode), 2);
  name += fuzz::kPeerNode;
  std::string status, challenge, ack;
  if (!SendMsg(fd, name) || !RecvMsg(fd, status) || status != "sok") return false;
  if (!RecvMsg(fd, challenge) || challenge.size() < 17 || challenge[0] != 'N') return false;
  uint32_t c = 0;
  for (int i = 0; i < 4; ++i) c = c << 8 | static_cast<uint8_t>(challenge[9 + static_cast<size_t>(i)]);
  std::string reply = "r";
  PutBe(reply, 4242, 4);
  reply += ChallengeDigest(fuzz::kCookie, c);
  if (!SendMsg(fd, reply) || !RecvMsg(fd, ack)) return false;
  if (ack != "a" + ChallengeDigest(fuzz::kCookie, 4242)) {
    std::fprintf(stderr, "fuzz: the node acknowledged with a wrong digest\n");
    std::abort();
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Harness& h = H();
  const bool after_handshake = data[0] & 1;
  ++data;
  --size;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  h.ResetStore();
  {
    auto conn = std::make_shared<Connection>(fds[0], h.service, h.store, h.cfg, h.identity, h.params);
    conn->Start();
    const int peer = fds[1];
    bool ok = after_handshake ? Handshake(peer) : true;
    if (after_handshake && !ok) {
      std::fprintf(stderr, "fuzz: the node refused a correct handshake\n");
      std::abort();
    }
    // Write on one thread, read on this one, so that neither side can stall the other.
    std::thread writer([&] {
      WriteAll(peer, data, size);
      ::shutdown(peer, SHUT_WR);
    });
    // Until the node closes its side, or its thread ends (a refused handshake leaves the socket
    // to the owner of the Connection, as the node's reaper does).
    char buf[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "fuzz: the connection neither closed nor ended within 10 s\n");
        std::abort();
      }
      pollfd pfd{peer, POLLIN, 0};
      int r = ::poll(&pfd, 1, 2);
      if (r == 0) {
        if (conn->finished()) break;
        continue;
      }
      if (r < 0) continue;
      ssize_t n = ::recv(peer, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) break;
      if (n < 0 && errno != EAGAIN && errno != EINTR) break;
    }
    writer.join();
    conn->Join();
    if (!conn->finished()) {
      std::fprintf(stderr, "fuzz: the connection's thread ended without finishing\n");
      std::abort();
    }
    conn.reset();  // queued jobs may hold it a little longer
  }
  ::close(fds[1]);
  h.Settle();
  return 0;
}
