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
  auto ops = ocl::OpenClOps::Create(ex->context_.get(), ex->device_, ex->queue_.get(), info.fp64);
  if (!ops.ok()) return ops.status();
  ex->ops_ = std::move(*ops);
  // The f32 add and multiply kernels (Elementwise, the start-up calibration) are built and
  // launched once now: the device compiler may finish its work on first use, and that belongs at
  // start-up, not on the first request.
  Status warm = ex->ops_->Prebuild({ocl::KernelRequest::Binary(ir::BinaryOp::kAdd, DType::kF32, DType::kF32),
                                    ocl::KernelRequest::Binary(ir::BinaryOp::kMultiply, DType::kF32, DType::kF32)});
  if (!warm.ok()) return Status::Internal("building the elementwise kernels failed: " + warm.message());
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
  // The op table's kernels (exec/opencl_ops.h): one formula per op for every path.
  return ops_->Binary(op == ElementwiseOp::kAdd ? ir::BinaryOp::kAdd : ir::BinaryOp::kMultiply, a, b, DType::kF32, out);
}

}  // namespace mure
