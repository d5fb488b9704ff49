// The tensor store: the memory budget, ownership, and freeing by handle, owner and connection.
#include <catch2/catch.hpp>

#include "store/tensor_store.h"

using namespace mure;

TEST_CASE("the memory limit is checked before allocating", "[store][security]") {
  TensorStore store(1000);
  auto a = store.Allocate(DType::kF32, {100});  // 400 bytes
  REQUIRE(a.ok());
  CHECK(store.memory_used() == 400);
  auto b = store.Allocate(DType::kF32, {200});  // 800 more: over
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().kind() == ErrorKind::kOutOfMemory);
  CHECK(store.memory_used() == 400);
  auto huge = store.Allocate(DType::kU8, {1ull << 62});
  CHECK(huge.status().kind() == ErrorKind::kOutOfMemory);
  auto overflow = store.Allocate(DType::kF64, {1ull << 62});
  CHECK(overflow.status().kind() == ErrorKind::kBadShape);
  a = Status::Internal("drop");  // releasing the tensor releases its bytes
  CHECK(store.memory_used() == 0);
}

TEST_CASE("tensor data is aligned and empty tensors are legal", "[store]") {
  TensorStore store(1 << 20);
  auto t = store.Allocate(DType::kF64, {3, 5});
  REQUIRE(t.ok());
  CHECK(reinterpret_cast<uintptr_t>((*t)->data()) % Tensor::kAlignment == 0);
  auto e = store.Allocate(DType::kF32, {0, 7});
  REQUIRE(e.ok());
  CHECK((*e)->bytes() == 0);
  CHECK((*e)->elements() == 0);
}

TEST_CASE("handles belong to one connection and are freed with their owner", "[store][security]") {
  TensorStore store(1 << 20);
  uint64_t c1 = store.OpenConnection(), c2 = store.OpenConnection();
  bool fresh = false;
  auto h1 = store.Insert(c1, "ownerA", *store.Allocate(DType::kU8, {10}), &fresh);
  REQUIRE(h1.ok());
  CHECK(fresh);
  auto h2 = store.Insert(c1, "ownerA", *store.Allocate(DType::kU8, {10}), &fresh);
  CHECK_FALSE(fresh);
  auto h3 = store.Insert(c1, "ownerB", *store.Allocate(DType::kU8, {10}), &fresh);
  CHECK(fresh);
  CHECK(store.tensors() == 3);
  CHECK(store.Get(c2, *h1).status().kind() == ErrorKind::kUnknownHandle);  // another connection's handle
  CHECK(store.Get(c1, 999999).status().kind() == ErrorKind::kUnknownHandle);
  CHECK(store.FreeOwner(c1, "ownerA") == 2);
  CHECK(store.Get(c1, *h2).status().kind() == ErrorKind::kUnknownHandle);
  CHECK(store.Get(c1, *h3).ok());
  CHECK(store.Free(c1, *h3).ok());
  CHECK(store.Free(c1, *h3).kind() == ErrorKind::kUnknownHandle);
  CHECK(store.memory_used() == 0);
  CHECK(store.tensors() == 0);
}

TEST_CASE("a handle given to another owner follows that owner's lifetime", "[store]") {
  TensorStore store(1 << 20);
  uint64_t c = store.OpenConnection(), other = store.OpenConnection();
  bool fresh = false;
  auto a = store.Insert(c, "task", *store.Allocate(DType::kF32, {4}), &fresh);
  auto b = store.Insert(c, "task", *store.Allocate(DType::kF32, {4}), &fresh);
  REQUIRE((a.ok() && b.ok()));
  REQUIRE(store.Insert(c, "caller", *store.Allocate(DType::kU8, {1}), &fresh).ok());
  CHECK(fresh);

  CHECK(store.Reown(c, *a, "caller", &fresh).ok());
  CHECK_FALSE(fresh);  // the caller already owned a tensor: no new monitor needed
  CHECK(store.Reown(c, *b, "keeper", &fresh).ok());
  CHECK(fresh);  // a first tensor for "keeper": the caller of Reown monitors it
  CHECK(store.Reown(other, *a, "caller", &fresh).kind() == ErrorKind::kUnknownHandle);  // not that connection's
  CHECK(store.Reown(c, 999999, "caller", &fresh).kind() == ErrorKind::kUnknownHandle);

  CHECK(store.FreeOwner(c, "task") == 0);  // the task gave both away before it exited
  CHECK(store.Get(c, *a).ok());
  CHECK(store.FreeOwner(c, "keeper") == 1);
  CHECK(store.Get(c, *b).status().kind() == ErrorKind::kUnknownHandle);
  CHECK(store.FreeOwner(c, "caller") == 2);
  CHECK(store.tensors() == 0);
  CHECK(store.memory_used() == 0);
}

TEST_CASE("closing a connection frees its tensors and refuses later inserts", "[store]") {
  TensorStore store(1 << 20);
  uint64_t c = store.OpenConnection();
  for (int i = 0; i < 5; ++i) REQUIRE(store.Insert(c, "o", *store.Allocate(DType::kS32, {4}), nullptr).ok());
  auto held = store.Get(c, 1);  // an executor still reading it
  REQUIRE(held.ok());
  CHECK(store.CloseConnection(c) == 5);
  CHECK(store.tensors() == 0);
  CHECK(store.memory_used() == 16);  // the held one stays accounted until released
  held = Status::Internal("released");
  CHECK(store.memory_used() == 0);
  CHECK_FALSE(store.Insert(c, "o", *store.Allocate(DType::kS32, {4}), nullptr).ok());
  CHECK(store.connections() == 0);
}

TEST_CASE("freed large buffers are reused, within the cache limit", "[store]") {
  TensorStore store(1ull << 30, 8ull << 20);
  const void* first = nullptr;
  {
    auto t = store.Allocate(DType::kF32, {1 << 20});  // 4 MiB
    REQUIRE(t.ok());
    first = (*t)->data();
    CHECK(reinterpret_cast<uintptr_t>(first) % 4096 == 0);  // whole pages
    CHECK((*t)->zeroed());                                    // fresh pages are zero
    (*t)->data()[7] = 1;
  }
  CHECK(store.memory_used() == 0);
  CHECK(store.memory_cached() == (4u << 20));
  {
    auto again = store.Allocate(DType::kU8, {(4u << 20) - 100});  // same 2 MiB-rounded class
    REQUIRE(again.ok());
    CHECK((*again)->data() == first);
    CHECK_FALSE((*again)->zeroed());  // a reused buffer holds old bytes: the caller must clear it
    CHECK(store.memory_cached() == 0);
    CHECK(store.memory_used() == (4u << 20) - 100);
  }
  {
    auto big = store.Allocate(DType::kU8, {16u << 20});  // over the 8 MiB cache: freed, not kept
    REQUIRE(big.ok());
  }
  CHECK(store.memory_cached() == (4u << 20));
}

TEST_CASE("the buffer cache keeps the most recently freed buffers and serves smaller sizes from larger ones",
          "[store]") {
  TensorStore store(1ull << 30, 12ull << 20);  // a 12 MiB cache
  const void* recent = nullptr;
  {
    // Fill the cache with two 6 MiB buffers of a size the loop below never asks for.
    auto a = store.Allocate(DType::kU8, {6u << 20});
    auto b = store.Allocate(DType::kU8, {6u << 20});
    REQUIRE(a.ok());
    REQUIRE(b.ok());
  }
  CHECK(store.memory_cached() == (12u << 20));
  {
    auto t = store.Allocate(DType::kU8, {4u << 20});  // taken from a 6 MiB buffer, tail trimmed
    REQUIRE(t.ok());
    CHECK_FALSE((*t)->zeroed());
    CHECK(store.memory_cached() == (6u << 20));
    recent = (*t)->data();
  }
  // Freed: 4 MiB joins the cache (10 MiB held), within the limit.
  CHECK(store.memory_cached() == (10u << 20));
  {
    auto big = store.Allocate(DType::kU8, {8u << 20});  // nothing holds 8 MiB: fresh pages
    REQUIRE(big.ok());
    CHECK((*big)->zeroed());
  }
  // 8 + 4 + 6 MiB is over the limit: the least recently freed (the 6 MiB one) is pushed out.
  CHECK(store.memory_cached() == (12u << 20));
  {
    auto again = store.Allocate(DType::kU8, {8u << 20});
    REQUIRE(again.ok());
    CHECK_FALSE((*again)->zeroed());
    auto small = store.Allocate(DType::kU8, {3u << 20});  // the 4 MiB one, trimmed
    REQUIRE(small.ok());
    CHECK((*small)->data() == recent);
    CHECK(store.memory_cached() == 0);
  }
}

TEST_CASE("every resident handle costs the budget its bookkeeping, empty tensors too", "[store][security]") {
  TensorStore store(1000);  // room for three handles' bookkeeping (3 x 256), not four
  uint64_t c = store.OpenConnection();
  std::vector<uint64_t> handles;
  for (int i = 0; i < 3; ++i) {
    auto h = store.Insert(c, "o", *store.Allocate(DType::kF32, {0, 1ull << 40}), nullptr);
    REQUIRE(h.ok());
    handles.push_back(*h);
  }
  CHECK(store.memory_used() == 3 * TensorStore::kHandleBytes);
  auto fourth = store.Insert(c, "o", *store.Allocate(DType::kU8, {0}), nullptr);
  REQUIRE_FALSE(fourth.ok());
  CHECK(fourth.status().kind() == ErrorKind::kOutOfMemory);
  CHECK(store.tensors() == 3);
  REQUIRE(store.Free(c, handles[0]).ok());
  CHECK(store.memory_used() == 2 * TensorStore::kHandleBytes);
  CHECK(store.Insert(c, "p", *store.Allocate(DType::kU8, {0}), nullptr).ok());
  CHECK(store.FreeOwner(c, "o") == 2);
  CHECK(store.memory_used() == TensorStore::kHandleBytes);
  CHECK(store.CloseConnection(c) == 1);
  CHECK(store.memory_used() == 0);
}
