// mure — the complex types on the CPU executor: elementwise ops and reductions by the complex rows
// of ir/ops.def, and fft/ifft through FFTW. The kernels of exec/cpu_ops.h hand complex work here;
// data movement (transpose, slice, gather, ...) needs nothing of its own: it copies whole elements.
// Shapes and types were validated by ir/ first (UnaryResultType, BinaryResultTypes, PlanReduce).
//
// Thread-safety: stateless, any thread; FFTW's planner is serialised inside (exec/cpu_fft.cpp).
#pragma once

#include "ir/ops.h"
#include "mure/status.h"
#include "store/tensor_store.h"

namespace mure::cpu {

/// out = op(in) where in or out is complex (conjugate of a real tensor gives a complex one).
Status ComplexUnary(ir::UnaryOp op, const Tensor& in, Tensor& out);
/// out = op(a, b) with broadcasting, both operands promoted to the complex type `compute`.
Status ComplexBinary(ir::BinaryOp op, const Tensor& a, const Tensor& b, DType compute, Tensor& out);
/// out = the reduction of a complex tensor over plan.axes.
Status ComplexReduce(ir::ReduceOp op, const Tensor& in, const ir::ReducePlan& plan, Tensor& out);
/// out = in converted, where either type is complex (real -> imaginary 0; complex -> real part).
Status ComplexAsType(const Tensor& in, Tensor& out);

/// The discrete Fourier transform over the last axis of `in` (any type), as Nx.fft / Nx.ifft:
/// each row is cut or zero-padded to out's last dim `n` first, out is complex ({:c, 64} or
/// {:c, 128}); inverse = true gives the inverse transform scaled by 1/n. FFTW plans
/// (FFTW_ESTIMATE) over the rows in place in `out`: no working memory besides FFTW's own.
Status Fft(const Tensor& in, bool inverse, Tensor& out);

}  // namespace mure::cpu
