// The op set on the CPU, second part: creation, selection, shape ops, sorting and dot.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "exec/cpu_elements.h"
#include "exec/cpu_ops.h"

namespace mure::cpu {

using namespace detail;

namespace {

/// Store a request's scalar into element i of a tensor of type t.
void StoreScalar(DType t, uint8_t* p, uint64_t i, const ir::Scalar& v) {
  if (ir::IsComplex(t)) StoreC(t, p, i, {v.AsDouble(), v.im});
  else if (v.integer && !IsFloat(t)) StoreI(t, p, i, static_cast<uint64_t>(v.i));
  else StoreF(t, p, i, v.AsDouble());
}

/// Copy element `from` of (st, sp) into element `to` of (dt, dp), converting the type.
inline void Convert(DType st, const uint8_t* sp, uint64_t from, DType dt, uint8_t* dp, uint64_t to) {
  if (st == dt) {
    const size_t item = DTypeSize(st);
    std::memcpy(dp + to * item, sp + from * item, item);
  } else if (ir::IsComplex(dt) || ir::IsComplex(st)) {
    StoreC(dt, dp, to, LoadC(st, sp, from));
  } else if (IsFloat(dt) || IsFloat(st)) {
    double v = IsFloat(st) ? LoadF(st, sp, from)
               : IsSigned(st) ? static_cast<double>(static_cast<int64_t>(LoadI(st, sp, from)))
                              : static_cast<double>(LoadI(st, sp, from));
    StoreF(dt, dp, to, v);
  } else {
    StoreI(dt, dp, to, LoadI(st, sp, from));
  }
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

unsigned MantissaBits(DType t) {
  switch (t) {
    case DType::kF64: return 53;
    case DType::kF32: return 24;
    case DType::kF16: return 11;
    default: return 8;  // bf16
  }
}

/// A stable sort of `v[0, n)` by `before` that uses `tmp` (n entries) as its only working memory
/// (std::stable_sort takes its own buffer, which no budget sees): insertion-sorted runs of 16,
/// then bottom-up merges that take the left entry on ties. The order is the one std::stable_sort
/// gives, since a stable order under a strict weak ordering is unique.
template <typename Before>
void StableSort(uint64_t* v, uint64_t* tmp, uint64_t n, Before before) {
  const uint64_t run = 16;
  for (uint64_t lo = 0; lo < n; lo += run) {
    const uint64_t hi = std::min(n, lo + run);
    for (uint64_t i = lo + 1; i < hi; ++i) {
      const uint64_t x = v[i];
      uint64_t j = i;
      for (; j > lo && before(x, v[j - 1]); --j) v[j] = v[j - 1];
      v[j] = x;
    }
  }
  uint64_t* src = v;
  uint64_t* dst = tmp;
  for (uint64_t w = run; w < n; w *= 2) {  // n < 2^63, so lo + 2 * w cannot wrap
    for (uint64_t lo = 0; lo < n; lo += 2 * w) {
      const uint64_t mid = std::min(n, lo + w), hi = std::min(n, lo + 2 * w);
      uint64_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) dst[k++] = before(src[j], src[i]) ? src[j++] : src[i++];
      while (i < mid) dst[k++] = src[i++];
      while (j < hi) dst[k++] = src[j++];
    }
    std::swap(src, dst);
  }
  if (src != v) std::memcpy(v, src, n * sizeof(uint64_t));
}

}  // namespace

uint64_t RandomBits(uint64_t seed, uint64_t counter) { return SplitMix(seed ^ SplitMix(counter)); }

Status Iota(Tensor& out, int64_t axis) {
  const Shape& s = out.shape();
  const uint64_t n = out.elements();
  uint64_t inner = 1, dim = n;
  if (axis >= 0) {
    dim = s[static_cast<size_t>(axis)];
    for (size_t d = static_cast<size_t>(axis) + 1; d < s.size(); ++d) inner *= s[d];
  }
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t v = axis >= 0 ? (i / inner) % dim : i;
    if (IsFloat(out.type())) StoreF(out.type(), out.data(), i, static_cast<double>(v));
    else StoreI(out.type(), out.data(), i, v);
  }
  return Status::Ok();
}

Status Eye(Tensor& out) {
  const Shape& s = out.shape();
  const uint64_t rows = s[s.size() - 2], cols = s[s.size() - 1];
  for (uint64_t i = 0; i < out.elements(); ++i) {
    uint64_t c = i % cols, r = (i / cols) % rows;
    ir::Scalar v;
    v.i = r == c ? 1 : 0;
    StoreScalar(out.type(), out.data(), i, v);
  }
  return Status::Ok();
}

Status Fill(Tensor& out, const ir::Scalar& value) {
  for (uint64_t i = 0; i < out.elements(); ++i) StoreScalar(out.type(), out.data(), i, value);
  return Status::Ok();
}

Status RandomUniform(Tensor& out, uint64_t seed, double lo, double hi) {
  const unsigned bits = MantissaBits(out.type());
  const double scale = std::ldexp(1.0, -static_cast<int>(bits));
  for (uint64_t i = 0; i < out.elements(); ++i) {
    double u = static_cast<double>(RandomBits(seed, i) >> (64 - bits)) * scale;  // [0, 1)
    double v = RoundTo(out.type(), lo + (hi - lo) * u);
    if (v >= hi && hi > lo) v = lo;  // rounding to the type reached hi: stay inside [lo, hi)
    StoreF(out.type(), out.data(), i, v);
  }
  return Status::Ok();
}

Status RandomNormal(Tensor& out, uint64_t seed, double mean, double std) {
  const double two_pi = 6.283185307179586;
  for (uint64_t i = 0; i < out.elements(); ++i) {
    double u1 = (static_cast<double>(RandomBits(seed, 2 * i) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    double u2 = static_cast<double>(RandomBits(seed, 2 * i + 1) >> 11) * 0x1.0p-53;
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2);
    StoreF(out.type(), out.data(), i, mean + std * z);
  }
  return Status::Ok();
}

Status Select(const Tensor& pred, const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  const auto sp = BroadcastStrides(pred.shape(), out.shape());
  const auto sa = BroadcastStrides(a.shape(), out.shape());
  const auto sb = BroadcastStrides(b.shape(), out.shape());
  // Two walks share the index order: first the predicate's offsets, then the operands'.
  auto pick_s = Scratch<uint8_t>::Make(out.budget(), out.elements(), "select");  // on the node's budget
  if (!pick_s.ok()) return pick_s.status();
  uint8_t* pick_a = pick_s->data();
  ForEachIndex(out.shape(), sp, sp, [&](uint64_t i, uint64_t op, uint64_t) {
    pick_a[i] = IsFloat(pred.type()) ? LoadF(pred.type(), pred.data(), op) != 0 : LoadI(pred.type(), pred.data(), op) != 0;
  });
  ForEachIndex(out.shape(), sa, sb, [&](uint64_t i, uint64_t ia, uint64_t ib) {
    if (pick_a[i]) Convert(a.type(), a.data(), ia, out.type(), out.data(), i);
    else Convert(b.type(), b.data(), ib, out.type(), out.data(), i);
  });
  (void)compute;
  return Status::Ok();
}

Status Clip(const Tensor& x, const Tensor& lo, const Tensor& hi, DType compute, Tensor& out) {
  const auto sx = BroadcastStrides(x.shape(), out.shape());
  const auto sl = BroadcastStrides(lo.shape(), out.shape());
  const auto sh = BroadcastStrides(hi.shape(), out.shape());
  auto hi_s = Scratch<uint64_t>::Make(out.budget(), out.elements(), "clip");  // on the node's budget
  if (!hi_s.ok()) return hi_s.status();
  uint64_t* hi_off = hi_s->data();
  ForEachIndex(out.shape(), sh, sh, [&](uint64_t i, uint64_t o, uint64_t) { hi_off[i] = o; });
  if (IsFloat(compute)) {
    ForEachIndex(out.shape(), sx, sl, [&](uint64_t i, uint64_t ix, uint64_t il) {
      double v = RoundTo(compute, LoadF(x.type(), x.data(), ix));
      double l = RoundTo(compute, LoadF(lo.type(), lo.data(), il));
      double h = RoundTo(compute, LoadF(hi.type(), hi.data(), hi_off[i]));
      double r = std::isnan(v) ? v : std::min(std::max(v, l), h);
      StoreF(out.type(), out.data(), i, r);
    });
  } else {
    const bool s = IsSigned(compute);
    auto lt = [&](uint64_t p, uint64_t q) { return s ? static_cast<int64_t>(p) < static_cast<int64_t>(q) : p < q; };
    ForEachIndex(out.shape(), sx, sl, [&](uint64_t i, uint64_t ix, uint64_t il) {
      uint64_t v = Normalize(compute, LoadI(x.type(), x.data(), ix));
      uint64_t l = Normalize(compute, LoadI(lo.type(), lo.data(), il));
      uint64_t h = Normalize(compute, LoadI(hi.type(), hi.data(), hi_off[i]));
      if (lt(v, l)) v = l;
      if (lt(h, v)) v = h;
      StoreI(out.type(), out.data(), i, v);
    });
  }
  return Status::Ok();
}

Status BroadcastTo(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  const size_t rank = out.shape().size(), item = DTypeSize(in.type());
  auto own = RowMajorStrides(in.shape());
  std::vector<uint64_t> st(rank, 0), zero(rank, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    size_t ax = static_cast<size_t>(axes[i] < 0 ? axes[i] + static_cast<int64_t>(rank) : axes[i]);
    st[ax] = in.shape()[i] == 1 ? 0 : own[i];
  }
  ForEachIndex(out.shape(), st, zero, [&](uint64_t i, uint64_t o, uint64_t) {
    std::memcpy(out.data() + i * item, in.data() + o * item, item);
  });
  return Status::Ok();
}

Status Reverse(const Tensor& in, const std::vector<int64_t>& axes, Tensor& out) {
  const size_t rank = in.shape().size(), item = DTypeSize(in.type());
  auto st = RowMajorStrides(in.shape());
  std::vector<uint64_t> walk = st, zero(rank, 0);
  uint64_t base = 0;
  for (int64_t a : axes) {
    size_t ax = static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(rank) : a);
    if (in.shape()[ax] == 0) return Status::Ok();
    base += (in.shape()[ax] - 1) * st[ax];
    walk[ax] = 0 - st[ax];  // a negative stride, in modular arithmetic
  }
  ForEachIndex(in.shape(), walk, zero, [&](uint64_t i, uint64_t o, uint64_t) {
    std::memcpy(out.data() + i * item, in.data() + (base + o) * item, item);
  });
  return Status::Ok();
}

Status Pad(const Tensor& in, const ir::Scalar& value, const std::vector<ir::PadDim>& config, Tensor& out) {
  MURE_RETURN_IF_ERROR(Fill(out, value));
  const size_t rank = in.shape().size(), item = DTypeSize(in.type());
  auto ost = RowMajorStrides(out.shape());
  std::vector<uint64_t> zero(rank, 0);
  const Shape& os = out.shape();
  // Walk the input; place element idx at lo + idx * (interior + 1) per dim, if inside.
  std::vector<uint64_t> idx(rank, 0);
  for (uint64_t i = 0; i < in.elements(); ++i) {
    bool inside = true;
    uint64_t off = 0;
    for (size_t d = 0; d < rank; ++d) {
      int64_t p = config[d].lo + static_cast<int64_t>(idx[d]) * (config[d].interior + 1);
      if (p < 0 || static_cast<uint64_t>(p) >= os[d]) { inside = false; break; }
      off += static_cast<uint64_t>(p) * ost[d];
    }
    if (inside) std::memcpy(out.data() + off * item, in.data() + i * item, item);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < in.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

Status Concatenate(const std::vector<const Tensor*>& ins, const std::vector<Shape>& shapes, uint64_t axis,
                   Tensor& out) {
  const Shape& os = out.shape();
  if (out.elements() == 0) return Status::Ok();  // {2^30, 0} pieces: 2^30 empty rows each
  uint64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= os[d];
  for (size_t d = axis + 1; d < os.size(); ++d) inner *= os[d];
  const uint64_t out_row = os[axis] * inner;
  uint64_t at = 0;  // offset along the axis, in rows of `inner`
  for (size_t t = 0; t < ins.size(); ++t) {
    const Tensor& x = *ins[t];
    const uint64_t rows = shapes[t][axis] * inner;
    if (rows == 0) continue;  // nothing of this one lands: do not walk its `outer` empty rows
    for (uint64_t o = 0; o < outer; ++o) {
      for (uint64_t j = 0; j < rows; ++j) {
        Convert(x.type(), x.data(), o * rows + j, out.type(), out.data(), o * out_row + at * inner + j);
      }
    }
    at += shapes[t][axis];
  }
  return Status::Ok();
}

Status PutSlice(const Tensor& in, const std::vector<int64_t>& starts, const Tensor& update, Tensor& out) {
  for (uint64_t i = 0; i < in.elements(); ++i) Convert(in.type(), in.data(), i, out.type(), out.data(), i);
  const size_t rank = in.shape().size();
  auto st = RowMajorStrides(in.shape());
  uint64_t base = 0;
  for (size_t d = 0; d < rank; ++d) base += static_cast<uint64_t>(starts[d]) * st[d];
  std::vector<uint64_t> zero(rank, 0);
  ForEachIndex(update.shape(), st, zero, [&](uint64_t i, uint64_t o, uint64_t) {
    Convert(update.type(), update.data(), i, out.type(), out.data(), base + o);
  });
  return Status::Ok();
}

std::vector<int64_t> ClampedStarts(const std::vector<const Tensor*>& starts, const Shape& dims,
                                   const std::vector<uint64_t>& spans) {
  std::vector<int64_t> out(starts.size(), 0);
  for (size_t i = 0; i < starts.size(); ++i) {
    const Tensor& s = *starts[i];
    const uint64_t v = LoadI(s.type(), s.data(), 0);
    const uint64_t hi = dims[i] - spans[i];  // spans[i] <= dims[i]
    if (IsSigned(s.type()) && static_cast<int64_t>(v) < 0) continue;  // below 0: 0
    out[i] = static_cast<int64_t>(std::min({v, hi, uint64_t{INT64_MAX}}));
  }
  return out;
}

Status Gather(const Tensor& in, const Tensor& indices, Tensor& out) {
  const Shape& s = in.shape();
  const size_t rank = s.size(), item = DTypeSize(in.type());
  auto st = RowMajorStrides(s);
  const uint64_t count = out.elements();
  auto offsets_s = Scratch<uint64_t>::Make(out.budget(), count, "gather's offsets");  // on the node's budget
  if (!offsets_s.ok()) return offsets_s.status();
  uint64_t* offsets = offsets_s->data();
  std::fill(offsets_s->begin(), offsets_s->end(), 0);
  for (uint64_t e = 0; e < count; ++e) {  // every coordinate checked before anything is written
    for (size_t d = 0; d < rank; ++d) {
      uint64_t v = LoadI(indices.type(), indices.data(), e * rank + d);
      bool negative = IsSigned(indices.type()) && static_cast<int64_t>(v) < 0;
      if (negative || v >= s[d]) {
        return Status(ErrorKind::kOutOfRange,
                      "gather: coordinate " + std::to_string(static_cast<int64_t>(v)) + " of entry " +
                          std::to_string(e) + " is outside axis " + std::to_string(d) + " of size " +
                          std::to_string(s[d]));
      }
      offsets[e] += v * st[d];
    }
  }
  for (uint64_t e = 0; e < count; ++e) std::memcpy(out.data() + e * item, in.data() + offsets[e] * item, item);
  return Status::Ok();
}

Status Sort(const Tensor& in, uint64_t axis, bool descending, bool arg, Tensor& out) {
  const Shape& s = in.shape();
  uint64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  const uint64_t n = s[axis];
  const DType t = in.type();
  const bool fl = IsFloat(t), sg = IsSigned(t);
  // The planner runs no kernel for an empty result; this keeps the kernel safe on its own: an
  // empty tensor's axis may be 2^40 long, and its rows hold nothing to sort.
  if (in.elements() == 0) return Status::Ok();
  // Working memory grows with the axis (24 bytes per element of a row: order, keys and the merge
  // buffer) and is reserved on the node's budget first: a client-chosen axis length ends in
  // kOutOfMemory, never in std::bad_alloc.
  auto order_s = Scratch<uint64_t>::Make(out.budget(), n, arg ? "argsort" : "sort");
  if (!order_s.ok()) return order_s.status();
  auto fkey_s = Scratch<double>::Make(out.budget(), fl ? n : 0, arg ? "argsort" : "sort");
  if (!fkey_s.ok()) return fkey_s.status();
  auto ikey_s = Scratch<uint64_t>::Make(out.budget(), fl ? 0 : n, arg ? "argsort" : "sort");
  if (!ikey_s.ok()) return ikey_s.status();
  auto merge_s = Scratch<uint64_t>::Make(out.budget(), n, arg ? "argsort" : "sort");
  if (!merge_s.ok()) return merge_s.status();
  Scratch<uint64_t>& order = *order_s;
  double* fkey = fkey_s->data();
  uint64_t* ikey = ikey_s->data();
  for (uint64_t o = 0; o < outer; ++o) {
    for (uint64_t i = 0; i < inner; ++i) {
      auto at = [&](uint64_t j) { return (o * n + j) * inner + i; };
      for (uint64_t j = 0; j < n; ++j) {
        if (fl) fkey[j] = LoadF(t, in.data(), at(j));
        else ikey[j] = LoadI(t, in.data(), at(j));
      }
      std::iota(order.begin(), order.end(), 0);
      // "before(p, q)": p sorts strictly before q. NaN is the largest value.
      auto before = [&](uint64_t p, uint64_t q) {
        if (fl) {
          double x = fkey[p], y = fkey[q];
          bool xn = std::isnan(x), yn = std::isnan(y);
          if (descending) return xn ? !yn : (!yn && x > y);
          return !xn && (yn || x < y);
        }
        uint64_t x = ikey[p], y = ikey[q];
        bool less = sg ? static_cast<int64_t>(x) < static_cast<int64_t>(y) : x < y;
        bool more = sg ? static_cast<int64_t>(x) > static_cast<int64_t>(y) : x > y;
        return descending ? more : less;
      };
      StableSort(order.data(), merge_s->data(), n, before);
      for (uint64_t j = 0; j < n; ++j) {
        if (arg) StoreI(out.type(), out.data(), at(j), order[j]);
        else Convert(t, in.data(), at(order[j]), t, out.data(), at(j));
      }
    }
  }
  return Status::Ok();
}

namespace {

/// Copy `in` into `buf` with its axes in the order `perm`, converted to `to`; `buf` is working
/// memory reserved on `budget`.
Status PermuteConvert(const Tensor& in, const std::vector<uint64_t>& perm, DType to, MemoryBudget* budget,
                      Scratch<uint8_t>& buf) {
  const Shape& s = in.shape();
  auto st = RowMajorStrides(s);
  Shape ps(perm.size());
  std::vector<uint64_t> pst(perm.size()), zero(perm.size(), 0);
  for (size_t i = 0; i < perm.size(); ++i) {
    ps[i] = s[perm[i]];
    pst[i] = st[perm[i]];
  }
  auto made = Scratch<uint8_t>::Make(budget, in.elements() * DTypeSize(to), "dot's staged operand");
  if (!made.ok()) return made.status();
  buf = std::move(*made);
  ForEachIndex(ps, pst, zero, [&](uint64_t i, uint64_t o, uint64_t) {
    Convert(in.type(), in.data(), o, to, buf.data(), i);
  });
  return Status::Ok();
}

/// The operand as `perm` and `to` ask: the tensor's own data when it already is (the common
/// case of a plain matrix product: no copy, no per-element conversion), else a copy in `scratch`.
Result<const uint8_t*> Operand(const Tensor& in, const std::vector<uint64_t>& perm, DType to, MemoryBudget* budget,
                               Scratch<uint8_t>& scratch) {
  bool identity = in.type() == to;
  for (size_t i = 0; identity && i < perm.size(); ++i) identity = perm[i] == i;
  if (identity) return in.data();
  MURE_RETURN_IF_ERROR(PermuteConvert(in, perm, to, budget, scratch));
  return static_cast<const uint8_t*>(scratch.data());
}

}  // namespace

Status Dot(const Tensor& a, const Tensor& b, const ir::DotPlan& p, DType compute, const GemmFn& gemm, Tensor& out) {
  // An empty result: no staging of the operands, no walk over 2^33 empty batches.
  if (out.elements() == 0) return Status::Ok();
  // a as [batch, m, k] and b as [batch, k, n], contiguous, in the compute type.
  std::vector<uint64_t> pa = p.ba, pb = p.bb;
  pa.insert(pa.end(), p.fa.begin(), p.fa.end());
  pa.insert(pa.end(), p.ca.begin(), p.ca.end());
  pb.insert(pb.end(), p.cb.begin(), p.cb.end());
  pb.insert(pb.end(), p.fb.begin(), p.fb.end());
  Scratch<uint8_t> scratch_a, scratch_b;
  auto staged_a = Operand(a, pa, compute, out.budget(), scratch_a);
  if (!staged_a.ok()) return staged_a.status();
  auto staged_b = Operand(b, pb, compute, out.budget(), scratch_b);
  if (!staged_b.ok()) return staged_b.status();
  const uint8_t* A = *staged_a;
  const uint8_t* B = *staged_b;
  const uint64_t m = p.m, n = p.n, k = p.k;
  const size_t item = DTypeSize(compute);
  uint8_t* C = out.data();
  for (uint64_t bt = 0; bt < p.batch; ++bt) {
    const uint8_t* Ab = A + bt * m * k * item;
    const uint8_t* Bb = B + bt * k * n * item;
    uint8_t* Cb = C + bt * m * n * item;
    if (m * n == 0) continue;
    if ((compute == DType::kF32 || compute == DType::kF64 || ir::IsComplex(compute)) && gemm && k > 0) {
      MURE_RETURN_IF_ERROR(gemm(compute, m, n, k, Ab, Bb, Cb));
      continue;
    }
    if (ir::IsComplex(compute)) {  // no BLIS: plain loops in complex double
      for (uint64_t i = 0; i < m; ++i) {
        for (uint64_t j = 0; j < n; ++j) {
          std::complex<double> acc = 0;
          for (uint64_t q = 0; q < k; ++q) acc += LoadC(compute, Ab, i * k + q) * LoadC(compute, Bb, q * n + j);
          StoreC(compute, Cb, i * n + j, acc);
        }
      }
      continue;
    }
    for (uint64_t i = 0; i < m; ++i) {
      for (uint64_t j = 0; j < n; ++j) {
        if (IsFloat(compute)) {
          double acc = 0;
          for (uint64_t q = 0; q < k; ++q) acc += LoadF(compute, Ab, i * k + q) * LoadF(compute, Bb, q * n + j);
          StoreF(compute, Cb, i * n + j, acc);
        } else {
          uint64_t acc = 0;
          for (uint64_t q = 0; q < k; ++q) acc += LoadI(compute, Ab, i * k + q) * LoadI(compute, Bb, q * n + j);
          StoreI(compute, Cb, i * n + j, acc);
        }
      }
    }
  }
  return Status::Ok();
}

Status Outer(const Tensor& a, const Tensor& b, DType compute, Tensor& out) {
  const uint64_t na = a.elements(), nb = b.elements();
  if (out.elements() == 0) return Status::Ok();  // not a's elements one by one against an empty b
  for (uint64_t i = 0; i < na; ++i) {
    for (uint64_t j = 0; j < nb; ++j) {
      if (ir::IsComplex(compute)) {
        StoreC(out.type(), out.data(), i * nb + j,
               RoundC(compute, LoadC(a.type(), a.data(), i)) * RoundC(compute, LoadC(b.type(), b.data(), j)));
      } else if (IsFloat(compute)) {
        double x = RoundTo(compute, LoadF(a.type(), a.data(), i)), y = RoundTo(compute, LoadF(b.type(), b.data(), j));
        StoreF(out.type(), out.data(), i * nb + j, x * y);
      } else {
        StoreI(out.type(), out.data(), i * nb + j, LoadI(a.type(), a.data(), i) * LoadI(b.type(), b.data(), j));
      }
    }
  }
  return Status::Ok();
}

}  // namespace mure::cpu
