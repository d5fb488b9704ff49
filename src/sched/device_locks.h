// mure — who may compute at the same time. One thread at a time on the OpenCL executor; BLIS (and
// anything else on the CPU executor) and an OpenCL device that is itself the CPU never at the same
// time, since they would fight for the same cores. Every kernel the service runs, single ops,
// fused program kernels and the test-only busy op, takes its locks here.
#pragma once

#include <mutex>
#include <optional>

#include "sched/planner.h"

namespace mure {

class DeviceLocks {
 public:
  /// `opencl_is_cpu`: the OpenCL device computes on the CPU (PoCL).
  explicit DeviceLocks(bool opencl_is_cpu) : opencl_is_cpu_(opencl_is_cpu) {}

  /// The locks held while a kernel runs on one device; released when it goes.
  class Held {
   public:
    Held(Held&&) = default;

   private:
    friend class DeviceLocks;
    Held() = default;
    std::unique_lock<std::mutex> device_;  // the OpenCL executor's, taken first
    std::unique_lock<std::mutex> cpu_;     // the CPU's
  };

  /// Wait for, then hold, what a kernel on `device` needs.
  [[nodiscard]] Held Hold(Device device) {
    Held h;
    if (device == Device::kOpenCl) {
      h.device_ = std::unique_lock<std::mutex>(opencl_mu_);
      if (!opencl_is_cpu_) return h;
    }
    h.cpu_ = std::unique_lock<std::mutex>(cpu_gate_);
    return h;
  }

  /// Hold what a kernel on `device` needs if all of it is free now; nothing (and nothing held)
  /// otherwise. Never waits: for a thread that must not block (a connection's).
  [[nodiscard]] std::optional<Held> TryHold(Device device) {
    Held h;
    if (device == Device::kOpenCl) {
      h.device_ = std::unique_lock<std::mutex>(opencl_mu_, std::try_to_lock);
      if (!h.device_.owns_lock()) return std::nullopt;
      if (!opencl_is_cpu_) return h;
    }
    h.cpu_ = std::unique_lock<std::mutex>(cpu_gate_, std::try_to_lock);
    if (!h.cpu_.owns_lock()) return std::nullopt;
    return h;
  }

 private:
  const bool opencl_is_cpu_;
  std::mutex opencl_mu_;  ///< one thread at a time on the OpenCL executor
  std::mutex cpu_gate_;   ///< held by CPU jobs and by OpenCL jobs on a CPU device
};

}  // namespace mure
