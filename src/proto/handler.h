// mure — what answers a decoded request: the seam between the distribution layer (dist/, which
// reads frames and decodes requests) and the service (sched/, which does the work).
//
// dist/ calls a RequestHandler and never sees the service behind it; sched/Service implements it.
// Both depend on this header, neither on the other.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proto/reply.h"
#include "proto/request.h"

namespace mure {

/// What a request knows of the connection it came on.
struct RequestContext {
  uint64_t conn = 0;                 ///< the store's connection id
  std::string owner;                 ///< owner key (proto::PidKey of the envelope's owner)
  std::string owner_pid;             ///< owner pid's encoding, for monitoring
  std::string peer_node;             ///< the requesting node's name
  /// Ask the connection to monitor an owner pid (called once per new owner, any thread).
  std::function<void(const std::string& owner_pid)> monitor_owner;
};

/// Answers requests. Thread-safe: called from every connection's thread at once.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  /// Answer `req` through `reply`, now or later from another thread: exactly once.
  virtual void Handle(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) = 0;
  /// Count a request that failed before it reached Handle (bad envelope, bad op...).
  virtual void CountRequest() = 0;
  /// Count an error answered (or a message dropped) before Handle.
  virtual void CountError() = 0;
  /// Count a connection refused at the handshake (wrong cookie, timeout, not a peer).
  virtual void CountRefused() = 0;
};

}  // namespace mure
