#include "exec/opencl_ops.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/signals.h"

namespace mure::ocl {

using ir::BinaryOp;
using ir::ReduceOp;
using ir::UnaryOp;

namespace {

// Division and sqrt correctly rounded (the reference's float results are), no contraction (the
// kernels say FP_CONTRACT OFF), no fast-math.
constexpr const char* kBuildOptions = "-cl-fp32-correctly-rounded-divide-sqrt";
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

Status OpenClOps::Gather(const Tensor& in, const std::vector<uint64_t>& strides, uint64_t base, Tensor& out) {
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
  return Gather(in, sa, 0, out);
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
  return Gather(in, sa, base, out);
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
    cl_uint none = ~cl_uint{0}, bad = none;
    cl_int err = CL_SUCCESS;
    ClMem mb(clCreateBuffer(context_, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof bad, &bad, &err));
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(take check)", err));
    const auto t0 = Clock::now();
    Status st = Enqueue(**ec, {M(mi), L(count), L(dim), L(chunk), M(mb)}, groups);
    if (st.ok()) {
      err = clEnqueueReadBuffer(queue_, mb.get(), CL_TRUE, 0, sizeof bad, &bad, 0, nullptr, nullptr);
      if (err != CL_SUCCESS) st = Status::Internal(ClErrorText("clEnqueueReadBuffer(take check)", err));
    }
    RestoreFatalSignals();
    if (!st.ok()) return st;
    if (!(*ec)->launched) {
      (*ec)->launched = true;
      stats_.first_launch_ms += Ms(t0, Clock::now());
    }
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

}  // namespace mure::ocl
