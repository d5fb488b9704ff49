#include "dist/handshake_gate.h"

namespace mure {

namespace {
// The table is swept when it holds more sources than this, at most once per second: it stays
// bounded by the sources seen within one failure window or back-off, without a sweep per accept.
constexpr size_t kSweepAbove = 1024;
}  // namespace

Status HandshakeGate::Admit(const std::string& source, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sources_.size() > kSweepAbove && now - last_sweep_ > std::chrono::seconds(1)) SweepLocked(now);
  auto found = sources_.find(source);
  if (found != sources_.end()) {
    const Source& s = found->second;
    if (now < s.blocked_until) {
      auto left = std::chrono::duration_cast<std::chrono::seconds>(s.blocked_until - now).count() + 1;
      return Status(ErrorKind::kOverloaded, "too many failed handshakes from this address; refused for another " +
                                                std::to_string(left) + " s");
    }
    if (s.pending >= limits_.max_pending_per_source) {
      return Status(ErrorKind::kOverloaded, std::to_string(s.pending) +
                                                " handshakes from this address already pending (the limit per address)");
    }
  }
  if (pending_ >= limits_.max_pending) {
    return Status(ErrorKind::kOverloaded, std::to_string(pending_) + " handshakes already pending");
  }
  ++sources_[source].pending;
  ++pending_;
  return Status::Ok();
}

bool HandshakeGate::Finish(const std::string& source, bool ok, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = sources_.find(source);
  if (found == sources_.end()) return false;
  Source& s = found->second;
  if (s.pending > 0) {
    --s.pending;
    --pending_;
  }
  if (ok || limits_.max_failures == 0) return false;
  if (s.failures == 0 || now - s.window_start >= limits_.failure_window) {
    s.window_start = now;
    s.failures = 0;
  }
  if (++s.failures < limits_.max_failures) return false;
  s.failures = 0;
  s.blocked_until = now + limits_.backoff;
  return true;
}

size_t HandshakeGate::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

size_t HandshakeGate::pending_from(const std::string& source) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = sources_.find(source);
  return found == sources_.end() ? 0 : found->second.pending;
}

size_t HandshakeGate::tracked_sources() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sources_.size();
}

void HandshakeGate::SweepLocked(Clock::time_point now) {
  last_sweep_ = now;
  for (auto it = sources_.begin(); it != sources_.end();) {
    const Source& s = it->second;
    bool counting = s.failures > 0 && now - s.window_start < limits_.failure_window;
    if (s.pending == 0 && now >= s.blocked_until && !counting) {
      it = sources_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace mure
