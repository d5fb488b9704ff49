// mure — a small thread-safe logger to stderr (stdout is reserved for the Port ready line).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "mure/config.h"

namespace mure {

/// Set the lowest level that is printed.
void SetLogLevel(LogLevel level);
/// True when messages of this level are printed.
bool LogEnabled(LogLevel level);
/// Print one line: "2026-11-25T12:00:00.123Z mure[warn] message".
void Log(LogLevel level, const std::string& message);

inline void LogDebug(const std::string& m) { if (LogEnabled(LogLevel::kDebug)) Log(LogLevel::kDebug, m); }
inline void LogInfo(const std::string& m) { Log(LogLevel::kInfo, m); }
inline void LogWarn(const std::string& m) { Log(LogLevel::kWarn, m); }
inline void LogError(const std::string& m) { Log(LogLevel::kError, m); }

/// Logs at most one line per interval; lines dropped in between are counted and reported with
/// the next one printed ("... (37 more suppressed)"). Used where a peer can trigger a log line.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::milliseconds interval) : interval_(interval) {}
  void Log(LogLevel level, const std::string& message);
  /// Lines ever offered, printed or not.
  uint64_t total() const { return total_.load(); }

 private:
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};  // guarded by mu_
  uint64_t suppressed_ = 0;                       // guarded by mu_
  std::atomic<uint64_t> total_{0};
};

}  // namespace mure
