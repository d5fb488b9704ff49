// mure — dial-out: the node opens the distribution connection to its coordinator itself (a node
// behind NAT or a firewall that no one can dial), and keeps it up.
//
// One thread per node: it asks epmd on the coordinator's host for the coordinator's port
// (PORT2_REQ, as erl_interface's ei_connect does), connects, and hands the socket to a Connection
// in dial-out mode (dist/connection.h), which runs the initiating handshake (TLS as a client first,
// when TLS is configured) under handshake_timeout_ms and then serves requests exactly as an
// accepted connection does. When the connection cannot be made or ends, the dialer waits and tries
// again: exponential backoff from 250 ms up to connect_backoff_max_ms, each wait drawn between
// half and all of the current step (jitter, so that many nodes cut off together do not come back
// in step); a connection that was established resets the step. A failure is logged when its
// reason changes, not at every attempt.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dist/connection.h"
#include "mure/status.h"

namespace mure {

/// The coordinator's port, from epmd on `host` (port `epmd_port`), for the node `alive`, by
/// `deadline`. The error names what failed: no epmd answering, no such name registered, ...
Result<uint16_t> EpmdPortPlease(const std::string& host, uint16_t epmd_port, const std::string& alive,
                                std::chrono::steady_clock::time_point deadline);

/// A TCP connection to `host`:`port` by `deadline` (IPv4; non-blocking, close-on-exec, no Nagle).
Result<int> ConnectTcp(const std::string& host, uint16_t port, std::chrono::steady_clock::time_point deadline);

/// The wait before the next attempt after `failures` failed ones in a row (the first is 1):
/// min(max, 250 ms * 2^(failures-1)), drawn in [half of it, all of it] with `random` in [0, 1).
std::chrono::milliseconds DialBackoff(uint32_t failures, std::chrono::milliseconds max, double random);

class Dialer {
 public:
  /// Makes the Connection for a socket just connected (already in dial-out mode, not started).
  using MakeConnection = std::function<std::shared_ptr<Connection>(int fd)>;

  Dialer(const Config& cfg, MakeConnection make);
  ~Dialer();
  void Start();
  /// Stop dialling and close the connection (any thread). Safe to call twice.
  void Stop();

 private:
  void Loop();
  /// One attempt: epmd, TCP, then the connection's handshake. Returns when the connection ends
  /// (ok: it had been established) or could not be made (the reason).
  Status Attempt();
  /// Sleeps `d` or until Stop(); false when stopping.
  bool Wait(std::chrono::milliseconds d);

  const Config& cfg_;
  MakeConnection make_;
  std::string alive_, host_;
  uint16_t epmd_port_ = 4369;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                     // guarded by mu_
  std::shared_ptr<Connection> current_;   // guarded by mu_
};

}  // namespace mure
