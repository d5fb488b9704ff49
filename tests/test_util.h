// Helpers shared by the C++ tests: encoded pids and refs, request envelopes.
#pragma once

#include <functional>
#include <string>

#include "proto/term.h"

namespace mure::testing {

inline std::string Pid(const std::string& node, uint32_t id) {
  std::string out;
  out.push_back(static_cast<char>(88));  // NEW_PID_EXT
  proto::TermWriter(out).Atom(node);
  for (int i = 0; i < 12; ++i) out.push_back(static_cast<char>(i == 3 ? id : 0));
  return out;
}

inline std::string Ref(const std::string& node, uint32_t id) {
  std::string out;
  out.push_back(static_cast<char>(90));  // NEWER_REFERENCE_EXT, 3 words
  out.push_back(0);
  out.push_back(3);
  proto::TermWriter(out).Atom(node);
  for (int i = 0; i < 16; ++i) out.push_back(static_cast<char>(i == 7 ? id : 0));
  return out;
}

/// `{:"$mure", version, pid, ref, pid, <request>}` with the version byte.
inline std::string EnvelopeBytes(const std::function<void(proto::TermWriter&)>& request, int64_t version = 1,
                            const std::string& node = "client@127.0.0.1") {
  std::string out;
  proto::TermWriter w(out);
  w.Version().Tuple(6).Atom("$mure").Int(version).Raw(Pid(node, 1)).Raw(Ref(node, 2)).Raw(Pid(node, 3));
  request(w);
  return out;
}

}  // namespace mure::testing
