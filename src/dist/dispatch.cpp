#include "dist/dispatch.h"

#include "common/log.h"
#include "proto/frame.h"
#include "proto/request.h"

namespace mure {

using proto::TermKind;
using proto::TermTree;

namespace {

// Control message operations (the distribution protocol's numbers).
constexpr int64_t kSend = 2, kRegSend = 6, kSendTT = 12, kRegSendTT = 16, kMonitorPExit = 21, kSendSender = 22,
                  kSendSenderTT = 23, kPayloadMonitorPExit = 28;
constexpr uint8_t kPassThrough = 112;  // 'p'

RateLimitedLog g_protocol_log{std::chrono::milliseconds(1000)};
RateLimitedLog g_drop_log{std::chrono::milliseconds(1000)};

proto::Limits ControlLimits() {
  proto::Limits l;
  l.max_depth = 8;
  l.max_terms = 256;
  return l;
}

}  // namespace

Dispatch::Dispatch(RequestHandler& handler, TensorStore& store, const Config& cfg, std::string peer, uint64_t conn,
                   std::function<void(const std::string& owner_pid)> monitor_owner)
    : handler_(handler),
      store_(store),
      cfg_(cfg),
      peer_(std::move(peer)),
      conn_(conn),
      monitor_owner_(std::move(monitor_owner)) {}

std::shared_ptr<Reply> Dispatch::NewReply(const std::shared_ptr<ReplySink>& sink, const std::string& to,
                                          const std::string& ref) {
  ++answers_;
  return std::make_shared<Reply>(sink, to, ref);
}

Status Dispatch::OnFrame(std::string_view payload, const std::shared_ptr<ReplySink>& sink) {
  if (payload.empty() || static_cast<uint8_t>(payload[0]) != kPassThrough) {
    g_protocol_log.Log(LogLevel::kWarn, "connection from " + peer_ + ": frame without the pass-through byte");
    return Status::BadArg("protocol violation: frame without the pass-through byte");
  }
  ctrl_tree_.Clear();
  auto pos = proto::ParseExternal(payload, 1, ctrl_tree_, ControlLimits());
  if (!pos.ok() || ctrl_tree_[0].kind != TermKind::kTuple || ctrl_tree_[0].count < 1 ||
      ctrl_tree_[1].kind != TermKind::kInteger) {
    std::string why = pos.ok() ? "control message is not {op, ...}" : pos.status().message();
    g_protocol_log.Log(LogLevel::kWarn, "connection from " + peer_ + ": bad control message: " + why);
    return Status::BadArg("protocol violation: bad control message");
  }
  const int64_t op = ctrl_tree_[1].integer;
  const uint32_t arity = ctrl_tree_[0].count;
  const size_t msg_offset = *pos;
  const bool has_msg = msg_offset < payload.size();
  switch (op) {
    case kSend:
    case kSendTT:
    case kSendSender:
    case kSendSenderTT:
      if (has_msg) OnMessage(payload, msg_offset, sink);
      return Status::Ok();
    case kRegSend:
    case kRegSendTT: {
      if (arity < 4 || !has_msg) return Status::Ok();
      uint32_t to = ctrl_tree_.Child(0, 3);
      if (ctrl_tree_.IsAtom(to, "mure")) {
        OnMessage(payload, msg_offset, sink);
      } else if (ctrl_tree_.IsAtom(to, "net_kernel")) {
        OnNetKernel(payload, msg_offset, sink);
      } else {
        g_drop_log.Log(LogLevel::kDebug, "message from " + peer_ + " to an unknown name dropped");
      }
      return Status::Ok();
    }
    case kMonitorPExit:
    case kPayloadMonitorPExit:
      if (arity >= 4) OnOwnerDown(ctrl_tree_.Child(0, 1));
      return Status::Ok();
    default:
      // Links, exits, monitors of our names, spawn requests: nothing of the node's to act on.
      LogDebug("connection from " + peer_ + ": control op " + std::to_string(op) + " ignored");
      return Status::Ok();
  }
}

Status Dispatch::OnOversized(std::string_view prefix, uint64_t total, const std::shared_ptr<ReplySink>& sink) {
  // Only a SEND/REG_SEND to mure can be answered; read what the prefix holds.
  handler_.CountError();
  std::string why = "a request of " + std::to_string(total) + " bytes exceeds this node's max_message of " +
                    std::to_string(cfg_.max_message) + " bytes; send it in smaller pieces";
  if (prefix.empty() || static_cast<uint8_t>(prefix[0]) != kPassThrough) {
    return Status::BadArg("protocol violation: oversized frame without the pass-through byte");
  }
  TermTree ctrl;
  auto pos = proto::ParseExternal(prefix, 1, ctrl, ControlLimits());
  if (pos.ok()) {
    if (auto env = proto::PeekEnvelope(prefix, *pos)) {
      NewReply(sink, env->reply_to, env->ref)->Error(Status(ErrorKind::kMessageTooLarge, why));
      return Status::Ok();
    }
  }
  g_drop_log.Log(LogLevel::kWarn, "connection from " + peer_ + ": " + why + " (no envelope to answer; dropped)");
  return Status::Ok();
}

void Dispatch::OnMessage(std::string_view payload, size_t msg_offset, const std::shared_ptr<ReplySink>& sink) {
  msg_tree_.Clear();
  auto end = proto::ParseExternal(payload, msg_offset, msg_tree_);
  Status parse = end.ok() ? Status::Ok() : end.status();
  if (end.ok() && *end != payload.size()) {
    parse = Status::BadArg("the frame has " + std::to_string(payload.size() - *end) + " bytes after the message");
  }
  if (!parse.ok()) {
    handler_.CountError();
    if (auto env = proto::PeekEnvelope(payload, msg_offset)) {
      NewReply(sink, env->reply_to, env->ref)->Error(parse);
    } else {
      g_drop_log.Log(LogLevel::kWarn, "message from " + peer_ + " dropped: " + parse.message());
    }
    return;
  }
  auto env = proto::ReadEnvelope(msg_tree_, 0);
  if (!env) {
    handler_.CountError();
    // A GenServer.call to {:mure, node} can still be told what went wrong.
    const auto& t = msg_tree_;
    if (t[0].kind == TermKind::kTuple && t[0].count == 3 && t.IsAtom(1, "$gen_call")) {
      uint32_t from = t.Child(0, 1);
      if (t[from].kind == TermKind::kTuple && t[from].count == 2 && t[t.Child(from, 0)].kind == TermKind::kPid) {
        OutFrame f;
        BeginSendFrame(f.head, t[t.Child(from, 0)].raw);
        proto::TermWriter(f.head).Tuple(2).Raw(t[t.Child(from, 1)].raw).Tuple(2).Atom("error").Tuple(2).Atom(
            "badarg").Binary("mure answers protocol v1 envelopes {:\"$mure\", 1, reply_to, ref, owner, request}, "
                             "not GenServer calls; see docs/protocol.md");
        FinishFrame(f.head);
        ++answers_;
        sink->Send(std::move(f));
        return;
      }
    }
    g_drop_log.Log(LogLevel::kInfo, "message from " + peer_ + " is not a mure request (no envelope); dropped");
    return;
  }
  auto reply = NewReply(sink, env->reply_to, env->ref);
  Status s = proto::CheckEnvelope(msg_tree_, 0, *env, peer_);
  if (!s.ok()) {
    handler_.CountRequest();
    handler_.CountError();
    reply->Error(s);
    return;
  }
  auto req = proto::DecodeRequest(msg_tree_, env->request, cfg_.test_ops);
  if (!req.ok()) {
    handler_.CountRequest();
    handler_.CountError();
    reply->Error(req.status());
    return;
  }
  RequestContext ctx;
  ctx.conn = conn_;
  ctx.owner = proto::PidKey(env->owner, env->owner_node);
  ctx.owner_pid = env->owner;
  ctx.peer_node = peer_;
  ctx.monitor_owner = monitor_owner_;
  handler_.Handle(ctx, *req, std::move(reply));
}

void Dispatch::OnNetKernel(std::string_view payload, size_t msg_offset, const std::shared_ptr<ReplySink>& sink) {
  // Node.ping sends {'$gen_call', {Pid, Tag}, {is_auth, Node}}; answer {Tag, yes}. On OTP 25 Tag
  // is [alias | Ref]: its bytes are echoed back unchanged.
  TermTree t;
  proto::Limits limits;
  limits.max_depth = 8;
  limits.max_terms = 64;
  auto end = proto::ParseExternal(payload, msg_offset, t, limits);
  if (!end.ok()) return;
  if (t[0].kind != TermKind::kTuple || t[0].count != 3 || !t.IsAtom(1, "$gen_call")) return;
  uint32_t from = t.Child(0, 1), req = t.Child(0, 2);
  if (t[from].kind != TermKind::kTuple || t[from].count != 2) return;
  uint32_t pid = t.Child(from, 0), tag = t.Child(from, 1);
  if (t[pid].kind != TermKind::kPid) return;
  if (t[req].kind == TermKind::kTuple && t[req].count >= 1 && t.IsAtom(t.Child(req, 0), "is_auth")) {
    OutFrame f;
    BeginSendFrame(f.head, t[pid].raw);
    proto::TermWriter(f.head).Tuple(2).Raw(t[tag].raw).Atom("yes");
    FinishFrame(f.head);
    ++answers_;
    sink->Send(std::move(f));
  }
}

void Dispatch::OnOwnerDown(uint32_t pid_index) {
  const TermTree& ctrl = ctrl_tree_;
  if (ctrl[pid_index].kind != TermKind::kPid) return;
  size_t freed = store_.FreeOwner(conn_, proto::PidKey(ctrl[pid_index].raw, ctrl[pid_index].node));
  if (freed) LogDebug("owner on " + peer_ + " exited; freed " + std::to_string(freed) + " tensors");
}

}  // namespace mure
