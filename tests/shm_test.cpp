// Same-host transfer segments (store/shm_segments.h): what a client can and cannot do with them,
// the memory they hold, and that they leave nothing behind.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "store/shm_segments.h"
#include "store/tensor_store.h"

using namespace mure;

namespace {

/// Open a segment the way a client does: through its /proc path.
int OpenPath(const std::string& path, int flags) { return ::open(path.c_str(), flags | O_CLOEXEC); }

std::string ReadAt(int fd, size_t n, off_t off) {
  std::string s(n, '\0');
  REQUIRE(::pread(fd, s.data(), n, off) == static_cast<ssize_t>(n));
  return s;
}

/// Open fds of this process that are memfds (their link reads "/memfd:mure-shm ...").
int OpenSegments() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) {
    char link[256] = {};
    std::string p = std::string("/proc/self/fd/") + e->d_name;
    ssize_t len = ::readlink(p.c_str(), link, sizeof(link) - 1);
    if (len > 0 && std::string(link, len).find("memfd:mure-shm") != std::string::npos) ++n;
  }
  ::closedir(d);
  return n;
}

}  // namespace

TEST_CASE("an upload segment: tag, write, adopt without a copy, then unknown", "[shm]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  auto ticket = store.shm().Create(conn, "owner", 16, nullptr);
  REQUIRE(ticket.ok());
  CHECK(ticket->tag.size() == ShmSegments::kTagBytes);
  CHECK(store.memory_used() == 16 + ShmSegments::kHeader);
  CHECK(store.shm().count() == 1);
  int fd = OpenPath(ticket->path, O_RDWR);
  REQUIRE(fd >= 0);
  CHECK(ReadAt(fd, ShmSegments::kTagBytes, 0) == ticket->tag);
  const float values[4] = {1.5f, -2.0f, 3.25f, 0.0f};
  REQUIRE(::pwrite(fd, values, sizeof(values), ShmSegments::kHeader) == sizeof(values));
  // A client cannot change the size the node will map.
  CHECK(::ftruncate(fd, 4) != 0);
  CHECK(::ftruncate(fd, 1 << 20) != 0);
  auto t = store.shm().Adopt(conn, ticket->id, DType::kF32, {4});
  REQUIRE(t.ok());
  CHECK(std::memcmp((*t)->data(), values, sizeof(values)) == 0);
  CHECK(store.memory_used() == 16);  // the header page went with the segment
  CHECK(store.shm().count() == 0);
  // Sealed: the client's still-open file cannot change the tensor any more.
  const float other = 9.0f;
  CHECK(::pwrite(fd, &other, sizeof(other), ShmSegments::kHeader) < 0);
  CHECK(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
  CHECK((*t)->as<float>()[0] == 1.5f);
  // The node's own writes stay private to the tensor.
  (*t)->as<float>()[1] = 7.0f;
  CHECK(ReadAt(fd, 4, ShmSegments::kHeader + 4) == std::string(reinterpret_cast<const char*>(&values[1]), 4));
  ::close(fd);
  auto again = store.shm().Adopt(conn, ticket->id, DType::kF32, {4});
  CHECK(again.status().kind() == ErrorKind::kUnknownHandle);
  t = Status::Internal("drop");
  CHECK(store.memory_used() == 0);
}

TEST_CASE("segments are per connection and checked for size and kind", "[shm][security]") {
  TensorStore store(1 << 24);
  const uint64_t a = store.OpenConnection(), b = store.OpenConnection();
  auto ticket = store.shm().Create(a, "owner", 8, nullptr);
  REQUIRE(ticket.ok());
  SECTION("another connection's id is unknown to it") {
    CHECK(store.shm().Adopt(b, ticket->id, DType::kU8, {8}).status().kind() == ErrorKind::kUnknownHandle);
    CHECK(store.shm().Free(b, ticket->id).kind() == ErrorKind::kUnknownHandle);
    CHECK(store.shm().Free(a, ticket->id).ok());
  }
  SECTION("ids never made are unknown") {
    CHECK(store.shm().Adopt(a, ticket->id + 100, DType::kU8, {8}).status().kind() == ErrorKind::kUnknownHandle);
    CHECK(store.shm().Free(a, 0).kind() == ErrorKind::kUnknownHandle);
  }
  SECTION("the type and shape must fill it exactly; the segment stays") {
    CHECK(store.shm().Adopt(a, ticket->id, DType::kU8, {7}).status().kind() == ErrorKind::kSizeMismatch);
    CHECK(store.shm().Adopt(a, ticket->id, DType::kF64, {1ull << 62}).status().kind() == ErrorKind::kBadShape);
    CHECK(store.shm().Adopt(a, ticket->id, DType::kU8, {8}).ok());
  }
  SECTION("a download's segment never becomes a tensor") {
    auto t = store.Allocate(DType::kU8, {8});
    REQUIRE(t.ok());
    auto d = store.shm().Export(a, "owner", **t, nullptr);
    REQUIRE(d.ok());
    CHECK(store.shm().Adopt(a, d->id, DType::kU8, {8}).status().kind() == ErrorKind::kBadArg);
  }
  SECTION("0 bytes and sizes past 2^63 are refused") {
    CHECK(store.shm().Create(a, "owner", 0, nullptr).status().kind() == ErrorKind::kBadArg);
    CHECK(store.shm().Create(a, "owner", ~0ull - 10, nullptr).status().kind() == ErrorKind::kBadArg);
  }
}

TEST_CASE("a segment writable-mapped by the client is not adopted", "[shm][security]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  auto ticket = store.shm().Create(conn, "owner", 4096, nullptr);
  REQUIRE(ticket.ok());
  int fd = OpenPath(ticket->path, O_RDWR);
  REQUIRE(fd >= 0);
  void* p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  REQUIRE(p != MAP_FAILED);
  auto t = store.shm().Adopt(conn, ticket->id, DType::kU8, {4096});
  CHECK(t.status().kind() == ErrorKind::kBadArg);
  CHECK(store.shm().count() == 0);  // dropped
  ::munmap(p, 8192);
  ::close(fd);
  CHECK(store.memory_used() == 0);
}

TEST_CASE("a download segment holds a read-only copy", "[shm]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  auto t = store.Allocate(DType::kU8, {5});
  REQUIRE(t.ok());
  std::memcpy((*t)->data(), "hello", 5);
  auto ticket = store.shm().Export(conn, "owner", **t, nullptr);
  REQUIRE(ticket.ok());
  CHECK(store.memory_used() == 5 + 5 + ShmSegments::kHeader);
  int fd = OpenPath(ticket->path, O_RDWR);
  REQUIRE(fd >= 0);
  CHECK(ReadAt(fd, ShmSegments::kTagBytes, 0) == ticket->tag);
  CHECK(ReadAt(fd, 5, ShmSegments::kHeader) == "hello");
  CHECK(::pwrite(fd, "x", 1, ShmSegments::kHeader) < 0);
  ::close(fd);
  CHECK(store.shm().Free(conn, ticket->id).ok());
  CHECK(store.memory_used() == 5);
  auto empty = store.Allocate(DType::kU8, {0});
  CHECK(store.shm().Export(conn, "owner", **empty, nullptr).status().kind() == ErrorKind::kBadArg);
}

TEST_CASE("segments count against the memory limit and a connection's cap", "[shm][security]") {
  TensorStore store(1 << 20);
  const uint64_t conn = store.OpenConnection();
  CHECK(store.shm().Create(conn, "owner", 1 << 20, nullptr).status().kind() == ErrorKind::kOutOfMemory);
  CHECK(store.memory_used() == 0);
  CHECK(OpenSegments() == 0);
  std::vector<ShmTicket> held;
  for (size_t i = 0; i < ShmSegments::kMaxPerConnection; ++i) {
    auto t = store.shm().Create(conn, "owner", 1, nullptr);
    REQUIRE(t.ok());
    held.push_back(*t);
  }
  CHECK(store.shm().Create(conn, "owner", 1, nullptr).status().kind() == ErrorKind::kOverloaded);
  CHECK(OpenSegments() == static_cast<int>(ShmSegments::kMaxPerConnection));
  CHECK(store.memory_used() == ShmSegments::kMaxPerConnection * (1 + ShmSegments::kHeader));
}

TEST_CASE("closing a connection frees its segments and their memory", "[shm][security]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  auto a = store.shm().Create(conn, "owner", 1000, nullptr);
  auto t = store.Allocate(DType::kU8, {10});
  REQUIRE(t.ok());
  auto b = store.shm().Export(conn, "owner", **t, nullptr);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  t = Status::Internal("drop");
  CHECK(OpenSegments() == 2);
  CHECK(store.CloseConnection(conn) == 0);
  CHECK(store.shm().count() == 0);
  CHECK(OpenSegments() == 0);
  CHECK(store.memory_used() == 0);
}

TEST_CASE("an owner's death drops its segments, not others'", "[shm][security]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  bool fresh = false;
  auto a = store.shm().Create(conn, "dead", 10, &fresh);
  REQUIRE(a.ok());
  CHECK(fresh);
  auto a2 = store.shm().Create(conn, "dead", 10, &fresh);
  REQUIRE(a2.ok());
  CHECK_FALSE(fresh);  // monitored once
  auto b = store.shm().Create(conn, "alive", 10, &fresh);
  REQUIRE(b.ok());
  CHECK(fresh);
  CHECK(store.FreeOwner(conn, "dead") == 0);  // no tensors; its two segments go
  CHECK(store.shm().count() == 1);
  CHECK(store.memory_used() == 10 + ShmSegments::kHeader);
  CHECK(store.shm().Free(conn, a->id).kind() == ErrorKind::kUnknownHandle);
  CHECK(store.shm().Free(conn, b->id).ok());
}

namespace {

/// Mappings of this process that are segments (/proc/self/maps names them "/memfd:mure-shm").
int MappedSegments() {
  FILE* f = std::fopen("/proc/self/maps", "r");
  REQUIRE(f != nullptr);
  int n = 0;
  char line[512];
  while (std::fgets(line, sizeof(line), f)) n += std::strstr(line, "memfd:mure-shm") != nullptr;
  std::fclose(f);
  return n;
}

}  // namespace

TEST_CASE("a reusable segment: copies in and out, stays, never lends a tensor its pages", "[shm]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  auto ticket = store.shm().Create(conn, "owner", 64, nullptr, /*reuse=*/true);
  REQUIRE(ticket.ok());
  CHECK(store.shm().Reusable(conn, ticket->id));
  CHECK(store.memory_used() == 64 + ShmSegments::kHeader);
  CHECK(MappedSegments() == 1);  // the node's own mapping, from creation
  int fd = OpenPath(ticket->path, O_RDWR);
  REQUIRE(fd >= 0);
  CHECK(ReadAt(fd, ShmSegments::kTagBytes, 0) == ticket->tag);
  CHECK(::ftruncate(fd, 4) != 0);  // its size is still sealed
  const float values[4] = {1.5f, -2.0f, 3.25f, 0.0f};
  REQUIRE(::pwrite(fd, values, sizeof(values), ShmSegments::kHeader) == sizeof(values));

  // Upload: copied into a tensor of its own; later writes to the segment do not reach it.
  auto t = store.Allocate(DType::kF32, {4});
  REQUIRE(t.ok());
  REQUIRE(store.shm().CopyToTensor(conn, ticket->id, **t).ok());
  CHECK(std::memcmp((*t)->data(), values, sizeof(values)) == 0);
  const float other[4] = {9.0f, 9.0f, 9.0f, 9.0f};
  REQUIRE(::pwrite(fd, other, sizeof(other), ShmSegments::kHeader) == sizeof(other));
  CHECK((*t)->as<float>()[0] == 1.5f);
  CHECK(store.shm().count() == 1);
  // Adopting it (a tensor mapping client-writable pages) is refused.
  CHECK(store.shm().Adopt(conn, ticket->id, DType::kF32, {16}).status().kind() == ErrorKind::kBadArg);

  // Download: a 2-byte tensor overwrites the first 2 bytes; the client reads exactly those.
  auto small = store.Allocate(DType::kU8, {2});
  REQUIRE(small.ok());
  std::memcpy((*small)->data(), "hi", 2);
  auto again = store.shm().CopyFromTensor(conn, ticket->id, **small);
  REQUIRE(again.ok());
  CHECK(again->id == ticket->id);
  CHECK(again->path == ticket->path);
  CHECK(again->tag == ticket->tag);
  CHECK(ReadAt(fd, 2, ShmSegments::kHeader) == "hi");

  // Larger than the segment: refused both ways, nothing copied.
  auto big = store.Allocate(DType::kU8, {65});
  REQUIRE(big.ok());
  CHECK(store.shm().CopyToTensor(conn, ticket->id, **big).kind() == ErrorKind::kSizeMismatch);
  CHECK(store.shm().CopyFromTensor(conn, ticket->id, **big).status().kind() == ErrorKind::kSizeMismatch);
  // A one-shot segment takes no download and gives no copy.
  auto once = store.shm().Create(conn, "owner", 8, nullptr);
  REQUIRE(once.ok());
  CHECK_FALSE(store.shm().Reusable(conn, once->id));
  CHECK(store.shm().CopyFromTensor(conn, once->id, **small).status().kind() == ErrorKind::kBadArg);
  CHECK(store.shm().CopyToTensor(conn, once->id, **small).kind() == ErrorKind::kBadArg);
  // Another connection cannot name it.
  const uint64_t other_conn = store.OpenConnection();
  CHECK(store.shm().CopyFromTensor(other_conn, ticket->id, **small).status().kind() == ErrorKind::kUnknownHandle);
  CHECK(store.shm().CopyToTensor(other_conn, ticket->id, **small).kind() == ErrorKind::kUnknownHandle);

  ::close(fd);
  CHECK(store.shm().Free(conn, ticket->id).ok());
  CHECK(store.shm().CopyToTensor(conn, ticket->id, **small).kind() == ErrorKind::kUnknownHandle);
  CHECK(MappedSegments() == 0);
  CHECK(store.shm().Free(conn, once->id).ok());
  CHECK(OpenSegments() == 0);
}

TEST_CASE("reusable segments are accounted and go with their owner and connection", "[shm][security]") {
  TensorStore store(1 << 24);
  const uint64_t conn = store.OpenConnection();
  CHECK(store.shm().Create(conn, "owner", 1 << 24, nullptr, true).status().kind() == ErrorKind::kOutOfMemory);
  CHECK(MappedSegments() == 0);
  CHECK(OpenSegments() == 0);
  CHECK(store.memory_used() == 0);
  auto a = store.shm().Create(conn, "dead", 100, nullptr, true);
  auto b = store.shm().Create(conn, "alive", 200, nullptr, true);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(store.memory_used() == 300 + 2 * ShmSegments::kHeader);
  CHECK(store.FreeOwner(conn, "dead") == 0);
  CHECK(store.memory_used() == 200 + ShmSegments::kHeader);
  CHECK(MappedSegments() == 1);
  CHECK(store.CloseConnection(conn) == 0);
  CHECK(store.shm().count() == 0);
  CHECK(store.memory_used() == 0);
  CHECK(MappedSegments() == 0);
  CHECK(OpenSegments() == 0);
}
