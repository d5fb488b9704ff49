// mure — elementwise kernels on an OpenCL device (PoCL on the CPU here; GPUs in the field).
//
// Every OpenCL object is owned by an RAII handle; every failing call is reported by name with its
// error code, and a failed build returns its build log. The op set (ops(), exec/opencl_ops.h)
// generates and compiles its kernels on first use and caches them (OpenClOps::Prebuild moves that
// to start-up for the variants named: the f32 add and multiply here).
//
// Thread-safety: one thread at a time per executor (the node runs it on its own work queue).
#pragma once

#include <CL/cl.h>

#include <memory>
#include <string>
#include <utility>

#include "mure/config.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure {

namespace ocl {
class OpenClOps;
}

/// Move-only owner of one OpenCL object; releases it with `Release`.
template <typename T, cl_int (*Release)(T)>
class ClHandle {
 public:
  ClHandle() = default;
  explicit ClHandle(T h) : h_(h) {}
  ~ClHandle() { reset(); }
  ClHandle(ClHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  ClHandle& operator=(ClHandle&& o) noexcept {
    if (this != &o) { reset(); h_ = std::exchange(o.h_, nullptr); }
    return *this;
  }
  ClHandle(const ClHandle&) = delete;
  ClHandle& operator=(const ClHandle&) = delete;
  T get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  void reset() {
    if (h_) Release(h_);
    h_ = nullptr;
  }

 private:
  T h_ = nullptr;
};

using ClContext = ClHandle<cl_context, clReleaseContext>;
using ClQueue = ClHandle<cl_command_queue, clReleaseCommandQueue>;
using ClProgram = ClHandle<cl_program, clReleaseProgram>;
using ClKernel = ClHandle<cl_kernel, clReleaseKernel>;
using ClMem = ClHandle<cl_mem, clReleaseMemObject>;

/// "clEnqueueNDRangeKernel failed: CL_OUT_OF_RESOURCES (-5)".
std::string ClErrorText(const char* call, cl_int err);

/// A device's string property (CL_DEVICE_NAME, CL_DRIVER_VERSION, ...); empty when unavailable.
std::string DeviceString(cl_device_id d, cl_device_info what);

struct OpenClInfo {
  std::string platform;      ///< platform name
  std::string name;          ///< device name
  std::string version;       ///< device OpenCL version
  std::string driver;        ///< driver version
  std::string device_type;   ///< "cpu", "gpu", "accelerator", "other"
  unsigned compute_units = 0;
  bool fp64 = false;
  uint64_t global_mem_bytes = 0;
  double build_ms = 0;       ///< time to build the kernels at start-up
};

enum class ElementwiseOp { kAdd, kMultiply };

class OpenClExecutor {
 public:
  /// Pick the first device (or the one whose name contains cfg.opencl_device), build kernels.
  static Result<std::unique_ptr<OpenClExecutor>> Create(const Config& cfg);
  ~OpenClExecutor();

  /// out = a (op) b, elementwise, for f32 tensors of equal shape (the op set's kernels).
  Status Elementwise(ElementwiseOp op, const Tensor& a, const Tensor& b, Tensor& out);
  /// Shape and type rules of the elementwise ops.
  static Status CheckElementwise(ElementwiseOp op, const Tensor& a, const Tensor& b);

  const OpenClInfo& info() const { return info_; }
  bool is_cpu() const { return info_.device_type == "cpu"; }

  /// The op set on this device (exec/opencl_ops.h): kernels generated and compiled on first use.
  ocl::OpenClOps& ops() { return *ops_; }
  cl_context context() const { return context_.get(); }
  cl_command_queue queue() const { return queue_.get(); }
  cl_device_id device() const { return device_; }

 private:
  OpenClExecutor() = default;
  cl_device_id device_ = nullptr;
  ClContext context_;
  ClQueue queue_;
  OpenClInfo info_;
  std::unique_ptr<ocl::OpenClOps> ops_;  // declared after context_ and queue_: released first
};

}  // namespace mure
