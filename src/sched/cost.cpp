// mure — what a planned op is expected to cost (sched/planner.h's EstimateMicros), and whether a
// tiny one may run on the thread that received it (RunsInline, inline_max_us).
#include <cmath>
#include <limits>

#include "ir/ops.h"
#include "sched/planner.h"

namespace mure {

/// What `p` costs, for EstimateMicros: the ops whose time is linear in their bytes (elementwise)
/// or in their flops (dot). Every other op stays uncosted (never estimated, never run inline).
void SetWork(const ir::Node& node, const std::vector<ValueInfo>& in, PlannedOp& p) {
  auto bytes_of = [](DType t, const Shape& s) {
    auto b = ByteSize(t, s);
    return b.ok() ? static_cast<double>(*b) : std::numeric_limits<double>::infinity();
  };
  double bytes = bytes_of(p.type, p.shape);
  for (const ValueInfo& v : in) bytes += bytes_of(v.type, v.shape);
  double weight = 0, flops = 0;
  if (auto* b = std::get_if<ir::Binary>(&node)) {
    // pow, atan2, fmod and complex arithmetic cost several times an add per byte; the mixed-type
    // path converts each element: the weights keep the estimate an upper bound.
    const bool costly = !b->op || *b->op == ir::BinaryOp::kPow || *b->op == ir::BinaryOp::kRemainder ||
                        *b->op == ir::BinaryOp::kAtan2 || *b->op == ir::BinaryOp::kQuotient ||
                        ir::IsComplex(p.type) || (!in.empty() && ir::IsComplex(in[0].type));
    weight = costly ? 8 : 2;
  } else if (std::holds_alternative<ir::Unary>(node)) {
    weight = 8;  // exp, erf, ...
  } else if (std::holds_alternative<ir::Select>(node) || std::holds_alternative<ir::Clip>(node) ||
             std::holds_alternative<ir::AsType>(node)) {
    weight = 1;
  } else if (std::holds_alternative<ir::Dot>(node) && in.size() == 2 &&
             (p.type == DType::kF32 || p.type == DType::kF64)) {
    // Real floating products only: they run in BLIS or exec/cpu_executor.cpp's small-product loop
    // at about the measured rate (integer and complex ones take slower generic loops).
    // m*k*n from the element counts (a: m*k, b: k*n, out: m*n); batch dims only raise it (bound).
    auto elems = [](const Shape& s) {
      double n = 1;
      for (uint64_t d : s) n *= static_cast<double>(d);
      return n;
    };
    weight = 1;
    flops = 2 * std::sqrt(elems(in[0].shape) * elems(in[1].shape) * elems(p.shape));
  } else {
    return;
  }
  const double work = bytes * weight;
  constexpr double kMax = 1e18;  // anything near it is far from tiny anyway
  if (!(work < kMax) || !(flops < kMax)) return;
  p.costed = true;
  p.work_bytes = static_cast<uint64_t>(work);
  p.work_flops = static_cast<uint64_t>(flops);
}

double EstimateMicros(const PlannedOp& op, const CostModel& cost) {
  constexpr double kNever = std::numeric_limits<double>::infinity();
  if (!op.costed) return kNever;
  const bool device = op.device == Device::kOpenCl;
  const double gbps = device ? cost.opencl_gbps : cost.cpu_gbps;
  if (!(gbps > 0)) return kNever;
  double us = (device ? cost.opencl_launch_us : 0) + static_cast<double>(op.work_bytes) / (gbps * 1e3);
  if (op.work_flops) {
    if (device || !(cost.gemm_gflops > 0)) return kNever;  // the device's products were not measured
    us += static_cast<double>(op.work_flops) / (cost.gemm_gflops * 1e3);
  }
  return us;
}

bool RunsInline(const PlannedOp& op, const CostModel& cost, uint32_t max_us, uint32_t queued) {
  return max_us > 0 && queued == 0 && op.device == Device::kCpu && op.parts.empty() &&
         EstimateMicros(op, cost) <= static_cast<double>(max_us);
}

}  // namespace mure
