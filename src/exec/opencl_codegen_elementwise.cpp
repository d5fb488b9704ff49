// mure — OpenCL kernel generators (exec/opencl_codegen.h): elementwise and creation ops.
#include <cmath>
#include <cstdio>
#include <string>

#include "exec/opencl_codegen_internal.h"

namespace mure::ocl {

using ir::BinaryOp;
using ir::IsFloat;
using ir::IsSigned;
using ir::UnaryOp;
using namespace gen;

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

namespace {

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
           FloatLit(std::ldexp(1.0, -static_cast<int>(mb)), f) + ";\n"
           "  " + f + " v = " + RoundExpr(out, "lo + (hi - lo) * u", f) + ";\n"
           "  if (v >= hi && hi > lo) v = lo;\n  " + StoreF(out, "out", "i", "v", f) + "\n";
  } else {
    body = "  const " + f + " mean = " + param("p1") + ", sd = " + param("p2") + ";\n"
           "  const " + f + " u1 = ((" + f + ")(mure_random_bits(seed, 2 * i) >> 11) + " + FloatLit(1, f) + ") * " +
           FloatLit(0x1.0p-53, f) + ";\n"
           "  const " + f + " u2 = (" + f + ")(mure_random_bits(seed, 2 * i + 1) >> 11) * " + FloatLit(0x1.0p-53, f) + ";\n"
           "  const " + f + " z = sqrt(" + FloatLit(-2, f) + " * log(u1)) * cos(" + FloatLit(6.283185307179586, f) + " * u2);\n"
           "  const " + f + " r = mean + sd * z;\n  " + StoreF(out, "out", "i", "r", f) + "\n";
  }
  k.text = std::string(kRandomHelpers) +
           Head(Out(out) + ", const ulong n, const ulong seed, const ulong p1, const ulong p2") + kFlatIndex + body +
           "}\n";
  return k;
}

}  // namespace mure::ocl
