#include "proto/frame.h"

#include "proto/term.h"

namespace mure {

namespace {
constexpr uint8_t kPassThrough = 112;  // 'p'
constexpr int kSend = 2;
constexpr int kMonitorP = 19;
}  // namespace

void BeginSendFrame(std::string& out, std::string_view to_pid) {
  out.append(4, '\0');
  out.push_back(static_cast<char>(kPassThrough));
  proto::TermWriter w(out);
  w.Version().Tuple(3).Int(kSend).Atom("").Raw(to_pid);
  w.Version();
}

void FinishFrame(std::string& out, uint64_t tail_len) {
  uint64_t len = out.size() - 4 + tail_len;
  out[0] = static_cast<char>(len >> 24);
  out[1] = static_cast<char>(len >> 16);
  out[2] = static_cast<char>(len >> 8);
  out[3] = static_cast<char>(len);
}

std::string MonitorFrame(std::string_view from_pid, std::string_view to_pid, std::string_view ref) {
  std::string out(4, '\0');
  out.push_back(static_cast<char>(kPassThrough));
  proto::TermWriter w(out);
  w.Version().Tuple(4).Int(kMonitorP).Raw(from_pid).Raw(to_pid).Raw(ref);
  FinishFrame(out);
  return out;
}

}  // namespace mure
