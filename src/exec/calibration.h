// mure — the start-up measurement of the devices, for placing the ops a caller leaves to the node
// (sched/planner.h's CostModel). Takes about 0.1 s.
#pragma once

#include "exec/blis_executor.h"
#include "exec/opencl_executor.h"

namespace mure {

/// What the devices were measured to do.
struct DeviceSpeeds {
  double cpu_gbps = 0;      ///< CPU executor, f32 add, GB/s moved
  double opencl_gbps = 0;   ///< OpenCL device, the same add (0 without one)
  double gemm_gflops = 0;   ///< BLIS sgemm 512 x 512, all threads (0 without BLIS)
  double opencl_launch_us = 0;  ///< OpenCL device: an add of 16 elements, best of a few (0 without one)
};

/// Measure the CPU executor, and `blis` and `opencl` where not null: best of a few runs each, on
/// operands too large for the caches. A measurement that cannot run reads 0. Logs the result.
DeviceSpeeds MeasureDevices(BlisExecutor* blis, OpenClExecutor* opencl);

}  // namespace mure
