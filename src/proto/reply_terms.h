// mure — the values of the node's replies that are more than a number or an atom: a tensor's
// type, shape and handle; hello, devices and stats maps (docs/protocol.md lists their keys).
//
// The caller gathers what the maps say into the plain structs below; these functions only encode,
// so the terms are written in one place and read without knowing where the numbers come from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mure/types.h"
#include "proto/term.h"

namespace mure::proto {

/// {class, bits}, e.g. {:f, 32}.
void WriteType(TermWriter& w, DType t);
/// A tuple of the dimensions.
void WriteShape(TermWriter& w, const Shape& s);
/// {handle, type, shape}: a tensor kept on the node.
void WriteHandle(TermWriter& w, uint64_t handle, DType t, const Shape& s);

/// The BLIS device, as `devices` describes it.
struct BlasDeviceInfo {
  std::string version;       ///< BLIS's version string
  std::string arch;          ///< the kernel set in use
  std::string arch_reason;   ///< why that kernel set
  uint64_t threads = 0;
  std::string cpu;           ///< the CPU's brand (or vendor)
  std::string cpu_features;
  uint64_t queued = 0;       ///< jobs waiting on its queue
  double gemm_gflops = 0;    ///< measured at start-up
  double elementwise_gbps = 0;
};

/// The OpenCL device, as `devices` describes it.
struct OpenClDeviceInfo {
  std::string name;
  std::string platform;
  std::string device_type;   ///< an atom: cpu, gpu, accelerator...
  uint64_t compute_units = 0;
  bool fp64 = false;
  uint64_t global_mem_bytes = 0;
  double kernel_build_ms = 0;
  uint64_t queued = 0;
  double elementwise_gbps = 0;  ///< measured at start-up
};

struct DevicesInfo {
  std::optional<BlasDeviceInfo> blas;
  std::optional<OpenClDeviceInfo> opencl;
};

/// The list of device maps.
void WriteDevices(TermWriter& w, const DevicesInfo& d);

struct HelloInfo {
  std::string node;            ///< the node's name (an atom)
  std::string version;         ///< mure's version
  int64_t os_pid = 0;
  uint64_t max_message = 0;
  uint64_t memory_limit = 0;
  uint64_t queue_depth = 0;
  uint64_t max_loop_iterations = 0;  ///< the cap on one program while node's iterations
  bool test_ops = false;       ///< the test-only ops (busy) are on
  DevicesInfo devices;
};

/// The hello map: protocol, node, version, os_pid, devices, limits, ops.
void WriteHello(TermWriter& w, const HelloInfo& h);

struct StatsInfo {
  // kernels
  uint64_t fused_compiled = 0;
  uint64_t fused_disk_hits = 0;
  double fused_compile_ms = 0;
  uint64_t kernels_compiled = 0;
  uint64_t programs_built = 0;
  uint64_t cache_hits = 0;
  double compile_ms = 0;
  uint64_t launches = 0;
  uint64_t program_nodes = 0;  ///< program nodes run (a while's regions once per iteration), since start
  uint64_t fused_nodes = 0;    ///< ... of them run inside a generated fused kernel
  uint64_t fused_groups = 0;   ///< fused kernel launches of programs (one per group run)
  // the node
  uint64_t refused_handshakes = 0;
  uint64_t tensors = 0;
  uint64_t memory_cached_bytes = 0;
  uint64_t memory_used_bytes = 0;
  uint64_t memory_limit_bytes = 0;
  uint64_t connections = 0;
  uint64_t connection_tensors = 0;  ///< the asking connection's
  uint64_t shm_segments = 0;        ///< same-host transfer segments held, node-wide
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t queued = 0;
  uint64_t loop_iterations = 0;  ///< body runs of program while nodes, since start
  uint64_t inline_runs = 0;      ///< compute requests run on their connection's thread (inline_max_us)
};

/// The stats map.
void WriteStats(TermWriter& w, const StatsInfo& s);

}  // namespace mure::proto
