#include "exec/opencl_ops.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/signals.h"
#include "exec/cpu_elements.h"

namespace mure::ocl {

using ir::BinaryOp;
using ir::ReduceOp;
using ir::UnaryOp;

namespace {

// The build options are opencl_codegen.h's kBuildOptions, shared with the fused kernels.
constexpr size_t kMaxLocal = 256;

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

std::vector<uint64_t> RowMajorStrides(const Shape& s) {
  std::vector<uint64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

/// Strides of `in` seen through a broadcast to `out` (0 where `in` has size 1 or is missing).
std::vector<uint64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<uint64_t> st(out.size(), 0);
  auto own = RowMajorStrides(in);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[lead + i] = in[i] == 1 ? 0 : own[i];
  return st;
}

/// Element j of an integer tensor as its 64-bit pattern (host side, for take's message).
uint64_t HostLoadI(DType t, const uint8_t* p, uint64_t j) {
  auto get = [&](auto v) {
    std::memcpy(&v, p + j * sizeof v, sizeof v);
    return v;
  };
  switch (t) {
    case DType::kU8: return get(uint8_t{});
    case DType::kU16: return get(uint16_t{});
    case DType::kU32: return get(uint32_t{});
    case DType::kU64: return get(uint64_t{});
    case DType::kS8: return static_cast<uint64_t>(static_cast<int64_t>(get(int8_t{})));
    case DType::kS16: return static_cast<uint64_t>(static_cast<int64_t>(get(int16_t{})));
    case DType::kS32: return static_cast<uint64_t>(static_cast<int64_t>(get(int32_t{})));
    case DType::kS64: return get(uint64_t{});
    default: return 0;
  }
}

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

struct OpenClOps::Entry {
  std::string name;
  std::string args;
  std::shared_ptr<ClProgram> program;
  ClKernel kernel;
  size_t local = 1;
  bool launched = false;
};

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

// ---- the ops -------------------------------------------------------------------------------------

Status OpenClOps::Unary(UnaryOp op, const Tensor& in, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.elements() != in.elements()) return Status::Internal("unary output size mismatch");
  auto src = UnaryKernel(op, in.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*o), L(n)}, n, *o, out.bytes());
}

Status OpenClOps::Binary(BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = BinaryKernel(op, a.type(), b.type(), compute, out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  if (a.shape().size() > os.size() || b.shape().size() > os.size()) return Status::Internal("binary rank mismatch");
  uint32_t mode = 3;
  std::vector<uint64_t> meta;
  if (a.shape() == os && b.shape() == os) {
    mode = 0;
  } else if (a.shape() == os && b.elements() == 1) {
    mode = 1;
  } else if (b.shape() == os && a.elements() == 1) {
    mode = 2;
  } else {
    const auto sa = BroadcastStrides(a.shape(), os), sb = BroadcastStrides(b.shape(), os);
    meta.push_back(os.size());
    meta.insert(meta.end(), os.begin(), os.end());
    meta.insert(meta.end(), sa.begin(), sa.end());
    meta.insert(meta.end(), sb.begin(), sb.end());
  }
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto ma = Input(a);
  if (!ma.ok()) return ma.status();
  auto mb = Input(b);
  if (!mb.ok()) return mb.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*ma), M(*mb), M(*mo), L(n), M(*mm), U(mode)}, n, *mo, out.bytes());
}

Status OpenClOps::Reduce(ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = ReduceKernel(op, in.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& shape = in.shape();
  const size_t rank = shape.size();
  std::vector<bool> reduced(rank, false);
  for (uint64_t ax : plan.axes) {
    if (ax >= rank) return Status::Internal("reduction axis out of range");
    reduced[ax] = true;
  }
  const auto st = RowMajorStrides(shape);
  std::vector<uint64_t> kshape, kstride, rshape, rstride;
  for (size_t d = 0; d < rank; ++d) {
    (reduced[d] ? rshape : kshape).push_back(shape[d]);
    (reduced[d] ? rstride : kstride).push_back(st[d]);
  }
  if (rshape.empty()) {  // nothing reduced: each output reduces its one element
    rshape.push_back(1);
    rstride.push_back(0);
  }
  uint64_t outer = 1;
  for (size_t j = 0; j + 1 < rshape.size(); ++j) outer *= rshape[j];
  if (rshape.back() == 0) outer = 0;
  std::vector<uint64_t> meta{kshape.size()};
  meta.insert(meta.end(), kshape.begin(), kshape.end());
  meta.insert(meta.end(), kstride.begin(), kstride.end());
  meta.push_back(rshape.size());
  meta.insert(meta.end(), rshape.begin(), rshape.end());
  meta.insert(meta.end(), rstride.begin(), rstride.end());
  meta.push_back(outer);
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto ma = Input(in);
  if (!ma.ok()) return ma.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*ma), M(*mo), L(n), M(*mm)}, n, *mo, out.bytes());
}

Status OpenClOps::AsType(const Tensor& in, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.elements() != in.elements()) return Status::Internal("as_type output size mismatch");
  auto src = AsTypeKernel(in.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*o), L(n)}, n, *o, out.bytes());
}

Status OpenClOps::Bitcast(const Tensor& in, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (in.bytes() != out.bytes()) return Status::Internal("bitcast size mismatch");
  if (in.bytes() == 0) return Status::Ok();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  cl_int err = clEnqueueCopyBuffer(queue_, a->get(), o->get(), 0, 0, in.bytes(), 0, nullptr, nullptr);
  Status s = err == CL_SUCCESS ? Finish(*o, out.bytes()) : Status::Internal(ClErrorText("clEnqueueCopyBuffer", err));
  if (err == CL_SUCCESS) stats_.launches += 1;
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::GatherCopy(const Tensor& in, const std::vector<uint64_t>& strides, uint64_t base, Tensor& out) {
  KernelSource src = GatherKernel(static_cast<unsigned>(DTypeSize(in.type())));
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  if (strides.size() != out.shape().size()) return Status::Internal("gather rank mismatch");
  std::vector<uint64_t> meta{out.shape().size()};
  meta.insert(meta.end(), out.shape().begin(), out.shape().end());
  meta.insert(meta.end(), strides.begin(), strides.end());
  auto e = Kernel(src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*a), M(*o), L(n), M(*mm), L(base)}, n, *o, out.bytes());
}

Status OpenClOps::Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (perm.size() != rank || out.type() != in.type()) return Status::Internal("transpose mismatch");
  const auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> sa(rank);
  for (size_t d = 0; d < rank; ++d) {
    int64_t p = perm[d] < 0 ? perm[d] + static_cast<int64_t>(rank) : perm[d];
    if (p < 0 || static_cast<size_t>(p) >= rank) return Status::Internal("transpose axis out of range");
    sa[d] = st[static_cast<size_t>(p)];
  }
  return GatherCopy(in, sa, 0, out);
}

Status OpenClOps::Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
                        Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (starts.size() != rank || strides.size() != rank || out.type() != in.type()) {
    return Status::Internal("slice mismatch");
  }
  const auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> sa(rank);
  uint64_t base = 0;
  for (size_t d = 0; d < rank; ++d) {
    sa[d] = st[d] * static_cast<uint64_t>(strides[d]);
    base += st[d] * static_cast<uint64_t>(starts[d]);
  }
  return GatherCopy(in, sa, base, out);
}

Status OpenClOps::Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = in.shape();
  const int64_t r = static_cast<int64_t>(s.size());
  if (axis < -r || axis >= r || out.type() != in.type()) return Status::Internal("take mismatch");
  const size_t ax = static_cast<size_t>(axis < 0 ? axis + r : axis);
  const uint64_t dim = s[ax];
  const uint64_t count = indices.elements();
  const DType xt = indices.type();
  const unsigned width = static_cast<unsigned>(DTypeSize(in.type()));
  auto check_src = TakeCheckKernel(xt);
  if (!check_src.ok()) return check_src.status();
  auto take_src = TakeKernel(width, xt);
  if (!take_src.ok()) return take_src.status();
  ClMem mi;
  if (count > 0) {
    // Every index is checked, on the device, before anything is written: each work-item checks a
    // chunk of indices and atomic_min's its chunk number on finding a bad one; the host then
    // names the first bad index of that chunk.
    const uint64_t groups0 = std::min<uint64_t>(count, uint64_t{1} << 30);
    const uint64_t chunk = (count + groups0 - 1) / groups0;
    const uint64_t groups = (count + chunk - 1) / chunk;
    auto ec = Kernel(*check_src);
    if (!ec.ok()) return ec.status();
    auto idx = Input(indices);
    if (!idx.ok()) return idx.status();
    mi = std::move(*idx);
    auto flagged = RunCheck(**ec, {M(mi), L(count), L(dim), L(chunk)}, groups);
    if (!flagged.ok()) return flagged.status();
    const cl_uint bad = *flagged, none = ~cl_uint{0};
    if (bad != none) {
      const uint64_t end = std::min<uint64_t>((uint64_t{bad} + 1) * chunk, count);
      for (uint64_t j = uint64_t{bad} * chunk; j < end; ++j) {
        const uint64_t v = HostLoadI(xt, indices.data(), j);
        if (v >= dim) {
          return Status(ErrorKind::kOutOfRange,
                        "take: index " + std::to_string(static_cast<int64_t>(v)) + " (element " + std::to_string(j) +
                            " of the indices) is outside axis " + std::to_string(ax) + " of size " +
                            std::to_string(dim));
        }
      }
      return Status::Internal("take: the device flagged index chunk " + std::to_string(bad) +
                              " but the host finds no bad index in it");
    }
  }
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  uint64_t post = 1;
  for (size_t d = ax + 1; d < s.size(); ++d) post *= s[d];
  auto e = Kernel(*take_src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(mi), M(*o), L(n), L(count), L(dim), L(post)}, n, *o, out.bytes());
}

// ---- the second part ----------------------------------------------------------------------------

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

Status OpenClOps::Iota(Tensor& out, int64_t axis) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = IotaKernel(out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& s = out.shape();
  uint64_t inner = 1, dim = n;
  if (axis >= 0) {
    if (static_cast<size_t>(axis) >= s.size()) return Status::Internal("iota axis out of range");
    dim = s[static_cast<size_t>(axis)];
    for (size_t d = static_cast<size_t>(axis) + 1; d < s.size(); ++d) inner *= s[d];
  }
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(inner), L(dim)}, n, *o, out.bytes());
}

namespace {
/// A request's scalar as the bytes of one element of type t (cpu_ops' StoreScalar).
uint64_t ScalarPattern(DType t, const ir::Scalar& v) {
  uint8_t buf[8] = {};
  if (v.integer && !ir::IsFloat(t)) cpu::detail::StoreI(t, buf, 0, static_cast<uint64_t>(v.i));
  else cpu::detail::StoreF(t, buf, 0, v.AsDouble());
  uint64_t bits = 0;
  std::memcpy(&bits, buf, 8);
  return bits;
}
}  // namespace

Status OpenClOps::Eye(Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = out.shape();
  if (s.size() < 2) return Status::Internal("eye of rank < 2");
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  ir::Scalar one, zero;
  one.i = 1;
  KernelSource src = EyeKernel(static_cast<unsigned>(DTypeSize(out.type())));
  auto e = Kernel(src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(s[s.size() - 2]), L(s[s.size() - 1]), L(ScalarPattern(out.type(), one)),
                      L(ScalarPattern(out.type(), zero))},
                n, *o, out.bytes());
}

Status OpenClOps::Fill(Tensor& out, const ir::Scalar& value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.bytes() == 0) return Status::Ok();
  const uint64_t pattern = ScalarPattern(out.type(), value);
  auto o = Output(out);
  if (!o.ok()) return o.status();
  cl_int err = clEnqueueFillBuffer(queue_, o->get(), &pattern, DTypeSize(out.type()), 0, out.bytes(), 0, nullptr,
                                   nullptr);
  Status s = err == CL_SUCCESS ? Finish(*o, out.bytes()) : Status::Internal(ClErrorText("clEnqueueFillBuffer", err));
  if (err == CL_SUCCESS) stats_.launches += 1;
  RestoreFatalSignals();
  return s;
}

namespace {
uint64_t ParamBits(double v, bool fp64) {
  if (fp64) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return b;
  }
  float f = static_cast<float>(v);
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
}  // namespace

Status OpenClOps::RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = RandomKernel(out.type(), false, fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(seed), L(ParamBits(lo, fp64_)), L(ParamBits(hi, fp64_))}, n, *o, out.bytes());
}

Status OpenClOps::RandomNormal(Tensor& out, uint64_t seed, double mean, double std) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = RandomKernel(out.type(), true, fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*o), L(n), L(seed), L(ParamBits(mean, fp64_)), L(ParamBits(std, fp64_))}, n, *o,
                out.bytes());
}

namespace {
/// meta for a 3-operand broadcast, and its mode (0 when every operand has out's shape).
uint32_t TernaryMeta(const Tensor& x, const Tensor& y, const Tensor& z, const Shape& os, std::vector<uint64_t>& meta) {
  if (x.shape() == os && y.shape() == os && z.shape() == os) return 0;
  meta.push_back(os.size());
  meta.insert(meta.end(), os.begin(), os.end());
  for (const Tensor* t : {&x, &y, &z}) {
    auto st = BroadcastStrides(t->shape(), os);
    meta.insert(meta.end(), st.begin(), st.end());
  }
  return 1;
}
}  // namespace

Status OpenClOps::Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  (void)compute;  // as in cpu::Select: each operand converts to out's type
  auto src = SelectKernel(pred.type(), a.type(), b.type(), out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  if (pred.shape().size() > os.size() || a.shape().size() > os.size() || b.shape().size() > os.size()) {
    return Status::Internal("select rank mismatch");
  }
  std::vector<uint64_t> meta;
  const uint32_t mode = TernaryMeta(pred, a, b, os, meta);
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto mp = Input(pred);
  if (!mp.ok()) return mp.status();
  auto ma = Input(a);
  if (!ma.ok()) return ma.status();
  auto mb = Input(b);
  if (!mb.ok()) return mb.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*mp), M(*ma), M(*mb), M(*mo), L(n), M(*mm), U(mode)}, n, *mo, out.bytes());
}

Status OpenClOps::Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto src = ClipKernel(x.type(), lo.type(), hi.type(), compute, out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  if (x.shape().size() > os.size() || lo.shape().size() > os.size() || hi.shape().size() > os.size()) {
    return Status::Internal("clip rank mismatch");
  }
  std::vector<uint64_t> meta;
  const uint32_t mode = TernaryMeta(x, lo, hi, os, meta);
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto mx = Input(x);
  if (!mx.ok()) return mx.status();
  auto ml = Input(lo);
  if (!ml.ok()) return ml.status();
  auto mh = Input(hi);
  if (!mh.ok()) return mh.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*mx), M(*ml), M(*mh), M(*mo), L(n), M(*mm), U(mode)}, n, *mo, out.bytes());
}

Status OpenClOps::BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = out.shape().size();
  if (axes.size() != in.shape().size() || out.type() != in.type()) return Status::Internal("broadcast mismatch");
  const auto own = RowMajorStrides(in.shape());
  std::vector<uint64_t> st(rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(rank) : axes[i];
    if (a < 0 || static_cast<size_t>(a) >= rank) return Status::Internal("broadcast axis out of range");
    st[static_cast<size_t>(a)] = in.shape()[i] == 1 ? 0 : own[i];
  }
  return GatherCopy(in, st, 0, out);
}

Status OpenClOps::Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (out.shape() != in.shape() || out.type() != in.type()) return Status::Internal("reverse mismatch");
  const auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> walk = st;
  uint64_t base = 0;
  for (int64_t a : axes) {
    const int64_t ax = a < 0 ? a + static_cast<int64_t>(rank) : a;
    if (ax < 0 || static_cast<size_t>(ax) >= rank) return Status::Internal("reverse axis out of range");
    const size_t d = static_cast<size_t>(ax);
    if (in.shape()[d] == 0) return Status::Ok();
    base += (in.shape()[d] - 1) * st[d];
    walk[d] = 0 - st[d];  // a negative stride, in modular arithmetic (the kernel's too)
  }
  return GatherCopy(in, walk, base, out);
}

Status OpenClOps::Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (config.size() != rank || out.shape().size() != rank || out.type() != in.type()) {
    return Status::Internal("pad mismatch");
  }
  if (out.bytes() == 0) return Status::Ok();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  const uint64_t pattern = ScalarPattern(out.type(), value);
  cl_int err = clEnqueueFillBuffer(queue_, mo->get(), &pattern, DTypeSize(out.type()), 0, out.bytes(), 0, nullptr,
                                   nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueFillBuffer", err));
  stats_.launches += 1;
  // The input elements that land inside: per dim a contiguous index range [i0, i1), placed at
  // lo + idx * (interior + 1).
  const auto ist = RowMajorStrides(in.shape()), ost = RowMajorStrides(out.shape());
  Shape walk(rank);
  std::vector<uint64_t> is(rank), os(rank);
  uint64_t ibase = 0, obase = 0;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t lo = config[d].lo, step = config[d].interior + 1, odim = static_cast<int64_t>(out.shape()[d]);
    const int64_t idim = static_cast<int64_t>(in.shape()[d]);
    int64_t i0 = lo >= 0 ? 0 : (-lo + step - 1) / step;
    int64_t i1 = odim - lo <= 0 ? 0 : std::min<int64_t>(idim, (odim - lo + step - 1) / step);
    i0 = std::min(i0, idim);
    if (i1 < i0) i1 = i0;
    walk[d] = static_cast<uint64_t>(i1 - i0);
    is[d] = ist[d];
    // A dim that copies at most one element needs no stride; leaving step * ost[d] out keeps a
    // huge interior (whose product with the stride would wrap) out of the kernel's arithmetic.
    os[d] = walk[d] > 1 ? static_cast<uint64_t>(step) * ost[d] : 0;
    ibase += static_cast<uint64_t>(i0) * ist[d];
    obase += static_cast<uint64_t>(lo + i0 * step) * ost[d];
  }
  Status s = Status::Ok();
  if (in.bytes() != 0) {
    auto mi = Input(in);
    if (!mi.ok()) return mi.status();
    s = EnqueueCopy(in.type(), *mi, out.type(), *mo, walk, is, os, ibase, obase);
  }
  if (s.ok()) s = Finish(*mo, out.bytes());
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                              Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& os = out.shape();
  if (ins.size() != shapes.size() || axis >= os.size()) return Status::Internal("concatenate mismatch");
  for (const Tensor* x : ins) {  // every variant checked before anything runs
    auto src = CopyKernel(x->type(), out.type(), fp64_);
    if (!src.ok()) return src.status();
  }
  if (out.bytes() == 0) return Status::Ok();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  const auto ost = RowMajorStrides(os);
  uint64_t at = 0;
  std::vector<ClMem> held;
  for (size_t t = 0; t < ins.size(); ++t) {
    const Tensor& x = *ins[t];
    if (shapes[t].size() != os.size()) return Status::Internal("concatenate rank mismatch");
    if (x.elements() != 0) {
      auto mi = Input(x);
      if (!mi.ok()) return mi.status();
      Status s = EnqueueCopy(x.type(), *mi, out.type(), *mo, shapes[t], RowMajorStrides(shapes[t]), ost, 0,
                             at * ost[axis]);
      if (!s.ok()) return s;
      held.push_back(std::move(*mi));
    }
    at += shapes[t][axis];
  }
  Status s = Finish(*mo, out.bytes());
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t rank = in.shape().size();
  if (starts.size() != rank || update.shape().size() != rank || out.shape() != in.shape()) {
    return Status::Internal("put_slice mismatch");
  }
  for (DType t : {in.type(), update.type()}) {
    auto src = CopyKernel(t, out.type(), fp64_);
    if (!src.ok()) return src.status();
  }
  if (out.bytes() == 0) return Status::Ok();
  const auto st = RowMajorStrides(in.shape());
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mi = Input(in);
  if (!mi.ok()) return mi.status();
  Status s = EnqueueCopy(in.type(), *mi, out.type(), *mo, in.shape(), st, st, 0, 0);
  if (!s.ok()) return s;
  ClMem mu;
  if (update.elements() != 0) {
    uint64_t base = 0;
    for (size_t d = 0; d < rank; ++d) base += static_cast<uint64_t>(starts[d]) * st[d];
    auto m = Input(update);
    if (!m.ok()) return m.status();
    mu = std::move(*m);
    s = EnqueueCopy(update.type(), mu, out.type(), *mo, update.shape(), RowMajorStrides(update.shape()), st, 0, base);
    if (!s.ok()) return s;
  }
  s = Finish(*mo, out.bytes());
  RestoreFatalSignals();
  return s;
}

Status OpenClOps::Gather(const Tensor& in, const Tensor& indices, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = in.shape();
  const uint64_t rank = s.size();
  const uint64_t count = out.elements();
  const DType xt = indices.type();
  if (out.type() != in.type() || indices.elements() != count * rank) return Status::Internal("gather mismatch");
  auto check_src = GatherCheckKernel(xt);
  if (!check_src.ok()) return check_src.status();
  auto copy_src = GatherCopyKernel(static_cast<unsigned>(DTypeSize(in.type())), xt);
  if (!copy_src.ok()) return copy_src.status();
  if (count == 0) return Status::Ok();
  const auto st = RowMajorStrides(s);
  std::vector<uint64_t> meta(s.begin(), s.end());
  meta.insert(meta.end(), st.begin(), st.end());
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  auto mx = Input(indices);
  if (!mx.ok()) return mx.status();
  if (rank > 0) {
    // Every coordinate checked, on the device, before anything is written (as take's).
    const uint64_t groups0 = std::min<uint64_t>(count, uint64_t{1} << 30);
    const uint64_t chunk = (count + groups0 - 1) / groups0;
    const uint64_t groups = (count + chunk - 1) / chunk;
    auto ec = Kernel(*check_src);
    if (!ec.ok()) return ec.status();
    auto bad = RunCheck(**ec, {M(*mx), L(count), L(rank), M(*mm), L(chunk)}, groups);
    if (!bad.ok()) return bad.status();
    if (*bad != ~cl_uint{0}) {
      const uint64_t end = std::min<uint64_t>((uint64_t{*bad} + 1) * chunk, count);
      for (uint64_t e = uint64_t{*bad} * chunk; e < end; ++e) {
        for (uint64_t d = 0; d < rank; ++d) {
          const uint64_t v = HostLoadI(xt, indices.data(), e * rank + d);
          if (v >= s[d]) {
            return Status(ErrorKind::kOutOfRange, "gather: coordinate " + std::to_string(static_cast<int64_t>(v)) +
                                                      " of entry " + std::to_string(e) + " is outside axis " +
                                                      std::to_string(d) + " of size " + std::to_string(s[d]));
          }
        }
      }
      return Status::Internal("gather: the device flagged entry chunk " + std::to_string(*bad) +
                              " but the host finds no bad coordinate in it");
    }
  }
  auto e = Kernel(*copy_src);
  if (!e.ok()) return e.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*mx), M(*o), L(count), L(rank), M(*mm)}, count, *o, out.bytes());
}

Status OpenClOps::Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  const Shape& s = in.shape();
  if (axis >= s.size() || out.shape() != s) return Status::Internal("sort mismatch");
  auto src = SortKernel(in.type(), descending, arg, fp64_);
  if (!src.ok()) return src.status();
  if (out.elements() == 0) return Status::Ok();
  uint64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  const uint64_t n = s[axis], rows = outer * inner;
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  Reservation hold;  // the scratch's bytes stay on the budget until the kernel has finished
  auto scratch = DeviceScratch(2 * rows * n * sizeof(uint64_t), out.budget(), hold);
  if (!scratch.ok()) return scratch.status();
  auto a = Input(in);
  if (!a.ok()) return a.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  return Launch(**e, {M(*a), M(*o), L(rows), L(n), L(inner), M(*scratch)}, rows, *o, out.bytes());
}

Status OpenClOps::Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& p, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (out.type() != compute) return Status::Internal("dot output type mismatch");
  auto mm_src = MatmulKernel(compute, fp64_);
  if (!mm_src.ok()) return mm_src.status();
  for (DType t : {a.type(), b.type()}) {
    auto src = CopyKernel(t, compute, fp64_);
    if (!src.ok()) return src.status();
  }
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  // a as [batch, m, k] and b as [batch, k, n], contiguous, in the compute type (cpu::Dot's
  // PermuteConvert, on the device).
  std::vector<uint64_t> pa = p.ba, pb = p.bb;
  pa.insert(pa.end(), p.fa.begin(), p.fa.end());
  pa.insert(pa.end(), p.ca.begin(), p.ca.end());
  pb.insert(pb.end(), p.cb.begin(), p.cb.end());
  pb.insert(pb.end(), p.fb.begin(), p.fb.end());
  const size_t item = DTypeSize(compute);
  Reservation hold_a, hold_b;  // the staged operands' bytes, on the budget until the product is done
  auto stage = [&](const Tensor& x, const std::vector<uint64_t>& perm, Reservation& hold) -> Result<ClMem> {
    if (perm.size() != x.shape().size()) return Status::Internal("dot plan does not match an operand's rank");
    auto buf = DeviceScratch(x.elements() * item, out.budget(), hold);
    if (!buf.ok()) return buf.status();
    if (x.elements() == 0) return buf;
    const auto st = RowMajorStrides(x.shape());
    Shape ps(perm.size());
    std::vector<uint64_t> pst(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      if (perm[i] >= x.shape().size()) return Status::Internal("dot axis out of range");
      ps[i] = x.shape()[perm[i]];
      pst[i] = st[perm[i]];
    }
    auto mi = Input(x);
    if (!mi.ok()) return mi.status();
    MURE_RETURN_IF_ERROR(EnqueueCopy(x.type(), *mi, compute, *buf, ps, pst, RowMajorStrides(ps), 0, 0));
    return buf;
  };
  auto A = stage(a, pa, hold_a);
  if (!A.ok()) return A.status();
  auto B = stage(b, pb, hold_b);
  if (!B.ok()) return B.status();
  auto e = Kernel(*mm_src);
  if (!e.ok()) return e.status();
  auto o = Output(out);
  if (!o.ok()) return o.status();
  if (p.batch * p.m * p.n != n) return Status::Internal("dot plan does not match the output");
  return Launch(**e, {M(*A), M(*B), M(*o), L(n), L(p.m), L(p.n), L(p.k)}, n, *o, out.bytes());
}

Status OpenClOps::Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  std::lock_guard<std::mutex> lock(mu_);
  // a's elements times b's: a multiply with a's strides on the leading axes and b's on the rest
  // (cpu::Outer's values: operands rounded to `compute`, one product).
  auto src = BinaryKernel(BinaryOp::kMultiply, a.type(), b.type(), compute, out.type(), fp64_);
  if (!src.ok()) return src.status();
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  const Shape& os = out.shape();
  const size_t ra = a.shape().size(), rb = b.shape().size();
  if (ra + rb != os.size()) return Status::Internal("outer rank mismatch");
  const auto sa = RowMajorStrides(a.shape()), sb = RowMajorStrides(b.shape());
  std::vector<uint64_t> meta{os.size()};
  meta.insert(meta.end(), os.begin(), os.end());
  meta.insert(meta.end(), sa.begin(), sa.end());
  meta.insert(meta.end(), rb, 0);
  meta.insert(meta.end(), ra, 0);
  meta.insert(meta.end(), sb.begin(), sb.end());
  auto e = Kernel(*src);
  if (!e.ok()) return e.status();
  auto ma = Input(a);
  if (!ma.ok()) return ma.status();
  auto mb = Input(b);
  if (!mb.ok()) return mb.status();
  auto mo = Output(out);
  if (!mo.ok()) return mo.status();
  auto mm = Constants(meta);
  if (!mm.ok()) return mm.status();
  return Launch(**e, {M(*ma), M(*mb), M(*mo), L(n), M(*mm), U(3)}, n, *mo, out.bytes());
}

}  // namespace mure::ocl
