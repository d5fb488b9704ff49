// mure — OpenCL kernel generators (exec/opencl_codegen.h): reductions, sort and matmul.
#include <cmath>
#include <cstdio>
#include <string>

#include "exec/opencl_codegen_internal.h"

namespace mure::ocl {

using ir::IsFloat;
using ir::IsSigned;
using ir::ReduceOp;
using namespace gen;

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
  const std::string zero = f == "double" ? "0.0" : "0.0f";
  const ReduceFormulas fm = ReduceFormulaText(op);
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
    if (fm.float_step == "MURE_NONE") return Status::Internal("no kernel for " + k.name);
    init = "  " + f + " acc = (" + f + ")(" + fm.float_init + ");\n";
    step = "      acc = (" + f + ")(" + fm.float_step + ");\n";
    store = "  " + StoreF(out, "out", "o", "acc", f) + "\n";
  } else {
    if (fm.int_step == "MURE_NONE") return Status::Internal("no kernel for " + k.name);
    init = IntConstants(in) + "  ulong acc = (ulong)(" + fm.int_init + ");\n";
    step = "      acc = (ulong)(" + fm.int_step + ");\n";
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
    body = "  " + f + " acc = " + FloatLit(0, f) + ";\n  for (ulong q = 0; q < kk; ++q) acc += " + c +
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

}  // namespace mure::ocl
