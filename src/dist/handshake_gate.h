// mure — who may start a distribution handshake: limits on pending handshakes, in total and per
// source address, and a back-off for a source whose handshakes keep failing.
//
// A handshake costs a thread until it succeeds, fails or reaches its deadline. Without a limit per
// source, one host holding a few hundred silent sockets fills the node-wide limit and every
// legitimate peer is refused until the deadlines pass (measured on 67c2630: 300 silent sockets
// from one address made 23 of 24 good handshakes fail). Without a back-off, a host may try cookies
// as fast as the node answers. The acceptor asks Admit() before it starts a handshake and the
// connection reports Finish() when it ends; a refusal closes the socket at once, before any byte
// is read, so it costs no thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "mure/status.h"

namespace mure {

struct HandshakeLimits {
  size_t max_pending = 256;                          ///< handshakes in progress, all sources together
  size_t max_pending_per_source = 16;                ///< handshakes in progress from one address
  uint32_t max_failures = 50;                        ///< failed handshakes per source per window; 0 = no back-off
  std::chrono::seconds failure_window{60};           ///< the window failures are counted in
  std::chrono::seconds backoff{60};                  ///< how long a source that reached max_failures is refused
};

/// Thread-safe: Admit runs on the acceptor, Finish on connection threads.
class HandshakeGate {
 public:
  using Clock = std::chrono::steady_clock;

  explicit HandshakeGate(HandshakeLimits limits) : limits_(limits) {}

  /// May a connection from `source` start a handshake at `now`? Ok: it is counted as pending
  /// until Finish(source, ...). Otherwise kOverloaded with the reason, for the log.
  Status Admit(const std::string& source, Clock::time_point now = Clock::now());
  /// A handshake admitted for `source` ended. Returns true when this failure put the source into
  /// back-off (the caller logs it once).
  bool Finish(const std::string& source, bool ok, Clock::time_point now = Clock::now());

  size_t pending() const;
  size_t pending_from(const std::string& source) const;
  /// Sources with any state kept (for tests: the table must not grow without bound).
  size_t tracked_sources() const;

 private:
  struct Source {
    size_t pending = 0;
    uint32_t failures = 0;                 ///< failures since window_start
    Clock::time_point window_start{};
    Clock::time_point blocked_until{};
  };
  /// Forget sources with nothing pending, no back-off and no failures in the current window.
  void SweepLocked(Clock::time_point now);

  const HandshakeLimits limits_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Source> sources_;  // guarded by mu_
  size_t pending_ = 0;                               // guarded by mu_
  Clock::time_point last_sweep_{};                   // guarded by mu_
};

}  // namespace mure
