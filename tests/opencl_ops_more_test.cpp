// The op set on the OpenCL device against the CPU executor, continued (opencl_ops_test.cpp has the
// elementwise, reduction, conversion and shape ops and the kernel cache): creation, select and
// clip, joins and padding, gather, sort, dot and outer, empty work, the device scratch budget, and
// dot against BLIS. No skipping: without an OpenCL device these tests fail.

#include <catch2/catch.hpp>

#include "opencl_checks.h"

using namespace mure;
using namespace mure::ir;
using namespace mure::testing::opencl_checks;
using ocl::KernelRequest;
using testing::Alloc;
using testing::Bits;
using testing::Device;
using testing::kAllTypes;
using testing::kIntTypes;
using testing::Ops;
using testing::UlpDistance;

namespace {

/// Build these generated variants in one program (every REQUIRE'd variant must generate).
void CompileAll(const std::vector<Result<ocl::KernelSource>>& sources) {
  std::vector<ocl::KernelSource> ks;
  for (const auto& s : sources) {
    INFO((s.ok() ? std::string() : s.status().message()));
    REQUIRE(s.ok());
    ks.push_back(s.value());
  }
  Status st = Ops().Compile(ks);
  INFO(st.message());
  REQUIRE(st.ok());
}

template <typename CpuFn, typename OclFn>
void CheckBoth(DType t, const Shape& s, CpuFn cpu_fn, OclFn ocl_fn, Tol tol, const std::string& what) {
  auto want = AllocDirty(t, s), got = AllocDirty(t, s);
  Status ws = cpu_fn(*want);
  INFO(what << ": cpu " << ws.message());
  REQUIRE(ws.ok());
  Status gs = ocl_fn(*got);
  INFO(what << ": opencl " << gs.message());
  REQUIRE(gs.ok());
  Compare(*want, *got, tol, what);
}

}  // namespace

TEST_CASE("creation ops on the OpenCL device match the CPU", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) {
    srcs.push_back(ocl::IotaKernel(t, true));
    srcs.push_back(ocl::EyeKernel(static_cast<unsigned>(DTypeSize(t))));
    if (IsFloat(t)) {
      srcs.push_back(ocl::RandomKernel(t, false, true));
      srcs.push_back(ocl::RandomKernel(t, true, true));
    }
  }
  CompileAll(srcs);
  for (DType t : kAllTypes) {
    for (const Shape& s : std::vector<Shape>{{}, {0}, {7}, {2, 3, 4}, {3, 0, 2}}) {
      for (int64_t axis = -1; axis < static_cast<int64_t>(s.size()); ++axis) {
        CheckBoth(t, s, [&](Tensor& o) { return cpu::Iota(o, axis); }, [&](Tensor& o) { return Ops().Iota(o, axis); },
                  {}, "iota " + DTypeToString(t) + " " + ShapeName(s) + " axis " + std::to_string(axis));
      }
    }
    auto big = Alloc(t, {70000});  // past 2^16: u8/s8/f16/bf16 wrap, saturate or round
    auto want = Alloc(t, {70000});
    REQUIRE(cpu::Iota(*want, -1).ok());
    REQUIRE(Ops().Iota(*big, -1).ok());
    Compare(*want, *big, {}, "iota " + DTypeToString(t) + " {70000}");
    for (const Shape& s : std::vector<Shape>{{3, 3}, {2, 3, 4}, {0, 2}, {4, 2}, {1, 1}}) {
      CheckBoth(t, s, [&](Tensor& o) { return cpu::Eye(o); }, [&](Tensor& o) { return Ops().Eye(o); }, {},
                "eye " + DTypeToString(t) + " " + ShapeName(s));
    }
    for (const ir::Scalar& v : {IntScalar(300), IntScalar(-1), IntScalar(std::numeric_limits<int64_t>::min()),
                                FloatScalar(2.5), FloatScalar(-2.5), FloatScalar(NAN), FloatScalar(1e30),
                                FloatScalar(-INFINITY)}) {
      for (const Shape& s : std::vector<Shape>{{}, {0, 3}, {5, 3}}) {
        CheckBoth(t, s, [&](Tensor& o) { return cpu::Fill(o, v); }, [&](Tensor& o) { return Ops().Fill(o, v); }, {},
                  "full " + DTypeToString(t) + " " + ShapeName(s) + " " + std::to_string(v.AsDouble()));
      }
    }
    if (!IsFloat(t)) continue;
    // The same counter-based numbers; uniform bit for bit (double on the device), normal through
    // the device's log/cos/sqrt: within a few ULP.
    for (uint64_t seed : {uint64_t{0}, uint64_t{42}, ~uint64_t{0}}) {
      for (auto [lo, hi] : std::vector<std::pair<double, double>>{{0, 1}, {-2, 3}, {5, 5}, {-1e-3, 1e30}}) {
        CheckBoth(t, {1000}, [&](Tensor& o) { return cpu::RandomUniform(o, seed, lo, hi); },
                  [&](Tensor& o) { return Ops().RandomUniform(o, seed, lo, hi); }, {},
                  "random_uniform " + DTypeToString(t));
      }
      for (auto [mean, sd] : std::vector<std::pair<double, double>>{{0, 1}, {3, 0.5}, {-1, 0}}) {
        CheckBoth(t, {1000}, [&](Tensor& o) { return cpu::RandomNormal(o, seed, mean, sd); },
                  [&](Tensor& o) { return Ops().RandomNormal(o, seed, mean, sd); }, Transcendental(t),
                  "random_normal " + DTypeToString(t));
      }
    }
    CheckBoth(t, {0}, [&](Tensor& o) { return cpu::RandomNormal(o, 1, 0, 1); },
              [&](Tensor& o) { return Ops().RandomNormal(o, 1, 0, 1); }, {}, "random_normal empty");
  }
}

TEST_CASE("select and clip on the OpenCL device match the CPU", "[opencl][ops]") {
  const std::vector<std::array<DType, 3>> combos = {
      {DType::kU8, DType::kF32, DType::kF32},  {DType::kU8, DType::kS8, DType::kU64},
      {DType::kF32, DType::kF16, DType::kBF16}, {DType::kS32, DType::kS64, DType::kF64},
      {DType::kF64, DType::kU16, DType::kS16}, {DType::kU8, DType::kF16, DType::kF16},
      {DType::kS16, DType::kU32, DType::kS32}, {DType::kBF16, DType::kBF16, DType::kBF16}};
  std::vector<Result<ocl::KernelSource>> srcs;
  for (auto [p, a, b] : combos) {
    const DType sel = MergeTypes(a, b), clip = MergeTypes(p, MergeTypes(a, b));
    srcs.push_back(ocl::SelectKernel(p, a, b, sel, true));
    srcs.push_back(ocl::ClipKernel(p, a, b, clip, clip, true));
  }
  CompileAll(srcs);
  const std::vector<std::array<Shape, 3>> shapes = {
      {Shape{}, Shape{}, Shape{}},       {Shape{40}, Shape{40}, Shape{40}}, {Shape{2, 3}, Shape{3}, Shape{}},
      {Shape{4, 1}, Shape{1, 5}, Shape{5}}, {Shape{0, 3}, Shape{3}, Shape{1, 3}}, {Shape{}, Shape{2, 2}, Shape{2, 1}}};
  for (auto [p, a, b] : combos) {
    for (size_t si = 0; si < shapes.size(); ++si) {
      auto x = RandomTensor(p, shapes[si][0], Seed(static_cast<uint64_t>(p), si, 1));
      auto y = RandomTensor(a, shapes[si][1], Seed(static_cast<uint64_t>(a), si, 2));
      auto z = RandomTensor(b, shapes[si][2], Seed(static_cast<uint64_t>(b), si, 3));
      auto os = BroadcastShapes(x->shape(), *BroadcastShapes(y->shape(), z->shape()));
      REQUIRE(os.ok());
      const DType sel = MergeTypes(a, b), clip = MergeTypes(p, MergeTypes(a, b));
      const std::string what = DTypeToString(p) + " " + DTypeToString(a) + " " + DTypeToString(b) + " " +
                               ShapeName(shapes[si][0]) + ShapeName(shapes[si][1]) + ShapeName(shapes[si][2]);
      CheckBoth(sel, *os, [&](Tensor& o) { return cpu::Select(*x, *y, *z, sel, o); },
                [&](Tensor& o) { return Ops().Select(*x, *y, *z, sel, o); }, {}, "select " + what);
      CheckBoth(clip, *os, [&](Tensor& o) { return cpu::Clip(*x, *y, *z, clip, o); },
                [&](Tensor& o) { return Ops().Clip(*x, *y, *z, clip, o); }, {}, "clip " + what);
    }
  }
}

TEST_CASE("broadcast reverse pad concatenate and put_slice on the OpenCL device match the CPU", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) srcs.push_back(ocl::CopyKernel(t, t, true));
  const std::vector<std::pair<DType, DType>> conversions = {
      {DType::kU8, DType::kS16}, {DType::kS8, DType::kF32}, {DType::kF16, DType::kF32}, {DType::kBF16, DType::kF32},
      {DType::kU64, DType::kF64}, {DType::kF32, DType::kF64}, {DType::kS32, DType::kS64}, {DType::kF16, DType::kF64}};
  for (auto [from, to] : conversions) srcs.push_back(ocl::CopyKernel(from, to, true));
  CompileAll(srcs);
  REQUIRE(Ops().Prebuild({KernelRequest::Transpose(DType::kU8), KernelRequest::Transpose(DType::kU16),
                  KernelRequest::Transpose(DType::kU32), KernelRequest::Transpose(DType::kU64)}).ok());
  for (DType t : kAllTypes) {
    const std::string tn = DTypeToString(t);
    struct BCase { Shape in, out; std::vector<int64_t> axes; };
    for (const BCase& c : std::vector<BCase>{{{}, {2, 3}, {}}, {{3}, {2, 3}, {1}}, {{2, 1}, {2, 4}, {0, 1}},
                                              {{3}, {3, 2}, {0}}, {{1, 3}, {4, 2, 3}, {1, 2}}, {{2}, {0, 2}, {1}}}) {
      REQUIRE(CheckBroadcastTo(c.in, c.out, c.axes).ok());
      auto in = RandomTensor(t, c.in, Seed(static_cast<uint64_t>(t), 21, c.out.size()));
      CheckBoth(t, c.out, [&](Tensor& o) { return cpu::BroadcastTo(*in, c.axes, o); },
                [&](Tensor& o) { return Ops().BroadcastTo(*in, c.axes, o); }, {}, "broadcast " + tn);
    }
    struct RCase { Shape shape; std::vector<int64_t> axes; };
    for (const RCase& c : std::vector<RCase>{{{}, {}}, {{5}, {0}}, {{2, 3, 4}, {0, 2}}, {{2, 3, 4}, {}},
                                              {{2, 3, 4}, {1}}, {{2, 0, 3}, {1}}, {{3, 1}, {0, 1}}}) {
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), 22, c.axes.size()));
      CheckBoth(t, c.shape, [&](Tensor& o) { return cpu::Reverse(*in, c.axes, o); },
                [&](Tensor& o) { return Ops().Reverse(*in, c.axes, o); }, {}, "reverse " + tn);
    }
    struct PCase { Shape shape; std::vector<PadDim> cfg; };
    for (const PCase& c : std::vector<PCase>{{{3}, {{1, 2, 0}}}, {{3}, {{0, 0, 2}}}, {{2, 3}, {{-1, 1, 1}, {2, -2, 0}}},
                                              {{4}, {{-2, -1, 0}}}, {{4}, {{-3, 0, 1}}}, {{}, {}}, {{0, 2}, {{1, 1, 0}, {0, 1, 3}}},
                                              {{3, 2}, {{-5, 2, 0}, {0, 0, 0}}}, {{5}, {{-1, -1, 2}}}}) {
      auto shape = PadShape(c.shape, c.cfg);
      INFO("pad " << ShapeName(c.shape));
      REQUIRE(shape.ok());
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), 23, c.shape.size()));
      for (const ir::Scalar& v : {IntScalar(-3), FloatScalar(0.5)}) {
        CheckBoth(t, *shape, [&](Tensor& o) { return cpu::Pad(*in, v, c.cfg, o); },
                  [&](Tensor& o) { return Ops().Pad(*in, v, c.cfg, o); }, {}, "pad " + tn + " " + ShapeName(c.shape));
      }
    }
    // concatenate (same type), three inputs, one of them empty along the axis
    for (uint64_t axis : {uint64_t{0}, uint64_t{1}}) {
      std::vector<Shape> shapes = axis == 0 ? std::vector<Shape>{{2, 3}, {0, 3}, {4, 3}}
                                            : std::vector<Shape>{{2, 1}, {2, 0}, {2, 5}};
      std::vector<std::shared_ptr<Tensor>> hold;
      std::vector<const Tensor*> ins;
      for (size_t i = 0; i < shapes.size(); ++i) {
        hold.push_back(RandomTensor(t, shapes[i], Seed(static_cast<uint64_t>(t), 24, i, axis)));
        ins.push_back(hold.back().get());
      }
      auto shape = ConcatShape(shapes, axis);
      REQUIRE(shape.ok());
      CheckBoth(t, *shape, [&](Tensor& o) { return cpu::Concatenate(ins, shapes, axis, o); },
                [&](Tensor& o) { return Ops().Concatenate(ins, shapes, axis, o); }, {}, "concatenate " + tn);
    }
    // put_slice (same type)
    auto base = RandomTensor(t, {4, 5}, Seed(static_cast<uint64_t>(t), 25));
    for (auto [us, starts] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
             {{2, 2}, {1, 3}}, {{4, 5}, {0, 0}}, {{0, 2}, {4, 1}}, {{1, 1}, {3, 4}}}) {
      REQUIRE(CheckPutSlice(base->shape(), starts, us).ok());
      auto upd = RandomTensor(t, us, Seed(static_cast<uint64_t>(t), 26, us[0]));
      CheckBoth(t, base->shape(), [&](Tensor& o) { return cpu::PutSlice(*base, starts, *upd, o); },
                [&](Tensor& o) { return Ops().PutSlice(*base, starts, *upd, o); }, {}, "put_slice " + tn);
    }
  }
  // Mixed types: the joins and put_slice convert into the merged type.
  for (auto [from, to] : conversions) {
    auto a = RandomTensor(from, {2, 3}, Seed(static_cast<uint64_t>(from), 27));
    auto b = RandomTensor(to, {1, 3}, Seed(static_cast<uint64_t>(to), 28));
    std::vector<const Tensor*> ins{a.get(), b.get()};
    std::vector<Shape> shapes{{2, 3}, {1, 3}};
    CheckBoth(to, {3, 3}, [&](Tensor& o) { return cpu::Concatenate(ins, shapes, 0, o); },
              [&](Tensor& o) { return Ops().Concatenate(ins, shapes, 0, o); }, {},
              "concatenate " + DTypeToString(from) + " " + DTypeToString(to));
    auto big = RandomTensor(to, {3, 4}, Seed(static_cast<uint64_t>(to), 29));
    CheckBoth(to, {3, 4}, [&](Tensor& o) { return cpu::PutSlice(*big, {1, 1}, *a, o); },
              [&](Tensor& o) { return Ops().PutSlice(*big, {1, 1}, *a, o); }, {},
              "put_slice " + DTypeToString(from) + " into " + DTypeToString(to));
    CheckBoth(to, {2, 3}, [&](Tensor& o) { return cpu::PutSlice(*a, {0, 0}, *b, o); },
              [&](Tensor& o) { return Ops().PutSlice(*a, {0, 0}, *b, o); }, {},
              "put_slice " + DTypeToString(to) + " into " + DTypeToString(from) + " as " + DTypeToString(to));
  }
}

TEST_CASE("gather on the OpenCL device matches the CPU and checks every coordinate", "[opencl][ops][security]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType x : kIntTypes) {
    srcs.push_back(ocl::GatherCheckKernel(x));
    for (unsigned w : {1u, 2u, 4u, 8u}) srcs.push_back(ocl::GatherCopyKernel(w, x));
  }
  CompileAll(srcs);
  for (DType t : {DType::kU8, DType::kBF16, DType::kF32, DType::kS64}) {
    auto in = RandomTensor(t, {3, 4, 5}, Seed(static_cast<uint64_t>(t), 31));
    for (DType x : kIntTypes) {
      for (const Shape& is : std::vector<Shape>{{3}, {4, 3}, {0, 3}, {2, 2, 3}}) {
        auto idx = Alloc(x, is);
        std::mt19937_64 rng(Seed(static_cast<uint64_t>(x), is.size()));
        for (uint64_t j = 0; j < idx->elements(); ++j) {
          uint64_t v = rng() % in->shape()[j % 3];
          std::memcpy(idx->data() + j * DTypeSize(x), &v, DTypeSize(x));
        }
        auto shape = GatherShape(in->shape(), x, is);
        REQUIRE(shape.ok());
        CheckBoth(t, *shape, [&](Tensor& o) { return cpu::Gather(*in, *idx, o); },
                  [&](Tensor& o) { return Ops().Gather(*in, *idx, o); }, {},
                  "gather " + DTypeToString(t) + " indices " + DTypeToString(x) + ShapeName(is));
      }
      // The first bad coordinate (entry-major), refused before anything is written.
      auto idx = Alloc(x, {3, 3});
      std::vector<uint64_t> vals{0, 1, 2, 2, 9, 9, 1, 4, 9};
      if (IsSigned(x)) vals[5] = ~uint64_t{0};
      for (uint64_t j = 0; j < 9; ++j) std::memcpy(idx->data() + j * DTypeSize(x), &vals[j], DTypeSize(x));
      auto want = AllocDirty(t, {3}), got = AllocDirty(t, {3});
      Status ws = cpu::Gather(*in, *idx, *want), gs = Ops().Gather(*in, *idx, *got);
      CHECK(ws.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.message() == ws.message());
      std::vector<uint8_t> dirty(got->bytes(), 0xa5);
      CHECK(std::memcmp(got->data(), dirty.data(), got->bytes()) == 0);
    }
  }
  auto scalar = RandomTensor(DType::kF32, {}, 1);
  auto none = Alloc(DType::kS32, {4, 0});
  CheckBoth(DType::kF32, {4}, [&](Tensor& o) { return cpu::Gather(*scalar, *none, o); },
            [&](Tensor& o) { return Ops().Gather(*scalar, *none, o); }, {}, "gather from a scalar");
}

TEST_CASE("sort and argsort on the OpenCL device match the CPU", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) {
    for (bool desc : {false, true}) {
      for (bool arg : {false, true}) srcs.push_back(ocl::SortKernel(t, desc, arg, true));
    }
  }
  CompileAll(srcs);
  for (DType t : kAllTypes) {
    for (const Shape& s : std::vector<Shape>{{}, {0}, {1}, {37}, {4, 9}, {3, 1, 5}, {2, 0, 3}, {2, 130}}) {
      auto in = RandomTensor(t, s, Seed(static_cast<uint64_t>(t), 41, s.size()));
      if (in->elements() > 8) {  // ties: repeat some elements along the rows
        const size_t item = DTypeSize(t);
        for (uint64_t i = 0; i + 3 < in->elements(); i += 4) std::memcpy(in->data() + (i + 3) * item, in->data() + i * item, item);
      }
      for (uint64_t axis = 0; axis < std::max<size_t>(s.size(), 1); ++axis) {
        if (s.empty()) break;
        for (bool desc : {false, true}) {
          for (bool arg : {false, true}) {
            const std::string what = std::string(arg ? "argsort" : "sort") + (desc ? " desc " : " ") +
                                     DTypeToString(t) + " " + ShapeName(s) + " axis " + std::to_string(axis);
            CheckBoth(arg ? DType::kS64 : t, s, [&](Tensor& o) { return cpu::Sort(*in, axis, desc, arg, o); },
                      [&](Tensor& o) { return Ops().Sort(*in, axis, desc, arg, o); }, {}, what);
          }
        }
      }
    }
  }
}

TEST_CASE("dot and outer on the OpenCL device match the CPU's plain loops", "[opencl][ops]") {
  std::vector<Result<ocl::KernelSource>> srcs;
  for (DType t : kAllTypes) {
    srcs.push_back(ocl::MatmulKernel(t, true));
    srcs.push_back(ocl::CopyKernel(t, t, true));
    srcs.push_back(ocl::BinaryKernel(BinaryOp::kMultiply, t, t, t, t, true));
  }
  for (auto [a, b] : std::vector<std::pair<DType, DType>>{{DType::kS8, DType::kU8}, {DType::kF16, DType::kBF16},
                                                          {DType::kS32, DType::kF32}}) {
    const DType c = MergeTypes(a, b);
    srcs.push_back(ocl::CopyKernel(a, c, true));
    srcs.push_back(ocl::CopyKernel(b, c, true));
    srcs.push_back(ocl::MatmulKernel(c, true));
    srcs.push_back(ocl::BinaryKernel(BinaryOp::kMultiply, a, b, c, c, true));
  }
  CompileAll(srcs);
  struct DCase {
    Shape a, b;
    std::vector<int64_t> ca, ba, cb, bb;
  };
  const std::vector<DCase> cases = {
      {{3, 4}, {4, 5}, {1}, {}, {0}, {}},          {{4}, {4}, {0}, {}, {0}, {}},
      {{2, 3, 4}, {2, 4, 5}, {2}, {0}, {1}, {0}},  {{4, 3}, {5, 4}, {0}, {}, {1}, {}},
      {{3, 0}, {0, 2}, {1}, {}, {0}, {}},          {{2, 3}, {4}, {}, {}, {}, {}},
      {{2, 3, 4}, {3, 4, 2}, {1, 2}, {}, {0, 1}, {}}, {{0, 3}, {3, 2}, {1}, {}, {0}, {}},
      {{5, 40}, {40, 3}, {1}, {}, {0}, {}},
  };
  auto run = [&](DType ta, DType tb) {
    const DType c = MergeTypes(ta, tb);
    for (size_t ci = 0; ci < cases.size(); ++ci) {
      const DCase& d = cases[ci];
      auto plan = PlanDot(d.a, d.ca, d.ba, d.b, d.cb, d.bb);
      INFO("dot case " << ci);
      REQUIRE(plan.ok());
      auto a = RandomTensor(ta, d.a, Seed(static_cast<uint64_t>(ta), 51, ci));
      auto b = RandomTensor(tb, d.b, Seed(static_cast<uint64_t>(tb), 52, ci));
      CheckBoth(c, plan->out_shape, [&](Tensor& o) { return cpu::Dot(*a, *b, *plan, c, cpu::GemmFn(), o); },
                [&](Tensor& o) { return Ops().Dot(*a, *b, *plan, c, o); }, {},
                "dot " + DTypeToString(ta) + " " + DTypeToString(tb) + " case " + std::to_string(ci));
    }
    for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{3}, {4}}, {{}, {2, 2}}, {{2, 0}, {3}}, {{2, 3}, {1, 2}}}) {
      auto a = RandomTensor(ta, sa, Seed(static_cast<uint64_t>(ta), 53, sa.size()));
      auto b = RandomTensor(tb, sb, Seed(static_cast<uint64_t>(tb), 54, sb.size()));
      Shape os = sa;
      os.insert(os.end(), sb.begin(), sb.end());
      CheckBoth(c, os, [&](Tensor& o) { return cpu::Outer(*a, *b, c, o); },
                [&](Tensor& o) { return Ops().Outer(*a, *b, c, o); }, {},
                "outer " + DTypeToString(ta) + " " + DTypeToString(tb));
    }
  };
  for (DType t : kAllTypes) run(t, t);
  run(DType::kS8, DType::kU8);
  run(DType::kF16, DType::kBF16);
  run(DType::kS32, DType::kF32);
}

TEST_CASE("empty work on the OpenCL device matches the CPU and launches nothing per empty row", "[opencl][ops][security]") {
  // Issue 11: zero-byte tensors with 2^30+ rows; no kernel is launched with a work-item per empty
  // row, and the CPU executor answers the same, as fast.
  const uint64_t rows = 1ull << 30;
  auto empty = Alloc(DType::kU8, {rows, 0});
  auto none = Alloc(DType::kS64, {0});
  auto timed = [](const char* what, const std::function<Status()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    Status st = f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(what << " took " << s << " s: " << st.message());
    CHECK(st.ok());
    CHECK(s < 0.25);
  };
  const uint64_t launches = Ops().stats().launches;
  auto o1 = Alloc(DType::kU8, {rows, 0}), o2 = Alloc(DType::kS64, {rows, 0}), o3 = Alloc(DType::kU8, {rows, 0});
  auto o4 = Alloc(DType::kU8, {rows, 0});
  timed("opencl sort", [&] { return Ops().Sort(*empty, 1, false, false, *o1); });
  timed("opencl argsort", [&] { return Ops().Sort(*empty, 1, true, true, *o2); });
  timed("opencl concatenate", [&] { return Ops().Concatenate({empty.get(), empty.get()}, {{rows, 0}, {rows, 0}}, 1, *o3); });
  timed("opencl take", [&] { return Ops().Take(*empty, *none, 1, *o4); });
  CHECK(Ops().stats().launches == launches);
  timed("cpu sort", [&] { return cpu::Sort(*empty, 1, false, false, *o1); });
  timed("cpu argsort", [&] { return cpu::Sort(*empty, 1, true, true, *o2); });
  timed("cpu concatenate", [&] { return cpu::Concatenate({empty.get(), empty.get()}, {{rows, 0}, {rows, 0}}, 1, *o3); });
  timed("cpu take", [&] { return cpu::Take(*empty, *none, 1, *o4); });
  // A non-empty result of an empty operand: pad fills, a sum over the empty axis gives 0, on both.
  auto col = Alloc(DType::kU8, {0, 3});
  ir::Scalar nine;
  nine.i = 9;
  auto pc = AllocDirty(DType::kU8, {2, 3}), po = AllocDirty(DType::kU8, {2, 3});
  REQUIRE(cpu::Pad(*col, nine, {PadDim{1, 1, 1ll << 40}, PadDim{}}, *pc).ok());
  REQUIRE(Ops().Pad(*col, nine, {PadDim{1, 1, 1ll << 40}, PadDim{}}, *po).ok());
  CHECK(std::memcmp(pc->data(), po->data(), 6) == 0);
}

TEST_CASE("the OpenCL device's scratch is reserved on the node's budget", "[opencl][ops][security]") {
  // Sort's device scratch is 16 bytes an element; dot stages converted operands. Both count.
  TensorStore small(1u << 20);
  auto in = *small.Allocate(DType::kF32, {1, 1u << 16});  // 256 KiB: sorting it needs 1 MiB more
  std::memset(in->data(), 0, in->bytes());
  auto out = *small.Allocate(DType::kF32, {1, 1u << 16});
  const uint64_t before = small.memory_used();
  Status st = Ops().Sort(*in, 1, false, false, *out);
  CHECK(st.kind() == ErrorKind::kOutOfMemory);
  CHECK(small.memory_used() == before);
  auto a = *small.Allocate(DType::kU8, {256, 256});  // staged as f32: 256 KiB more
  std::memset(a->data(), 1, a->bytes());
  auto b = *small.Allocate(DType::kF32, {256, 1});
  std::memset(b->data(), 0, b->bytes());
  auto plan = PlanDot({256, 256}, {1}, {}, {256, 1}, {0}, {});
  REQUIRE(plan.ok());
  auto c = *small.Allocate(DType::kF32, {256, 1});
  in.reset();
  out.reset();
  // ~100 KB left on the budget: a staged as f32 needs 256 KiB.
  auto filler = *small.Allocate(DType::kU8, {(1u << 20) - small.memory_used() - 100000});
  CHECK(Ops().Dot(*a, *b, *plan, DType::kF32, *c).kind() == ErrorKind::kOutOfMemory);
}

// What holds between the two executors for float products: the CPU executor's f32/f64 dot and
// matmul run on BLIS, which sums in the type itself, in its own blocked order, with FMA; the OpenCL
// kernel sums the products in double and rounds once. They are not the same bits; each is within
// the classic bound of a k-term sum, so they differ by at most (gamma_k + u) * sum |a_i * b_i|
// (f32; u = 2^-24, gamma_k = k u / (1 - k u)) or 2 gamma_k * sum |a_i * b_i| (f64). The reference
// sum |a_i * b_i| is computed here, in long double, independently of both.
TEST_CASE("f32 and f64 dot on the OpenCL device and on BLIS agree within the bound of a k-term sum",
          "[opencl][ops][blis]") {
  Config cfg;
  auto blis = BlisExecutor::Create(cfg);
  REQUIRE(blis.ok());
  cpu::GemmFn gemm = [&](DType t, uint64_t m, uint64_t n, uint64_t k, const void* x, const void* y, void* z) {
    return (*blis)->GemmRaw(t, m, n, k, x, y, z);
  };
  const uint64_t m = 129, k = 257, n = 65;
  for (DType t : {DType::kF32, DType::kF64}) {
    INFO(DTypeToString(t));
    auto a = Alloc(t, {m, k});
    auto b = Alloc(t, {k, n});
    std::mt19937_64 rng(77);
    std::uniform_real_distribution<double> uni(-1.0, 1.0);
    std::vector<long double> av(m * k), bv(k * n);
    for (uint64_t i = 0; i < m * k; ++i) {
      const double v = uni(rng);
      if (t == DType::kF32) a->as<float>()[i] = static_cast<float>(v), av[i] = a->as<float>()[i];
      else a->as<double>()[i] = v, av[i] = v;
    }
    for (uint64_t i = 0; i < k * n; ++i) {
      const double v = uni(rng);
      if (t == DType::kF32) b->as<float>()[i] = static_cast<float>(v), bv[i] = b->as<float>()[i];
      else b->as<double>()[i] = v, bv[i] = v;
    }
    auto plan = PlanDot({m, k}, {1}, {}, {k, n}, {0}, {});
    REQUIRE(plan.ok());
    auto on_blis = Alloc(t, {m, n});
    auto on_device = Alloc(t, {m, n});
    REQUIRE(cpu::Dot(*a, *b, *plan, t, gemm, *on_blis).ok());
    REQUIRE(Ops().Dot(*a, *b, *plan, t, *on_device).ok());
    const long double u = t == DType::kF32 ? std::ldexp(1.0L, -24) : std::ldexp(1.0L, -53);
    const long double gamma = k * u / (1 - k * u);
    const long double factor = t == DType::kF32 ? gamma + u : 2 * gamma;
    uint64_t differing = 0;
    long double worst = 0;
    for (uint64_t i = 0; i < m; ++i) {
      for (uint64_t j = 0; j < n; ++j) {
        long double mag = 0;
        for (uint64_t p = 0; p < k; ++p) mag += std::fabs(av[i * k + p] * bv[p * n + j]);
        const long double x = t == DType::kF32 ? on_blis->as<float>()[i * n + j] : on_blis->as<double>()[i * n + j];
        const long double y =
            t == DType::kF32 ? on_device->as<float>()[i * n + j] : on_device->as<double>()[i * n + j];
        const long double diff = std::fabs(x - y);
        differing += diff != 0;
        worst = std::max(worst, diff / (factor * mag));
        if (diff > factor * mag) FAIL("element " << i << "," << j << ": BLIS " << static_cast<double>(x) << ", OpenCL "
                                                 << static_cast<double>(y) << ", bound " << static_cast<double>(factor * mag));
      }
    }
    INFO(differing << " of " << m * n << " elements differ; worst at " << static_cast<double>(worst) << " of the bound");
    CHECK(worst <= 1);
  }
}
