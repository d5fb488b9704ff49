defmodule Mure.Expr.Window do
  @moduledoc """
  Window, scatter and cumulative ops as `Mure.Expr` expressions: the node's `window`,
  `window_scatter`, `indexed` and `cumulative` requests (docs/protocol.md). `Mure.Backend`
  runs Nx's `window_*`, `window_scatter_*`, `indexed_*` and `cumulative_*` callbacks
  through them; in a traced function (`Mure.jit/2`) call them directly.

  Shapes are checked as the expression is built and a mistake raises `ArgumentError`;
  indices are range-checked by the node when the program runs.

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {4, 6})
      iex> Mure.Expr.Window.window(:sum, x, {2, 3}, strides: [2, 3]).shape
      {2, 2}
      iex> Mure.Expr.Window.cumulative(:product, x, axis: 1, reverse: true).shape
      {4, 6}
      iex> Mure.Expr.Window.window(:sum, x, {5, 1})
      ** (ArgumentError) window: the window of dimension 0 spans 5 elements, more than the 4 of the padded tensor

  """

  import Mure.Expr.Build

  alias Mure.Rules

  @reductions [:sum, :product, :reduce_max, :reduce_min]

  @doc """
  Reduces every window of `window_dims` (a tuple, one size per axis) with `op` (`:sum`,
  `:product`, `:reduce_max` or `:reduce_min`). Options: `:strides` and
  `:window_dilations` (lists, default 1), `:padding` (a list of `{low, high}`, default
  none) and `:init` (a number: the padding's value and each window's start; default the
  op's identity: 0, 1, or the type's lowest/highest value). The result keeps `x`'s type.

      iex> x = Mure.Expr.parameter(0, {:s, 32}, {5})
      iex> w = Mure.Expr.Window.window(:reduce_max, x, {2}, padding: [{1, 0}], strides: [2])
      iex> {w.type, w.shape}
      {{:s, 32}, {3}}

  """
  @spec window(atom(), Mure.Expr.operand(), tuple(), keyword()) :: Mure.Expr.t()
  def window(op, x, window_dims, opts \\ []) do
    check_op!(op, @reductions, "window")
    x = operand!(x, nil, :window) |> real!(:window)
    rank = tuple_size(x.shape)
    ones = List.duplicate(1, rank)

    opts =
      Keyword.validate!(opts,
        strides: ones,
        window_dilations: ones,
        padding: List.duplicate({0, 0}, rank),
        init: nil
      )

    dims = Tuple.to_list(window_dims)
    %{strides: strides, window_dilations: dil, padding: pad} = Map.new(opts)
    shape = pooled!(:window, x.shape, dims, strides, pad, dil)
    init = opts[:init]
    base = {:window, op, x, dims, strides, pad, dil}

    if init == nil do
      new(base, x.type, shape)
    else
      check_scalar!(init, "window's init")
      new(Tuple.append(base, init), x.type, shape)
    end
  end

  @doc """
  Nx's `window_scatter_max`/`window_scatter_min` (`op`: `:max` or `:min`): a tensor of
  `x`'s shape holding `init` (a number), plus each element of `source` at the position of
  its window's largest (smallest) element of `x` (of equal ones the last, as
  `Nx.BinaryBackend`; padding is never selected). `source` has the shape of the windows.
  Options: `:strides`, `:padding` as `window/4`.

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {4, 6})
      iex> s = Mure.Expr.parameter(1, {:f, 32}, {2, 2})
      iex> Mure.Expr.Window.window_scatter(:max, x, s, 0, {2, 3}, strides: [2, 3]).shape
      {4, 6}

  """
  @spec window_scatter(
          :max | :min,
          Mure.Expr.operand(),
          Mure.Expr.operand(),
          number(),
          tuple(),
          keyword()
        ) ::
          Mure.Expr.t()
  def window_scatter(op, x, source, init, window_dims, opts \\ []) do
    check_op!(op, [:max, :min], "window_scatter")
    x = operand!(x, nil, :window_scatter) |> real!(:window_scatter)
    source = operand!(source, nil, :window_scatter) |> real!(:window_scatter)
    check_scalar!(init, "window_scatter's init")
    rank = tuple_size(x.shape)

    opts =
      Keyword.validate!(opts,
        strides: List.duplicate(1, rank),
        padding: List.duplicate({0, 0}, rank)
      )

    dims = Tuple.to_list(window_dims)
    windows = pooled!(:window_scatter, x.shape, dims, opts[:strides], opts[:padding], nil)

    if windows != source.shape do
      fail!(
        :window_scatter,
        "the source has shape #{inspect(source.shape)}; the windows make #{inspect(windows)}",
        [x, source]
      )
    end

    new(
      {:window_scatter, op, x, source, init, dims, opts[:strides], opts[:padding]},
      Rules.merge_types(x.type, source.type),
      x.shape
    )
  end

  @doc """
  Nx's `indexed_add`/`indexed_put` (`op`: `:add` or `:put`): `x` with each row of
  `indices` (`{n, k}`, integers: coordinates along `:axes`, default the first k axes)
  addressing where the matching slice of `updates` (`{n, ...}`, one dim per other axis)
  is added (duplicates accumulate) or written (the last wins). The result has the merged
  type of `x` and `updates`.

      iex> x = Mure.Expr.parameter(0, {:s, 32}, {3, 4})
      iex> i = Mure.Expr.parameter(1, {:s, 64}, {2, 1})
      iex> u = Mure.Expr.parameter(2, {:f, 32}, {2, 3})
      iex> y = Mure.Expr.Window.indexed(:add, x, i, u, axes: [1])
      iex> {y.type, y.shape}
      {{:f, 32}, {3, 4}}

  """
  @spec indexed(
          :add | :put,
          Mure.Expr.operand(),
          Mure.Expr.operand(),
          Mure.Expr.operand(),
          keyword()
        ) ::
          Mure.Expr.t()
  def indexed(op, x, indices, updates, opts \\ []) do
    check_op!(op, [:add, :put], "indexed")

    [x, indices, updates] =
      Enum.map([x, indices, updates], &(&1 |> operand!(nil, :indexed) |> real!(:indexed)))

    operands = [x, indices, updates]
    rank = tuple_size(x.shape)

    unless match?({_, _}, indices.shape) and elem(indices.shape, 1) <= rank do
      fail!(
        :indexed,
        "indices must be {n, k} with k <= #{rank}, got #{inspect(indices.shape)}",
        operands
      )
    end

    if Rules.float?(indices.type),
      do: fail!(:indexed, "indices must be integers, got #{inspect(indices.type)}", operands)

    {n, k} = indices.shape
    opts = Keyword.validate!(opts, axes: nil)
    axes = opts[:axes] || Enum.to_list(0..(k - 1)//1)
    axes = Enum.map(axes, &if(is_integer(&1) and &1 < 0, do: &1 + rank, else: &1))

    unless length(axes) == k and axes == Enum.sort(Enum.uniq(axes)) and
             Enum.all?(axes, &(&1 in 0..(rank - 1)//1)) do
      fail!(
        :indexed,
        "axes must be #{k} increasing axes of a rank-#{rank} tensor, got #{inspect(opts[:axes])}",
        operands
      )
    end

    rest = for d <- 0..(rank - 1)//1, d not in axes, do: elem(x.shape, d)
    upd = Tuple.to_list(updates.shape)

    unless length(upd) == length(rest) + 1 and hd(upd) == n and
             Enum.all?(Enum.zip(tl(upd), rest), fn {u, d} -> u <= d end) do
      fail!(
        :indexed,
        "updates of shape #{inspect(updates.shape)} do not fit indices #{inspect(indices.shape)} into #{inspect(x.shape)}",
        operands
      )
    end

    new(
      {:indexed, op, x, indices, updates, axes},
      Rules.merge_types(x.type, updates.type),
      x.shape
    )
  end

  @doc """
  Nx's `cumulative_sum/product/max/min`: the running `op` (`:sum`, `:product`,
  `:reduce_max`, `:reduce_min`) along `:axis` (default 0), from the end with
  `reverse: true`. The result keeps `x`'s type and shape.

      iex> Mure.Expr.Window.cumulative(:sum, Mure.Expr.parameter(0, {:u, 8}, {3})).type
      {:u, 8}

  """
  @spec cumulative(atom(), Mure.Expr.operand(), keyword()) :: Mure.Expr.t()
  def cumulative(op, x, opts \\ []) do
    check_op!(op, @reductions, "cumulative")
    x = operand!(x, nil, :cumulative) |> real!(:cumulative)
    opts = Keyword.validate!(opts, axis: 0, reverse: false)
    rank = tuple_size(x.shape)
    axis = opts[:axis]

    unless is_integer(axis) and axis >= -rank and axis < rank,
      do: fail!(:cumulative, "axis #{inspect(axis)} is not an axis of a rank-#{rank} tensor", [x])

    axis = if axis < 0, do: axis + rank, else: axis
    new({:cumulative, op, x, axis, opts[:reverse] == true}, x.type, x.shape)
  end

  # Nx's window rule: per axis (padded - dilated window) / stride + 1, the window fitting.
  defp pooled!(op, shape, dims, strides, padding, dilations) do
    rank = tuple_size(shape)
    dilations = dilations || List.duplicate(1, rank)

    unless Enum.all?([dims, strides, padding, dilations], &(is_list(&1) and length(&1) == rank)) do
      fail!(
        op,
        "a rank-#{rank} tensor needs #{rank} window dims, strides, {low, high} paddings and dilations",
        []
      )
    end

    [Tuple.to_list(shape), dims, strides, padding, dilations]
    |> Enum.zip()
    |> Enum.with_index()
    |> Enum.map(fn {{d, w, s, {lo, hi}, dil}, i} ->
      unless Enum.all?([w, s, dil], &(is_integer(&1) and &1 >= 1)) and lo >= 0 and hi >= 0,
        do:
          fail!(
            op,
            "dimension #{i}: window, stride and dilation must be >= 1 and padding >= 0",
            []
          )

      span = (w - 1) * dil + 1
      padded = d + lo + hi

      if span > padded,
        do:
          fail!(
            op,
            "the window of dimension #{i} spans #{span} elements, more than the #{padded} of the padded tensor",
            []
          )

      div(padded - span, s) + 1
    end)
    |> List.to_tuple()
  end

  # The node's window, scatter and scan kernels take real types (its complex ops are the
  # elementwise table's complex rows, dot and FFT).
  defp real!(%{type: {:c, _} = type}, name),
    do: raise(ArgumentError, "#{name} takes real tensors on the node, got #{inspect(type)}")

  defp real!(x, _name), do: x
end
