// mure tests — the CPU side the executor tests share: one tensor store and one BLIS executor
// with the generic kernels (the same results on every CPU) for the whole test binary.
#pragma once

#include <memory>
#include <utility>

#include "exec/blis_executor.h"
#include "mure/config.h"
#include "store/tensor_store.h"

namespace mure::testing {

/// A 1 GiB store for the tests' tensors.
inline TensorStore& Store() {
  static TensorStore store(1ull << 30);
  return store;
}

/// One BLIS executor with the generic kernels, created on first use.
inline BlisExecutor& Blis() {
  static std::unique_ptr<BlisExecutor> blis = [] {
    Config cfg;
    cfg.blis_arch = "generic";
    return std::move(BlisExecutor::Create(cfg).value());
  }();
  return *blis;
}

}  // namespace mure::testing
