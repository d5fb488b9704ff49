// mure — OpenCL C source for the op set, generated per (op, input types, compute type, output
// type). This is the start of the JIT: each variant is a small kernel whose text depends only on
// the op and the types; shapes, strides and counts are run-time arguments, so one compiled
// variant serves every shape.
//
// The kernels reproduce exec/cpu_ops.cpp (the plain reference) value for value:
//  * integers compute on 64-bit two's-complement patterns (ulong; `as_long` where signed), with
//    the operands normalised to the compute type and results wrapped on store; the edge rules of
//    cpu_ops' BinaryInt (x / 0 = -1, x rem 0 = x, MIN / -1 = MIN, MIN rem -1 = 0, shifts past the
//    width, negative powers) are spelled out, and every divisor is made safe before dividing;
//  * floats compute in `float` for f16/bf16/f32 and `double` for f64; f16 is stored as ushort and
//    moved with vload_half / vstore_half_rte (no cl_khr_fp16), bf16 is stored as ushort and
//    converted by bit manipulation exactly like cpu::FloatToBF16 (nearest even, NaN kept quiet);
//  * integer -> float conversions round the exact integer to double first and then to the float
//    type, as the reference does (`mure_u2f` does that without needing double on the device);
//  * float -> integer stores saturate with NaN -> 0;
//  * min/max/reduce_max/reduce_min: NaN wins; argmax/argmin: NaN wins, first occurrence on ties;
//  * float sums and products accumulate in double when the device has cl_khr_fp64 (the
//    reference's order and precision: bit-identical results), in float otherwise.
// Every kernel is `__kernel void MURE_KERNEL(...)`; the runner renames it (one program may hold
// many variants) and uses the standalone program text as the cache key.
#pragma once

#include <string>
#include <vector>

#include "ir/ops.h"
#include "mure/status.h"
#include "mure/types.h"

namespace mure::ocl {

/// The placeholder every generated kernel is named by.
inline constexpr const char* kKernelNamePlaceholder = "MURE_KERNEL";

/// One kernel variant.
struct KernelSource {
  std::string name;  ///< for logs and errors: "unary exp {:f, 32} -> {:f, 32}"
  std::string text;  ///< the kernel function, named kKernelNamePlaceholder
  /// The kernel's arguments in order: 'g' a __global buffer, 'c' a __constant buffer, 'l' ulong,
  /// 'u' uint (lets the runner warm a kernel up with dummy arguments).
  std::string args;
  bool fp64 = false;  ///< needs cl_khr_fp64
};

/// Helpers every program starts with (and the fp64 pragma when `fp64`).
std::string Prelude(bool fp64);
/// The standalone program of one variant, its kernel named `mure_k`: what the cache is keyed by.
std::string ProgramSource(const KernelSource& k);
/// Several variants in one program, their kernels named `names[i]`.
std::string BatchSource(const std::vector<const KernelSource*>& ks, const std::vector<std::string>& names);

// Each generator returns kUnsupported (naming the op and the type) when the variant needs double
// precision and `device_fp64` is false, and kInternal for an op/type combination that ir/ rejects.

/// out[i] = op(in[i]) (cpu::Unary). Args: in, out, n.
Result<KernelSource> UnaryKernel(ir::UnaryOp op, DType in, DType out, bool device_fp64);
/// out[i] = op(a[ia], b[ib]) with broadcasting (cpu::Binary). Args: a, b, out, n, meta, mode —
/// mode 0: both flat; 1: b scalar; 2: a scalar; 3: meta = {rank, shape[rank], sa[rank], sb[rank]}.
Result<KernelSource> BinaryKernel(ir::BinaryOp op, DType a, DType b, DType compute, DType out, bool device_fp64);
/// One work-item per output element looping over the reduced sub-space (cpu::Reduce). Args: in,
/// out, n, meta = {nk, kshape[nk], kstride[nk], nr, rshape[nr], rstride[nr], outer}.
Result<KernelSource> ReduceKernel(ir::ReduceOp op, DType in, DType out, bool device_fp64);
/// out[i] = in[i] converted (cpu::AsType). Args: in, out, n.
Result<KernelSource> AsTypeKernel(DType in, DType out, bool device_fp64);
/// out[i] = in[base + sum(index_d * stride_d)] for elements of `width` bytes (transpose, slice).
/// Args: in, out, n, meta = {rank, shape[rank], stride[rank]}, base.
KernelSource GatherKernel(unsigned width);
/// take's copy: out[(p*count + j)*post + q] = in[(p*dim + idx[j])*post + q]. Args: in, idx, out, n,
/// count, dim, post.
Result<KernelSource> TakeKernel(unsigned width, DType index);
/// take's range check: atomic_min(bad, g) for the first chunk g holding an index outside
/// [0, dim). Args: idx, count, dim, chunk, bad.
Result<KernelSource> TakeCheckKernel(DType index);

}  // namespace mure::ocl
