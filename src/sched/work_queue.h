// mure — a bounded work queue on Boost.Asio: a fixed set of threads, a fixed depth.
//
// Posting never blocks and never grows the queue past its depth: a full queue says no at once, so
// the caller can answer {:error, :overloaded} (backpressure) instead of queueing without bound.
#pragma once

#include <atomic>
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
  WorkQueue(std::string name, unsigned threads, uint32_t depth);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  /// Queue a job; false (and the job is not run) when `depth` jobs are already pending.
  bool TryPost(std::function<void()> job);
  /// Jobs waiting or running.
  uint32_t pending() const { return pending_.load(); }
  uint32_t depth() const { return depth_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  uint32_t depth_;
  std::atomic<uint32_t> pending_{0};
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

}  // namespace mure
