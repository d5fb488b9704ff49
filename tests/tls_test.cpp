// TLS distribution's transport (dist/tls.h) over a real socket pair, with certificates made by
// scripts/tls_certs (the openssl command line): the session carries bytes both ways, a peer
// without the CA's certificate is refused with its reason, a silent one at the deadline.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "dist/tls.h"

using namespace mure;
using Clock = std::chrono::steady_clock;

namespace {

/// Certificates for the whole test run: a CA with a node and a client, an expired client, and a
/// client of another CA. Made once.
struct Certs {
  std::string dir;
  Certs() {
    dir = (std::filesystem::temp_directory_path() / ("mure_tls_test_" + std::to_string(::getpid()))).string();
    const std::string script = std::string(MURE_SOURCE_DIR) + "/scripts/tls_certs";
    const std::string q = " '" + dir + "' ";
    for (const std::string& args : {q + "node client", "--expired" + q + "old", "--ca other" + q + "stranger"}) {
      std::string cmd = script + " " + args + " >/dev/null";
      if (std::system(cmd.c_str()) != 0) FAIL("scripts/tls_certs failed: " << cmd);
    }
  }
  ~Certs() { std::filesystem::remove_all(dir); }
  TlsSettings For(const std::string& name, const std::string& ca = "ca") const {
    TlsSettings s;
    s.cert = dir + "/" + name + ".pem";
    s.key = dir + "/" + name + ".key";
    s.ca = dir + "/" + ca + ".pem";
    return s;
  }
};

const Certs& TheCerts() {
  static Certs certs;
  return certs;
}

struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    a = fds[0];
    b = fds[1];
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

std::shared_ptr<TlsContext> Context(const TlsSettings& s, TlsContext::Role role) {
  auto ctx = TlsContext::Create(s, role);
  REQUIRE(ctx.ok());
  return *ctx;
}

/// Server and client handshakes on the two ends; the server's status (the client's is returned
/// through `client_status`).
Status Handshake(TlsTransport& server, TlsTransport& client, Status* client_status = nullptr,
                 std::chrono::milliseconds deadline = std::chrono::milliseconds(5000)) {
  auto c = std::async(std::launch::async, [&] { return client.Handshake(Clock::now() + deadline); });
  Status s = server.Handshake(Clock::now() + deadline);
  Status cs = c.get();
  if (client_status) *client_status = cs;
  return s;
}

/// Move `bytes` from one transport to the other, writing in iovec pieces and reading as the
/// connection does (EAGAIN: poll for what the transport asks).
std::string Move(TlsTransport& from, int from_fd, TlsTransport& to, int to_fd, const std::string& bytes) {
  auto writer = std::async(std::launch::async, [&] {
    size_t off = 0;
    while (off < bytes.size()) {
      // Three pieces of unequal size each time: a head, a small middle, the rest.
      size_t left = bytes.size() - off, h = std::min<size_t>(left, 7), m = std::min<size_t>(left - h, 1000);
      iovec iov[3] = {{const_cast<char*>(bytes.data()) + off, h},
                      {const_cast<char*>(bytes.data()) + off + h, m},
                      {const_cast<char*>(bytes.data()) + off + h + m, left - h - m}};
      ssize_t n = from.Sendv(iov, 3);
      if (n < 0) {
        if (errno != EAGAIN) return false;
        pollfd p{from_fd, from.Events(false, true), 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      off += static_cast<size_t>(n);
    }
    return true;
  });
  std::string got;
  std::string buf(64 * 1024, '\0');
  while (got.size() < bytes.size()) {
    ssize_t n = to.Recv(buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno != EAGAIN) break;
      pollfd p{to_fd, to.Events(true, false), 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    got.append(buf.data(), static_cast<size_t>(n));
  }
  CHECK(writer.get());
  return got;
}

/// A raw OpenSSL client on `fd` with `ctx` (a certificate the node must refuse, or none): runs
/// its side while the server's handshake runs; the server's status.
Status RefusedByServer(TlsTransport& server, SSL_CTX* ctx, int fd) {
  SSL* ssl = SSL_new(ctx);
  REQUIRE(ssl != nullptr);
  SSL_set_fd(ssl, fd);
  auto cl = std::async(std::launch::async, [&] {
    int r = SSL_connect(ssl);
    if (r == 1) {  // TLS 1.3: the refusal arrives with the first read
      char b;
      r = SSL_read(ssl, &b, 1);
    }
    return r;
  });
  Status s = server.Handshake(Clock::now() + std::chrono::seconds(5));
  CHECK(cl.get() <= 0);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return s;
}

}  // namespace

TEST_CASE("TLS settings come whole or not at all", "[tls][config]") {
  Config cfg;
  auto none = TlsSettingsFrom(cfg);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  cfg.tls_cert = "/x/node.pem";
  cfg.tls_ca = "/x/ca.pem";
  auto half = TlsSettingsFrom(cfg);
  REQUIRE_FALSE(half.ok());
  CHECK_THAT(half.status().message(), Catch::Contains("half a TLS configuration") && Catch::Contains("missing tls_key"));
  cfg.tls_key = "/x/node.key";
  auto whole = TlsSettingsFrom(cfg);
  REQUIRE(whole.ok());
  REQUIRE(whole->has_value());
  CHECK((*whole)->verify_peer);
  CHECK((*whole)->key == "/x/node.key");
}

TEST_CASE("a TLS context refuses files it cannot use, naming them", "[tls][config]") {
  const Certs& c = TheCerts();
  TlsSettings s = c.For("node");
  SECTION("a missing file") {
    s.ca = c.dir + "/nowhere.pem";
    auto r = TlsContext::Create(s);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("tls_ca") && Catch::Contains("nowhere.pem"));
  }
  SECTION("a key that is not the certificate's") {
    s.key = c.dir + "/client.key";
    auto r = TlsContext::Create(s);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("does not match"));
  }
  SECTION("a key where the certificate should be") {
    s.cert = c.dir + "/node.key";
    auto r = TlsContext::Create(s);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("tls_cert") && Catch::Contains("not a PEM certificate"));
  }
  SECTION("its own certificate expired") {
    auto r = TlsContext::Create(c.For("old"));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("expired"));
  }
  SECTION("a version that is not 1.2 or 1.3") {
    s.min_version = "1.1";
    CHECK_FALSE(TlsContext::Create(s).ok());
  }
  SECTION("a good one") {
    auto r = TlsContext::Create(s);
    REQUIRE(r.ok());
    CHECK_THAT((*r)->summary(), Catch::Contains("CN = node") || Catch::Contains("CN=node"));
  }
}

TEST_CASE("a TLS session carries bytes both ways, whole and in order", "[tls]") {
  const Certs& c = TheCerts();
  Pair p;
  TlsTransport server(Context(c.For("node"), TlsContext::Role::kServer), p.a);
  TlsTransport client(Context(c.For("client"), TlsContext::Role::kClient), p.b);
  Status cs;
  REQUIRE(Handshake(server, client, &cs).ok());
  REQUIRE(cs.ok());
  CHECK_THAT(server.Describe(), Catch::Contains("TLSv1.3"));
  CHECK_THAT(server.PeerSubject(), Catch::Contains("client"));
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  CHECK(Move(client, p.b, server, p.a, big) == big);
  const std::string small = "a reply";
  CHECK(Move(server, p.a, client, p.b, small) == small);
  // On the wire, none of it in clear: read the socket under the session.
  const std::string secret = "mure-secret-" + std::string(100, 'x');
  iovec iov{const_cast<char*>(secret.data()), secret.size()};
  REQUIRE(client.Sendv(&iov, 1) == static_cast<ssize_t>(secret.size()));
  std::string raw(4096, '\0');
  ssize_t n = ::recv(p.a, raw.data(), raw.size(), 0);
  REQUIRE(n > static_cast<ssize_t>(secret.size()));
  raw.resize(static_cast<size_t>(n));
  CHECK(raw.find("mure-secret") == std::string::npos);
}

TEST_CASE("a TLS peer is refused, with the reason, unless the CA signed its current certificate", "[tls][security]") {
  const Certs& c = TheCerts();
  auto server_ctx = Context(c.For("node"), TlsContext::Role::kServer);
  Pair p;
  TlsTransport server(server_ctx, p.a);
  SECTION("no certificate") {
    TlsSettings anon = c.For("client");
    // A client context without a certificate of its own: the CA only.
    SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
    REQUIRE(raw != nullptr);
    SSL_CTX_load_verify_locations(raw, anon.ca.c_str(), nullptr);
    Status s = RefusedByServer(server, raw, p.b);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("TLS handshake failed") && Catch::Contains("certificate"));
  }
  SECTION("a certificate from another CA") {
    TlsSettings other = c.For("stranger", "other");
    other.ca = c.dir + "/ca.pem";  // it trusts the node; the node does not trust it
    TlsTransport client(Context(other, TlsContext::Role::kClient), p.b);
    Status s = Handshake(server, client);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("unable to get local issuer certificate"));
  }
  SECTION("an expired certificate") {
    // A client context that loads the expired certificate anyway (Create refuses its own expired one).
    TlsSettings old = c.For("old");
    SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
    REQUIRE(raw != nullptr);
    REQUIRE(SSL_CTX_use_certificate_file(raw, old.cert.c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(raw, old.key.c_str(), SSL_FILETYPE_PEM) == 1);
    Status s = RefusedByServer(server, raw, p.b);
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("certificate has expired"));
  }
  SECTION("a plain distribution handshake") {
    // What a BEAM without inet_tls sends first: a send_name message.
    const std::string name = std::string("\x00\x15N", 3) + std::string(8, '\0') + std::string(4, '\0') +
                             std::string("\x00\x04", 2) + "a@b1";
    REQUIRE(::write(p.b, name.data(), name.size()) == static_cast<ssize_t>(name.size()));
    Status s = server.Handshake(Clock::now() + std::chrono::seconds(5));
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("TLS handshake failed"));
  }
  SECTION("a peer that connects and says nothing: dropped at the deadline") {
    auto t0 = Clock::now();
    Status s = server.Handshake(t0 + std::chrono::milliseconds(300));
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("deadline"));
    CHECK(Clock::now() - t0 >= std::chrono::milliseconds(250));  // not before it (poll counts whole ms)
  }
}
