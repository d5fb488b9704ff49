#include "exec/cpu_ops.h"

#include "exec/cpu_complex.h"
#include "exec/cpu_elements.h"
#include "exec/op_dialect.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace mure::cpu {

using namespace detail;
using ir::BinaryOp;
using ir::IsFloat;
using ir::IsSigned;
using ir::ReduceOp;
using ir::UnaryOp;

// ---- element conversions ------------------------------------------------------------------

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; man <<= 1; } while (!(man & 0x400));
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return static_cast<uint16_t>(sign | 0x7e00);  // NaN
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to infinity
  if (abs < 0x38800000) {  // subnormal half (or zero)
    if (abs < 0x33000000) return sign;
    uint32_t man = (abs & 0x7fffff) | 0x800000;
    // value = man * 2^(e - 150); in units of the half's 2^-24: man >> (126 - e), rounded to even
    int shift = 126 - static_cast<int>(abs >> 23);
    uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    uint32_t v = man >> shift;
    if (rem > half || (rem == half && (v & 1))) ++v;
    return static_cast<uint16_t>(sign | v);
  }
  uint32_t v = abs - 0x38000000;  // rebias exponent by (127 - 15) << 23
  uint32_t rem = v & 0x1fff;
  v >>= 13;
  if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) ++v;
  return static_cast<uint16_t>(sign | v);
}

float BF16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToBF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fff + ((x >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(x >> 16);
}

namespace {

// The formulas of ir/ops.def, expanded as C++ (exec/op_dialect.h). MURE_NONE marks a variant
// ir/ rejects before any kernel runs.
#define MURE_NONE 0

/// A float unary op on x (computed in double; the caller rounds to the result type).
double UnaryFloat(UnaryOp op, double x) {
  using namespace dialect;
  switch (op) {
#define MURE_UNARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case UnaryOp::k##Id: return static_cast<double>(fexpr);
#include "ir/ops.def"
  }
  return 0;
}

/// An integer unary op on the 64-bit pattern v of type t (the result wraps when stored).
uint64_t UnaryInt(UnaryOp op, DType t, uint64_t v) {
  using namespace dialect;
  const bool S = IsSigned(t);
  const uint64_t BITS = DTypeBits(t);
  const uint64_t MASK = BITS == 64 ? ~uint64_t{0} : (uint64_t{1} << BITS) - 1;
  switch (op) {
#define MURE_UNARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case UnaryOp::k##Id: return static_cast<uint64_t>(iexpr);
#include "ir/ops.def"
  }
  return 0;
}

/// A float binary op on a, b (in double).
double BinaryFloat(BinaryOp op, double x, double y) {
  using namespace dialect;
  switch (op) {
#define MURE_BINARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case BinaryOp::k##Id: return static_cast<double>(fexpr);
#include "ir/ops.def"
  }
  return 0;
}

/// Integer binary ops on 64-bit patterns of the compute type `t` (wrapping, XLA's edge rules:
/// x / 0 = -1 (all ones), x rem 0 = x, MIN / -1 = MIN, MIN rem -1 = 0).
uint64_t BinaryInt(BinaryOp op, DType t, uint64_t x, uint64_t y) {
  using namespace dialect;
  const bool S = IsSigned(t);
  const uint64_t BITS = DTypeBits(t);
  const uint64_t SMIN = S ? Normalize(t, uint64_t{1} << (BITS - 1)) : 0;
  switch (op) {
#define MURE_BINARY(Id, name, rule, fexpr, iexpr, fusible, exact) \
  case BinaryOp::k##Id: return static_cast<uint64_t>(iexpr);
#include "ir/ops.def"
  }
  return 0;
}

#undef MURE_NONE

}  // namespace

Status Unary(UnaryOp op, const Tensor& in, Tensor& out) {
  if (!FlatUnary(in, out)) return ComplexUnary(op, in, out);
  UnaryRange(op, in, out, 0, in.elements());
  return Status::Ok();
}

bool FlatUnary(const Tensor& in, const Tensor& out) {
  return !ir::IsComplex(in.type()) && !ir::IsComplex(out.type());
}

void UnaryRange(UnaryOp op, const Tensor& in, Tensor& out, uint64_t lo, uint64_t hi) {
  const DType it = in.type(), ot = out.type();
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  if (IsFloat(it) || IsFloat(ot)) {
    // Float ops (integers are converted to the float result type first).
    for (uint64_t i = lo; i < hi; ++i) {
      double x = IsFloat(ot) ? RoundTo(ot, LoadF(it, src, i)) : LoadF(it, src, i);
      StoreF(ot, dst, i, UnaryFloat(op, x));
    }
  } else {
    for (uint64_t i = lo; i < hi; ++i) StoreI(ot, dst, i, UnaryInt(op, it, LoadI(it, src, i)));
  }
}

namespace {

/// Operands of out's shape, or scalars.
bool FastShapes(const Tensor& a, const Tensor& b, const Tensor& out) {
  const uint64_t n = out.elements();
  const bool sa = a.elements() == 1 && n != 1, sb = b.elements() == 1 && n != 1;
  return (sa || a.shape() == out.shape()) && (sb || b.shape() == out.shape());
}

bool FastOp(BinaryOp op) {
  return op == BinaryOp::kAdd || op == BinaryOp::kSubtract || op == BinaryOp::kMultiply || op == BinaryOp::kDivide;
}

/// The common case at full speed: f32/f64 arithmetic on operands of the result's type and shape
/// (or a scalar), as a plain loop the compiler vectorises. Same results as the generic path:
/// one IEEE operation per element. Elements [lo, hi) of a FastShapes/FastOp binary of type T.
template <typename T>
void FastBinary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, uint64_t lo, uint64_t hi) {
  const uint64_t n = out.elements();
  const bool sa = a.elements() == 1 && n != 1, sb = b.elements() == 1 && n != 1;
  const T* x = a.as<T>();
  const T* y = b.as<T>();
  T* z = out.as<T>();
  auto run = [&](auto f) {
    if (sa) { const T xv = x[0]; for (uint64_t i = lo; i < hi; ++i) z[i] = f(xv, y[i]); }
    else if (sb) { const T yv = y[0]; for (uint64_t i = lo; i < hi; ++i) z[i] = f(x[i], yv); }
    else { for (uint64_t i = lo; i < hi; ++i) z[i] = f(x[i], y[i]); }
  };
  switch (op) {
    case BinaryOp::kAdd: run([](T p, T q) { return p + q; }); break;
    case BinaryOp::kSubtract: run([](T p, T q) { return p - q; }); break;
    case BinaryOp::kMultiply: run([](T p, T q) { return p * q; }); break;
    case BinaryOp::kDivide: run([](T p, T q) { return p / q; }); break;
    default: break;
  }
}

}  // namespace

bool FlatBinary(BinaryOp op, const Tensor& a, const Tensor& b, DType compute, const Tensor& out) {
  return (compute == DType::kF32 || compute == DType::kF64) && a.type() == compute && b.type() == compute &&
         out.type() == compute && FastOp(op) && FastShapes(a, b, out);
}

void BinaryRange(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, uint64_t lo, uint64_t hi) {
  if (out.type() == DType::kF32) {
    FastBinary<float>(op, a, b, out, lo, hi);
  } else {
    FastBinary<double>(op, a, b, out, lo, hi);
  }
}

Status Binary(BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  if (ir::IsComplex(compute)) return ComplexBinary(op, a, b, compute, out);
  if (FlatBinary(op, a, b, compute, out)) {
    BinaryRange(op, a, b, out, 0, out.elements());
    return Status::Ok();
  }
  const auto sa = BroadcastStrides(a.shape(), out.shape());
  const auto sb = BroadcastStrides(b.shape(), out.shape());
  const DType at = a.type(), bt = b.type(), ot = out.type();
  const uint8_t* pa = a.data();
  const uint8_t* pb = b.data();
  uint8_t* po = out.data();
  if (IsFloat(compute)) {
    ForEachIndex(out.shape(), sa, sb, [&](uint64_t i, uint64_t ia, uint64_t ib) {
      double x = RoundTo(compute, LoadF(at, pa, ia)), y = RoundTo(compute, LoadF(bt, pb, ib));
      StoreF(ot, po, i, BinaryFloat(op, x, y));
    });
  } else {
    ForEachIndex(out.shape(), sa, sb, [&](uint64_t i, uint64_t ia, uint64_t ib) {
      uint64_t x = Normalize(compute, LoadI(at, pa, ia)), y = Normalize(compute, LoadI(bt, pb, ib));
      StoreI(ot, po, i, BinaryInt(op, compute, x, y));
    });
  }
  return Status::Ok();
}

Status Reduce(ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out) {
  if (ir::IsComplex(in.type())) return ComplexReduce(op, in, plan, out);
  const Shape& shape = in.shape();
  const auto [so, sr] = ReduceStrides(shape, plan.axes);
  const uint64_t outs = out.elements();
  const DType it = in.type(), ot = out.type();
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  const bool fl = IsFloat(it);
  const bool sgn = IsSigned(it);

  if (op == ReduceOp::kArgmax || op == ReduceOp::kArgmin) {
    const bool want_max = op == ReduceOp::kArgmax;
    // Working memory per output element, reserved on the node's budget: the result may be
    // small in bytes while this is 17 bytes per element of it.
    auto best_idx_s = Scratch<uint64_t>::Make(out.budget(), outs, ir::Name(op));
    if (!best_idx_s.ok()) return best_idx_s.status();
    auto bf_s = Scratch<double>::Make(out.budget(), fl ? outs : 0, ir::Name(op));  // the best value so far
    if (!bf_s.ok()) return bf_s.status();
    auto bi_s = Scratch<uint64_t>::Make(out.budget(), fl ? 0 : outs, ir::Name(op));
    if (!bi_s.ok()) return bi_s.status();
    auto seen_s = Scratch<uint8_t>::Make(out.budget(), outs, ir::Name(op));
    if (!seen_s.ok()) return seen_s.status();
    uint64_t* best_idx = best_idx_s->data();
    double* bf = bf_s->data();
    uint64_t* bi = bi_s->data();
    uint8_t* seen = seen_s->data();
    std::fill(best_idx_s->begin(), best_idx_s->end(), 0);
    std::fill(seen_s->begin(), seen_s->end(), 0);
    ForEachIndex(shape, so, sr, [&](uint64_t lin, uint64_t o, uint64_t r) {
      if (fl) {
        double v = LoadF(it, src, lin);
        bool take = !seen[o];
        if (!take && !std::isnan(bf[o])) {
          take = std::isnan(v) || (want_max ? v > bf[o] : v < bf[o]);  // NaN wins, first occurrence kept
        }
        if (take) { bf[o] = v; best_idx[o] = r; }
      } else {
        uint64_t v = LoadI(it, src, lin);
        bool take = !seen[o];
        if (!take) {
          bool gt = sgn ? static_cast<int64_t>(v) > static_cast<int64_t>(bi[o]) : v > bi[o];
          bool lt = sgn ? static_cast<int64_t>(v) < static_cast<int64_t>(bi[o]) : v < bi[o];
          take = want_max ? gt : lt;
        }
        if (take) { bi[o] = v; best_idx[o] = r; }
      }
      seen[o] = true;
    });
    for (uint64_t o = 0; o < outs; ++o) StoreI(ot, dst, o, best_idx[o]);
    return Status::Ok();
  }

  if (fl) {
    const double init = dialect::ReduceFloatInit(op);
    auto acc_s = Scratch<double>::Make(out.budget(), outs, ir::Name(op));  // 8 bytes per result
    if (!acc_s.ok()) return acc_s.status();
    std::fill(acc_s->begin(), acc_s->end(), init);
    double* acc = acc_s->data();
    ForEachIndex(shape, so, sr, [&](uint64_t lin, uint64_t o, uint64_t) {
      acc[o] = dialect::ReduceFloatStep(op, acc[o], LoadF(it, src, lin));
    });
    for (uint64_t o = 0; o < outs; ++o) StoreF(ot, dst, o, acc[o]);
    return Status::Ok();
  }
  const uint64_t init = dialect::ReduceIntInit(op, sgn, DTypeBits(it));
  auto acc_s = Scratch<uint64_t>::Make(out.budget(), outs, ir::Name(op));  // 8 bytes per result
  if (!acc_s.ok()) return acc_s.status();
  std::fill(acc_s->begin(), acc_s->end(), init);
  uint64_t* acc = acc_s->data();
  ForEachIndex(shape, so, sr, [&](uint64_t lin, uint64_t o, uint64_t) {
    acc[o] = dialect::ReduceIntStep(op, sgn, acc[o], LoadI(it, src, lin));
  });
  for (uint64_t o = 0; o < outs; ++o) StoreI(ot, dst, o, acc[o]);
  return Status::Ok();
}

Status AsType(const Tensor& in, Tensor& out) {
  if (ir::IsComplex(in.type()) || ir::IsComplex(out.type())) return ComplexAsType(in, out);
  const DType it = in.type(), ot = out.type();
  const uint64_t n = in.elements();
  if (IsFloat(it) || IsFloat(ot)) {
    if (!IsFloat(it)) {  // integer -> float: through the exact signed/unsigned value
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t v = LoadI(it, in.data(), i);
        StoreF(ot, out.data(), i, IsSigned(it) ? static_cast<double>(static_cast<int64_t>(v)) : static_cast<double>(v));
      }
    } else {
      for (uint64_t i = 0; i < n; ++i) StoreF(ot, out.data(), i, LoadF(it, in.data(), i));
    }
  } else {
    for (uint64_t i = 0; i < n; ++i) StoreI(ot, out.data(), i, LoadI(it, in.data(), i));
  }
  return Status::Ok();
}

Status Bitcast(const Tensor& in, Tensor& out) {
  if (in.bytes() != out.bytes()) return Status::Internal("bitcast size mismatch");
  if (in.bytes()) std::memcpy(out.data(), in.data(), in.bytes());
  return Status::Ok();
}

Status Transpose(const Tensor& in, const std::vector<int64_t>& perm, Tensor& out) {
  const size_t rank = in.shape().size(), item = DTypeSize(in.type());
  auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> sa(rank), zero(rank, 0);
  for (size_t d = 0; d < rank; ++d) {
    int64_t p = perm[d] < 0 ? perm[d] + static_cast<int64_t>(rank) : perm[d];
    sa[d] = st[static_cast<size_t>(p)];
  }
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  ForEachIndex(out.shape(), sa, zero, [&](uint64_t i, uint64_t o, uint64_t) {
    std::memcpy(dst + i * item, src + o * item, item);
  });
  return Status::Ok();
}

Status Slice(const Tensor& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& strides, Tensor& out) {
  const size_t rank = in.shape().size(), item = DTypeSize(in.type());
  auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> sa(rank), zero(rank, 0);
  uint64_t base = 0;
  for (size_t d = 0; d < rank; ++d) {
    sa[d] = st[d] * static_cast<uint64_t>(strides[d]);
    base += st[d] * static_cast<uint64_t>(starts[d]);
  }
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  ForEachIndex(out.shape(), sa, zero, [&](uint64_t i, uint64_t o, uint64_t) {
    std::memcpy(dst + i * item, src + (base + o) * item, item);
  });
  return Status::Ok();
}

Status Take(const Tensor& in, const Tensor& indices, int64_t axis, Tensor& out) {
  const Shape& s = in.shape();
  const size_t ax = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(s.size()) : axis);
  const uint64_t dim = s[ax];
  const uint64_t count = indices.elements();
  const DType xt = indices.type();
  // Every index is checked before anything is written (also when the result is empty: the
  // planner lets take's kernel run for that, and this walk is bounded by the indices' bytes).
  auto idx_s = Scratch<uint64_t>::Make(out.budget(), count, "take's indices");
  if (!idx_s.ok()) return idx_s.status();
  uint64_t* idx = idx_s->data();
  for (uint64_t j = 0; j < count; ++j) {
    uint64_t v = LoadI(xt, indices.data(), j);
    bool negative = IsSigned(xt) && static_cast<int64_t>(v) < 0;
    if (negative || v >= dim) {
      return Status(ErrorKind::kOutOfRange,
                    "take: index " + std::to_string(IsSigned(xt) ? static_cast<int64_t>(v) : static_cast<int64_t>(v)) +
                        " (element " + std::to_string(j) + " of the indices) is outside axis " + std::to_string(ax) +
                        " of size " + std::to_string(dim));
    }
    idx[j] = v;
  }
  if (out.elements() == 0) return Status::Ok();  // e.g. {2^30, 0} along axis 1: 2^30 empty rows
  uint64_t pre = 1, post = DTypeSize(in.type());
  for (size_t d = 0; d < ax; ++d) pre *= s[d];
  for (size_t d = ax + 1; d < s.size(); ++d) post *= s[d];
  const uint8_t* src = in.data();
  uint8_t* dst = out.data();
  for (uint64_t p = 0; p < pre; ++p) {
    for (uint64_t j = 0; j < count; ++j) {
      std::memcpy(dst + (p * count + j) * post, src + (p * dim + idx[j]) * post, post);
    }
  }
  return Status::Ok();
}

}  // namespace mure::cpu
