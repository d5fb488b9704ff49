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

/// The one build policy of every generated program (per-op, batched and fused): the prelude says
/// `#pragma OPENCL FP_CONTRACT OFF`, and the options ask for correctly rounded f32 divide and
/// sqrt, no -cl-mad-enable, no fast-math; so a fused chain gives the bits of its ops run one by
/// one. Part of every kernel cache's key.
inline constexpr const char* kBuildOptions = "-cl-fp32-correctly-rounded-divide-sqrt";

/// The formulas of ir/ops.def as OpenCL C text ("MURE_NONE" where the row has none).
std::string UnaryFloatFormula(ir::UnaryOp op);
std::string UnaryIntFormula(ir::UnaryOp op);
std::string BinaryFloatFormula(ir::BinaryOp op);
std::string BinaryIntFormula(ir::BinaryOp op);
/// A reduction's row of ir/ops.def as OpenCL C text: the accumulator's start and its step from
/// `acc` and the element `v`, for floats and for integer patterns (which see S, BITS, MASK, SMIN:
/// IntConstants); "MURE_NONE" where the row has none (argmax, argmin).
struct ReduceFormulas {
  std::string float_init, float_step, int_init, int_step;
};
ReduceFormulas ReduceFormulaText(ir::ReduceOp op);
/// `r = (f)(formula);` of the float formula over `x` (and `y`) of OpenCL type `f`; `r` may be a
/// declaration ("const float r"). Empty when the row has no float formula.
std::string UnaryFloatStmt(ir::UnaryOp op, const std::string& f, const std::string& r);
std::string BinaryFloatStmt(ir::BinaryOp op, const std::string& f, const std::string& r);

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


// ---- the second part of the op set ----------------------------------------------------------

/// out[obase + sum(k_d * os_d)] = convert(in[ibase + sum(k_d * is_d)]) over a walk shape (cpu_ops'
/// Convert: a same-type element is copied bit for bit). Concatenate, put_slice, pad, dot's
/// operand staging. Args: in, out, n, meta = {rank, shape[rank], is[rank], os[rank]}, ibase, obase.
Result<KernelSource> CopyKernel(DType in, DType out, bool device_fp64);
/// out[i] = (i / inner) % dim. Args: out, n, inner, dim.
Result<KernelSource> IotaKernel(DType out, bool device_fp64);
/// out[i] = row == col (of the last two axes) ? one : zero (bit patterns). Args: out, n, rows,
/// cols, one, zero.
KernelSource EyeKernel(unsigned width);
/// cpu::RandomUniform / cpu::RandomNormal (same counter-based generator); in double where the
/// device has it (bit-identical to the reference), float otherwise. Args: out, n, seed, p1, p2 —
/// the parameters' bits: a double's, or a float's in the low 32 bits without fp64.
Result<KernelSource> RandomKernel(DType out, bool normal, bool device_fp64);
/// out = pred != 0 ? a : b, broadcast. Args: pred, a, b, out, n, meta, mode — mode 0: all flat;
/// otherwise meta = {rank, shape[rank], sp[rank], sa[rank], sb[rank]}.
Result<KernelSource> SelectKernel(DType pred, DType a, DType b, DType out, bool device_fp64);
/// out = min(max(x, lo), hi) in `compute` (NaN x stays), broadcast like SelectKernel.
Result<KernelSource> ClipKernel(DType x, DType lo, DType hi, DType compute, DType out, bool device_fp64);
/// gather's range check, like TakeCheckKernel over entries of `rank` coordinates. Args: idx,
/// count, rank, meta = {shape[rank]}, chunk, bad.
Result<KernelSource> GatherCheckKernel(DType index);
/// gather's copy. Args: in, idx, out, n, rank, meta = {shape[rank], strides[rank]}.
Result<KernelSource> GatherCopyKernel(unsigned width, DType index);
/// Stable sort (NaN largest) or argsort along an axis, one work-item per row, a bottom-up merge
/// sort in `scratch` (2 * n ulongs per row). Args: in, out, rows, n, inner, scratch.
Result<KernelSource> SortKernel(DType t, bool descending, bool arg, bool device_fp64);
/// out[b, i, j] = sum_q A[b, i, q] * B[b, q, j] with A, B contiguous in `compute`; floats
/// accumulate in double where the device has it. Args: A, B, out, n, m, n, k.
Result<KernelSource> MatmulKernel(DType compute, bool device_fp64);

}  // namespace mure::ocl
