// mure — a bounded work queue on Boost.Asio: a fixed set of threads, a fixed depth.
//
// Posting never blocks and never grows the queue past its depth: a full queue says no at once, so
// the caller can answer {:error, :overloaded} (backpressure) instead of queueing without bound.
// A worker that has just finished a job polls for the next one for up to `spin` before it sleeps:
// a job posted meanwhile starts without a wake-up (tens of microseconds on a VM); an idle queue
// spins at most that long after its last job.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace mure {

class WorkQueue {
 public:
  /// `threads` workers run the jobs in order of posting; at most `depth` jobs wait or run.
  WorkQueue(std::string name, unsigned threads, uint32_t depth,
            std::chrono::microseconds spin = std::chrono::microseconds(0));
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  /// Queue a job; false (and the job is not run) when `depth` jobs are already pending.
  bool TryPost(std::function<void()> job);
  /// Jobs waiting or running.
  uint32_t pending() const { return pending_.load(); }
  uint32_t depth() const { return depth_; }
  const std::string& name() const { return name_; }
  /// Jobs that began while their worker was still polling after the previous one (no wake-up).
  uint64_t spin_hits() const { return spin_hits_.load(); }

 private:
  std::string name_;
  uint32_t depth_;
  std::chrono::microseconds spin_;
  std::atomic<uint32_t> pending_{0};
  std::atomic<uint64_t> spin_hits_{0};
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

}  // namespace mure
