// Cross-checks driven by the op table itself (ir/ops.def, through ir::UnaryTable() and friends):
// every row on every type it takes, CPU against OpenCL (bit for bit where the row says exact,
// within README's ULP bound otherwise), and every fusible row fused against the same op run on
// its own on OpenCL (bit for bit). No hand list of ops: a new row is checked as soon as it exists.
// Inputs are the extremes: ±88, ±89, ±104 (where f32 exp overflows or goes subnormal), ±inf,
// NaN, ±0, subnormals, large magnitudes, and every integer type's extremes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "exec/cpu_ops.h"
#include "exec/opencl_executor.h"
#include "exec/opencl_fused.h"
#include "exec/opencl_ops.h"
#include "ir/ops.h"
#include "element_bits.h"
#include "opencl_fixture.h"

using namespace mure;
using ir::BinaryOp;
using ir::IsFloat;
using ir::UnaryOp;
using testing::Alloc;
using testing::Bits;
using testing::Device;
using testing::kAllTypes;
using testing::UlpDistance;

namespace {

std::vector<double> FloatEdges() {
  const double inf = std::numeric_limits<double>::infinity();
  const double f32_sub = std::numeric_limits<float>::denorm_min(), f32_min = std::numeric_limits<float>::min();
  return {0.0,    -0.0,    1,      -1,      0.5,     -0.5,   2,       -2,      3.25,   -7.5,    0.1,
          1.5707963267948966,  88,      -88,    89,      -89,     104,    -104,    88.72,  -87.34, 1e-3,
          -1e-3,  0.999,   -0.999, 1e10,    -1e10,   3e38,   -3e38,   1e300,  -1e300,  65504,  -65520,
          710,    -745,    1e-40,  -1e-40,  f32_sub, f32_min, 5e-324,  -1e-310, inf,     -inf,   NAN,
          -NAN,   1e5,     -3e4,   0.25,    12.5};
}

std::vector<uint64_t> IntEdges() {
  return {0,          1,          2,          3,          5,          7,          8,
          31,         32,         63,         64,         65,         100,        0x7f,
          0x80,       0xff,       0x100,      0x7fff,     0x8000,     0xffff,     0x7fffffff,
          0x80000000, 0xffffffff, 0x7fffffffffffffffull,  0x8000000000000000ull,  ~0ull,
          ~0ull - 1,  ~0ull - 2,  0 - 64ull,  0 - 100ull, 0x0123456789abcdefull};
}

/// The edge values converted to `t` (floats round and overflow to inf; integer patterns wrap).
std::shared_ptr<Tensor> Edges(DType t, const std::vector<size_t>& pick) {
  const uint64_t n = pick.size();
  if (IsFloat(t)) {
    auto src = Alloc(DType::kF64, {n});
    const auto e = FloatEdges();
    for (uint64_t i = 0; i < n; ++i) src->as<double>()[i] = e[pick[i]];
    auto out = Alloc(t, {n});
    REQUIRE(cpu::AsType(*src, *out).ok());
    return out;
  }
  auto src = Alloc(DType::kU64, {n});
  const auto e = IntEdges();
  for (uint64_t i = 0; i < n; ++i) src->as<uint64_t>()[i] = e[pick[i]];
  auto out = Alloc(t, {n});
  REQUIRE(cpu::AsType(*src, *out).ok());
  return out;
}

size_t EdgeCount(DType t) { return IsFloat(t) ? FloatEdges().size() : IntEdges().size(); }

/// Indices 0..k-1 (unary), or the two index columns of all k*k pairs (binary).
std::vector<size_t> Iota(size_t k) {
  std::vector<size_t> v(k);
  for (size_t i = 0; i < k; ++i) v[i] = i;
  return v;
}
std::vector<size_t> PairColumn(size_t k, bool second) {
  std::vector<size_t> v;
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = 0; j < k; ++j) v.push_back(second ? j : i);
  }
  return v;
}

/// `pick` repeated until it has at least `n` entries: enough elements that a fused kernel's
/// work-items each run a long block, the regime a CPU device's compiler vectorises.
std::vector<size_t> Tiled(std::vector<size_t> pick, size_t n) {
  const size_t k = pick.size();
  while (pick.size() < n) pick.push_back(pick[pick.size() % k]);
  return pick;
}

double Value(DType t, const uint8_t* p, uint64_t i) {
  return IsFloat(t) ? testing::FloatValue(t, p, i) : static_cast<double>(Bits(t, p, i));
}

bool WithinBound(DType t, uint64_t wb, uint64_t gb, double w, double g) {
  if (UlpDistance(t, wb, gb) <= (t == DType::kF16 || t == DType::kBF16 ? 1u : 4u)) return true;
  const double smallest = t == DType::kF16 ? 6.103515625e-05
                          : t == DType::kF64 ? std::numeric_limits<double>::min()
                                             : std::numeric_limits<float>::min();
  return std::fabs(w - g) <= smallest;
}

/// Counts the elements of `got` that differ from `want`: any bit when `exact`, else outside
/// WithinBound; describes the first few in `first`. Two NaNs agree whatever their sign and payload:
/// which of two NaN operands an add propagates is the compiler's choice of operand order.
uint64_t Differences(const Tensor& want, const Tensor& got, bool exact, const Tensor* a,
                     const Tensor* b, std::string& first) {
  REQUIRE(want.type() == got.type());
  const DType t = want.type();
  uint64_t bad = 0;
  for (uint64_t i = 0; i < want.elements(); ++i) {
    const uint64_t wb = Bits(t, want.data(), i), gb = Bits(t, got.data(), i);
    if (wb == gb) continue;
    if (IsFloat(t)) {
      const double w = Value(t, want.data(), i), g = Value(t, got.data(), i);
      if (std::isnan(w) && std::isnan(g)) continue;
      if (!exact && !std::isnan(w) && !std::isnan(g) && WithinBound(t, wb, gb, w, g)) continue;
    }
    if (bad++ < 4) {
      std::ostringstream os;
      os.precision(17);
      os << "\n  element " << i;
      if (a) os << " x=" << Value(a->type(), a->data(), i);
      if (b) os << " y=" << Value(b->type(), b->data(), i);
      os << ": want " << Value(t, want.data(), i) << " (0x" << std::hex << wb << "), got " << std::dec
         << Value(t, got.data(), i) << " (0x" << std::hex << gb << ")";
      first += os.str();
    }
  }
  return bad;
}

ocl::FusedStep Input() { return ocl::FusedStep{}; }

}  // namespace

TEST_CASE("the op table is consistent: names, enumerators, formulas and rules", "[ops][table]") {
  std::set<std::string_view> names;
  size_t i = 0;
  for (const auto& row : ir::UnaryTable()) {
    INFO("unary " << row.name);
    CHECK(static_cast<size_t>(row.op) == i++);
    CHECK(names.insert(row.name).second);
    CHECK(ir::UnaryFromName(row.name) == row.op);
    // A float formula exactly where floats are taken; an integer one where integers stay integers.
    // The complex ops (conjugate, real, imag) have only their complex rows (CPU executor).
    const bool complex_only = row.rule == ir::UnaryRule::kComplex || row.rule == ir::UnaryRule::kComplexPart;
    CHECK(row.has_float == (row.rule != ir::UnaryRule::kIntegerOnly && !complex_only));
    CHECK(row.has_integer == (row.rule != ir::UnaryRule::kFloating && !complex_only));
    if (complex_only) CHECK(ir::ComplexUnaryRule(row.op).has_value());
    if (row.fusible) CHECK(ir::UnaryResultType(row.op, DType::kF32).value() == DType::kF32);
  }
  i = 0;
  for (const auto& row : ir::BinaryTable()) {
    INFO("binary " << row.name);
    CHECK(static_cast<size_t>(row.op) == i++);
    CHECK(names.insert(row.name).second);
    CHECK(ir::BinaryFromName(row.name) == row.op);
    CHECK(row.has_float == (row.rule != ir::BinaryRule::kIntegerOnly));
    CHECK(row.has_integer == (row.rule != ir::BinaryRule::kFloating));
    if (row.fusible) CHECK(ir::BinaryResultTypes(row.op, DType::kF32, DType::kF32).value().result == DType::kF32);
  }
  i = 0;
  for (const auto& row : ir::ReduceTable()) {
    CHECK(static_cast<size_t>(row.op) == i++);
    CHECK(names.insert(row.name).second);
  }
  // The hello lists are the table's names in its order.
  std::string unary;
  for (const auto& row : ir::UnaryTable()) unary += (unary.empty() ? "" : " ") + std::string(row.name);
  CHECK(ir::UnaryNames() == unary);
}

TEST_CASE("every unary row: CPU and OpenCL agree on every type it takes, at the extremes", "[ops][table][opencl]") {
  auto& ops = Device().ops();
  std::vector<ocl::KernelRequest> variants;  // compiled in one program, not one build per variant
  for (const auto& row : ir::UnaryTable()) {
    for (DType t : kAllTypes) {
      auto rt = ir::UnaryResultType(row.op, t);
      if (rt.ok() && !ir::IsComplex(*rt) && (ops.fp64() || t != DType::kF64)) {
        variants.push_back(ocl::KernelRequest::Unary(row.op, t));
      }
    }
  }
  REQUIRE(ops.Prebuild(variants).ok());
  for (const auto& row : ir::UnaryTable()) {
    for (DType t : kAllTypes) {
      auto rt = ir::UnaryResultType(row.op, t);
      if (!rt.ok() || ir::IsComplex(*rt)) continue;  // complex: the CPU executor only
      if (!ops.fp64() && (t == DType::kF64 || *rt == DType::kF64)) continue;
      const auto x = Edges(t, Iota(EdgeCount(t)));
      auto want = Alloc(*rt, x->shape()), got = Alloc(*rt, x->shape());
      REQUIRE(cpu::Unary(row.op, *x, *want).ok());
      Status s = ops.Unary(row.op, *x, *got);
      INFO(s.message());
      REQUIRE(s.ok());
      std::string first;
      const uint64_t bad = Differences(*want, *got, row.exact, x.get(), nullptr, first);
      INFO(row.name << " on " << DTypeToString(t) << (row.exact ? " (exact)" : " (within the ULP bound)") << ": "
                    << bad << " of " << want->elements() << " differ" << first);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("every binary row: CPU and OpenCL agree on every type it takes, at the extremes", "[ops][table][opencl]") {
  auto& ops = Device().ops();
  std::vector<ocl::KernelRequest> variants;
  for (const auto& row : ir::BinaryTable()) {
    for (DType t : kAllTypes) {
      if (ir::BinaryResultTypes(row.op, t, t).ok() && (ops.fp64() || t != DType::kF64)) {
        variants.push_back(ocl::KernelRequest::Binary(row.op, t, t));
      }
    }
  }
  REQUIRE(ops.Prebuild(variants).ok());
  for (const auto& row : ir::BinaryTable()) {
    for (DType t : kAllTypes) {
      auto types = ir::BinaryResultTypes(row.op, t, t);
      if (!types.ok()) continue;
      if (!ops.fp64() && (t == DType::kF64 || types->result == DType::kF64)) continue;
      const size_t k = EdgeCount(t);
      const auto x = Edges(t, PairColumn(k, false)), y = Edges(t, PairColumn(k, true));
      auto want = Alloc(types->result, x->shape()), got = Alloc(types->result, x->shape());
      REQUIRE(cpu::Binary(row.op, *x, *y, types->compute, *want).ok());
      Status s = ops.Binary(row.op, *x, *y, types->compute, *got);
      INFO(s.message());
      REQUIRE(s.ok());
      std::string first;
      const uint64_t bad = Differences(*want, *got, row.exact, x.get(), y.get(), first);
      INFO(row.name << " on " << DTypeToString(t) << (row.exact ? " (exact)" : " (within the ULP bound)") << ": "
                    << bad << " of " << want->elements() << " differ" << first);
      CHECK(bad == 0);
    }
  }
}

constexpr size_t kFusedElements = size_t{1} << 18;

TEST_CASE("every fusible row: fused and per-op OpenCL give the same bits (NaN payloads aside)", "[ops][table][fused][opencl]") {
  auto& ops = Device().ops();
  ocl::FusedKernels jit(Device(), "");
  size_t unary_checked = 0, binary_checked = 0;
  for (const auto& row : ir::UnaryTable()) {
    if (!ocl::Fusible(row.op)) continue;
    ++unary_checked;
    const auto x = Edges(DType::kF32, Tiled(Iota(EdgeCount(DType::kF32)), kFusedElements));
    const uint64_t n = x->elements();
    ocl::FusedGraph g;
    ocl::FusedStep st;
    st.kind = ocl::FusedStep::Kind::kUnary;
    st.unary = row.op;
    g.steps = {Input(), st};
    g.scalar_input = {false};
    auto fused = Alloc(DType::kF32, {n}), single = Alloc(DType::kF32, {n});
    Status s = jit.Run(g, {x.get()}, n, 1, *fused);
    INFO(s.message());
    REQUIRE(s.ok());
    REQUIRE(ops.Unary(row.op, *x, *single).ok());
    std::string first;
    const uint64_t bad = Differences(*single, *fused, true, x.get(), nullptr, first);
    INFO(row.name << ": " << bad << " of " << n << " differ" << first);
    CHECK(bad == 0);
  }
  for (const auto& row : ir::BinaryTable()) {
    if (!ocl::Fusible(row.op)) continue;
    ++binary_checked;
    const size_t k = EdgeCount(DType::kF32);
    const auto x = Edges(DType::kF32, Tiled(PairColumn(k, false), kFusedElements)),
               y = Edges(DType::kF32, Tiled(PairColumn(k, true), kFusedElements));
    const uint64_t n = x->elements();
    ocl::FusedGraph g;
    ocl::FusedStep st;
    st.kind = ocl::FusedStep::Kind::kBinary;
    st.binary = row.op;
    st.a = 0;
    st.b = 1;
    g.steps = {Input(), Input(), st};
    g.scalar_input = {false, false};
    auto fused = Alloc(DType::kF32, {n}), single = Alloc(DType::kF32, {n});
    Status s = jit.Run(g, {x.get(), y.get()}, n, 1, *fused);
    INFO(s.message());
    REQUIRE(s.ok());
    REQUIRE(ops.Binary(row.op, *x, *y, DType::kF32, *single).ok());
    std::string first;
    const uint64_t bad = Differences(*single, *fused, true, x.get(), y.get(), first);
    INFO(row.name << ": " << bad << " of " << n << " differ" << first);
    CHECK(bad == 0);
  }
  // The table marks most float rows fusible; a generator that stopped honouring it would show here.
  CHECK(unary_checked > 20);
  CHECK(binary_checked >= 9);
}
