defmodule Mure.Expr.Shape do
  @moduledoc false
  # The bodies of Mure.Expr's shape ops (reshape, transpose, slice, dynamic_slice, take,
  # gather, broadcast, reverse, pad, concatenate, stack, put_slice, dynamic_put_slice, sort,
  # squeeze, new_axis; their docs are
  # Mure.Expr's): each checks its operands and options with Mure.Rules and returns the new
  # expression.

  import Mure.Expr.Build

  alias Mure.{Rules, Types}

  def reshape(x, shape) do
    x = operand!(x, nil, :reshape)
    Types.check_shape!(shape, "reshape")
    ok!(Rules.reshape(x.shape, shape), :reshape, [x])
    new({:reshape, x, shape}, x.type, shape)
  end

  def transpose(x, opts) do
    x = operand!(x, nil, :transpose)
    rank = tuple_size(x.shape)
    opts = Keyword.validate!(opts, axes: Enum.to_list((rank - 1)..0//-1))
    shape = ok!(Rules.transpose(x.shape, opts[:axes]), :transpose, [x])
    new({:transpose, x, List.to_tuple(opts[:axes])}, x.type, shape)
  end

  def slice(x, starts, lengths, opts) do
    x = operand!(x, nil, :slice)
    rank = tuple_size(x.shape)
    opts = Keyword.validate!(opts, strides: List.duplicate(1, rank))
    strides = opts[:strides]

    for {list, what} <- [{starts, "starts"}, {lengths, "lengths"}, {strides, "strides"}] do
      unless is_list(list) and Enum.all?(list, &is_integer/1),
        do:
          raise(ArgumentError, "slice: #{what} must be a list of integers, got: #{inspect(list)}")
    end

    shape = ok!(Rules.slice(x.shape, starts, lengths, strides), :slice, [x])

    new(
      {:slice, x, List.to_tuple(starts), List.to_tuple(lengths), List.to_tuple(strides)},
      x.type,
      shape
    )
  end

  # Starts that are tensors (docs/protocol.md, dynamic_slice): one scalar integer expression
  # per axis (an integer becomes an {:s, 64} constant), clamped by the node as Nx clamps them.
  def dynamic_slice(x, starts, lengths, opts) do
    x = operand!(x, nil, :dynamic_slice)
    rank = tuple_size(x.shape)
    opts = Keyword.validate!(opts, strides: List.duplicate(1, rank))
    strides = opts[:strides]
    starts = starts!(starts, rank, :dynamic_slice)

    for {list, what} <- [{lengths, "lengths"}, {strides, "strides"}] do
      unless is_list(list) and Enum.all?(list, &is_integer/1),
        do:
          raise(
            ArgumentError,
            "dynamic_slice: #{what} must be a list of integers, got: #{inspect(list)}"
          )
    end

    zeros = List.duplicate(0, length(lengths))
    shape = ok!(Rules.slice(x.shape, zeros, lengths, strides), :dynamic_slice, [x])

    new(
      {:dynamic_slice, x, starts, List.to_tuple(lengths), List.to_tuple(strides)},
      x.type,
      shape
    )
  end

  def dynamic_put_slice(x, starts, update) do
    x = operand!(x, nil, :dynamic_put_slice)
    update = operand!(update, x, :dynamic_put_slice)
    starts = starts!(starts, tuple_size(x.shape), :dynamic_put_slice)
    zeros = List.duplicate(0, tuple_size(x.shape))
    ok!(Rules.put_slice(x.shape, zeros, update.shape), :dynamic_put_slice, [x, update])
    new({:dynamic_put_slice, x, starts, update}, Rules.merge_types(x.type, update.type), x.shape)
  end

  defp starts!(starts, rank, op) do
    unless is_list(starts) and length(starts) == rank,
      do:
        raise(
          ArgumentError,
          "#{op}: expected a list of #{rank} starts (one per axis), got: #{inspect(starts, limit: 5)}"
        )

    starts
    |> Enum.with_index()
    |> Enum.map(fn
      {i, _axis} when is_integer(i) ->
        new({:full, {:s, 64}, {}, i}, {:s, 64}, {})

      {%Mure.Expr{shape: {}} = s, axis} ->
        if Rules.float?(s.type) or Rules.complex?(s.type),
          do: fail!(op, "start #{axis} must be an integer tensor, got #{describe(s)}", [s])

        s

      {other, axis} ->
        raise ArgumentError,
              "#{op}: start #{axis} must be an integer or a scalar integer expression, got: " <>
                inspect(other, limit: 5)
    end)
  end

  def take(x, indices, opts) do
    x = operand!(x, nil, :take)
    indices = operand!(indices, nil, :take)
    opts = Keyword.validate!(opts, axis: 0)

    shape =
      ok!(Rules.take(x.shape, indices.type, indices.shape, opts[:axis]), :take, [x, indices])

    new({:take, x, indices, opts[:axis]}, x.type, shape)
  end

  def gather(x, indices) do
    x = operand!(x, nil, :gather)
    indices = operand!(indices, nil, :gather)
    shape = ok!(Rules.gather(x.shape, indices.type, indices.shape), :gather, [x, indices])
    new({:gather, x, indices}, x.type, shape)
  end

  def broadcast(x, shape, opts) do
    x = operand!(x, nil, :broadcast)
    Types.check_shape!(shape, "broadcast")
    rank = tuple_size(x.shape)
    out_rank = tuple_size(shape)

    if rank > out_rank and not Keyword.has_key?(opts, :axes) do
      fail!(
        :broadcast,
        "cannot broadcast #{inspect(x.shape)} to #{inspect(shape)}, which has fewer dimensions",
        [x]
      )
    end

    opts = Keyword.validate!(opts, axes: Enum.to_list((out_rank - rank)..(out_rank - 1)//1))
    axes = opts[:axes]

    unless is_list(axes) and Enum.all?(axes, &is_integer/1),
      do:
        raise(ArgumentError, "broadcast: :axes must be a list of integers, got: #{inspect(axes)}")

    ok!(Rules.broadcast_to(x.shape, shape, axes), :broadcast, [x])
    new({:broadcast, x, shape, axes}, x.type, shape)
  end

  def reverse(x, opts) do
    x = operand!(x, nil, :reverse)
    opts = Keyword.validate!(opts, axes: Enum.to_list(0..(tuple_size(x.shape) - 1)//1))
    ok!(Rules.reverse(x.shape, opts[:axes]), :reverse, [x])
    new({:reverse, x, opts[:axes]}, x.type, x.shape)
  end

  def pad(x, value, config) do
    x = operand!(x, nil, :pad)
    value = scalar_term(value)
    check_scalar!(value, "pad")

    unless is_list(config) and
             Enum.all?(
               config,
               &match?({lo, hi, i} when is_integer(lo) and is_integer(hi) and is_integer(i), &1)
             ) do
      raise ArgumentError,
            "pad: expected a list of {low, high, interior} tuples of integers, got: #{inspect(config)}"
    end

    shape = ok!(Rules.pad(x.shape, config), :pad, [x])
    new({:pad, x, value, config}, x.type, shape)
  end

  def concatenate(list, opts), do: join(:concatenate, list, opts)

  def stack(list, opts), do: join(:stack, list, opts)

  defp join(op, list, opts) do
    unless is_list(list) and list != [],
      do: raise(ArgumentError, "#{op}: expected a non-empty list of expressions")

    opts = Keyword.validate!(opts, axis: 0)
    exprs = Enum.map(list, &operand!(&1, nil, op))

    shape = ok!(Rules.join(Enum.map(exprs, & &1.shape), opts[:axis], op == :stack), op, exprs)

    type = exprs |> Enum.map(& &1.type) |> Enum.reduce(&Rules.merge_types(&2, &1))
    new({op, exprs, opts[:axis]}, type, shape)
  end

  def put_slice(x, starts, update) do
    x = operand!(x, nil, :put_slice)
    update = operand!(update, x, :put_slice)

    unless is_list(starts) and Enum.all?(starts, &is_integer/1),
      do: raise(ArgumentError, "put_slice: starts must be a list of integers")

    ok!(Rules.put_slice(x.shape, starts, update.shape), :put_slice, [x, update])
    new({:put_slice, x, starts, update}, Rules.merge_types(x.type, update.type), x.shape)
  end

  def sort(x, opts), do: sort_op(:sort, x, opts)

  def argsort(x, opts), do: sort_op(:argsort, x, opts)

  defp sort_op(op, x, opts) do
    x = operand!(x, nil, op)
    opts = Keyword.validate!(opts, axis: 0, direction: :asc)

    unless opts[:direction] in [:asc, :desc],
      do: raise(ArgumentError, "#{op}: :direction must be :asc or :desc")

    ok!(Rules.axis(opts[:axis], tuple_size(x.shape), "sort axis"), op, [x])

    if Rules.complex?(x.type),
      do:
        fail!(op, "#{op} is not defined on complex tensors (no order), got #{inspect(x.type)}", [
          x
        ])

    type = if op == :argsort, do: {:s, 64}, else: x.type
    new({op, x, opts[:axis], opts[:direction]}, type, x.shape)
  end

  def squeeze(x, opts) do
    x = operand!(x, nil, :squeeze)
    dims = Tuple.to_list(x.shape)
    rank = length(dims)
    opts = Keyword.validate!(opts, axes: for({1, i} <- Enum.with_index(dims), do: i))
    axes = Enum.map(opts[:axes], fn a -> if a < 0, do: a + rank, else: a end)

    for a <- axes, a < 0 or a >= rank or elem(x.shape, a) != 1 do
      fail!(:squeeze, "axis #{a} of #{describe(x)} is not of size 1", [x])
    end

    reshape(x, for({d, i} <- Enum.with_index(dims), i not in axes, do: d) |> List.to_tuple())
  end

  def new_axis(x, axis) do
    x = operand!(x, nil, :new_axis)
    rank = tuple_size(x.shape)
    axis = if is_integer(axis) and axis < 0, do: axis + rank + 1, else: axis

    unless is_integer(axis) and axis in 0..rank,
      do: fail!(:new_axis, "axis out of range for #{describe(x)}", [x])

    reshape(x, Tuple.insert_at(x.shape, axis, 1))
  end
end
