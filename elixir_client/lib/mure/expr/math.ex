defmodule Mure.Expr.Math do
  @moduledoc false
  # The bodies of Mure.Expr's elementwise ops, reductions, conversions, selection and linear
  # algebra (their docs are Mure.Expr's): each checks its operands with Mure.Rules and
  # returns the new expression.

  import Mure.Expr.Build

  alias Mure.{Rules, Types}

  @unary_ops Rules.unary_ops()
  @binary_ops Rules.binary_ops()
  @reductions Rules.reductions()

  def unary(op, x) do
    check_op!(op, @unary_ops, "unary")
    x = operand!(x, nil, op)
    type = ok!(Rules.unary_type(op, x.type), op, [x])
    new({:unary, op, x}, type, x.shape)
  end

  def binary(op, a, b) do
    check_op!(op, @binary_ops, "binary")
    {a, b} = operands!(a, b, op)
    type = ok!(Rules.binary_type(op, a.type, b.type), op, [a, b])
    shape = ok!(Rules.broadcast_shapes(a.shape, b.shape), op, [a, b])
    new({:binary, op, a, b}, type, shape)
  end

  def reduce(op, x, opts) do
    check_op!(op, @reductions, "reduce")
    x = operand!(x, nil, op)
    opts = Keyword.validate!(opts, axes: :all, keep_axes: false)
    axes = opts[:axes]

    unless axes == :all or (is_list(axes) and Enum.all?(axes, &is_integer/1)),
      do: raise(ArgumentError, "#{op}: :axes must be a list of integers, got: #{inspect(axes)}")

    unless is_boolean(opts[:keep_axes]),
      do: raise(ArgumentError, "#{op}: :keep_axes must be a boolean")

    {type, shape} = ok!(Rules.reduce(op, x.type, x.shape, axes, opts[:keep_axes]), op, [x])
    new({:reduce, op, x, axes, opts[:keep_axes]}, type, shape)
  end

  def as_type(x, type) do
    x = operand!(x, nil, :as_type)
    Types.check_type!(type, "as_type")
    new({:as_type, x, type}, type, x.shape)
  end

  def bitcast(x, type) do
    x = operand!(x, nil, :bitcast)
    Types.check_type!(type, "bitcast")

    unless elem(type, 1) == elem(x.type, 1),
      do:
        fail!(
          :bitcast,
          "bitcast needs types of the same width, got #{inspect(x.type)} to #{inspect(type)}",
          [x]
        )

    new({:bitcast, x, type}, type, x.shape)
  end

  def select(pred, on_true, on_false) do
    pred = operand!(pred, nil, :select)
    {on_true, on_false} = operands!(on_true, on_false, :select)
    bc = ok!(Rules.broadcast_shapes(on_true.shape, on_false.shape), :select, [on_true, on_false])
    shape = ok!(Rules.broadcast_shapes(pred.shape, bc), :select, [pred, on_true, on_false])

    new(
      {:select, pred, on_true, on_false},
      Rules.merge_types(on_true.type, on_false.type),
      shape
    )
  end

  def clip(x, lo, hi) do
    x = operand!(x, nil, :clip)
    lo = operand!(lo, x, :clip)
    hi = operand!(hi, x, :clip)
    bc = ok!(Rules.broadcast_shapes(lo.shape, hi.shape), :clip, [x, lo, hi])
    shape = ok!(Rules.broadcast_shapes(x.shape, bc), :clip, [x, lo, hi])
    type = Rules.merge_types(x.type, Rules.merge_types(lo.type, hi.type))

    if Rules.complex?(type),
      do: fail!(:clip, "clip is not defined on complex tensors (no order)", [x, lo, hi])

    new({:clip, x, lo, hi}, type, shape)
  end

  def dot(a, b) do
    {a, b} = operands!(a, b, :dot)
    ca = if tuple_size(a.shape) == 0, do: [], else: [tuple_size(a.shape) - 1]
    cb = if tuple_size(b.shape) == 0, do: [], else: [0]
    dot(a, ca, [], b, cb, [])
  end

  def dot(a, ca, ba, b, cb, bb) do
    {a, b} = operands!(a, b, :dot)

    for list <- [ca, ba, cb, bb] do
      unless is_list(list) and Enum.all?(list, &is_integer/1),
        do: raise(ArgumentError, "dot: axes must be lists of integers, got: #{inspect(list)}")
    end

    shape = ok!(Rules.dot(a.shape, ca, ba, b.shape, cb, bb), :dot, [a, b])
    new({:dot, a, ca, ba, b, cb, bb}, Rules.merge_types(a.type, b.type), shape)
  end

  def fft(op, x, length) when op in [:fft, :ifft] do
    x = operand!(x, nil, op)
    {type, shape} = ok!(Rules.fft(op, x.type, x.shape, length), op, [x])
    new({op, x, length}, type, shape)
  end

  def outer(a, b) do
    {a, b} = operands!(a, b, :outer)
    shape = ok!(Rules.outer(a.shape, b.shape), :outer, [a, b])
    new({:outer, a, b}, Rules.merge_types(a.type, b.type), shape)
  end

  def matmul(a, b) do
    a = operand!(a, nil, :matmul)
    b = operand!(b, nil, :matmul)

    unless a.type == b.type and a.type in [{:f, 32}, {:f, 64}] do
      fail!(
        :matmul,
        "expected both tensors to be {:f, 32} or both {:f, 64}, " <>
          "got #{inspect(a.type)} and #{inspect(b.type)}",
        [a, b]
      )
    end

    case {a.shape, b.shape} do
      {{m, k}, {k, n}} ->
        new({:matmul, a, b}, a.type, {m, n})

      _ ->
        fail!(
          :matmul,
          "matmul of #{inspect(a.shape)} by #{inspect(b.shape)}: needs {m, k} and {k, n}",
          [a, b]
        )
    end
  end
end
