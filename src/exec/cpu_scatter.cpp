// mure — indexed_add / indexed_put on the CPU (exec/cpu_window.h).
#include <algorithm>
#include <string>

#include "exec/cpu_elements.h"
#include "exec/cpu_window.h"

namespace mure::cpu {

using namespace detail;

Status Indexed(bool add, const Tensor& in, const Tensor& indices, const Tensor& updates, const ir::IndexedPlan& plan,
               Tensor& out) {
  const Shape& s = in.shape();
  const auto st = RowMajorStrides(s);
  const DType xt = in.type(), it = indices.type(), ut = updates.type(), ot = out.type();
  const bool fl = IsFloat(ot);
  const char* what = add ? "indexed_add" : "indexed_put";
  // Every coordinate is checked before anything is written; each row's start offset is kept.
  auto base_s = Scratch<uint64_t>::Make(out.budget(), plan.rows, what);
  if (!base_s.ok()) return base_s.status();
  for (uint64_t r = 0; r < plan.rows; ++r) {
    uint64_t off = 0;
    for (uint64_t j = 0; j < plan.k; ++j) {
      const uint64_t v = LoadI(it, indices.data(), r * plan.k + j);
      const uint64_t axis = plan.axes[j];
      if ((IsSigned(it) && static_cast<int64_t>(v) < 0) || v >= s[axis]) {
        // Nx's words for it (Nx.BinaryBackend raises "index 3 is out of bounds for axis 0 in shape
        // {2, 2}"), then where in the indices it was.
        return Status(ErrorKind::kOutOfRange, std::string(what) + ": index " +
                                                  (IsSigned(it) ? std::to_string(static_cast<int64_t>(v))
                                                                : std::to_string(v)) +
                                                  " is out of bounds for axis " + std::to_string(axis) + " in shape " +
                                                  ShapeToString(s) + " (row " + std::to_string(r) + ", column " +
                                                  std::to_string(j) + " of the indices)");
      }
      off += v * st[axis];
    }
    (*base_s)[r] = off;
  }
  const uint64_t n = out.elements();
  if (n == 0) return Status::Ok();
  // The result, accumulated in double or as integer patterns (8 bytes per element, on the
  // node's budget), so that sums of duplicates round once, as Nx.BinaryBackend's do.
  auto accf_s = Scratch<double>::Make(out.budget(), fl ? n : 0, what);
  if (!accf_s.ok()) return accf_s.status();
  auto acci_s = Scratch<uint64_t>::Make(out.budget(), fl ? 0 : n, what);
  if (!acci_s.ok()) return acci_s.status();
  for (uint64_t i = 0; i < n; ++i) {
    if (fl) (*accf_s)[i] = RoundTo(ot, LoadF(xt, in.data(), i));
    else (*acci_s)[i] = Normalize(ot, LoadI(xt, in.data(), i));
  }
  uint64_t wcount = 1;
  for (uint64_t w : plan.window) wcount *= w;
  const size_t wr = plan.window.size();
  std::vector<uint64_t> wi(wr, 0);
  for (uint64_t r = 0; r < plan.rows; ++r) {
    std::fill(wi.begin(), wi.end(), 0);
    for (uint64_t p = 0; p < wcount; ++p) {
      uint64_t off = (*base_s)[r];
      for (size_t j = 0; j < wr; ++j) off += wi[j] * st[plan.rest[j]];
      const uint64_t u = r * wcount + p;
      if (fl) {
        const double v = RoundTo(ot, LoadF(ut, updates.data(), u));
        (*accf_s)[off] = add ? (*accf_s)[off] + v : v;
      } else {
        const uint64_t v = Normalize(ot, LoadI(ut, updates.data(), u));
        (*acci_s)[off] = add ? (*acci_s)[off] + v : v;
      }
      for (size_t j = wr; j-- > 0;) {
        if (++wi[j] < plan.window[j]) break;
        wi[j] = 0;
      }
    }
  }
  for (uint64_t i = 0; i < n; ++i) {
    if (fl) StoreF(ot, out.data(), i, (*accf_s)[i]);
    else StoreI(ot, out.data(), i, (*acci_s)[i]);
  }
  return Status::Ok();
}

}  // namespace mure::cpu
