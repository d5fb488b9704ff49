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
    w.Map(10);
    w.Atom("id").Atom("blis");
    w.Atom("kind").Atom("blas");
    w.Atom("name").Binary("BLIS " + b.version + " (" + b.arch + ")");
    w.Atom("arch").Binary(b.arch);
    w.Atom("arch_reason").Binary(b.arch_reason);
    w.Atom("threads").UInt(b.threads);
    w.Atom("cpu").Binary(b.cpu);
    w.Atom("cpu_features").Binary(b.cpu_features);
    w.Atom("queued").UInt(b.queued);
    w.Atom("measured").Map(2);
    w.Atom("gemm_gflops").Double(b.gemm_gflops);
    w.Atom("elementwise_gbps").Double(b.elementwise_gbps);
  }
  if (d.opencl) {
    const OpenClDeviceInfo& o = *d.opencl;
    w.Map(11);
    w.Atom("id").Atom("opencl");
    w.Atom("kind").Atom("opencl");
    w.Atom("name").Binary(o.name);
    w.Atom("platform").Binary(o.platform);
    w.Atom("device_type").Atom(o.device_type);
    w.Atom("compute_units").UInt(o.compute_units);
    w.Atom("fp64").Bool(o.fp64);
    w.Atom("global_mem_bytes").UInt(o.global_mem_bytes);
    w.Atom("kernel_build_ms").Double(o.kernel_build_ms);
    w.Atom("queued").UInt(o.queued);
    w.Atom("measured").Map(1);
    w.Atom("elementwise_gbps").Double(o.elementwise_gbps);
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
  w.Map(8);
  w.Atom("protocol").Int(kProtocolVersion);
  w.Atom("node").Atom(h.node);
  w.Atom("version").Binary(h.version);
  w.Atom("os_pid").Int(h.os_pid);
  w.Atom("devices");
  WriteDevices(w, h.devices);
  w.Atom("limits").Map(5);
  w.Atom("max_message_bytes").UInt(h.max_message);
  w.Atom("memory_limit_bytes").UInt(h.memory_limit);
  w.Atom("queue_depth").UInt(h.queue_depth);
  w.Atom("max_loop_iterations").UInt(h.max_loop_iterations);
  w.Atom("max_dims").UInt(kMaxDims);
  std::vector<std::string> ops;
  std::istringstream names{std::string(AllOpNames())};
  for (std::string op; names >> op;) ops.push_back(op);
  if (h.test_ops) ops.push_back("busy");
  w.Atom("ops").List(static_cast<uint32_t>(ops.size()));
  for (auto& op : ops) w.Atom(op);
  w.Nil();
  // The op table's families (ir/ops.def), in its order: what a client checks its own rules against.
  w.Atom("op_families").Map(3);
  w.Atom("unary");
  WriteNames(w, ir::UnaryNames());
  w.Atom("binary");
  WriteNames(w, ir::BinaryNames());
  w.Atom("reduce");
  WriteNames(w, ir::ReduceNames());
}

void WriteStats(TermWriter& w, const StatsInfo& s) {
  w.Map(14);  // kernels, then the 13 counters below
  w.Atom("kernels").Map(11);
  w.Atom("fused_compiled").UInt(s.fused_compiled);
  w.Atom("fused_disk_hits").UInt(s.fused_disk_hits);
  w.Atom("fused_compile_ms").Double(s.fused_compile_ms);
  w.Atom("compiled").UInt(s.kernels_compiled);
  w.Atom("programs_built").UInt(s.programs_built);
  w.Atom("cache_hits").UInt(s.cache_hits);
  w.Atom("compile_ms").Double(s.compile_ms);
  w.Atom("launches").UInt(s.launches);
  w.Atom("program_nodes").UInt(s.program_nodes);
  w.Atom("fused_nodes").UInt(s.fused_nodes);
  w.Atom("fused_groups").UInt(s.fused_groups);
  w.Atom("refused_handshakes").UInt(s.refused_handshakes);
  w.Atom("tensors").UInt(s.tensors);
  w.Atom("memory_cached_bytes").UInt(s.memory_cached_bytes);
  w.Atom("memory_used_bytes").UInt(s.memory_used_bytes);
  w.Atom("memory_limit_bytes").UInt(s.memory_limit_bytes);
  w.Atom("connections").UInt(s.connections);
  w.Atom("connection_tensors").UInt(s.connection_tensors);
  w.Atom("shm_segments").UInt(s.shm_segments);
  w.Atom("requests").UInt(s.requests);
  w.Atom("errors").UInt(s.errors);
  w.Atom("queued").UInt(s.queued);
  w.Atom("loop_iterations").UInt(s.loop_iterations);
  w.Atom("inline_runs").UInt(s.inline_runs);
}

}  // namespace mure::proto
