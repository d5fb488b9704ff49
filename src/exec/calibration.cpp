#include "exec/calibration.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>

#include "common/log.h"
#include "exec/cpu_executor.h"
#include "exec/cpu_ops.h"
#include "exec/opencl_ops.h"
#include "ir/ops.h"
#include "store/tensor_store.h"

namespace mure {

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

DeviceSpeeds MeasureDevices(BlisExecutor* blis, OpenClExecutor* opencl) {
  DeviceSpeeds speeds;
  // Best of three, on data that fits neither in cache nor in doubt: 2 M f32 per operand.
  constexpr uint64_t kN = 2u << 20;
  TensorStore scratch(64u << 20);
  auto a = scratch.Allocate(DType::kF32, {kN});
  auto b = scratch.Allocate(DType::kF32, {kN});
  auto c = scratch.Allocate(DType::kF32, {kN});
  if (!a.ok() || !b.ok() || !c.ok()) return speeds;
  for (uint64_t i = 0; i < kN; ++i) {
    (*a)->as<float>()[i] = 1.0f;
    (*b)->as<float>()[i] = 2.0f;
  }
  auto best_gbps = [&](const std::function<Status()>& run) {
    double best = 0;
    for (int rep = 0; rep < 4; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      if (!run().ok()) return 0.0;
      if (rep > 0) best = std::max(best, 3.0 * 4 * kN / Seconds(t0) / 1e9);  // the first run warms up
    }
    return best;
  };
  // Through the CPU executor, as requests run: split over BLIS's threads at this size.
  exec::CpuExecutor cpu_exec(blis);
  speeds.cpu_gbps = best_gbps([&] { return cpu_exec.Binary(ir::BinaryOp::kAdd, **a, **b, DType::kF32, **c); });
  if (opencl) {
    speeds.opencl_gbps =
        best_gbps([&] { return opencl->ops().Binary(ir::BinaryOp::kAdd, **a, **b, DType::kF32, **c); });
    // What a launch costs whatever the data: an add of 16 elements, best of a few after a warm-up.
    auto x = scratch.Allocate(DType::kF32, {16});
    auto y = scratch.Allocate(DType::kF32, {16});
    if (x.ok() && y.ok()) {
      std::memset((*x)->data(), 0, (*x)->bytes());
      double best = 0;
      for (int rep = 0; rep < 6; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        if (!opencl->ops().Binary(ir::BinaryOp::kAdd, **x, **x, DType::kF32, **y).ok()) {
          best = 0;
          break;
        }
        const double us = Seconds(t0) * 1e6;
        if (rep == 1 || (rep > 1 && us < best)) best = us;
      }
      speeds.opencl_launch_us = best;
    }
  }
  if (blis) {
    constexpr uint64_t kM = 512;
    auto x = scratch.Allocate(DType::kF32, {kM, kM});
    auto y = scratch.Allocate(DType::kF32, {kM, kM});
    auto z = scratch.Allocate(DType::kF32, {kM, kM});
    if (x.ok() && y.ok() && z.ok()) {
      std::memset((*x)->data(), 0, (*x)->bytes());
      std::memset((*y)->data(), 0, (*y)->bytes());
      double best = 0;
      for (int rep = 0; rep < 3; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        if (!blis->Gemm(**x, **y, **z).ok()) break;
        if (rep > 0) best = std::max(best, 2.0 * kM * kM * kM / Seconds(t0) / 1e9);
      }
      speeds.gemm_gflops = best;
    }
  }
  LogInfo("cost model: CPU elementwise " + std::to_string(static_cast<int>(speeds.cpu_gbps)) + " GB/s, OpenCL " +
          std::to_string(static_cast<int>(speeds.opencl_gbps)) + " GB/s (" +
          std::to_string(static_cast<int>(speeds.opencl_launch_us)) + " us per launch), BLIS sgemm " +
          std::to_string(static_cast<int>(speeds.gemm_gflops)) + " GFLOP/s");
  return speeds;
}

}  // namespace mure
