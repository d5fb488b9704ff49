#include "exec/opencl_codegen.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>

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

Status NoFp64(std::string_view what, DType t) {
  return Status(ErrorKind::kUnsupported, std::string(what) + " on " + DTypeToString(t) +
                                             " needs double precision, and the OpenCL device has none (no "
                                             "cl_khr_fp64)");
}

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

}  // namespace

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

namespace {

std::string Head(const std::string& params) {
  return std::string("__kernel void ") + kKernelNamePlaceholder + "(" + params + ") {\n";
}

std::string In(DType t, const char* name) {
  return std::string("__global const ") + InType(t) + "* restrict " + name;
}
std::string Out(DType t) { return std::string("__global ") + OutType(t) + "* restrict out"; }

const char* kFlatIndex = "  const ulong i = get_global_id(0);\n  if (i >= n) return;\n";

bool Uses64(std::initializer_list<DType> types) {
  for (DType t : types) if (t == DType::kF64) return true;
  return false;
}

}  // namespace

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

Result<KernelSource> UnaryKernel(UnaryOp op, DType in, DType out, bool device_fp64) {
  const std::string what(ir::Name(op));
  MURE_RETURN_IF_ERROR(CheckFp64(what, {in, out}, device_fp64));
  KernelSource k;
  k.name = "unary " + what + " " + DTypeToString(in) + " -> " + DTypeToString(out);
  k.args = "ggl";
  k.fp64 = Uses64({in, out});
  std::string body;
  if (IsFloat(in) || IsFloat(out)) {
    // Float ops (integers converted to the float result type first).
    const DType ct = IsFloat(out) ? out : in;
    const std::string f = FType(ct);
    std::string stmt = UnaryFloatStmt(op, f, "const " + f + " r");
    if (stmt.empty()) return Status::Internal("no float kernel for " + k.name);
    std::string x = IsFloat(out) ? ToCompute(in, "a", "i", out) : LoadNat(in, "a", "i");
    body = "  const " + f + " x = " + x + ";\n  " + stmt + "\n  " + StoreF(out, "out", "i", "r", f) + "\n";
  } else {
    std::string expr = UnaryIntFormula(op);
    if (expr == "MURE_NONE") return Status::Internal("no integer kernel for " + k.name);
    body = IntConstants(in) + "  const ulong v = " + LoadI(in, "a", "i") + ";\n  const ulong r = (ulong)(" + expr +
           ");\n  " + StoreI(out, "out", "i", "r") + "\n";
  }
  k.text = Head(In(in, "a") + ", " + Out(out) + ", const ulong n") + kFlatIndex + body + "}\n";
  return k;
}

Result<KernelSource> BinaryKernel(BinaryOp op, DType a, DType b, DType compute, DType out, bool device_fp64) {
  const std::string what(ir::Name(op));
  MURE_RETURN_IF_ERROR(CheckFp64(what, {a, b, compute, out}, device_fp64));
  KernelSource k;
  k.name = "binary " + what + " " + DTypeToString(a) + " " + DTypeToString(b) + " (compute " +
           DTypeToString(compute) + ") -> " + DTypeToString(out);
  k.args = "ggglcu";
  k.fp64 = Uses64({a, b, compute, out});
  std::string body =
      "  ulong ia = i, ib = i;\n"
      "  if (mode == 1u) {\n    ib = 0;\n  } else if (mode == 2u) {\n    ia = 0;\n  } else if (mode == 3u) {\n"
      "    const ulong rank = meta[0];\n    ulong rem = i;\n    ia = 0;\n    ib = 0;\n"
      "    for (ulong d = rank; d > 0; --d) {\n      const ulong dim = meta[d], k = rem % dim;\n"
      "      rem /= dim;\n      ia += k * meta[rank + d];\n      ib += k * meta[2 * rank + d];\n    }\n  }\n";
  if (IsFloat(compute)) {
    const std::string f = FType(compute);
    std::string stmt = BinaryFloatStmt(op, f, "const " + f + " r");
    if (stmt.empty()) return Status::Internal("no float kernel for " + k.name);
    body += "  const " + f + " x = " + ToCompute(a, "a", "ia", compute) + ";\n  const " + f + " y = " +
            ToCompute(b, "b", "ib", compute) + ";\n  " + stmt + "\n  " + StoreF(out, "out", "i", "r", f) + "\n";
  } else {
    if (IsFloat(a) || IsFloat(b)) return Status::Internal("float operands with an integer compute type: " + k.name);
    std::string expr = BinaryIntFormula(op);
    if (expr == "MURE_NONE") return Status::Internal("no integer kernel for " + k.name);
    body += IntConstants(compute) + "  const ulong x = " + Normalize(compute, LoadI(a, "a", "ia")) +
            ";\n  const ulong y = " + Normalize(compute, LoadI(b, "b", "ib")) + ";\n  const ulong r = (ulong)(" +
            expr + ");\n  " + StoreI(out, "out", "i", "r") + "\n";
  }
  k.text = Head(In(a, "a") + ", " + In(b, "b") + ", " + Out(out) +
                ", const ulong n, __constant ulong* restrict meta, const uint mode") +
           kFlatIndex + body + "}\n";
  return k;
}

Result<KernelSource> ReduceKernel(ReduceOp op, DType in, DType out, bool device_fp64) {
  const std::string what(ir::Name(op));
  MURE_RETURN_IF_ERROR(CheckFp64(what, {in, out}, device_fp64));
  KernelSource k;
  k.name = "reduce " + what + " " + DTypeToString(in) + " -> " + DTypeToString(out);
  k.args = "gglc";
  const bool arg = op == ReduceOp::kArgmax || op == ReduceOp::kArgmin;
  const bool fl = IsFloat(in);
  // Accumulator: the reference accumulates floats in double; so do we where the device can.
  std::string f = fl ? (arg ? FType(in) : (device_fp64 || in == DType::kF64) ? "double" : "float") : "ulong";
  k.fp64 = Uses64({in, out}) || f == "double";
  const bool s = IsSigned(in);
  const std::string zero = f == "double" ? "0.0" : "0.0f", one = f == "double" ? "1.0" : "1.0f";
  std::string init, step, store;
  const std::string load = fl ? (f == "double" && in != DType::kF64 ? "(double)" : "") + LoadNat(in, "a", "p")
                              : LoadI(in, "a", "p");
  if (arg) {
    const bool mx = op == ReduceOp::kArgmax;
    init = "  " + f + " best = " + (fl ? zero : "0UL") + ";\n  ulong bi = 0;\n";
    std::string better = fl ? "(!isnan(best) && (isnan(v) || v " + std::string(mx ? ">" : "<") + " best))"
                            : (mx ? Lt(s, "best", "v") : Lt(s, "v", "best"));
    step = "      if (r == 0 || " + better + ") {\n        best = v;\n        bi = r;\n      }\n";
    store = "  " + StoreI(out, "out", "o", "bi") + "\n";
  } else if (fl) {
    std::string a0 = op == ReduceOp::kProduct || op == ReduceOp::kAll ? one
                     : op == ReduceOp::kReduceMax ? "(" + f + ")(-INFINITY)"
                     : op == ReduceOp::kReduceMin ? "(" + f + ")INFINITY" : zero;
    init = "  " + f + " acc = " + a0 + ";\n";
    switch (op) {
      case ReduceOp::kSum: step = "acc += v;"; break;
      case ReduceOp::kProduct: step = "acc *= v;"; break;
      case ReduceOp::kReduceMax: step = "acc = (isnan(acc) || isnan(v)) ? (" + f + ")NAN : (acc < v ? v : acc);"; break;
      case ReduceOp::kReduceMin: step = "acc = (isnan(acc) || isnan(v)) ? (" + f + ")NAN : (v < acc ? v : acc);"; break;
      case ReduceOp::kAll: step = "acc = (acc != " + zero + " && v != " + zero + ") ? " + one + " : " + zero + ";"; break;
      case ReduceOp::kAny: step = "acc = (acc != " + zero + " || v != " + zero + ") ? " + one + " : " + zero + ";"; break;
      default: return Status::Internal("no kernel for " + k.name);
    }
    step = "      " + step + "\n";
    store = "  " + StoreF(out, "out", "o", "acc", f) + "\n";
  } else {
    const unsigned bits = DTypeBits(in);
    const uint64_t umax = Mask(bits), smax = umax >> 1, smin = SignedMin(bits);
    uint64_t a0 = op == ReduceOp::kProduct || op == ReduceOp::kAll ? 1
                  : op == ReduceOp::kReduceMax ? (s ? smin : 0)
                  : op == ReduceOp::kReduceMin ? (s ? smax : umax) : 0;
    init = "  ulong acc = " + Hex(a0) + ";\n";
    switch (op) {
      case ReduceOp::kSum: step = "acc += v;"; break;
      case ReduceOp::kProduct: step = "acc *= v;"; break;
      case ReduceOp::kReduceMax: step = "if (" + Lt(s, "acc", "v") + ") acc = v;"; break;
      case ReduceOp::kReduceMin: step = "if (" + Lt(s, "v", "acc") + ") acc = v;"; break;
      case ReduceOp::kAll: step = "acc = (ulong)(acc != 0UL && v != 0UL);"; break;
      case ReduceOp::kAny: step = "acc = (ulong)(acc != 0UL || v != 0UL);"; break;
      default: return Status::Internal("no kernel for " + k.name);
    }
    step = "      " + step + "\n";
    store = "  " + StoreI(out, "out", "o", "acc") + "\n";
  }
  std::string body =
      "  const ulong o = get_global_id(0);\n  if (o >= n) return;\n"
      "  const ulong nk = meta[0];\n  ulong rem = o, off = 0;\n"
      "  for (ulong d = nk; d > 0; --d) {\n    const ulong dim = meta[d];\n    off += (rem % dim) * meta[nk + d];\n"
      "    rem /= dim;\n  }\n"
      "  __constant ulong* rm = meta + 1 + 2 * nk;\n"
      "  const ulong nr = rm[0], inner = rm[nr], istride = rm[2 * nr], outer = rm[2 * nr + 1];\n"
      "  ulong ridx[16];\n  for (int d = 0; d < 16; ++d) ridx[d] = 0;\n  ulong r = 0;\n" +
      init +
      "  for (ulong t = 0; t < outer; ++t) {\n"
      "    for (ulong q = 0; q < inner; ++q, ++r) {\n"
      "      const ulong p = off + q * istride;\n"
      "      const " + f + " v = " + load + ";\n" + step +
      "    }\n"
      "    for (ulong j = nr - 1; j-- > 0;) {\n"
      "      ridx[j] += 1;\n      off += rm[1 + nr + j];\n      if (ridx[j] < rm[1 + j]) break;\n"
      "      off -= rm[1 + nr + j] * rm[1 + j];\n      ridx[j] = 0;\n    }\n  }\n" +
      store;
  k.text = Head(In(in, "a") + ", " + Out(out) + ", const ulong n, __constant ulong* restrict meta") + body + "}\n";
  return k;
}

namespace {

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

}  // namespace

Result<KernelSource> AsTypeKernel(DType in, DType out, bool device_fp64) {
  MURE_RETURN_IF_ERROR(CheckFp64("as_type", {in, out}, device_fp64));
  KernelSource k;
  k.name = "as_type " + DTypeToString(in) + " -> " + DTypeToString(out);
  k.args = "ggl";
  k.fp64 = Uses64({in, out});
  k.text = Head(In(in, "a") + ", " + Out(out) + ", const ulong n") + kFlatIndex +
           ConvertStmts(in, "a", "i", out, "out", "i") + "}\n";
  return k;
}

namespace {

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

/// `e` (of OpenCL type `f`) rounded to the float type `t` (cpu_ops' RoundTo), still of type `f`.
std::string RoundExpr(DType t, const std::string& e, const std::string& f) {
  const std::string back = f == "double" ? "(double)" : "";
  switch (t) {
    case DType::kF64: return e;
    case DType::kF32: return f == "double" ? "(double)(float)(" + e + ")" : "(" + e + ")";
    case DType::kF16: return back + "mure_rf16((float)(" + e + "))";
    default: return back + "mure_rbf16((float)(" + e + "))";
  }
}

std::string FLit(double v, const std::string& f) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f == "double" ? "%a" : "%af", f == "double" ? v : static_cast<double>(static_cast<float>(v)));
  return std::string("(") + buf + ")";
}

const char* kRandomHelpers = R"CL(#ifndef MURE_RANDOM_HELPERS
#define MURE_RANDOM_HELPERS
ulong mure_splitmix(ulong x) {
  x += 0x9e3779b97f4a7c15UL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9UL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebUL;
  return x ^ (x >> 31);
}
ulong mure_random_bits(ulong seed, ulong counter) { return mure_splitmix(seed ^ mure_splitmix(counter)); }
#endif
)CL";

unsigned MantissaBits(DType t) {
  switch (t) {
    case DType::kF64: return 53;
    case DType::kF32: return 24;
    case DType::kF16: return 11;
    default: return 8;
  }
}

}  // namespace

Result<KernelSource> CopyKernel(DType in, DType out, bool device_fp64) {
  if (in != out) MURE_RETURN_IF_ERROR(CheckFp64("conversion", {in, out}, device_fp64));
  KernelSource k;
  k.args = "gglcll";
  std::string params;
  if (in == out) {
    const std::string t = WidthType(static_cast<unsigned>(DTypeSize(in)));
    k.name = "strided copy of " + std::to_string(DTypeSize(in)) + "-byte elements";
    params = "__global const " + t + "* restrict a, __global " + t + "* restrict out";
  } else {
    k.name = "strided copy " + DTypeToString(in) + " -> " + DTypeToString(out);
    k.fp64 = Uses64({in, out});
    params = In(in, "a") + ", " + Out(out);
  }
  std::string body = in == out ? "  out[io] = a[ia];\n" : ConvertStmts(in, "a", "ia", out, "out", "io");
  k.text = Head(params + ", const ulong n, __constant ulong* restrict meta, const ulong ibase, const ulong obase") +
           kFlatIndex +
           "  const ulong rank = meta[0];\n  ulong rem = i, ia = ibase, io = obase;\n"
           "  for (ulong d = rank; d > 0; --d) {\n    const ulong dim = meta[d], k = rem % dim;\n    rem /= dim;\n"
           "    ia += k * meta[rank + d];\n    io += k * meta[2 * rank + d];\n  }\n" +
           body + "}\n";
  return k;
}

Result<KernelSource> IotaKernel(DType out, bool device_fp64) {
  MURE_RETURN_IF_ERROR(CheckFp64("iota", {out}, device_fp64));
  KernelSource k;
  k.name = "iota " + DTypeToString(out);
  k.args = "glll";
  k.fp64 = Uses64({out});
  std::string store;
  if (out == DType::kF64) store = StoreF(out, "out", "i", "(double)v", "double");
  else if (IsFloat(out)) store = StoreF(out, "out", "i", "mure_u2f(v)", "float");
  else store = StoreI(out, "out", "i", "v");
  k.text = Head(Out(out) + ", const ulong n, const ulong inner, const ulong dim") + kFlatIndex +
           "  const ulong v = (i / inner) % dim;\n  " + store + "\n}\n";
  return k;
}

KernelSource EyeKernel(unsigned width) {
  KernelSource k;
  k.name = "eye " + std::to_string(width) + "-byte elements";
  k.args = "glllll";
  const std::string t = WidthType(width);
  k.text = Head("__global " + t + "* restrict out, const ulong n, const ulong rows, const ulong cols, const ulong one, "
                "const ulong zero") +
           kFlatIndex + "  out[i] = (" + t + ")(((i / cols) % rows == i % cols) ? one : zero);\n}\n";
  return k;
}

Result<KernelSource> RandomKernel(DType out, bool normal, bool device_fp64) {
  const char* what = normal ? "random_normal" : "random_uniform";
  MURE_RETURN_IF_ERROR(CheckFp64(what, {out}, device_fp64));
  if (!IsFloat(out)) return Status::Internal(std::string(what) + " makes floats");
  KernelSource k;
  k.name = std::string(what) + " " + DTypeToString(out);
  k.args = "gllll";
  // The reference computes in double; so do we where the device can (then bit-identical).
  const std::string f = device_fp64 ? "double" : "float";
  k.fp64 = device_fp64;
  auto param = [&](const char* p) { return f == "double" ? std::string("as_double(") + p + ")" : std::string("as_float((uint)") + p + ")"; };
  std::string body;
  if (!normal) {
    const unsigned mb = MantissaBits(out);
    body = "  const " + f + " lo = " + param("p1") + ", hi = " + param("p2") + ";\n"
           "  const " + f + " u = (" + f + ")(mure_random_bits(seed, i) >> " + std::to_string(64 - mb) + ") * " +
           FLit(std::ldexp(1.0, -static_cast<int>(mb)), f) + ";\n"
           "  " + f + " v = " + RoundExpr(out, "lo + (hi - lo) * u", f) + ";\n"
           "  if (v >= hi && hi > lo) v = lo;\n  " + StoreF(out, "out", "i", "v", f) + "\n";
  } else {
    body = "  const " + f + " mean = " + param("p1") + ", sd = " + param("p2") + ";\n"
           "  const " + f + " u1 = ((" + f + ")(mure_random_bits(seed, 2 * i) >> 11) + " + FLit(1, f) + ") * " +
           FLit(0x1.0p-53, f) + ";\n"
           "  const " + f + " u2 = (" + f + ")(mure_random_bits(seed, 2 * i + 1) >> 11) * " + FLit(0x1.0p-53, f) + ";\n"
           "  const " + f + " z = sqrt(" + FLit(-2, f) + " * log(u1)) * cos(" + FLit(6.283185307179586, f) + " * u2);\n"
           "  const " + f + " r = mean + sd * z;\n  " + StoreF(out, "out", "i", "r", f) + "\n";
  }
  k.text = std::string(kRandomHelpers) +
           Head(Out(out) + ", const ulong n, const ulong seed, const ulong p1, const ulong p2") + kFlatIndex + body +
           "}\n";
  return k;
}

Result<KernelSource> SelectKernel(DType pred, DType a, DType b, DType out, bool device_fp64) {
  MURE_RETURN_IF_ERROR(CheckFp64("select", {pred, a, b, out}, device_fp64));
  KernelSource k;
  k.name = "select " + DTypeToString(pred) + " ? " + DTypeToString(a) + " : " + DTypeToString(b) + " -> " +
           DTypeToString(out);
  k.args = "gggglcu";
  k.fp64 = Uses64({pred, a, b, out});
  std::string cond = IsFloat(pred) ? LoadNat(pred, "p", "i0") + " != " + (pred == DType::kF64 ? "0.0" : "0.0f")
                                   : LoadI(pred, "p", "i0") + " != 0UL";
  k.text = Head(In(pred, "p") + ", " + In(a, "a") + ", " + In(b, "b") + ", " + Out(out) +
                ", const ulong n, __constant ulong* restrict meta, const uint mode") +
           kFlatIndex + BroadcastPrologue(3) + "  if (" + cond + ") {\n" + ConvertOrCopy(a, "a", "i1", out, "out", "i") +
           "  } else {\n" + ConvertOrCopy(b, "b", "i2", out, "out", "i") + "  }\n}\n";
  return k;
}

Result<KernelSource> ClipKernel(DType x, DType lo, DType hi, DType compute, DType out, bool device_fp64) {
  MURE_RETURN_IF_ERROR(CheckFp64("clip", {x, lo, hi, compute, out}, device_fp64));
  KernelSource k;
  k.name = "clip " + DTypeToString(x) + " " + DTypeToString(lo) + " " + DTypeToString(hi) + " (compute " +
           DTypeToString(compute) + ") -> " + DTypeToString(out);
  k.args = "gggglcu";
  k.fp64 = Uses64({x, lo, hi, compute, out});
  std::string body;
  if (IsFloat(compute)) {
    const std::string f = FType(compute);
    body = "  const " + f + " v = " + ToCompute(x, "x", "i0", compute) + ";\n  const " + f + " l = " +
           ToCompute(lo, "lo", "i1", compute) + ";\n  const " + f + " h = " + ToCompute(hi, "hi", "i2", compute) +
           ";\n  const " + f + " m = v < l ? l : v;\n  const " + f + " r = isnan(v) ? v : (h < m ? h : m);\n  " +
           StoreF(out, "out", "i", "r", f) + "\n";
  } else {
    if (IsFloat(x) || IsFloat(lo) || IsFloat(hi)) return Status::Internal("float operands with an integer compute type: " + k.name);
    const bool s = IsSigned(compute);
    body = "  ulong v = " + Normalize(compute, LoadI(x, "x", "i0")) + ";\n  const ulong l = " +
           Normalize(compute, LoadI(lo, "lo", "i1")) + ";\n  const ulong h = " + Normalize(compute, LoadI(hi, "hi", "i2")) +
           ";\n  if " + Lt(s, "v", "l") + " v = l;\n  if " + Lt(s, "h", "v") + " v = h;\n  " +
           StoreI(out, "out", "i", "v") + "\n";
  }
  k.text = Head(In(x, "x") + ", " + In(lo, "lo") + ", " + In(hi, "hi") + ", " + Out(out) +
                ", const ulong n, __constant ulong* restrict meta, const uint mode") +
           kFlatIndex + BroadcastPrologue(3) + body + "}\n";
  return k;
}

Result<KernelSource> GatherCheckKernel(DType index) {
  if (IsFloat(index)) return Status::Internal("gather with float indices");
  KernelSource k;
  k.name = "gather coordinate check, indices " + DTypeToString(index);
  k.args = "gllclg";
  k.text = Head(In(index, "idx") + ", const ulong count, const ulong rank, __constant ulong* restrict meta, "
                "const ulong chunk, __global uint* restrict bad") +
           "  const ulong g = get_global_id(0), start = g * chunk;\n  if (start >= count) return;\n"
           "  const ulong end = min(start + chunk, count);\n"
           "  for (ulong e = start; e < end; ++e) {\n    for (ulong d = 0; d < rank; ++d) {\n"
           "      const ulong x = " + LoadI(index, "idx", "e * rank + d") + ";\n"
           "      if (x >= meta[d]) {\n        atomic_min(bad, (uint)g);\n        return;\n      }\n    }\n  }\n}\n";
  return k;
}

Result<KernelSource> GatherCopyKernel(unsigned width, DType index) {
  if (IsFloat(index)) return Status::Internal("gather with float indices");
  KernelSource k;
  k.name = "gather " + std::to_string(width) + "-byte elements, indices " + DTypeToString(index);
  k.args = "gggllc";
  const std::string t = WidthType(width);
  k.text = Head("__global const " + t + "* restrict a, " + In(index, "idx") + ", __global " + t +
                "* restrict out, const ulong n, const ulong rank, __constant ulong* restrict meta") +
           kFlatIndex +
           "  ulong off = 0;\n  for (ulong d = 0; d < rank; ++d) {\n"
           "    const ulong x = " + LoadI(index, "idx", "i * rank + d") + ";\n"
           "    if (x >= meta[d]) return;  /* checked before: never taken */\n    off += x * meta[rank + d];\n  }\n"
           "  out[i] = a[off];\n}\n";
  return k;
}

Result<KernelSource> SortKernel(DType t, bool descending, bool arg, bool device_fp64) {
  const char* what = arg ? "argsort" : "sort";
  MURE_RETURN_IF_ERROR(CheckFp64(what, {t}, device_fp64));
  KernelSource k;
  k.name = std::string(what) + (descending ? " descending " : " ") + DTypeToString(t);
  k.args = "gglllg";
  k.fp64 = Uses64({t});
  const DType out = arg ? DType::kS64 : t;
  std::string before;
  if (IsFloat(t)) {
    const std::string f = FType(t);
    before = "          const " + f + " x = " + LoadNat(t, "a", "AT(jq)") + ", y = " + LoadNat(t, "a", "AT(jp)") +
             ";\n          const int xn = isnan(x), yn = isnan(y);\n          right = " +
             (descending ? "xn ? !yn : (!yn && x > y)" : "!xn && (yn || x < y)") + ";\n";
  } else {
    const bool s = IsSigned(t);
    before = "          const ulong x = " + LoadI(t, "a", "AT(jq)") + ", y = " + LoadI(t, "a", "AT(jp)") +
             ";\n          right = " + (descending ? Lt(s, "y", "x") : Lt(s, "x", "y")) + ";\n";
  }
  std::string emit = arg ? "    " + StoreI(out, "out", "AT(j)", "ord[j]") + "\n"
                         : ConvertOrCopy(t, "a", "AT(ord[j])", t, "out", "AT(j)");
  // One work-item per row: a bottom-up stable merge sort of the row's indices in `scratch`
  // (2 * n ulongs per row). "right" = the right run's head sorts strictly before the left's.
  k.text = Head(In(t, "a") + ", " + Out(out) +
                ", const ulong rows, const ulong n, const ulong inner, __global ulong* restrict scratch") +
           "  const ulong row = get_global_id(0);\n  if (row >= rows) return;\n"
           "  const ulong o = row / inner, ii = row % inner;\n"
           "#define AT(j) ((o * n + (j)) * inner + ii)\n"
           "  __global ulong* ord = scratch + row * 2 * n;\n  __global ulong* tmp = ord + n;\n"
           "  for (ulong j = 0; j < n; ++j) ord[j] = j;\n"
           "  for (ulong w = 1; w < n; w *= 2) {\n"
           "    for (ulong lo = 0; lo < n; lo += 2 * w) {\n"
           "      const ulong mid = min(lo + w, n), hi = min(lo + 2 * w, n);\n"
           "      ulong p = lo, q = mid;\n"
           "      for (ulong m = lo; m < hi; ++m) {\n"
           "        int right = p >= mid;\n"
           "        if (!right && q < hi) {\n"
           "          const ulong jq = ord[q], jp = ord[p];\n" + before +
           "        }\n"
           "        tmp[m] = right ? ord[q++] : ord[p++];\n"
           "      }\n    }\n"
           "    __global ulong* sw = ord;\n    ord = tmp;\n    tmp = sw;\n  }\n"
           "  for (ulong j = 0; j < n; ++j) {\n" + emit + "  }\n#undef AT\n}\n";
  return k;
}

Result<KernelSource> MatmulKernel(DType compute, bool device_fp64) {
  MURE_RETURN_IF_ERROR(CheckFp64("dot", {compute}, device_fp64));
  KernelSource k;
  k.name = "batched matmul " + DTypeToString(compute);
  k.args = "gggllll";
  std::string body;
  if (IsFloat(compute)) {
    // The reference's plain loops accumulate in double; so do we where the device can.
    const std::string f = device_fp64 || compute == DType::kF64 ? "double" : "float";
    k.fp64 = f == "double";
    const std::string c = f == "double" && compute != DType::kF64 ? "(double)" : "";
    body = "  " + f + " acc = " + FLit(0, f) + ";\n  for (ulong q = 0; q < kk; ++q) acc += " + c +
           LoadNat(compute, "A", "ab + q") + " * " + c + LoadNat(compute, "B", "bb + q * nn") + ";\n  " +
           StoreF(compute, "out", "i", "acc", f) + "\n";
  } else {
    body = "  ulong acc = 0;\n  for (ulong q = 0; q < kk; ++q) acc += " + LoadI(compute, "A", "ab + q") + " * " +
           LoadI(compute, "B", "bb + q * nn") + ";\n  " + StoreI(compute, "out", "i", "acc") + "\n";
  }
  k.text = Head(In(compute, "A") + ", " + In(compute, "B") + ", " + Out(compute) +
                ", const ulong n, const ulong mm, const ulong nn, const ulong kk") +
           kFlatIndex +
           "  const ulong j = i % nn, r = (i / nn) % mm, bt = i / (mm * nn);\n"
           "  const ulong ab = (bt * mm + r) * kk, bb = bt * kk * nn + j;\n" + body + "}\n";
  return k;
}

KernelSource GatherKernel(unsigned width) {
  KernelSource k;
  k.name = "gather " + std::to_string(width) + "-byte elements";
  k.args = "gglcl";
  const std::string t = WidthType(width);
  k.text = Head("__global const " + t + "* restrict a, __global " + t +
                "* restrict out, const ulong n, __constant ulong* restrict meta, const ulong base") +
           kFlatIndex +
           "  const ulong rank = meta[0];\n  ulong rem = i, off = base;\n"
           "  for (ulong d = rank; d > 0; --d) {\n    const ulong dim = meta[d];\n"
           "    off += (rem % dim) * meta[rank + d];\n    rem /= dim;\n  }\n"
           "  out[i] = a[off];\n}\n";
  return k;
}

Result<KernelSource> TakeKernel(unsigned width, DType index) {
  if (IsFloat(index)) return Status::Internal("take with float indices");
  KernelSource k;
  k.name = "take " + std::to_string(width) + "-byte elements, indices " + DTypeToString(index);
  k.args = "gggllll";
  const std::string t = WidthType(width);
  k.text = Head("__global const " + t + "* restrict a, " + In(index, "idx") + ", __global " + t +
                "* restrict out, const ulong n, const ulong count, const ulong dim, const ulong post") +
           kFlatIndex +
           "  const ulong q = i % post, tj = i / post, j = tj % count, p = tj / count;\n"
           "  const ulong x = " + LoadI(index, "idx", "j") + ";\n"
           "  if (x >= dim) return;  /* checked before: never taken */\n"
           "  out[i] = a[(p * dim + x) * post + q];\n}\n";
  return k;
}

Result<KernelSource> TakeCheckKernel(DType index) {
  if (IsFloat(index)) return Status::Internal("take with float indices");
  KernelSource k;
  k.name = "take index check, indices " + DTypeToString(index);
  k.args = "glllg";
  // A negative index is a pattern >= 2^63, so `x >= dim` catches it too.
  k.text = Head(In(index, "idx") +
                ", const ulong count, const ulong dim, const ulong chunk, __global uint* restrict bad") +
           "  const ulong g = get_global_id(0), start = g * chunk;\n  if (start >= count) return;\n"
           "  const ulong end = min(start + chunk, count);\n"
           "  for (ulong j = start; j < end; ++j) {\n"
           "    const ulong x = " + LoadI(index, "idx", "j") + ";\n"
           "    if (x >= dim) {\n      atomic_min(bad, (uint)g);\n      return;\n    }\n  }\n}\n";
  return k;
}

}  // namespace mure::ocl
