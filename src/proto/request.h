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
#include <vector>

#include "mure/status.h"
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

enum class Op {
  kHello, kDevices, kStats, kUpload, kDownload, kFree, kMatmul, kAdd, kMultiply, kBusy,
  // The op set on the CPU executor (ir/ops.h):
  kUnary, kBinary, kReduce, kAsType, kBitcast, kReshape, kTranspose, kSlice, kTake,
  kIota, kEye, kFull, kRandomUniform, kRandomNormal, kSelect, kClip, kBroadcast, kReverse, kPad, kConcatenate,
  kStack, kPutSlice, kGather, kSort, kArgsort, kDot, kOuter,
  // Programs and transfers in pieces:
  kProgram, kAlloc, kWrite, kRead,
};

struct Program;

/// Where a compute op should run: the node's choice, or the caller's.
enum class Placement { kAuto, kCpu, kOpenCl };

/// The atom naming an op on the wire.
std::string_view OpName(Op op);

/// A decoded request. Views point into the frame it came from.
struct Request {
  Op op = Op::kHello;
  DType type = DType::kF32;   ///< upload
  Shape shape;                ///< upload
  uint64_t bytes = 0;         ///< upload: checked byte size of type x shape
  std::string_view data;      ///< upload payload
  uint64_t a = 0, b = 0;      ///< handles: download/free use a; binary ops use a and b
  uint64_t ms = 0;            ///< busy
  std::string_view name;      ///< unary/binary/reduce: the op's name
  std::vector<int64_t> v1;    ///< reduce axes, transpose axes, slice starts
  std::vector<int64_t> v2;    ///< slice lengths
  std::vector<int64_t> v3;    ///< slice strides
  bool all_axes = false;      ///< reduce over every axis
  bool keep_axes = false;     ///< reduce keeps reduced axes as size 1
  int64_t axis = 0;           ///< take, iota (-1: none), concatenate, stack, sort
  uint64_t c = 0;             ///< third handle: select's b, clip's hi
  std::vector<int64_t> v4;    ///< dot: batch axes of b (v1/v2/v3: a's contraction, a's batch, b's contraction)
  std::vector<uint64_t> handles;  ///< concatenate, stack
  ir::Scalar s1, s2;          ///< full/pad value; random lo/hi or mean/std
  uint64_t seed = 0;          ///< random
  std::vector<ir::PadDim> pad;  ///< pad config
  bool descending = false;    ///< sort, argsort
  uint64_t offset = 0;        ///< write/read: byte offset
  uint64_t length = 0;        ///< read: byte length
  std::shared_ptr<Program> program;  ///< program
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

/// {:program, inputs, nodes, outputs[, opts]}: nodes' tensor arguments are 1-based value ids.
/// A decoded program's ids are in range: node i (0-based) reads only values 1 .. inputs + i,
/// and every output names one of the inputs + nodes values (DecodeRequest checks it).
struct Program {
  std::vector<ProgramInput> inputs;
  std::vector<Request> nodes;
  std::vector<std::pair<uint64_t, bool>> outputs;  ///< value id, keep (true) or return (false)
  Placement placement = Placement::kAuto;          ///< opts device: auto | cpu | opencl
};

/// A compute request's tensor operands in kernel order (a, then b, then c; a join's list), by
/// id: handles, or value ids inside a program. Creation ops have none.
std::vector<uint64_t> Operands(const Request& req);

/// ":binary :add", ":matmul": how error messages name a program's node.
std::string NodeLabel(const Request& req);

/// Decode the request term. `test_ops` enables the test-only ops.
Result<Request> DecodeRequest(const TermTree& tree, uint32_t req, bool test_ops);

/// The list of ops this node answers (for hello).
std::string_view AllOpNames();

}  // namespace mure::proto
