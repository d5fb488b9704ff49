#include "proto/reply_terms.h"

#include <sstream>
#include <vector>

#include "ir/ops.h"
#include "proto/request.h"

namespace mure::proto {

void WriteType(TermWriter& w, DType t) { w.Tuple(2).Atom(DTypeClass(t)).Int(DTypeBits(t)); }

void WriteShape(TermWriter& w, const Shape& s) {
  w.Tuple(static_cast<uint32_t>(s.size()));
  for (uint64_t d : s) w.UInt(d);
}

void WriteHandle(TermWriter& w, uint64_t handle, DType t, const Shape& s) {
  w.Tuple(3).UInt(handle);
  WriteType(w, t);
  WriteShape(w, s);
}

void WriteDevices(TermWriter& w, const DevicesInfo& d) {
  uint32_t n = (d.blas ? 1 : 0) + (d.opencl ? 1 : 0);
  if (n) w.List(n);
  if (d.blas) {
    const BlasDeviceInfo& b = *d.blas;
    MapWriter m(w);
    m.Key("id").Atom("blis");
    m.Key("kind").Atom("blas");
    m.Key("name").Binary("BLIS " + b.version + " (" + b.arch + ")");
    m.Key("arch").Binary(b.arch);
    m.Key("arch_reason").Binary(b.arch_reason);
    m.Key("threads").UInt(b.threads);
    m.Key("cpu").Binary(b.cpu);
    m.Key("cpu_features").Binary(b.cpu_features);
    m.Key("queued").UInt(b.queued);
    m.Key("measured");
    MapWriter measured(w);
    measured.Key("gemm_gflops").Double(b.gemm_gflops);
    measured.Key("elementwise_gbps").Double(b.elementwise_gbps);
  }
  if (d.opencl) {
    const OpenClDeviceInfo& o = *d.opencl;
    MapWriter m(w);
    m.Key("id").Atom("opencl");
    m.Key("kind").Atom("opencl");
    m.Key("name").Binary(o.name);
    m.Key("platform").Binary(o.platform);
    m.Key("device_type").Atom(o.device_type);
    m.Key("compute_units").UInt(o.compute_units);
    m.Key("fp64").Bool(o.fp64);
    m.Key("global_mem_bytes").UInt(o.global_mem_bytes);
    m.Key("kernel_build_ms").Double(o.kernel_build_ms);
    m.Key("queued").UInt(o.queued);
    m.Key("measured");
    MapWriter measured(w);
    measured.Key("elementwise_gbps").Double(o.elementwise_gbps);
  }
  w.Nil();
}

namespace {
void WriteNames(TermWriter& w, const std::string& spaced) {
  std::vector<std::string> names;
  std::istringstream in{spaced};
  for (std::string n; in >> n;) names.push_back(n);
  w.List(static_cast<uint32_t>(names.size()));
  for (auto& n : names) w.Atom(n);
  w.Nil();
}
}  // namespace

void WriteHello(TermWriter& w, const HelloInfo& h) {
  MapWriter m(w);
  m.Key("protocol").Int(kProtocolVersion);
  m.Key("node").Atom(h.node);
  m.Key("version").Binary(h.version);
  m.Key("os_pid").Int(h.os_pid);
  m.Key("devices");
  WriteDevices(w, h.devices);
  m.Key("limits");
  {
    MapWriter limits(w);
    limits.Key("max_message_bytes").UInt(h.max_message);
    limits.Key("memory_limit_bytes").UInt(h.memory_limit);
    limits.Key("queue_depth").UInt(h.queue_depth);
    limits.Key("max_loop_iterations").UInt(h.max_loop_iterations);
    limits.Key("max_dims").UInt(kMaxDims);
  }
  std::vector<std::string> ops;
  std::istringstream names{std::string(AllOpNames())};
  for (std::string op; names >> op;) ops.push_back(op);
  if (h.test_ops) ops.push_back("busy");
  m.Key("ops").List(static_cast<uint32_t>(ops.size()));
  for (auto& op : ops) w.Atom(op);
  w.Nil();
  // The op table's families (ir/ops.def), in its order: what a client checks its own rules against.
  m.Key("op_families");
  MapWriter families(w);
  families.Key("unary");
  WriteNames(w, ir::UnaryNames());
  families.Key("binary");
  WriteNames(w, ir::BinaryNames());
  families.Key("reduce");
  WriteNames(w, ir::ReduceNames());
}

void WriteStats(TermWriter& w, const StatsInfo& s) {
  MapWriter m(w);
  m.Key("kernels");
  {
    MapWriter kernels(w);
    kernels.Key("fused_compiled").UInt(s.fused_compiled);
    kernels.Key("fused_disk_hits").UInt(s.fused_disk_hits);
    kernels.Key("fused_compile_ms").Double(s.fused_compile_ms);
    kernels.Key("compiled").UInt(s.kernels_compiled);
    kernels.Key("programs_built").UInt(s.programs_built);
    kernels.Key("cache_hits").UInt(s.cache_hits);
    kernels.Key("compile_ms").Double(s.compile_ms);
    kernels.Key("launches").UInt(s.launches);
    kernels.Key("program_nodes").UInt(s.program_nodes);
    kernels.Key("fused_nodes").UInt(s.fused_nodes);
    kernels.Key("fused_groups").UInt(s.fused_groups);
  }
  m.Key("refused_handshakes").UInt(s.refused_handshakes);
  m.Key("tensors").UInt(s.tensors);
  m.Key("memory_cached_bytes").UInt(s.memory_cached_bytes);
  m.Key("memory_used_bytes").UInt(s.memory_used_bytes);
  m.Key("memory_limit_bytes").UInt(s.memory_limit_bytes);
  m.Key("connections").UInt(s.connections);
  m.Key("connection_tensors").UInt(s.connection_tensors);
  m.Key("shm_segments").UInt(s.shm_segments);
  m.Key("requests").UInt(s.requests);
  m.Key("errors").UInt(s.errors);
  m.Key("queued").UInt(s.queued);
  m.Key("loop_iterations").UInt(s.loop_iterations);
  m.Key("inline_runs").UInt(s.inline_runs);
}

}  // namespace mure::proto
