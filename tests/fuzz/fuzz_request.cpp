// libFuzzer target: the node's request reader and validator, in process.
//
// Each input is a post-handshake byte stream (see fuzz_common.h). Every frame goes through the
// connection's own dispatch (mure::Dispatch, dist/dispatch.cpp: the code Connection runs on each
// frame), deterministically and without a socket:
//   proto::ParseExternal (control) -> the op switch -> proto::ParseExternal (message) |
//   proto::PeekEnvelope -> proto::ReadEnvelope -> proto::CheckEnvelope -> proto::DecodeRequest ->
//   mure::Service::Handle
// against a real Service with an empty TensorStore (16 MiB budget) and the BLIS executor, so the
// validator, the store and the BLIS queue run. OpenCL is absent (elementwise ops answer
// :unsupported). Frames are cut from the stream the way the connection reads them: ticks skipped,
// a frame over max_message given to Dispatch::OnOversized with a prefix of it, a truncated frame
// or a protocol violation ending the connection.
//
// Besides the sanitizers, the harness checks two invariants and aborts when one breaks:
//   * exactly one reply per answerable request: the frames at a capture sink, counted after the
//     executor's queue has drained, equal the answers the dispatch made (Dispatch::answers), and
//   * once the connection is closed, the store holds no tensor and no byte of its budget.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dist/dispatch.h"
#include "dist/wire.h"
#include "fuzz_common.h"
#include "sched/service.h"
#include "store/tensor_store.h"

using namespace mure;
using namespace mure::proto;

namespace {

constexpr size_t kOversizePrefix = 1024;  // the connection reads 64 KiB; inputs here are smaller

struct Harness : fuzz::World {
  NodeIdentity identity{fuzz::kNodeName, 77, ""};

  Harness() { SetLogLevel(LogLevel::kError); }
};

Harness& H() {
  static Harness* h = new Harness;
  return *h;
}

/// One connection's worth of state for one input: the connection's dispatch over a capture sink.
class FakeConnection {
 public:
  FakeConnection(Harness& h, TensorStore& store, Service& service)
      : h_(h),
        sink_(std::make_shared<fuzz::CountingSink>()),
        conn_(store.OpenConnection()),
        dispatch_(service, store, h.cfg, fuzz::kPeerNode, conn_, [&h](const std::string& pid) {
          // Built as the connection builds it; not counted as a reply.
          std::string frame = MonitorFrame(h.identity.self_pid(), pid, h.identity.MakeRef());
          (void)frame;
        }) {}

  /// False when the frame would close the connection.
  bool Frame(const fuzz::FrameCursor::Frame& f) {
    if (f.declared == 0) return true;  // a tick
    if (f.declared > h_.cfg.max_message) {
      return dispatch_.OnOversized(f.payload.substr(0, kOversizePrefix), f.declared, sink_).ok();
    }
    if (f.truncated) return false;     // the connection would wait for the rest, then see EOF
    return dispatch_.OnFrame(f.payload, sink_).ok();
  }

  uint64_t replies_expected() const { return dispatch_.answers(); }
  const fuzz::CountingSink& sink() const { return *sink_; }
  uint64_t conn() const { return conn_; }

 private:
  Harness& h_;
  std::shared_ptr<fuzz::CountingSink> sink_;
  uint64_t conn_ = 0;
  Dispatch dispatch_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = H();
  h.ResetStore();
  {
    FakeConnection conn(h, h.store, h.service);
    fuzz::FrameCursor cursor{data, size};
    fuzz::FrameCursor::Frame f;
    while (cursor.Next(f)) {
      if (!conn.Frame(f)) break;
    }
    const uint64_t expected = conn.replies_expected();
    // Compute ops answer from the BLIS queue: wait for them (a missing answer is a finding).
    const fuzz::CountingSink& sink = conn.sink();
    fuzz::AwaitOrDie([&] { return sink.frames.load() >= expected; }, std::chrono::seconds(20),
                     "a request got no reply");
    if (sink.frames.load() != expected) {
      std::fprintf(stderr, "fuzz: %llu replies for %llu requests\n",
                   static_cast<unsigned long long>(sink.frames.load()), static_cast<unsigned long long>(expected));
      std::abort();
    }
    h.store.CloseConnection(conn.conn());
  }
  h.Settle();
  return 0;
}
