#include "exec/opencl_codegen.h"

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
)CL";

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

/// The float unary op on `x` (of type `f`), or empty for an integer-only op.
std::string UnaryFloatExpr(UnaryOp op, const std::string& f) {
  const bool d = f == "double";
  const std::string one = d ? "1.0" : "1.0f", zero = d ? "0.0" : "0.0f";
  switch (op) {
    case UnaryOp::kNegate: return "-x";
    case UnaryOp::kAbs: return "fabs(x)";
    case UnaryOp::kSign: return "(isnan(x) ? x : (" + f + ")((x > " + zero + ") - (x < " + zero + ")))";
    case UnaryOp::kFloor: return "floor(x)";
    case UnaryOp::kCeil: return "ceil(x)";
    case UnaryOp::kRound: return "round(x)";  // half away from zero, like std::round
    case UnaryOp::kExp: return "exp(x)";
    case UnaryOp::kExpm1: return "expm1(x)";
    case UnaryOp::kLog: return "log(x)";
    case UnaryOp::kLog1p: return "log1p(x)";
    case UnaryOp::kSqrt: return "sqrt(x)";
    case UnaryOp::kRsqrt: return "(" + one + " / sqrt(x))";
    case UnaryOp::kCbrt: return "cbrt(x)";
    case UnaryOp::kSin: return "sin(x)";
    case UnaryOp::kCos: return "cos(x)";
    case UnaryOp::kTan: return "tan(x)";
    case UnaryOp::kAsin: return "asin(x)";
    case UnaryOp::kAcos: return "acos(x)";
    case UnaryOp::kAtan: return "atan(x)";
    case UnaryOp::kSinh: return "sinh(x)";
    case UnaryOp::kCosh: return "cosh(x)";
    case UnaryOp::kTanh: return "tanh(x)";
    case UnaryOp::kAsinh: return "asinh(x)";
    case UnaryOp::kAcosh: return "acosh(x)";
    case UnaryOp::kAtanh: return "atanh(x)";
    case UnaryOp::kSigmoid:
      // The reference computes 1 / (1 + exp(-x)) in double; in float, exp(-x) overflows for
      // x < -88 where the answer is still representable, so the negative side uses the
      // equivalent exp(x) / (1 + exp(x)).
      if (d) return "(1.0 / (1.0 + exp(-x)))";
      return "(x >= 0.0f ? 1.0f / (1.0f + exp(-x)) : exp(x) / (1.0f + exp(x)))";
    case UnaryOp::kErf: return "erf(x)";
    case UnaryOp::kErfc: return "erfc(x)";
    case UnaryOp::kIsNan: return "(isnan(x) ? " + one + " : " + zero + ")";
    case UnaryOp::kIsInfinity: return "(isinf(x) ? " + one + " : " + zero + ")";
    case UnaryOp::kLogicalNot: return "(x == " + zero + " ? " + one + " : " + zero + ")";
    default: return {};
  }
}

/// cpu_ops' UnaryInt on the pattern `v` of type `t`.
std::string UnaryIntExpr(UnaryOp op, DType t) {
  const bool s = IsSigned(t);
  const unsigned bits = DTypeBits(t);
  const std::string m = bits == 64 ? "v" : "(v & " + Hex(Mask(bits)) + ")";
  switch (op) {
    case UnaryOp::kNegate: return "(0UL - v)";
    case UnaryOp::kAbs: return s ? "(as_long(v) < 0 ? 0UL - v : v)" : "v";
    case UnaryOp::kSign:
      return s ? "(ulong)(long)((as_long(v) > 0) - (as_long(v) < 0))" : "(ulong)(v != 0UL)";
    case UnaryOp::kFloor: case UnaryOp::kCeil: case UnaryOp::kRound: return "v";
    case UnaryOp::kIsNan: case UnaryOp::kIsInfinity: return "0UL";
    case UnaryOp::kLogicalNot: return "(ulong)(v == 0UL)";
    case UnaryOp::kBitwiseNot: return "~v";
    case UnaryOp::kCountLeadingZeros:
      return "(" + m + " == 0UL ? " + std::to_string(bits) + "UL : clz(" + m + ") - " + std::to_string(64 - bits) +
             "UL)";
    case UnaryOp::kPopulationCount: return "popcount(" + m + ")";
    default: return {};
  }
}

/// The float binary op on `x`, `y` (of type `f`), or empty for an integer-only op.
std::string BinaryFloatExpr(BinaryOp op, const std::string& f) {
  const bool d = f == "double";
  const std::string one = d ? "1.0" : "1.0f", zero = d ? "0.0" : "0.0f";
  auto b = [&](const std::string& cond) { return "((" + cond + ") ? " + one + " : " + zero + ")"; };
  switch (op) {
    case BinaryOp::kAdd: return "x + y";
    case BinaryOp::kSubtract: return "x - y";
    case BinaryOp::kMultiply: return "x * y";
    case BinaryOp::kDivide: return "x / y";
    case BinaryOp::kPow: return "pow(x, y)";
    case BinaryOp::kRemainder: return "fmod(x, y)";
    case BinaryOp::kAtan2: return "atan2(x, y)";
    // std::min(x, y) is (y < x ? y : x), std::max(x, y) is (x < y ? y : x): signed zeros as there.
    case BinaryOp::kMin: return "((isnan(x) || isnan(y)) ? (" + f + ")NAN : (y < x ? y : x))";
    case BinaryOp::kMax: return "((isnan(x) || isnan(y)) ? (" + f + ")NAN : (x < y ? y : x))";
    case BinaryOp::kEqual: return b("x == y");
    case BinaryOp::kNotEqual: return b("x != y");
    case BinaryOp::kLess: return b("x < y");
    case BinaryOp::kLessEqual: return b("x <= y");
    case BinaryOp::kGreater: return b("x > y");
    case BinaryOp::kGreaterEqual: return b("x >= y");
    case BinaryOp::kLogicalAnd: return b("x != " + zero + " && y != " + zero);
    case BinaryOp::kLogicalOr: return b("x != " + zero + " || y != " + zero);
    case BinaryOp::kLogicalXor: return b("(x != " + zero + ") != (y != " + zero + ")");
    default: return {};
  }
}

/// cpu_ops' BinaryInt on the patterns `x`, `y` of the compute type `t`: statements assigning `r`.
std::string BinaryIntStmts(BinaryOp op, DType t) {
  const bool s = IsSigned(t);
  const unsigned bits = DTypeBits(t);
  const std::string nbits = std::to_string(bits) + "UL";
  auto r = [](const std::string& e) { return "  const ulong r = " + e + ";\n"; };
  // Divisors made safe before dividing (0 and -1 are answered by the rules, never divided by).
  const std::string sdiv = "  const long sy = as_long(y);\n  const long dv = (sy == 0 || sy == -1) ? 1 : sy;\n";
  switch (op) {
    case BinaryOp::kAdd: return r("x + y");
    case BinaryOp::kSubtract: return r("x - y");
    case BinaryOp::kMultiply: return r("x * y");
    case BinaryOp::kQuotient:
      if (s) {
        return sdiv + r("y == 0UL ? ~0UL : sy == -1 ? (x == " + Hex(SignedMin(bits)) +
                        " ? 0UL - x : 0UL - x) : as_ulong(as_long(x) / dv)");
      }
      return r("y == 0UL ? ~0UL : x / (y == 0UL ? 1UL : y)");
    case BinaryOp::kRemainder:
      if (s) return sdiv + r("y == 0UL ? x : sy == -1 ? 0UL : as_ulong(as_long(x) % dv)");
      return r("y == 0UL ? x : x % (y == 0UL ? 1UL : y)");
    case BinaryOp::kPow:
      if (s) {
        return r("as_long(y) < 0 ? (as_long(x) == 1 ? 1UL : as_long(x) == -1 ? ((y & 1UL) ? x : 1UL) : 0UL) "
                 ": mure_ipow(x, y)");
      }
      return r("mure_ipow(x, y)");
    case BinaryOp::kMin: return r(Lt(s, "x", "y") + " ? x : y");
    case BinaryOp::kMax: return r(Lt(s, "x", "y") + " ? y : x");
    case BinaryOp::kEqual: return r("(ulong)(x == y)");
    case BinaryOp::kNotEqual: return r("(ulong)(x != y)");
    case BinaryOp::kLess: return r("(ulong)" + Lt(s, "x", "y"));
    case BinaryOp::kLessEqual: return r("(ulong)!" + Lt(s, "y", "x"));
    case BinaryOp::kGreater: return r("(ulong)" + Lt(s, "y", "x"));
    case BinaryOp::kGreaterEqual: return r("(ulong)!" + Lt(s, "x", "y"));
    case BinaryOp::kLogicalAnd: return r("(ulong)(x != 0UL && y != 0UL)");
    case BinaryOp::kLogicalOr: return r("(ulong)(x != 0UL || y != 0UL)");
    case BinaryOp::kLogicalXor: return r("(ulong)((x != 0UL) != (y != 0UL))");
    case BinaryOp::kBitwiseAnd: return r("x & y");
    case BinaryOp::kBitwiseOr: return r("x | y");
    case BinaryOp::kBitwiseXor: return r("x ^ y");
    case BinaryOp::kLeftShift: return r("y >= " + nbits + " ? 0UL : x << y");
    case BinaryOp::kRightShift:
      if (s) return r("as_ulong(as_long(x) >> (y > 63UL ? 63UL : y))");
      return r("y >= " + nbits + " ? 0UL : x >> y");
    default: return {};
  }
}

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
  std::string p = kPrelude;
  if (fp64) p = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + p;
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
    std::string expr = UnaryFloatExpr(op, f);
    if (expr.empty()) return Status::Internal("no float kernel for " + k.name);
    std::string x = IsFloat(out) ? ToCompute(in, "a", "i", out) : LoadNat(in, "a", "i");
    body = "  const " + f + " x = " + x + ";\n  const " + f + " r = " + expr + ";\n  " + StoreF(out, "out", "i", "r", f) +
           "\n";
  } else {
    std::string expr = UnaryIntExpr(op, in);
    if (expr.empty()) return Status::Internal("no integer kernel for " + k.name);
    body = "  const ulong v = " + LoadI(in, "a", "i") + ";\n  const ulong r = " + expr + ";\n  " +
           StoreI(out, "out", "i", "r") + "\n";
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
    std::string expr = BinaryFloatExpr(op, f);
    if (expr.empty()) return Status::Internal("no float kernel for " + k.name);
    body += "  const " + f + " x = " + ToCompute(a, "a", "ia", compute) + ";\n  const " + f + " y = " +
            ToCompute(b, "b", "ib", compute) + ";\n  const " + f + " r = " + expr + ";\n  " +
            StoreF(out, "out", "i", "r", f) + "\n";
  } else {
    if (IsFloat(a) || IsFloat(b)) return Status::Internal("float operands with an integer compute type: " + k.name);
    std::string stmts = BinaryIntStmts(op, compute);
    if (stmts.empty()) return Status::Internal("no integer kernel for " + k.name);
    body += "  const ulong x = " + Normalize(compute, LoadI(a, "a", "ia")) + ";\n  const ulong y = " +
            Normalize(compute, LoadI(b, "b", "ib")) + ";\n" + stmts + "  " + StoreI(out, "out", "i", "r") + "\n";
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

Result<KernelSource> AsTypeKernel(DType in, DType out, bool device_fp64) {
  MURE_RETURN_IF_ERROR(CheckFp64("as_type", {in, out}, device_fp64));
  KernelSource k;
  k.name = "as_type " + DTypeToString(in) + " -> " + DTypeToString(out);
  k.args = "ggl";
  k.fp64 = Uses64({in, out});
  std::string body;
  if (IsFloat(in) || IsFloat(out)) {
    if (!IsFloat(in)) {  // integer -> float: through the exact signed/unsigned value
      const std::string f = FType(out);
      body = "  const " + f + " x = " + ToCompute(in, "a", "i", out == DType::kF64 ? DType::kF64 : DType::kF32) +
             ";\n  " + StoreF(out, "out", "i", "x", f) + "\n";
    } else {
      const std::string f = in == DType::kF64 || out == DType::kF64 ? "double" : "float";
      std::string x = LoadNat(in, "a", "i");
      if (f == "double" && in != DType::kF64) x = "(double)" + x;
      body = "  const " + f + " x = " + x + ";\n  " + StoreF(out, "out", "i", "x", f) + "\n";
    }
  } else {
    body = "  const ulong v = " + LoadI(in, "a", "i") + ";\n  " + StoreI(out, "out", "i", "v") + "\n";
  }
  k.text = Head(In(in, "a") + ", " + Out(out) + ", const ulong n") + kFlatIndex + body + "}\n";
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
