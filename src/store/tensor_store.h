// mure — resident tensors by opaque handle, owned per connection and per owner pid, with the
// node's memory budget checked before any allocation.
//
// Thread-safety: every TensorStore method may be called from any thread. A Tensor's bytes are
// written once by the thread that allocated it, before it is published with Insert(); after that
// they are only read. Executors hold shared_ptrs, so a tensor freed while an op reads it lives
// until the op ends, and its bytes stay accounted until then.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "mure/status.h"
#include "mure/types.h"

namespace mure {

/// The memory tensors live in: a budget of bytes the node may hold (Reserve fails instead of
/// over-committing) and a cache of large buffers that are already faulted in. Fresh pages cost
/// ~0.35 ms/MiB in page faults on these VMs, so a freed 64 MiB buffer is kept and handed to the
/// next tensor that fits in it instead of going back to the kernel. The cache keeps the most
/// recently freed buffers: a new one pushes out the least recently freed (an eager loop reuses
/// what its last step freed, whatever older sizes filled the cache before), and a request for a
/// smaller size takes the smallest cached buffer that holds it, its tail returned to the kernel.
class MemoryBudget {
 public:
  /// `cache_limit`: bytes of freed buffers kept for reuse (not counted as used).
  explicit MemoryBudget(uint64_t limit, uint64_t cache_limit = 0) : limit_(limit), cache_limit_(cache_limit) {}
  ~MemoryBudget();
  bool Reserve(uint64_t bytes);
  void Release(uint64_t bytes) { used_.fetch_sub(bytes); }
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

  /// A buffer of at least `bytes` (aligned to Tensor::kAlignment; large ones are whole pages
  /// from mmap), from the cache when a buffer there holds it. Sets `*capacity`, and
  /// `*zeroed` when the bytes are known to be zero (fresh pages). nullptr when the system refuses.
  void* Acquire(uint64_t bytes, uint64_t* capacity, bool* zeroed);
  /// Give a buffer back: cached (pushing out the least recently freed ones while the cache is
  /// over its limit) when it fits in the cache at all, freed otherwise.
  void Recycle(void* data, uint64_t capacity);
  uint64_t cached() const;

  /// Buffers of at least this size are rounded to whole 2 MiB units and cached.
  static constexpr uint64_t kLargeBuffer = 1u << 20;

 private:
  const uint64_t limit_;
  const uint64_t cache_limit_;
  std::atomic<uint64_t> used_{0};
  mutable std::mutex mu_;
  struct Cached {
    uint64_t capacity;
    void* data;
  };
  std::list<Cached> cache_;  // guarded by mu_: most recently freed first (at most cache_limit / 2 MiB)
  uint64_t cached_ = 0;                   // guarded by mu_
};

/// One tensor's bytes (aligned for SIMD and OpenCL host pointers), type and shape.
class Tensor {
 public:
  Tensor(DType type, Shape shape, uint64_t elements, uint64_t bytes, void* data, uint64_t capacity,
         std::shared_ptr<MemoryBudget> budget)
      : type_(type), shape_(std::move(shape)), elements_(elements), bytes_(bytes), data_(data), capacity_(capacity),
        budget_(std::move(budget)) {}
  ~Tensor();
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  DType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  uint64_t elements() const { return elements_; }
  uint64_t bytes() const { return bytes_; }
  uint8_t* data() { return static_cast<uint8_t*>(data_); }
  const uint8_t* data() const { return static_cast<const uint8_t*>(data_); }
  template <typename T> T* as() { return static_cast<T*>(data_); }
  /// True while the bytes are known to be all zero (fresh pages, nothing written yet).
  bool zeroed() const { return zeroed_; }
  void set_zeroed(bool z) { zeroed_ = z; }
  template <typename T> const T* as() const { return static_cast<const T*>(data_); }
  /// The budget this tensor's bytes count against (null only for tensors made outside a store):
  /// a kernel reserves its working memory (Scratch) on its output's budget.
  MemoryBudget* budget() const { return budget_.get(); }
  /// The bytes are a file mapping of their own (a shared segment, store/shm_segments.h):
  /// unmapped when the tensor dies instead of going back to the budget's cache.
  void MarkMapped() { mapped_ = true; }

  /// Alignment of every tensor's data, in bytes.
  static constexpr size_t kAlignment = 128;

 private:
  DType type_;
  Shape shape_;
  uint64_t elements_;
  uint64_t bytes_;
  void* data_;
  uint64_t capacity_;
  std::shared_ptr<MemoryBudget> budget_;
  bool zeroed_ = false;
  bool mapped_ = false;
};

/// Bytes held on a budget for as long as this lives, released on destruction (or not counted at
/// all when there is no budget). Move-only.
class Reservation {
 public:
  Reservation() = default;
  /// Reserve `bytes` on `budget` (may be null); kOutOfMemory naming `what` when it has no room.
  static Result<Reservation> Make(MemoryBudget* budget, uint64_t bytes, std::string_view what);
  /// Take over `bytes` already reserved on `budget`.
  static Reservation Adopt(MemoryBudget* budget, uint64_t bytes);
  Reservation(Reservation&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) { o.budget_ = nullptr; }
  Reservation& operator=(Reservation&& o) noexcept {
    if (this != &o) {
      Reset();
      budget_ = o.budget_;
      bytes_ = o.bytes_;
      o.budget_ = nullptr;
    }
    return *this;
  }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation() { Reset(); }
  uint64_t bytes() const { return budget_ ? bytes_ : 0; }
  /// Release `release` of the bytes now and stop holding the rest, which the caller accounts
  /// for from now on (a Tensor releases its bytes when destroyed). Returns the rest.
  uint64_t Disown(uint64_t release) {
    const uint64_t rest = bytes_ - release;
    if (budget_) budget_->Release(release);
    budget_ = nullptr;
    return rest;
  }

 private:
  void Reset() {
    if (budget_) budget_->Release(bytes_);
    budget_ = nullptr;
  }
  MemoryBudget* budget_ = nullptr;
  uint64_t bytes_ = 0;
};

/// A kernel's working memory besides its output (sort keys, gather offsets, staged operands):
/// `count` elements of T, reserved on the node's budget first and then allocated without
/// exceptions, so a client-chosen size ends in kOutOfMemory, never in std::bad_alloc or in bytes
/// the budget does not see. Uninitialised, like a tensor. Move-only; freed and released together.
template <typename T>
class Scratch {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>, "plain data only");

 public:
  Scratch() = default;
  static Result<Scratch> Make(MemoryBudget* budget, uint64_t count, std::string_view what) {
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(count, sizeof(T), &bytes)) {
      return Status(ErrorKind::kOutOfMemory, std::string(what) + ": working memory of more than 2^64 bytes");
    }
    auto hold = Reservation::Make(budget, bytes, what);
    if (!hold.ok()) return hold.status();
    Scratch s;
    s.count_ = count;
    s.hold_ = std::move(*hold);
    if (bytes > 0) {
      s.data_.reset(static_cast<T*>(std::malloc(bytes)));
      if (!s.data_) {
        return Status(ErrorKind::kOutOfMemory, std::string(what) + ": the system refused " + std::to_string(bytes) +
                                                   " bytes of working memory");
      }
    }
    return s;
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](uint64_t i) { return data_.get()[i]; }
  const T& operator[](uint64_t i) const { return data_.get()[i]; }
  uint64_t size() const { return count_; }
  T* begin() { return data(); }
  T* end() { return data() + count_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  Reservation hold_;                // declared first: released after the bytes are freed
  std::unique_ptr<T, Free> data_;
  uint64_t count_ = 0;
};

class ShmSegments;

/// The table of resident tensors.
class TensorStore {
 public:
  /// `cache_limit`: bytes of freed large buffers kept faulted in for reuse.
  explicit TensorStore(uint64_t memory_limit, uint64_t cache_limit = 0);
  ~TensorStore();

  /// An uninitialised tensor whose bytes are reserved against the budget. kBadShape when the size
  /// overflows, kOutOfMemory when the budget (or the system) cannot hold it: nothing is allocated.
  Result<std::shared_ptr<Tensor>> Allocate(DType type, const Shape& shape);

  /// A new connection's id; its tensors live until CloseConnection.
  uint64_t OpenConnection();
  /// Free every tensor of a connection; later Inserts for it fail. Returns how many were freed.
  size_t CloseConnection(uint64_t conn);

  /// What one resident handle costs the budget besides its tensor's bytes: its table entries,
  /// owner key and tensor header. Without it, 0-byte tensors would grow the node for free.
  static constexpr uint64_t kHandleBytes = 256;

  /// Publish a tensor under a fresh handle owned by (conn, owner). kOutOfMemory when the budget
  /// cannot hold another kHandleBytes. `new_owner` is set when this
  /// owner had no tensors on the connection before (the caller then monitors it).
  Result<uint64_t> Insert(uint64_t conn, const std::string& owner, std::shared_ptr<Tensor> tensor, bool* new_owner);
  /// The tensor behind a handle of this connection; kUnknownHandle otherwise.
  Result<std::shared_ptr<Tensor>> Get(uint64_t conn, uint64_t handle) const;
  /// Drop a handle of this connection; kUnknownHandle when it is not one.
  Status Free(uint64_t conn, uint64_t handle);
  /// Hand a handle of this connection to another owner (its lifetime follows that owner from
  /// now on); kUnknownHandle when it is not one. `new_owner` as for Insert.
  Status Reown(uint64_t conn, uint64_t handle, const std::string& owner, bool* new_owner);
  /// Drop every handle an owner holds on a connection (the owner died). Returns how many.
  size_t FreeOwner(uint64_t conn, const std::string& owner);

  uint64_t tensors() const;
  uint64_t connection_tensors(uint64_t conn) const;
  uint64_t connections() const;
  /// The memory tensors live in; its buffer cache serves connections' large receive buffers too.
  MemoryBudget& budget() { return *budget_; }
  uint64_t memory_used() const { return budget_->used(); }
  uint64_t memory_limit() const { return budget_->limit(); }
  uint64_t memory_cached() const { return budget_->cached(); }
  /// Same-host transfer segments, per connection like tensors (freed by CloseConnection too).
  ShmSegments& shm() { return *shm_; }
  const ShmSegments& shm() const { return *shm_; }

 private:
  struct Entry {
    std::shared_ptr<Tensor> tensor;
    std::string owner;
    Reservation bookkeeping;  ///< kHandleBytes of the budget, released with the handle
  };
  struct Conn {
    std::unordered_map<uint64_t, Entry> handles;
    std::map<std::string, std::set<uint64_t>> by_owner;
  };

  std::shared_ptr<MemoryBudget> budget_;
  std::unique_ptr<ShmSegments> shm_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Conn> conns_;  // guarded by mu_
  uint64_t next_conn_ = 1;                    // guarded by mu_
  uint64_t next_handle_ = 1;                  // guarded by mu_
  uint64_t tensors_ = 0;                      // guarded by mu_
};

}  // namespace mure
