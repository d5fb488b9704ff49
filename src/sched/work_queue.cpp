#include "sched/work_queue.h"

#include <pthread.h>
#include <boost/asio/post.hpp>

#include "common/log.h"
#include "common/signals.h"

namespace mure {

namespace {

/// A pause in a spin: the CPU's spin-wait hint, so a sibling hyper-thread is not starved.
inline void Relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

WorkQueue::WorkQueue(std::string name, unsigned threads, uint32_t depth, std::chrono::microseconds spin)
    : name_(std::move(name)),
      depth_(depth),
      spin_(spin),
      io_(static_cast<int>(threads)),
      guard_(io_.get_executor()) {
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), ("mure-q-" + name_).substr(0, 15).c_str());
      AltSignalStack alt_stack;  // a stack overflow here is reported, not silent (common/signals.h)
      if (spin_.count() == 0) {
        io_.run();
        return;
      }
      // Sleep for a job (run_one), then poll for the next one for up to spin_ before sleeping again.
      while (!io_.stopped()) {
        if (io_.run_one() == 0) break;  // stopped
        auto until = std::chrono::steady_clock::now() + spin_;
        while (!io_.stopped()) {
          if (io_.poll_one() > 0) {
            spin_hits_.fetch_add(1, std::memory_order_relaxed);
            until = std::chrono::steady_clock::now() + spin_;  // the spin starts over after each job
            continue;
          }
          if (std::chrono::steady_clock::now() >= until) break;
          Relax();
        }
      }
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
