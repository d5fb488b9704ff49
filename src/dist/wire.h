// mure — the node's identity on the wire (its pid, fresh references). The frames it sends are
// built by proto/frame.h, which this header includes.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "proto/frame.h"  // the frames themselves (OutFrame, BeginSendFrame, ...)

namespace mure {

/// The node's own identity on the wire: its pid (the sender of monitors) and fresh references.
class NodeIdentity {
 public:
  NodeIdentity(std::string node_name, uint32_t creation, std::string self_pid)
      : node_(std::move(node_name)), creation_(creation), self_pid_(std::move(self_pid)) {}
  const std::string& node() const { return node_; }
  const std::string& self_pid() const { return self_pid_; }
  /// A new reference of this node (NEWER_REFERENCE_EXT), unique for the node's life.
  std::string MakeRef();

 private:
  std::string node_;
  uint32_t creation_;
  std::string self_pid_;
  std::atomic<uint64_t> counter_{1};
};

}  // namespace mure
