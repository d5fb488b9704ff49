// mure — one distribution connection: the only thread that touches its socket.
//
// After erl_interface has done the handshake, the connection reads frames itself: a 4-byte length
// checked against max_message, the whole frame, then a bounds-checked parse of the control
// message and the payload. Ticks are answered at once; the thread never computes, so a long op
// elsewhere never gets the node declared down. Replies from any thread are queued with Send()
// and written by this thread with non-blocking writes (large downloads straight from tensor
// memory). A frame that breaks the distribution protocol closes this connection only, as a BEAM
// node would; a request that can be answered always is.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dist/handshake.h"
#include "dist/wire.h"
#include "mure/config.h"
#include "proto/term.h"
#include "sched/reply.h"
#include "sched/service.h"
#include "store/tensor_store.h"

namespace mure {

class Connection : public ReplySink, public std::enable_shared_from_this<Connection> {
 public:
  /// Takes ownership of `fd`, a socket just accepted: the handshake runs on the connection's own
  /// thread, under cfg.handshake_timeout_ms.
  Connection(int fd, Service& service, TensorStore& store, const Config& cfg, NodeIdentity& self,
             const HandshakeParams& handshake);
  ~Connection() override;

  /// Start the I/O thread.
  void Start();
  /// Ask the I/O thread to close the socket and end (any thread).
  void RequestStop();
  /// Wait for the I/O thread to end.
  void Join();
  bool finished() const { return finished_.load(); }
  /// True until the handshake has succeeded or failed.
  bool handshaking() const { return handshaking_.load(); }
  const std::string& peer() const { return peer_; }

  /// Queue a frame for the socket (any thread). Dropped once the connection is closed.
  void Send(OutFrame frame) override;
  bool Closed() const override { return closed_.load(); }

 private:
  enum class ReadState { kHeader, kBody, kDiscard };

  void Run();
  bool OnReadable();
  bool Flush();
  void Wake();
  /// Handle one complete frame; false when it broke the protocol (the connection closes).
  bool OnFrame(std::string_view payload);
  void OnOversized(std::string_view prefix, uint64_t total);
  void OnMessage(std::string_view payload, size_t msg_offset);
  void OnNetKernel(std::string_view payload, size_t msg_offset);
  void OnOwnerDown(const proto::TermTree& ctrl, uint32_t pid_index);
  void Close(const std::string& why);

  int fd_;
  int wake_fd_ = -1;
  std::string peer_;
  Service& service_;
  TensorStore& store_;
  const Config& cfg_;
  NodeIdentity& self_;
  const HandshakeParams& handshake_;
  uint64_t conn_id_ = 0;  // the store's id, once the handshake succeeded
  std::thread thread_;
  std::thread::id io_thread_id_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closed_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> handshaking_{true};

  std::mutex out_mu_;
  std::deque<OutFrame> pending_;  // guarded by out_mu_: frames from other threads
  std::deque<OutFrame> out_;      // I/O thread only: frames being written
  uint64_t out_off_ = 0;          // bytes of out_.front() already written

  ReadState state_ = ReadState::kHeader;
  uint8_t hdr_[4] = {};
  size_t hdr_got_ = 0;
  uint64_t frame_len_ = 0;
  std::unique_ptr<uint8_t[]> buf_;  // frame buffer, reused (kept faulted in) between frames
  size_t buf_cap_ = 0;
  size_t want_ = 0;
  size_t got_ = 0;
  bool oversized_ = false;
  uint64_t discard_left_ = 0;
  std::chrono::steady_clock::time_point last_recv_;

  proto::TermTree ctrl_tree_;
  proto::TermTree msg_tree_;
};

}  // namespace mure
