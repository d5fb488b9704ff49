#include "dist/handshake.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <openssl/evp.h>

namespace mure {
namespace {

using Clock = std::chrono::steady_clock;

/// Socket (or TLS) I/O bounded by one deadline for the whole handshake.
class DeadlineIo {
 public:
  DeadlineIo(Transport& io, int fd, size_t prefix, Clock::time_point deadline)
      : io_(io), fd_(fd), prefix_(prefix), deadline_(deadline) {}

  Status Read(uint8_t* p, size_t n) {
    while (n > 0) {
      if (!io_.Buffered()) MURE_RETURN_IF_ERROR(Wait(io_.Events(true, false)));
      ssize_t r = io_.Recv(p, n);
      if (r == 0) return Status::BadArg("peer closed the connection during the handshake");
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return Status::BadArg("read during the handshake: " + io_.Error());
      }
      p += r;
      n -= static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  Status Write(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      MURE_RETURN_IF_ERROR(Wait(io_.Events(false, true)));
      iovec iov{const_cast<char*>(bytes.data()) + off, bytes.size() - off};
      ssize_t r = io_.Sendv(&iov, 1);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return Status::BadArg("write during the handshake: " + io_.Error());
      }
      off += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  /// One handshake message: its length (2 bytes over TCP, 4 inside TLS, as OTP's inet_tls_dist
  /// frames it), then that many bytes (at most `max`).
  Result<std::string> ReadMessage(size_t max) {
    uint8_t len[4];
    MURE_RETURN_IF_ERROR(Read(len, prefix_));
    size_t n = 0;
    for (size_t i = 0; i < prefix_; ++i) n = n << 8 | len[i];
    if (n == 0 || n > max) return Status::BadArg("handshake message of " + std::to_string(n) + " bytes");
    std::string msg(n, '\0');
    MURE_RETURN_IF_ERROR(Read(reinterpret_cast<uint8_t*>(msg.data()), n));
    return msg;
  }

  Status WriteMessage(const std::string& body) {
    std::string out;
    for (size_t i = prefix_; i-- > 0;) out.push_back(static_cast<char>(body.size() >> (8 * i)));
    out += body;
    return Write(out);
  }

 private:
  Status Wait(short events) { return PollUntil(fd_, events, deadline_, "handshake"); }

  Transport& io_;
  int fd_;
  size_t prefix_;  // bytes of each message's length
  Clock::time_point deadline_;
};

uint64_t Be(const std::string& s, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<uint8_t>(s[off + static_cast<size_t>(i)]);
  return v;
}

void PutBe(std::string& s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

std::string ChallengeDigest(const std::string& cookie, uint32_t challenge) {
  // The protocol's digest is MD5, OpenSSL's: the BEAM's own handshake, no security claim beyond
  // the cookie's.
  const std::string text = cookie + std::to_string(challenge);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), d, &n, EVP_md5(), nullptr) != 1 || n != 16) return std::string();
  return std::string(reinterpret_cast<const char*>(d), n);
}

Result<HandshakeResult> AcceptHandshake(Transport& transport, int fd, const HandshakeParams& params,
                                        std::chrono::steady_clock::time_point deadline) {
  DeadlineIo io(transport, fd, transport.HandshakeLengthBytes(), deadline);
  HandshakeResult result;

  // send_name: 'N' Flags:8 Creation:4 Nlen:2 Name, or the pre-OTP-23 'n' Version:2 Flags:4 Name.
  auto name_msg = io.ReadMessage(1024);
  if (!name_msg.ok()) return name_msg.status();
  const std::string& nm = *name_msg;
  bool old_style = false;
  if (nm[0] == 'N') {
    if (nm.size() < 15) return Status::BadArg("short send_name message");
    result.peer_flags = Be(nm, 1, 8);
    size_t nlen = Be(nm, 13, 2);
    if (nm.size() != 15 + nlen) return Status::BadArg("send_name length mismatch");
    result.peer = nm.substr(15);
  } else if (nm[0] == 'n') {
    if (nm.size() < 8) return Status::BadArg("short send_name message");
    old_style = true;
    result.peer_flags = Be(nm, 3, 4);
    result.peer = nm.substr(7);
  } else {
    return Status::BadArg("not a distribution handshake (first byte " + std::to_string(static_cast<uint8_t>(nm[0])) + ")");
  }
  if (result.peer.empty() || result.peer.find('@') == std::string::npos) {
    return Status::BadArg("peer sent a malformed node name");
  }
  if ((result.peer_flags & dflag::kRequired) != dflag::kRequired) {
    (void)io.WriteMessage("snot_allowed");
    return Status::BadArg("peer " + result.peer + " lacks capabilities this node requires (an Erlang/OTP older "
                          "than 23?)");
  }
  MURE_RETURN_IF_ERROR(io.WriteMessage("sok"));

  // send_challenge: 'N' Flags:8 Challenge:4 Creation:4 Nlen:2 Name.
  std::random_device rd;
  const uint32_t challenge = rd();
  std::string ch = "N";
  PutBe(ch, dflag::kOffered, 8);
  PutBe(ch, challenge, 4);
  PutBe(ch, params.creation, 4);
  PutBe(ch, params.node_name.size(), 2);
  ch += params.node_name;
  MURE_RETURN_IF_ERROR(io.WriteMessage(ch));

  auto reply = io.ReadMessage(64);
  if (!reply.ok()) return reply.status();
  if (old_style && (*reply)[0] == 'c') {  // send_complement: the high flag bits and the creation
    if (reply->size() != 9) return Status::BadArg("bad send_complement message");
    result.peer_flags |= Be(*reply, 1, 4) << 32;
    reply = io.ReadMessage(64);
    if (!reply.ok()) return reply.status();
  }
  // send_challenge_reply: 'r' Challenge:4 Digest:16.
  if (reply->size() != 21 || (*reply)[0] != 'r') return Status::BadArg("bad challenge reply");
  if (reply->substr(5, 16) != ChallengeDigest(params.cookie, challenge)) {
    return Status::BadArg("wrong cookie");
  }
  const uint32_t peer_challenge = static_cast<uint32_t>(Be(*reply, 1, 4));
  MURE_RETURN_IF_ERROR(io.WriteMessage("a" + ChallengeDigest(params.cookie, peer_challenge)));
  return result;
}

Result<HandshakeResult> InitiateHandshake(Transport& transport, int fd, const HandshakeParams& params,
                                          const std::string& expected_peer,
                                          std::chrono::steady_clock::time_point deadline) {
  DeadlineIo io(transport, fd, transport.HandshakeLengthBytes(), deadline);
  HandshakeResult result;
  // send_name: 'N' Flags:8 Creation:4 Nlen:2 Name.
  std::string nm = "N";
  PutBe(nm, dflag::kOffered, 8);
  PutBe(nm, params.creation, 4);
  PutBe(nm, params.node_name.size(), 2);
  nm += params.node_name;
  MURE_RETURN_IF_ERROR(io.WriteMessage(nm));

  // recv_status: 's' Status. "alive": the peer holds a connection to a node of our name; this
  // node has no other connection of its own to it, so that one is stale ("true": replace it).
  auto status = io.ReadMessage(256);
  if (!status.ok()) return status.status();
  if ((*status)[0] != 's') return Status::BadArg("bad status message from " + expected_peer);
  const std::string st = status->substr(1);
  if (st == "alive") {
    MURE_RETURN_IF_ERROR(io.WriteMessage("strue"));
  } else if (st != "ok" && st != "ok_simultaneous") {
    return Status::BadArg(expected_peer + " refused the connection (status \"" + st.substr(0, 64) + "\")" +
                          (st == "not_allowed" ? ": not in its allowed nodes (net_kernel:allow/1)" : ""));
  }

  // recv_challenge: 'N' Flags:8 Challenge:4 Creation:4 Nlen:2 Name.
  auto ch = io.ReadMessage(1024);
  if (!ch.ok()) return ch.status();
  const std::string& c = *ch;
  if (c[0] != 'N' || c.size() < 19) return Status::BadArg("bad challenge message from " + expected_peer);
  result.peer_flags = Be(c, 1, 8);
  const uint32_t peer_challenge = static_cast<uint32_t>(Be(c, 9, 4));
  const size_t nlen = Be(c, 17, 2);
  if (c.size() != 19 + nlen) return Status::BadArg("challenge message length mismatch");
  result.peer = c.substr(19);
  if (result.peer != expected_peer) {
    return Status::BadArg("dialled " + expected_peer + " but the node there is " + result.peer.substr(0, 256));
  }
  if ((result.peer_flags & dflag::kRequired) != dflag::kRequired) {
    return Status::BadArg("peer " + result.peer + " lacks capabilities this node requires (an Erlang/OTP older "
                          "than 23?)");
  }

  // send_challenge_reply: 'r' Challenge:4 Digest:16.
  std::random_device rd;
  const uint32_t challenge = rd();
  std::string reply = "r";
  PutBe(reply, challenge, 4);
  reply += ChallengeDigest(params.cookie, peer_challenge);
  MURE_RETURN_IF_ERROR(io.WriteMessage(reply));

  // recv_challenge_ack: 'a' Digest:16. A peer with another cookie closes the connection instead.
  auto ack = io.ReadMessage(64);
  if (!ack.ok()) {
    const std::string& why = ack.status().message();
    if (why.find("peer closed") != std::string::npos || why.find("reset") != std::string::npos) {
      return Status::BadArg(expected_peer + " closed the connection at the challenge: wrong cookie (the "
                            "coordinator logs it), or it refuses this node");
    }
    return ack.status();
  }
  if (ack->size() != 17 || (*ack)[0] != 'a') return Status::BadArg("bad challenge ack from " + expected_peer);
  if (ack->substr(1) != ChallengeDigest(params.cookie, challenge)) {
    return Status::BadArg(expected_peer + " answered our challenge with another cookie's digest");
  }
  return result;
}

Result<HandshakeResult> InitiateHandshake(int fd, const HandshakeParams& params, const std::string& expected_peer,
                                          std::chrono::milliseconds timeout) {
  PlainTransport plain(fd);
  return InitiateHandshake(plain, fd, params, expected_peer, Clock::now() + timeout);
}

Result<HandshakeResult> AcceptHandshake(int fd, const HandshakeParams& params, std::chrono::milliseconds timeout) {
  PlainTransport plain(fd);
  return AcceptHandshake(plain, fd, params, Clock::now() + timeout);
}

}  // namespace mure
