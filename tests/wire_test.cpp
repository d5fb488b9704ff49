// Frames the node sends, read back with the node's own reader; exactly one reply per request.
#include <catch2/catch.hpp>

#include <vector>

#include "dist/wire.h"
#include "proto/term.h"
#include "proto/reply.h"
#include "test_util.h"

using namespace mure;
using namespace mure::proto;

namespace {

struct CaptureSink : ReplySink {
  std::vector<OutFrame> frames;
  void Send(OutFrame f) override { frames.push_back(std::move(f)); }
};

/// Parse a captured frame: checks the length prefix and returns control and message trees.
void ReadFrame(const OutFrame& f, TermTree& ctrl, TermTree& msg, std::string& bytes) {
  bytes = f.head;
  if (f.tail_len) bytes.append(reinterpret_cast<const char*>(f.tail), f.tail_len);
  REQUIRE(bytes.size() >= 5);
  uint64_t len = static_cast<uint8_t>(bytes[0]) << 24 | static_cast<uint8_t>(bytes[1]) << 16 |
                 static_cast<uint8_t>(bytes[2]) << 8 | static_cast<uint8_t>(bytes[3]);
  REQUIRE(len == bytes.size() - 4);
  REQUIRE(static_cast<uint8_t>(bytes[4]) == 112);
  std::string_view payload(bytes.data() + 4, bytes.size() - 4);
  auto pos = ParseExternal(payload, 1, ctrl);
  REQUIRE(pos.ok());
  if (*pos < payload.size()) {
    auto end = ParseExternal(payload, *pos, msg);
    REQUIRE(end.ok());
    REQUIRE(*end == payload.size());
  }
}

}  // namespace

TEST_CASE("replies are SEND frames carrying {$mure_reply, Ref, Result}", "[wire]") {
  auto sink = std::make_shared<CaptureSink>();
  std::string pid = testing::Pid("c@h", 1), ref = testing::Ref("c@h", 2);
  {
    Reply r(sink, pid, ref);
    r.Ok([](TermWriter& w) { w.Int(42); });
    r.Error(Status::BadArg("second answer is swallowed"));
  }
  REQUIRE(sink->frames.size() == 1);
  TermTree ctrl, msg;
  std::string bytes;
  ReadFrame(sink->frames[0], ctrl, msg, bytes);
  CHECK(ctrl[1].integer == 2);  // SEND
  CHECK(ctrl[ctrl.Child(0, 2)].raw == pid);
  CHECK(msg.IsAtom(msg.Child(0, 0), "$mure_reply"));
  CHECK(msg[msg.Child(0, 1)].raw == ref);
  uint32_t result = msg.Child(0, 2);
  CHECK(msg.IsAtom(msg.Child(result, 0), "ok"));
  CHECK(msg[msg.Child(result, 1)].integer == 42);
}

TEST_CASE("a request dropped without an answer still gets an :internal error", "[wire]") {
  auto sink = std::make_shared<CaptureSink>();
  { Reply r(sink, testing::Pid("c@h", 1), testing::Ref("c@h", 2)); }
  REQUIRE(sink->frames.size() == 1);
  TermTree ctrl, msg;
  std::string bytes;
  ReadFrame(sink->frames[0], ctrl, msg, bytes);
  uint32_t result = msg.Child(0, 2);
  CHECK(msg.IsAtom(msg.Child(result, 0), "error"));
  CHECK(msg.IsAtom(msg.Child(msg.Child(result, 1), 0), "internal"));
}

TEST_CASE("errors are :overloaded or {kind, message}", "[wire]") {
  auto sink = std::make_shared<CaptureSink>();
  Reply(sink, testing::Pid("c@h", 1), testing::Ref("c@h", 2)).Error(Status(ErrorKind::kOverloaded, "full"));
  Reply(sink, testing::Pid("c@h", 1), testing::Ref("c@h", 3)).Error(Status(ErrorKind::kOutOfMemory, "too big"));
  TermTree ctrl, msg;
  std::string bytes;
  ReadFrame(sink->frames[0], ctrl, msg, bytes);
  CHECK(msg.IsAtom(msg.Child(msg.Child(0, 2), 1), "overloaded"));
  TermTree ctrl2, msg2;
  ReadFrame(sink->frames[1], ctrl2, msg2, bytes);
  uint32_t reason = msg2.Child(msg2.Child(0, 2), 1);
  CHECK(msg2.IsAtom(msg2.Child(reason, 0), "out_of_memory"));
  CHECK(msg2[msg2.Child(reason, 1)].data == "too big");
}

TEST_CASE("downloads send the tensor's bytes as the frame's tail, uncopied", "[wire]") {
  TensorStore store(1 << 20);
  auto t = *store.Allocate(DType::kU8, {1000});
  for (int i = 0; i < 1000; ++i) t->data()[i] = static_cast<uint8_t>(i);
  auto sink = std::make_shared<CaptureSink>();
  Reply(sink, testing::Pid("c@h", 1), testing::Ref("c@h", 2)).OkTensorBytes(t);
  REQUIRE(sink->frames.size() == 1);
  CHECK(sink->frames[0].tail == t->data());
  TermTree ctrl, msg;
  std::string bytes;
  ReadFrame(sink->frames[0], ctrl, msg, bytes);
  auto bin = msg[msg.Child(msg.Child(0, 2), 1)];
  CHECK(bin.kind == TermKind::kBinary);
  CHECK(bin.data.size() == 1000);
  CHECK(static_cast<uint8_t>(bin.data[999]) == static_cast<uint8_t>(999));
}

TEST_CASE("monitor frames and node references", "[wire]") {
  NodeIdentity self("mure@127.0.0.1", 1234, testing::Pid("mure@127.0.0.1", 0));
  std::string r1 = self.MakeRef(), r2 = self.MakeRef();
  CHECK(r1 != r2);
  TermTree t;
  REQUIRE(ParseTerm(r1, 0, t).ok());
  CHECK(t[0].kind == TermKind::kRef);
  CHECK(t[0].node == "mure@127.0.0.1");
  OutFrame f{MonitorFrame(self.self_pid(), testing::Pid("c@h", 9), r1)};
  TermTree ctrl, msg;
  std::string bytes;
  ReadFrame(f, ctrl, msg, bytes);
  CHECK(ctrl[1].integer == 19);
  CHECK(ctrl[ctrl.Child(0, 3)].raw == r1);
  CHECK(msg.size() == 0);
}
