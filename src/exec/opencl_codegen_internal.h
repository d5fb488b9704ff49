// mure — the text-building helpers the kernel generators of exec/opencl_codegen.h share.
// Internal to src/exec:
//
//   opencl_codegen.cpp              the prelude, ops.def's formulas as text, program text (the
//                                   cache key, batches), and these helpers
//   opencl_codegen_elementwise.cpp  unary, binary, as_type, select, clip, iota, eye, random
//   opencl_codegen_shape.cpp        strided copy, gather (transpose/slice), take, gather's kernels
//   opencl_codegen_reduce.cpp       reductions, sort, matmul
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "exec/opencl_codegen.h"

namespace mure::ocl::gen {

/// `v` as an OpenCL ulong literal in hex.
std::string Hex(uint64_t v);
/// A double as an exact OpenCL literal of type `f` ("float" or "double").
std::string FloatLit(double v, const std::string& f);
/// The element type of an input buffer.
const char* InType(DType t);
/// The element type of an output buffer: integers are stored through their unsigned type (a
/// conversion to it wraps, well defined).
const char* OutType(DType t);
/// The unsigned OpenCL type of `width` bytes.
const char* WidthType(unsigned width);
/// The OpenCL type a float type computes in.
std::string FType(DType t);
/// The low `bits` bits set.
uint64_t Mask(unsigned bits);
/// The minimum of a signed type as a sign-extended 64-bit pattern.
uint64_t SignedMin(unsigned bits);
/// kUnsupported when one of `types` is f64 and the device has no fp64.
Status CheckFp64(std::string_view what, std::initializer_list<DType> types, bool device_fp64);
/// Whether one of `types` is f64.
bool Uses64(std::initializer_list<DType> types);

/// Element `idx` of integer buffer `p` as its 64-bit pattern (sign- or zero-extended).
std::string LoadI(DType t, const std::string& p, const std::string& idx);
/// Element `idx` of float buffer `p` in its natural compute type (exact).
std::string LoadNat(DType t, const std::string& p, const std::string& idx);
/// cpu_ops' RoundTo(compute, LoadF(t, p, idx)): element `idx` of `p` converted to the float type
/// `compute`, as a value of FType(compute).
std::string ToCompute(DType t, const std::string& p, const std::string& idx, DType compute);
/// cpu_ops' StoreF: `var` (of OpenCL type `f`) stored into element `idx` of `p` of type `t`:
/// floats round to the type, integers saturate (NaN -> 0).
std::string StoreF(DType t, const std::string& p, const std::string& idx, const std::string& var,
                   const std::string& f);
/// cpu_ops' StoreI: a 64-bit pattern stored into element `idx` (wrapping to the type's width).
std::string StoreI(DType t, const std::string& p, const std::string& idx, const std::string& var);
/// cpu_ops' Normalize: sign-extend or mask a pattern to the width of `t`.
std::string Normalize(DType t, const std::string& e);
/// x < y on patterns, signed when `s`.
std::string Lt(bool s, const std::string& x, const std::string& y);
/// The integer dialect's constants S, BITS, MASK, SMIN for type `t`, as declarations.
std::string IntConstants(DType t);

/// cpu_ops' conversion of element `sidx` of `src` (type `in`) into element `didx` of `dst` (type
/// `out`): integer -> float through the exact signed/unsigned value, float -> integer saturating
/// (NaN -> 0), integer -> integer wrapping. Statements, indented by two.
std::string ConvertStmts(DType in, const std::string& src, const std::string& sidx, DType out, const std::string& dst,
                         const std::string& didx);
/// Like ConvertStmts, but a same-type element is copied bit for bit (cpu_ops' Convert memcpy's).
std::string ConvertOrCopy(DType in, const std::string& src, const std::string& sidx, DType out, const std::string& dst,
                          const std::string& didx);
/// Offsets of up to three operands of a broadcast (cpu_ops' BroadcastStrides): mode 0: all flat;
/// otherwise meta = {rank, shape[rank], s0[rank], s1[rank], s2[rank]}.
std::string BroadcastPrologue(int operands);

/// `__kernel void MURE_KERNEL(params) {` and a newline.
std::string Head(const std::string& params);
/// A read-only input buffer parameter of element type `t`.
std::string In(DType t, const char* name);
/// The output buffer parameter `out` of element type `t`.
std::string Out(DType t);
/// The flat work-item index `i`, returning past `n`.
inline constexpr const char* kFlatIndex = "  const ulong i = get_global_id(0);\n  if (i >= n) return;\n";

}  // namespace mure::ocl::gen
