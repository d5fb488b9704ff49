// The window, scatter and cumulative ops (ir/window.h, exec/cpu_window.h) through the planner on
// the CPU executor, against naive references written here (loops over padded windows, scatter
// with ties, scans in both directions), their errors, and the OpenCL executor's clear refusal.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "exec/cpu_elements.h"
#include "exec/cpu_executor.h"
#include "exec/opencl_device.h"
#include "ir/window.h"
#include "opencl_fixture.h"
#include "sched/planner.h"

using namespace mure;
using mure::cpu::detail::LoadF;
using mure::cpu::detail::StoreF;

namespace {

std::shared_ptr<Tensor> Make(DType t, const Shape& s, const std::vector<double>& v) {
  auto x = testing::Store().Allocate(t, s);
  REQUIRE(x.ok());
  REQUIRE(v.size() == (*x)->elements());
  for (size_t i = 0; i < v.size(); ++i) StoreF(t, (*x)->data(), i, v[i]);
  return std::move(*x);
}

std::vector<double> Values(const Tensor& t) {
  std::vector<double> out(t.elements());
  for (size_t i = 0; i < out.size(); ++i) out[i] = LoadF(t.type(), t.data(), i);
  return out;
}

/// Operands by id; plans on the CPU executor (or the placement given) and runs the node.
struct Bench {
  std::map<uint64_t, std::shared_ptr<Tensor>> byid;
  exec::CpuExecutor cpu{nullptr};
  uint64_t Add(std::shared_ptr<Tensor> t) {
    const uint64_t id = byid.size() + 1;
    byid[id] = std::move(t);
    return id;
  }
  Result<PlannedOp> Plan(const ir::Node& n, ir::Placement where = ir::Placement::kAuto, exec::Executor* ocl = nullptr) {
    OperandLookup lookup = [this](uint64_t id) -> Result<ValueInfo> {
      auto it = byid.find(id);
      if (it == byid.end()) return Status(ErrorKind::kUnknownHandle, "no tensor");
      return ValueInfo{it->second->type(), it->second->shape()};
    };
    return PlanOp(n, lookup, Executors{&cpu, ocl, false}, where);
  }
  Result<std::shared_ptr<Tensor>> Run(const ir::Node& n, ir::Placement where = ir::Placement::kAuto,
                                      exec::Executor* ocl = nullptr) {
    auto p = Plan(n, where, ocl);
    if (!p.ok()) return p.status();
    std::vector<const Tensor*> ins;
    for (uint64_t id : p->operands) ins.push_back(byid.at(id).get());
    auto out = testing::Store().Allocate(p->type, p->shape);
    if (!out.ok()) return out.status();
    Status st = p->kernel(ins, **out);
    if (!st.ok()) return st;
    return std::move(*out);
  }
};

std::vector<double> Random(size_t n, std::mt19937& rng, bool integers) {
  std::uniform_real_distribution<double> u(-10, 10);
  std::vector<double> v(n);
  for (auto& x : v) x = integers ? std::round(u(rng)) : u(rng);
  return v;
}

uint64_t Count(const Shape& s) {
  uint64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

/// Naive window reduction: pad explicitly into a bigger array, then loop over windows.
std::vector<double> RefWindow(const std::string& op, const Shape& s, const std::vector<double>& x,
                              const std::vector<uint64_t>& w, const std::vector<uint64_t>& st,
                              const std::vector<std::pair<uint64_t, uint64_t>>& pad, const std::vector<uint64_t>& dil,
                              double init, Shape& out_shape) {
  const size_t r = s.size();
  Shape ps(r);
  for (size_t d = 0; d < r; ++d) ps[d] = s[d] + pad[d].first + pad[d].second;
  std::vector<double> padded(Count(ps), init);
  auto strides = [](const Shape& sh) {
    std::vector<uint64_t> v(sh.size(), 1);
    for (size_t i = sh.size(); i-- > 1;) v[i - 1] = v[i] * sh[i];
    return v;
  };
  auto ss = strides(s), pst = strides(ps);
  for (uint64_t i = 0; i < x.size(); ++i) {
    uint64_t off = 0, rem = i;
    for (size_t d = 0; d < r; ++d) { off += (rem / ss[d] + pad[d].first) * pst[d]; rem %= ss[d]; }
    padded[off] = x[i];
  }
  out_shape.assign(r, 0);
  for (size_t d = 0; d < r; ++d) out_shape[d] = (ps[d] - ((w[d] - 1) * dil[d] + 1)) / st[d] + 1;
  auto os = strides(out_shape), ws = strides(Shape(w.begin(), w.end()));
  std::vector<double> out(Count(out_shape));
  for (uint64_t o = 0; o < out.size(); ++o) {
    double acc = init;
    for (uint64_t k = 0; k < Count(Shape(w.begin(), w.end())); ++k) {
      uint64_t off = 0;
      for (size_t d = 0; d < r; ++d) off += ((o / os[d]) % out_shape[d] * st[d] + (k / ws[d]) % w[d] * dil[d]) * pst[d];
      const double v = padded[off];
      if (op == "sum") acc += v;
      else if (op == "product") acc *= v;
      else if (op == "reduce_max") acc = std::max(acc, v);
      else acc = std::min(acc, v);
    }
    out[o] = acc;
  }
  return out;
}

std::vector<int64_t> I(const std::vector<uint64_t>& v) { return std::vector<int64_t>(v.begin(), v.end()); }

}  // namespace

TEST_CASE("window reductions match a naive padded-window loop", "[window]") {
  std::mt19937 rng(7);
  for (std::string op : {"sum", "product", "reduce_max", "reduce_min"}) {
    for (DType t : {DType::kF64, DType::kS32, DType::kF32}) {
      for (int trial = 0; trial < 6; ++trial) {
        const size_t rank = 1 + trial % 3;
        Shape s(rank);
        std::vector<uint64_t> w(rank), st(rank), dil(rank);
        std::vector<std::pair<uint64_t, uint64_t>> pad(rank);
        std::vector<std::pair<int64_t, int64_t>> ipad(rank);
        for (size_t d = 0; d < rank; ++d) {
          s[d] = 3 + rng() % 4;
          w[d] = 1 + rng() % 3;
          st[d] = 1 + rng() % 2;
          dil[d] = 1 + rng() % 2;
          pad[d] = {rng() % 2, rng() % 3};
          ipad[d] = {static_cast<int64_t>(pad[d].first), static_cast<int64_t>(pad[d].second)};
          if ((w[d] - 1) * dil[d] + 1 > s[d] + pad[d].first + pad[d].second) dil[d] = 1;
        }
        auto v = Random(Count(s), rng, op == "product" || t == DType::kS32);
        if (op == "product") for (auto& e : v) e = std::fmod(e, 3);
        Bench b;
        const uint64_t x = b.Add(Make(t, s, v));
        const double init = op == "sum" ? 0 : op == "product" ? 1 : op == "reduce_max" ? -INFINITY : INFINITY;
        const double iinit = t == DType::kS32 && std::isinf(init) ? (init < 0 ? -2147483648.0 : 2147483647.0) : init;
        Shape os;
        auto ref = RefWindow(op, s, v, w, st, pad, dil, iinit, os);
        auto out = b.Run(ir::Window{op, ir::ReduceFromName(op), x, I(w), I(st), ipad, I(dil), std::nullopt});
        REQUIRE(out.ok());
        REQUIRE((*out)->shape() == os);
        REQUIRE((*out)->type() == t);
        auto got = Values(**out);
        for (size_t i = 0; i < ref.size(); ++i) {
          INFO(op << " " << DTypeToString(t) << " trial " << trial << " element " << i);
          if (t == DType::kF32) REQUIRE(got[i] == Approx(static_cast<float>(ref[i])).epsilon(1e-6));
          else REQUIRE(got[i] == ref[i]);
        }
      }
    }
  }
}

TEST_CASE("a window with an init value pads and starts with it", "[window]") {
  Bench b;
  const uint64_t x = b.Add(Make(DType::kS32, {4}, {1, 2, 3, 4}));
  ir::Scalar ten;
  ten.i = 10;
  // Windows of 2 over [10 | 1 2 3 4 | 10], stride 2: 10+10+1, 10+2+3, 10+4+10.
  auto out = b.Run(ir::Window{"sum", ir::ReduceOp::kSum, x, {2}, {2}, {{1, 1}}, {1}, ten});
  REQUIRE(out.ok());
  CHECK(Values(**out) == std::vector<double>{21, 15, 24});
  // Max over an all-padding-free window of an s8: the type's minimum starts it.
  const uint64_t y = b.Add(Make(DType::kS8, {3}, {-128, -5, -128}));
  auto m = b.Run(ir::Window{"reduce_max", ir::ReduceOp::kReduceMax, y, {2}, {1}, {{0, 0}}, {1}, std::nullopt});
  REQUIRE(m.ok());
  CHECK(Values(**m) == std::vector<double>{-5, -5});
}

TEST_CASE("window_scatter adds the source at each window's max or min, the last of ties", "[window]") {
  Bench b;
  // Nx's documented example of window_scatter_max.
  const uint64_t x = b.Add(Make(DType::kS32, {4, 6}, {7, 2, 5, 3, 10, 2, 3, 8, 9, 3, 4, 2,
                                                      1, 5, 7, 5, 6, 1, 0, 6, 2, 7, 2, 8}));
  const uint64_t src = b.Add(Make(DType::kS32, {2, 2}, {2, 6, 3, 1}));
  ir::Scalar zero;
  auto out = b.Run(ir::WindowScatter{"max", x, src, zero, {2, 3}, {2, 3}, {{0, 0}, {0, 0}}});
  REQUIRE(out.ok());
  CHECK(Values(**out) == std::vector<double>{0, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0, 0,
                                             0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  // Ties: overlapping windows of 2 over equal values pick the last; sources add up.
  const uint64_t t = b.Add(Make(DType::kF32, {4}, {1, 1, 1, 1}));
  const uint64_t s3 = b.Add(Make(DType::kF32, {3}, {10, 20, 40}));
  ir::Scalar half;
  half.integer = false;
  half.f = 0.5;
  auto ties = b.Run(ir::WindowScatter{"min", t, s3, half, {2}, {1}, {{0, 0}}});
  REQUIRE(ties.ok());
  CHECK(Values(**ties) == std::vector<double>{0.5, 10.5, 20.5, 40.5});
  // Two windows selecting one position accumulate; padding is never selected.
  const uint64_t u = b.Add(Make(DType::kF64, {3}, {-1, 5, -2}));
  const uint64_t s2 = b.Add(Make(DType::kF64, {2}, {1, 2}));
  auto pad = b.Run(ir::WindowScatter{"max", u, s2, zero, {2}, {2}, {{1, 0}}});  // windows [pad -1], [5 -2]
  REQUIRE(pad.ok());
  CHECK(Values(**pad) == std::vector<double>{1, 2, 0});
  // The source must have the windows' shape.
  auto bad = b.Run(ir::WindowScatter{"max", u, s3, zero, {2}, {2}, {{1, 0}}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().kind() == ErrorKind::kShapeMismatch);
}

TEST_CASE("cumulative ops scan forward and in reverse along any axis", "[window]") {
  std::mt19937 rng(11);
  const Shape s{3, 4, 2};
  for (std::string op : {"sum", "product", "reduce_max", "reduce_min"}) {
    for (DType t : {DType::kS64, DType::kF64}) {
      for (int64_t axis : {0, 1, -1}) {
        for (bool rev : {false, true}) {
          auto v = Random(Count(s), rng, t == DType::kS64 || op == "product");
          Bench b;
          const uint64_t x = b.Add(Make(t, s, v));
          auto out = b.Run(ir::Cumulative{op, ir::ReduceFromName(op), x, axis, rev});
          REQUIRE(out.ok());
          const uint64_t ax = axis < 0 ? 2 : static_cast<uint64_t>(axis);
          const uint64_t st[3] = {8, 2, 1};
          auto got = Values(**out);
          for (uint64_t i = 0; i < v.size(); ++i) {
            const uint64_t pos = (i / st[ax]) % s[ax];
            double acc = op == "sum" ? 0 : op == "product" ? 1 : op == "reduce_max" ? -INFINITY : INFINITY;
            for (uint64_t j = 0; j < s[ax]; ++j) {
              if (rev ? j < pos : j > pos) continue;
              const double e = v[i - pos * st[ax] + j * st[ax]];
              acc = op == "sum" ? acc + e : op == "product" ? acc * e : op == "reduce_max" ? std::max(acc, e)
                                                                                         : std::min(acc, e);
            }
            INFO(op << " axis " << axis << " reverse " << rev << " element " << i);
            REQUIRE(got[i] == Approx(acc));
          }
        }
      }
    }
  }
  Bench b;
  const uint64_t x = b.Add(Make(DType::kF32, {2}, {1, 2}));
  auto argmax = b.Run(ir::Cumulative{"argmax", ir::ReduceOp::kArgmax, x, 0, false});
  REQUIRE_FALSE(argmax.ok());
  CHECK(argmax.status().kind() == ErrorKind::kBadArg);
  auto axis = b.Run(ir::Cumulative{"sum", ir::ReduceOp::kSum, x, 1, false});
  REQUIRE_FALSE(axis.ok());
  CHECK(axis.status().kind() == ErrorKind::kBadArg);
}

TEST_CASE("indexed add accumulates duplicates, put keeps the last, both over chosen axes", "[indexed]") {
  Bench b;
  const uint64_t x = b.Add(Make(DType::kS32, {3, 2}, {1, 2, 3, 4, 5, 6}));
  const uint64_t idx = b.Add(Make(DType::kS64, {3, 2}, {0, 1, 2, 0, 0, 1}));
  const uint64_t upd = b.Add(Make(DType::kF32, {3}, {10, 20, 30}));
  auto add = b.Run(ir::Indexed{"add", x, idx, upd, {}});
  REQUIRE(add.ok());
  CHECK((*add)->type() == DType::kF32);
  CHECK(Values(**add) == std::vector<double>{1, 42, 3, 4, 25, 6});
  auto put = b.Run(ir::Indexed{"put", x, idx, upd, {}});
  REQUIRE(put.ok());
  CHECK(Values(**put) == std::vector<double>{1, 30, 3, 4, 20, 6});
  // axes: [1] indexes columns; the updates' window runs along axis 0 (2 of its 3 rows).
  const uint64_t col = b.Add(Make(DType::kU8, {2, 1}, {1, 1}));
  const uint64_t win = b.Add(Make(DType::kS32, {2, 2}, {1, 2, 3, 4}));
  auto cols = b.Run(ir::Indexed{"add", x, col, win, {1}});
  REQUIRE(cols.ok());
  CHECK(Values(**cols) == std::vector<double>{1, 6, 3, 10, 5, 6});
  // Out of range, negative, float indices; shapes that do not fit.
  const uint64_t far = b.Add(Make(DType::kS32, {1, 2}, {3, 0}));
  const uint64_t neg = b.Add(Make(DType::kS32, {1, 2}, {0, -1}));
  const uint64_t one = b.Add(Make(DType::kS32, {1}, {9}));
  for (uint64_t bad : {far, neg}) {
    auto r = b.Run(ir::Indexed{"put", x, bad, one, {}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().kind() == ErrorKind::kOutOfRange);
    CHECK_THAT(r.status().message(), Catch::Contains("is out of bounds for axis"));
  }
  const uint64_t fidx = b.Add(Make(DType::kF32, {1, 2}, {0, 0}));
  auto fl = b.Run(ir::Indexed{"add", x, fidx, one, {}});
  REQUIRE_FALSE(fl.ok());
  CHECK(fl.status().kind() == ErrorKind::kTypeMismatch);
  auto shape = b.Run(ir::Indexed{"add", x, idx, one, {}});
  REQUIRE_FALSE(shape.ok());
  CHECK(shape.status().kind() == ErrorKind::kShapeMismatch);
  auto axes = b.Run(ir::Indexed{"add", x, col, win, {0, 1}});
  REQUIRE_FALSE(axes.ok());
  auto name = b.Run(ir::Indexed{"multiply", x, idx, upd, {}});
  REQUIRE_FALSE(name.ok());
  CHECK(name.status().kind() == ErrorKind::kUnknownOp);
}

TEST_CASE("window requests with bad geometry are refused before anything runs", "[window]") {
  Bench b;
  const uint64_t x = b.Add(Make(DType::kF32, {4, 4}, std::vector<double>(16, 1)));
  auto win = [&](std::vector<int64_t> dims, std::vector<int64_t> strides,
                 std::vector<std::pair<int64_t, int64_t>> pad, std::vector<int64_t> dil) {
    return b.Plan(ir::Window{"sum", ir::ReduceOp::kSum, x, dims, strides, pad, dil, std::nullopt});
  };
  auto rank = win({2}, {1}, {{0, 0}}, {1});
  REQUIRE_FALSE(rank.ok());
  CHECK(rank.status().kind() == ErrorKind::kShapeMismatch);
  CHECK_THAT(rank.status().message(), Catch::Contains("rank-2"));
  for (int64_t bad : {0, -3}) {
    auto s = win({2, 2}, {1, bad}, {{0, 0}, {0, 0}}, {1, 1});
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().kind() == ErrorKind::kBadArg);
    auto d = win({2, 2}, {1, 1}, {{0, 0}, {0, 0}}, {bad, 1});
    REQUIRE_FALSE(d.ok());
    auto w = win({bad, 2}, {1, 1}, {{0, 0}, {0, 0}}, {1, 1});
    REQUIRE_FALSE(w.ok());
  }
  auto neg_pad = win({2, 2}, {1, 1}, {{-1, 0}, {0, 0}}, {1, 1});
  REQUIRE_FALSE(neg_pad.ok());
  auto too_big = win({5, 2}, {1, 1}, {{0, 0}, {0, 0}}, {1, 1});
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.status().kind() == ErrorKind::kShapeMismatch);
  auto huge = win({int64_t{1} << 40, 1}, {1, 1}, {{int64_t{1} << 40, 0}, {0, 0}}, {1, 1});
  REQUIRE_FALSE(huge.ok());
  auto work = win({1 << 20, 1}, {1, 1}, {{1 << 20, 1 << 20}, {0, 0}}, {1, 1});  // 2^20 windows of 2^20
  REQUIRE_FALSE(work.ok());
  CHECK(work.status().kind() == ErrorKind::kBadShape);
  CHECK_THAT(work.status().message(), Catch::Contains("2^36"));
  auto overflow = win({2, 2}, {1, 1}, {{0, 0}, {0, 0}}, {int64_t{1} << 47, 1});
  REQUIRE_FALSE(overflow.ok());
  auto all = b.Plan(ir::Window{"all", ir::ReduceOp::kAll, x, {1, 1}, {1, 1}, {{0, 0}, {0, 0}}, {1, 1}, std::nullopt});
  REQUIRE_FALSE(all.ok());
  CHECK(all.status().kind() == ErrorKind::kBadArg);
}

TEST_CASE("the OpenCL executor refuses the window ops clearly; :auto runs them on the CPU", "[window][opencl]") {
  Bench b;
  const uint64_t x = b.Add(Make(DType::kF32, {4}, {1, 2, 3, 4}));
  const ir::Node n = ir::Cumulative{"sum", ir::ReduceOp::kSum, x, 0, false};
  exec::OpenClDevice opencl(testing::Device());
  auto there = b.Run(n, ir::Placement::kOpenCl, &opencl);
  REQUIRE_FALSE(there.ok());
  CHECK(there.status().kind() == ErrorKind::kUnsupported);
  CHECK_THAT(there.status().message(), Catch::Contains("cumulative") && Catch::Contains(":cpu or :auto"));
  auto here = b.Run(n, ir::Placement::kAuto, &opencl);
  REQUIRE(here.ok());
  CHECK(Values(**here) == std::vector<double>{1, 3, 6, 10});
}
