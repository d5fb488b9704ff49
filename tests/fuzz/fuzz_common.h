// Shared pieces of mure's libFuzzer targets: the input format, the node-like set-up, a capture
// sink that counts replies.
//
// Input format (both targets): the bytes a peer sends after the distribution handshake, exactly as
// on the wire: frames of a 4-byte big-endian length and that many payload bytes ('p', control
// message, message). A zero length is a tick. The seed corpus (tests/fuzz/corpus/) holds real
// requests encoded by the BEAM (tests/fuzz/make_corpus.exs).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <new>

#include "common/log.h"
#include "exec/blis_executor.h"
#include "exec/opencl_executor.h"
#include "mure/config.h"
#include "proto/request.h"
#include "proto/reply.h"
#include "sched/service.h"
#include "store/tensor_store.h"

namespace mure::fuzz {

/// The peer node name every seed's pids carry (make_corpus.exs uses the same).
inline constexpr const char* kPeerNode = "fuzz@127.0.0.1";
/// The node's own name and cookie in the fuzz set-ups.
inline constexpr const char* kNodeName = "mure_fuzz@127.0.0.1";
inline constexpr const char* kCookie = "FUZZCOOKIE";

/// A configuration like the node's, with small limits so that no input can make the harness
/// allocate much: every size the node allocates must derive from these, not from the input.
inline Config FuzzConfig(bool with_opencl = false) {
  Config cfg;
  cfg.name = kNodeName;
  cfg.memory_limit = 16u << 20;
  cfg.buffer_cache = 0;
  cfg.max_message = 4096;          // so that longer frames take the oversized path
  cfg.queue_depth = 8;             // so that the :overloaded path is reachable
  cfg.blis_threads = 1;
  cfg.blis_arch = "auto";
  cfg.use_opencl = with_opencl;    // without it, elementwise ops answer :unsupported
  cfg.kernel_cache_dir = "none";    // compiled kernels stay in memory, per process
  cfg.handshake_timeout_ms = 200;
  cfg.test_ops = false;            // {:busy, ms} would sleep up to 10 minutes
  cfg.log_level = LogLevel::kError;
  return cfg;
}

/// The BLIS executor, created once per process (calibration takes a few milliseconds).
inline BlisExecutor* SharedBlis(const Config& cfg) {
  static BlisExecutor* blis = [&] {
    auto b = BlisExecutor::Create(cfg);
    if (!b.ok()) {
      std::fprintf(stderr, "fuzz: BLIS executor: %s\n", b.status().message().c_str());
      std::abort();
    }
    return std::move(b.value()).release();
  }();
  return blis;
}

/// The OpenCL device (PoCL on the CPU here), created once per process: its kernels are compiled
/// once and cached for every later input. Aborts when there is none (the target needs it).
inline OpenClExecutor* SharedOpenCl(const Config& cfg) {
  static OpenClExecutor* opencl = [&] {
    auto o = OpenClExecutor::Create(cfg);
    if (!o.ok()) {
      std::fprintf(stderr, "fuzz: no OpenCL device (install pocl-opencl-icd): %s\n", o.status().message().c_str());
      std::abort();
    }
    return std::move(o.value()).release();
  }();
  return opencl;
}

/// A ReplySink that keeps count of the frames it was given.
struct CountingSink : ReplySink {
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> bytes{0};
  void Send(OutFrame f) override {
    bytes.fetch_add(f.head.size() + f.tail_len);
    frames.fetch_add(1);
  }
};

/// Wait until `pred` holds; abort (a finding) when it does not within `limit`: a request that is
/// never answered is a bug, and libFuzzer reports the abort with the input.
template <typename Pred>
void AwaitOrDie(Pred pred, std::chrono::milliseconds limit, const char* what) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "fuzz: %s within %lld ms\n", what, static_cast<long long>(limit.count()));
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

/// The node-like world of a fuzz process: one Service (its start-up calibration takes far too long
/// to repeat per input) over a TensorStore that is rebuilt in place before every input, so that
/// every input starts from an empty store whose handles count up from 1 (the seeds rely on it).
/// The Service holds a reference to the store; rebuilding the object at the same address keeps
/// that reference valid ([basic.life]/8: TensorStore has no const or reference members).
struct World {
  /// `with_opencl`: the Service has the OpenCL device too (compute ops may run there, programs fuse).
  explicit World(bool with_opencl = false) : cfg(FuzzConfig(with_opencl)) {}

  Config cfg;
  BlisExecutor* blis = SharedBlis(cfg);
  OpenClExecutor* opencl = cfg.use_opencl ? SharedOpenCl(cfg) : nullptr;
  TensorStore store{cfg.memory_limit, cfg.buffer_cache};
  Service service{cfg, store, blis, opencl};

  /// A fresh, empty store. Only call after Settle(): no job may still reach the old one.
  void ResetStore() {
    store.~TensorStore();
    new (&store) TensorStore(cfg.memory_limit, cfg.buffer_cache);
  }

  /// Wait until every job posted so far has ended: a barrier job (a zero-length busy op, built
  /// here, never decoded from input) on the single-threaded, first-in-first-out BLIS queue.
  /// Then check that the closed connection left nothing behind: no tensor, no byte of budget.
  void Settle() {
    auto sink = std::make_shared<CountingSink>();
    proto::Request barrier{proto::Busy{0}};
    RequestContext ctx;
    ctx.conn = 0;
    service.Handle(ctx, barrier, std::make_shared<Reply>(sink, std::string(), std::string()));
    AwaitOrDie([&] { return sink->frames.load() > 0; }, std::chrono::seconds(30), "the work queue did not drain");
    AwaitOrDie([&] { return store.memory_used() == 0; }, std::chrono::seconds(5),
               "tensor bytes still accounted after the connection closed and the queue drained");
    if (store.tensors() != 0) {
      std::fprintf(stderr, "fuzz: %llu tensors left after the connection closed\n",
                   static_cast<unsigned long long>(store.tensors()));
      std::abort();
    }
  }
};

/// Splits a stream into frames the way the connection reads it: a length, then that many bytes.
/// A frame whose length runs past the end yields what remains (flagged `truncated`).
struct FrameCursor {
  const uint8_t* p;
  size_t n;
  size_t pos = 0;

  struct Frame {
    std::string_view payload;
    uint64_t declared = 0;
    bool truncated = false;
  };

  bool Next(Frame& f) {
    if (n - pos < 4) return false;
    uint64_t len = static_cast<uint64_t>(p[pos]) << 24 | static_cast<uint64_t>(p[pos + 1]) << 16 |
                   static_cast<uint64_t>(p[pos + 2]) << 8 | p[pos + 3];
    pos += 4;
    size_t take = static_cast<size_t>(std::min<uint64_t>(len, n - pos));
    f.payload = std::string_view(reinterpret_cast<const char*>(p + pos), take);
    f.declared = len;
    f.truncated = take < len;
    pos += take;
    return true;
  }
};

}  // namespace mure::fuzz
