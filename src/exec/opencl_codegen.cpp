#include "exec/opencl_codegen.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>

#include "exec/opencl_codegen_internal.h"

// The generators are in opencl_codegen_elementwise.cpp, opencl_codegen_shape.cpp and
// opencl_codegen_reduce.cpp (see exec/opencl_codegen_internal.h).

namespace mure::ocl {

using ir::BinaryOp;
using ir::IsFloat;
using ir::IsSigned;
using ir::ReduceOp;
using ir::UnaryOp;

namespace {

const char* kPrelude = R"CL(#pragma OPENCL FP_CONTRACT OFF
float mure_bf2f(ushort b) { return as_float((uint)b << 16); }
ushort mure_f2bf(float f) {
  uint x = as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (ushort)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (ushort)(x >> 16);
}
float mure_rf16(float f) {
  ushort h;
  vstore_half_rte(f, 0, (half*)&h);
  return vload_half(0, (const half*)&h);
}
float mure_rbf16(float f) { return mure_bf2f(mure_f2bf(f)); }
float mure_u2f(ulong m) {
  if (m < 0x20000000000000UL) return (float)m;
  const uint shift = 11u - (uint)clz(m);
  ulong q = m >> shift;
  const ulong rem = m & ((1UL << shift) - 1UL), half_ulp = 1UL << (shift - 1u);
  if (rem > half_ulp || (rem == half_ulp && (q & 1UL))) q += 1UL;
  return (float)q * (float)(1UL << shift);
}
float mure_s2f(long v) { return v < 0 ? -mure_u2f(0UL - (ulong)v) : mure_u2f((ulong)v); }
ulong mure_ipow(ulong b, ulong e) {
  ulong r = 1UL;
  while (e) {
    if (e & 1UL) r *= b;
    b *= b;
    e >>= 1;
  }
  return r;
}
int mure_lt(ulong x, ulong y, int s) { return s ? as_long(x) < as_long(y) : x < y; }
long mure_divisor(ulong y) { return (as_long(y) == 0 || as_long(y) == -1) ? 1L : as_long(y); }
)CL";

/// The float helpers of ir/ops.def as OpenCL C overloads for `type` ("float" or "double").
std::string FloatHelpers(const std::string& type) {
  std::string out;
#define MURE_FLOAT_HELPER(name, body)                                                               \
  out += type + " __attribute__((overloadable)) " #name "(" + type + " x) {\n  typedef " + type + \
         " T;\n  " #body "\n}\n";
#include "ir/ops.def"
  return out;
}

Status NoFp64(std::string_view what, DType t) {
  return Status(ErrorKind::kUnsupported, std::string(what) + " on " + DTypeToString(t) +
                                             " needs double precision, and the OpenCL device has none (no "
                                             "cl_khr_fp64)");
}

}  // namespace

namespace gen {

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llxUL", static_cast<unsigned long long>(v));
  return buf;
}

/// A double as an exact OpenCL literal of type `f` ("float" or "double").
std::string FloatLit(double v, const std::string& f) {
  char buf[64];
  if (f == "float") {
    std::snprintf(buf, sizeof buf, "%af", static_cast<double>(static_cast<float>(v)));
  } else {
    std::snprintf(buf, sizeof buf, "%a", v);
  }
  return std::string("(") + buf + ")";
}

/// The element type of an input buffer.
const char* InType(DType t) {
  switch (t) {
    case DType::kU8: return "uchar";
    case DType::kU16: return "ushort";
    case DType::kU32: return "uint";
    case DType::kU64: return "ulong";
    case DType::kS8: return "char";
    case DType::kS16: return "short";
    case DType::kS32: return "int";
    case DType::kS64: return "long";
    case DType::kF16: return "half";
    case DType::kBF16: return "ushort";
    case DType::kF32: return "float";
    case DType::kF64: return "double";
    case DType::kC64: case DType::kC128: return "?";  // complex runs on the CPU executor only
  }
  return "?";
}

/// The element type of an output buffer: integers are stored through their unsigned type (a
/// conversion to it wraps, well defined).
const char* OutType(DType t) {
  switch (t) {
    case DType::kS8: return "uchar";
    case DType::kS16: return "ushort";
    case DType::kS32: return "uint";
    case DType::kS64: return "ulong";
    default: return InType(t);
  }
}

const char* WidthType(unsigned width) {
  switch (width) {
    case 1: return "uchar";
    case 2: return "ushort";
    case 4: return "uint";
    default: return "ulong";
  }
}

/// The OpenCL type a float type computes in.
std::string FType(DType t) { return t == DType::kF64 ? "double" : "float"; }

uint64_t Mask(unsigned bits) { return bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1; }

/// The minimum of a signed type as a sign-extended 64-bit pattern.
uint64_t SignedMin(unsigned bits) { return ~(Mask(bits) >> 1); }

/// kUnsupported when one of `types` is f64 and the device has no fp64.
Status CheckFp64(std::string_view what, std::initializer_list<DType> types, bool device_fp64) {
  if (device_fp64) return Status::Ok();
  for (DType t : types) {
    if (t == DType::kF64) return NoFp64(what, t);
  }
  return Status::Ok();
}

/// Element `idx` of integer buffer `p` as its 64-bit pattern (sign- or zero-extended).
std::string LoadI(DType t, const std::string& p, const std::string& idx) {
  return std::string(IsSigned(t) ? "(ulong)(long)" : "(ulong)") + p + "[" + idx + "]";
}

/// Element `idx` of float buffer `p` in its natural compute type (exact).
std::string LoadNat(DType t, const std::string& p, const std::string& idx) {
  switch (t) {
    case DType::kF16: return "vload_half(" + idx + ", " + p + ")";
    case DType::kBF16: return "mure_bf2f(" + p + "[" + idx + "])";
    default: return p + "[" + idx + "]";
  }
}

/// cpu_ops' RoundTo(compute, LoadF(t, p, idx)): element `idx` of `p` converted to the float type
/// `compute`, as a value of FType(compute).
std::string ToCompute(DType t, const std::string& p, const std::string& idx, DType compute) {
  if (IsFloat(t)) {
    std::string nat = LoadNat(t, p, idx);
    switch (compute) {
      case DType::kF64: return t == DType::kF64 ? nat : "(double)" + nat;
      case DType::kF32: return t == DType::kF64 ? "(float)" + nat : nat;
      case DType::kF16: return t == DType::kF16 ? nat : "mure_rf16((float)" + nat + ")";
      default: return t == DType::kBF16 ? nat : "mure_rbf16((float)" + nat + ")";
    }
  }
  const std::string raw = p + "[" + idx + "]";
  if (compute == DType::kF64) return IsSigned(t) ? "(double)(long)" + raw : "(double)(ulong)" + raw;
  // Through double, as the reference does: exact integer -> double -> float.
  std::string f = IsSigned(t) ? "mure_s2f((long)" + raw + ")" : "mure_u2f((ulong)" + raw + ")";
  switch (compute) {
    case DType::kF16: return "mure_rf16(" + f + ")";
    case DType::kBF16: return "mure_rbf16(" + f + ")";
    default: return f;
  }
}

/// cpu_ops' StoreF: `var` (of OpenCL type `f`) stored into element `idx` of `p` of type `t`:
/// floats round to the type, integers saturate (NaN -> 0).
std::string StoreF(DType t, const std::string& p, const std::string& idx, const std::string& var,
                   const std::string& f) {
  switch (t) {
    case DType::kF32: return p + "[" + idx + "] = (float)" + var + ";";
    case DType::kF64: return p + "[" + idx + "] = (double)" + var + ";";
    case DType::kF16: return "vstore_half_rte((float)" + var + ", " + idx + ", " + p + ");";
    case DType::kBF16: return p + "[" + idx + "] = mure_f2bf((float)" + var + ");";
    default: break;
  }
  const unsigned bits = DTypeBits(t);
  double lo, hi;
  uint64_t minp, maxp;
  if (IsSigned(t)) {
    minp = SignedMin(bits);
    maxp = Mask(bits) >> 1;
    lo = static_cast<double>(static_cast<int64_t>(minp));
    hi = static_cast<double>(static_cast<int64_t>(maxp));
  } else {
    minp = 0;
    maxp = Mask(bits);
    lo = 0;
    hi = static_cast<double>(maxp);
  }
  return p + "[" + idx + "] = (" + OutType(t) + ")(isnan(" + var + ") ? 0UL : " + var + " <= " + FloatLit(lo, f) +
         " ? " + Hex(minp) + " : " + var + " >= " + FloatLit(hi, f) + " ? " + Hex(maxp) + " : (ulong)(" +
         (IsSigned(t) ? "long" : "ulong") + ")" + var + ");";
}

/// cpu_ops' StoreI: a 64-bit pattern stored into element `idx` (wrapping to the type's width).
std::string StoreI(DType t, const std::string& p, const std::string& idx, const std::string& var) {
  switch (t) {
    case DType::kF32: return p + "[" + idx + "] = (float)as_long(" + var + ");";
    case DType::kF64: return p + "[" + idx + "] = (double)as_long(" + var + ");";
    case DType::kF16: return "vstore_half_rte((float)as_long(" + var + "), " + idx + ", " + p + ");";
    case DType::kBF16: return p + "[" + idx + "] = mure_f2bf((float)as_long(" + var + "));";
    default: return p + "[" + idx + "] = (" + OutType(t) + ")" + var + ";";
  }
}

/// cpu_ops' Normalize: sign-extend or mask a pattern to the width of `t`.
std::string Normalize(DType t, const std::string& e) {
  const unsigned bits = DTypeBits(t);
  if (bits == 64) return e;
  if (!IsSigned(t)) return "(" + e + " & " + Hex(Mask(bits)) + ")";
  const std::string s = std::to_string(64 - bits);
  return "as_ulong(as_long(" + e + " << " + s + ") >> " + s + ")";
}

std::string Lt(bool s, const std::string& x, const std::string& y) {
  return s ? "(as_long(" + x + ") < as_long(" + y + "))" : "(" + x + " < " + y + ")";
}

std::string IntConstants(DType t) {
  const unsigned bits = DTypeBits(t);
  return std::string("  const int S = ") + (IsSigned(t) ? "1" : "0") + ";\n  const ulong BITS = " +
         std::to_string(bits) + "UL;\n  const ulong MASK = " + Hex(Mask(bits)) + ";\n  const ulong SMIN = " +
         Hex(IsSigned(t) ? SignedMin(bits) : 0) + ";\n";
}

std::string Head(const std::string& params) {
  return std::string("__kernel void ") + kKernelNamePlaceholder + "(" + params + ") {\n";
}

std::string In(DType t, const char* name) {
  return std::string("__global const ") + InType(t) + "* restrict " + name;
}
std::string Out(DType t) { return std::string("__global ") + OutType(t) + "* restrict out"; }

bool Uses64(std::initializer_list<DType> types) {
  for (DType t : types) if (t == DType::kF64) return true;
  return false;
}

/// cpu_ops' conversion of element `sidx` of `src` (type `in`) into element `didx` of `dst` (type
/// `out`): integer -> float through the exact signed/unsigned value, float -> integer saturating
/// (NaN -> 0), integer -> integer wrapping. Statements, indented by two.
std::string ConvertStmts(DType in, const std::string& src, const std::string& sidx, DType out, const std::string& dst,
                         const std::string& didx) {
  if (IsFloat(in) || IsFloat(out)) {
    if (!IsFloat(in)) {
      const std::string f = FType(out);
      return "  const " + f + " x = " + ToCompute(in, src, sidx, out == DType::kF64 ? DType::kF64 : DType::kF32) +
             ";\n  " + StoreF(out, dst, didx, "x", f) + "\n";
    }
    const std::string f = in == DType::kF64 || out == DType::kF64 ? "double" : "float";
    std::string x = LoadNat(in, src, sidx);
    if (f == "double" && in != DType::kF64) x = "(double)" + x;
    return "  const " + f + " x = " + x + ";\n  " + StoreF(out, dst, didx, "x", f) + "\n";
  }
  return "  const ulong v = " + LoadI(in, src, sidx) + ";\n  " + StoreI(out, dst, didx, "v") + "\n";
}

/// Like ConvertStmts, but a same-type element is copied bit for bit (cpu_ops' Convert memcpy's).
std::string ConvertOrCopy(DType in, const std::string& src, const std::string& sidx, DType out, const std::string& dst,
                          const std::string& didx) {
  if (in != out) return ConvertStmts(in, src, sidx, out, dst, didx);
  const std::string t = WidthType(static_cast<unsigned>(DTypeSize(in)));
  return "  ((__global " + t + "*)" + dst + ")[" + didx + "] = ((__global const " + t + "*)" + src + ")[" + sidx +
         "];\n";
}

/// Offsets of up to three operands of a broadcast (cpu_ops' BroadcastStrides): mode 0: all flat;
/// otherwise meta = {rank, shape[rank], s0[rank], s1[rank], s2[rank]}.
std::string BroadcastPrologue(int operands) {
  std::string v[3] = {"i0", "i1", "i2"};
  std::string out = "  ulong i0 = i, i1 = i, i2 = i;\n  if (mode != 0u) {\n    const ulong rank = meta[0];\n"
                    "    ulong rem = i;\n    i0 = 0;\n    i1 = 0;\n    i2 = 0;\n"
                    "    for (ulong d = rank; d > 0; --d) {\n      const ulong dim = meta[d], k = rem % dim;\n"
                    "      rem /= dim;\n";
  for (int o = 0; o < operands; ++o) {
    out += "      " + v[o] + " += k * meta[" + std::to_string(o + 1) + " * rank + d];\n";
  }
  return out + "    }\n  }\n";
}

}  // namespace gen

std::string UnaryFloatFormula(UnaryOp op) {
  switch (op) {
#define MURE_UNARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case UnaryOp::k##Id: return #fexpr;
#include "ir/ops.def"
  }
  return "MURE_NONE";
}
std::string UnaryIntFormula(UnaryOp op) {
  switch (op) {
#define MURE_UNARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case UnaryOp::k##Id: return #iexpr;
#include "ir/ops.def"
  }
  return "MURE_NONE";
}
std::string BinaryFloatFormula(BinaryOp op) {
  switch (op) {
#define MURE_BINARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case BinaryOp::k##Id: return #fexpr;
#include "ir/ops.def"
  }
  return "MURE_NONE";
}
std::string BinaryIntFormula(BinaryOp op) {
  switch (op) {
#define MURE_BINARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case BinaryOp::k##Id: return #iexpr;
#include "ir/ops.def"
  }
  return "MURE_NONE";
}

ReduceFormulas ReduceFormulaText(ReduceOp op) {
  switch (op) {
#define MURE_REDUCE(Id, name, rule, fusible, finit, fstep, iinit, istep) \
  case ReduceOp::k##Id: return {#finit, #fstep, #iinit, #istep};
#include "ir/ops.def"
  }
  return {"MURE_NONE", "MURE_NONE", "MURE_NONE", "MURE_NONE"};
}

std::string UnaryFloatStmt(UnaryOp op, const std::string& f, const std::string& r) {
  const std::string e = UnaryFloatFormula(op);
  if (e == "MURE_NONE") return {};
  return r + " = (" + f + ")(" + e + ");";
}
std::string BinaryFloatStmt(BinaryOp op, const std::string& f, const std::string& r) {
  const std::string e = BinaryFloatFormula(op);
  if (e == "MURE_NONE") return {};
  return r + " = (" + f + ")(" + e + ");";
}

std::string Prelude(bool fp64) {
  std::string p = kPrelude + FloatHelpers("float");
  if (fp64) p = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + p + FloatHelpers("double");
  return p;
}

namespace {
std::string Renamed(const std::string& text, const std::string& name) {
  std::string out = text;
  const std::string ph = kKernelNamePlaceholder;
  for (size_t pos = out.find(ph); pos != std::string::npos; pos = out.find(ph, pos + name.size())) {
    out.replace(pos, ph.size(), name);
  }
  return out;
}
}  // namespace

std::string ProgramSource(const KernelSource& k) { return Prelude(k.fp64) + Renamed(k.text, "mure_k"); }

std::string BatchSource(const std::vector<const KernelSource*>& ks, const std::vector<std::string>& names) {
  bool fp64 = false;
  for (const KernelSource* k : ks) fp64 = fp64 || k->fp64;
  std::string out = Prelude(fp64);
  for (size_t i = 0; i < ks.size(); ++i) out += Renamed(ks[i]->text, names[i]);
  return out;
}

}  // namespace mure::ocl
