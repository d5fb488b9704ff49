#include "sched/reply.h"

#include "common/log.h"

namespace mure {

Reply::~Reply() {
  if (!sent()) Error(Status::Internal("the node dropped this request without an answer (a bug: please report)"));
}

void Reply::Begin(std::string& out) {
  BeginSendFrame(out, reply_to_);
  proto::TermWriter(out).Tuple(3).Atom("$mure_reply").Raw(ref_);
}

void Reply::Ok(const std::function<void(proto::TermWriter&)>& value) {
  if (!Claim()) return;
  OutFrame f;
  Begin(f.head);
  proto::TermWriter w(f.head);
  w.Tuple(2).Atom("ok");
  value(w);
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
  FinishFrame(f.head, f.tail_len);
  f.keep = std::move(tensor);
  sink_->Send(std::move(f));
}

void Reply::Error(const Status& status) {
  if (!Claim()) return;
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
