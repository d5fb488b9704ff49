// libFuzzer target: the node's request reader and validator, in process.
//
// Each input is a post-handshake byte stream (see fuzz_common.h). Every frame goes down the path a
// connection takes (dist/connection.cpp: OnFrame, OnMessage, OnOversized), deterministically and
// without a socket:
//   proto::ParseExternal (control, with the connection's control limits) -> the op switch ->
//   proto::ParseExternal (message) | proto::PeekEnvelope -> proto::ReadEnvelope ->
//   proto::CheckEnvelope -> proto::DecodeRequest -> mure::Service::Handle
// against a real Service with an empty TensorStore (16 MiB budget) and the BLIS executor, so the
// validator, the store and the BLIS queue run. OpenCL is absent (elementwise ops answer
// :unsupported).
//
// Besides the sanitizers, the harness checks two invariants and aborts when one breaks:
//   * exactly one reply per answerable request (replies counted at a capture sink, after the
//     executor's queue has drained), and
//   * once the connection is closed, the store holds no tensor and no byte of its budget.
//
// Keep this in step with Connection::OnFrame: if the connection's dispatch changes, change
// Dispatch() below.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dist/wire.h"
#include "fuzz_common.h"
#include "proto/request.h"
#include "proto/term.h"
#include "sched/service.h"
#include "store/tensor_store.h"

using namespace mure;
using namespace mure::proto;

namespace {

constexpr int64_t kSend = 2, kRegSend = 6, kSendTT = 12, kRegSendTT = 16, kMonitorPExit = 21, kSendSender = 22,
                  kSendSenderTT = 23, kPayloadMonitorPExit = 28;
constexpr size_t kOversizePrefix = 1024;  // the connection reads 64 KiB; inputs here are smaller

Limits ControlLimits() {
  Limits l;
  l.max_depth = 8;
  l.max_terms = 256;
  return l;
}

struct Harness : fuzz::World {
  NodeIdentity identity{fuzz::kNodeName, 77, ""};

  Harness() { SetLogLevel(LogLevel::kError); }
};

Harness& H() {
  static Harness* h = new Harness;
  return *h;
}

/// One connection's worth of state for one input.
class FakeConnection {
 public:
  FakeConnection(Harness& h, TensorStore& store, Service& service)
      : h_(h), store_(store), service_(service), sink_(std::make_shared<fuzz::CountingSink>()) {
    conn_ = store_.OpenConnection();
  }

  /// False when the frame would close the connection.
  bool Frame(const fuzz::FrameCursor::Frame& f) {
    if (f.declared == 0) return true;  // a tick
    if (f.declared > h_.cfg.max_message) return Oversized(f.payload.substr(0, kOversizePrefix), f.declared);
    if (f.truncated) return false;     // the connection would wait for the rest, then see EOF
    return OnFrame(f.payload);
  }

  uint64_t replies_expected() const { return replies_; }
  const fuzz::CountingSink& sink() const { return *sink_; }
  uint64_t conn() const { return conn_; }

 private:
  std::shared_ptr<Reply> NewReply(const std::string& to, const std::string& ref) {
    ++replies_;
    return std::make_shared<Reply>(sink_, to, ref);
  }

  bool Oversized(std::string_view prefix, uint64_t total) {
    service_.CountError();
    if (prefix.empty() || static_cast<uint8_t>(prefix[0]) != 112) return false;
    TermTree ctrl;
    auto pos = ParseExternal(prefix, 1, ctrl, ControlLimits());
    if (pos.ok()) {
      if (auto env = PeekEnvelope(prefix, *pos)) {
        NewReply(env->reply_to, env->ref)->Error(Status(ErrorKind::kMessageTooLarge, std::to_string(total)));
      }
    }
    return true;
  }

  bool OnFrame(std::string_view payload) {
    if (payload.empty() || static_cast<uint8_t>(payload[0]) != 112) return false;
    ctrl_.Clear();
    auto pos = ParseExternal(payload, 1, ctrl_, ControlLimits());
    if (!pos.ok() || ctrl_[0].kind != TermKind::kTuple || ctrl_[0].count < 1 || ctrl_[1].kind != TermKind::kInteger) {
      return false;
    }
    const int64_t op = ctrl_[1].integer;
    const uint32_t arity = ctrl_[0].count;
    const size_t msg_offset = *pos;
    const bool has_msg = msg_offset < payload.size();
    switch (op) {
      case kSend:
      case kSendTT:
      case kSendSender:
      case kSendSenderTT:
        if (has_msg) OnMessage(payload, msg_offset);
        return true;
      case kRegSend:
      case kRegSendTT: {
        if (arity < 4 || !has_msg) return true;
        uint32_t to = ctrl_.Child(0, 3);
        if (ctrl_.IsAtom(to, "mure")) {
          OnMessage(payload, msg_offset);
        } else if (ctrl_.IsAtom(to, "net_kernel")) {
          OnNetKernel(payload, msg_offset);
        }
        return true;
      }
      case kMonitorPExit:
      case kPayloadMonitorPExit:
        if (arity >= 4) {
          uint32_t pid = ctrl_.Child(0, 1);
          if (ctrl_[pid].kind == TermKind::kPid) store_.FreeOwner(conn_, PidKey(ctrl_[pid].raw, ctrl_[pid].node));
        }
        return true;
      default:
        return true;
    }
  }

  void OnMessage(std::string_view payload, size_t msg_offset) {
    msg_.Clear();
    auto end = ParseExternal(payload, msg_offset, msg_);
    Status parse = end.ok() ? Status::Ok() : end.status();
    if (end.ok() && *end != payload.size()) parse = Status::BadArg("trailing bytes");
    if (!parse.ok()) {
      service_.CountError();
      if (auto env = PeekEnvelope(payload, msg_offset)) NewReply(env->reply_to, env->ref)->Error(parse);
      return;
    }
    auto env = ReadEnvelope(msg_, 0);
    if (!env) {
      service_.CountError();
      const auto& t = msg_;
      if (t[0].kind == TermKind::kTuple && t[0].count == 3 && t.IsAtom(1, "$gen_call")) {
        uint32_t from = t.Child(0, 1);
        if (t[from].kind == TermKind::kTuple && t[from].count == 2 && t[t.Child(from, 0)].kind == TermKind::kPid) {
          OutFrame f;
          BeginSendFrame(f.head, t[t.Child(from, 0)].raw);
          TermWriter(f.head).Tuple(2).Raw(t[t.Child(from, 1)].raw).Atom("error");
          FinishFrame(f.head);
          ++replies_;
          sink_->Send(std::move(f));
        }
      }
      return;
    }
    auto reply = NewReply(env->reply_to, env->ref);
    Status s = CheckEnvelope(msg_, 0, *env, fuzz::kPeerNode);
    if (!s.ok()) {
      service_.CountRequest();
      service_.CountError();
      reply->Error(s);
      return;
    }
    auto req = DecodeRequest(msg_, env->request, h_.cfg.test_ops);
    if (!req.ok()) {
      service_.CountRequest();
      service_.CountError();
      reply->Error(req.status());
      return;
    }
    RequestContext ctx;
    ctx.conn = conn_;
    ctx.owner = PidKey(env->owner, env->owner_node);
    ctx.owner_pid = env->owner;
    auto sink = sink_;
    Harness* h = &h_;
    ctx.monitor_owner = [sink, h](const std::string& pid) {
      // Built as the connection builds it; not counted as a reply.
      std::string frame = MonitorFrame(h->identity.self_pid(), pid, h->identity.MakeRef());
      (void)frame;
    };
    service_.Handle(ctx, *req, std::move(reply));
  }

  void OnNetKernel(std::string_view payload, size_t msg_offset) {
    TermTree t;
    Limits limits;
    limits.max_depth = 8;
    limits.max_terms = 64;
    auto end = ParseExternal(payload, msg_offset, t, limits);
    if (!end.ok()) return;
    if (t[0].kind != TermKind::kTuple || t[0].count != 3 || !t.IsAtom(1, "$gen_call")) return;
    uint32_t from = t.Child(0, 1), req = t.Child(0, 2);
    if (t[from].kind != TermKind::kTuple || t[from].count != 2) return;
    uint32_t pid = t.Child(from, 0), tag = t.Child(from, 1);
    if (t[pid].kind != TermKind::kPid) return;
    if (t[req].kind == TermKind::kTuple && t[req].count >= 1 && t.IsAtom(t.Child(req, 0), "is_auth")) {
      OutFrame f;
      BeginSendFrame(f.head, t[pid].raw);
      TermWriter(f.head).Tuple(2).Raw(t[tag].raw).Atom("yes");
      FinishFrame(f.head);
      ++replies_;
      sink_->Send(std::move(f));
    }
  }

  Harness& h_;
  TensorStore& store_;
  Service& service_;
  std::shared_ptr<fuzz::CountingSink> sink_;
  uint64_t conn_ = 0;
  uint64_t replies_ = 0;
  TermTree ctrl_, msg_;
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
