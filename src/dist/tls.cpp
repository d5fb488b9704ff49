#include "dist/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace mure {

namespace {

using Clock = std::chrono::steady_clock;

/// OpenSSL's queued errors, oldest first, as one line (and the queue emptied).
std::string Drain() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

std::string Asn1Time(const ASN1_TIME* t) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || ASN1_TIME_print(bio.get(), t) != 1) return "?";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string Subject(X509* cert) {
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

/// A file the node can read: named in the error, with the setting it came from.
Status Readable(const std::string& setting, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    return Status::BadArg(setting + " = " + path + ": cannot read it (" + std::strerror(errno) + ")");
  }
  return Status::Ok();
}

}  // namespace

Result<std::optional<TlsSettings>> TlsSettingsFrom(const Config& cfg) {
  const std::pair<const char*, const std::string*> files[] = {
      {"tls_cert", &cfg.tls_cert}, {"tls_key", &cfg.tls_key}, {"tls_ca", &cfg.tls_ca}};
  std::string missing;
  int given = 0;
  for (const auto& [key, value] : files) {
    if (!value->empty()) {
      ++given;
    } else {
      missing += missing.empty() ? key : std::string(", ") + key;
    }
  }
  if (given == 0) return std::optional<TlsSettings>();
  if (given != 3) {
    return Status::BadArg("half a TLS configuration: tls_cert, tls_key and tls_ca go together (missing " + missing +
                          "); set all three for TLS distribution, or none for plain TCP");
  }
  TlsSettings s;
  s.cert = cfg.tls_cert;
  s.key = cfg.tls_key;
  s.ca = cfg.tls_ca;
  s.verify_peer = cfg.tls_verify_peer;
  s.min_version = cfg.tls_min_version;
  return std::optional<TlsSettings>(std::move(s));
}

Result<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsSettings& settings, Role role) {
  MURE_RETURN_IF_ERROR(Readable("tls_cert", settings.cert));
  MURE_RETURN_IF_ERROR(Readable("tls_key", settings.key));
  MURE_RETURN_IF_ERROR(Readable("tls_ca", settings.ca));
  if (settings.min_version != "1.2" && settings.min_version != "1.3") {
    return Status::BadArg("tls_min_version: expected 1.2 or 1.3, got \"" + settings.min_version + "\"");
  }
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(role == Role::kServer ? TLS_server_method() : TLS_client_method());
  if (raw == nullptr) return Status::Internal("SSL_CTX_new: " + Drain());
  std::shared_ptr<TlsContext> ctx(new TlsContext(raw, role));
  SSL_CTX_set_min_proto_version(raw, settings.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // Writes may stop after any record and resume from a moved buffer: the connection writes
  // straight from its reply queue, a piece at a time.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(raw, 0);  // every connection verifies its peer's certificate afresh
  if (SSL_CTX_use_certificate_chain_file(raw, settings.cert.c_str()) != 1) {
    return Status::BadArg("tls_cert = " + settings.cert + ": not a PEM certificate (" + Drain() + ")");
  }
  if (SSL_CTX_use_PrivateKey_file(raw, settings.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    return Status::BadArg("tls_key = " + settings.key +
                          (mismatch ? " does not match tls_cert = " + settings.cert : ": not a PEM private key") +
                          " (" + Drain() + ")");
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return Status::BadArg("tls_key = " + settings.key + " does not match tls_cert = " + settings.cert + " (" +
                          Drain() + ")");
  }
  if (SSL_CTX_load_verify_locations(raw, settings.ca.c_str(), nullptr) != 1) {
    return Status::BadArg("tls_ca = " + settings.ca + ": no usable PEM CA certificate (" + Drain() + ")");
  }
  X509* own = SSL_CTX_get0_certificate(raw);
  if (X509_cmp_current_time(X509_get0_notAfter(own)) <= 0) {
    return Status::BadArg("tls_cert = " + settings.cert + " expired on " + Asn1Time(X509_get0_notAfter(own)) +
                          "; peers would refuse it");
  }
  if (role == Role::kServer) {
    // The CA's name goes to the peer in the CertificateRequest, so it picks the matching certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.ca.c_str())) {
      SSL_CTX_set_client_CA_list(raw, names);
    }
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | (settings.verify_peer ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
  } else {
    SSL_CTX_set_verify(raw, settings.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  }
  ctx->summary_ = "certificate " + Subject(own) + " (expires " + Asn1Time(X509_get0_notAfter(own)) + "), CA " +
                  settings.ca + ", TLS " + settings.min_version + "+, " +
                  (settings.verify_peer ? "peers must present a certificate the CA signed"
                                        : "peers' certificates verified when presented, not required");
  return ctx;
}

TlsTransport::TlsTransport(std::shared_ptr<TlsContext> ctx, int fd)
    : ctx_(std::move(ctx)), ssl_(SSL_new(ctx_->get()), &SSL_free), fd_(fd) {
  // Non-blocking: every wait is a poll(2) the caller bounds (a handshake's deadline, the loop's ticks).
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  if (ssl_) SSL_set_fd(ssl_.get(), fd_);
}

Status TlsTransport::Handshake(Clock::time_point deadline) {
  if (!ssl_) return Status::Internal("SSL_new: " + Drain());
  const bool server = ctx_->role() == TlsContext::Role::kServer;
  for (;;) {
    ERR_clear_error();
    int r = server ? SSL_accept(ssl_.get()) : SSL_connect(ssl_.get());
    if (r == 1) return Status::Ok();
    int e = SSL_get_error(ssl_.get(), r);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (ev == 0) {
      std::string why;
      long verify = SSL_get_verify_result(ssl_.get());
      if (verify != X509_V_OK) {
        why = std::string("the peer's certificate: ") + X509_verify_cert_error_string(verify);
      } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        why = errno ? std::string("the socket: ") + std::strerror(errno) : "the peer closed the connection";
      } else {
        why = Drain();
      }
      return Status::BadArg("TLS handshake failed: " + why);
    }
    MURE_RETURN_IF_ERROR(PollUntil(fd_, ev, deadline, "TLS handshake"));
  }
}

ssize_t TlsTransport::Map(int ret, const char* what) {
  int e = SSL_get_error(ssl_.get(), ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    (std::strcmp(what, "read") == 0 ? read_want_ : write_want_) = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify: the peer ended the session
  if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ERR_clear_error();
    return 0;  // the socket closed without close_notify: a peer gone, as with plain TCP
  }
  if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    if (errno == 0) return 0;
    error_ = std::string(what) + ": " + std::strerror(errno);
  } else {
    error_ = std::string("TLS ") + what + ": " + Drain();
  }
  errno = EPROTO;
  return -1;
}

ssize_t TlsTransport::Recv(void* p, size_t n) {
  ERR_clear_error();
  int r = SSL_read(ssl_.get(), p, static_cast<int>(std::min<size_t>(n, INT_MAX)));
  if (r > 0) {
    read_want_ = POLLIN;
    return r;
  }
  return Map(r, "read");
}

ssize_t TlsTransport::Sendv(const iovec* iov, int count) {
  // Small pieces (frame heads, small replies) are gathered into one record; large ones are
  // encrypted straight from where they lie. SSL_write's retry rule: after WANT_WRITE the next
  // call must start with the same bytes and be at least as long as what is pending (it may move:
  // SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), so a first piece shorter than that is gathered up to it.
  constexpr size_t kGather = 16 * 1024;
  ssize_t total = 0;
  int i = 0;
  while (i < count) {
    const char* p;
    size_t len;
    int next = i;
    const size_t need = total == 0 ? retry_len_ : 0;
    if (iov[i].iov_len >= std::max(need, kGather / 4)) {
      p = static_cast<const char*>(iov[i].iov_base);
      len = iov[i].iov_len;
      next = i + 1;
    } else {
      gather_.clear();
      const size_t want = std::max(need, kGather);
      while (next < count && gather_.size() < want) {
        const size_t take = std::min(iov[next].iov_len, want - gather_.size());
        gather_.append(static_cast<const char*>(iov[next].iov_base), take);
        if (take < iov[next].iov_len) break;  // the rest of this piece goes in the next record
        ++next;
      }
      if (gather_.size() < need) {
        error_ = "write: the bytes of a pending TLS record are gone";
        errno = EPROTO;
        return -1;
      }
      p = gather_.data();
      len = gather_.size();
    }
    size_t off = 0;
    while (off < len) {
      ERR_clear_error();
      int r = SSL_write(ssl_.get(), p + off, static_cast<int>(std::min<size_t>(len - off, INT_MAX)));
      if (r <= 0) {
        ssize_t m = Map(r, "write");
        if (m < 0 && errno == EAGAIN) retry_len_ = std::min<size_t>(len - off, 128 * 1024);
        if (total > 0) return total;  // what was taken; a failure shows again on the next call
        if (m == 0) {
          error_ = "write: the peer ended the TLS session";
          errno = EPROTO;
          return -1;
        }
        return m;
      }
      retry_len_ = 0;
      write_want_ = POLLOUT;
      off += static_cast<size_t>(r);
      total += r;
    }
    if (p == gather_.data()) {
      // Whole pieces were consumed up to `next`; a piece cut short is finished by returning, so
      // the caller rebuilds its vector from the first byte not taken.
      size_t whole = 0;
      for (int k = i; k < next; ++k) whole += iov[k].iov_len;
      if (whole != len) return total;
    }
    i = next;
  }
  return total;
}

short TlsTransport::Events(bool reading, bool writing) const {
  return static_cast<short>((reading ? read_want_ : 0) | (writing ? write_want_ : 0));
}

bool TlsTransport::CanRecv(short revents) const {
  return Buffered() || (revents & (read_want_ | POLLHUP | POLLERR));
}

bool TlsTransport::CanSend(short revents) const { return revents & (write_want_ | POLLHUP | POLLERR); }

bool TlsTransport::Buffered() const { return ssl_ && SSL_pending(ssl_.get()) > 0; }

std::string TlsTransport::Describe() const {
  if (!ssl_) return "TLS";
  return std::string(SSL_get_version(ssl_.get())) + " (" + SSL_get_cipher_name(ssl_.get()) + ")";
}

std::string TlsTransport::PeerSubject() const {
  if (!ssl_) return "";
  std::unique_ptr<X509, decltype(&X509_free)> cert(SSL_get1_peer_certificate(ssl_.get()), &X509_free);
  return cert ? Subject(cert.get()) : "";
}

}  // namespace mure
