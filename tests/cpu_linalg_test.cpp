// The linear-algebra ops on the CPU executor (LAPACK), checked by reconstruction against plain
// loops in double: P.L.U == A, Q.R == A with Q orthonormal, L.L^T == A, V.diag(w).V^T == A,
// U.S.Vt == A, residuals of solves; and their validation (shapes, ranks, placement, tuple values,
// sizes beyond LAPACK's 32-bit indexing refused before any allocation).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "exec/cpu_elements.h"
#include "exec/cpu_executor.h"
#include "sched/planner.h"
#include "sched/program.h"
#include "cpu_fixture.h"

using namespace mure;

using testing::Store;

namespace {

std::shared_ptr<Tensor> Make(DType t, const Shape& s, const std::vector<double>& v) {
  auto x = Store().Allocate(t, s);
  REQUIRE(x.ok());
  REQUIRE(v.size() == x.value()->elements());
  for (size_t i = 0; i < v.size(); ++i) cpu::detail::StoreF(t, x.value()->data(), i, v[i]);
  return std::move(*x);
}

std::vector<double> Values(const Tensor& t) {
  std::vector<double> v(t.elements());
  for (size_t i = 0; i < v.size(); ++i) v[i] = cpu::detail::LoadF(t.type(), t.data(), i);
  return v;
}

std::vector<double> Random(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<double> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

/// Operands by id; runs nodes (and elem of tuple values) as a program would.
struct Env {
  exec::CpuExecutor cpu{nullptr};
  Executors ex{&cpu, nullptr, false};
  std::map<uint64_t, std::shared_ptr<Tensor>> vals;
  std::map<uint64_t, std::vector<PartInfo>> parts;
  uint64_t next = 100;
  OperandLookup lookup = [this](uint64_t id) -> Result<ValueInfo> {
    auto it = vals.find(id);
    if (it == vals.end()) return Status(ErrorKind::kUnknownHandle, "no value " + std::to_string(id));
    return ValueInfo{it->second->type(), it->second->shape(), parts[id]};
  };
  uint64_t Put(std::shared_ptr<Tensor> t) {
    vals[++next] = std::move(t);
    return next;
  }
  Result<PlannedOp> Plan(const ir::Node& n, ir::Placement where = ir::Placement::kAuto) {
    return PlanOp(n, lookup, ex, where);
  }
  /// Run a planned node: the id of its value.
  Result<uint64_t> Run(const ir::Node& n) {
    auto p = Plan(n);
    if (!p.ok()) return p.status();
    std::vector<const Tensor*> ins;
    for (uint64_t id : p->operands) ins.push_back(vals.at(id).get());
    auto out = Store().Allocate(p->type, p->shape);
    REQUIRE(out.ok());
    Status st = p->kernel(ins, **out);
    if (!st.ok()) return st;
    const uint64_t id = Put(std::move(*out));
    parts[id] = p->parts;
    return id;
  }
  /// The results of a linalg node, each as its own tensor (through elem for tuples).
  std::vector<std::shared_ptr<Tensor>> Results(const ir::Linalg& n) {
    auto id = Run(n);
    REQUIRE(id.ok());
    std::vector<std::shared_ptr<Tensor>> out;
    if (parts[*id].empty()) return {vals[*id]};
    for (size_t i = 0; i < parts[*id].size(); ++i) {
      auto e = Run(ir::Elem{*id, static_cast<int64_t>(i)});
      REQUIRE(e.ok());
      out.push_back(vals[*e]);
    }
    return out;
  }
};

/// C = A.B of row-major matrices (m x k, k x n), in double.
std::vector<double> MatMul(const double* a, const double* b, size_t m, size_t k, size_t n) {
  std::vector<double> c(m * n, 0);
  for (size_t i = 0; i < m; ++i)
    for (size_t p = 0; p < k; ++p)
      for (size_t j = 0; j < n; ++j) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}
std::vector<double> Transposed(const double* a, size_t m, size_t n) {
  std::vector<double> t(m * n);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) t[j * m + i] = a[i * n + j];
  return t;
}
void Near(const std::vector<double>& x, const double* y, double tol) {
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == Approx(y[i]).margin(tol));
}

ir::Linalg Op(ir::LinalgOp op, uint64_t a, uint64_t b = 0) {
  ir::Linalg l;
  l.op = op;
  l.a = a;
  l.b = b;
  return l;
}

}  // namespace

TEST_CASE("lu: P.L.U == A, L unit lower, U upper, P a permutation (f64, f32, batched, integers)", "[linalg]") {
  Env env;
  const DType type = GENERATE(DType::kF64, DType::kF32, DType::kS32);
  const size_t n = 5, batch = 3;
  std::vector<double> a = Random(batch * n * n, 1);
  if (type == DType::kS32) for (auto& x : a) x = std::round(x * 9);
  auto r = env.Results(Op(ir::LinalgOp::kLu, env.Put(Make(type, {batch, n, n}, a))));
  REQUIRE(r.size() == 3);
  CHECK(r[0]->type() == type);  // Nx: p keeps the input's type
  const DType out = type == DType::kS32 ? DType::kF32 : type;
  CHECK(r[1]->type() == out);
  CHECK(r[2]->type() == out);
  const double tol = type == DType::kF64 ? 1e-12 : 1e-4 * 9;
  auto p = Values(*r[0]), l = Values(*r[1]), u = Values(*r[2]);
  for (size_t b = 0; b < batch; ++b) {
    const size_t o = b * n * n;
    for (size_t i = 0; i < n; ++i) {
      double row = 0;
      for (size_t j = 0; j < n; ++j) {
        row += p[o + i * n + j];
        if (j > i) CHECK(l[o + i * n + j] == 0);
        if (j == i) CHECK(l[o + i * n + j] == 1);
        if (j < i) CHECK(u[o + i * n + j] == 0);
      }
      CHECK(row == 1);
    }
    auto lu = MatMul(&l[o], &u[o], n, n, n);
    Near(MatMul(&p[o], lu.data(), n, n, n), &a[o], tol);
  }
}

TEST_CASE("qr: Q.R == A, Q orthonormal, R upper; reduced and complete, tall and wide", "[linalg]") {
  Env env;
  const bool complete = GENERATE(false, true);
  const auto [m, n] = GENERATE(std::pair<size_t, size_t>{5, 3}, std::pair<size_t, size_t>{3, 5},
                               std::pair<size_t, size_t>{4, 4});
  const size_t k = std::min(m, n), qc = complete ? m : k;
  std::vector<double> a = Random(2 * m * n, 2);
  auto op = Op(ir::LinalgOp::kQr, env.Put(Make(DType::kF64, {2, m, n}, a)));
  op.opts.complete = complete;
  auto r = env.Results(op);
  REQUIRE(r[0]->shape() == Shape{2, m, qc});
  REQUIRE(r[1]->shape() == Shape{2, qc, n});
  auto q = Values(*r[0]), rr = Values(*r[1]);
  for (size_t b = 0; b < 2; ++b) {
    const double* qb = &q[b * m * qc];
    const double* rb = &rr[b * qc * n];
    Near(MatMul(qb, rb, m, qc, n), &a[b * m * n], 1e-12);
    auto qtq = MatMul(Transposed(qb, m, qc).data(), qb, qc, m, qc);
    for (size_t i = 0; i < qc; ++i)
      for (size_t j = 0; j < qc; ++j) CHECK(qtq[i * qc + j] == Approx(i == j ? 1.0 : 0.0).margin(1e-12));
    for (size_t i = 0; i < qc; ++i)
      for (size_t j = 0; j < std::min(i, n); ++j) CHECK(rb[i * n + j] == 0);
  }
}

TEST_CASE("cholesky: L.L^T == A; a matrix that is not positive definite gives NaN", "[linalg]") {
  Env env;
  const size_t n = 4;
  std::vector<double> m = Random(n * n, 3);
  auto a = MatMul(m.data(), Transposed(m.data(), n, n).data(), n, n, n);
  for (size_t i = 0; i < n; ++i) a[i * n + i] += n;
  std::vector<double> both = a;
  both.insert(both.end(), {1, 2, 2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});  // eigenvalue -1
  auto r = env.Results(Op(ir::LinalgOp::kCholesky, env.Put(Make(DType::kF64, {2, n, n}, both))));
  auto l = Values(*r[0]);
  Near(MatMul(l.data(), Transposed(l.data(), n, n).data(), n, n, n), a.data(), 1e-12);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) CHECK(l[i * n + j] == 0);
  for (size_t i = n * n; i < 2 * n * n; ++i) CHECK(std::isnan(l[i]));
}

TEST_CASE("eigh: V.diag(w).V^T == A, w ascending; NaN input gives NaN, never a hang", "[linalg]") {
  Env env;
  const DType type = GENERATE(DType::kF64, DType::kF32);
  const size_t n = 6;
  std::vector<double> m = Random(n * n, 4);
  std::vector<double> a(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) a[i * n + j] = m[i * n + j] + m[j * n + i];
  std::vector<double> both = a;
  both.insert(both.end(), a.begin(), a.end());
  both[n * n + 7] = NAN;
  auto r = env.Results(Op(ir::LinalgOp::kEigh, env.Put(Make(type, {2, n, n}, both))));
  REQUIRE(r[0]->shape() == Shape{2, n});
  auto w = Values(*r[0]), v = Values(*r[1]);
  std::vector<double> vd(n * n);
  for (size_t i = 0; i < n; ++i) {
    if (i) CHECK(w[i - 1] <= w[i]);
    for (size_t j = 0; j < n; ++j) vd[i * n + j] = v[i * n + j] * w[j];
  }
  Near(MatMul(vd.data(), Transposed(v.data(), n, n).data(), n, n, n), a.data(), type == DType::kF64 ? 1e-12 : 1e-5);
  for (size_t i = n; i < 2 * n; ++i) CHECK(std::isnan(w[i]));
}

TEST_CASE("svd: U.S.Vt == A, s descending, U and Vt orthonormal; full and reduced", "[linalg]") {
  Env env;
  const bool full = GENERATE(true, false);
  const auto [m, n] = GENERATE(std::pair<size_t, size_t>{4, 3}, std::pair<size_t, size_t>{3, 5});
  const size_t k = std::min(m, n), uc = full ? m : k, vr = full ? n : k;
  std::vector<double> a = Random(m * n, 5);
  auto op = Op(ir::LinalgOp::kSvd, env.Put(Make(DType::kF64, {m, n}, a)));
  op.opts.full_matrices = full;
  auto r = env.Results(op);
  REQUIRE(r[0]->shape() == Shape{m, uc});
  REQUIRE(r[1]->shape() == Shape{k});
  REQUIRE(r[2]->shape() == Shape{vr, n});
  auto u = Values(*r[0]), s = Values(*r[1]), vt = Values(*r[2]);
  std::vector<double> us(m * k);  // U's first k columns times S
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < k; ++j) us[i * k + j] = u[i * uc + j] * s[j];
  for (size_t j = 0; j < k; ++j) {
    CHECK(s[j] >= 0);
    if (j) CHECK(s[j - 1] >= s[j]);
  }
  Near(MatMul(us.data(), vt.data(), m, k, n), a.data(), 1e-12);  // Vt's first k rows
  auto vvt = MatMul(vt.data(), Transposed(vt.data(), vr, n).data(), vr, n, vr);
  for (size_t i = 0; i < vr; ++i) CHECK(vvt[i * vr + i] == Approx(1).margin(1e-12));
}

TEST_CASE("triangular_solve: residuals for each side, triangle and transform; singular a is refused", "[linalg]") {
  Env env;
  const bool left = GENERATE(true, false), lower = GENERATE(true, false), transpose = GENERATE(false, true);
  const size_t n = 4, r = 3;
  std::vector<double> a = Random(n * n, 6);
  for (size_t i = 0; i < n; ++i) {
    a[i * n + i] += 3;
    for (size_t j = 0; j < n; ++j)
      if (lower ? j > i : j < i) a[i * n + j] = 100;  // the other triangle is not read
  }
  std::vector<double> b = Random(n * r, 7);
  auto op = Op(ir::LinalgOp::kTriangularSolve, env.Put(Make(DType::kF64, {n, n}, a)),
               env.Put(Make(DType::kF64, left ? Shape{n, r} : Shape{r, n}, b)));
  op.opts = {false, true, left, lower, transpose};
  auto x = Values(*env.Results(op)[0]);
  std::vector<double> t(a);  // the triangle a stands for, then op(a)
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      if (lower ? j > i : j < i) t[i * n + j] = 0;
  if (transpose) t = Transposed(t.data(), n, n);
  Near(left ? MatMul(t.data(), x.data(), n, n, r) : MatMul(x.data(), t.data(), r, n, n), b.data(), 1e-12);

  a[2 * n + 2] = 0;
  auto singular = Op(ir::LinalgOp::kTriangularSolve, env.Put(Make(DType::kF64, {n, n}, a)),
                     env.Put(Make(DType::kF64, {n}, {1, 2, 3, 4})));
  singular.opts = {false, true, left, lower, transpose};
  auto st = env.Run(singular);
  REQUIRE_FALSE(st.ok());
  CHECK(st.status().kind() == ErrorKind::kBadArg);
  CHECK_THAT(st.status().message(), Catch::Contains("can't solve for singular matrix"));
}

TEST_CASE("solve: A.x == b for vectors and matrices, batched; a singular a is refused", "[linalg]") {
  Env env;
  const size_t n = 5;
  std::vector<double> a = Random(2 * n * n, 8), b = Random(2 * n, 9);
  auto x = Values(*env.Results(Op(ir::LinalgOp::kSolve, env.Put(Make(DType::kF64, {2, n, n}, a)),
                                  env.Put(Make(DType::kF64, {2, n}, b))))[0]);
  for (size_t k = 0; k < 2; ++k) Near(MatMul(&a[k * n * n], &x[k * n], n, n, 1), &b[k * n], 1e-12);
  std::vector<double> bm = Random(n * 2, 10);
  auto xm = env.Results(Op(ir::LinalgOp::kSolve, env.Put(Make(DType::kS64, {n, n}, {2, 0, 0, 0, 0, 0, 3, 0, 0, 0,
                                                                                      0, 0, 4, 0, 0, 0, 0, 0, 5, 0,
                                                                                      1, 0, 0, 0, 1})),
                               env.Put(Make(DType::kF32, {n, 2}, bm))))[0];
  CHECK(xm->type() == DType::kF32);
  auto xv = Values(*xm);
  CHECK(xv[0] == Approx(bm[0] / 2));
  CHECK(xv[2] == Approx(bm[2] / 3));
  auto st = env.Run(Op(ir::LinalgOp::kSolve, env.Put(Make(DType::kF64, {2, 2}, {1, 2, 2, 4})),
                       env.Put(Make(DType::kF64, {2}, {1, 1}))));
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.status().message(), Catch::Contains("singular"));
}

TEST_CASE("determinant: known values, batched, the empty matrix has 1", "[linalg]") {
  Env env;
  auto d = Values(*env.Results(Op(ir::LinalgOp::kDeterminant,
                                  env.Put(Make(DType::kS32, {3, 2, 2}, {1, 2, 3, 4, 0, 1, 1, 0, 2, 4, 1, 2}))))[0]);
  REQUIRE(d.size() == 3);
  CHECK(d[0] == Approx(-2));
  CHECK(d[1] == Approx(-1));
  CHECK(d[2] == 0);
  auto d3 = Values(*env.Results(
      Op(ir::LinalgOp::kDeterminant, env.Put(Make(DType::kF64, {3, 3}, {6, 1, 1, 4, -2, 5, 2, 8, 7}))))[0]);
  CHECK(d3[0] == Approx(-306));
  auto e = env.Results(Op(ir::LinalgOp::kDeterminant, env.Put(Make(DType::kF32, {0, 0}, {}))));
  CHECK(Values(*e[0]) == std::vector<double>{1});
}

TEST_CASE("linalg validation: ranks, squares, b's shape, sizes, placement, tuple values", "[linalg]") {
  Env env;
  const uint64_t v = env.Put(Make(DType::kF32, {3}, {1, 2, 3}));
  const uint64_t rect = env.Put(Make(DType::kF32, {2, 3}, {1, 2, 3, 4, 5, 6}));
  const uint64_t sq = env.Put(Make(DType::kF32, {2, 2}, {4, 1, 1, 3}));
  auto kind = [&](const ir::Node& n, ir::Placement where = ir::Placement::kAuto) {
    auto p = env.Plan(n, where);
    REQUIRE_FALSE(p.ok());
    return p.status();
  };
  CHECK(kind(Op(ir::LinalgOp::kLu, v)).kind() == ErrorKind::kBadShape);
  CHECK_THAT(kind(Op(ir::LinalgOp::kCholesky, rect)).message(), Catch::Contains("square"));
  CHECK(kind(Op(ir::LinalgOp::kDeterminant, rect)).kind() == ErrorKind::kShapeMismatch);
  CHECK(kind(Op(ir::LinalgOp::kSolve, sq, v)).kind() == ErrorKind::kShapeMismatch);
  CHECK(kind(Op(ir::LinalgOp::kTriangularSolve, sq, v)).kind() == ErrorKind::kShapeMismatch);
  // Beyond LAPACK's 32-bit indexing: refused when planned, before any allocation.
  env.vals[1] = Make(DType::kF32, {0, 1u << 16, 1u << 16}, {});
  CHECK_THAT(kind(Op(ir::LinalgOp::kQr, 1)).message(), Catch::Contains("32-bit"));
  // The OpenCL device has no LAPACK.
  CHECK(kind(Op(ir::LinalgOp::kLu, sq), ir::Placement::kOpenCl).kind() == ErrorKind::kUnsupported);
  // A tuple value is read only through elem, with an index in range.
  auto t = env.Run(Op(ir::LinalgOp::kQr, sq));
  REQUIRE(t.ok());
  CHECK_THAT(kind(ir::Unary{"exp", ir::UnaryOp::kExp, *t}).message(), Catch::Contains("{:elem, v, i}"));
  CHECK(kind(ir::Elem{*t, 2}).kind() == ErrorKind::kOutOfRange);
  CHECK(kind(ir::Elem{*t, -1}).kind() == ErrorKind::kOutOfRange);
  CHECK(kind(ir::Elem{sq, 0}).kind() == ErrorKind::kBadArg);
}

TEST_CASE("programs: a tuple value is not an output; elem parts are", "[linalg][program]") {
  exec::CpuExecutor cpu(nullptr);
  CostModel cost;
  ProgramTarget target;
  target.exec = Executors{&cpu, nullptr, false};
  target.cost = &cost;
  target.max_message = 1 << 20;
  proto::Program prog;
  prog.inputs.resize(1);
  ir::Linalg qr;
  qr.op = ir::LinalgOp::kQr;
  qr.a = 1;
  prog.nodes.push_back(proto::ProgramNode{qr, proto::Placement::kAuto});
  prog.nodes.push_back(proto::ProgramNode{ir::Elem{2, 1}, proto::Placement::kAuto});
  prog.outputs = {{3, false}};
  std::vector<ValueInfo> in{ValueInfo{DType::kF32, {3, 2}, {}}};
  auto ok = PlanProgram(prog, in, target);
  REQUIRE(ok.ok());
  CHECK(ok->values[2].shape == Shape{2, 2});
  prog.outputs = {{2, false}};
  auto bad = PlanProgram(prog, in, target);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("tuple"));
}
