// mure — the node's presence in the cluster: the listening socket and the epmd registration (a
// hidden node), both through erl_interface, and the acceptor, which hands each new socket to a
// Connection that runs the handshake (dist/handshake.h) on its own thread. Pending handshakes are
// limited in total and per source address, and a source whose handshakes keep failing is refused
// for a while (dist/handshake_gate.h); each handshake has a deadline. With `connect` set, the node
// also dials its coordinator and keeps that connection up (dist/dialer.h).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/connection.h"
#include "dist/dialer.h"
#include "dist/handshake_gate.h"
#include "dist/wire.h"
#include "mure/config.h"
#include "mure/status.h"
#include "proto/handler.h"
#include "store/tensor_store.h"

namespace mure {

class Node {
 public:
  /// Listen, register with epmd, start accepting. The cookie is used for the handshakes only.
  static Result<std::unique_ptr<Node>> Start(const Config& cfg, const std::string& cookie, RequestHandler& handler,
                                             TensorStore& store);
  ~Node();

  /// Unregister from epmd, stop accepting, close every connection. Safe to call twice.
  void Shutdown();
  /// Join the threads of connections that have ended (call now and then).
  void Reap();

  int port() const { return port_; }
  const std::string& name() const { return cfg_.name; }

 private:
  Node(const Config& cfg, RequestHandler& handler, TensorStore& store);
  void AcceptLoop();

  const Config& cfg_;
  RequestHandler& handler_;
  TensorStore& store_;
  std::unique_ptr<NodeIdentity> identity_;
  HandshakeParams handshake_;
  struct EiState;
  std::unique_ptr<EiState> ei_;
  int listen_fd_ = -1;
  int publish_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::shared_ptr<HandshakeGate> gate_;         // pending handshakes per source; outlives no connection
  std::shared_ptr<TlsContext> tls_;  // TLS distribution, when configured
  std::shared_ptr<TlsContext> tls_client_;  // the same, as a TLS client, for the dial-out
  std::unique_ptr<Dialer> dialer_;   // dial-out to cfg.connect, when set
  std::shared_ptr<ByteBudget> receive_budget_;  // frame receive buffers of all connections
  std::mutex mu_;
  std::vector<std::shared_ptr<Connection>> conns_;  // guarded by mu_
};

}  // namespace mure
