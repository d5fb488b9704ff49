// The op set on the OpenCL device (exec/opencl_ops.h), cross-checked against the plain CPU
// implementation (exec/cpu_ops.h) on every op and every type it accepts: seeded random inputs
// salted with the edges (NaN, infinities, signed zeros, subnormals, integer MIN/MAX, shift
// counts around the width, zero divisors), shapes with empty tensors, size-1 axes, scalars and
// broadcasting edges. Integer results, comparisons, conversions, shape ops, min/max and the four
// float arithmetic ops must match bit for bit (any NaN matches any NaN); transcendental float
// functions within a few ULP of the result type. There is no skipping: without an OpenCL device
// these tests fail.

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
/// Every half and bfloat16 pattern to f32/f64 and back, and f32/f64 values next to every
/// rounding edge (ties included). Uses the as_type and negate variants.
void RoundTrips() {
  for (DType t : {DType::kF16, DType::kBF16}) {
    auto all = Alloc(t, {65536});
    for (uint32_t h = 0; h < 65536; ++h) std::memcpy(all->data() + 2 * h, &h, 2);
    CheckAsType(*all, DType::kF32);
    CheckAsType(*all, DType::kF64);
    CheckUnary(UnaryOp::kNegate, *all);
    auto f = Alloc(DType::kF32, {65536 * 4});
    std::mt19937_64 rng(7);
    for (uint32_t i = 0; i < 65536 * 4; ++i) {
      // A half or bf16 value with random low bits: every rounding case, ties included.
      uint32_t bits;
      if (t == DType::kF16) {
        float base = cpu::HalfToFloat(static_cast<uint16_t>(i >> 2));
        std::memcpy(&bits, &base, 4);
        bits += (i & 3) == 0 ? 0 : (i & 3) == 1 ? 0x1000 : static_cast<uint32_t>(rng() & 0x1fff);
      } else {
        bits = (i >> 2) << 16 | ((i & 3) == 0 ? 0 : (i & 3) == 1 ? 0x8000 : static_cast<uint32_t>(rng() & 0xffff));
      }
      std::memcpy(f->data() + 4 * i, &bits, 4);
    }
    CheckAsType(*f, t);
    auto d = Alloc(DType::kF64, {65536 * 4});
    for (uint64_t i = 0; i < 65536 * 4; ++i) PutF(DType::kF64, d->data(), i, testing::FloatValue(DType::kF32, f->data(), i));
    CheckAsType(*d, t);
  }
}

/// Integer edge rules (wrap, x / 0, MIN / -1, shifts past the width, pow) on every s8/u8 pair and
/// 64-bit edges; float NaN, infinities, signed zeros and division by zero. Same-type variants.
void EdgeBinary() {
  // Exhaustive s8/u8 pairs for the ops with edge rules (wrap, x / 0, MIN / -1, shifts, pow).
  for (DType t : {DType::kS8, DType::kU8}) {
    auto a = Alloc(t, {256, 1}), b = Alloc(t, {1, 256});
    for (uint32_t i = 0; i < 256; ++i) {
      a->data()[i] = static_cast<uint8_t>(i);
      b->data()[i] = static_cast<uint8_t>(i);
    }
    for (BinaryOp op : {BinaryOp::kAdd, BinaryOp::kMultiply, BinaryOp::kQuotient, BinaryOp::kRemainder,
                        BinaryOp::kPow, BinaryOp::kLeftShift, BinaryOp::kRightShift, BinaryOp::kMin,
                        BinaryOp::kLess, BinaryOp::kDivide}) {
      CheckBinary(op, *a, *b);
    }
  }
  // 64-bit MIN / -1, MIN rem -1, x / 0, shifts by 63, 64 and negative counts.
  const int64_t mn = std::numeric_limits<int64_t>::min(), mx = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> xs{mn, mn, 7, -7, mx, 1, -1, 5, -5, 1, -1, 3};
  std::vector<int64_t> ys{-1, 0, 0, -1, -1, 63, 64, -1, 65, -3, -3, 40};
  for (DType t : {DType::kS64, DType::kU64}) {
    auto a = Alloc(t, {12}), b = Alloc(t, {12});
    std::memcpy(a->data(), xs.data(), 96);
    std::memcpy(b->data(), ys.data(), 96);
    for (BinaryOp op : kBinaryOps) {
      if (BinaryResultTypes(op, t, t).ok()) CheckBinary(op, *a, *b);
    }
  }
  // Float NaN, infinities, signed zeros and division by zero on every float type.
  std::vector<double> fx{NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 0.0, NAN, 2.0};
  std::vector<double> fy{1.0, INFINITY, 0.0, -0.0, 0.0, 0.0, -0.0, 0.0, NAN, NAN};
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32, DType::kF64}) {
    auto a = Alloc(t, {10}), b = Alloc(t, {10});
    for (uint64_t i = 0; i < 10; ++i) {
      PutF(t, a->data(), i, fx[i]);
      PutF(t, b->data(), i, fy[i]);
    }
    for (BinaryOp op : kBinaryOps) {
      if (BinaryResultTypes(op, t, t).ok()) CheckBinary(op, *a, *b);
    }
  }
}

/// Unary float ops on NaN, infinities and signed zeros.
void EdgeUnary() {
  std::vector<double> fx{NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 1e-40, -NAN, 2.0};
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32, DType::kF64}) {
    auto a = Alloc(t, {10});
    for (uint64_t i = 0; i < 10; ++i) PutF(t, a->data(), i, fx[i]);
    for (UnaryOp op : kUnaryOps) {
      if (UnaryResultType(op, t).ok()) CheckUnary(op, *a);
    }
  }
}

}  // namespace

TEST_CASE("unary ops on the OpenCL device match the CPU on every type and float edge", "[opencl][ops]") {
  std::vector<KernelRequest> want;
  for (DType t : kAllTypes) {
    for (UnaryOp op : kUnaryOps) {
      if (UnaryResultType(op, t).ok()) want.push_back(KernelRequest::Unary(op, t));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Ops().Prebuild(want);
  INFO(s.message());
  REQUIRE(s.ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto built = Ops().stats().kernels_built;
  std::printf("[opencl_ops] prebuilt %zu unary variants in %.0f ms\n", want.size(), ms);
  for (DType t : kAllTypes) {
    for (UnaryOp op : kUnaryOps) {
      if (!UnaryResultType(op, t).ok()) {
        // ir/ rejects it first; the generator refuses it too.
        CHECK_FALSE(ocl::UnaryKernel(op, t, t, true).ok());
        continue;
      }
      for (size_t si = 0; si < kUnaryShapes.size(); ++si) {
        auto in = RandomTensor(t, kUnaryShapes[si], Seed(static_cast<uint64_t>(op), static_cast<uint64_t>(t), si));
        CheckUnary(op, *in);
      }
    }
  }
  EdgeUnary();
  CHECK(Ops().stats().kernels_built == built);  // Prebuild built exactly what the ops asked for
}

TEST_CASE("binary ops on the OpenCL device match the CPU on every type and broadcast and edge rule", "[opencl][ops]") {
  // Every op on every same-type pair; every pair of types on add (promotion and conversion of
  // each operand); every op on a set of mixed pairs that exercise promotion rules.
  const std::vector<std::pair<DType, DType>> mixed = {
      {DType::kU8, DType::kS8},   {DType::kU64, DType::kS64}, {DType::kS32, DType::kF32}, {DType::kS64, DType::kF16},
      {DType::kU64, DType::kBF16}, {DType::kF16, DType::kBF16}, {DType::kBF16, DType::kF64}, {DType::kU32, DType::kF64},
      {DType::kS8, DType::kU64},  {DType::kU16, DType::kS32}};
  std::vector<std::pair<DType, DType>> every_op;
  for (DType t : kAllTypes) every_op.push_back({t, t});
  every_op.insert(every_op.end(), mixed.begin(), mixed.end());
  std::vector<KernelRequest> want;
  for (auto [ta, tb] : every_op) {
    for (BinaryOp op : kBinaryOps) {
      if (BinaryResultTypes(op, ta, tb).ok()) want.push_back(KernelRequest::Binary(op, ta, tb));
    }
  }
  for (DType ta : kAllTypes) {
    for (DType tb : kAllTypes) want.push_back(KernelRequest::Binary(BinaryOp::kAdd, ta, tb));
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Ops().Prebuild(want);
  INFO(s.message());
  REQUIRE(s.ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[opencl_ops] prebuilt %zu binary variants in %.0f ms\n", want.size(), ms);
  const auto built = Ops().stats().kernels_built;

  for (auto [ta, tb] : every_op) {
    for (BinaryOp op : kBinaryOps) {
      if (!BinaryResultTypes(op, ta, tb).ok()) continue;
      for (size_t pi = 0; pi < kBroadcastPairs.size(); ++pi) {
        const uint64_t seed = Seed(static_cast<uint64_t>(op), static_cast<uint64_t>(ta), static_cast<uint64_t>(tb), pi);
        auto a = RandomTensor(ta, kBroadcastPairs[pi].first, seed);
        auto b = RandomTensor(tb, kBroadcastPairs[pi].second, seed + 1);
        CheckBinary(op, *a, *b);
      }
      // The same tensor on both sides.
      auto x = RandomTensor(ta, {33}, Seed(static_cast<uint64_t>(op), 99, static_cast<uint64_t>(ta)));
      if (ta == tb) CheckBinary(op, *x, *x);
    }
  }
  for (DType ta : kAllTypes) {
    for (DType tb : kAllTypes) {
      auto a = RandomTensor(ta, {4, 50}, Seed(1, static_cast<uint64_t>(ta), static_cast<uint64_t>(tb)));
      auto b = RandomTensor(tb, {50}, Seed(2, static_cast<uint64_t>(ta), static_cast<uint64_t>(tb)));
      CheckBinary(BinaryOp::kAdd, *a, *b);
    }
  }
  EdgeBinary();
  CHECK(Ops().stats().kernels_built == built);
}

TEST_CASE("reductions on the OpenCL device match the CPU on every type", "[opencl][ops]") {
  std::vector<KernelRequest> want;
  for (DType t : kAllTypes) {
    for (ReduceOp op : kReduceOps) want.push_back(KernelRequest::Reduce(op, t));
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Ops().Prebuild(want);
  INFO(s.message());
  REQUIRE(s.ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[opencl_ops] prebuilt %zu reduction variants in %.0f ms\n", want.size(), ms);
  const auto built = Ops().stats().kernels_built;
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
    bool keep;
  };
  const std::vector<Case> cases = {
      {{}, {}, false},          {{0}, {0}, false},          {{5}, {0}, false},         {{1}, {0}, true},
      {{3, 4}, {0}, false},     {{3, 4}, {1}, true},        {{3, 4}, {0, 1}, false},   {{3, 4}, {}, false},
      {{2, 3, 4}, {0, 2}, false}, {{2, 3, 4}, {1, 2}, true}, {{2, 3, 4}, {0, 1, 2}, true}, {{2, 3, 4}, {-2}, false},
      {{2, 0, 3}, {1}, false},  {{2, 0, 3}, {0, 2}, false}, {{4, 1, 3}, {1}, false},   {{300}, {0}, false},
      {{2, 3, 1, 4, 2}, {0, 2, 4}, false},
  };
  // With double on the device, float sums and products accumulate as the reference does: exact.
  REQUIRE(Ops().fp64());
  for (DType t : kAllTypes) {
    for (ReduceOp op : kReduceOps) {
      for (size_t ci = 0; ci < cases.size(); ++ci) {
        auto in = RandomTensor(t, cases[ci].shape, Seed(static_cast<uint64_t>(op), static_cast<uint64_t>(t), ci));
        CheckReduce(op, *in, cases[ci].axes, cases[ci].keep);
      }
    }
  }
  // Ties and NaN: first occurrence wins, NaN wins.
  auto ties = Alloc(DType::kF32, {2, 4});
  std::vector<float> tv{1, 3, 3, -1, NAN, 2, NAN, 2};
  std::memcpy(ties->data(), tv.data(), 32);
  for (ReduceOp op : kReduceOps) {
    CheckReduce(op, *ties, {1}, false);
    CheckReduce(op, *ties, {0}, false);
    CheckReduce(op, *ties, {0, 1}, false);
  }
  CHECK(Ops().stats().kernels_built == built);
}

TEST_CASE("as_type on the OpenCL device matches the CPU for every pair of types and every f16 and bf16 pattern", "[opencl][ops][types]") {
  std::vector<KernelRequest> want;
  for (DType a : kAllTypes) {
    for (DType b : kAllTypes) want.push_back(KernelRequest::AsType(a, b));
  }
  want.push_back(KernelRequest::Unary(UnaryOp::kNegate, DType::kF16));
  want.push_back(KernelRequest::Unary(UnaryOp::kNegate, DType::kBF16));
  REQUIRE(Ops().Prebuild(want).ok());
  const auto built = Ops().stats().kernels_built;
  RoundTrips();
  for (DType a : kAllTypes) {
    auto in = RandomTensor(a, {400}, Seed(static_cast<uint64_t>(a), 77));
    auto empty = Alloc(a, {0, 2});
    for (DType b : kAllTypes) {
      CheckAsType(*in, b);
      CheckAsType(*empty, b);
    }
  }
  // Integers beyond 2^53 go through double first, as the reference does (a double rounding).
  std::vector<uint64_t> big{(uint64_t{1} << 53) + 1, (uint64_t{1} << 63) + (uint64_t{1} << 39) + 1,
                            ~uint64_t{0}, (uint64_t{1} << 54) + 3, 0x8000008000000000ull, 0x7fffffbfffffffffull,
                            0xffffff7fffffffffull, 0xffffff8000000000ull};
  for (DType from : {DType::kU64, DType::kS64}) {
    auto in = Alloc(from, {8});
    std::memcpy(in->data(), big.data(), 64);
    for (DType to : {DType::kF16, DType::kBF16, DType::kF32, DType::kF64}) CheckAsType(*in, to);
  }
  CHECK(Ops().stats().kernels_built == built);
}

TEST_CASE("shape ops on the OpenCL device match the CPU", "[opencl][ops][security]") {
  std::vector<KernelRequest> want;
  for (DType t : kAllTypes) want.push_back(KernelRequest::Transpose(t));
  for (DType t : {DType::kU8, DType::kS16, DType::kF32, DType::kF64}) {
    for (DType x : kIntTypes) want.push_back(KernelRequest::Take(t, x));
  }
  REQUIRE(Ops().Prebuild(want).ok());
  const auto built = Ops().stats().kernels_built;

  for (DType t : kAllTypes) {
    // transpose
    struct TCase { Shape shape; std::vector<int64_t> perm; };
    for (const TCase& c : std::vector<TCase>{{{}, {}}, {{5}, {0}}, {{2, 3}, {1, 0}}, {{2, 3, 4}, {2, 0, 1}},
                                              {{2, 3, 4}, {-1, -3, 1}}, {{1, 0, 3}, {2, 1, 0}}, {{3, 1, 2, 2}, {3, 1, 0, 2}}}) {
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), c.shape.size()));
      auto shape = TransposeShape(in->shape(), c.perm);
      REQUIRE(shape.ok());
      auto want_t = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
      REQUIRE(cpu::Transpose(*in, c.perm, *want_t).ok());
      REQUIRE(Ops().Transpose(*in, c.perm, *got).ok());
      Compare(*want_t, *got, {}, "transpose " + DTypeToString(t) + " " + ShapeName(c.shape));
    }
    // slice
    struct SCase { Shape shape; std::vector<int64_t> starts, lengths, strides; };
    for (const SCase& c : std::vector<SCase>{{{10}, {1}, {3}, {3}}, {{10}, {10}, {0}, {1}}, {{}, {}, {}, {}},
                                              {{4, 5}, {1, 0}, {2, 5}, {2, 1}}, {{4, 5}, {0, 4}, {4, 1}, {1, 1}},
                                              {{3, 4, 5}, {1, 1, 1}, {2, 0, 2}, {1, 1, 3}},
                                              {{3, 4, 5}, {2, 3, 0}, {1, 1, 5}, {5, 5, 1}},
                                              // As Nx: lengths are spans; strides need not divide them.
                                              {{2, 15, 30}, {0, 4, 11}, {2, 3, 9}, {2, 1, 3}},
                                              {{2, 8}, {0, 0}, {2, 4}, {1, 2}}, {{7, 9}, {1, 2}, {6, 7}, {4, 3}},
                                              {{10}, {0}, {10}, {20}}, {{6, 5}, {2, 1}, {0, 4}, {3, 2}}}) {
      auto in = RandomTensor(t, c.shape, Seed(static_cast<uint64_t>(t), 5, c.shape.size()));
      auto shape = SliceShape(in->shape(), c.starts, c.lengths, c.strides);
      REQUIRE(shape.ok());
      auto want_s = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
      REQUIRE(cpu::Slice(*in, c.starts, c.strides, *want_s).ok());
      REQUIRE(Ops().Slice(*in, c.starts, c.strides, *got).ok());
      Compare(*want_s, *got, {}, "slice " + DTypeToString(t) + " " + ShapeName(c.shape));
    }
    // bitcast to every type of the same width
    auto in = RandomTensor(t, {3, 7}, Seed(static_cast<uint64_t>(t), 9));
    for (DType to : kAllTypes) {
      if (DTypeBits(to) != DTypeBits(t)) continue;
      auto want_b = AllocDirty(to, in->shape()), got = AllocDirty(to, in->shape());
      REQUIRE(cpu::Bitcast(*in, *want_b).ok());
      REQUIRE(Ops().Bitcast(*in, *got).ok());
      CHECK(std::memcmp(want_b->data(), got->data(), got->bytes()) == 0);
    }
    auto empty = Alloc(t, {0});
    auto empty_out = Alloc(t, {0});
    CHECK(Ops().Bitcast(*empty, *empty_out).ok());
  }

  // take: every index type, several axes and index shapes; every element type width.
  for (DType t : {DType::kU8, DType::kS16, DType::kF32, DType::kF64}) {
    auto in = RandomTensor(t, {3, 4, 5}, Seed(static_cast<uint64_t>(t), 11));
    for (DType x : kIntTypes) {
      for (int64_t axis : {0, 1, 2, -1}) {
        const uint64_t dim = in->shape()[static_cast<size_t>(axis < 0 ? axis + 3 : axis)];
        for (const Shape& is : std::vector<Shape>{{}, {0}, {4}, {2, 3}}) {
          auto idx = Alloc(x, is);
          std::mt19937_64 rng(Seed(static_cast<uint64_t>(x), static_cast<uint64_t>(axis), is.size()));
          for (uint64_t j = 0; j < idx->elements(); ++j) {
            uint64_t v = rng() % dim;
            std::memcpy(idx->data() + j * DTypeSize(x), &v, DTypeSize(x));
          }
          auto shape = TakeShape(in->shape(), x, is, axis);
          REQUIRE(shape.ok());
          auto want_k = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
          REQUIRE(cpu::Take(*in, *idx, axis, *want_k).ok());
          Status s = Ops().Take(*in, *idx, axis, *got);
          INFO(s.message());
          REQUIRE(s.ok());
          Compare(*want_k, *got, {}, "take " + DTypeToString(t) + " indices " + DTypeToString(x));
        }
      }
      // Out of range (too big, negative, huge unsigned): refused before anything is written,
      // with the reference's message.
      auto idx = Alloc(x, {6});
      std::vector<uint64_t> bad{1, 0, 2, IsSigned(x) ? ~uint64_t{0} : uint64_t{4}, 7, ~uint64_t{0}};
      for (uint64_t j = 0; j < 6; ++j) std::memcpy(idx->data() + j * DTypeSize(x), &bad[j], DTypeSize(x));
      auto shape = TakeShape(in->shape(), x, {6}, 1);
      REQUIRE(shape.ok());
      auto want_k = AllocDirty(t, *shape), got = AllocDirty(t, *shape);
      Status ws = cpu::Take(*in, *idx, 1, *want_k);
      Status gs = Ops().Take(*in, *idx, 1, *got);
      CHECK(ws.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.kind() == ErrorKind::kOutOfRange);
      CHECK(gs.message() == ws.message());
      std::vector<uint8_t> dirty(got->bytes(), 0xa5);
      CHECK(std::memcmp(got->data(), dirty.data(), got->bytes()) == 0);  // nothing written
    }
  }
  // Indices into an empty axis, and a bad index among many (its chunk found, then the first one).
  auto in = Alloc(DType::kF32, {2, 0});
  auto idx = Alloc(DType::kS32, {1});
  int32_t zero = 0;
  std::memcpy(idx->data(), &zero, 4);
  auto out = Alloc(DType::kF32, {2, 1});
  CHECK(Ops().Take(*in, *idx, 1, *out).kind() == ErrorKind::kOutOfRange);
  CHECK(Ops().Take(*in, *idx, 1, *out).message() == cpu::Take(*in, *idx, 1, *out).message());
  auto src = RandomTensor(DType::kF32, {10}, 3);
  auto many = Alloc(DType::kU16, {100000});
  for (uint64_t j = 0; j < 100000; ++j) {
    uint16_t v = j == 77777 ? 10 : j == 99999 ? 11 : static_cast<uint16_t>(j % 10);
    std::memcpy(many->data() + 2 * j, &v, 2);
  }
  auto many_out = Alloc(DType::kF32, {100000});
  Status gs = Ops().Take(*src, *many, 0, *many_out);
  CHECK(gs.kind() == ErrorKind::kOutOfRange);
  CHECK(gs.message() == cpu::Take(*src, *many, 0, *many_out).message());
  CHECK_THAT(gs.message(), Catch::Contains("element 77777"));
  CHECK(Ops().stats().kernels_built == built);  // Prebuild built them all
}

TEST_CASE("the kernel cache compiles each variant once", "[opencl][ops]") {
  auto& ops = Ops();
  auto a = RandomTensor(DType::kF32, {1000}, 1), b = RandomTensor(DType::kF32, {1000}, 2);
  auto c = RandomTensor(DType::kF32, {10, 100}, 3), d = RandomTensor(DType::kF32, {100}, 4);
  auto out1 = Alloc(DType::kF32, {1000}), out2 = Alloc(DType::kF32, {10, 100});
  const auto before = ops.stats();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(ops.Binary(BinaryOp::kAtan2, *a, *b, DType::kF32, *out1).ok());
  const auto t1 = std::chrono::steady_clock::now();
  const auto after_first = ops.stats();
  CHECK(after_first.kernels_built <= before.kernels_built + 1);  // built now (or by an earlier test case)
  REQUIRE(ops.Binary(BinaryOp::kAtan2, *c, *d, DType::kF32, *out2).ok());  // another shape: same kernel
  const auto t2 = std::chrono::steady_clock::now();
  const auto after = ops.stats();
  CHECK(after.kernels_built == after_first.kernels_built);
  CHECK(after.cache_hits == after_first.cache_hits + 1);
  CHECK(after.launches == after_first.launches + 1);
  auto ms = [](auto x, auto y) { return std::chrono::duration<double, std::milli>(y - x).count(); };
  std::printf("[opencl_ops] atan2 f32: first call %.1f ms (build + first launch), cached call %.2f ms; "
              "%llu programs, %llu kernels built so far in %.0f ms, first launches %.0f ms\n",
              ms(t0, t1), ms(t1, t2), static_cast<unsigned long long>(after.programs_built),
              static_cast<unsigned long long>(after.kernels_built), after.build_ms, after.first_launch_ms);
  CHECK(ops.cached_kernels() >= 1);
  // A failing generator builds nothing.
  CHECK_FALSE(ocl::BinaryKernel(BinaryOp::kBitwiseAnd, DType::kF32, DType::kF32, DType::kF32, DType::kF32, true).ok());
}

TEST_CASE("without double precision f64 is unsupported and nothing is built", "[opencl][ops][types]") {
  auto& dev = Device();
  auto made = ocl::OpenClOps::Create(dev.context(), dev.device(), dev.queue(), /*fp64=*/false);
  REQUIRE(made.ok());
  auto& ops = **made;
  auto d = RandomTensor(DType::kF64, {4}, 1), f = RandomTensor(DType::kF32, {4}, 2);
  auto i = RandomTensor(DType::kS32, {4}, 3);
  auto dout = Alloc(DType::kF64, {4}), fout = Alloc(DType::kF32, {4}), u8 = Alloc(DType::kU8, {4});
  auto empty = Alloc(DType::kF64, {0}), empty_out = Alloc(DType::kF64, {0});
  std::vector<Status> refused = {
      ops.Unary(UnaryOp::kExp, *d, *dout),
      ops.Unary(UnaryOp::kIsNan, *d, *u8),
      ops.Unary(UnaryOp::kNegate, *empty, *empty_out),  // even with nothing to compute
      ops.Binary(BinaryOp::kAdd, *d, *i, DType::kF64, *dout),
      ops.Binary(BinaryOp::kLess, *f, *d, DType::kF64, *u8),
      ops.AsType(*f, *dout),
      ops.AsType(*d, *fout),
  };
  auto plan = PlanReduce(ReduceOp::kSum, DType::kF64, {4}, {0}, false);
  auto rout = Alloc(DType::kF64, {});
  refused.push_back(ops.Reduce(ReduceOp::kSum, *d, *plan, *rout));
  for (const Status& s : refused) {
    INFO(s.message());
    CHECK(s.kind() == ErrorKind::kUnsupported);
    CHECK_THAT(s.message(), Catch::Contains("{:f, 64}"));
  }
  // The second part: everything that computes with doubles says so; moving 8-byte elements
  // needs no double precision.
  auto s64 = RandomTensor(DType::kS64, {4}, 4);
  auto splan = PlanDot({4}, {0}, {}, {4}, {0}, {});
  REQUIRE(splan.ok());
  auto dscalar = Alloc(DType::kF64, {});
  refused.push_back(ops.Iota(*dout, -1));
  refused.push_back(ops.RandomUniform(*dout, 1, 0, 1));
  refused.push_back(ops.Sort(*d, 0, false, false, *dout));
  refused.push_back(ops.Dot(*d, *d, *splan, DType::kF64, *dscalar));
  refused.push_back(ops.Outer(*d, *empty, DType::kF64, *empty_out));
  refused.push_back(ops.Select(*u8, *d, *d, DType::kF64, *dout));
  refused.push_back(ops.Clip(*d, *d, *d, DType::kF64, *dout));
  {
    std::vector<const Tensor*> ins{i.get(), d.get()};
    auto joined = Alloc(DType::kF64, {8});
    refused.push_back(ops.Concatenate(ins, {{4}, {4}}, 0, *joined));
    refused.push_back(ops.PutSlice(*d, {0}, *i, *dout));
  }
  CHECK_THAT(refused[0].message(), Catch::Contains("exp"));
  CHECK(ops.Prebuild({KernelRequest::Unary(UnaryOp::kSin, DType::kF64)}).kind() == ErrorKind::kUnsupported);
  CHECK(ops.stats().programs_built == 0);
  CHECK(ops.cached_kernels() == 0);
  {
    auto moved = Alloc(DType::kF64, {4}), want = Alloc(DType::kF64, {4});
    CHECK(ops.Reverse(*d, {0}, *moved).ok());
    REQUIRE(cpu::Reverse(*d, {0}, *want).ok());
    Compare(*want, *moved, {}, "reverse f64 without fp64");
    CHECK(ops.Fill(*moved, FloatScalar(0.1)).ok());
    REQUIRE(cpu::Fill(*want, FloatScalar(0.1)).ok());
    Compare(*want, *moved, {}, "full f64 without fp64");
    auto bits = Alloc(DType::kS64, {4});
    CHECK(ops.Bitcast(*d, *bits).ok());
    CHECK(std::memcmp(bits->data(), d->data(), 32) == 0);
  }
  {
    // Random numbers in float without double: close to the reference's, not identical.
    auto want = Alloc(DType::kF32, {1000}), got = Alloc(DType::kF32, {1000});
    REQUIRE(cpu::RandomUniform(*want, 9, -2, 3).ok());
    REQUIRE(ops.RandomUniform(*got, 9, -2, 3).ok());
    Compare(*want, *got, {0, 1e-6}, "random_uniform in float");  // lo + (hi - lo) * u: absolute error
    REQUIRE(cpu::RandomNormal(*want, 9, 1, 2).ok());
    REQUIRE(ops.RandomNormal(*got, 9, 1, 2).ok());
    Compare(*want, *got, {0, 1e-5}, "random_normal in float");
  }

  // f32 still works, and float sums accumulate in float: close to the reference, not exact.
  auto x = Alloc(DType::kF32, {64, 100});
  std::mt19937_64 rng(5);
  for (uint64_t k = 0; k < x->elements(); ++k) {
    float v = std::uniform_real_distribution<float>(0.5f, 2.0f)(rng);
    std::memcpy(x->data() + 4 * k, &v, 4);
  }
  CHECK(ops.Unary(UnaryOp::kExp, *f, *fout).ok());
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kReduceMax, ReduceOp::kArgmin}) {
    auto p = PlanReduce(op, DType::kF32, x->shape(), {1}, false);
    REQUIRE(p.ok());
    auto want = Alloc(p->out_type, p->out_shape), got = Alloc(p->out_type, p->out_shape);
    REQUIRE(cpu::Reduce(op, *x, *p, *want).ok());
    REQUIRE(ops.Reduce(op, *x, *p, *got).ok());
    Compare(*want, *got, op == ReduceOp::kSum ? Tol{64, 0} : Tol{}, std::string(Name(op)) + " in float");
  }
}

TEST_CASE("generated sources and a kernel that fails to build reports its log", "[opencl][ops]") {
  auto& dev = Device();
  auto made = ocl::OpenClOps::Create(dev.context(), dev.device(), dev.queue(), true);
  REQUIRE(made.ok());
  auto k = ocl::UnaryKernel(UnaryOp::kExp, DType::kF32, DType::kF32, true);
  REQUIRE(k.ok());
  CHECK_THAT(ocl::ProgramSource(*k), Catch::Contains("__kernel void mure_k("));
  CHECK_THAT(ocl::ProgramSource(*k), !Catch::Contains("cl_khr_fp64"));
  auto k64 = ocl::UnaryKernel(UnaryOp::kExp, DType::kF64, DType::kF64, true);
  REQUIRE(k64.ok());
  CHECK_THAT(ocl::ProgramSource(*k64), Catch::Contains("cl_khr_fp64"));
  ocl::KernelSource broken = *k;
  broken.text += "__kernel void oops(__global float* p) { p[0] = undefined_thing; }\n";
  Status s = (*made)->Compile({broken});
  CHECK(s.kind() == ErrorKind::kInternal);
  CHECK_THAT(s.message(), Catch::Contains("clBuildProgram"));
  CHECK_THAT(s.message(), Catch::Contains("undefined_thing"));  // the build log
  CHECK((*made)->cached_kernels() == 0);
  CHECK((*made)->Compile({*k}).ok());
  CHECK((*made)->cached_kernels() == 1);
  CHECK((*made)->Compile({*k}).ok());  // cached: nothing built
  CHECK((*made)->stats().programs_built == 1);
}

// ---- the second part of the op set ------------------------------------------------------------------
