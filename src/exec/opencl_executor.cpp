#include "exec/opencl_executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "common/signals.h"
#include "exec/opencl_codegen.h"
#include "exec/opencl_ops.h"

namespace mure {
namespace {

const char* kSource = R"CL(
__kernel void mure_add_f32(__global const float* restrict a, __global const float* restrict b,
                           __global float* restrict out, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) out[i] = a[i] + b[i];
}
__kernel void mure_multiply_f32(__global const float* restrict a, __global const float* restrict b,
                                __global float* restrict out, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) out[i] = a[i] * b[i];
}
)CL";

const char* ClErrorName(cl_int e) {
  switch (e) {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_PLATFORM: return "CL_INVALID_PLATFORM";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_HOST_PTR: return "CL_INVALID_HOST_PTR";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    default: return "CL error";
  }
}

std::string PlatformString(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  clGetPlatformInfo(p, what, n, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

}  // namespace

std::string DeviceString(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  if (clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  clGetDeviceInfo(d, what, n, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::string ClErrorText(const char* call, cl_int err) {
  return std::string(call) + " failed: " + ClErrorName(err) + " (" + std::to_string(err) + ")";
}

OpenClExecutor::~OpenClExecutor() {
  if (queue_) clFinish(queue_.get());
  ops_.reset();
}

Result<std::unique_ptr<OpenClExecutor>> OpenClExecutor::Create(const Config& cfg) {
  std::unique_ptr<OpenClExecutor> ex(new OpenClExecutor());
  cl_uint nplat = 0;
  cl_int err = clGetPlatformIDs(0, nullptr, &nplat);
  if (err != CL_SUCCESS || nplat == 0) {
    return Status(ErrorKind::kUnsupported, "no OpenCL platform (is an ICD such as pocl-opencl-icd installed?): " +
                                               ClErrorText("clGetPlatformIDs", err));
  }
  std::vector<cl_platform_id> platforms(nplat);
  clGetPlatformIDs(nplat, platforms.data(), nullptr);
  cl_platform_id chosen_platform = nullptr;
  for (cl_platform_id p : platforms) {
    cl_uint ndev = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &ndev) != CL_SUCCESS || ndev == 0) continue;
    std::vector<cl_device_id> devs(ndev);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, ndev, devs.data(), nullptr);
    for (cl_device_id d : devs) {
      if (!cfg.opencl_device.empty() && DeviceString(d, CL_DEVICE_NAME).find(cfg.opencl_device) == std::string::npos) {
        continue;
      }
      ex->device_ = d;
      chosen_platform = p;
      break;
    }
    if (ex->device_) break;
  }
  if (!ex->device_) {
    return Status(ErrorKind::kUnsupported,
                  cfg.opencl_device.empty() ? "no OpenCL device found"
                                            : "no OpenCL device name contains \"" + cfg.opencl_device + "\"");
  }
  OpenClInfo& info = ex->info_;
  info.platform = PlatformString(chosen_platform, CL_PLATFORM_NAME);
  info.name = DeviceString(ex->device_, CL_DEVICE_NAME);
  info.version = DeviceString(ex->device_, CL_DEVICE_VERSION);
  info.driver = DeviceString(ex->device_, CL_DRIVER_VERSION);
  cl_device_type type = 0;
  clGetDeviceInfo(ex->device_, CL_DEVICE_TYPE, sizeof type, &type, nullptr);
  info.device_type = (type & CL_DEVICE_TYPE_GPU) ? "gpu" : (type & CL_DEVICE_TYPE_CPU) ? "cpu"
                     : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator" : "other";
  cl_uint cu = 0;
  clGetDeviceInfo(ex->device_, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, nullptr);
  info.compute_units = cu;
  cl_device_fp_config fp64 = 0;
  clGetDeviceInfo(ex->device_, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, nullptr);
  info.fp64 = fp64 != 0;
  cl_ulong mem = 0;
  clGetDeviceInfo(ex->device_, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, nullptr);
  info.global_mem_bytes = mem;

  ex->context_ = ClContext(clCreateContext(nullptr, 1, &ex->device_, nullptr, nullptr, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateContext", err));
  ex->queue_ = ClQueue(clCreateCommandQueue(ex->context_.get(), ex->device_, 0, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateCommandQueue", err));

  auto t0 = std::chrono::steady_clock::now();
  const char* src = kSource;
  ex->program_ = ClProgram(clCreateProgramWithSource(ex->context_.get(), 1, &src, nullptr, &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateProgramWithSource", err));
  // The op set's build policy (no contraction, no mad): one for every kernel the node runs.
  err = clBuildProgram(ex->program_.get(), 1, &ex->device_, ocl::kBuildOptions, nullptr, nullptr);
  if (err != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(ex->program_.get(), ex->device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    clGetProgramBuildInfo(ex->program_.get(), ex->device_, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
    return Status::Internal(ClErrorText("clBuildProgram", err) + "; build log: " + log);
  }
  ex->add_f32_ = ClKernel(clCreateKernel(ex->program_.get(), "mure_add_f32", &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateKernel(mure_add_f32)", err));
  ex->mul_f32_ = ClKernel(clCreateKernel(ex->program_.get(), "mure_multiply_f32", &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateKernel(mure_multiply_f32)", err));
  size_t wg = 1;
  clGetKernelWorkGroupInfo(ex->add_f32_.get(), ex->device_, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr);
  ex->local_size_ = std::max<size_t>(1, std::min<size_t>(wg, 256));
  // Launch each kernel once: the device compiler may finish its work on first use, and that
  // belongs at start-up, not on the first request.
  {
    TensorStore scratch(1 << 20);
    auto a = scratch.Allocate(DType::kF32, {64});
    auto o = scratch.Allocate(DType::kF32, {64});
    if (!a.ok() || !o.ok()) return Status::Internal("cannot allocate the warm-up tensors");
    std::memset((*a)->data(), 0, (*a)->bytes());
    for (auto op : {ElementwiseOp::kAdd, ElementwiseOp::kMultiply}) {
      Status s = ex->Elementwise(op, **a, **a, **o);
      if (!s.ok()) return Status::Internal("warm-up launch failed: " + s.message());
    }
  }
  auto ops = ocl::OpenClOps::Create(ex->context_.get(), ex->device_, ex->queue_.get(), info.fp64);
  if (!ops.ok()) return ops.status();
  ex->ops_ = std::move(*ops);
  info.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  RestoreFatalSignals();
  LogInfo("OpenCL: " + info.platform + " / " + info.name + " (" + info.device_type + ", " +
          std::to_string(info.compute_units) + " compute units, " + info.version + "); kernels built in " +
          std::to_string(static_cast<int>(info.build_ms)) + " ms");
  return ex;
}

Status OpenClExecutor::CheckElementwise(ElementwiseOp op, const Tensor& a, const Tensor& b) {
  const char* name = op == ElementwiseOp::kAdd ? "add" : "multiply";
  if (a.type() != DType::kF32 || b.type() != DType::kF32) {
    return Status(ErrorKind::kTypeMismatch, std::string(name) + " on the OpenCL device takes {:f, 32} tensors, got " +
                                                DTypeToString(a.type()) + " and " + DTypeToString(b.type()));
  }
  if (a.shape() != b.shape()) {
    return Status(ErrorKind::kShapeMismatch, std::string(name) + " needs equal shapes, got " +
                                                 ShapeToString(a.shape()) + " and " + ShapeToString(b.shape()));
  }
  return Status::Ok();
}

Status OpenClExecutor::Elementwise(ElementwiseOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  MURE_RETURN_IF_ERROR(CheckElementwise(op, a, b));
  if (out.type() != a.type() || out.shape() != a.shape()) return Status::Internal("elementwise output mismatch");
  const uint64_t n = a.elements();
  if (n == 0) return Status::Ok();
  cl_int err = CL_SUCCESS;
  cl_context ctx = context_.get();
  // The tensors' memory is used in place (CL_MEM_USE_HOST_PTR): no copies on a CPU device.
  ClMem ma(clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, a.bytes(), const_cast<uint8_t*>(a.data()), &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(a)", err));
  ClMem mb(clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, b.bytes(), const_cast<uint8_t*>(b.data()), &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(b)", err));
  ClMem mo(clCreateBuffer(ctx, CL_MEM_WRITE_ONLY | CL_MEM_USE_HOST_PTR, out.bytes(), out.data(), &err));
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clCreateBuffer(out)", err));
  cl_kernel k = op == ElementwiseOp::kAdd ? add_f32_.get() : mul_f32_.get();
  cl_mem args[3] = {ma.get(), mb.get(), mo.get()};
  cl_ulong count = n;
  for (cl_uint i = 0; i < 3; ++i) {
    err = clSetKernelArg(k, i, sizeof(cl_mem), &args[i]);
    if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clSetKernelArg", err));
  }
  err = clSetKernelArg(k, 3, sizeof count, &count);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clSetKernelArg", err));
  size_t global = (n + local_size_ - 1) / local_size_ * local_size_;
  err = clEnqueueNDRangeKernel(queue_.get(), k, 1, nullptr, &global, &local_size_, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueNDRangeKernel", err));
  // Mapping the output makes the host copy current (a no-op on a CPU device with host memory).
  void* mapped = clEnqueueMapBuffer(queue_.get(), mo.get(), CL_TRUE, CL_MAP_READ, 0, out.bytes(), 0, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueMapBuffer", err));
  err = clEnqueueUnmapMemObject(queue_.get(), mo.get(), mapped, 0, nullptr, nullptr);
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clEnqueueUnmapMemObject", err));
  err = clFinish(queue_.get());
  RestoreFatalSignals();
  if (err != CL_SUCCESS) return Status::Internal(ClErrorText("clFinish", err));
  return Status::Ok();
}

}  // namespace mure
