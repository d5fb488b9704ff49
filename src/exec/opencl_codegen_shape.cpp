// mure — OpenCL kernel generators (exec/opencl_codegen.h): strided copies, gathers and takes.
#include <cmath>
#include <cstdio>
#include <string>

#include "exec/opencl_codegen_internal.h"

namespace mure::ocl {

using ir::IsFloat;
using namespace gen;

namespace {
/// An index check's work-item g: its chunk [start, end) of `count` entries (see
/// OpenClOps::RunCheck: a bad entry makes it atomic_min `bad` with g).
constexpr const char* kCheckChunk =
    "  const ulong g = get_global_id(0), start = g * chunk;\n  if (start >= count) return;\n"
    "  const ulong end = min(start + chunk, count);\n";
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
           kCheckChunk +
           "  for (ulong j = start; j < end; ++j) {\n"
           "    const ulong x = " + LoadI(index, "idx", "j") + ";\n"
           "    if (x >= dim) {\n      atomic_min(bad, (uint)g);\n      return;\n    }\n  }\n}\n";
  return k;
}

Result<KernelSource> GatherCheckKernel(DType index) {
  if (IsFloat(index)) return Status::Internal("gather with float indices");
  KernelSource k;
  k.name = "gather coordinate check, indices " + DTypeToString(index);
  k.args = "gllclg";
  k.text = Head(In(index, "idx") + ", const ulong count, const ulong rank, __constant ulong* restrict meta, "
                "const ulong chunk, __global uint* restrict bad") +
           kCheckChunk +
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

}  // namespace mure::ocl
