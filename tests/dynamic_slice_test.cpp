// dynamic_slice and dynamic_put_slice: slices whose starts are scalar integer tensors, read when the
// op runs and clamped as Nx clamps them. Decoded from the wire, validated by the planner (static
// parts only), run on the CPU executor and on the OpenCL device (its own slice and put_slice
// kernels, starts read on the host), against values computed by hand.
#include <catch2/catch.hpp>

#include <cstring>
#include <deque>
#include <map>

#include "exec/cpu_executor.h"
#include "exec/opencl_device.h"
#include "opencl_fixture.h"
#include "operands.h"
#include "proto/request.h"
#include "sched/planner.h"
#include "test_util.h"

using namespace mure;

namespace {

using testing::Alloc;

std::shared_ptr<Tensor> S32(const Shape& s, const std::vector<int32_t>& v) {
  auto t = Alloc(DType::kS32, s);
  REQUIRE(v.size() == t->elements());
  if (t->bytes()) std::memcpy(t->data(), v.data(), t->bytes());
  return t;
}

/// A scalar of any integer type holding `v` (its two's-complement pattern, cut to the type's width).
std::shared_ptr<Tensor> Scalar(DType t, int64_t v) {
  auto x = Alloc(t, {});
  std::memcpy(x->data(), &v, DTypeSize(t));  // little-endian: the low bytes
  return x;
}

std::vector<int32_t> Values(const Tensor& t) {
  std::vector<int32_t> v(t.elements());
  if (t.bytes()) std::memcpy(v.data(), t.data(), t.bytes());
  return v;
}

using testing::Operands;

ir::Node NodeOf(const std::function<void(proto::TermWriter&)>& write) {
  static std::deque<std::string> frames;  // the node's views point into its frame
  frames.push_back(testing::EnvelopeBytes(write));
  proto::TermTree tree;
  REQUIRE(proto::ParseExternal(frames.back(), 0, tree).ok());
  auto env = proto::ReadEnvelope(tree, 0);
  REQUIRE(env);
  auto r = proto::DecodeRequest(tree, env->request, false);
  INFO((r.ok() ? std::string() : r.status().message()));
  REQUIRE(r.ok());
  REQUIRE(std::holds_alternative<ir::Node>(r->body));
  return std::get<ir::Node>(r->body);
}

Status DecodeError(const std::function<void(proto::TermWriter&)>& write) {
  const std::string bytes = testing::EnvelopeBytes(write);
  proto::TermTree tree;
  REQUIRE(proto::ParseExternal(bytes, 0, tree).ok());
  auto env = proto::ReadEnvelope(tree, 0);
  REQUIRE(env);
  auto r = proto::DecodeRequest(tree, env->request, false);
  REQUIRE_FALSE(r.ok());
  return r.status();
}

}  // namespace

TEST_CASE("dynamic_slice and dynamic_put_slice decode with their start tensors as operands", "[dynamic][request]") {
  ir::Node sl = NodeOf([](proto::TermWriter& w) {
    w.Tuple(5).Atom("dynamic_slice").Int(3).List(2).Int(7).Int(8).Nil().List(2).Int(2).Int(1).Nil();
    w.Tuple(2).Int(1).Int(1);
  });
  REQUIRE(std::holds_alternative<ir::DynamicSlice>(sl));
  CHECK(std::get<ir::DynamicSlice>(sl).lengths == std::vector<int64_t>{2, 1});
  CHECK(ir::Operands(sl) == std::vector<ir::Id>{3, 7, 8});
  CHECK(ir::Label(sl) == ":dynamic_slice");

  ir::Node put = NodeOf([](proto::TermWriter& w) {
    w.Tuple(4).Atom("dynamic_put_slice").Int(3).List(1).Int(9).Nil().Int(4);
  });
  REQUIRE(std::holds_alternative<ir::DynamicPutSlice>(put));
  CHECK(ir::Operands(put) == std::vector<ir::Id>{3, 4, 9});

  Status ints = DecodeError([](proto::TermWriter& w) {
    w.Tuple(4).Atom("dynamic_put_slice").Int(3).List(1).Int(0).Nil().Int(4);
  });
  CHECK(ints.kind() == ErrorKind::kBadArg);
  CHECK(ints.message() == "dynamic_put_slice starts must hold tensor handles (positive integers)");
  Status many = DecodeError([](proto::TermWriter& w) {
    w.Tuple(4).Atom("dynamic_put_slice").Int(3).List(17);
    for (int i = 0; i < 17; ++i) w.Int(300 + i);
    w.Nil().Int(4);
  });
  CHECK(many.message() == "dynamic_put_slice starts: one scalar integer tensor per axis, at most 16; got 17");
  Status arity = DecodeError([](proto::TermWriter& w) { w.Tuple(3).Atom("dynamic_slice").Int(3).Nil(); });
  CHECK_THAT(arity.message(), Catch::Contains("{:dynamic_slice, h, [start tensor], lengths, strides}"));
}

TEST_CASE("dynamic_slice clamps each start as Nx does, whatever its integer type", "[dynamic][planner]") {
  Operands ops;
  // {3, 4}: row r, column c holds 10 r + c.
  ops.byid[1] = S32({3, 4}, {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23});
  const ir::DynamicSlice node{1, {2, 3}, {2, 2}, {1, 1}};
  struct Case {
    DType type;
    int64_t row, col;
    std::vector<int32_t> want;
  };
  // Starts clamp to [0, dim - length]: rows 0..1, columns 0..2.
  const Case cases[] = {
      {DType::kS32, 1, 1, {11, 12, 21, 22}},
      {DType::kS8, -3, 7, {2, 3, 12, 13}},          // below 0: 0; past the end: 4 - 2
      {DType::kS16, 5, -1, {10, 11, 20, 21}},
      {DType::kS64, INT64_MIN, INT64_MAX, {2, 3, 12, 13}},
      {DType::kU8, 255, 0, {10, 11, 20, 21}},       // 255 unsigned: past the end
      {DType::kU16, 1, 2, {12, 13, 22, 23}},
      {DType::kU32, 0, 0xffffffff, {2, 3, 12, 13}},
      {DType::kU64, -1, 1, {11, 12, 21, 22}},       // 2^64 - 1 unsigned: past the end, not -1
  };
  for (const Case& c : cases) {
    INFO(DTypeToString(c.type) << " starts " << c.row << ", " << c.col);
    ops.byid[2] = Scalar(c.type, c.row);
    ops.byid[3] = Scalar(c.type, c.col);
    auto p = PlanOp(node, ops.lookup, Executors{}, ir::Placement::kAuto);
    REQUIRE(p.ok());
    CHECK(p->type == DType::kS32);
    CHECK(p->shape == Shape{2, 2});
    CHECK(Values(*ops.Run(*p)) == c.want);
  }

  // Strides as Nx.slice: the length is the span the clamp keeps inside; every stride-th element of it.
  ops.byid[2] = Scalar(DType::kS32, 9);
  ops.byid[3] = Scalar(DType::kS32, 1);
  auto strided = PlanOp(ir::DynamicSlice{1, {2, 3}, {3, 3}, {2, 2}}, ops.lookup, Executors{}, ir::Placement::kCpu);
  REQUIRE(strided.ok());
  CHECK(strided->shape == Shape{2, 2});
  CHECK(Values(*ops.Run(*strided)) == std::vector<int32_t>{1, 3, 21, 23});  // rows from 0, columns from 1

  // The same start tensors in two ops: a value read, never consumed.
  auto again = PlanOp(node, ops.lookup, Executors{}, ir::Placement::kAuto);
  REQUIRE(again.ok());
  CHECK(Values(*ops.Run(*again)) == std::vector<int32_t>{11, 12, 21, 22});
}

TEST_CASE("dynamic_put_slice clamps the update inside and merges the types", "[dynamic][planner]") {
  Operands ops;
  ops.byid[1] = S32({2, 3}, {1, 2, 3, 4, 5, 6});
  auto upd = Alloc(DType::kF32, {1, 2});
  const float u[] = {0.5f, -7.0f};
  std::memcpy(upd->data(), u, sizeof u);
  ops.byid[2] = upd;
  ops.byid[3] = Scalar(DType::kS64, 5);    // row: clamped to 2 - 1 = 1
  ops.byid[4] = Scalar(DType::kS8, -2);    // column: clamped to 0
  auto p = PlanOp(ir::DynamicPutSlice{1, {3, 4}, 2}, ops.lookup, Executors{}, ir::Placement::kAuto);
  REQUIRE(p.ok());
  CHECK(p->type == DType::kF32);  // {s, 32} with an {f, 32} update
  CHECK(p->shape == Shape{2, 3});
  auto out = ops.Run(*p);
  const float want[] = {1, 2, 3, 0.5f, -7, 6};
  CHECK(std::memcmp(out->data(), want, sizeof want) == 0);

  // An integer update into floats, at the far edge.
  ops.byid[5] = Alloc(DType::kF64, {2, 3});
  std::memset(ops.byid[5]->data(), 0, ops.byid[5]->bytes());
  ops.byid[6] = S32({2, 1}, {8, 9});
  ops.byid[7] = Scalar(DType::kU8, 200);
  auto edge = PlanOp(ir::DynamicPutSlice{5, {3, 7}, 6}, ops.lookup, Executors{}, ir::Placement::kCpu);
  REQUIRE(edge.ok());
  CHECK(edge->type == DType::kF64);
  auto e = ops.Run(*edge);
  const double want_e[] = {0, 0, 8, 0, 0, 9};  // row 0 (5 clamps to 2 - 2), column 2 (200 clamps to 3 - 1)
  CHECK(std::memcmp(e->data(), want_e, sizeof want_e) == 0);
}

TEST_CASE("dynamic slices refuse what is wrong before they run", "[dynamic][planner][security]") {
  Operands ops;
  ops.byid[1] = S32({2, 3}, {1, 2, 3, 4, 5, 6});
  ops.byid[2] = Scalar(DType::kS32, 0);
  ops.byid[3] = S32({2}, {0, 0});
  ops.byid[4] = Alloc(DType::kF32, {});
  ops.byid[5] = S32({3, 3}, {0, 0, 0, 0, 0, 0, 0, 0, 0});

  Status count = ops.Refused(ir::DynamicSlice{1, {2}, {1, 1}, {1, 1}});
  CHECK(count.kind() == ErrorKind::kBadArg);
  CHECK(count.message() == "dynamic_slice of a rank-2 tensor needs 2 starts (one scalar integer tensor per axis); got 1");
  Status vector = ops.Refused(ir::DynamicSlice{1, {2, 3}, {1, 1}, {1, 1}});
  CHECK(vector.kind() == ErrorKind::kShapeMismatch);
  CHECK(vector.message() == "dynamic_slice: start 1 (axis 1) must be a scalar tensor, got shape {2}");
  Status fl = ops.Refused(ir::DynamicPutSlice{1, {4, 2}, 1});
  CHECK(fl.kind() == ErrorKind::kTypeMismatch);
  CHECK(fl.message() == "dynamic_put_slice: start 0 (axis 0) must be an integer tensor, got {:f, 32}");
  Status len = ops.Refused(ir::DynamicSlice{1, {2, 2}, {1, 4}, {1, 1}});
  CHECK(len.kind() == ErrorKind::kOutOfRange);
  CHECK(len.message() == "dynamic_slice: length 4 of dimension 1 is outside 0..3 (its size)");
  Status neg = ops.Refused(ir::DynamicSlice{1, {2, 2}, {-1, 1}, {1, 1}});
  CHECK(neg.kind() == ErrorKind::kOutOfRange);
  Status lists = ops.Refused(ir::DynamicSlice{1, {2, 2}, {1}, {1, 1}});
  CHECK(lists.message() == "dynamic_slice of a rank-2 tensor needs 2 lengths and strides; got 1 and 2");
  Status stride = ops.Refused(ir::DynamicSlice{1, {2, 2}, {1, 1}, {1, 0}});
  CHECK(stride.message() == "slice stride 1 must be at least 1");
  Status big = ops.Refused(ir::DynamicPutSlice{1, {2, 2}, 5});
  CHECK(big.kind() == ErrorKind::kOutOfRange);
  CHECK(big.message() == "dynamic_put_slice: the update {3, 3} is larger than the tensor {2, 3} in dimension 0");
  Status rank = ops.Refused(ir::DynamicPutSlice{1, {2, 2}, 3});
  CHECK(rank.kind() == ErrorKind::kShapeMismatch);
  Status missing = ops.Refused(ir::DynamicSlice{1, {2, 99}, {1, 1}, {1, 1}});
  CHECK(missing.kind() == ErrorKind::kUnknownHandle);

  // A rank-0 tensor takes no starts; an empty result runs no kernel.
  ops.byid[6] = Scalar(DType::kS32, 42);
  auto scalar = PlanOp(ir::DynamicSlice{6, {}, {}, {}}, ops.lookup, Executors{}, ir::Placement::kAuto);
  REQUIRE(scalar.ok());
  CHECK(Values(*ops.Run(*scalar)) == std::vector<int32_t>{42});
  auto empty = PlanOp(ir::DynamicSlice{1, {2, 2}, {0, 3}, {1, 1}}, ops.lookup, Executors{}, ir::Placement::kAuto);
  REQUIRE(empty.ok());
  CHECK(empty->shape == Shape{0, 3});
}

TEST_CASE("dynamic slices on the OpenCL device give the CPU's values", "[dynamic][planner][opencl]") {
  exec::CpuExecutor cpu(nullptr);
  exec::OpenClDevice opencl(testing::Device());
  const Executors ex{&cpu, &opencl, false};
  Operands ops;
  ops.byid[1] = S32({3, 4}, {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23});
  ops.byid[2] = Scalar(DType::kS64, 2);
  ops.byid[3] = Scalar(DType::kU8, 250);
  ops.byid[4] = S32({2, 2}, {-1, -2, -3, -4});
  for (ir::Placement where : {ir::Placement::kCpu, ir::Placement::kOpenCl}) {
    auto sl = PlanOp(ir::DynamicSlice{1, {2, 3}, {2, 3}, {1, 2}}, ops.lookup, ex, where);
    REQUIRE(sl.ok());
    CHECK(sl->device == (where == ir::Placement::kOpenCl ? Device::kOpenCl : Device::kCpu));
    CHECK(Values(*ops.Run(*sl)) == std::vector<int32_t>{11, 13, 21, 23});  // rows 1..2, columns 1 and 3
    auto put = PlanOp(ir::DynamicPutSlice{1, {2, 3}, 4}, ops.lookup, ex, where);
    REQUIRE(put.ok());
    // The update is 2 x 2: row 2 clamps to 1, column 250 to 2.
    CHECK(Values(*ops.Run(*put)) == std::vector<int32_t>{0, 1, 2, 3, 10, 11, -1, -2, 20, 21, -3, -4});
  }
  // Under :auto, shape ops stay on the CPU.
  auto sl = PlanPlaced(ir::DynamicSlice{1, {2, 3}, {2, 3}, {1, 2}}, ops.lookup, ex, ir::Placement::kAuto, CostModel{});
  REQUIRE(sl.ok());
  CHECK(sl->device == Device::kCpu);
}
