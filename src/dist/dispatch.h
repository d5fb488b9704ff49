// mure — what one connection does with a frame it has read, without the socket: the control
// message's operation, then for a message to `mure` the envelope, the request's decoding and the
// handler; net_kernel's is_auth is answered; an owner's exit frees its tensors.
//
// Every answerable request gets exactly one reply, through the sink the frame came with. The
// connection (dist/connection.cpp) and the fuzzers (tests/fuzz) run this same code.
//
// Not thread-safe: one Dispatch per connection, called from the connection's thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "mure/config.h"
#include "mure/status.h"
#include "proto/handler.h"
#include "proto/reply.h"
#include "proto/term.h"
#include "store/tensor_store.h"

namespace mure {

class Dispatch {
 public:
  /// `peer` names the node at the other end (checked against envelopes, named in logs);
  /// `conn` is the store's connection id; `monitor_owner` asks the connection to monitor an
  /// owner pid (RequestContext::monitor_owner).
  Dispatch(RequestHandler& handler, TensorStore& store, const Config& cfg, std::string peer, uint64_t conn,
           std::function<void(const std::string& owner_pid)> monitor_owner);

  /// One whole frame's payload ('p', control message, message), at most max_message bytes.
  /// Replies go to `sink`. Not ok when the frame breaks the distribution protocol: the
  /// connection must close (the status says why).
  Status OnFrame(std::string_view payload, const std::shared_ptr<ReplySink>& sink);
  /// A frame of `total` bytes, over max_message, of which `prefix` was read: a request to mure
  /// whose envelope the prefix holds is answered {:error, {:message_too_large, ...}}. Not ok when
  /// the prefix breaks the protocol.
  Status OnOversized(std::string_view prefix, uint64_t total, const std::shared_ptr<ReplySink>& sink);

  /// Frames this dispatch has answered or will answer (replies made, is_auth and GenServer
  /// answers sent): the fuzzers hold the sink to this count.
  uint64_t answers() const { return answers_; }

 private:
  void OnMessage(std::string_view payload, size_t msg_offset, const std::shared_ptr<ReplySink>& sink);
  void OnNetKernel(std::string_view payload, size_t msg_offset, const std::shared_ptr<ReplySink>& sink);
  void OnOwnerDown(uint32_t pid_index);
  std::shared_ptr<Reply> NewReply(const std::shared_ptr<ReplySink>& sink, const std::string& to,
                                  const std::string& ref);

  RequestHandler& handler_;
  TensorStore& store_;
  const Config& cfg_;
  std::string peer_;
  uint64_t conn_;
  std::function<void(const std::string&)> monitor_owner_;
  uint64_t answers_ = 0;
  proto::TermTree ctrl_tree_;  // reused frame after frame
  proto::TermTree msg_tree_;
};

}  // namespace mure
