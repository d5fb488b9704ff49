#include "exec/cpu_window.h"

#include <algorithm>
#include <cmath>

#include "exec/cpu_elements.h"
#include "exec/cpu_executor.h"
#include "exec/op_dialect.h"

namespace mure::cpu {

using namespace detail;
using ir::ReduceOp;

namespace {

/// A request's number as a value of type `t`: a double (floats, rounded to t) or an integer
/// pattern (converted as a store to t converts it: floats saturate, integers wrap).
double FloatValue(DType t, const ir::Scalar& s) { return RoundTo(t, s.AsDouble()); }
uint64_t IntValue(DType t, const ir::Scalar& s) {
  if (s.integer) return Normalize(t, static_cast<uint64_t>(s.i));
  uint8_t buf[8] = {};
  StoreF(t, buf, 0, s.f);
  return LoadI(t, buf, 0);
}

/// Walks the windows of `plan` over `shape`: calls f(window_index, k, offset or -1) for each
/// position k of each window in row-major order (offset -1: the position lies in the padding).
template <typename Begin, typename F, typename End>
void ForEachWindow(const Shape& shape, const ir::WindowPlan& plan, Begin&& begin, F&& f, End&& end) {
  const size_t rank = shape.size();
  const auto st = RowMajorStrides(shape);
  uint64_t windows = 1;
  for (uint64_t d : plan.out_shape) windows *= d;
  std::vector<uint64_t> oi(rank, 0), ki(rank, 0);
  std::vector<int64_t> base(rank, 0);
  for (uint64_t w = 0; w < windows; ++w) {
    for (size_t d = 0; d < rank; ++d) {
      base[d] = static_cast<int64_t>(oi[d] * plan.strides[d]) - static_cast<int64_t>(plan.lo[d]);
    }
    begin(w);
    std::fill(ki.begin(), ki.end(), 0);
    for (uint64_t k = 0; k < plan.window_elements; ++k) {
      int64_t off = 0;
      for (size_t d = 0; d < rank; ++d) {
        const int64_t c = base[d] + static_cast<int64_t>(ki[d] * plan.dilations[d]);
        if (c < 0 || static_cast<uint64_t>(c) >= shape[d]) { off = -1; break; }
        off += c * static_cast<int64_t>(st[d]);
      }
      f(w, k, off);
      for (size_t d = rank; d-- > 0;) {
        if (++ki[d] < plan.dims[d]) break;
        ki[d] = 0;
      }
    }
    end(w);
    for (size_t d = rank; d-- > 0;) {
      if (++oi[d] < plan.out_shape[d]) break;
      oi[d] = 0;
    }
  }
}

}  // namespace

Status Window(ReduceOp op, const Tensor& in, const ir::WindowPlan& plan, const std::optional<ir::Scalar>& init,
              Tensor& out) {
  const DType t = in.type();
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  if (IsFloat(t)) {
    const double start = init ? FloatValue(t, *init) : dialect::ReduceFloatInit(op);
    double acc = start;
    ForEachWindow(
        in.shape(), plan, [&](uint64_t) { acc = start; },
        [&](uint64_t, uint64_t, int64_t off) {
          acc = dialect::ReduceFloatStep(op, acc, off < 0 ? start : LoadF(t, src, static_cast<uint64_t>(off)));
        },
        [&](uint64_t w) { StoreF(t, dst, w, acc); });
    return Status::Ok();
  }
  const bool sgn = IsSigned(t);
  const uint64_t start = init ? IntValue(t, *init) : dialect::ReduceIntInit(op, sgn, DTypeBits(t));
  uint64_t acc = start;
  ForEachWindow(
      in.shape(), plan, [&](uint64_t) { acc = start; },
      [&](uint64_t, uint64_t, int64_t off) {
        acc = dialect::ReduceIntStep(op, sgn, acc, off < 0 ? start : LoadI(t, src, static_cast<uint64_t>(off)));
      },
      [&](uint64_t w) { StoreI(t, dst, w, acc); });
  return Status::Ok();
}

Status WindowScatter(bool max, const Tensor& in, const Tensor& source, const ir::WindowPlan& plan,
                     const ir::Scalar& init, Tensor& out) {
  const DType it = in.type(), st = source.type(), ot = out.type();
  const uint64_t n = out.elements();
  const bool ofl = IsFloat(ot), ifl = IsFloat(it), isg = IsSigned(it);
  // The sums per output element, on the node's budget (8 bytes per element).
  auto accf_s = Scratch<double>::Make(out.budget(), ofl ? n : 0, "window_scatter");
  if (!accf_s.ok()) return accf_s.status();
  auto acci_s = Scratch<uint64_t>::Make(out.budget(), ofl ? 0 : n, "window_scatter");
  if (!acci_s.ok()) return acci_s.status();
  if (ofl) std::fill(accf_s->begin(), accf_s->end(), FloatValue(ot, init));
  else std::fill(acci_s->begin(), acci_s->end(), IntValue(ot, init));
  const uint8_t* src = in.data();
  int64_t best = -1;  // the selected offset of the current window
  double bf = 0;
  uint64_t bi = 0;
  ForEachWindow(
      in.shape(), plan, [&](uint64_t) { best = -1; },
      [&](uint64_t, uint64_t, int64_t off) {
        if (off < 0) return;
        const uint64_t o = static_cast<uint64_t>(off);
        bool take = best < 0;
        if (ifl) {
          const double v = LoadF(it, src, o);
          if (!take) take = max ? v >= bf : v <= bf;
          if (take) { best = off; bf = v; }
        } else {
          const uint64_t v = LoadI(it, src, o);
          if (!take) take = max ? !dialect::mure_lt(v, bi, isg) : !dialect::mure_lt(bi, v, isg);
          if (take) { best = off; bi = v; }
        }
      },
      [&](uint64_t w) {
        if (best < 0) return;  // a window wholly in the padding: its source value is dropped
        const uint64_t o = static_cast<uint64_t>(best);
        if (ofl) (*accf_s)[o] = RoundTo(ot, (*accf_s)[o] + RoundTo(ot, LoadF(st, source.data(), w)));
        else (*acci_s)[o] = Normalize(ot, (*acci_s)[o] + Normalize(ot, LoadI(st, source.data(), w)));
      });
  for (uint64_t i = 0; i < n; ++i) {
    if (ofl) StoreF(ot, out.data(), i, (*accf_s)[i]);
    else StoreI(ot, out.data(), i, (*acci_s)[i]);
  }
  return Status::Ok();
}

Status Cumulative(ReduceOp op, const Tensor& in, uint64_t axis, bool reverse, Tensor& out) {
  const Shape& s = in.shape();
  uint64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  const uint64_t len = s[axis];
  const DType t = in.type();
  const bool fl = IsFloat(t), sgn = IsSigned(t);
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  for (uint64_t a = 0; a < outer; ++a) {
    for (uint64_t b = 0; b < inner; ++b) {
      const uint64_t base = a * len * inner + b;
      double af = dialect::ReduceFloatInit(op);
      uint64_t ai = dialect::ReduceIntInit(op, sgn, DTypeBits(t));
      for (uint64_t j = 0; j < len; ++j) {
        const uint64_t i = base + (reverse ? len - 1 - j : j) * inner;
        if (fl) {
          af = dialect::ReduceFloatStep(op, af, LoadF(t, src, i));
          StoreF(t, dst, i, af);
        } else {
          ai = dialect::ReduceIntStep(op, sgn, ai, LoadI(t, src, i));
          StoreI(t, dst, i, ai);
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace mure::cpu

namespace mure::exec {

Status CpuExecutor::Window(ir::ReduceOp op, const Tensor& in, const ir::WindowPlan& plan,
                           const std::optional<ir::Scalar>& init,
                           Tensor& out) {
  return cpu::Window(op, in, plan, init, out);
}
Status CpuExecutor::WindowScatter(bool max, const Tensor& in, const Tensor& source, const ir::WindowPlan& plan,
                                  const ir::Scalar& init, Tensor& out) {
  return cpu::WindowScatter(max, in, source, plan, init, out);
}
Status CpuExecutor::Indexed(bool add, const Tensor& in, const Tensor& indices, const Tensor& updates,
                            const ir::IndexedPlan& plan, Tensor& out) {
  return cpu::Indexed(add, in, indices, updates, plan, out);
}
Status CpuExecutor::Cumulative(ir::ReduceOp op, const Tensor& in, uint64_t axis, bool reverse, Tensor& out) {
  return cpu::Cumulative(op, in, axis, reverse, out);
}

}  // namespace mure::exec
