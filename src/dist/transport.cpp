#include "dist/transport.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mure {

namespace {

ssize_t Note(ssize_t r, std::string& error) {
  if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) error = std::strerror(errno);
  return r;
}

}  // namespace

Status PollUntil(int fd, short events, std::chrono::steady_clock::time_point deadline, const std::string& what) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  if (left <= 0) return Status::BadArg(what + " deadline passed");
  pollfd pfd{fd, events, 0};
  int r = ::poll(&pfd, 1, static_cast<int>(left));
  if (r == 0) return Status::BadArg(what + " deadline passed");
  if (r < 0 && errno != EINTR) return Status::BadArg(std::string("poll: ") + std::strerror(errno));
  return Status::Ok();
}

ssize_t PlainTransport::Recv(void* p, size_t n) { return Note(::recv(fd_, p, n, MSG_DONTWAIT), error_); }

ssize_t PlainTransport::Sendv(const iovec* iov, int count) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(count);
  return Note(::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT), error_);
}

}  // namespace mure
