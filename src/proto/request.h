// mure — protocol v1 requests: the envelope and the closed set of ops (docs/protocol.md).
//
// Decoding turns a bounded term tree into a typed Request or a Status naming the bad argument.
// Nothing here allocates from a client-supplied length: sizes come from checked arithmetic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mure/status.h"
#include "ir/nodes.h"
#include "ir/ops.h"
#include "mure/types.h"
#include "proto/term.h"

namespace mure::proto {

inline constexpr int64_t kProtocolVersion = 1;

/// Who asked and how to answer: `{:"$mure", 1, reply_to, ref, owner, request}`.
struct Envelope {
  std::string reply_to;   ///< the pid's encoding, echoed as the SEND destination
  std::string ref;        ///< the ref's encoding, echoed in the reply
  std::string owner;      ///< the owner pid's encoding (empty when the envelope is bad)
  std::string owner_node; ///< node name of the owner pid
  int64_t version = 0;
  uint32_t request = 0;   ///< index of the request term in the tree
};

/// The envelope of a message, if it has one: a 6-tuple tagged `$mure` with a pid and a ref in
/// the reply slots. Anything else cannot be answered and yields nullopt.
std::optional<Envelope> ReadEnvelope(const TermTree& tree, uint32_t root);

/// The envelope of a message whose whole term could not be read (too deep, too large, truncated):
/// reads only the first five elements of the envelope tuple starting at `offset` (the version
/// byte). Lets the node answer such a request with an error instead of dropping it.
std::optional<Envelope> PeekEnvelope(std::string_view buf, size_t offset);

/// A pid's identity as a map key: its node and its id/serial/creation words (two encodings of the
/// same pid give the same key).
std::string PidKey(std::string_view pid_raw, std::string_view node);

/// Version and owner checks of an envelope that can be answered.
Status CheckEnvelope(const TermTree& tree, uint32_t root, const Envelope& env, std::string_view peer_node);

/// Where a compute op should run (ir/nodes.h).
using Placement = ir::Placement;

struct Program;

// The requests that are not compute ops, each with its named fields.
struct Hello {};
struct Devices {};
struct Stats {};
struct Upload {
  DType type = DType::kF32;
  Shape shape;
  uint64_t bytes = 0;     ///< checked byte size of type x shape
  std::string_view data;  ///< the payload, exactly `bytes` long
};
struct Download { uint64_t handle = 0; };
struct Free { uint64_t handle = 0; };
struct Busy { uint64_t ms = 0; };  ///< test-only
struct Alloc { DType type = DType::kF32; Shape shape; };
struct Write { uint64_t handle = 0; uint64_t offset = 0; std::string_view data; };
struct Read { uint64_t handle = 0; uint64_t offset = 0; uint64_t length = 0; };
struct RunProgram { std::shared_ptr<Program> program; };
/// {:give, handle, pid}: the tensor's lifetime passes to another process of the requesting node.
struct Give {
  uint64_t handle = 0;
  std::string_view pid;       ///< the new owner pid's encoding
  std::string_view pid_node;  ///< its node (must be the requesting node)
};

// Same-host transfers through shared segments (store/shm_segments.h): ids, never paths.
/// {:shm_alloc, bytes} / {:shm_alloc, bytes, :reuse}: an empty segment for the client to write
/// (reusable: kept for many transfers, its bytes copied instead of adopted).
struct ShmAlloc { uint64_t bytes = 0; bool reuse = false; };
/// {:shm_upload, segment, type, shape}: the written segment becomes a tensor.
struct ShmUpload { uint64_t segment = 0; DType type = DType::kF32; Shape shape; };
/// {:shm_download, handle} / {:shm_download, handle, segment}: a new segment holding a copy of
/// the tensor's bytes / the copy written into reusable `segment` (0: none given).
struct ShmDownload { uint64_t handle = 0; uint64_t segment = 0; };
/// {:shm_free, segment}
struct ShmFree { uint64_t segment = 0; };

/// What a request asks: a compute node (ir::Node), or one of the others.
using Body = std::variant<ir::Node, Hello, Devices, Stats, Upload, Download, Free, Busy, Alloc, Write, Read, RunProgram, Give,
                          ShmAlloc, ShmUpload, ShmDownload, ShmFree>;

/// A decoded request. Views point into the frame it came from.
struct Request {
  Body body;
  Placement placement = Placement::kAuto;  ///< {:on, device, request}
};

/// An input of a program: a resident handle, or data sent with it.
struct ProgramInput {
  bool is_handle = true;
  uint64_t handle = 0;
  DType type = DType::kF32;
  Shape shape;
  uint64_t bytes = 0;
  std::string_view data;
};

/// A node of a program and where it asked to run ({:on, device, node}).
struct ProgramNode {
  ir::Node node;
  Placement placement = Placement::kAuto;
};

/// {:program, inputs, nodes, outputs[, opts]}: nodes' tensor arguments are 1-based value ids.
/// A decoded program's ids are in range: node i (0-based) reads only values 1 .. inputs + i,
/// and every output names one of the inputs + nodes values (DecodeRequest checks it).
struct Program {
  std::vector<ProgramInput> inputs;
  std::vector<ProgramNode> nodes;
  std::vector<std::pair<uint64_t, bool>> outputs;  ///< value id, keep (true) or return (false)
  Placement placement = Placement::kAuto;          ///< opts device: auto | cpu | opencl
};

/// The atom naming a request's op on the wire ("upload", "binary", "matmul", ...).
std::string_view OpName(const Body& body);

/// Decode the request term. `test_ops` enables the test-only ops.
Result<Request> DecodeRequest(const TermTree& tree, uint32_t req, bool test_ops);

/// The list of ops this node answers (for hello).
std::string_view AllOpNames();

}  // namespace mure::proto
