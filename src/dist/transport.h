// mure — what a distribution connection's bytes travel through: the socket itself, or a TLS
// session over it (dist/tls.h). The connection's I/O thread is the only caller.
//
// Both kinds are non-blocking and speak the socket's own language, so the connection's loop reads
// the same either way: Recv and Sendv return bytes moved (> 0), 0 when the peer ended the stream
// (Recv only), or -1 with errno set — EAGAIN when nothing can move now (then PollEvents() says
// what to wait for), anything else a broken connection whose reason Error() gives.
#pragma once

#include <poll.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "mure/status.h"

namespace mure {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual ssize_t Recv(void* p, size_t n) = 0;
  virtual ssize_t Sendv(const iovec* iov, int count) = 0;
  /// The poll(2) events to wait for when the caller is `reading` and/or `writing`: a TLS read may
  /// need the socket writable (and a write readable) while the session does its own exchanges.
  virtual short Events(bool reading, bool writing) const {
    return static_cast<short>((reading ? POLLIN : 0) | (writing ? POLLOUT : 0));
  }
  /// Whether poll(2)'s `revents` let a Recv, or a Sendv, make progress (or fail, and say why).
  virtual bool CanRecv(short revents) const { return revents & (POLLIN | POLLHUP | POLLERR); }
  virtual bool CanSend(short revents) const { return revents & (POLLOUT | POLLHUP | POLLERR); }
  /// Bytes already received and decrypted, which poll(2) on the socket will not announce: the
  /// caller reads on without waiting.
  virtual bool Buffered() const { return false; }
  /// Why the last call that returned -1 (not EAGAIN) failed, for the log.
  virtual std::string Error() const = 0;
  /// The length prefix of each distribution handshake message: 2 over TCP; OTP's inet_tls_dist
  /// uses 4 inside TLS (its socket is {packet, 4} from the start).
  virtual size_t HandshakeLengthBytes() const { return 2; }
  /// "tcp" or "TLS 1.3 (TLS_AES_256_GCM_SHA384)", for the log.
  virtual std::string Describe() const { return "tcp"; }
};

/// Waits until `fd` is ready for `events` or `deadline` passes; "<what> deadline passed" then
/// (a handshake's wait, TLS's or distribution's). Ok also on EINTR: the caller tries again.
Status PollUntil(int fd, short events, std::chrono::steady_clock::time_point deadline, const std::string& what);

/// The socket itself. Does not own `fd`.
class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}
  ssize_t Recv(void* p, size_t n) override;
  ssize_t Sendv(const iovec* iov, int count) override;
  std::string Error() const override { return error_; }

 private:
  int fd_;
  std::string error_;
};

}  // namespace mure
