// mure — the JIT: fused elementwise kernels generated at run time.
//
// A chain of f32 elementwise ops (unary float functions, arithmetic, min/max, ...), optionally
// ending in a reduction over trailing axes, becomes ONE OpenCL kernel: the inputs are read once,
// the result written once, and no intermediate touches memory. The kernel text is generated from
// the chain, compiled by the device's compiler (PoCL on a CPU), and cached by its text and the
// device: in memory for the process, and as a program binary on disk (`kernel_cache_dir`), so a
// restarted node does not compile again.
//
// Each step is the op's formula from the op table (ir/ops.def), the very statement its per-op
// kernel runs (exec/opencl_codegen.h), in the same prelude, built with the same kBuildOptions and
// launched the same way (one work-item per element): a fused chain gives the bits of its ops run
// one by one on the device. The disk cache's key covers the device, the build options and the text.
//
// Thread-safety: calls are serialised by an internal mutex.
#pragma once

#include <CL/cl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/opencl_executor.h"
#include "ir/ops.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::ocl {

/// One step of a fused chain. Operands index earlier steps; step i < inputs are the inputs.
struct FusedStep {
  enum class Kind { kInput, kUnary, kBinary } kind = Kind::kInput;
  ir::UnaryOp unary = ir::UnaryOp::kNegate;
  ir::BinaryOp binary = ir::BinaryOp::kAdd;
  uint32_t a = 0, b = 0;  ///< operand steps
};

/// A fused chain over f32 values of one shape (inputs may also be scalars), and an optional final
/// reduction (sum, product, reduce_max, reduce_min) over the trailing `reduced` elements of each
/// row.
struct FusedGraph {
  std::vector<FusedStep> steps;    ///< the inputs first (kInput), then the ops
  std::vector<bool> scalar_input;  ///< per input: one element broadcast to all
  bool reduce = false;
  ir::ReduceOp reduce_op = ir::ReduceOp::kSum;
  /// The source text this graph compiles to (the cache key).
  std::string Source() const;
};

/// Whether a unary or binary op can be part of a fused f32 chain.
bool Fusible(ir::UnaryOp op);
bool Fusible(ir::BinaryOp op);
bool FusibleReduce(ir::ReduceOp op);

struct FusedStats {
  uint64_t compiled = 0;     ///< kernels compiled from source
  uint64_t disk_hits = 0;    ///< kernels loaded from the disk cache
  uint64_t memory_hits = 0;  ///< runs whose kernel was in memory
  double compile_ms = 0;     ///< time compiling (and loading) kernels
  uint64_t in_memory = 0;    ///< kernels held in memory now
  uint64_t evicted = 0;      ///< kernels dropped from memory to stay under the cap
  uint64_t disk_bytes = 0;   ///< bytes of kernel binaries in the disk cache (this device's and others')
  uint64_t disk_skipped = 0; ///< kernels not written to disk because the cache was full
};

/// Caps on what clients can make the node keep: every distinct chain is a kernel, and a client
/// can send endless distinct chains.
struct FusedCacheLimits {
  size_t max_in_memory = 256;               ///< compiled kernels kept (least recently used dropped)
  uint64_t max_disk_bytes = 256ull << 20;   ///< kernel binaries on disk; past it, new ones are not written
};

class FusedKernels {
 public:
  /// `cache_dir` empty: no disk cache.
  FusedKernels(OpenClExecutor& device, std::string cache_dir, FusedCacheLimits limits = {});
  ~FusedKernels();

  /// out = graph(inputs): `out` has the chain's shape, or (reduce) one element per row of
  /// `row_length` elements. Inputs are f32 tensors of out's pre-reduction element count, or
  /// single elements where graph.scalar_input says so.
  Status Run(const FusedGraph& graph, const std::vector<const Tensor*>& inputs, uint64_t elements,
             uint64_t row_length, Tensor& out);

  FusedStats stats() const;

 private:
  struct Entry;
  Result<Entry*> Kernel(const std::string& source);

  /// Drop the least recently used kernels until at most max_in_memory - 1 remain. Locked.
  void Evict();

  OpenClExecutor& device_;
  std::string cache_dir_;
  FusedCacheLimits limits_;
  uint64_t clock_ = 0;  // guarded by mu_: use counter for least-recently-used eviction
  std::string device_key_;  // device name + driver version: binaries are per device
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> cache_;  // guarded by mu_
  FusedStats stats_;                                               // guarded by mu_
};

}  // namespace mure::ocl
