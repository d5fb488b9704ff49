// mure — same-host transfers: tensor bytes through anonymous shared memory (memfd) instead of
// the distribution socket (docs/protocol.md, "Same-host transfers").
//
// The node creates every segment itself with memfd_create: it has no name on any filesystem, so
// nothing is left behind when either side dies (the kernel frees it with its last fd or mapping).
// A client on the same host, as the same user, reaches it at /proc/<node pid>/fd/<fd> (the
// kernel's ptrace-read check: other users, or other hosts, cannot). The segment's first
// kHeader bytes start with a random tag the reply also carries: a client reads it back before
// it writes or trusts a byte, which proves both ends share the host. The tensor's bytes follow
// at offset kHeader.
//
// Requests name segments by id, never by path: the node only ever maps files it created. Sizes
// are sealed at creation (no shrink/grow, so a mapping can never fault past the end); an upload
// segment is sealed against writes before the node maps it (F_SEAL_WRITE waits for writes in
// flight and fails while anyone maps it writable), so the tensor cannot change under a kernel.
// A segment's bytes count against the node's memory budget from creation until freed, adopted
// (the tensor takes them over) or its connection closes.
//
// Reusable segments ({shm_alloc, Bytes, reuse}) serve many transfers: their pages stay allocated
// (and mapped by the node, shared, from creation) so no transfer pays for fresh pages. They are
// never sealed against writes, so the node never lets a tensor map one: an upload copies the
// segment's bytes into a new tensor before the reply (CopyToTensor), a download copies the
// tensor's bytes into the segment before the reply (CopyFromTensor). A client writing one while
// the node copies garbles only its own transfer; it cannot change a tensor afterwards.
//
// Thread-safety: every method may be called from any thread; a connection's Create/Export must
// not race its CloseConnection (dist/ runs both on the connection's own thread).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "mure/status.h"
#include "mure/types.h"
#include "store/tensor_store.h"

namespace mure {

/// What the client needs to reach a segment: its id (for requests), its path and its tag.
struct ShmTicket {
  uint64_t id = 0;
  std::string path;  ///< /proc/<pid>/fd/<fd>
  std::string tag;   ///< kTagBytes random bytes, also at offset 0 of the segment
};

class ShmSegments {
 public:
  explicit ShmSegments(std::shared_ptr<MemoryBudget> budget) : budget_(std::move(budget)) {}
  ~ShmSegments();
  ShmSegments(const ShmSegments&) = delete;
  ShmSegments& operator=(const ShmSegments&) = delete;

  /// Bytes before the tensor's: the tag, then zeros (one page, so the data maps page-aligned).
  static constexpr uint64_t kHeader = 4096;
  static constexpr size_t kTagBytes = 16;
  /// Segments one connection may hold at once (each is an open fd of the node).
  static constexpr size_t kMaxPerConnection = 64;

  /// An empty segment of `bytes` (>= 1) for the client to write, then Adopt. Segments belong to
  /// (conn, owner) like tensors: `new_owner` is set when the owner held none on the connection
  /// before (the caller then monitors it, and FreeOwner drops them when it dies).
  /// `reuse`: a reusable segment (see above), mapped by the node until freed.
  Result<ShmTicket> Create(uint64_t conn, const std::string& owner, uint64_t bytes, bool* new_owner,
                           bool reuse = false);
  /// The segment's bytes as a new tensor of `type` and `shape` (exactly its size). The segment is
  /// gone afterwards (its id unknown); the tensor maps its memory privately, without a copy.
  Result<std::shared_ptr<Tensor>> Adopt(uint64_t conn, uint64_t id, DType type, const Shape& shape);
  /// Whether `id` is a reusable segment of `conn` (then uploads copy: CopyToTensor).
  bool Reusable(uint64_t conn, uint64_t id) const;
  /// Copy the first dst.bytes() bytes of reusable segment `id` into `dst`; the segment stays.
  Status CopyToTensor(uint64_t conn, uint64_t id, Tensor& dst);
  /// Copy `src`'s bytes into reusable segment `id` (at least that large); its ticket again.
  Result<ShmTicket> CopyFromTensor(uint64_t conn, uint64_t id, const Tensor& src);
  /// A read-only segment holding a copy of `t`'s bytes, for the client to read, then Free.
  Result<ShmTicket> Export(uint64_t conn, const std::string& owner, const Tensor& t, bool* new_owner);
  /// Drop a segment of this connection; kUnknownHandle when it is not one.
  Status Free(uint64_t conn, uint64_t id);
  /// Drop every segment of a connection. Returns how many.
  size_t CloseConnection(uint64_t conn);
  /// Drop every segment an owner holds on a connection (the owner died). Returns how many.
  size_t FreeOwner(uint64_t conn, const std::string& owner);
  /// Segments held, node-wide.
  uint64_t count() const;

 private:
  struct Segment {
    int fd = -1;
    uint64_t bytes = 0;     ///< the tensor bytes (the file is kHeader longer)
    bool upload = false;    ///< made by Create (adoptable or reusable), not Export
    bool reuse = false;     ///< reusable: never adopted, mapped at `map` (shared, the data bytes)
    uint8_t* map = nullptr;
    Reservation hold;       ///< bytes + kHeader of the budget
    std::string owner;      ///< the owner pid's key (proto::PidKey)
    std::string path, tag;  ///< its ticket's (reusable segments reply them again)
    Segment() = default;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    ~Segment();
  };
  using SegmentPtr = std::shared_ptr<Segment>;  // a copy in flight keeps a freed one mapped
  /// A new sealed memfd of kHeader + bytes with the tag written, registered for `conn`.
  Result<ShmTicket> Make(uint64_t conn, const std::string& owner, uint64_t bytes, bool upload, bool reuse,
                         const Tensor* content, bool* new_owner);
  /// Reusable segment `id` of `conn`, or why not.
  Result<SegmentPtr> FindReusable(uint64_t conn, uint64_t id) const;
  using Table = std::unordered_map<uint64_t, SegmentPtr>;

  std::shared_ptr<MemoryBudget> budget_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Table> conns_;  // guarded by mu_
  uint64_t next_id_ = 1;                                                       // guarded by mu_
  uint64_t count_ = 0;                                                         // guarded by mu_
};

}  // namespace mure
