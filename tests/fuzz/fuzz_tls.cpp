// libFuzzer target: a real mure::Connection speaking TLS distribution (dist/tls.h, the node's
// OpenSSL server side) over a socket pair, so that the node's TLS transport carries what
// fuzz_wire.cpp sends in the clear, and the TLS server itself faces garbage.
//
// A test CA, the node's certificate and the harness's client certificate (EC P-256) are made at
// start-up with the OpenSSL API, written to a private temporary directory only for as long as
// TlsContext::Create reads them, and never stored anywhere else.
//
// The first byte of the input picks what the rest is:
//   bit 1 set:   raw bytes on the socket, no TLS from the harness: the node's TLS server faces them
//                from its first byte (the seeds are real ClientHellos, TLS 1.2 and 1.3, so
//                mutations reach into the handshake's parsing);
//   bit 1 clear: the harness completes a TLS handshake as a client (OpenSSL, certificate
//                verified both ways; capped at TLS 1.2 when bit 2 is set), then inside the
//                session sends:
//                  bit 0 clear: the bytes an initiator sends from the first byte of the
//                               distribution handshake on (4-byte lengths inside TLS);
//                  bit 0 set:   after a correct OTP 25 handshake inside the session, the
//                               post-handshake stream (fuzz_common.h).
// The harness then sends close_notify and half-closes its side, reads what the node writes until
// the node closes, and joins the connection's thread, as fuzz_wire does.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "dist/connection.h"
#include "dist/tls.h"
#include "fuzz_common.h"
#include "fuzz_dist.h"

using namespace mure;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::abort();
}

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

void AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) Die(std::string("certificate extension ") + value);
  X509_EXTENSION_free(ext);
}

/// A certificate for `key` named `cn`, signed by `issuer` (self-signed, a CA, when null).
Cert MakeCert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial) {
  Cert cert(X509_new(), &X509_free);
  X509* x = cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  if (issuer == nullptr) {
    AddExt(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(x, signer, NID_basic_constraints, "CA:FALSE");
    AddExt(x, signer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) <= 0) Die("X509_sign");
  return cert;
}

void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) Die("cannot write " + path);
  int ok = cert != nullptr ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  if (ok != 1) Die("cannot write PEM " + path);
}

struct TlsWorld : fuzz::ConnectionWorld {
  std::shared_ptr<TlsContext> server, client;

  TlsWorld() {
    // FuzzConfig's 200 ms covers a distribution handshake; a TLS one first (tens of ms on a
    // loaded, sanitized run) must not run into it, or inputs would lose the session's paths. The
    // harness always half-closes its side, so no input makes the node wait for the deadline.
    cfg.handshake_timeout_ms = 2000;
    // As the node's main() does: OpenSSL writes to the socket with write(2), and a peer that has
    // gone must not kill the process (here: either side of the socket pair).
    ::signal(SIGPIPE, SIG_IGN);
    Key ca_key(EVP_EC_gen("P-256"), &EVP_PKEY_free), node_key(EVP_EC_gen("P-256"), &EVP_PKEY_free),
        client_key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
    if (!ca_key || !node_key || !client_key) Die("EVP_EC_gen");
    Cert ca = MakeCert("mure fuzz CA", ca_key.get(), nullptr, nullptr, 1);
    Cert node = MakeCert("mure_fuzz", node_key.get(), ca.get(), ca_key.get(), 2);
    Cert peer = MakeCert("fuzz", client_key.get(), ca.get(), ca_key.get(), 3);
    // TlsContext reads files: a 0700 directory for as long as it takes, then nothing on disk.
    char tmpl[] = "/tmp/mure_fuzz_tls.XXXXXX";
    const mode_t old_mask = ::umask(077);
    if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    const std::string dir = tmpl;
    const std::string files[] = {dir + "/ca.pem", dir + "/node.pem", dir + "/node.key", dir + "/client.pem",
                                 dir + "/client.key"};
    WritePem(files[0], ca.get(), nullptr);
    WritePem(files[1], node.get(), nullptr);
    WritePem(files[2], nullptr, node_key.get());
    WritePem(files[3], peer.get(), nullptr);
    WritePem(files[4], nullptr, client_key.get());
    ::umask(old_mask);
    auto s = TlsContext::Create(TlsSettings{files[1], files[2], files[0], true, "1.2"}, TlsContext::Role::kServer);
    auto c = TlsContext::Create(TlsSettings{files[3], files[4], files[0], true, "1.2"}, TlsContext::Role::kClient);
    for (const auto& f : files) ::unlink(f.c_str());
    ::rmdir(dir.c_str());
    if (!s.ok()) Die("server TlsContext: " + s.status().message());
    if (!c.ok()) Die("client TlsContext: " + c.status().message());
    server = s.value();
    client = c.value();
  }
};

TlsWorld& H() {
  static auto* h = new TlsWorld;
  return *h;
}

/// The harness's TLS client over its end of the socket pair (made non-blocking).
class Client {
 public:
  Client(SSL_CTX* ctx, int fd, bool tls12) : ssl_(SSL_new(ctx), &SSL_free), fd_(fd) {
    if (!ssl_) Die("SSL_new");
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    SSL_set_fd(ssl_.get(), fd_);
    if (tls12) SSL_set_max_proto_version(ssl_.get(), TLS1_2_VERSION);
  }
  SSL* ssl() { return ssl_.get(); }

  /// Runs `op` (SSL_connect, SSL_read or SSL_write as a lambda) until it succeeds, polling the
  /// socket for what it wants, until `deadline`; its result, or <= 0 on failure.
  template <typename Op>
  int Blocking(Op op, Clock::time_point deadline) {
    for (;;) {
      ERR_clear_error();
      int r = op();
      if (r > 0) return r;
      int e = SSL_get_error(ssl_.get(), r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return r;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return -1;
      pollfd pfd{fd_, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
      ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 100)));
    }
  }
  bool Connect(Clock::time_point deadline) {
    return Blocking([&] { return SSL_connect(ssl_.get()); }, deadline) == 1;
  }
  bool WriteAll(const void* p, size_t n, Clock::time_point deadline) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      int w = Blocking([&] { return SSL_write(ssl_.get(), c, static_cast<int>(n)); }, deadline);
      if (w <= 0) return false;
      c += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  bool ReadAll(void* p, size_t n, Clock::time_point deadline) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      int r = Blocking([&] { return SSL_read(ssl_.get(), c, static_cast<int>(n)); }, deadline);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  /// Sends `data` inside the session while reading (and dropping) what the node writes, so that
  /// neither side stalls the other; then close_notify and a half-close; reads until the node's
  /// side ends (or its connection has).
  void Pump(const uint8_t* data, size_t size, const Connection& conn) {
    size_t off = 0;
    bool shut = false;
    fuzz::PumpUntilEnd(
        fd_, conn, [&] { return static_cast<short>(POLLIN | (off < size ? POLLOUT : 0)); },
        [&](short) {
          char buf[4096];
          for (;;) {
            ERR_clear_error();
            int r = SSL_read(ssl_.get(), buf, sizeof buf);
            if (r > 0) continue;
            int e = SSL_get_error(ssl_.get(), r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
            return false;  // the node closed its side (close_notify, end of stream) or broke off
          }
          if (off < size) {
            // After WANT_WRITE, the retry repeats the same bytes: off moves only on success.
            ERR_clear_error();
            int w = SSL_write(ssl_.get(), data + off, static_cast<int>(std::min<size_t>(size - off, 4096)));
            if (w > 0) {
              off += static_cast<size_t>(w);
            } else {
              int e = SSL_get_error(ssl_.get(), w);
              if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) off = size;  // the node stopped reading
            }
          } else if (!shut) {
            ERR_clear_error();
            SSL_shutdown(ssl_.get());
            ::shutdown(fd_, SHUT_WR);
            shut = true;
          }
          return true;
        });
    ERR_clear_error();
  }

 private:
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_;
  int fd_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  TlsWorld& h = H();
  const bool after_handshake = data[0] & 1;
  const bool raw = data[0] & 2;
  const bool tls12 = data[0] & 4;
  ++data;
  --size;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  h.ResetStore();
  {
    auto conn = std::make_shared<Connection>(fds[0], h.service, h.store, h.cfg, h.identity, h.params);
    conn->SetTls(h.server);
    conn->Start();
    const int peer = fds[1];
    if (raw) {
      fuzz::SendAndDrain(peer, *conn, data, size);
    } else {
      Client client(h.client->get(), peer, tls12);
      // A refusal before the node's own handshake deadline (2 s here) is a finding; after it,
      // only a slow (loaded) run. The harness waits longer than the node.
      const auto start = Clock::now();
      const auto deadline = start + std::chrono::seconds(5);
      bool ok = client.Connect(deadline);
      if (ok && after_handshake) {
        ok = fuzz::InitiatorHandshake(
            4, [&](const std::string& m) { return client.WriteAll(m.data(), m.size(), deadline); },
            [&](void* p, size_t n) { return client.ReadAll(p, n, deadline); });
      }
      if (!ok && Clock::now() - start < std::chrono::milliseconds(h.cfg.handshake_timeout_ms)) {
        Die(after_handshake ? "the node refused a correct TLS and distribution handshake"
                            : "the node refused a correct TLS handshake");
      }
      if (ok) client.Pump(data, size, *conn);
      else fuzz::DrainUntilEnd(peer, *conn);
    }
    fuzz::JoinFinished(*conn);
    conn.reset();  // queued jobs may hold it a little longer
  }
  ::close(fds[1]);
  h.Settle();
  return 0;
}
