#include "dist/connection.h"

#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "common/log.h"
#include "common/signals.h"

namespace mure {

namespace {

constexpr size_t kOversizePrefix = 64 * 1024;
constexpr size_t kReadBudget = 8u << 20;  // bytes read per wake-up before writes get a turn
// Receive buffers. Chunked uploads send 1-8 MiB frames back to back; fresh memory costs ~0.35 ms
// per MiB in page faults on small VMs, so a buffer of up to 16 MiB stays (faulted in) between
// frames. A larger one is a single big request (up to max_message): it is released as soon as
// its frame is handled, so an idle connection never holds hundreds of MiB (measured on 67c2630:
// two connections that had each received 600 MB held 1.2 GB until they closed). Any buffer is
// released after kBufferIdle without a frame. The smallest buffer allocated is kSmallBuffer.
constexpr size_t kKeptBuffer = 16u << 20;
constexpr size_t kSmallBuffer = 64u << 10;
constexpr auto kBufferIdle = std::chrono::seconds(5);
// What a queued frame costs beyond its bytes: the OutFrame in the deque, the head's heap block,
// the allocator's headers. Without it a peer asking for many tiny replies (1 M `:devices`) would
// hold several times the counted bytes.
constexpr uint64_t kFrameOverhead = 128;
// A paused peer that has read none of its replies for this long (or a quarter of
// reply_stall_timeout_s, if shorter) is worth a warning.
constexpr std::chrono::milliseconds kStallWarning{2000};

uint64_t Charge(const OutFrame& f) { return f.head.size() + f.tail_len + kFrameOverhead; }

RateLimitedLog g_refused_log{std::chrono::milliseconds(2000)};
RateLimitedLog g_backlog_log{std::chrono::milliseconds(2000)};
RateLimitedLog g_budget_log{std::chrono::milliseconds(2000)};

}  // namespace

Connection::Connection(int fd, RequestHandler& handler, TensorStore& store, const Config& cfg, NodeIdentity& self,
                       const HandshakeParams& handshake)
    : fd_(fd), handler_(handler), store_(store), cfg_(cfg), self_(self), handshake_(handshake) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int flags = ::fcntl(fd_, F_GETFL, 0);
  ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
  last_recv_ = last_frame_ = last_write_ = std::chrono::steady_clock::now();
}

Connection::~Connection() {
  if (thread_.joinable()) {
    RequestStop();
    thread_.join();
  }
  ReleaseBuffer();
  if (fd_ >= 0) ::close(fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Connection::Start() {
  thread_ = std::thread([self = shared_from_this()] {
    pthread_setname_np(pthread_self(), "mure-conn");  // as ps -L and /proc/PID/task/*/comm show it
    AltSignalStack alt_stack;  // a stack overflow here is reported, not silent (common/signals.h)
    self->Run();
  });
}

void Connection::RequestStop() {
  stop_.store(true);
  Wake();
}

void Connection::Join() {
  if (thread_.joinable()) thread_.join();
}

void Connection::Wake() {
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
  (void)ignored;
}

void Connection::Send(OutFrame frame) {
  if (closed_.load()) return;
  // Counted whatever the backlog: a reply is never dropped for it; the I/O thread stops reading
  // new requests instead (see Run).
  queued_bytes_.fetch_add(Charge(frame));
  if (std::this_thread::get_id() == io_thread_id_) {
    // A reply made on this thread (a tick, an error, an op run inline) goes after the workers'
    // replies already handed over: a connection's replies leave in the order they were made.
    std::lock_guard<std::mutex> lock(out_mu_);
    while (!pending_.empty()) {
      out_.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    out_.push_back(std::move(frame));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(out_mu_);
    pending_.push_back(std::move(frame));
  }
  Wake();
}

void Connection::Close(const std::string& why) {
  if (closed_.exchange(true)) return;
  ::shutdown(fd_, SHUT_RDWR);
  size_t freed = conn_id_ ? store_.CloseConnection(conn_id_) : 0;
  LogInfo(Name() + " closed (" + why + "); freed " + std::to_string(freed) + " tensors");
}

void Connection::Run() {
  io_thread_id_ = std::this_thread::get_id();
  // One deadline for the whole handshake: TLS's first when configured, then distribution's inside it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg_.handshake_timeout_ms);
  Result<HandshakeResult> hs = Status::Internal("no handshake");
  auto shake = [&](Transport& t) {
    return dial_peer_.empty() ? AcceptHandshake(t, fd_, handshake_, deadline)
                              : InitiateHandshake(t, fd_, handshake_, dial_peer_, deadline);
  };
  if (tls_) {
    auto tls = std::make_unique<TlsTransport>(tls_, fd_);
    Status st = tls->Handshake(deadline);
    transport_ = std::move(tls);
    hs = st.ok() ? shake(*transport_) : Result<HandshakeResult>(st);
  } else {
    transport_ = std::make_unique<PlainTransport>(fd_);
    hs = shake(*transport_);
  }
  if (handshake_done_) handshake_done_(hs.ok());
  if (!hs.ok()) {
    ::shutdown(fd_, SHUT_RDWR);  // the peer learns at once, as from a BEAM node
    closed_.store(true);
    handshake_error_ = hs.status().message();
    // A dial-out's failures are the dialer's to report (once per change, not once per attempt).
    if (dial_peer_.empty()) {
      handler_.CountRefused();
      g_refused_log.Log(LogLevel::kWarn, "refused a connection: " + hs.status().message());
    }
    handshaking_.store(false);
    finished_.store(true);
    return;
  }
  peer_ = hs->peer;
  conn_id_ = store_.OpenConnection();
  std::weak_ptr<Connection> weak = weak_from_this();
  dispatch_ = std::make_unique<Dispatch>(handler_, store_, cfg_, peer_, conn_id_, [weak](const std::string& pid) {
    if (auto self = weak.lock()) {
      self->Send(OutFrame{MonitorFrame(self->self_.self_pid(), pid, self->self_.MakeRef())});
    }
  });
  last_recv_ = std::chrono::steady_clock::now();
  handshaking_.store(false);
  LogInfo(Name() + (dial_peer_.empty() ? " accepted" : " established") +
          (tls_ ? " over " + transport_->Describe() : std::string()));
  while (!stop_.load()) {
    {
      std::lock_guard<std::mutex> lock(out_mu_);
      while (!pending_.empty()) {
        out_.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    if (!out_.empty() && !Flush()) break;
    auto now = std::chrono::steady_clock::now();
    // Backpressure: a peer that does not read its replies gets no more of its requests read
    // (they wait in its socket, then in its own send buffer). Replies to work already accepted
    // are still queued; once the peer has read enough of them, reading resumes.
    const uint64_t queued = queued_bytes_.load();
    if (queued > cfg_.max_queued_replies) {
      if (!paused_) {
        // Routine while a large download is written; worth a warning only when the peer stops
        // reading (below).
        paused_ = true;
        pause_warned_ = false;
        last_write_ = now;
        LogDebug(Name() + ": " + std::to_string(queued) +
                 " bytes of replies queued: not reading its requests until it reads its replies");
      } else if (!pause_warned_ &&
                 now - last_write_ > std::min<std::chrono::milliseconds>(
                                         kStallWarning, std::chrono::seconds(cfg_.reply_stall_timeout_s) / 4)) {
        pause_warned_ = true;  // well before the peer is dropped (reply_stall_timeout_s)
        g_backlog_log.Log(LogLevel::kWarn, Name() + ": " + std::to_string(queued) +
                                               " bytes of replies queued, over max_queued_replies (" +
                                               std::to_string(cfg_.max_queued_replies) +
                                               ") and none read lately: not reading its requests until it reads "
                                               "its replies");
      }
    } else if (paused_) {
      paused_ = false;
      last_recv_ = now;  // the silence we imposed is not the peer's
      LogDebug(Name() + ": replies drained, reading requests again");
    }
    if (state_ == ReadState::kWaitBuffer && GrowBuffer(want_)) {
      state_ = ReadState::kBody;
      last_recv_ = now;
    }
    const bool reading = !paused_ && state_ != ReadState::kWaitBuffer;
    pollfd fds[2] = {{fd_, transport_->Events(reading, !out_.empty()), 0}, {wake_fd_, POLLIN, 0}};
    // Waiting for receive-buffer room: another connection's release wakes no one, so look again
    // soon. Bytes TLS has already decrypted are read without waiting: the socket will not announce them.
    int timeout = state_ == ReadState::kWaitBuffer ? 20 : 1000;
    if (reading && transport_->Buffered()) timeout = 0;
    int n = PollSpinning(fds, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      Close(std::string("poll: ") + std::strerror(errno));
      break;
    }
    if (n > 0) active_ = std::chrono::steady_clock::now();  // a request, a reply or a wake: spin after it
    if (fds[1].revents & POLLIN) {
      uint64_t v;
      ssize_t ignored = ::read(wake_fd_, &v, sizeof v);
      (void)ignored;
    }
    if (reading && transport_->CanRecv(fds[0].revents)) {
      if (!OnReadable()) break;
    } else if (!reading && (fds[0].revents & (POLLHUP | POLLERR))) {
      Close("peer gone");
      break;
    }
    if (!out_.empty() && transport_->CanSend(fds[0].revents)) {
      if (!Flush()) break;
    }
    now = std::chrono::steady_clock::now();
    if (state_ == ReadState::kHeader && hdr_got_ == 0 && buf_ && now - last_frame_ > kBufferIdle) ReleaseBuffer();
    if (paused_ && now - last_write_ > std::chrono::seconds(cfg_.reply_stall_timeout_s)) {
      LogWarn(Name() + ": dropped: it has read none of its " +
              std::to_string(queued_bytes_.load()) + " bytes of queued replies for " +
              std::to_string(cfg_.reply_stall_timeout_s) + " s (reply_stall_timeout_s)");
      Close("peer reads none of its replies");
      break;
    }
    auto silent = now - last_recv_;
    if (reading && silent > std::chrono::seconds(cfg_.peer_timeout_s)) {
      Close("silent for " + std::to_string(cfg_.peer_timeout_s) + " s");
      break;
    }
  }
  Close(stop_.load() ? "node shutting down" : "peer gone");
  {
    std::lock_guard<std::mutex> lock(out_mu_);
    pending_.clear();
  }
  out_.clear();
  queued_bytes_.store(0);
  ReleaseBuffer();
  finished_.store(true);
}

int Connection::PollSpinning(pollfd (&fds)[2], int timeout_ms) {
  // Right after work, the next request or a worker's reply usually follows within microseconds:
  // poll without sleeping for up to spin_us, so that neither pays a wake-up of this thread
  // (~100 us on a VM). An idle connection sleeps at once (active_ is old).
  const auto spin = std::chrono::microseconds(cfg_.spin_us);
  if (spin.count() > 0) {
    const auto until = active_ + spin;
    while (std::chrono::steady_clock::now() < until) {
      int n = ::poll(fds, 2, 0);
      if (n != 0) return n;
      if (stop_.load()) return 0;
    }
  }
  return ::poll(fds, 2, timeout_ms);
}

bool Connection::GrowBuffer(size_t n) {
  ReleaseBuffer();  // too small: its bytes go back first, so a waiting connection holds none
  size_t cap = std::max(n, kSmallBuffer);
  if (recv_budget_ && !recv_budget_->TryReserve(cap)) {
    g_budget_log.Log(LogLevel::kWarn, Name() + ": a frame of " + std::to_string(n) +
                                          " bytes waits for receive-buffer room (" +
                                          std::to_string(recv_budget_->used()) + " of receive_buffer_limit " +
                                          std::to_string(recv_budget_->limit()) + " bytes in use)");
    return false;
  }
  // From the node's buffer cache when it holds one of this size: a large buffer released by any
  // connection (or tensor) is reused already faulted in, instead of being faulted in afresh for
  // every big frame (a 64 MiB upload in one message took 0.5-1 s of page faults under load).
  bool zeroed = false;
  uint64_t capacity = 0;
  buf_ = static_cast<uint8_t*>(store_.budget().Acquire(cap, &capacity, &zeroed));
  if (!buf_) {
    if (recv_budget_) recv_budget_->Release(cap);
    return false;
  }
  buf_reserved_ = cap;
  buf_cap_ = capacity;
  return true;
}

void Connection::ReleaseBuffer() {
  if (!buf_) return;
  store_.budget().Recycle(buf_, buf_cap_);  // large ones go to the capped cache (buffer_cache)
  buf_ = nullptr;
  if (recv_budget_) recv_budget_->Release(buf_reserved_);
  buf_cap_ = buf_reserved_ = 0;
}

bool Connection::Flush() {
  while (!out_.empty()) {
    iovec iov[64];
    int cnt = 0;
    uint64_t skip = out_off_;
    for (auto it = out_.begin(); it != out_.end() && cnt < 62; ++it) {
      uint64_t head = it->head.size();
      if (skip < head) {
        iov[cnt++] = {const_cast<char*>(it->head.data()) + skip, head - skip};
        skip = 0;
      } else {
        skip -= head;
      }
      if (it->tail_len > skip) {
        iov[cnt++] = {const_cast<uint8_t*>(it->tail) + skip, it->tail_len - skip};
      }
      skip = 0;
    }
    ssize_t n = transport_->Sendv(iov, cnt);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      Close("write: " + transport_->Error());
      return false;
    }
    if (n > 0) last_write_ = std::chrono::steady_clock::now();
    uint64_t sent = static_cast<uint64_t>(n) + out_off_;
    while (!out_.empty()) {
      uint64_t total = out_.front().head.size() + out_.front().tail_len;
      if (sent < total) break;
      sent -= total;
      queued_bytes_.fetch_sub(Charge(out_.front()));
      out_.pop_front();
    }
    out_off_ = sent;
  }
  return true;
}

bool Connection::OnReadable() {
  if (state_ == ReadState::kWaitBuffer) return true;  // no buffer yet: the bytes stay in the socket
  size_t budget = kReadBudget;
  while (budget > 0) {
    ssize_t n;
    if (state_ == ReadState::kHeader) {
      n = transport_->Recv(hdr_ + hdr_got_, 4 - hdr_got_);
    } else if (state_ == ReadState::kBody) {
      n = transport_->Recv(buf_ + got_, want_ - got_);
    } else {
      static thread_local uint8_t scratch[64 * 1024];
      n = transport_->Recv(scratch, static_cast<size_t>(std::min<uint64_t>(sizeof scratch, discard_left_)));
    }
    if (n == 0) {
      Close("peer closed the connection");
      return false;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      Close("read: " + transport_->Error());
      return false;
    }
    budget -= std::min(budget, static_cast<size_t>(n));
    last_recv_ = std::chrono::steady_clock::now();
    if (state_ == ReadState::kHeader) {
      hdr_got_ += static_cast<size_t>(n);
      if (hdr_got_ < 4) continue;
      hdr_got_ = 0;
      frame_len_ = static_cast<uint64_t>(hdr_[0]) << 24 | static_cast<uint64_t>(hdr_[1]) << 16 |
                   static_cast<uint64_t>(hdr_[2]) << 8 | hdr_[3];
      if (frame_len_ == 0) {  // a tick: answer with one
        Send(OutFrame{TickFrame()});
        continue;
      }
      oversized_ = frame_len_ > cfg_.max_message;
      want_ = oversized_ ? std::min<uint64_t>(frame_len_, kOversizePrefix) : frame_len_;
      got_ = 0;
      state_ = ReadState::kBody;
      if (buf_cap_ < want_ && !GrowBuffer(want_)) {
        state_ = ReadState::kWaitBuffer;  // the loop retries; the frame's bytes wait in the socket
        return true;
      }
    } else if (state_ == ReadState::kBody) {
      got_ += static_cast<size_t>(n);
      if (got_ < want_) continue;
      std::string_view frame(reinterpret_cast<const char*>(buf_), want_);
      state_ = ReadState::kHeader;
      if (oversized_) {
        if (Status st = dispatch_->OnOversized(frame, frame_len_, shared_from_this()); !st.ok()) Close(st.message());
        discard_left_ = frame_len_ - want_;
        if (discard_left_ > 0) state_ = ReadState::kDiscard;
      } else if (Status st = dispatch_->OnFrame(frame, shared_from_this()); !st.ok()) {
        Close(st.message());
        return false;
      }
      // The request has been decoded (and its data copied where it goes): a big buffer goes back.
      last_frame_ = std::chrono::steady_clock::now();
      if (buf_cap_ > kKeptBuffer) ReleaseBuffer();
      return true;  // let the loop flush replies before reading on
    } else {
      discard_left_ -= static_cast<uint64_t>(n);
      if (discard_left_ == 0) state_ = ReadState::kHeader;
    }
  }
  return true;
}

}  // namespace mure
