#include "exec/opencl_fused.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/signals.h"
#include "exec/op_dialect.h"
#include "exec/opencl_codegen.h"

namespace mure::ocl {

using ir::BinaryOp;
using ir::ReduceOp;
using ir::UnaryOp;

namespace {

/// Work-groups per elementwise launch: enough to spread over the compute units, few enough that a
/// CPU device streams long contiguous blocks.
constexpr size_t kBlocksPerRun = 16;

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void MakeDirs(const std::string& path) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part + "/";
    ::mkdir(cur.c_str(), 0700);
  }
}

}  // namespace

// Fusible: the table's column (ir/ops.def), for ops with a float formula and a float result.
bool Fusible(UnaryOp op) { return ir::Info(op).fusible && ir::Info(op).has_float; }
bool Fusible(BinaryOp op) { return ir::Info(op).fusible && ir::Info(op).has_float; }
bool FusibleReduce(ReduceOp op) { return ir::Info(op).fusible; }

std::string FusedGraph::Source() const {
  // The per-op kernels' prelude and formulas (opencl_codegen.h), built with the same options:
  // each step is exactly the statement the op's own kernel runs.
  std::string s = Prelude(true) + "__kernel void mure_fused(";
  size_t inputs = scalar_input.size();
  for (size_t i = 0; i < inputs; ++i) s += "__global const float* restrict in" + std::to_string(i) + ", ";
  if (!reduce) {
    // Each work-item streams one contiguous block: sequential access for a CPU device (whose
    // compiler vectorises the loop) and few work-groups; a GPU runs many more items than blocks.
    // Each step is the op's own statement from the table, so a fused step gives the bits of the
    // op run alone, vectorised or not (op_table_test checks it on blocks long enough to vectorise;
    // the differences once seen came from fused-only formulas: fmin/fmax, a sigmoid that
    // overflowed below -88).
    s += "__global float* restrict out, const ulong n) {\n"
         "  const ulong items = get_global_size(0);\n"
         "  const ulong per = (n + items - 1) / items;\n"
         "  const ulong start = get_global_id(0) * per;\n"
         "  const ulong end = min(start + per, n);\n"
         "  for (ulong i = start; i < end; ++i) {\n";
  } else {
    s += "__global double* restrict partial, const ulong rows, const ulong len, const ulong chunks, const ulong chunk) {\n"
         "  const ulong g = get_global_id(0);\n  if (g >= rows * chunks) return;\n"
         "  const ulong r = g / chunks, c = g % chunks;\n"
         "  const ulong j0 = c * chunk, j1 = min(j0 + chunk, len);\n";
    s += "  double acc = (double)(" + ReduceFormulaText(reduce_op).float_init +
         ");\n  for (ulong j = j0; j < j1; ++j) {\n  const ulong i = r * len + j;\n";
  }
  for (size_t k = 0; k < steps.size(); ++k) {
    const FusedStep& st = steps[k];
    std::string v = "v" + std::to_string(k);
    std::string rhs;
    if (st.kind == FusedStep::Kind::kInput) {
      rhs = "in" + std::to_string(k) + (scalar_input[k] ? "[0]" : "[i]");
    } else if (st.kind == FusedStep::Kind::kUnary) {
      s += "  float " + v + ";\n  {\n    const float x = v" + std::to_string(st.a) + ";\n    " +
           UnaryFloatStmt(st.unary, "float", v) + "\n  }\n";
      continue;
    } else {
      s += "  float " + v + ";\n  {\n    const float x = v" + std::to_string(st.a) + ", y = v" + std::to_string(st.b) +
           ";\n    " + BinaryFloatStmt(st.binary, "float", v) + "\n  }\n";
      continue;
    }
    s += "  const float " + v + " = " + rhs + ";\n";
  }
  std::string last = "v" + std::to_string(steps.size() - 1);
  if (!reduce) {
    s += "  out[i] = " + last + ";\n  }\n}\n";
  } else {
    s += "  {\n    const double v = (double)" + last + ";\n    acc = (double)(" +
         ReduceFormulaText(reduce_op).float_step + ");\n  }\n";
    s += "  }\n  partial[g] = acc;\n}\n";
  }
  return s;
}

struct FusedKernels::Entry {
  ClProgram program;
  ClKernel kernel;
  size_t local = 64;
  uint64_t last_used = 0;
};

FusedKernels::FusedKernels(OpenClExecutor& device, std::string cache_dir, FusedCacheLimits limits)
    : device_(device), cache_dir_(std::move(cache_dir)), limits_(limits) {
  device_key_ = DeviceString(device.device(), CL_DEVICE_NAME) + "|" + DeviceString(device.device(), CL_DRIVER_VERSION) +
                "|" + DeviceString(device.device(), CL_DEVICE_VERSION);
  limits_.max_in_memory = std::max<size_t>(limits_.max_in_memory, 1);
  if (!cache_dir_.empty()) {
    MakeDirs(cache_dir_);
    // What earlier runs left counts against the cap too.
    if (DIR* d = ::opendir(cache_dir_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        struct stat st {};
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0 &&
            ::stat((cache_dir_ + "/" + name).c_str(), &st) == 0) {
          stats_.disk_bytes += static_cast<uint64_t>(st.st_size);
        }
      }
      ::closedir(d);
    }
  }
}

void FusedKernels::Evict() {
  while (cache_.size() >= limits_.max_in_memory) {
    auto oldest = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->second->last_used < oldest->second->last_used) oldest = it;
    }
    cache_.erase(oldest);
    ++stats_.evicted;
  }
}

FusedKernels::~FusedKernels() = default;

FusedStats FusedKernels::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  FusedStats s = stats_;
  s.in_memory = cache_.size();
  return s;
}

Result<FusedKernels::Entry*> FusedKernels::Kernel(const std::string& source) {
  auto it = cache_.find(source);
  if (it != cache_.end()) {
    ++stats_.memory_hits;
    it->second->last_used = ++clock_;
    return it->second.get();
  }
  auto t0 = std::chrono::steady_clock::now();
  cl_device_id dev = device_.device();
  cl_context ctx = device_.context();
  cl_int err = CL_SUCCESS;
  auto entry = std::make_unique<Entry>();
  char name[32];
  std::snprintf(name, sizeof name, "%016llx",
                static_cast<unsigned long long>(Fnv1a(device_key_ + "\n" + kBuildOptions + "\n" + source)));
  const std::string path = cache_dir_.empty() ? "" : cache_dir_ + "/" + name + ".bin";
  bool from_disk = false;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string bin((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const unsigned char* ptr = reinterpret_cast<const unsigned char*>(bin.data());
      size_t len = bin.size();
      cl_int status = CL_SUCCESS;
      ClProgram p(clCreateProgramWithBinary(ctx, 1, &dev, &len, &ptr, &status, &err));
      if (err == CL_SUCCESS && status == CL_SUCCESS && clBuildProgram(p.get(), 1, &dev, kBuildOptions, nullptr, nullptr) == CL_SUCCESS) {
        entry->program = std::move(p);
        from_disk = true;
      }
    }
  }
  if (!from_disk) {
    const char* src = source.c_str();
    entry->program = ClProgram(clCreateProgramWithSource(ctx, 1, &src, nullptr, &err));
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateProgramWithSource", err));
    err = clBuildProgram(entry->program.get(), 1, &dev, kBuildOptions, nullptr, nullptr);
    if (err != CL_SUCCESS) {
      size_t n = 0;
      clGetProgramBuildInfo(entry->program.get(), dev, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
      std::string log(n, '\0');
      clGetProgramBuildInfo(entry->program.get(), dev, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
      RestoreFatalSignals();
      return Status::Internal(ClErrorText("clBuildProgram (fused kernel)", err) + "; build log: " + log);
    }
    if (!path.empty()) {  // keep the binary for the next start, while the disk cache has room
      size_t size = 0;
      if (clGetProgramInfo(entry->program.get(), CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr) == CL_SUCCESS &&
          size > 0 && stats_.disk_bytes + size > limits_.max_disk_bytes) {
        if (stats_.disk_skipped++ == 0) {
          LogWarn("the fused-kernel disk cache " + cache_dir_ + " holds " + std::to_string(stats_.disk_bytes) +
                  " bytes, its cap is " + std::to_string(limits_.max_disk_bytes) +
                  ": new kernels are kept in memory only (empty the folder to start afresh)");
        }
      } else if (size > 0) {
        std::string bin(size, '\0');
        unsigned char* ptr = reinterpret_cast<unsigned char*>(bin.data());
        if (clGetProgramInfo(entry->program.get(), CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr) == CL_SUCCESS) {
          std::string tmp = path + ".tmp" + std::to_string(::getpid());
          std::ofstream out(tmp, std::ios::binary);
          out.write(bin.data(), static_cast<std::streamsize>(bin.size()));
          out.close();
          if (out && std::rename(tmp.c_str(), path.c_str()) == 0) stats_.disk_bytes += size;
          else std::remove(tmp.c_str());
        }
      }
    }
  }
  entry->kernel = ClKernel(clCreateKernel(entry->program.get(), "mure_fused", &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateKernel (fused kernel)", err));
  size_t wg = 256;
  clGetKernelWorkGroupInfo(entry->kernel.get(), dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr);
  entry->local = std::max<size_t>(1, std::min<size_t>(wg, 256));
  RestoreFatalSignals();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  stats_.compile_ms += ms;
  if (from_disk) ++stats_.disk_hits; else ++stats_.compiled;
  LogDebug("fused kernel " + std::string(name) + (from_disk ? " loaded from the disk cache" : " compiled") + " in " +
           std::to_string(static_cast<int>(ms)) + " ms");
  Evict();
  entry->last_used = ++clock_;
  Entry* raw = entry.get();
  cache_.emplace(source, std::move(entry));
  return raw;
}

Status FusedKernels::Run(const FusedGraph& graph, const std::vector<const Tensor*>& inputs, uint64_t elements,
                         uint64_t row_length, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (inputs.size() != graph.scalar_input.size()) return Status::Internal("fused kernel: input count mismatch");
  const uint64_t rows = graph.reduce ? out.elements() : 0;
  if (!graph.reduce && elements == 0) return Status::Ok();
  if (graph.reduce && (rows == 0 || row_length == 0)) {
    const double init = dialect::ReduceFloatInit(graph.reduce_op);
    for (uint64_t r = 0; r < rows; ++r) out.as<float>()[r] = static_cast<float>(init);
    return Status::Ok();
  }
  auto entry = Kernel(graph.Source());
  if (!entry.ok()) return entry.status();
  Entry& e = **entry;
  cl_context ctx = device_.context();
  cl_int err = CL_SUCCESS;
  std::vector<ClMem> bufs;
  for (const Tensor* t : inputs) {
    bufs.emplace_back(clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, t->bytes(),
                                     const_cast<uint8_t*>(t->data()), &err));
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer (fused input)", err));
  }
  cl_uint arg = 0;
  for (auto& b : bufs) {
    cl_mem m = b.get();
    clSetKernelArg(e.kernel.get(), arg++, sizeof m, &m);
  }
  ClMem result;
  uint64_t items = elements, chunks = 1, chunk = row_length;
  uint64_t result_bytes = out.bytes();
  if (!graph.reduce) {
    result = ClMem(clCreateBuffer(ctx, CL_MEM_WRITE_ONLY | CL_MEM_USE_HOST_PTR, out.bytes(), out.data(), &err));
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer (fused output)", err));
    cl_mem m = result.get();
    cl_ulong n = elements;
    clSetKernelArg(e.kernel.get(), arg++, sizeof m, &m);
    clSetKernelArg(e.kernel.get(), arg++, sizeof n, &n);
  } else {
    // Enough work-items to fill the device: split long rows into chunks, combined on the host.
    chunks = std::max<uint64_t>(1, std::min<uint64_t>(row_length, (1024 + rows - 1) / rows));
    chunk = (row_length + chunks - 1) / chunks;
    items = rows * chunks;
    result_bytes = items * sizeof(double);
    result = ClMem(clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, result_bytes, nullptr, &err));
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer (fused partials)", err));
    cl_mem m = result.get();
    cl_ulong r = rows, len = row_length, c = chunks, ch = chunk;
    clSetKernelArg(e.kernel.get(), arg++, sizeof m, &m);
    clSetKernelArg(e.kernel.get(), arg++, sizeof r, &r);
    clSetKernelArg(e.kernel.get(), arg++, sizeof len, &len);
    clSetKernelArg(e.kernel.get(), arg++, sizeof c, &c);
    clSetKernelArg(e.kernel.get(), arg++, sizeof ch, &ch);
  }
  size_t global = (items + e.local - 1) / e.local * e.local;
  if (!graph.reduce) global = std::min<size_t>(global, e.local * kBlocksPerRun);  // the kernel loops over the rest
  err = clEnqueueNDRangeKernel(device_.queue(), e.kernel.get(), 1, nullptr, &global, &e.local, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueNDRangeKernel (fused)", err));
  void* mapped = clEnqueueMapBuffer(device_.queue(), result.get(), CL_TRUE, CL_MAP_READ, 0, result_bytes, 0, nullptr,
                                    nullptr, &err);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueMapBuffer (fused)", err));
  if (graph.reduce) {
    const double* partial = static_cast<const double*>(mapped);
    for (uint64_t r = 0; r < rows; ++r) {
      double acc = partial[r * chunks];
      for (uint64_t c = 1; c < chunks; ++c) {
        acc = dialect::ReduceFloatStep(graph.reduce_op, acc, partial[r * chunks + c]);
      }
      out.as<float>()[r] = static_cast<float>(acc);
    }
  }
  clEnqueueUnmapMemObject(device_.queue(), result.get(), mapped, 0, nullptr, nullptr);
  err = clFinish(device_.queue());
  RestoreFatalSignals();
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clFinish (fused)", err));
  return Status::Ok();
}

}  // namespace mure::ocl
