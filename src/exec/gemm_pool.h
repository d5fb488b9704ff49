// mure — a matrix product cut into independent parts, one per thread of a small fixed pool.
//
// BLIS's own threads (OpenMP here) meet at spin barriers many times per call: when another
// thread of the node, the BEAM's schedulers or another process takes one of the 2 vCPUs, the
// BLIS thread left waiting spins away its time slices. Measured on this kind of machine: a
// resident sgemm 1024 took 8-16 ms between node launches on a quiet host, and 200 ms instead of
// 30 ms (one thread) on a loaded one. Here each thread runs a single-threaded BLIS call on its own
// block of C's rows (or columns), so no thread ever waits for another inside a call: the caller
// waits once, on a condition variable, for the parts it handed out.
//
// Thread-safety: Run may be called from any thread; while one caller uses the pool another runs
// all its parts itself (correct, on one core).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mure {

/// One block of c{m, n}: rows [row0, row0 + rows) by columns [col0, col0 + cols).
struct GemmPart {
  uint64_t row0 = 0, rows = 0, col0 = 0, cols = 0;
  bool operator==(const GemmPart& o) const {
    return row0 == o.row0 && rows == o.rows && col0 == o.col0 && cols == o.cols;
  }
};

/// Products with fewer multiply-adds (m * n * k) than this run on one thread: waking a second
/// core costs tens of microseconds, more than it saves below about 200^3.
constexpr uint64_t kGemmSplitMinWork = uint64_t{1} << 23;

/// How c{m, n} = a{m, k} b{k, n} is cut for `threads` threads: along the longer of m and n, in
/// blocks of whole multiples of `align` rows or columns (the kernels' register blocks) of
/// nearly equal size; fewer parts when there is too little work (see kGemmSplitMinWork) or too
/// few rows/columns. Always at least one part, covering c exactly, in order.
std::vector<GemmPart> SplitGemm(uint64_t m, uint64_t n, uint64_t k, unsigned threads, uint64_t align = 32);

/// `threads - 1` persistent workers (the caller is the other thread).
class GemmPool {
 public:
  explicit GemmPool(unsigned threads);
  ~GemmPool();
  GemmPool(const GemmPool&) = delete;
  GemmPool& operator=(const GemmPool&) = delete;

  unsigned threads() const { return static_cast<unsigned>(workers_.size()) + 1; }

  /// Runs fn(0) .. fn(parts - 1), part 0 on the calling thread and the others on the workers
  /// (parts <= threads()); returns when all have returned. With parts == 1, or while another
  /// caller holds the pool, every part runs on the calling thread, in order.
  void Run(unsigned parts, const std::function<void(unsigned)>& fn);

 private:
  void Work(unsigned index);

  std::mutex busy_;  // held by the caller using the workers
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned job_parts_ = 0;
  uint64_t generation_ = 0;
  unsigned pending_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace mure
