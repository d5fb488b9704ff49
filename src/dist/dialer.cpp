#include "dist/dialer.h"

#include <pthread.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "common/log.h"
#include "common/signals.h"

namespace mure {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff{250};

/// Closes the socket unless released.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

Result<in_addr> Resolve(const std::string& host) {
  in_addr addr{};
  if (::inet_pton(AF_INET, host.c_str(), &addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) return Status::BadArg("cannot resolve " + host + ": " + ::gai_strerror(rc));
  addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return addr;
}

Status WriteAll(int fd, const std::string& bytes, Clock::time_point deadline) {
  PlainTransport io(fd);
  size_t off = 0;
  while (off < bytes.size()) {
    MURE_RETURN_IF_ERROR(PollUntil(fd, POLLOUT, deadline, "epmd request"));
    iovec iov{const_cast<char*>(bytes.data()) + off, bytes.size() - off};
    ssize_t r = io.Sendv(&iov, 1);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return Status::BadArg("write: " + io.Error());
    }
    off += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

Result<int> ConnectTcp(const std::string& host, uint16_t port, Clock::time_point deadline) {
  auto addr = Resolve(host);
  if (!addr.ok()) return addr.status();
  FdGuard fd{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) return Status::Internal(std::string("socket: ") + std::strerror(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr = *addr;
  const std::string where = host + ":" + std::to_string(port);
  if (::connect(fd.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINPROGRESS) return Status::BadArg("cannot connect to " + where + ": " + std::strerror(errno));
    MURE_RETURN_IF_ERROR(PollUntil(fd.fd, POLLOUT, deadline, "connect to " + where));
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) {
      pollfd pfd{fd.fd, POLLOUT, 0};  // EINTR in PollUntil: make sure the connect really ended
      if (::poll(&pfd, 1, 0) != 1) return Status::BadArg("connect to " + where + " interrupted");
    } else {
      return Status::BadArg("cannot connect to " + where + ": " + std::strerror(err));
    }
  }
  int one = 1;
  ::setsockopt(fd.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd.release();
}

Result<uint16_t> EpmdPortPlease(const std::string& host, uint16_t epmd_port, const std::string& alive,
                                Clock::time_point deadline) {
  auto fd_or = ConnectTcp(host, epmd_port, deadline);
  if (!fd_or.ok()) return Status::BadArg("no epmd answering on " + host + " (" + fd_or.status().message() + ")");
  FdGuard fd{*fd_or};
  // PORT_PLEASE2_REQ: Len:2 'z' Name. Answer: 'w' Result:1, then on success PortNo:2 and more.
  std::string req;
  req.push_back(static_cast<char>((alive.size() + 1) >> 8));
  req.push_back(static_cast<char>(alive.size() + 1));
  req.push_back('z');
  req += alive;
  MURE_RETURN_IF_ERROR(WriteAll(fd.fd, req, deadline));
  uint8_t resp[4];
  size_t got = 0;
  while (got < sizeof resp) {
    MURE_RETURN_IF_ERROR(PollUntil(fd.fd, POLLIN, deadline, "epmd answer"));
    ssize_t r = ::recv(fd.fd, resp + got, sizeof resp - got, MSG_DONTWAIT);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return Status::BadArg("epmd on " + host + ": " + std::strerror(errno));
    }
    got += static_cast<size_t>(r);
  }
  if (got < 2 || resp[0] != 'w') return Status::BadArg("epmd on " + host + " gave no PORT2 answer");
  if (resp[1] != 0) return Status::BadArg("epmd on " + host + " has no node named " + alive);
  if (got < 4) return Status::BadArg("epmd on " + host + " gave a short PORT2 answer");
  return static_cast<uint16_t>(resp[2] << 8 | resp[3]);
}

std::chrono::milliseconds DialBackoff(uint32_t failures, std::chrono::milliseconds max, double random) {
  uint64_t step = static_cast<uint64_t>(kFirstBackoff.count());
  for (uint32_t i = 1; i < failures && step < static_cast<uint64_t>(max.count()); ++i) step *= 2;
  step = std::min<uint64_t>(step, static_cast<uint64_t>(max.count()));
  const double r = std::clamp(random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(step) * (0.5 + 0.5 * r)));
}

Dialer::Dialer(const Config& cfg, MakeConnection make) : cfg_(cfg), make_(std::move(make)) {
  const auto at = cfg.connect.find('@');
  alive_ = cfg.connect.substr(0, at);
  host_ = cfg.connect.substr(at + 1);
  // As erl_interface and the BEAM: $ERL_EPMD_PORT, else 4369.
  if (const char* env = std::getenv("ERL_EPMD_PORT"); env && *env) {
    const long p = std::strtol(env, nullptr, 10);
    if (p > 0 && p < 65536) epmd_port_ = static_cast<uint16_t>(p);
  }
}

Dialer::~Dialer() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void Dialer::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "mure-dial");
    AltSignalStack alt_stack;  // a stack overflow here is reported, not silent (common/signals.h)
    Loop();
  });
}

void Dialer::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  if (current_) current_->RequestStop();
  cv_.notify_all();
}

bool Dialer::Wait(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
}

Status Dialer::Attempt() {
  const auto deadline = Clock::now() + std::chrono::milliseconds(cfg_.handshake_timeout_ms);
  auto port = EpmdPortPlease(host_, epmd_port_, alive_, deadline);
  if (!port.ok()) return port.status();
  auto fd = ConnectTcp(host_, *port, deadline);
  if (!fd.ok()) return fd.status();
  auto conn = make_(*fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Status::Ok();  // the connection's destructor closes the socket
    current_ = conn;
  }
  conn->Start();
  // The connection's thread runs the handshake under its own deadline, then serves; look now
  // and then whether it has ended (a dial-out node has one connection: the cost is nil).
  {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_ && !conn->finished()) cv_.wait_for(lock, std::chrono::milliseconds(50));
    current_.reset();
  }
  conn->RequestStop();
  conn->Join();
  if (!conn->handshake_error().empty()) return Status::BadArg(conn->handshake_error());
  return Status::Ok();
}

void Dialer::Loop() {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::chrono::milliseconds max(cfg_.connect_backoff_max_ms);
  uint32_t failures = 0;
  std::string last_reason;  // the failure last logged; "" after a success
  LogInfo("dial-out: connecting to " + cfg_.connect + " (epmd on " + host_ + ":" + std::to_string(epmd_port_) +
          (cfg_.tls_cert.empty() ? ")" : ", TLS)"));
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    Status st = Attempt();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    std::chrono::milliseconds wait;
    if (st.ok()) {
      // It was established, served, and has ended (the connection logged why): start afresh.
      failures = 0;
      last_reason.clear();
      wait = DialBackoff(1, max, unit(rng));
      LogWarn("dial-out: connection to " + cfg_.connect + " ended; reconnecting in " + std::to_string(wait.count()) +
              " ms");
    } else {
      ++failures;
      wait = DialBackoff(failures, max, unit(rng));
      if (st.message() != last_reason) {
        LogWarn("dial-out to " + cfg_.connect + " failed: " + st.message() + "; retrying with backoff (up to " +
                std::to_string(max.count()) + " ms; logged again when the reason changes)");
        last_reason = st.message();
      } else {
        LogDebug("dial-out to " + cfg_.connect + " failed again (" + std::to_string(failures) + " in a row): " +
                 st.message() + "; next attempt in " + std::to_string(wait.count()) + " ms");
      }
    }
    if (!Wait(wait)) break;
  }
}

}  // namespace mure
