// mure tests — the set-up the executor cross-checks share (op_table_test, opencl_ops_test,
// fused_test): one OpenCL device for the test binary, one tensor store, allocation that must
// succeed. There is no skipping: without an OpenCL device these tests fail.
#pragma once

#include <catch2/catch.hpp>

#include <memory>

#include "cpu_fixture.h"
#include "mure/config.h"
#include "exec/opencl_executor.h"
#include "exec/opencl_ops.h"
#include "mure/types.h"
#include "store/tensor_store.h"

namespace mure::testing {

/// The OpenCL device every test of the binary shares (created on first use; kernels compiled by
/// one test stay cached for the next).
inline OpenClExecutor& Device() {
  static std::unique_ptr<OpenClExecutor> dev;
  if (!dev) {
    Config cfg;
    auto ex = OpenClExecutor::Create(cfg);
    if (!ex.ok()) {
      FAIL("no OpenCL device: " << ex.status().message()
                                << " — install pocl-opencl-icd (scripts/bootstrap does); this test does not skip");
    }
    dev = std::move(ex.value());
  }
  return *dev;
}

/// The shared device's op set.
inline ocl::OpenClOps& Ops() { return Device().ops(); }

/// A tensor from Store(); the test fails if it cannot be made.
inline std::shared_ptr<Tensor> Alloc(DType t, const Shape& s) {
  auto x = Store().Allocate(t, s);
  REQUIRE(x.ok());
  return std::move(*x);
}

}  // namespace mure::testing
