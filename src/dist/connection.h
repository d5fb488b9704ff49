// mure — one distribution connection: the only thread that touches its socket.
//
// After erl_interface has done the handshake, the connection reads frames itself: a 4-byte length
// checked against max_message, the whole frame, then a bounds-checked parse of the control
// message and the payload. Ticks are answered at once; the thread computes nothing but ops the
// service estimates at a few microseconds (inline_max_us), so a long op elsewhere never gets the
// node declared down. After work it polls without sleeping for spin_us, so that a caller's next
// request or a worker's reply pays no wake-up. Replies from any thread are queued with Send()
// and written by this thread with non-blocking writes (large downloads straight from tensor
// memory). What a frame means is dist/dispatch.h's business. A frame that breaks the distribution
// protocol closes this connection only, as a BEAM node would; a request that can be answered
// always is.
//
// Memory a peer can make the connection hold is bounded both ways. Receiving: a frame's buffer
// comes out of a node-wide ByteBudget (receive_buffer_limit); a buffer of up to 16 MiB is kept
// between frames, a larger one is released once its frame is handled, and any is released after
// 5 s without a frame. Sending: while more than max_queued_replies bytes of replies wait for the
// socket, the connection stops reading requests (replies to requests already read are still
// queued, never dropped); a peer that reads none of them for reply_stall_timeout_s is dropped.
#pragma once

#include <poll.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dist/dispatch.h"
#include "dist/handshake.h"
#include "dist/tls.h"
#include "dist/transport.h"
#include "dist/wire.h"
#include "mure/config.h"
#include "proto/handler.h"
#include "proto/reply.h"
#include "store/tensor_store.h"

namespace mure {

/// Bytes shared by many connections under one limit (the node's receive buffers). Thread-safe.
class ByteBudget {
 public:
  explicit ByteBudget(uint64_t limit) : limit_(limit) {}
  /// Take `n` bytes if they fit under the limit; false (nothing taken) otherwise.
  bool TryReserve(uint64_t n) {
    uint64_t cur = used_.load();
    do {
      if (cur > limit_ || n > limit_ - cur) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n));
    return true;
  }
  void Release(uint64_t n) { used_.fetch_sub(n); }
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

class Connection : public ReplySink, public std::enable_shared_from_this<Connection> {
 public:
  /// Takes ownership of `fd`, a socket just accepted: the handshake runs on the connection's own
  /// thread, under cfg.handshake_timeout_ms.
  Connection(int fd, RequestHandler& handler, TensorStore& store, const Config& cfg, NodeIdentity& self,
             const HandshakeParams& handshake);
  ~Connection() override;

  /// Draw frame buffers from `budget` (shared by the node's connections). Before Start(); without
  /// one, buffers are limited per connection only.
  void SetReceiveBudget(std::shared_ptr<ByteBudget> budget) { recv_budget_ = std::move(budget); }
  /// Speak TLS distribution (dist/tls.h): the TLS handshake, then the distribution handshake inside
  /// it, both under cfg.handshake_timeout_ms. Before Start(); without it, plain TCP.
  void SetTls(std::shared_ptr<TlsContext> tls) { tls_ = std::move(tls); }
  /// Dial-out: `fd` is a socket this node connected to the coordinator `peer_node` (dist/dialer.h);
  /// the I/O thread runs the initiating side of the handshake (TLS as a client first, when SetTls
  /// gave a client context) under the same deadline, then serves it as any connection. Before Start().
  void SetDialOut(std::string peer_node) { dial_peer_ = std::move(peer_node); }
  /// Called on the I/O thread when the handshake has ended, with whether it succeeded. Before Start().
  void SetHandshakeDone(std::function<void(bool ok)> done) { handshake_done_ = std::move(done); }
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
  /// Why the handshake failed ("" while it runs or after it succeeded); read once finished().
  const std::string& handshake_error() const { return handshake_error_; }

  /// Queue a frame for the socket (any thread). Dropped once the connection is closed.
  void Send(OutFrame frame) override;
  bool Closed() const override { return closed_.load(); }
  /// Bytes of replies queued and not yet written (heads, tails and a per-frame overhead).
  uint64_t queued_reply_bytes() const { return queued_bytes_.load(); }

 private:
  enum class ReadState { kHeader, kBody, kDiscard, kWaitBuffer };

  void Run();
  /// poll(2) of the socket and the wake-up fd: without sleeping while the last work is less than
  /// spin_us old, then sleeping up to `timeout_ms`. poll's result.
  int PollSpinning(pollfd (&fds)[2], int timeout_ms);
  bool OnReadable();
  bool Flush();
  void Wake();
  void Close(const std::string& why);
  /// "connection from PEER" (accepted) or "connection to PEER" (dialled), for the log.
  std::string Name() const { return (dial_peer_.empty() ? "connection from " : "connection to ") + peer_; }
  /// Make buf_ hold at least `n` bytes, drawn from the receive budget; false when the budget has
  /// no room now (buf_ is then empty: a waiting connection holds no buffer).
  bool GrowBuffer(size_t n);
  void ReleaseBuffer();

  int fd_;
  int wake_fd_ = -1;
  std::string peer_;
  std::string dial_peer_;        // the coordinator this node dialled; empty for an accepted connection
  std::string handshake_error_;  // written by the I/O thread before finished_
  RequestHandler& handler_;
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
  std::atomic<uint64_t> queued_bytes_{0};  // charge of the frames in pending_ and out_
  bool paused_ = false;           // I/O thread only: not reading while over max_queued_replies
  bool pause_warned_ = false;     // I/O thread only: this pause has been logged as a stall
  std::chrono::steady_clock::time_point last_write_;  // last time the socket took reply bytes
  std::function<void(bool)> handshake_done_;
  std::shared_ptr<ByteBudget> recv_budget_;
  std::shared_ptr<TlsContext> tls_;
  std::unique_ptr<Transport> transport_;  // the socket itself, or a TLS session over it (I/O thread)

  ReadState state_ = ReadState::kHeader;
  uint8_t hdr_[4] = {};
  size_t hdr_got_ = 0;
  uint64_t frame_len_ = 0;
  uint8_t* buf_ = nullptr;  // frame buffer (store's MemoryBudget::Acquire); up to kKeptBuffer kept between frames
  size_t buf_cap_ = 0;       // bytes of buf_ (its capacity, for Recycle)
  size_t buf_reserved_ = 0;  // bytes of buf_ reserved in recv_budget_
  std::chrono::steady_clock::time_point last_frame_;  // when the last frame was handled
  size_t want_ = 0;
  size_t got_ = 0;
  bool oversized_ = false;
  uint64_t discard_left_ = 0;
  std::chrono::steady_clock::time_point last_recv_;
  std::chrono::steady_clock::time_point active_;  // I/O thread only: when it last had work (spin_us)

  std::unique_ptr<Dispatch> dispatch_;  // once the handshake succeeded
};

}  // namespace mure
