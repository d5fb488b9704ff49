#include "store/tensor_store.h"

#include "store/shm_segments.h"

#include <sys/mman.h>

#include <cstdlib>
#include <vector>

namespace mure {

bool MemoryBudget::Reserve(uint64_t bytes) {
  uint64_t cur = used_.load();
  do {
    if (bytes > limit_ || cur > limit_ - bytes) return false;
  } while (!used_.compare_exchange_weak(cur, cur + bytes));
  return true;
}

Reservation Reservation::Adopt(MemoryBudget* budget, uint64_t bytes) {
  Reservation r;
  r.budget_ = budget;
  r.bytes_ = bytes;
  return r;
}

Result<Reservation> Reservation::Make(MemoryBudget* budget, uint64_t bytes, std::string_view what) {
  Reservation r;
  if (!budget) return r;
  if (!budget->Reserve(bytes)) {
    return Status(ErrorKind::kOutOfMemory, std::string(what) + " needs " + std::to_string(bytes) +
                                               " bytes of working memory; the node holds " +
                                               std::to_string(budget->used()) + " of its " +
                                               std::to_string(budget->limit()) + "-byte limit");
  }
  r.budget_ = budget;
  r.bytes_ = bytes;
  return r;
}

MemoryBudget::~MemoryBudget() {
  for (const Cached& c : cache_) ::munmap(c.data, c.capacity);
}

void* MemoryBudget::Acquire(uint64_t bytes, uint64_t* capacity, bool* zeroed) {
  *zeroed = false;
  if (bytes < kLargeBuffer) {
    *capacity = (bytes + Tensor::kAlignment - 1) / Tensor::kAlignment * Tensor::kAlignment;
    return std::aligned_alloc(Tensor::kAlignment, *capacity);
  }
  constexpr uint64_t kHuge = 2u << 20;
  const uint64_t cap = (bytes + kHuge - 1) / kHuge * kHuge;
  void* reused = nullptr;
  uint64_t reused_cap = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The same size if it is there, else the smallest buffer that holds `cap`.
    auto best = cache_.end();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->capacity < cap) continue;
      if (best == cache_.end() || it->capacity < best->capacity) best = it;
      if (it->capacity == cap) break;
    }
    if (best != cache_.end()) {
      reused = best->data;
      reused_cap = best->capacity;
      cached_ -= reused_cap;
      cache_.erase(best);
    }
  }
  if (reused) {
    // A larger buffer gives its tail back: the tensor holds exactly `cap` (whole 2 MiB units, so
    // the tail starts on a page boundary), and the pages it keeps are already faulted in.
    if (reused_cap > cap) ::munmap(static_cast<char*>(reused) + cap, reused_cap - cap);
    *capacity = cap;
    return reused;
  }
  // Fresh pages straight from the kernel: page-aligned and already zero. (No MADV_HUGEPAGE: with
  // THP defrag on madvise, faulting such a region compacts memory, measured at ~7 ms/MiB here.)
  void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  *capacity = cap;
  *zeroed = true;
  return p;
}

void MemoryBudget::Recycle(void* data, uint64_t capacity) {
  if (!data) return;
  if (capacity < kLargeBuffer) {
    std::free(data);
    return;
  }
  if (capacity > cache_limit_) {
    ::munmap(data, capacity);
    return;
  }
  std::vector<Cached> evicted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cache_.push_front(Cached{capacity, data});
    cached_ += capacity;
    while (cached_ > cache_limit_) {
      evicted.push_back(cache_.back());
      cached_ -= cache_.back().capacity;
      cache_.pop_back();
    }
  }
  for (const Cached& c : evicted) ::munmap(c.data, c.capacity);  // outside the lock
}

uint64_t MemoryBudget::cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}

Tensor::~Tensor() {
  if (mapped_) {
    ::munmap(data_, capacity_);
  } else {
    budget_->Recycle(data_, capacity_);
  }
  budget_->Release(bytes_);
}

Result<std::shared_ptr<Tensor>> TensorStore::Allocate(DType type, const Shape& shape) {
  auto elements = ElementCount(shape);
  if (!elements.ok()) return elements.status();
  auto bytes = ByteSize(type, shape);
  if (!bytes.ok()) return bytes.status();
  if (!budget_->Reserve(*bytes)) {
    return Status(ErrorKind::kOutOfMemory, "a " + DTypeToString(type) + " tensor of shape " + ShapeToString(shape) +
                                               " needs " + std::to_string(*bytes) + " bytes; the node holds " +
                                               std::to_string(budget_->used()) + " of its " +
                                               std::to_string(budget_->limit()) + "-byte limit");
  }
  void* data = nullptr;
  uint64_t capacity = 0;
  bool zeroed = *bytes == 0;
  if (*bytes > 0) {
    data = budget_->Acquire(*bytes, &capacity, &zeroed);
    if (!data) {
      budget_->Release(*bytes);
      return Status(ErrorKind::kOutOfMemory, "the system refused " + std::to_string(*bytes) + " bytes");
    }
  }
  auto t = std::make_shared<Tensor>(type, shape, *elements, *bytes, data, capacity, budget_);
  t->set_zeroed(zeroed);
  return t;
}

TensorStore::TensorStore(uint64_t memory_limit, uint64_t cache_limit)
    : budget_(std::make_shared<MemoryBudget>(memory_limit, cache_limit)),
      shm_(std::make_unique<ShmSegments>(budget_)) {}

TensorStore::~TensorStore() = default;

uint64_t TensorStore::OpenConnection() {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_conn_++;
  conns_.emplace(id, Conn{});
  return id;
}

size_t TensorStore::CloseConnection(uint64_t conn) {
  shm_->CloseConnection(conn);
  Conn dead;  // destroyed outside the lock: freeing big buffers takes time
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(conn);
    if (it == conns_.end()) return 0;
    dead = std::move(it->second);
    conns_.erase(it);
    tensors_ -= dead.handles.size();
  }
  return dead.handles.size();
}

Result<uint64_t> TensorStore::Insert(uint64_t conn, const std::string& owner, std::shared_ptr<Tensor> tensor,
                                     bool* new_owner) {
  Reservation bookkeeping;
  if (!budget_->Reserve(kHandleBytes)) {
    return Status(ErrorKind::kOutOfMemory, "another resident tensor needs " + std::to_string(kHandleBytes) +
                                               " bytes of bookkeeping; the node holds " + std::to_string(budget_->used()) +
                                               " of its " + std::to_string(budget_->limit()) +
                                               "-byte limit (free tensors you no longer need)");
  }
  bookkeeping = Reservation::Adopt(budget_.get(), kHandleBytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end()) return Status(ErrorKind::kUnknownHandle, "the connection is closed");
  uint64_t handle = next_handle_++;
  it->second.handles.emplace(handle, Entry{std::move(tensor), owner, std::move(bookkeeping)});
  auto& owned = it->second.by_owner[owner];
  if (new_owner) *new_owner = owned.empty();
  owned.insert(handle);
  ++tensors_;
  return handle;
}

Result<std::shared_ptr<Tensor>> TensorStore::Get(uint64_t conn, uint64_t handle) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conns_.find(conn);
  if (it != conns_.end()) {
    auto h = it->second.handles.find(handle);
    if (h != it->second.handles.end()) return h->second.tensor;
  }
  return Status(ErrorKind::kUnknownHandle,
                "handle " + std::to_string(handle) + " is not a resident tensor of this connection (never "
                "uploaded here, freed, or its owner exited)");
}

Status TensorStore::Free(uint64_t conn, uint64_t handle) {
  std::shared_ptr<Tensor> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(conn);
    if (it != conns_.end()) {
      auto h = it->second.handles.find(handle);
      if (h != it->second.handles.end()) {
        doomed = std::move(h->second.tensor);
        auto o = it->second.by_owner.find(h->second.owner);
        if (o != it->second.by_owner.end()) {
          o->second.erase(handle);
          if (o->second.empty()) it->second.by_owner.erase(o);
        }
        it->second.handles.erase(h);
        --tensors_;
        return Status::Ok();
      }
    }
  }
  return Status(ErrorKind::kUnknownHandle, "handle " + std::to_string(handle) +
                                               " is not a resident tensor of this connection (already freed?)");
}

Status TensorStore::Reown(uint64_t conn, uint64_t handle, const std::string& owner, bool* new_owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conns_.find(conn);
  if (it != conns_.end()) {
    auto h = it->second.handles.find(handle);
    if (h != it->second.handles.end()) {
      Entry& e = h->second;
      auto& by_owner = it->second.by_owner;
      if (auto o = by_owner.find(e.owner); o != by_owner.end()) {
        o->second.erase(handle);
        if (o->second.empty()) by_owner.erase(o);
      }
      auto& owned = by_owner[owner];
      if (new_owner) *new_owner = owned.empty();
      owned.insert(handle);
      e.owner = owner;
      return Status::Ok();
    }
  }
  return Status(ErrorKind::kUnknownHandle, "handle " + std::to_string(handle) +
                                               " is not a resident tensor of this connection (already freed?)");
}

size_t TensorStore::FreeOwner(uint64_t conn, const std::string& owner) {
  shm_->FreeOwner(conn, owner);
  std::vector<std::shared_ptr<Tensor>> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(conn);
    if (it == conns_.end()) return 0;
    auto o = it->second.by_owner.find(owner);
    if (o == it->second.by_owner.end()) return 0;
    for (uint64_t h : o->second) {
      auto e = it->second.handles.find(h);
      if (e != it->second.handles.end()) {
        doomed.push_back(std::move(e->second.tensor));
        it->second.handles.erase(e);
        --tensors_;
      }
    }
    it->second.by_owner.erase(o);
  }
  return doomed.size();
}

uint64_t TensorStore::tensors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tensors_;
}

uint64_t TensorStore::connection_tensors(uint64_t conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = conns_.find(conn);
  return it == conns_.end() ? 0 : it->second.handles.size();
}

uint64_t TensorStore::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return conns_.size();
}

}  // namespace mure
