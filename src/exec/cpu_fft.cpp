// mure — fft/ifft on the CPU executor through FFTW (fftwf_* for {:c, 64}, fftw_* for {:c, 128}).
#include <fftw3.h>

#include <algorithm>
#include <climits>
#include <complex>
#include <mutex>

#include "exec/cpu_complex.h"
#include "exec/cpu_elements.h"

namespace mure::cpu {
namespace {

using namespace detail;

/// FFTW's planner (plan creation and destruction) is not thread safe; execution is.
std::mutex& PlannerMutex() {
  static std::mutex mu;
  return mu;
}

/// One FFTW plan of either precision, destroyed (under the planner's lock) when it goes.
template <typename Plan, void (*Destroy)(Plan)>
class PlanHandle {
 public:
  explicit PlanHandle(Plan p) : plan_(p) {}
  ~PlanHandle() {
    if (plan_) {
      std::lock_guard<std::mutex> lock(PlannerMutex());
      Destroy(plan_);
    }
  }
  PlanHandle(const PlanHandle&) = delete;
  PlanHandle& operator=(const PlanHandle&) = delete;
  Plan get() const { return plan_; }

 private:
  Plan plan_;
};

using FloatPlan = PlanHandle<fftwf_plan, fftwf_destroy_plan>;
using DoublePlan = PlanHandle<fftw_plan, fftw_destroy_plan>;

/// Transforms `rows` contiguous rows of length n in place at `data`, in batches FFTW's int
/// arguments can carry.
template <bool kFloat>
Status Transform(uint8_t* data, uint64_t rows, int n, bool inverse) {
  const int sign = inverse ? FFTW_BACKWARD : FFTW_FORWARD;
  const uint64_t per_plan = static_cast<uint64_t>(INT_MAX) / static_cast<uint64_t>(n);
  const size_t item = kFloat ? sizeof(fftwf_complex) : sizeof(fftw_complex);
  for (uint64_t done = 0; done < rows;) {
    const uint64_t batch = std::min(rows - done, per_plan);
    const int howmany = static_cast<int>(batch);
    uint8_t* at = data + done * static_cast<uint64_t>(n) * item;
    if constexpr (kFloat) {
      fftwf_plan raw;
      {
        std::lock_guard<std::mutex> lock(PlannerMutex());
        auto* p = reinterpret_cast<fftwf_complex*>(at);
        raw = fftwf_plan_many_dft(1, &n, howmany, p, nullptr, 1, n, p, nullptr, 1, n, sign, FFTW_ESTIMATE);
      }
      FloatPlan plan(raw);
      if (!plan.get()) return Status::Internal("FFTW could not plan a transform of length " + std::to_string(n));
      fftwf_execute(plan.get());
    } else {
      fftw_plan raw;
      {
        std::lock_guard<std::mutex> lock(PlannerMutex());
        auto* p = reinterpret_cast<fftw_complex*>(at);
        raw = fftw_plan_many_dft(1, &n, howmany, p, nullptr, 1, n, p, nullptr, 1, n, sign, FFTW_ESTIMATE);
      }
      DoublePlan plan(raw);
      if (!plan.get()) return Status::Internal("FFTW could not plan a transform of length " + std::to_string(n));
      fftw_execute(plan.get());
    }
    done += batch;
  }
  return Status::Ok();
}

}  // namespace

Status Fft(const Tensor& in, bool inverse, Tensor& out) {
  const DType it = in.type(), ot = out.type();
  if (!ir::IsComplex(ot) || in.shape().empty() || out.shape().size() != in.shape().size()) {
    return Status::Internal("fft's output must be complex, of the input's rank (1 or more)");
  }
  const uint64_t n = out.shape().back(), m = in.shape().back();
  if (n == 0 || n > static_cast<uint64_t>(INT_MAX)) return Status::Internal("fft length out of FFTW's range");
  const uint64_t rows = out.elements() / n;
  if (rows == 0) return Status::Ok();
  // Each row cut or zero-padded to n, converted to the result type, in place in out.
  const uint64_t keep = std::min(n, m);
  for (uint64_t r = 0; r < rows; ++r) {
    for (uint64_t j = 0; j < keep; ++j) StoreC(ot, out.data(), r * n + j, LoadC(it, in.data(), r * m + j));
    for (uint64_t j = keep; j < n; ++j) StoreC(ot, out.data(), r * n + j, 0.0);
  }
  const int len = static_cast<int>(n);
  MURE_RETURN_IF_ERROR(ot == DType::kC64 ? Transform<true>(out.data(), rows, len, inverse)
                                         : Transform<false>(out.data(), rows, len, inverse));
  if (inverse) {  // FFTW's backward transform is unscaled; Nx's ifft divides by n
    const uint64_t total = rows * n;
    if (ot == DType::kC64) {
      const float s = 1.0f / static_cast<float>(n);
      auto* p = out.as<float>();
      for (uint64_t i = 0; i < 2 * total; ++i) p[i] *= s;
    } else {
      const double s = 1.0 / static_cast<double>(n);
      auto* p = out.as<double>();
      for (uint64_t i = 0; i < 2 * total; ++i) p[i] *= s;
    }
  }
  return Status::Ok();
}

}  // namespace mure::cpu
