// mure — what the node does with a decoded request: validate it against the store, answer the
// cheap ones on the spot, and hand compute to an executor's bounded queue.
//
// Cheap requests (hello, devices, stats, upload, download, free, shm_*) run on the calling connection's
// I/O thread: they are bounded memory copies. Compute (matmul on BLIS, elementwise on OpenCL,
// busy) runs on work queues; a full queue answers {:error, :overloaded} at once. BLIS and an
// OpenCL device that is itself the CPU never compute at the same time (they would fight for the
// same cores).
//
// The service is dist/'s RequestHandler (proto/handler.h). Replies' terms are encoded by
// proto/reply_terms.h, the devices measured at start-up by exec/calibration.h, and who may
// compute at once is sched/device_locks.h's.
//
// Thread-safety: Handle may be called from any connection thread concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "exec/blis_executor.h"
#include "exec/cpu_executor.h"
#include "exec/opencl_device.h"
#include "exec/opencl_executor.h"
#include "exec/opencl_fused.h"
#include "mure/config.h"
#include "proto/handler.h"
#include "proto/reply.h"
#include "proto/reply_terms.h"
#include "proto/request.h"
#include "sched/device_locks.h"
#include "sched/fusion.h"
#include "sched/planner.h"
#include "sched/program.h"
#include "sched/work_queue.h"
#include "store/shm_segments.h"
#include "store/tensor_store.h"

namespace mure {

class Service : public RequestHandler {
 public:
  Service(const Config& cfg, TensorStore& store, BlisExecutor* blis, OpenClExecutor* opencl);
  ~Service() override;

  /// Answer `req` through `reply`, now or from an executor.
  void Handle(const RequestContext& ctx, const proto::Request& req, std::shared_ptr<Reply> reply) override;

  void CountError() override { errors_.fetch_add(1); }
  void CountRequest() override { requests_.fetch_add(1); }
  void CountRefused() override { refused_.fetch_add(1); }

 private:
  proto::HelloInfo Hello() const;
  proto::DevicesInfo Devices() const;
  proto::StatsInfo Stats(const RequestContext& ctx) const;
  void Upload(const RequestContext& ctx, const proto::Upload& req, Reply& reply);
  /// {:ok, {segment, path, tag}} for a same-host segment (store/shm_segments.h), or its error;
  /// monitors a new owner.
  void ShmReply(const RequestContext& ctx, Result<ShmTicket> ticket, bool new_owner, Reply& reply);
  /// {:shm_upload, ...}: adopts a one-shot segment, copies a reusable one into a new tensor.
  void ShmUpload(const RequestContext& ctx, const proto::ShmUpload& req, Reply& reply);
  /// Publish a computed tensor and answer {:ok, {handle, type, shape}}.
  void Publish(const RequestContext& ctx, std::shared_ptr<Tensor> out, Reply& reply);
  void Busy(const proto::Busy& req, std::shared_ptr<Reply> reply);
  /// A compute op: plan it (sched/planner.h), allocate the result, post the kernel to its device.
  void Compute(const RequestContext& ctx, const ir::Node& node, proto::Placement placement,
               std::shared_ptr<Reply> reply);
  /// A whole program: inputs copied in, every node planned, the peak memory checked, then run in
  /// order on the CPU queue with intermediates freed after their last use.
  /// The rest of Compute for an op with several results (lu, qr, eigh, svd): runs it into the
  /// packed tuple value and replies one handle per part.
  void ComputeTuple(const RequestContext& ctx, PlannedOp plan, std::vector<std::shared_ptr<Tensor>> held,
                    std::shared_ptr<Tensor> packed, std::shared_ptr<Reply> reply);
  void RunProgram(const RequestContext& ctx, const proto::Program& prog, std::shared_ptr<Reply> reply);
  /// Run a planned program's (or region's) nodes in order: `vals` (by value id, 1-based) holds its
  /// inputs and gets its values, intermediates freed after their last use, outputs kept. The same
  /// loop serves the top level and every while/if region. Errors name the node ("node 3: ...").
  Status RunNodes(const ProgramPlan& plan, size_t n_inputs, std::vector<std::shared_ptr<Tensor>>& vals,
                  const Reply& reply);
  /// A while or if node: its regions run on `ins` (its operands in ir::Operands order); the result
  /// is its tuple value, the final state / the branch's outputs packed.
  Result<std::shared_ptr<Tensor>> RunControl(const ControlPlan& ctl, const PlannedOp& op,
                                             const std::vector<std::shared_ptr<Tensor>>& ins, const Reply& reply);
  void Alloc(const RequestContext& ctx, const proto::Alloc& req, std::shared_ptr<Reply> reply);
  void Write(const RequestContext& ctx, const proto::Write& req, Reply& reply);
  void Read(const RequestContext& ctx, const proto::Read& req, Reply& reply);
  /// The tensor behind a handle when bytes [offset, offset + length) lie inside it.
  Result<std::shared_ptr<Tensor>> Range(const RequestContext& ctx, uint64_t handle, uint64_t offset,
                                        uint64_t length) const;
  /// Run a planned kernel on its device, under the locks that device needs (locks_).
  Status RunKernel(const PlannedOp& op, const std::vector<const Tensor*>& ins, Tensor& out);
  /// Post to a queue or answer :overloaded.
  void Post(WorkQueue& q, std::shared_ptr<Reply> reply, std::function<void()> job);

  const Config& cfg_;
  TensorStore& store_;
  BlisExecutor* blis_;
  OpenClExecutor* opencl_;
  // Declared before the queues: destroyed after them, when no job can still run on them.
  std::unique_ptr<exec::CpuExecutor> cpu_exec_;       ///< the op set on the CPU (BLIS for products)
  std::unique_ptr<exec::OpenClDevice> opencl_exec_;   ///< ... on the OpenCL device (when there is one)
  Executors executors_;                               ///< both, for the planner
  std::unique_ptr<WorkQueue> blis_queue_;
  std::unique_ptr<WorkQueue> opencl_queue_;
  DeviceLocks locks_;
  CostModel cost_;
  std::unique_ptr<ocl::FusedKernels> fused_;  ///< the JIT's fused kernels (with an OpenCL device)
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> loop_iterations_{0};
  std::atomic<uint64_t> program_nodes_{0};  ///< program nodes run; of them, inside fused kernels:
  std::atomic<uint64_t> fused_nodes_{0};
  std::atomic<uint64_t> fused_groups_{0};   ///< fused kernels run by programs
  std::atomic<uint64_t> inline_runs_{0};    ///< ops run on their connection's thread (inline_max_us)
};

}  // namespace mure
