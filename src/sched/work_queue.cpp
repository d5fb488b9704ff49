#include "sched/work_queue.h"

#include <pthread.h>
#include <boost/asio/post.hpp>

#include "common/log.h"
#include "common/signals.h"

namespace mure {

WorkQueue::WorkQueue(std::string name, unsigned threads, uint32_t depth)
    : name_(std::move(name)), depth_(depth), io_(static_cast<int>(threads)), guard_(io_.get_executor()) {
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), ("mure-q-" + name_).substr(0, 15).c_str());
      AltSignalStack alt_stack;  // a stack overflow here is reported, not silent (common/signals.h)
      io_.run();
    });
  }
}

WorkQueue::~WorkQueue() {
  guard_.reset();
  io_.stop();
  for (auto& t : threads_) t.join();
}

bool WorkQueue::TryPost(std::function<void()> job) {
  uint32_t cur = pending_.load();
  do {
    if (cur >= depth_) return false;
  } while (!pending_.compare_exchange_weak(cur, cur + 1));
  boost::asio::post(io_, [this, job = std::move(job)] {
    // The firewall: a job never takes its worker thread down. Jobs answer their own
    // requests; the Reply they own answers :internal if they die before replying.
    try {
      job();
    } catch (const std::exception& e) {
      LogError("work queue " + name_ + ": job threw: " + e.what());
    } catch (...) {
      LogError("work queue " + name_ + ": job threw a non-exception");
    }
    pending_.fetch_sub(1);
  });
  return true;
}

}  // namespace mure
