// mure tests — operands by handle for tests that plan single ops and run their kernels
// (executor_test, dynamic_slice_test, cpu_fft_test).
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "exec/blis_executor.h"
#include "opencl_fixture.h"
#include "sched/planner.h"

namespace mure::testing {

/// Operands by handle, as a request's lookup sees them; Run plans' kernels on them.
struct Operands {
  std::map<uint64_t, std::shared_ptr<Tensor>> byid;
  OperandLookup lookup = [this](uint64_t id) -> Result<ValueInfo> {
    auto it = byid.find(id);
    if (it == byid.end()) return Status(ErrorKind::kUnknownHandle, "no tensor " + std::to_string(id));
    return ValueInfo{it->second->type(), it->second->shape()};
  };
  /// Allocate and run a planned op: the result tensor (allocated full of garbage, so that an
  /// element the kernel leaves unwritten shows).
  std::shared_ptr<Tensor> Run(const PlannedOp& p) {
    std::vector<const Tensor*> ins;
    for (uint64_t id : p.operands) ins.push_back(byid.at(id).get());
    auto out = Alloc(p.type, p.shape);
    if (out->bytes()) std::memset(out->data(), 0xa5, out->bytes());
    Status st = p.kernel(ins, *out);
    INFO(st.message());
    REQUIRE(st.ok());
    return out;
  }
  /// The planner's refusal of `node` (the test fails if it plans).
  Status Refused(const ir::Node& node) {
    auto p = PlanOp(node, lookup, Executors{}, ir::Placement::kAuto);
    REQUIRE_FALSE(p.ok());
    return p.status();
  }
};

}  // namespace mure::testing
