// Elementwise kernels on the real OpenCL device (PoCL here) against the reference.
#include <catch2/catch.hpp>

#include <signal.h>

#include <cstring>

#include "common/signals.h"
#include "exec/opencl_executor.h"
#include "reference.h"

using namespace mure;

namespace {
std::unique_ptr<OpenClExecutor> Device() {
  Config cfg;
  auto ex = OpenClExecutor::Create(cfg);
  if (!ex.ok()) {
    FAIL("no OpenCL device: " << ex.status().message()
                              << " — install pocl-opencl-icd (scripts/bootstrap does); this test does not skip");
  }
  return std::move(ex.value());
}
}  // namespace

TEST_CASE("add and multiply match the reference on the OpenCL device", "[opencl]") {
  auto dev = Device();
  INFO("device " << dev->info().name << " (" << dev->info().device_type << ")");
  CHECK(dev->info().build_ms > 0);
  TensorStore store(1ull << 30);
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{256}, uint64_t{257}, uint64_t{100003},
                     uint64_t{1} << 20}) {
    INFO("n = " << n);
    auto av = testing::Random<float>(n, 3), bv = testing::Random<float>(n, 4);
    if (n > 2) {
      av[0] = std::numeric_limits<float>::infinity();
      bv[1] = std::numeric_limits<float>::quiet_NaN();
    }
    auto a = *store.Allocate(DType::kF32, {n});
    auto b = *store.Allocate(DType::kF32, {n});
    if (n) {
      std::memcpy(a->data(), av.data(), a->bytes());
      std::memcpy(b->data(), bv.data(), b->bytes());
    }
    for (auto op : {ElementwiseOp::kAdd, ElementwiseOp::kMultiply}) {
      auto out = *store.Allocate(DType::kF32, {n});
      REQUIRE(dev->Elementwise(op, *a, *b, *out).ok());
      for (uint64_t i = 0; i < n; ++i) {
        float want = op == ElementwiseOp::kAdd ? av[i] + bv[i] : av[i] * bv[i];
        float got = out->as<float>()[i];
        if (std::isnan(want)) {
          REQUIRE(std::isnan(got));
        } else {
          REQUIRE(got == want);  // one IEEE operation: exact
        }
      }
    }
  }
}

TEST_CASE("elementwise ops check types and shapes", "[opencl][security]") {
  TensorStore store(1 << 20);
  auto a = *store.Allocate(DType::kF32, {4});
  auto b = *store.Allocate(DType::kF32, {2, 2});
  auto d = *store.Allocate(DType::kF64, {4});
  CHECK(OpenClExecutor::CheckElementwise(ElementwiseOp::kAdd, *a, *b).kind() == ErrorKind::kShapeMismatch);
  CHECK(OpenClExecutor::CheckElementwise(ElementwiseOp::kMultiply, *a, *d).kind() == ErrorKind::kTypeMismatch);
  CHECK(OpenClExecutor::CheckElementwise(ElementwiseOp::kAdd, *a, *a).ok());
}

TEST_CASE("OpenCL errors name the failing call", "[opencl]") {
  CHECK(ClErrorText("clFinish", CL_OUT_OF_RESOURCES) == "clFinish failed: CL_OUT_OF_RESOURCES (-5)");
}

TEST_CASE("after OpenCL set-up, fatal signals are fatal again", "[opencl]") {
  auto dev = Device();
  // PoCL's LLVM installs a handler that swallows kill -SEGV: the default action or mure's crash
  // reporter (which reports, then dies of the signal) must be back.
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) CHECK(FatalSignalIsFatal(sig));
}
