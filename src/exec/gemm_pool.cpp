#include "exec/gemm_pool.h"

#include <pthread.h>

#include <algorithm>

namespace mure {

std::vector<GemmPart> SplitGemm(uint64_t m, uint64_t n, uint64_t k, unsigned threads, uint64_t align) {
  const GemmPart whole{0, m, 0, n};
  if (threads <= 1 || align == 0 || m == 0 || n == 0 || k == 0) return {whole};
  const bool small = static_cast<unsigned __int128>(m) * n * k < kGemmSplitMinWork;  // no overflow
  if (small) return {whole};
  const bool by_rows = m >= n;
  const uint64_t len = by_rows ? m : n;
  const uint64_t blocks = (len + align - 1) / align;  // whole register blocks, the last maybe short
  const uint64_t parts = std::min<uint64_t>(threads, blocks);
  if (parts <= 1) return {whole};
  std::vector<GemmPart> out;
  uint64_t start = 0;
  for (uint64_t p = 0; p < parts; ++p) {
    // Blocks spread as evenly as they go: the last (blocks % parts) parts get one more, so that
    // the short final block, if any, shortens a part that has an extra one.
    const uint64_t b = blocks / parts + (p >= parts - blocks % parts ? 1 : 0);
    const uint64_t end = std::min(len, start + b * align);
    if (by_rows) out.push_back({start, end - start, 0, n});
    else out.push_back({0, m, start, end - start});
    start = end;
  }
  return out;
}

GemmPool::GemmPool(unsigned threads) {
  for (unsigned i = 1; i < std::max(threads, 1u); ++i) {
    workers_.emplace_back([this, i] {
      std::string name = "mure-gemm-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      Work(i);
    });
  }
}

GemmPool::~GemmPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void GemmPool::Work(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(unsigned)>* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || (generation_ != seen && index < job_parts_); });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(index);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
    }
    done_.notify_one();
  }
}

void GemmPool::Run(unsigned parts, const std::function<void(unsigned)>& fn) {
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (parts <= 1 || parts > threads() || !busy.owns_lock()) {
    for (unsigned p = 0; p < parts; ++p) fn(p);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_parts_ = parts;
    pending_ = parts - 1;
    ++generation_;
  }
  wake_.notify_all();
  fn(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
  job_parts_ = 0;
}

}  // namespace mure
