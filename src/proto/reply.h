// mure — exactly one reply per request.
//
// A Reply is made when a request's envelope is read and travels with the request wherever it
// goes (inline handling, a work queue, an executor). Ok() or Error() sends the one reply; if the
// Reply is destroyed without either (a job that threw, a queue torn down), its destructor sends
// {:error, {:internal, ...}}: no request is ever left unanswered.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "mure/status.h"
#include "proto/frame.h"
#include "proto/term.h"
#include "store/tensor_store.h"

namespace mure {

/// Where replies go: a connection's outgoing queue. Send is thread-safe.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  virtual void Send(OutFrame frame) = 0;
  /// True once nothing sent can arrive any more (the peer is gone).
  virtual bool Closed() const { return false; }
};

class Reply {
 public:
  Reply(std::shared_ptr<ReplySink> sink, std::string reply_to, std::string ref)
      : sink_(std::move(sink)), reply_to_(std::move(reply_to)), ref_(std::move(ref)) {}
  ~Reply();
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;

  /// Send {:ok, value}; `value` writes the value term.
  void Ok(const std::function<void(proto::TermWriter&)>& value);
  /// Send {:ok, <<tensor bytes>>}, the bytes sent straight from the tensor.
  void OkTensorBytes(std::shared_ptr<const Tensor> tensor);
  /// Send {:ok, <<bytes offset .. offset + length of the tensor>>}, sent straight from it.
  void OkTensorBytes(std::shared_ptr<const Tensor> tensor, uint64_t offset, uint64_t length);
  /// Send {:ok, value} where `value` holds the value's encoding (external term format, no
  /// version byte), sent straight from it.
  void OkEncoded(std::shared_ptr<const Tensor> value);
  /// Send {:error, reason}: `:overloaded` or {kind, message}.
  void Error(const Status& status);
  bool sent() const { return sent_.load(); }
  /// True when the requester is gone: work for this reply can be skipped.
  bool Abandoned() const { return sink_->Closed(); }

 private:
  /// Begin `{:"$mure_reply", Ref, ` in `out`; the caller writes the result and finishes.
  void Begin(std::string& out);
  bool Claim() { return !sent_.exchange(true); }
  /// Send {:error, reason} once claimed.
  void SendError(const Status& status);

  std::shared_ptr<ReplySink> sink_;
  std::string reply_to_;
  std::string ref_;
  std::atomic<bool> sent_{false};
};

}  // namespace mure
