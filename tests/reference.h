// The plain reference implementations every executor is checked against.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace mure::testing {

template <typename T>
std::vector<T> RefMatmul(const std::vector<T>& a, const std::vector<T>& b, uint64_t m, uint64_t k, uint64_t n) {
  std::vector<T> c(m * n, T(0));
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t p = 0; p < k; ++p)
      for (uint64_t j = 0; j < n; ++j) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

template <typename T>
std::vector<T> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

}  // namespace mure::testing
