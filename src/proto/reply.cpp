#include "proto/reply.h"

namespace mure {

Reply::~Reply() {
  if (!sent()) Error(Status::Internal("the node dropped this request without an answer (a bug: please report)"));
}

void Reply::Begin(std::string& out) {
  BeginSendFrame(out, reply_to_);
  proto::TermWriter(out).Tuple(3).Atom("$mure_reply").Raw(ref_);
}

namespace {

/// A reply's frame must fit its 32-bit length (and the BEAM's limit). The service refuses what
/// would not fit before it does the work (downloads, reads and programs check max_message); this
/// is the last line, so that a length can never wrap.
Status CheckFrame(const OutFrame& f) {
  const uint64_t len = f.head.size() - 4 + f.tail_len;
  if (len <= kMaxFrameBytes) return Status::Ok();
  return Status(ErrorKind::kMessageTooLarge, "the reply would be " + std::to_string(len) +
                                                 " bytes, more than a distribution message may carry; keep the "
                                                 "result on the node and read it in pieces ({:read, ...})");
}

}  // namespace

void Reply::Ok(const std::function<void(proto::TermWriter&)>& value) {
  if (!Claim()) return;
  OutFrame f;
  Begin(f.head);
  proto::TermWriter w(f.head);
  w.Tuple(2).Atom("ok");
  value(w);
  if (Status st = CheckFrame(f); !st.ok()) return SendError(st);
  FinishFrame(f.head);
  sink_->Send(std::move(f));
}

void Reply::OkTensorBytes(std::shared_ptr<const Tensor> tensor) {
  uint64_t n = tensor->bytes();
  OkTensorBytes(std::move(tensor), 0, n);
}

void Reply::OkTensorBytes(std::shared_ptr<const Tensor> tensor, uint64_t offset, uint64_t length) {
  if (!Claim()) return;
  OutFrame f;
  Begin(f.head);
  proto::TermWriter(f.head).Tuple(2).Atom("ok").BinaryHeader(length);
  f.tail = tensor->data() + offset;
  f.tail_len = length;
  if (Status st = CheckFrame(f); !st.ok()) return SendError(st);
  FinishFrame(f.head, f.tail_len);
  f.keep = std::move(tensor);
  sink_->Send(std::move(f));
}

void Reply::OkEncoded(std::shared_ptr<const Tensor> value) {
  if (!Claim()) return;
  OutFrame f;
  Begin(f.head);
  proto::TermWriter(f.head).Tuple(2).Atom("ok");
  f.tail = value->data();
  f.tail_len = value->bytes();
  if (Status st = CheckFrame(f); !st.ok()) return SendError(st);
  FinishFrame(f.head, f.tail_len);
  f.keep = std::move(value);
  sink_->Send(std::move(f));
}

void Reply::Error(const Status& status) {
  if (!Claim()) return;
  SendError(status);
}

void Reply::SendError(const Status& status) {
  OutFrame f;
  Begin(f.head);
  proto::TermWriter w(f.head);
  w.Tuple(2).Atom("error");
  if (status.kind() == ErrorKind::kOverloaded) {
    w.Atom("overloaded");
  } else {
    w.Tuple(2).Atom(ErrorKindName(status.kind())).Binary(status.message());
  }
  FinishFrame(f.head);
  sink_->Send(std::move(f));
}

}  // namespace mure
