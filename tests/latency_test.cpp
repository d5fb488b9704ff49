// Per-request overhead: the estimate that decides whether an op is tiny enough to run on the
// thread that received it (inline_max_us), the default placement that charges the OpenCL device's
// launch cost, the service running a tiny op inline only when nothing waits for its device, and a
// work queue whose workers spin a bounded time after a job (spin_us).
#include <catch2/catch.hpp>

#include <pthread.h>
#include <time.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>

#include "exec/cpu_executor.h"
#include "exec/opencl_device.h"
#include "proto/request.h"
#include "sched/planner.h"
#include "sched/service.h"
#include "sched/work_queue.h"
#include "operands.h"
#include "test_util.h"

using namespace mure;

namespace {

using testing::Blis;
using testing::Store;

std::shared_ptr<Tensor> Filled(DType t, const Shape& s, float v) {
  auto x = Store().Allocate(t, s);
  REQUIRE(x.ok());
  if (t == DType::kF32) {
    for (uint64_t i = 0; i < (*x)->elements(); ++i) (*x)->as<float>()[i] = v + static_cast<float>(i % 7);
  } else if ((*x)->bytes()) {
    std::memset((*x)->data(), 0, (*x)->bytes());
  }
  return std::move(*x);
}

ir::Node Legacy(uint64_t a, uint64_t b) { return ir::Binary{"add", ir::BinaryOp::kAdd, a, b, ir::Legacy::kAdd}; }
ir::Node Add(uint64_t a, uint64_t b) { return ir::Binary{"add", ir::BinaryOp::kAdd, a, b}; }
ir::Node Matmul(uint64_t a, uint64_t b) { return ir::Dot{a, {1}, {}, b, {0}, {}, ir::Legacy::kMatmul}; }

CostModel Model(double cpu_gbps, double opencl_gbps, double launch_us) {
  CostModel c;
  c.cpu_gbps = cpu_gbps;
  c.opencl_gbps = opencl_gbps;
  c.gemm_gflops = 100;
  c.opencl_launch_us = launch_us;
  return c;
}

}  // namespace

TEST_CASE("the estimate runs tiny elementwise ops and products inline, nothing else", "[planner][latency]") {
  exec::CpuExecutor cpu(&Blis());
  const Executors ex{&cpu, nullptr, true};
  testing::Operands ops;
  ops.byid[1] = Filled(DType::kF32, {1024}, 1);
  ops.byid[2] = Filled(DType::kF32, {1u << 22}, 1);  // 16 MiB
  ops.byid[3] = Filled(DType::kF32, {16, 16}, 1);
  ops.byid[4] = Filled(DType::kF32, {512, 512}, 1);
  const CostModel cost = Model(10, 10, 100);  // 10 GB/s = 10^4 bytes per us; 100 GFLOP/s

  auto tiny = PlanOp(Add(1, 1), ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(tiny.ok());
  CHECK(tiny->costed);
  CHECK(tiny->work_bytes == 3 * 4096 * 2);  // a, b and the result, at an add's weight
  CHECK(EstimateMicros(*tiny, cost) == Approx(3 * 4096 * 2 / 1e4));
  CHECK(RunsInline(*tiny, cost, 20, 0));
  CHECK_FALSE(RunsInline(*tiny, cost, 0, 0));   // inline_max_us = 0: never
  CHECK_FALSE(RunsInline(*tiny, cost, 20, 1));  // work waits for the CPU: no overtaking it
  CHECK_FALSE(RunsInline(*tiny, Model(0, 0, 0), 20, 0));  // nothing measured: no estimate

  auto exp = PlanOp(ir::Unary{"exp", ir::UnaryFromName("exp"), 1}, ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(exp.ok());
  CHECK(exp->work_bytes == 2 * 4096 * 8);  // transcendental: weighted up
  auto pow = PlanOp(ir::Binary{"pow", ir::BinaryOp::kPow, 1, 1}, ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(pow.ok());
  CHECK(pow->work_bytes == 3 * 4096 * 8);

  auto big = PlanOp(Add(2, 2), ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(big.ok());
  CHECK(EstimateMicros(*big, cost) > 1000);
  CHECK_FALSE(RunsInline(*big, cost, 20, 0));

  auto mm16 = PlanOp(Matmul(3, 3), ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(mm16.ok());
  CHECK(mm16->work_flops == 2 * 16 * 16 * 16);
  CHECK(RunsInline(*mm16, cost, 20, 0));
  auto mm512 = PlanOp(Matmul(4, 4), ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(mm512.ok());
  CHECK(mm512->work_flops == 2ull * 512 * 512 * 512);
  CHECK(EstimateMicros(*mm512, cost) > 2000);
  CHECK_FALSE(RunsInline(*mm512, cost, 20, 0));

  // An integer product takes the generic loop, far slower per flop than the measured sgemm.
  ops.byid[5] = Filled(DType::kS32, {16, 16}, 0);
  auto imm = PlanOp(ir::Dot{5, {1}, {}, 5, {0}, {}}, ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(imm.ok());
  CHECK_FALSE(imm->costed);
  CHECK_FALSE(RunsInline(*imm, cost, 20, 0));

  // Ops whose cost is not linear in their bytes are never estimated, however small.
  auto sum = PlanOp(ir::Reduce{"sum", ir::ReduceFromName("sum"), 1, {}, true}, ops.lookup, ex, ir::Placement::kAuto);
  REQUIRE(sum.ok());
  CHECK_FALSE(sum->costed);
  CHECK(std::isinf(EstimateMicros(*sum, cost)));
  CHECK_FALSE(RunsInline(*sum, cost, 1000000, 0));
}

TEST_CASE("default placement charges the OpenCL launch: a small legacy add runs on the CPU", "[planner][opencl][latency]") {
  exec::CpuExecutor cpu(&Blis());
  exec::OpenClDevice opencl(testing::Device());
  const Executors ex{&cpu, &opencl, true};
  testing::Operands ops;
  ops.byid[1] = Filled(DType::kF32, {1024}, 1);
  ops.byid[2] = Filled(DType::kF32, {1024}, 3);
  ops.byid[3] = Filled(DType::kF64, {1024}, 0);
  ops.byid[4] = Filled(DType::kF32, {1}, 2);
  ops.byid[5] = Filled(DType::kF32, {1u << 22}, 1);

  const CostModel launch = Model(10, 10, 150);  // PoCL-like: as fast, 150 us per launch
  auto small = PlanPlaced(Legacy(1, 2), ops.lookup, ex, ir::Placement::kAuto, launch);
  REQUIRE(small.ok());
  CHECK(small->device == Device::kCpu);
  CHECK(small->type == DType::kF32);
  CHECK(small->shape == Shape{1024});
  auto sum = ops.Run(*small);
  for (uint64_t i = 0; i < 1024; ++i) {
    REQUIRE(sum->as<float>()[i] == ops.byid[1]->as<float>()[i] + ops.byid[2]->as<float>()[i]);
  }
  // A device that is much faster and launches for free keeps the legacy add, as documented.
  auto fast = PlanPlaced(Legacy(1, 2), ops.lookup, ex, ir::Placement::kAuto, Model(10, 100, 0));
  REQUIRE(fast.ok());
  CHECK(fast->device == Device::kOpenCl);
  // 16 Mi elements: the launch is nothing next to the data; the faster device wins.
  auto large = PlanPlaced(Legacy(5, 5), ops.lookup, ex, ir::Placement::kAuto, Model(10, 20, 150));
  REQUIRE(large.ok());
  CHECK(large->device == Device::kOpenCl);
  // The contract stays the device's wherever it runs: f32 only, one shape, no broadcasting.
  auto types = PlanPlaced(Legacy(1, 3), ops.lookup, ex, ir::Placement::kAuto, launch);
  REQUIRE_FALSE(types.ok());
  CHECK(types.status().message() == "add on the OpenCL device takes {:f, 32} tensors, got {:f, 32} and {:f, 64}");
  auto shapes = PlanPlaced(Legacy(1, 4), ops.lookup, ex, ir::Placement::kAuto, launch);
  REQUIRE_FALSE(shapes.ok());
  CHECK(shapes.status().kind() == ErrorKind::kShapeMismatch);
  // Placed by the caller, nothing moves.
  auto placed = PlanPlaced(Legacy(1, 2), ops.lookup, ex, ir::Placement::kOpenCl, launch);
  REQUIRE(placed.ok());
  CHECK(placed->device == Device::kOpenCl);
}

namespace {

struct Sink : ReplySink {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> frames;
  void Send(OutFrame f) override {
    std::string frame = f.head;
    if (f.tail_len) frame.append(reinterpret_cast<const char*>(f.tail), f.tail_len);
    std::lock_guard<std::mutex> lock(mu);
    frames.push_back(std::move(frame));
    cv.notify_all();
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return frames.size();
  }
  /// Wait for `n` frames in all; the frames.
  std::vector<std::string> Wait(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return frames.size() >= n; }));
    return frames;
  }
};

/// The result term of a reply frame ({ok, _} / {error, _}), as text: "ok:<integer>" for an
/// integer value, "ok:tensor" for a handle triple, "error" otherwise.
std::string Outcome(const std::string& frame) {
  std::string_view payload(frame.data() + 4, frame.size() - 4);
  proto::TermTree ctrl, tree;
  auto pos = proto::ParseExternal(payload, 1, ctrl);
  REQUIRE(pos.ok());
  REQUIRE(proto::ParseExternal(payload, *pos, tree).ok());
  const uint32_t res = tree.Child(0, 2);
  if (!tree.IsAtom(tree.Child(res, 0), "ok")) return "error";
  const uint32_t v = tree.Child(res, 1);
  if (tree[v].kind == proto::TermKind::kInteger) return "ok:" + std::to_string(tree[v].integer);
  return "ok:tensor";
}

}  // namespace

TEST_CASE("the service runs a tiny op inline only while nothing waits for the CPU", "[service][latency]") {
  Config cfg;
  cfg.blis_arch = "generic";
  cfg.test_ops = true;
  REQUIRE(cfg.inline_max_us > 0);
  TensorStore store(1ull << 30);
  auto blis = std::move(BlisExecutor::Create(cfg).value());
  Service service(cfg, store, blis.get(), nullptr);
  RequestContext ctx;
  ctx.conn = store.OpenConnection();
  ctx.owner = "owner";
  uint64_t handle = 0;
  {
    auto t = store.Allocate(DType::kF32, {1024});
    REQUIRE(t.ok());
    std::memset((*t)->data(), 0, (*t)->bytes());
    bool new_owner = false;
    auto h = store.Insert(ctx.conn, ctx.owner, std::move(*t), &new_owner);
    REQUIRE(h.ok());
    handle = *h;
  }
  auto sink = std::make_shared<Sink>();
  auto handle_request = [&](const std::function<void(proto::TermWriter&)>& req) {
    std::string bytes = testing::EnvelopeBytes(req);
    proto::TermTree t;
    REQUIRE(proto::ParseExternal(bytes, 0, t).ok());
    auto env = proto::ReadEnvelope(t, 0);
    REQUIRE(env);
    auto r = proto::DecodeRequest(t, env->request, true);
    REQUIRE(r.ok());
    service.Handle(ctx, *r, std::make_shared<Reply>(sink, env->reply_to, env->ref));
  };
  auto add = [&](proto::TermWriter& w) { w.Tuple(3).Atom("on").Atom("cpu").Tuple(3).Atom("add").Int(handle).Int(handle); };

  // Idle node: the add is answered before Handle returns (it ran on this thread).
  handle_request(add);
  CHECK(sink->count() == 1);
  // A long job holds the CPU queue: the next add waits behind it (no overtaking), and the
  // replies come in the order of the requests.
  handle_request([](proto::TermWriter& w) { w.Tuple(2).Atom("busy").Int(300); });
  handle_request(add);
  CHECK(sink->count() == 1);
  auto frames = sink->Wait(3);
  REQUIRE(frames.size() == 3);
  CHECK(Outcome(frames[0]) == "ok:tensor");
  CHECK(Outcome(frames[1]) == "ok:300");
  CHECK(Outcome(frames[2]) == "ok:tensor");
}

namespace {

double ThreadCpuSeconds(clockid_t clock) {
  timespec ts{};
  REQUIRE(clock_gettime(clock, &ts) == 0);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

}  // namespace

TEST_CASE("a work queue's workers spin a bounded time after a job, and keep the jobs' order", "[work_queue][latency]") {
  for (int spin_us : {0, 2000}) {
    WorkQueue q("spin-test", 1, 1024, std::chrono::microseconds(spin_us));
    std::mutex mu;
    std::vector<int> order;
    std::promise<clockid_t> clock_p;
    REQUIRE(q.TryPost([&] {
      clockid_t c;
      REQUIRE(pthread_getcpuclockid(pthread_self(), &c) == 0);
      clock_p.set_value(c);
    }));
    const clockid_t clock = clock_p.get_future().get();
    std::promise<void> done;
    for (int i = 0; i < 200; ++i) {
      REQUIRE(q.TryPost([&, i] {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(i);
        if (i == 199) done.set_value();
      }));
    }
    done.get_future().wait();
    {
      std::lock_guard<std::mutex> lock(mu);
      REQUIRE(order.size() == 200);
      for (int i = 0; i < 200; ++i) REQUIRE(order[i] == i);
    }
    if (spin_us == 0) {
      CHECK(q.spin_hits() == 0);
    } else {
      CHECK(q.spin_hits() > 0);  // jobs posted back to back were taken without a sleep
    }
    // Idle: the worker sleeps after at most spin_us; over 300 ms it uses next to no CPU (a
    // worker spinning without bound would use most of them).
    const double before = ThreadCpuSeconds(clock);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // an observation window, not a wait for work
    CHECK(ThreadCpuSeconds(clock) - before < 0.03);
  }
}
