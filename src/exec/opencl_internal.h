// mure — what the files of OpenClOps (exec/opencl_ops*.cpp) share and nothing else needs: the
// cache entry of a compiled kernel and a few host-side helpers. Internal to src/exec.
//
//   opencl_ops.cpp              set-up, kernel requests, the kernel cache (build, prebuild), buffers
//                               and launches, device scratch, index checks, strided copies
//   opencl_ops_elementwise.cpp  unary, binary, as_type, bitcast, select, clip, iota, eye, fill, random
//   opencl_ops_shape.cpp        transpose, slice, take, broadcast_to, reverse, pad, concatenate,
//                               put_slice, gather
//   opencl_ops_reduce.cpp       reductions, sort, dot, outer
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "exec/cpu_elements.h"
#include "exec/opencl_ops.h"

namespace mure::ocl {

struct OpenClOps::Entry {
  std::string name;
  std::string args;
  std::shared_ptr<ClProgram> program;
  ClKernel kernel;
  size_t local = 1;
  bool launched = false;
};

namespace detail {

// The host-side element and stride helpers are the CPU executor's (exec/cpu_elements.h).
using cpu::detail::BroadcastStrides;
using cpu::detail::LoadI;
using cpu::detail::RowMajorStrides;

/// A request's scalar as the bytes of one element of type t (cpu_ops' StoreScalar).
inline uint64_t ScalarPattern(DType t, const ir::Scalar& v) {
  uint8_t buf[16] = {};  // room for any type's element (complex never reaches the device)
  if (v.integer && !ir::IsFloat(t)) cpu::detail::StoreI(t, buf, 0, static_cast<uint64_t>(v.i));
  else cpu::detail::StoreF(t, buf, 0, v.AsDouble());
  uint64_t bits = 0;
  std::memcpy(&bits, buf, 8);
  return bits;
}

/// How an index check spreads `count` indices over work-items: `groups` chunks of `chunk`.
struct CheckChunks {
  uint64_t chunk = 1;
  uint64_t groups = 0;
};
inline CheckChunks ChunksFor(uint64_t count) {
  const uint64_t groups0 = std::min<uint64_t>(count, uint64_t{1} << 30);
  const uint64_t chunk = (count + groups0 - 1) / groups0;
  return {chunk, (count + chunk - 1) / chunk};
}

}  // namespace detail
}  // namespace mure::ocl
