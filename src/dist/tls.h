// mure — TLS distribution (OpenSSL): the node's side of what a BEAM started with
// `-proto_dist inet_tls` speaks. The whole connection is one TLS session: TLS first, then the
// ordinary distribution handshake (cookie included) and frames inside it.
//
// A TlsContext holds the node's certificate and key and the CA its peers' certificates must chain
// to; it is made once at start-up, and refuses half a configuration or a key that does not match
// its certificate. Peers must present a certificate the CA signed (mutual verification) unless
// the configuration says otherwise. TLS 1.2 is the floor; 1.3 is what OTP 25 and OpenSSL 3 agree on.
#pragma once

#include <openssl/ssl.h>
#include <poll.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "dist/transport.h"
#include "mure/config.h"
#include "mure/status.h"

namespace mure {

struct TlsSettings {
  std::string cert, key, ca;  ///< PEM files: this side's certificate (chain) and key, the peers' CA
  bool verify_peer = true;    ///< a peer without a certificate the CA signed is refused
  std::string min_version = "1.2";  ///< "1.2" or "1.3"
};

/// The node's TLS settings from its config; none when TLS is not configured, an error for half
/// of a configuration.
Result<std::optional<TlsSettings>> TlsSettingsFrom(const Config& cfg);

class TlsContext {
 public:
  enum class Role { kServer, kClient };
  /// Loads and checks the files (readable, PEM, key matches certificate, CA usable).
  static Result<std::shared_ptr<TlsContext>> Create(const TlsSettings& settings, Role role = Role::kServer);
  SSL_CTX* get() const { return ctx_.get(); }
  Role role() const { return role_; }
  /// "certificate CN=..., expires ..., CA ..., peers verified", for the start-up log.
  const std::string& summary() const { return summary_; }

 private:
  TlsContext(SSL_CTX* ctx, Role role) : ctx_(ctx, &SSL_CTX_free), role_(role) {}
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  Role role_;
  std::string summary_;
};

/// A TLS session over a connected socket (not owned). Handshake() first, under a deadline; then
/// Recv/Sendv as the Transport contract says.
class TlsTransport final : public Transport {
 public:
  TlsTransport(std::shared_ptr<TlsContext> ctx, int fd);
  /// The TLS handshake (server or client side, as the context's role), polling the socket until
  /// `deadline`. A refusal names its reason (no certificate, unknown CA, expired, not TLS, ...).
  Status Handshake(std::chrono::steady_clock::time_point deadline);

  ssize_t Recv(void* p, size_t n) override;
  ssize_t Sendv(const iovec* iov, int count) override;
  short Events(bool reading, bool writing) const override;
  bool CanRecv(short revents) const override;
  bool CanSend(short revents) const override;
  bool Buffered() const override;
  std::string Error() const override { return error_; }
  std::string Describe() const override;
  size_t HandshakeLengthBytes() const override { return 4; }
  /// The peer certificate's subject, once the handshake has succeeded ("" if it sent none).
  std::string PeerSubject() const;

 private:
  /// Maps an SSL_* result to the Transport contract (errno, want_, error_).
  ssize_t Map(int ret, const char* what);

  std::shared_ptr<TlsContext> ctx_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_;
  int fd_;
  short read_want_ = POLLIN;    // what the last Recv that found nothing waits for
  short write_want_ = POLLOUT;  // the same for Sendv
  std::string error_;
  std::string gather_;     // small pieces gathered into one record
  size_t retry_len_ = 0;   // bytes the next write must at least cover (a record pending since WANT_WRITE)
};

}  // namespace mure
