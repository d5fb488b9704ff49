#include "dist/handshake.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "dist/md5.h"

namespace mure {
namespace {

using Clock = std::chrono::steady_clock;

/// Socket I/O bounded by one deadline for the whole handshake.
class DeadlineIo {
 public:
  DeadlineIo(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  Status Read(uint8_t* p, size_t n) {
    while (n > 0) {
      MURE_RETURN_IF_ERROR(Wait(POLLIN));
      ssize_t r = ::recv(fd_, p, n, MSG_DONTWAIT);
      if (r == 0) return Status::BadArg("peer closed the connection during the handshake");
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return Status::BadArg(std::string("read during the handshake: ") + std::strerror(errno));
      }
      p += r;
      n -= static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  Status Write(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      MURE_RETURN_IF_ERROR(Wait(POLLOUT));
      ssize_t r = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return Status::BadArg(std::string("write during the handshake: ") + std::strerror(errno));
      }
      off += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  /// One handshake message: a 2-byte length, then that many bytes (at most `max`).
  Result<std::string> ReadMessage(size_t max) {
    uint8_t len[2];
    MURE_RETURN_IF_ERROR(Read(len, 2));
    size_t n = static_cast<size_t>(len[0]) << 8 | len[1];
    if (n == 0 || n > max) return Status::BadArg("handshake message of " + std::to_string(n) + " bytes");
    std::string msg(n, '\0');
    MURE_RETURN_IF_ERROR(Read(reinterpret_cast<uint8_t*>(msg.data()), n));
    return msg;
  }

  Status WriteMessage(const std::string& body) {
    std::string out;
    out.push_back(static_cast<char>(body.size() >> 8));
    out.push_back(static_cast<char>(body.size()));
    out += body;
    return Write(out);
  }

 private:
  Status Wait(short events) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) return Status::BadArg("handshake deadline passed");
    pollfd pfd{fd_, events, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left));
    if (r == 0) return Status::BadArg("handshake deadline passed");
    if (r < 0 && errno != EINTR) return Status::BadArg(std::string("poll: ") + std::strerror(errno));
    return Status::Ok();
  }

  int fd_;
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
  auto d = Md5(cookie + std::to_string(challenge));
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

Result<HandshakeResult> AcceptHandshake(int fd, const HandshakeParams& params, std::chrono::milliseconds timeout) {
  DeadlineIo io(fd, Clock::now() + timeout);
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

}  // namespace mure
