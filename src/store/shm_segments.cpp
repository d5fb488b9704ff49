#include "store/shm_segments.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace mure {

namespace {

std::string Errno(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

/// Write all of [data, data + n) at `offset`, retrying short writes and EINTR.
bool WriteAll(int fd, const uint8_t* data, uint64_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

Status UnknownSegment(uint64_t id) {
  return Status(ErrorKind::kUnknownHandle, "segment " + std::to_string(id) +
                                               " is not a shared segment of this connection (never made here, "
                                               "adopted or freed already)");
}

bool RandomBytes(char* out, size_t n) {
  while (n > 0) {
    ssize_t r = ::getrandom(out, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    out += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

ShmSegments::Segment::~Segment() {
  if (map) ::munmap(map, bytes);
  if (fd >= 0) ::close(fd);
}

ShmSegments::~ShmSegments() = default;

Result<ShmTicket> ShmSegments::Make(uint64_t conn, const std::string& owner, uint64_t bytes, bool upload, bool reuse,
                                    const Tensor* content, bool* new_owner) {
  uint64_t file_bytes = 0;
  if (bytes == 0 || __builtin_add_overflow(bytes, kHeader, &file_bytes) ||
      file_bytes > static_cast<uint64_t>(INT64_MAX)) {
    return Status::BadArg("a shared segment holds 1 .. 2^63 - 4097 bytes, not " + std::to_string(bytes));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = conns_.find(conn);
    if (it != conns_.end() && it->second.size() >= kMaxPerConnection) {
      return Status(ErrorKind::kOverloaded, "this connection holds " + std::to_string(kMaxPerConnection) +
                                                " shared segments already; free some (shm_free) first");
    }
  }
  auto made = std::make_shared<Segment>();
  Segment& seg = *made;
  seg.bytes = bytes;
  seg.upload = upload;
  seg.reuse = reuse;
  seg.owner = owner;
  auto hold = Reservation::Make(budget_.get(), file_bytes, "a shared segment of " + std::to_string(bytes) + " bytes");
  if (!hold.ok()) return hold.status();
  seg.hold = std::move(*hold);
  seg.fd = ::memfd_create("mure-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (seg.fd < 0) return Status(ErrorKind::kOutOfMemory, "a shared segment: " + Errno("memfd_create"));
  if (::fchmod(seg.fd, 0600) != 0) return Status::Internal("a shared segment: " + Errno("fchmod"));
  if (::ftruncate(seg.fd, static_cast<off_t>(file_bytes)) != 0) {
    return Status(ErrorKind::kOutOfMemory, "a shared segment of " + std::to_string(bytes) + " bytes: " + Errno("ftruncate"));
  }
  ShmTicket ticket;
  ticket.tag.resize(kTagBytes);
  if (!RandomBytes(ticket.tag.data(), kTagBytes)) return Status::Internal("a shared segment: " + Errno("getrandom"));
  if (!WriteAll(seg.fd, reinterpret_cast<const uint8_t*>(ticket.tag.data()), kTagBytes, 0)) {
    return Status(ErrorKind::kOutOfMemory, "a shared segment: " + Errno("pwrite"));
  }
  if (content && !WriteAll(seg.fd, content->data(), bytes, kHeader)) {
    return Status(ErrorKind::kOutOfMemory, "a shared segment of " + std::to_string(bytes) + " bytes: " + Errno("pwrite"));
  }
  // Its size is final: a client cannot shrink it under a mapping (SIGBUS) nor grow it past the
  // budget. A download's is final altogether.
  int seals = F_SEAL_SHRINK | F_SEAL_GROW;
  if (!upload) seals |= F_SEAL_WRITE | F_SEAL_SEAL;
  if (::fcntl(seg.fd, F_ADD_SEALS, seals) != 0) return Status::Internal("a shared segment: " + Errno("F_ADD_SEALS"));
  if (reuse) {
    // Mapped once, its pages allocated now: no transfer through it faults them in again.
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, seg.fd,
                     static_cast<off_t>(kHeader));
    if (p == MAP_FAILED) {
      return Status(ErrorKind::kOutOfMemory, "a shared segment of " + std::to_string(bytes) + " bytes: " + Errno("mmap"));
    }
    seg.map = static_cast<uint8_t*>(p);
  }
  ticket.path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(seg.fd);
  seg.path = ticket.path;
  seg.tag = ticket.tag;
  std::lock_guard<std::mutex> lock(mu_);
  auto& segs = conns_[conn];
  if (segs.size() >= kMaxPerConnection) {
    return Status(ErrorKind::kOverloaded, "this connection holds " + std::to_string(kMaxPerConnection) +
                                              " shared segments already; free some (shm_free) first");
  }
  ticket.id = next_id_++;
  bool owned = false;
  for (const auto& [id, other] : segs) owned = owned || other->owner == owner;  // at most 64
  if (new_owner) *new_owner = !owned;
  segs.emplace(ticket.id, std::move(made));
  ++count_;
  return ticket;
}

Result<ShmTicket> ShmSegments::Create(uint64_t conn, const std::string& owner, uint64_t bytes, bool* new_owner,
                                      bool reuse) {
  return Make(conn, owner, bytes, true, reuse, nullptr, new_owner);
}

Result<ShmTicket> ShmSegments::Export(uint64_t conn, const std::string& owner, const Tensor& t, bool* new_owner) {
  if (t.bytes() == 0) return Status::BadArg("a tensor of 0 bytes has nothing to share; use download");
  return Make(conn, owner, t.bytes(), false, false, &t, new_owner);
}

Result<ShmSegments::SegmentPtr> ShmSegments::FindReusable(uint64_t conn, uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto c = conns_.find(conn);
  if (c == conns_.end()) return UnknownSegment(id);
  auto it = c->second.find(id);
  if (it == c->second.end()) return UnknownSegment(id);
  if (!it->second->reuse) {
    return Status::BadArg("segment " + std::to_string(id) +
                          " is not reusable; only {shm_alloc, Bytes, reuse}'s segments take a download");
  }
  return it->second;
}

bool ShmSegments::Reusable(uint64_t conn, uint64_t id) const { return FindReusable(conn, id).ok(); }

Status ShmSegments::CopyToTensor(uint64_t conn, uint64_t id, Tensor& dst) {
  auto seg = FindReusable(conn, id);
  if (!seg.ok()) return seg.status();
  if (dst.bytes() > (*seg)->bytes) {
    return Status(ErrorKind::kSizeMismatch, "a " + DTypeToString(dst.type()) + " tensor of shape " +
                                                ShapeToString(dst.shape()) + " needs " + std::to_string(dst.bytes()) +
                                                " bytes; segment " + std::to_string(id) + " holds " +
                                                std::to_string((*seg)->bytes));
  }
  if (dst.bytes()) std::memcpy(dst.data(), (*seg)->map, dst.bytes());
  return Status();
}

Result<ShmTicket> ShmSegments::CopyFromTensor(uint64_t conn, uint64_t id, const Tensor& src) {
  auto seg = FindReusable(conn, id);
  if (!seg.ok()) return seg.status();
  if (src.bytes() > (*seg)->bytes) {
    return Status(ErrorKind::kSizeMismatch, "the tensor holds " + std::to_string(src.bytes()) + " bytes; segment " +
                                                std::to_string(id) + " holds " + std::to_string((*seg)->bytes));
  }
  if (src.bytes()) std::memcpy((*seg)->map, src.data(), src.bytes());
  return ShmTicket{id, (*seg)->path, (*seg)->tag};
}

Result<std::shared_ptr<Tensor>> ShmSegments::Adopt(uint64_t conn, uint64_t id, DType type, const Shape& shape) {
  auto elements = ElementCount(shape);
  if (!elements.ok()) return elements.status();
  auto bytes = ByteSize(type, shape);
  if (!bytes.ok()) return bytes.status();
  SegmentPtr seg;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto c = conns_.find(conn);
    auto it = c == conns_.end() ? decltype(c->second.end()){} : c->second.find(id);
    if (c == conns_.end() || it == c->second.end()) return UnknownSegment(id);
    if (it->second->reuse) {
      return Status::BadArg("segment " + std::to_string(id) + " is reusable: its bytes are copied, never adopted");
    }
    if (!it->second->upload) {
      return Status::BadArg("segment " + std::to_string(id) + " holds a download; only shm_alloc's segments become tensors");
    }
    if (it->second->bytes != *bytes) {
      return Status(ErrorKind::kSizeMismatch, "a " + DTypeToString(type) + " tensor of shape " + ShapeToString(shape) +
                                                  " needs " + std::to_string(*bytes) + " bytes; segment " +
                                                  std::to_string(id) + " holds " + std::to_string(it->second->bytes));
    }
    seg = std::move(it->second);
    c->second.erase(it);
    --count_;
  }
  // From here on nobody can write it: the seal waits for writes in flight and fails while a
  // process maps it writable (then the segment is dropped: the client broke the protocol).
  if (::fcntl(seg->fd, F_ADD_SEALS, F_SEAL_WRITE) != 0) {
    return Status::BadArg("segment " + std::to_string(id) + " could not be sealed (" + Errno("F_ADD_SEALS") +
                          "): another process maps it writable; it is dropped");
  }
  // Read-only first, so MAP_POPULATE maps the segment's own pages instead of copying them; the
  // node's own later writes (the write request) copy just the pages they touch.
  void* p = ::mmap(nullptr, *bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, seg->fd, static_cast<off_t>(kHeader));
  if (p == MAP_FAILED) return Status(ErrorKind::kOutOfMemory, "segment " + std::to_string(id) + ": " + Errno("mmap"));
  if (::mprotect(p, *bytes, PROT_READ | PROT_WRITE) != 0) {
    Status st(ErrorKind::kOutOfMemory, "segment " + std::to_string(id) + ": " + Errno("mprotect"));
    ::munmap(p, *bytes);
    return st;
  }
  // The tensor takes over the data bytes of the reservation; the header page is released with
  // the segment (the mapping keeps the memfd alive after its fd closes).
  const uint64_t data_bytes = seg->hold.Disown(kHeader);
  auto t = std::make_shared<Tensor>(type, shape, *elements, data_bytes, p, *bytes, budget_);
  t->MarkMapped();
  return t;
}

Status ShmSegments::Free(uint64_t conn, uint64_t id) {
  SegmentPtr dead;  // closed outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto c = conns_.find(conn);
  if (c != conns_.end()) {
    auto it = c->second.find(id);
    if (it != c->second.end()) {
      dead = std::move(it->second);
      c->second.erase(it);
      --count_;
      return Status();
    }
  }
  return UnknownSegment(id);
}

size_t ShmSegments::CloseConnection(uint64_t conn) {
  Table dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto c = conns_.find(conn);
    if (c == conns_.end()) return 0;
    dead = std::move(c->second);
    conns_.erase(c);
    count_ -= dead.size();
  }
  return dead.size();
}

size_t ShmSegments::FreeOwner(uint64_t conn, const std::string& owner) {
  std::vector<SegmentPtr> dead;  // closed outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto c = conns_.find(conn);
  if (c == conns_.end()) return 0;
  for (auto it = c->second.begin(); it != c->second.end();) {
    if (it->second->owner == owner) {
      dead.push_back(std::move(it->second));
      it = c->second.erase(it);
      --count_;
    } else {
      ++it;
    }
  }
  return dead.size();
}

uint64_t ShmSegments::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

}  // namespace mure
