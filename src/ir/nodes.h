// mure — the typed IR: one struct per compute op, with named fields, and a Node that is one of
// them. The decoder (proto/decode_ops.cpp) builds nodes from wire terms; the planner
// (sched/planner.cpp) validates a node against its operands and binds it to an executor
// (exec/executor.h). Operands are ids: tensor handles for a single request, 1-based value ids
// inside a program.
//
// Views (names) point into the frame the node was decoded from.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ir/linalg.h"
#include "ir/ops.h"
#include "mure/types.h"

namespace mure::proto {
struct Program;
}

namespace mure::ir {

/// Where a compute op should run: the node's choice, or the caller's.
enum class Placement { kAuto, kCpu, kOpenCl };

using Id = uint64_t;

/// Protocol v1's first ops, which decode to the general nodes below but keep their documented
/// contract (docs/protocol.md: matmul of two f32 or two f64 matrices; add and multiply of two f32
/// tensors of one shape, on the OpenCL device unless placed) and their names in messages.
enum class Legacy { kNone, kMatmul, kAdd, kMultiply };

struct Unary {
  std::string_view name;         ///< as sent (for messages)
  std::optional<UnaryOp> op;     ///< nullopt: not an op of the table (refused when planned)
  Id x = 0;
};
struct Binary {
  std::string_view name;
  std::optional<BinaryOp> op;
  Id a = 0, b = 0;
  Legacy legacy = Legacy::kNone;  ///< kAdd / kMultiply: a {:add, a, b} / {:multiply, a, b} request
};
struct Reduce {
  std::string_view name;
  std::optional<ReduceOp> op;
  Id x = 0;
  std::vector<int64_t> axes;
  bool all_axes = false;   ///< :all
  bool keep_axes = false;
};
struct AsType { Id x = 0; DType type = DType::kF32; };
struct Bitcast { Id x = 0; DType type = DType::kF32; };
struct Reshape { Id x = 0; Shape shape; };
struct Transpose { Id x = 0; std::vector<int64_t> axes; };
struct Slice { Id x = 0; std::vector<int64_t> starts, lengths, strides; };
struct Take { Id x = 0; Id indices = 0; int64_t axis = 0; };
struct Iota { DType type = DType::kF32; Shape shape; int64_t axis = -1; };  ///< axis normalised; -1: flat
struct Eye { DType type = DType::kF32; Shape shape; };
struct Full { DType type = DType::kF32; Shape shape; Scalar value; };
struct RandomUniform { DType type = DType::kF32; Shape shape; uint64_t seed = 0; Scalar min, max; };
struct RandomNormal { DType type = DType::kF32; Shape shape; uint64_t seed = 0; Scalar mean, std; };
struct Select { Id pred = 0, on_true = 0, on_false = 0; };
struct Clip { Id x = 0, lo = 0, hi = 0; };
struct Broadcast { Id x = 0; Shape shape; std::vector<int64_t> axes; };
struct Reverse { Id x = 0; std::vector<int64_t> axes; };
struct Pad { Id x = 0; Scalar value; std::vector<PadDim> config; };
struct Concatenate { std::vector<Id> xs; int64_t axis = 0; };
struct Stack { std::vector<Id> xs; int64_t axis = 0; };
struct PutSlice { Id x = 0; std::vector<int64_t> starts; Id update = 0; };
struct Gather { Id x = 0; Id indices = 0; };
struct Sort { Id x = 0; int64_t axis = 0; bool descending = false; };
struct Argsort { Id x = 0; int64_t axis = 0; bool descending = false; };
struct Dot {
  Id a = 0;
  std::vector<int64_t> contract_a, batch_a;
  Id b = 0;
  std::vector<int64_t> contract_b, batch_b;
  Legacy legacy = Legacy::kNone;  ///< kMatmul: a {:matmul, a, b} request
};
struct Outer { Id a = 0, b = 0; };
/// fft / ifft over the last axis, cut or zero-padded to `length` (checked by the planner).
struct Fft { Id x = 0; int64_t length = 0; bool inverse = false; };

/// A linear-algebra op (ir/linalg.h); b is 0 for the ops of one operand. lu, qr, eigh and svd
/// yield a tuple value (read with Elem).
struct Linalg { LinalgOp op = LinalgOp::kLu; Id a = 0, b = 0; LinalgOptions opts; };
/// {:elem, v, i}: part i (0-based) of a tuple value, as its own tensor.
struct Elem { Id x = 0; int64_t index = 0; };

/// {:window, op, x, dims, strides, padding, dilations(, init)}: a reduction of the table (sum,
/// product, reduce_max, reduce_min) over every window; padding {lo, hi} per dim holds `init`
/// (the table's start when absent), which also starts each window's accumulator.
struct Window {
  std::string_view name;
  std::optional<ReduceOp> op;
  Id x = 0;
  std::vector<int64_t> dims, strides;
  std::vector<std::pair<int64_t, int64_t>> padding;
  std::vector<int64_t> dilations;
  std::optional<Scalar> init;
};
/// {:window_scatter, :max | :min, x, source, init, dims, strides, padding}.
struct WindowScatter {
  std::string_view name;  ///< "max" or "min" (anything else is refused when planned)
  Id x = 0, source = 0;
  Scalar init;
  std::vector<int64_t> dims, strides;
  std::vector<std::pair<int64_t, int64_t>> padding;
};
/// {:indexed, :add | :put, x, indices, updates, axes}.
struct Indexed {
  std::string_view name;  ///< "add" or "put"
  Id x = 0, indices = 0, updates = 0;
  std::vector<int64_t> axes;
};
/// {:cumulative, op, x, axis, reverse}: op one of sum, product, reduce_max, reduce_min.
struct Cumulative {
  std::string_view name;
  std::optional<ReduceOp> op;
  Id x = 0;
  int64_t axis = 0;
  bool reverse = false;
};

/// {:dynamic_slice, x, starts, lengths, strides}: a slice (as Slice) whose starts are the ids of
/// scalar integer tensors, one per axis, read when the op runs and clamped as Nx clamps them: to
/// [0, dim - length].
struct DynamicSlice { Id x = 0; std::vector<Id> starts; std::vector<int64_t> lengths, strides; };
/// {:dynamic_put_slice, x, starts, update}: put_slice with such starts, clamped to
/// [0, dim - update's dim].
struct DynamicPutSlice { Id x = 0; std::vector<Id> starts; Id update = 0; };
/// A region of a control-flow node: a program of its own (proto::Program, value numbering from 1),
/// whose inputs are the values the node hands it and whose outputs are its results.
using Region = std::shared_ptr<const proto::Program>;

/// {:while, inits, invariants, {cond_nodes, pred_id}, {body_nodes, out_ids}, max_iterations}, inside
/// programs only. Both regions number 1..k the state, k+1..k+m the invariants; cond's one output is
/// the predicate (an integer scalar, non-zero: go on), body's k outputs the next state. The value is
/// a tuple of the k final state parts.
struct While {
  std::vector<Id> inits, invariants;
  Region cond, body;
  uint64_t max_iterations = 0;
};
/// {:if, pred_id, captured, {then_nodes, then_out_ids}, {else_nodes, else_out_ids}}, inside programs
/// only: regions number 1..m the captured values; the value is a tuple of the branch's outputs.
struct If {
  Id pred = 0;
  std::vector<Id> captured;
  Region then_branch, else_branch;
};

using Node = std::variant<Unary, Binary, Reduce, AsType, Bitcast, Reshape, Transpose, Slice, Take, Iota, Eye, Full,
                          RandomUniform, RandomNormal, Select, Clip, Broadcast, Reverse, Pad, Concatenate, Stack,
                          PutSlice, Gather, Sort, Argsort, Dot, Outer, Fft, Linalg, Elem, Window, WindowScatter,
                          Indexed, Cumulative, DynamicSlice, DynamicPutSlice, While, If>;

/// The atom the node's request was sent as ("binary", or "add" for a legacy add).
std::string_view AtomName(const Node& node);

/// ":binary :add", ":matmul": how error messages name a program's node.
std::string Label(const Node& node);

/// The node's tensor operands in kernel order (a, then b, then c; a join's list; a dynamic
/// slice's x then its starts, a dynamic put_slice's x, update, then its starts). Creation ops
/// have none.
std::vector<Id> Operands(const Node& node);

/// True for nodes that need no operand (creation ops).
bool IsCreation(const Node& node);

}  // namespace mure::ir
