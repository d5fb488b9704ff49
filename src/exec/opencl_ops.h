// mure — the op set on an OpenCL device: the same functions, signatures and results as
// exec/cpu_ops.h (the plain reference), run as kernels generated per (op, types) by
// exec/opencl_codegen.h and compiled by the device's compiler at run time.
//
// Compiled kernels are cached for the life of the object, keyed by their program text and build
// options, so each variant compiles once per process; Prebuild() compiles many variants in one
// program (one compiler start instead of many) and warms them up, for start-up and tests.
// Shapes and types are validated by ir/ before these run, as for cpu::; these check only what
// needs the data (take's indices) and what needs the device (kUnsupported for {:f, 64} on a
// device without cl_khr_fp64, before anything is built).
//
// Tensors are used in place (CL_MEM_USE_HOST_PTR: no copies on a CPU device); empty outputs
// launch nothing. Every OpenCL call is checked; a failed build returns its log.
//
// Thread-safety: every method may be called from any thread; calls are serialised.
#pragma once

#include <CL/cl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/opencl_codegen.h"
#include "exec/opencl_executor.h"
#include "ir/ops.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::ocl {

/// Compiler and cache counters (since construction).
struct CompileStats {
  uint64_t programs_built = 0;   ///< clBuildProgram calls
  uint64_t kernels_built = 0;    ///< kernel variants compiled (a program may hold several)
  uint64_t cache_hits = 0;       ///< op calls whose kernels were already compiled
  uint64_t launches = 0;         ///< kernels enqueued
  double build_ms = 0;           ///< total time in clBuildProgram + clCreateKernel
  double max_build_ms = 0;       ///< the slowest single build
  /// Total time of each kernel's first launch(es) (including warm-ups): the device compiler may
  /// finish its work there (PoCL generates the work-group function on first enqueue).
  double first_launch_ms = 0;
};

/// A kernel variant an op call would need, for Prebuild. Output types follow ir/'s rules.
struct KernelRequest {
  enum class Kind { kUnary, kBinary, kReduce, kAsType, kTranspose, kTake };
  static KernelRequest Unary(ir::UnaryOp op, DType in);
  static KernelRequest Binary(ir::BinaryOp op, DType a, DType b);
  static KernelRequest Reduce(ir::ReduceOp op, DType in);
  static KernelRequest AsType(DType in, DType out);
  static KernelRequest Transpose(DType t);  ///< also serves Slice (same gather kernel)
  static KernelRequest Take(DType t, DType index);

  Kind kind = Kind::kUnary;
  ir::UnaryOp unary = ir::UnaryOp::kNegate;
  ir::BinaryOp binary = ir::BinaryOp::kAdd;
  ir::ReduceOp reduce = ir::ReduceOp::kSum;
  DType a = DType::kF32, b = DType::kF32;
};

class OpenClOps {
 public:
  /// Shares (retains) the executor's context, device and queue. `fp64`: whether to use double
  /// precision (false where the device lacks it; tests pass false to check that path).
  static Result<std::unique_ptr<OpenClOps>> Create(cl_context context, cl_device_id device, cl_command_queue queue,
                                                   bool fp64);
  ~OpenClOps();
  OpenClOps(const OpenClOps&) = delete;
  OpenClOps& operator=(const OpenClOps&) = delete;

  /// out = op(in); out has UnaryResultType(op, in.type()) and in's shape.
  Status Unary(ir::UnaryOp op, const Tensor& in, Tensor& out);
  /// out = op(a, b) with broadcasting; operands promoted to `compute` first.
  Status Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out);
  /// out = reduction of in over plan.axes.
  Status Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out);
  /// out = in converted to out's type (floats to integers saturate, NaN becomes 0; integers wrap).
  Status AsType(const Tensor& in, Tensor& out);
  /// out = in's bytes reinterpreted (same element width).
  Status Bitcast(const Tensor& in, Tensor& out);
  /// out = in with axes permuted.
  Status Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out);
  /// out = in[starts + i * strides] per dimension (validated by ir::SliceShape).
  Status Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides, Tensor& out);
  /// out = take(in, indices, axis); every index is range-checked (on the device) before anything
  /// is written; kOutOfRange names the first bad one, as cpu::Take does.
  Status Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out);

  // ---- the second part (same signatures as cpu::, but Dot takes no gemm) ----
  /// out = the index along `axis` (or the flat index when axis < 0).
  Status Iota(Tensor& out, int64_t axis);
  /// out = 1 on the diagonal of the last two axes, else 0.
  Status Eye(Tensor& out);
  /// out = value everywhere (converted to out's type on the host, then filled on the device).
  Status Fill(Tensor& out, const ir::Scalar& value);
  /// cpu::RandomUniform / RandomNormal: the same numbers for the same seed (bit for bit where the
  /// device has double precision).
  Status RandomUniform(Tensor& out, uint64_t seed, double lo, double hi);
  Status RandomNormal(Tensor& out, uint64_t seed, double mean, double std);
  /// out = pred != 0 ? a : b, all three broadcast to out's shape (converted to out's type).
  Status Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out);
  /// out = min(max(x, lo), hi), broadcast, promoted to `compute`.
  Status Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out);
  /// out = in broadcast to out's shape; in's dim i goes to out's axis axes[i].
  Status BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out);
  /// out = in reversed along `axes`.
  Status Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out);
  /// out = in padded (or cropped, for negative low/high) with `value`, interior padding too.
  Status Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config, Tensor& out);
  /// out = the inputs joined along `axis`, each converted to out's type.
  Status Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                     Tensor& out);
  /// out = in with `update` written at `starts` (both converted to out's type).
  Status PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out);
  /// out = the elements of in at the coordinates in `indices`; every coordinate is range-checked
  /// (on the device) before anything is written, kOutOfRange naming the first bad one as
  /// cpu::Gather does.
  Status Gather(const Tensor& in, const Tensor& indices, Tensor& out);
  /// Stable sort (or argsort, giving {:s, 64} indices) along `axis`; NaN sorts as the largest.
  /// One work-item per row (slow for few long rows).
  Status Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out);
  /// out = dot(a, b) per plan, operands promoted to `compute` (out's type): the operands are
  /// staged contiguous in the compute type on the device, then one work-item per output element
  /// (a plain loop, not a tuned GEMM; floats accumulate in double where the device has it, as
  /// cpu::Dot's plain loops do).
  Status Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, Tensor& out);
  /// out = outer product: a's elements times b's, shape a.shape ++ b.shape.
  Status Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out);

  /// Compile every requested variant not yet cached, in one program, and launch each once on
  /// nothing so the device compiler's lazy work is done too. kUnsupported for f64 without fp64.
  Status Prebuild(const std::vector<KernelRequest>& requests);
  /// The same for generated sources (a later JIT's fused kernels): those not cached are built in
  /// one program and warmed up. A failed build returns kInternal with the build log.
  Status Compile(const std::vector<KernelSource>& sources);

  CompileStats stats() const;
  /// Variants in the cache.
  size_t cached_kernels() const;
  bool fp64() const { return fp64_; }

 private:
  struct Entry;
  OpenClOps() = default;

  Result<std::vector<KernelSource>> Sources(const KernelRequest& r) const;
  /// The compiled kernel for `k`, building it on a miss. Locked.
  Result<Entry*> Kernel(const KernelSource& k);
  /// Build `ks` (none cached) in one program and add them to the cache. Locked.
  Status Build(const std::vector<const KernelSource*>& ks, const std::vector<std::string>& keys);
  /// Build and warm up those of `sources` not cached. Locked.
  Status CompileLocked(const std::vector<KernelSource>& sources);
  Result<ClMem> Input(const Tensor& t);
  Result<ClMem> Output(Tensor& t);
  Result<ClMem> Constants(const std::vector<uint64_t>& values);
  struct Arg {
    enum { kMem, kULong, kUInt } kind;
    cl_mem mem;
    cl_ulong ulong_value;
    cl_uint uint_value;
  };
  static Arg M(const ClMem& m) { return {Arg::kMem, m.get(), 0, 0}; }
  static Arg L(uint64_t v) { return {Arg::kULong, nullptr, v, 0}; }
  static Arg U(uint32_t v) { return {Arg::kUInt, nullptr, 0, v}; }
  /// Set the arguments and enqueue `items` work-items (rounded up to the work-group size).
  Status Enqueue(Entry& e, const std::vector<Arg>& args, uint64_t items);
  /// Wait for the queue and make `out`'s host memory current.
  Status Finish(const ClMem& out, uint64_t bytes);
  Status Launch(Entry& e, const std::vector<Arg>& args, uint64_t items, const ClMem& out, uint64_t bytes);
  Status GatherCopy(const Tensor& in, const std::vector<uint64_t>& strides, uint64_t base, Tensor& out);
  /// Enqueue a strided convert-copy (CopyKernel) from `in` to `out` buffers; no wait.
  Status EnqueueCopy(DType in_type, const ClMem& in, DType out_type, const ClMem& out, const Shape& walk,
                     const std::vector<uint64_t>& in_strides, const std::vector<uint64_t>& out_strides, uint64_t ibase,
                     uint64_t obase);
  /// A device buffer of working memory, its bytes reserved on `budget` (the output tensor's) and
  /// held in `hold` for as long as the caller keeps it; kOutOfMemory when the budget has no room.
  Result<ClMem> DeviceScratch(uint64_t bytes, MemoryBudget* budget, Reservation& hold);
  /// The first chunk flagged by a check kernel (~0u when none): launches `check` over `groups`.
  Result<cl_uint> RunCheck(Entry& check, std::vector<Arg> args, uint64_t groups);

  static std::string Key(const KernelSource& k);

  cl_context context_ = nullptr;  // retained
  cl_device_id device_ = nullptr;
  cl_command_queue queue_ = nullptr;  // retained
  bool fp64_ = false;
  ClMem dummy_;  // stands in for empty buffers (OpenCL has no zero-sized ones)
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> cache_;  // guarded by mu_
  CompileStats stats_;                                             // guarded by mu_
};

}  // namespace mure::ocl
