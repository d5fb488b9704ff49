#include "exec/cpu_executor.h"

#include "exec/cpu_complex.h"
#include "exec/cpu_ops.h"

namespace mure::exec {

namespace {

/// Elementwise ops of at least this many elements are split over the BLIS executor's pool: a
/// worker's wake-up (tens of us, ~100 us on a VM) against a pass over >= 4 MiB per operand.
constexpr uint64_t kSplitMinElements = uint64_t{1} << 20;

/// fn(lo, hi) over [0, n) in one part per thread of `pool`, cut at multiples of 64 elements (no
/// two threads write the same cache line), or over all of it on this thread.
void Split(GemmPool* pool, uint64_t n, const std::function<void(uint64_t, uint64_t)>& fn) {
  const unsigned parts = pool && n >= kSplitMinElements ? pool->threads() : 1;
  if (parts <= 1) return fn(0, n);
  pool->Run(parts, [&](unsigned p) {
    auto cut = [&](unsigned q) { return q == parts ? n : (n * q / parts) & ~uint64_t{63}; };
    fn(cut(p), cut(p + 1));
  });
}

}  // namespace

Status CpuExecutor::Unary(ir::UnaryOp op, const Tensor& in, Tensor& out) {
  if (!cpu::FlatUnary(in, out)) return cpu::Unary(op, in, out);
  Split(pool(), out.elements(), [&](uint64_t lo, uint64_t hi) { cpu::UnaryRange(op, in, out, lo, hi); });
  return Status::Ok();
}
Status CpuExecutor::Binary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  if (!cpu::FlatBinary(op, a, b, compute, out)) return cpu::Binary(op, a, b, compute, out);
  Split(pool(), out.elements(), [&](uint64_t lo, uint64_t hi) { cpu::BinaryRange(op, a, b, out, lo, hi); });
  return Status::Ok();
}
Status CpuExecutor::Reduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  return cpu::Reduce(op, in, plan, out);
}
Status CpuExecutor::AsType(const Tensor& in, Tensor& out) { return cpu::AsType(in, out); }
Status CpuExecutor::Bitcast(const Tensor& in, Tensor& out) { return cpu::Bitcast(in, out); }
Status CpuExecutor::Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) {
  return cpu::Transpose(in, perm, out);
}
Status CpuExecutor::Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides,
                          Tensor& out) {
  return cpu::Slice(in, starts, strides, out);
}
Status CpuExecutor::Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) {
  return cpu::Take(in, indices, axis, out);
}
Status CpuExecutor::Iota(Tensor& out, int64_t axis) { return cpu::Iota(out, axis); }
Status CpuExecutor::Eye(Tensor& out) { return cpu::Eye(out); }
Status CpuExecutor::Fill(Tensor& out, const ir::Scalar& value) { return cpu::Fill(out, value); }
Status CpuExecutor::RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) {
  return cpu::RandomUniform(out, seed, lo, hi);
}
Status CpuExecutor::RandomNormal(Tensor& out, uint64_t seed, double mean, double std) {
  return cpu::RandomNormal(out, seed, mean, std);
}
Status CpuExecutor::Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return cpu::Select(pred, a, b, compute, out);
}
Status CpuExecutor::Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) {
  return cpu::Clip(x, lo, hi, compute, out);
}
Status CpuExecutor::BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  return cpu::BroadcastTo(in, axes, out);
}
Status CpuExecutor::Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  return cpu::Reverse(in, axes, out);
}
Status CpuExecutor::Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config,
                        Tensor& out) {
  return cpu::Pad(in, value, config, out);
}
Status CpuExecutor::Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                                Tensor& out) {
  return cpu::Concatenate(ins, shapes, axis, out);
}
Status CpuExecutor::PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out) {
  return cpu::PutSlice(in, starts, update, out);
}
Status CpuExecutor::Gather(const Tensor& in, const Tensor& indices, Tensor& out) {
  return cpu::Gather(in, indices, out);
}
Status CpuExecutor::Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) {
  return cpu::Sort(in, axis, descending, arg, out);
}
namespace {

/// Products up to this many multiply-adds (32 x 32 x 32) run in a plain loop: BLIS with all its
/// threads spends ~100 us waking them for a 16 x 16 f32 product that the loop does in ~1 us
/// (measured on the 2-vCPU bench VM: matmul 16x16 47 us round trip with 1 BLIS thread against
/// 140 us with 2, `:stats` 40 us).
constexpr uint64_t kTinyGemm = 32 * 32 * 32;

/// C = A B for row-major m x k and k x n, accumulated in T as BLIS does (in i, q, j order: the
/// inner loop runs along rows of B and C, which the compiler vectorises).
template <class T>
void TinyGemm(uint64_t m, uint64_t n, uint64_t k, const T* a, const T* b, T* c) {
  for (uint64_t i = 0; i < m; ++i) {
    T* row = c + i * n;
    for (uint64_t j = 0; j < n; ++j) row[j] = T(0);
    for (uint64_t q = 0; q < k; ++q) {
      const T x = a[i * k + q];
      const T* brow = b + q * n;
      for (uint64_t j = 0; j < n; ++j) row[j] += x * brow[j];
    }
  }
}

}  // namespace

Status CpuExecutor::Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& plan, DType compute, Tensor& out) {
  cpu::GemmFn gemm;
  if (blis_) {
    gemm = [blis = blis_](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
      // m, n, k >= 1 here, each from a checked byte count: the product cannot wrap below the bound.
      if (m <= kTinyGemm && n <= kTinyGemm && k <= kTinyGemm && m * n * k <= kTinyGemm) {
        if (t == DType::kF32) {
          TinyGemm(m, n, k, static_cast<const float*>(x), static_cast<const float*>(y), static_cast<float*>(z));
          return Status::Ok();
        }
        if (t == DType::kF64) {
          TinyGemm(m, n, k, static_cast<const double*>(x), static_cast<const double*>(y), static_cast<double*>(z));
          return Status::Ok();
        }
      }
      return blis->GemmRaw(t, m, n, k, x, y, z);
    };
  }
  return cpu::Dot(a, b, plan, compute, gemm, out);
}
Status CpuExecutor::Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  return cpu::Outer(a, b, compute, out);
}

Status CpuExecutor::Fft(const Tensor& in, bool inverse, Tensor& out) { return cpu::Fft(in, inverse, out); }

}  // namespace mure::exec
