#include "exec/opencl_ops.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/signals.h"
#include "exec/opencl_internal.h"

// The rest of OpenClOps is in opencl_ops_elementwise.cpp, opencl_ops_shape.cpp and
// opencl_ops_reduce.cpp (see exec/opencl_internal.h).

namespace mure::ocl {

using ir::BinaryOp;
using ir::ReduceOp;
using ir::UnaryOp;

namespace {

// The build options are opencl_codegen.h's kBuildOptions, shared with the fused kernels.
constexpr size_t kMaxLocal = 256;

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

std::string BuildLog(cl_program p, cl_device_id d) {
  size_t n = 0;
  if (clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string log(n, '\0');
  clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
  while (!log.empty() && log.back() == '\0') log.pop_back();
  if (log.size() > 16000) log = log.substr(0, 16000) + "\n... (log truncated)";
  return log;
}

}  // namespace

// ---- kernel requests ---------------------------------------------------------------------------

KernelRequest KernelRequest::Unary(UnaryOp op, DType in) {
  KernelRequest r;
  r.kind = Kind::kUnary;
  r.unary = op;
  r.a = in;
  return r;
}
KernelRequest KernelRequest::Binary(BinaryOp op, DType a, DType b) {
  KernelRequest r;
  r.kind = Kind::kBinary;
  r.binary = op;
  r.a = a;
  r.b = b;
  return r;
}
KernelRequest KernelRequest::Reduce(ReduceOp op, DType in) {
  KernelRequest r;
  r.kind = Kind::kReduce;
  r.reduce = op;
  r.a = in;
  return r;
}
KernelRequest KernelRequest::AsType(DType in, DType out) {
  KernelRequest r;
  r.kind = Kind::kAsType;
  r.a = in;
  r.b = out;
  return r;
}
KernelRequest KernelRequest::Transpose(DType t) {
  KernelRequest r;
  r.kind = Kind::kTranspose;
  r.a = t;
  return r;
}
KernelRequest KernelRequest::Take(DType t, DType index) {
  KernelRequest r;
  r.kind = Kind::kTake;
  r.a = t;
  r.b = index;
  return r;
}

// ---- set-up ------------------------------------------------------------------------------------

Result<std::unique_ptr<OpenClOps>> OpenClOps::Create(cl_context context, cl_device_id device, cl_command_queue queue,
                                                     bool fp64) {
  std::unique_ptr<OpenClOps> ops(new OpenClOps());
  cl_int err = clRetainContext(context);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clRetainContext", err));
  ops->context_ = context;
  err = clRetainCommandQueue(queue);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clRetainCommandQueue", err));
  ops->queue_ = queue;
  ops->device_ = device;
  ops->fp64_ = fp64;
  ops->dummy_ = ClMem(clCreateBuffer(context, CL_MEM_READ_WRITE, 256, nullptr, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(placeholder)", err));
  return ops;
}

OpenClOps::~OpenClOps() {
  if (queue_) clFinish(queue_);
  cache_.clear();
  dummy_.reset();
  if (queue_) clReleaseCommandQueue(queue_);
  if (context_) clReleaseContext(context_);
}

CompileStats OpenClOps::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t OpenClOps::cached_kernels() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

// ---- the cache -----------------------------------------------------------------------------------

std::string OpenClOps::Key(const KernelSource& k) {
  return ProgramSource(k) + "\n// build options: " + kBuildOptions + "\n";
}

Status OpenClOps::Build(const std::vector<const KernelSource*>& ks, const std::vector<std::string>& keys) {
  std::vector<std::string> names;
  if (ks.size() == 1) {
    names.push_back("mure_k");
  } else {
    for (size_t i = 0; i < ks.size(); ++i) names.push_back("mure_k" + std::to_string(i));
  }
  const std::string src = BatchSource(ks, names);
  std::string what = ks.size() == 1 ? ks[0]->name : std::to_string(ks.size()) + " kernels (" + ks[0]->name + ", ...)";
  const auto t0 = Clock::now();
  cl_int err = CL_SUCCESS;
  const char* text = src.c_str();
  auto program = std::make_shared<ClProgram>(clCreateProgramWithSource(context_, 1, &text, nullptr, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateProgramWithSource", err) + " for " + what);
  err = clBuildProgram(program->get(), 1, &device_, kBuildOptions, nullptr, nullptr);
  RestoreFatalSignals();
  if (err != CL_SUCCESS) {
    return Status::Internal(ClErrorText("clBuildProgram", err) + " for " + what + "; build log: " +
                            BuildLog(program->get(), device_));
  }
  std::vector<std::unique_ptr<Entry>> built;
  for (size_t i = 0; i < ks.size(); ++i) {
    auto e = std::make_unique<Entry>();
    e->name = ks[i]->name;
    e->args = ks[i]->args;
    e->program = program;
    e->kernel = ClKernel(clCreateKernel(program->get(), names[i].c_str(), &err));
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateKernel", err) + " for " + ks[i]->name);
    size_t wg = 1;
    err = clGetKernelWorkGroupInfo(e->kernel.get(), device_, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr);
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clGetKernelWorkGroupInfo", err) + " for " + ks[i]->name);
    e->local = std::clamp<size_t>(wg, 1, kMaxLocal);
    built.push_back(std::move(e));
  }
  const double ms = Ms(t0, Clock::now());
  for (size_t i = 0; i < ks.size(); ++i) cache_[keys[i]] = std::move(built[i]);
  stats_.programs_built += 1;
  stats_.kernels_built += ks.size();
  stats_.build_ms += ms;
  stats_.max_build_ms = std::max(stats_.max_build_ms, ms);
  RestoreFatalSignals();
  return Status::Ok();
}

Result<OpenClOps::Entry*> OpenClOps::Kernel(const KernelSource& k) {
  std::string key = Key(k);
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    stats_.cache_hits += 1;
    return it->second.get();
  }
  MURE_RETURN_IF_ERROR(Build({&k}, {key}));
  return cache_.at(key).get();
}

Result<std::vector<KernelSource>> OpenClOps::Sources(const KernelRequest& r) const {
  std::vector<KernelSource> out;
  auto add = [&](Result<KernelSource> k) -> Status {
    if (!k.ok()) return k.status();
    out.push_back(std::move(*k));
    return Status::Ok();
  };
  switch (r.kind) {
    case KernelRequest::Kind::kUnary: {
      auto t = ir::UnaryResultType(r.unary, r.a);
      if (!t.ok()) return t.status();
      MURE_RETURN_IF_ERROR(add(UnaryKernel(r.unary, r.a, *t, fp64_)));
      break;
    }
    case KernelRequest::Kind::kBinary: {
      auto t = ir::BinaryResultTypes(r.binary, r.a, r.b);
      if (!t.ok()) return t.status();
      MURE_RETURN_IF_ERROR(add(BinaryKernel(r.binary, r.a, r.b, t->compute, t->result, fp64_)));
      break;
    }
    case KernelRequest::Kind::kReduce: {
      auto plan = ir::PlanReduce(r.reduce, r.a, {1}, {0}, false);
      if (!plan.ok()) return plan.status();
      MURE_RETURN_IF_ERROR(add(ReduceKernel(r.reduce, r.a, plan->out_type, fp64_)));
      break;
    }
    case KernelRequest::Kind::kAsType:
      MURE_RETURN_IF_ERROR(add(AsTypeKernel(r.a, r.b, fp64_)));
      break;
    case KernelRequest::Kind::kTranspose:
      out.push_back(GatherKernel(static_cast<unsigned>(DTypeSize(r.a))));
      break;
    case KernelRequest::Kind::kTake:
      MURE_RETURN_IF_ERROR(add(TakeCheckKernel(r.b)));
      MURE_RETURN_IF_ERROR(add(TakeKernel(static_cast<unsigned>(DTypeSize(r.a)), r.b)));
      break;
  }
  return out;
}

Status OpenClOps::Prebuild(const std::vector<KernelRequest>& requests) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<KernelSource> sources;
  for (const KernelRequest& r : requests) {
    auto s = Sources(r);
    if (!s.ok()) return s.status();
    for (auto& k : *s) sources.push_back(std::move(k));
  }
  return CompileLocked(sources);
}

Status OpenClOps::Compile(const std::vector<KernelSource>& sources) {
  std::lock_guard<std::mutex> lock(mu_);
  return CompileLocked(sources);
}

Status OpenClOps::CompileLocked(const std::vector<KernelSource>& sources) {
  std::vector<const KernelSource*> todo;
  std::vector<std::string> keys;
  for (const KernelSource& k : sources) {
    std::string key = Key(k);
    if (cache_.count(key) || std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    todo.push_back(&k);
    keys.push_back(std::move(key));
  }
  if (todo.empty()) return Status::Ok();
  MURE_RETURN_IF_ERROR(Build(todo, keys));
  // Warm-up: every kernel once, on nothing (n = 0, count = 0: each work-item returns at once).
  const auto t0 = Clock::now();
  for (const std::string& key : keys) {
    Entry& e = *cache_.at(key);
    std::vector<Arg> args;
    for (char c : e.args) {
      if (c == 'g' || c == 'c') args.push_back(M(dummy_));
      else if (c == 'l') args.push_back(L(0));
      else args.push_back(U(0));
    }
    MURE_RETURN_IF_ERROR(Enqueue(e, args, 1));
    e.launched = true;
  }
  cl_int err = clFinish(queue_);
  RestoreFatalSignals();
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clFinish", err));
  stats_.first_launch_ms += Ms(t0, Clock::now());
  return Status::Ok();
}

// ---- buffers and launches ------------------------------------------------------------------------

Result<ClMem> OpenClOps::Input(const Tensor& t) {
  cl_int err = CL_SUCCESS;
  if (t.bytes() == 0) {
    err = clRetainMemObject(dummy_.get());
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clRetainMemObject", err));
    return ClMem(dummy_.get());
  }
  ClMem m(clCreateBuffer(context_, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, t.bytes(), const_cast<uint8_t*>(t.data()),
                         &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(input)", err));
  return m;
}

Result<ClMem> OpenClOps::Output(Tensor& t) {
  cl_int err = CL_SUCCESS;
  ClMem m(clCreateBuffer(context_, CL_MEM_WRITE_ONLY | CL_MEM_USE_HOST_PTR, t.bytes(), t.data(), &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(output)", err));
  return m;
}

Result<ClMem> OpenClOps::Constants(const std::vector<uint64_t>& values) {
  cl_int err = CL_SUCCESS;
  if (values.empty()) {
    err = clRetainMemObject(dummy_.get());
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clRetainMemObject", err));
    return ClMem(dummy_.get());
  }
  ClMem m(clCreateBuffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, values.size() * sizeof(uint64_t),
                         const_cast<uint64_t*>(values.data()), &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(shape arguments)", err));
  return m;
}

Status OpenClOps::Enqueue(Entry& e, const std::vector<Arg>& args, uint64_t items) {
  if (args.size() != e.args.size()) return Status::Internal("wrong argument count for " + e.name);
  cl_kernel k = e.kernel.get();
  for (cl_uint i = 0; i < args.size(); ++i) {
    const Arg& a = args[i];
    cl_int err = a.kind == Arg::kMem     ? clSetKernelArg(k, i, sizeof(cl_mem), &a.mem)
                 : a.kind == Arg::kULong ? clSetKernelArg(k, i, sizeof(cl_ulong), &a.ulong_value)
                                         : clSetKernelArg(k, i, sizeof(cl_uint), &a.uint_value);
    if (err != CL_SUCCESS) {
      return Status::Internal(ClErrorText("clSetKernelArg", err) + " (argument " + std::to_string(i) + " of " + e.name +
                              ")");
    }
  }
  size_t local = e.local;
  size_t global = static_cast<size_t>((items + local - 1) / local * local);
  cl_int err = clEnqueueNDRangeKernel(queue_, k, 1, nullptr, &global, &local, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueNDRangeKernel", err) + " for " + e.name);
  stats_.launches += 1;
  return Status::Ok();
}

Status OpenClOps::Finish(const ClMem& out, uint64_t bytes) {
  cl_int err = CL_SUCCESS;
  // Mapping the output makes the host copy current (a no-op on a CPU device with host memory).
  void* mapped = clEnqueueMapBuffer(queue_, out.get(), CL_TRUE, CL_MAP_READ, 0, bytes, 0, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueMapBuffer", err));
  err = clEnqueueUnmapMemObject(queue_, out.get(), mapped, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueUnmapMemObject", err));
  err = clFinish(queue_);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clFinish", err));
  return Status::Ok();
}

Status OpenClOps::Launch(Entry& e, const std::vector<Arg>& args, uint64_t items, const ClMem& out, uint64_t bytes) {
  const auto t0 = Clock::now();
  Status s = Enqueue(e, args, items);
  if (s.ok()) s = Finish(out, bytes);
  RestoreFatalSignals();
  if (!e.launched && s.ok()) {
    e.launched = true;
    stats_.first_launch_ms += Ms(t0, Clock::now());
  }
  return s;
}

// ---- working memory, index checks, strided copies ------------------------------------------------

Result<ClMem> OpenClOps::DeviceScratch(uint64_t bytes, MemoryBudget* budget, Reservation& hold) {
  auto reserved = Reservation::Make(budget, bytes, "a kernel's device scratch");
  if (!reserved.ok()) return reserved.status();
  hold = std::move(*reserved);
  cl_int err = CL_SUCCESS;
  ClMem m(clCreateBuffer(context_, CL_MEM_READ_WRITE, std::max<uint64_t>(bytes, 8), nullptr, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(scratch)", err));
  return m;
}

Result<cl_uint> OpenClOps::RunCheck(Entry& check, std::vector<Arg> args, uint64_t groups) {
  cl_uint bad = ~cl_uint{0};
  cl_int err = CL_SUCCESS;
  ClMem mb(clCreateBuffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof bad, &bad, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(check)", err));
  args.push_back(M(mb));
  const auto t0 = Clock::now();
  Status st = Enqueue(check, args, groups);
  if (st.ok()) {
    err = clEnqueueReadBuffer(queue_, mb.get(), CL_TRUE, 0, sizeof bad, &bad, 0, nullptr, nullptr);
    if (err != CL_SUCCESS) st = Status::Internal(ClErrorText("clEnqueueReadBuffer(check)", err));
  }
  RestoreFatalSignals();
  if (!st.ok()) return st;
  if (!check.launched) {
    check.launched = true;
    stats_.first_launch_ms += Ms(t0, Clock::now());
  }
  return bad;
}

Status OpenClOps::EnqueueCopy(DType in_type, const ClMem& in, DType out_type, const ClMem& out, const Shape& walk,
                              const std::vector<uint64_t>& in_strides, const std::vector<uint64_t>& out_strides,
                              uint64_t ibase, uint64_t obase) {
  uint64_t n = 1;
  for (uint64_t d : walk) n *= d;
  if (n == 0) return Status::Ok();
  auto src = CopyKernel(in_type, out_type, fp64_);
  if (!src.ok()) return src.status();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  std::vector<uint64_t> meta{walk.size()};
  meta.insert(meta.end(), walk.begin(), walk.end());
  meta.insert(meta.end(), in_strides.begin(), in_strides.end());
  meta.insert(meta.end(), out_strides.begin(), out_strides.end());
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  Status s = Enqueue(**e, {M(in), M(out), L(n), M(*mm), L(ibase), L(obase)}, n);
  if (s.ok()) (*e)->launched = true;
  return s;
}

}  // namespace mure::ocl
