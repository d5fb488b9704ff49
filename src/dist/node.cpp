#include "dist/node.h"

#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <ei.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "common/log.h"
#include "common/signals.h"

namespace mure {

struct Node::EiState {
  ei_cnode ec{};
};

namespace {
RateLimitedLog g_refused_log{std::chrono::milliseconds(2000)};
RateLimitedLog g_backoff_log{std::chrono::milliseconds(2000)};

HandshakeLimits LimitsFrom(const Config& cfg) {
  HandshakeLimits l;
  l.max_pending = cfg.max_pending_handshakes;
  l.max_pending_per_source = cfg.max_pending_handshakes_per_source;
  l.max_failures = cfg.max_failed_handshakes;
  l.backoff = std::chrono::seconds(cfg.handshake_backoff_s);
  return l;
}
}  // namespace

Result<std::unique_ptr<Node>> Node::Start(const Config& cfg, const std::string& cookie, RequestHandler& handler,
                                          TensorStore& store) {
  std::unique_ptr<Node> node(new Node(cfg, handler, store));
  node->ei_ = std::make_unique<EiState>();
  ei_init();
  auto at = cfg.name.find('@');
  std::string alive = cfg.name.substr(0, at), host = cfg.name.substr(at + 1);
  // listen = none (with connect): no listening socket, no epmd; the dial-out is the only way in.
  const bool listening = cfg.listen != "none";
  in_addr addr{};
  if (::inet_pton(AF_INET, listening ? cfg.listen.c_str() : "127.0.0.1", &addr) != 1) {
    return Status::BadArg("listen address \"" + cfg.listen + "\" is not an IPv4 address");
  }
  // TLS distribution when configured: half a configuration, an unreadable file or a key that is
  // not the certificate's stops the node here, before it listens.
  auto tls_settings = TlsSettingsFrom(cfg);
  if (!tls_settings.ok()) return tls_settings.status();
  if (*tls_settings) {
    auto tls = TlsContext::Create(**tls_settings);
    if (!tls.ok()) return tls.status();
    node->tls_ = std::move(*tls);
    LogInfo("TLS distribution: " + node->tls_->summary() + "; plain-TCP peers are refused");
    if (!cfg.connect.empty()) {
      // The dial-out is a TLS client: it verifies the coordinator's certificate against tls_ca.
      auto client = TlsContext::Create(**tls_settings, TlsContext::Role::kClient);
      if (!client.ok()) return client.status();
      node->tls_client_ = std::move(*client);
    }
  }
  if (listening && cfg.listen != "127.0.0.1" && !node->tls_) {
    LogWarn("listening on " + cfg.listen + ", not loopback: Erlang distribution is not encrypted and the cookie is "
            "the only lock. Configure TLS distribution (tls_cert, tls_key, tls_ca) or use a private network or "
            "VPN (see the README's security section)");
  }
  // A fresh creation per run (>= 4: smaller values are remapped by ei).
  std::random_device rd;
  uint32_t creation = 4 + (rd() % 0x3ffffff0u);
  if (ei_connect_xinit(&node->ei_->ec, host.c_str(), alive.c_str(), cfg.name.c_str(), &addr, cookie.c_str(),
                       creation) < 0) {
    return Status::Internal("ei_connect_xinit failed for " + cfg.name + " (erl_errno " + std::to_string(erl_errno) + ")");
  }
  int port = cfg.port;
  node->listen_fd_ = listening ? ei_xlisten(&node->ei_->ec, &addr, &port, 128) : -1;
  if (listening && node->listen_fd_ < 0) {
    return Status::Internal("cannot listen on " + cfg.listen + ":" + std::to_string(cfg.port) + ": " +
                            std::strerror(erl_errno));
  }
  node->port_ = port;
  node->publish_fd_ = listening ? ei_publish(&node->ei_->ec, port) : -1;
  if (!listening) {
    // Nothing to register: no one can dial this node.
  } else if (node->publish_fd_ < 0 && !cfg.connect.empty()) {
    // A node that dials out needs no epmd of its own (a phone runs none): it serves over the
    // connection it makes.
    LogWarn("cannot register " + cfg.name + " with epmd here (" + std::strerror(erl_errno) +
            "): serving over the dial-out connection only");
  } else if (node->publish_fd_ < 0) {
    ::close(node->listen_fd_);
    node->listen_fd_ = -1;
    return Status::Internal("cannot register " + cfg.name + " with epmd (is epmd running, and is the name free?): " +
                            std::strerror(erl_errno));
  }
  // The node's own pid, the sender of its monitors.
  char pidbuf[512];
  int index = 0;
  ei_encode_pid(pidbuf, &index, ei_self(&node->ei_->ec));
  node->identity_ = std::make_unique<NodeIdentity>(cfg.name, creation, std::string(pidbuf, static_cast<size_t>(index)));
  node->handshake_ = HandshakeParams{cfg.name, creation, cookie};
  if (listening) {
    node->acceptor_ = std::thread([n = node.get()] {
      pthread_setname_np(pthread_self(), "mure-accept");
      AltSignalStack alt_stack;  // a stack overflow here is reported, not silent (common/signals.h)
      n->AcceptLoop();
    });
  }
  if (!cfg.connect.empty()) {
    Node* n = node.get();
    node->dialer_ = std::make_unique<Dialer>(cfg, [n](int fd) {
      auto conn = std::make_shared<Connection>(fd, n->handler_, n->store_, n->cfg_, *n->identity_, n->handshake_);
      conn->SetReceiveBudget(n->receive_budget_);
      if (n->tls_client_) conn->SetTls(n->tls_client_);
      conn->SetDialOut(n->cfg_.connect);
      return conn;
    });
    node->dialer_->Start();
  }
  if (listening) {
    LogInfo("node " + cfg.name + " listening on " + cfg.listen + ":" + std::to_string(port) +
            (node->publish_fd_ >= 0 ? ", registered with epmd as a hidden node" : ", not registered with epmd") +
            (node->tls_ ? " (TLS distribution)" : ""));
  } else {
    LogInfo("node " + cfg.name + " listening on no address (listen = none), not registered with epmd: serving over the "
            "dial-out connection to " + cfg.connect + " only" + (node->tls_ ? " (TLS distribution)" : ""));
  }
  return node;
}

Node::Node(const Config& cfg, RequestHandler& handler, TensorStore& store)
    : cfg_(cfg),
      handler_(handler),
      store_(store),
      gate_(std::make_shared<HandshakeGate>(LimitsFrom(cfg))),
      receive_budget_(std::make_shared<ByteBudget>(cfg.receive_buffer_limit)) {}

Node::~Node() {
  Shutdown();
  dialer_.reset();  // joins its thread and its connection
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns) c->Join();
}

void Node::Shutdown() {
  if (stop_.exchange(true)) return;
  if (dialer_) dialer_->Stop();
  if (publish_fd_ >= 0) ::close(publish_fd_);  // closing the epmd socket removes the name
  publish_fd_ = -1;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : conns_) c->RequestStop();
}

void Node::Reap() {
  std::vector<std::shared_ptr<Connection>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if ((*it)->finished()) {
        done.push_back(std::move(*it));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : done) c->Join();
}

void Node::AcceptLoop() {
  while (!stop_.load()) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    int n = ::poll(&pfd, 1, 250);
    if (n <= 0) continue;
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from), &from_len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (stop_.load()) {
      ::close(fd);
      break;
    }
    char text[INET_ADDRSTRLEN] = "?";
    if (from.sin_family == AF_INET) ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    const std::string source = text;
    // Refused before a byte is read: a refusal costs no thread and cannot be slowed down.
    Status admit = gate_->Admit(source);
    if (!admit.ok()) {
      ::close(fd);
      handler_.CountRefused();
      g_refused_log.Log(LogLevel::kWarn, "refused a connection from " + source + ": " + admit.message());
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // The handshake runs on the connection's own thread, under a deadline: a silent peer
    // holds up no one. Its end, success or failure, is reported to the gate from there.
    auto conn = std::make_shared<Connection>(fd, handler_, store_, cfg_, *identity_, handshake_);
    conn->SetReceiveBudget(receive_budget_);
    if (tls_) conn->SetTls(tls_);
    conn->SetHandshakeDone([gate = gate_, source, backoff = cfg_.handshake_backoff_s,
                            failures = cfg_.max_failed_handshakes](bool ok) {
      if (gate->Finish(source, ok)) {
        g_backoff_log.Log(LogLevel::kWarn, "refusing connections from " + source + " for " + std::to_string(backoff) +
                                               " s: " + std::to_string(failures) +
                                               " failed handshakes within a minute");
      }
    });
    conn->Start();
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_.load()) conn->RequestStop();  // Shutdown() may have stopped the others meanwhile
    conns_.push_back(std::move(conn));
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

}  // namespace mure
