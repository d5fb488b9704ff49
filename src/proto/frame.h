// mure — distribution frames the node sends: SEND to a pid, MONITOR_P of an owner, ticks.
//
// A frame is a 4-byte big-endian length, the pass-through byte 'p', the control message and the
// payload, each in external term format. A frame may end in a "tail" of raw bytes that are sent
// straight from a tensor's memory (a download's binary payload), so replies are never copied.
//
// Here, below both the replies (proto/reply.h) and the connection (dist/), so that each can build
// frames without depending on the other.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace mure {

/// One frame queued for a connection's socket.
struct OutFrame {
  std::string head;                   ///< length prefix, control, payload (or all of a small frame)
  std::shared_ptr<const void> keep;   ///< keeps `tail` alive (the tensor it points into)
  const uint8_t* tail = nullptr;      ///< bytes sent after `head`
  uint64_t tail_len = 0;
};

/// Start a SEND frame to `to_pid` (an encoded pid): length placeholder, 'p', {2, '', To}, 131.
/// The caller then writes the message term and calls FinishFrame.
void BeginSendFrame(std::string& out, std::string_view to_pid);
/// The longest frame the node sends: the length prefix is 32 bits, and a BEAM takes no message
/// of 2 GiB or more. Replies check against it before FinishFrame (proto/reply.cpp).
inline constexpr uint64_t kMaxFrameBytes = (uint64_t{1} << 31) - 1;

/// Patch the length prefix, counting `tail_len` bytes that follow `out`. The length (everything
/// after the prefix) must be at most kMaxFrameBytes.
void FinishFrame(std::string& out, uint64_t tail_len = 0);
/// A whole MONITOR_P frame: {19, FromPid, ToPid, Ref}, no payload.
std::string MonitorFrame(std::string_view from_pid, std::string_view to_pid, std::string_view ref);
/// The tick: a zero length.
inline std::string TickFrame() { return std::string(4, '\0'); }

}  // namespace mure
