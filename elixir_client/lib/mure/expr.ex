defmodule Mure.Expr do
  @moduledoc """
  Symbolic tensors: the ops of the node's op set, recorded instead of run.

  A function given to `Mure.jit/2` is called with one `%Mure.Expr{}` per argument. Every
  function of this module takes expressions (and plain numbers, which become scalar
  constants) and returns a new expression: nothing is computed and nothing is sent. When
  the function returns, its result expressions and everything they depend on make one
  program that the node runs in one message (see `Mure.jit/2`).

  The names and argument conventions are those of `Mure`'s eager functions, without the
  connection and the call options:

  | eager | symbolic |
  |---|---|
  | `Mure.unary(:exp, t)` | `Mure.Expr.unary(:exp, x)` or `Mure.Expr.exp(x)` |
  | `Mure.binary(:add, a, b)` | `Mure.Expr.binary(:add, a, b)` or `Mure.Expr.add(a, b)` |
  | `Mure.reduce(:sum, t, axes: [1])` | `Mure.Expr.reduce(:sum, x, axes: [1])` or `Mure.Expr.sum(x, axes: [1])` |
  | `Mure.dot(a, b)`, `Mure.dot(a, ca, ba, b, cb, bb)` | `Mure.Expr.dot(a, b)`, `Mure.Expr.dot(a, ca, ba, b, cb, bb)` |
  | `Mure.full(conn, 1.0, {2, 2})` | `Mure.Expr.full(1.0, {2, 2})` |
  | `Mure.iota(conn, {3}, type: {:f, 32})` | `Mure.Expr.iota({3}, type: {:f, 32})` |

  Every unary op (`unary_ops/0`), binary op (`binary_ops/0`) and reduction (`reductions/0`)
  also has a function of its own name. `add/2` and `multiply/2` are the general, broadcasting
  binary ops of the CPU executor (as `Mure.binary/4`), not the OpenCL-only `Mure.add/3`.

  Types and shapes are checked as the expression is built, with the node's rules (Nx's type
  promotion and broadcasting): a mistake raises `ArgumentError` naming the op and the
  problem, before anything is sent.

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {2, 3})
      iex> y = x |> Mure.Expr.multiply(2) |> Mure.Expr.sum(axes: [1])
      iex> {y.type, y.shape}
      {{:f, 32}, {2}}
      iex> Mure.Expr.add(x, Mure.Expr.parameter(1, {:s, 32}, {3}))
      #Mure.Expr<f32[2][3] binary :add>
      iex> Mure.Expr.add(x, Mure.Expr.parameter(1, {:f, 32}, {2}))
      ** (ArgumentError) add: shapes {2, 3} and {2} cannot be broadcast together (dimension 1: 3 vs 2)

  ## Numbers

  A number where a tensor is expected becomes a scalar constant of the other operand's
  type when it fits, as in Nx: an integer takes the tensor's type (an integer that does not
  fit an integer type raises), a float takes a float tensor's type and makes an integer
  tensor's result `{:f, 32}`. Alone, integers are `{:s, 32}` and floats `{:f, 32}`.
  `:infinity`, `:neg_infinity` and `:nan` are float constants.

  ## Expressions

  `%Mure.Expr{}` has the public fields `type` and `shape`, so a traced function can branch
  on them (that is fixed per signature, since a function is traced once per argument types
  and shapes). The other fields are internal.
  """

  import Kernel, except: [abs: 1, ceil: 1, floor: 1, round: 1, max: 2, min: 2]

  alias Mure.{Rules, Types}

  @enforce_keys [:id, :type, :shape, :node]
  defstruct [:id, :type, :shape, :node]

  @typedoc """
  A symbolic tensor. `type` and `shape` are those of the value it stands for.
  """
  @type t :: %__MODULE__{
          id: pos_integer(),
          type: Mure.type(),
          shape: Mure.shape(),
          node: tuple()
        }

  @typedoc "An expression, or a number that becomes a scalar constant."
  @type operand :: t() | number() | :infinity | :neg_infinity | :nan

  @unary_ops Rules.unary_ops()
  @binary_ops Rules.binary_ops()
  @reductions Rules.reductions()

  @doc "The unary ops (Nx's names), as `Mure.unary_ops/0`."
  @spec unary_ops() :: [atom()]
  def unary_ops, do: @unary_ops

  @doc "The binary ops (Nx's names), as `Mure.binary_ops/0`."
  @spec binary_ops() :: [atom()]
  def binary_ops, do: @binary_ops

  @doc "The reductions (Nx's names), as `Mure.reductions/0`."
  @spec reductions() :: [atom()]
  def reductions, do: @reductions

  @doc """
  A symbolic argument: the `index`-th argument of a traced function, of `type` and `shape`.

  `Mure.jit/2` makes these; call it yourself to build and check expressions by hand.

  ## Examples

      iex> Mure.Expr.parameter(0, {:f, 32}, {2})
      #Mure.Expr<f32[2] parameter 0>

  """
  @spec parameter(non_neg_integer(), Mure.type(), Mure.shape(), reference() | nil) :: t()
  def parameter(index, type, shape, trace \\ nil) when is_integer(index) and index >= 0 do
    Types.check_type!(type, "parameter")
    Types.check_shape!(shape, "parameter")
    new({:parameter, index, trace}, type, shape)
  end

  ## Elementwise

  @doc """
  Applies a unary op (see `unary_ops/0`), as `Mure.unary/3`. Float functions turn integers
  into `{:f, 32}`; `:is_nan`, `:is_infinity` and `:logical_not` give `{:u, 8}`; the
  bitwise ops take integers only.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:s, 32}, {4})
      iex> Mure.Expr.unary(:exp, x).type
      {:f, 32}
      iex> Mure.Expr.unary(:population_count, Mure.Expr.parameter(0, {:f, 32}, {4}))
      ** (ArgumentError) population_count: population_count takes integer tensors, got {:f, 32}

  """
  @spec unary(atom(), operand()) :: t()
  def unary(op, x) do
    check_op!(op, @unary_ops, "unary")
    x = operand!(x, nil, op)
    type = ok!(Rules.unary_type(op, x.type), op)
    new({:unary, op, x}, type, x.shape)
  end

  @doc """
  Applies a binary op (see `binary_ops/0`) with Nx's broadcasting and type promotion, as
  `Mure.binary/4`. Comparisons and logical ops give `{:u, 8}`; `:divide` and `:atan2` give
  floats; the bitwise ops, shifts and `:quotient` take integers only.

  ## Examples

      iex> m = Mure.Expr.parameter(0, {:s, 32}, {2, 3})
      iex> Mure.Expr.binary(:add, m, Mure.Expr.parameter(1, {:f, 32}, {3}))
      #Mure.Expr<f32[2][3] binary :add>
      iex> Mure.Expr.binary(:less, m, 3).type
      {:u, 8}
      iex> Mure.Expr.binary(:bitwise_and, m, 1.5)
      ** (ArgumentError) bitwise_and: bitwise_and takes integer tensors, got {:s, 32} and {:f, 32}

  """
  @spec binary(atom(), operand(), operand()) :: t()
  def binary(op, a, b) do
    check_op!(op, @binary_ops, "binary")
    {a, b} = operands!(a, b, op)
    type = ok!(Rules.binary_type(op, a.type, b.type), op)
    shape = ok!(Rules.broadcast_shapes(a.shape, b.shape), op)
    new({:binary, op, a, b}, type, shape)
  end

  for op <- @unary_ops do
    @doc "`unary(#{inspect(op)}, x)`: see `unary/2`."
    @spec unquote(op)(operand()) :: t()
    def unquote(op)(x), do: unary(unquote(op), x)
  end

  for op <- @binary_ops do
    @doc "`binary(#{inspect(op)}, a, b)`: see `binary/3`."
    @spec unquote(op)(operand(), operand()) :: t()
    def unquote(op)(a, b), do: binary(unquote(op), a, b)
  end

  ## Reductions

  @doc """
  Reduces over `axes:` (a list, negative from the end; default: all axes), keeping them as
  size 1 with `keep_axes: true`, as `Mure.reduce/3`. Integer sums and products are 64-bit;
  `:argmax`/`:argmin` give `{:s, 64}` over one axis or all of them.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:s, 8}, {2, 3})
      iex> s = Mure.Expr.reduce(:sum, x, axes: [1], keep_axes: true)
      iex> {s.type, s.shape}
      {{:s, 64}, {2, 1}}
      iex> Mure.Expr.reduce(:sum, x, axes: [2])
      ** (ArgumentError) sum: reduction axis 2 is not an axis of a rank-2 tensor

  """
  @spec reduce(atom(), operand(), keyword()) :: t()
  def reduce(op, x, opts \\ []) do
    check_op!(op, @reductions, "reduce")
    x = operand!(x, nil, op)
    opts = Keyword.validate!(opts, axes: :all, keep_axes: false)
    axes = opts[:axes]

    unless axes == :all or (is_list(axes) and Enum.all?(axes, &is_integer/1)),
      do: raise(ArgumentError, "#{op}: :axes must be a list of integers, got: #{inspect(axes)}")

    unless is_boolean(opts[:keep_axes]),
      do: raise(ArgumentError, "#{op}: :keep_axes must be a boolean")

    {type, shape} = ok!(Rules.reduce(op, x.type, x.shape, axes, opts[:keep_axes]), op)
    new({:reduce, op, x, axes, opts[:keep_axes]}, type, shape)
  end

  for op <- @reductions do
    @doc "`reduce(#{inspect(op)}, x, opts)`: see `reduce/3`."
    @spec unquote(op)(operand(), keyword()) :: t()
    def unquote(op)(x, opts \\ []), do: reduce(unquote(op), x, opts)
  end

  ## Conversion and shape

  @doc """
  Converts to `type`, as `Mure.as_type/3`.

  ## Examples

      iex> Mure.Expr.as_type(Mure.Expr.parameter(0, {:f, 32}, {2}), {:s, 8}).type
      {:s, 8}

  """
  @spec as_type(operand(), Mure.type()) :: t()
  def as_type(x, type) do
    x = operand!(x, nil, :as_type)
    Types.check_type!(type, "as_type")
    new({:as_type, x, type}, type, x.shape)
  end

  @doc """
  Reinterprets the bytes as `type` of the same width, as `Mure.bitcast/3`.

  ## Examples

      iex> Mure.Expr.bitcast(Mure.Expr.parameter(0, {:f, 32}, {2}), {:u, 32}).type
      {:u, 32}

  """
  @spec bitcast(operand(), Mure.type()) :: t()
  def bitcast(x, type) do
    x = operand!(x, nil, :bitcast)
    Types.check_type!(type, "bitcast")

    unless elem(type, 1) == elem(x.type, 1),
      do:
        raise(
          ArgumentError,
          "bitcast: bitcast needs types of the same width, got #{inspect(x.type)} to #{inspect(type)}"
        )

    new({:bitcast, x, type}, type, x.shape)
  end

  @doc """
  Gives a new shape with the same number of elements, as `Mure.reshape/3`.

  ## Examples

      iex> Mure.Expr.reshape(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), {3, 2}).shape
      {3, 2}

  """
  @spec reshape(operand(), Mure.shape()) :: t()
  def reshape(x, shape) do
    x = operand!(x, nil, :reshape)
    Types.check_shape!(shape, "reshape")
    ok!(Rules.reshape(x.shape, shape), :reshape)
    new({:reshape, x, shape}, x.type, shape)
  end

  @doc """
  Permutes the axes (`axes:`, default reversed), as `Mure.transpose/2`.

  ## Examples

      iex> Mure.Expr.transpose(Mure.Expr.parameter(0, {:f, 32}, {2, 3})).shape
      {3, 2}

  """
  @spec transpose(operand(), keyword()) :: t()
  def transpose(x, opts \\ []) do
    x = operand!(x, nil, :transpose)
    rank = tuple_size(x.shape)
    opts = Keyword.validate!(opts, axes: Enum.to_list((rank - 1)..0//-1))
    shape = ok!(Rules.transpose(x.shape, opts[:axes]), :transpose)
    new({:transpose, x, List.to_tuple(opts[:axes])}, x.type, shape)
  end

  @doc """
  Slices: per axis a start, a length and (`strides:`) a stride, as `Mure.slice/4` and
  `Nx.slice/4`: the length is the span of the input, `start + length` must not pass the
  edge, and every stride-th element of the span is kept, `ceil(length / stride)` of them.
  A slice that runs past an edge raises (it is never clamped).

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {4, 4})
      iex> Mure.Expr.slice(x, [0, 1], [4, 2], strides: [2, 1]).shape
      {2, 2}
      iex> Mure.Expr.slice(x, [0, 0], [3, 4], strides: [2, 3]).shape
      {2, 2}
      iex> Mure.Expr.slice(x, [0, 3], [2, 2])
      ** (ArgumentError) slice: slice of dimension 1 (size 4) from 3 with length 2 runs past its end

  """
  @spec slice(operand(), [integer()], [integer()], keyword()) :: t()
  def slice(x, starts, lengths, opts \\ []) do
    x = operand!(x, nil, :slice)
    rank = tuple_size(x.shape)
    opts = Keyword.validate!(opts, strides: List.duplicate(1, rank))
    strides = opts[:strides]

    for {list, what} <- [{starts, "starts"}, {lengths, "lengths"}, {strides, "strides"}] do
      unless is_list(list) and Enum.all?(list, &is_integer/1),
        do:
          raise(ArgumentError, "slice: #{what} must be a list of integers, got: #{inspect(list)}")
    end

    shape = ok!(Rules.slice(x.shape, starts, lengths, strides), :slice)

    new(
      {:slice, x, List.to_tuple(starts), List.to_tuple(lengths), List.to_tuple(strides)},
      x.type,
      shape
    )
  end

  @doc """
  Takes entries along `axis:` (default 0) at an integer `indices` expression, as
  `Mure.take/3`. Indices are range-checked by the node when the program runs.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {5, 3})
      iex> Mure.Expr.take(x, Mure.Expr.parameter(1, {:s, 32}, {2, 2})).shape
      {2, 2, 3}

  """
  @spec take(operand(), operand(), keyword()) :: t()
  def take(x, indices, opts \\ []) do
    x = operand!(x, nil, :take)
    indices = operand!(indices, nil, :take)
    opts = Keyword.validate!(opts, axis: 0)
    shape = ok!(Rules.take(x.shape, indices.type, indices.shape, opts[:axis]), :take)
    new({:take, x, indices, opts[:axis]}, x.type, shape)
  end

  @doc """
  Reads elements at full coordinates (`indices` of shape `{..., rank(x)}`), as
  `Mure.gather/3`.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {5, 3})
      iex> Mure.Expr.gather(x, Mure.Expr.parameter(1, {:s, 64}, {4, 2})).shape
      {4}

  """
  @spec gather(operand(), operand()) :: t()
  def gather(x, indices) do
    x = operand!(x, nil, :gather)
    indices = operand!(indices, nil, :gather)
    shape = ok!(Rules.gather(x.shape, indices.type, indices.shape), :gather)
    new({:gather, x, indices}, x.type, shape)
  end

  @doc """
  Broadcasts to `shape`; `axes:` says where each axis goes (default: aligned to the
  right), as `Mure.broadcast/3`.

  ## Examples

      iex> Mure.Expr.broadcast(Mure.Expr.parameter(0, {:f, 32}, {3}), {4, 3}).shape
      {4, 3}
      iex> Mure.Expr.broadcast(Mure.Expr.parameter(0, {:f, 32}, {3}), {3, 4}, axes: [0]).shape
      {3, 4}

  """
  @spec broadcast(operand(), Mure.shape(), keyword()) :: t()
  def broadcast(x, shape, opts \\ []) do
    x = operand!(x, nil, :broadcast)
    Types.check_shape!(shape, "broadcast")
    rank = tuple_size(x.shape)
    out_rank = tuple_size(shape)

    if rank > out_rank and not Keyword.has_key?(opts, :axes) do
      raise ArgumentError,
            "broadcast: cannot broadcast #{inspect(x.shape)} to #{inspect(shape)}, which has fewer dimensions"
    end

    opts = Keyword.validate!(opts, axes: Enum.to_list((out_rank - rank)..(out_rank - 1)//1))
    axes = opts[:axes]

    unless is_list(axes) and Enum.all?(axes, &is_integer/1),
      do:
        raise(ArgumentError, "broadcast: :axes must be a list of integers, got: #{inspect(axes)}")

    ok!(Rules.broadcast_to(x.shape, shape, axes), :broadcast)
    new({:broadcast, x, shape, axes}, x.type, shape)
  end

  @doc """
  Reverses along `axes:` (default: all), as `Mure.reverse/2`.

  ## Examples

      iex> Mure.Expr.reverse(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), axes: [1]).shape
      {2, 3}

  """
  @spec reverse(operand(), keyword()) :: t()
  def reverse(x, opts \\ []) do
    x = operand!(x, nil, :reverse)
    opts = Keyword.validate!(opts, axes: Enum.to_list(0..(tuple_size(x.shape) - 1)//1))
    ok!(Rules.reverse(x.shape, opts[:axes]), :reverse)
    new({:reverse, x, opts[:axes]}, x.type, x.shape)
  end

  @doc """
  Pads with `value`: one `{low, high, interior}` per axis, negative `low`/`high` crop, as
  `Mure.pad/4`.

  ## Examples

      iex> Mure.Expr.pad(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), 0.0, [{1, 1, 0}, {0, 0, 1}]).shape
      {4, 5}

  """
  @spec pad(operand(), number() | :infinity | :neg_infinity | :nan, [
          {integer(), integer(), non_neg_integer()}
        ]) :: t()
  def pad(x, value, config) do
    x = operand!(x, nil, :pad)
    check_scalar!(value, "pad")

    unless is_list(config) and
             Enum.all?(
               config,
               &match?({lo, hi, i} when is_integer(lo) and is_integer(hi) and is_integer(i), &1)
             ) do
      raise ArgumentError,
            "pad: expected a list of {low, high, interior} tuples of integers, got: #{inspect(config)}"
    end

    shape = ok!(Rules.pad(x.shape, config), :pad)
    new({:pad, x, value, config}, x.type, shape)
  end

  @doc """
  Joins expressions along `axis:` (default 0), promoting their types, as
  `Mure.concatenate/2`.

  ## Examples

      iex> a = Mure.Expr.parameter(0, {:f, 32}, {2, 3})
      iex> Mure.Expr.concatenate([a, Mure.Expr.parameter(1, {:s, 32}, {2, 1})], axis: 1)
      #Mure.Expr<f32[2][4] concatenate>

  """
  @spec concatenate([operand()], keyword()) :: t()
  def concatenate(list, opts \\ []), do: join(:concatenate, list, opts)

  @doc """
  Stacks expressions of one shape along a new axis `axis:` (default 0), as `Mure.stack/2`.

  ## Examples

      iex> a = Mure.Expr.parameter(0, {:f, 32}, {3})
      iex> Mure.Expr.stack([a, a, a], axis: 1).shape
      {3, 3}

  """
  @spec stack([operand()], keyword()) :: t()
  def stack(list, opts \\ []), do: join(:stack, list, opts)

  defp join(op, list, opts) do
    unless is_list(list) and list != [],
      do: raise(ArgumentError, "#{op}: expected a non-empty list of expressions")

    opts = Keyword.validate!(opts, axis: 0)
    exprs = Enum.map(list, &operand!(&1, nil, op))

    shape = ok!(Rules.join(Enum.map(exprs, & &1.shape), opts[:axis], op == :stack), op)

    type = exprs |> Enum.map(& &1.type) |> Enum.reduce(&Rules.merge_types(&2, &1))
    new({op, exprs, opts[:axis]}, type, shape)
  end

  @doc """
  Writes `update` into `x` at `starts` (it must fit), as `Mure.put_slice/4`.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {4, 4})
      iex> Mure.Expr.put_slice(x, [1, 1], Mure.Expr.parameter(1, {:f, 32}, {2, 2})).shape
      {4, 4}

  """
  @spec put_slice(operand(), [integer()], operand()) :: t()
  def put_slice(x, starts, update) do
    x = operand!(x, nil, :put_slice)
    update = operand!(update, x.type, :put_slice)

    unless is_list(starts) and Enum.all?(starts, &is_integer/1),
      do: raise(ArgumentError, "put_slice: starts must be a list of integers")

    ok!(Rules.put_slice(x.shape, starts, update.shape), :put_slice)
    new({:put_slice, x, starts, update}, Rules.merge_types(x.type, update.type), x.shape)
  end

  @doc """
  Sorts along `axis:` (default 0), `direction:` `:asc` or `:desc`, as `Mure.sort/2`.

  ## Examples

      iex> Mure.Expr.sort(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), axis: 1).shape
      {2, 3}

  """
  @spec sort(operand(), keyword()) :: t()
  def sort(x, opts \\ []), do: sort_op(:sort, x, opts)

  @doc """
  The `{:s, 64}` indices that sort along `axis:`, as `Mure.argsort/2`.

  ## Examples

      iex> Mure.Expr.argsort(Mure.Expr.parameter(0, {:f, 32}, {3})).type
      {:s, 64}

  """
  @spec argsort(operand(), keyword()) :: t()
  def argsort(x, opts \\ []), do: sort_op(:argsort, x, opts)

  defp sort_op(op, x, opts) do
    x = operand!(x, nil, op)
    opts = Keyword.validate!(opts, axis: 0, direction: :asc)

    unless opts[:direction] in [:asc, :desc],
      do: raise(ArgumentError, "#{op}: :direction must be :asc or :desc")

    ok!(Rules.axis(opts[:axis], tuple_size(x.shape), "sort axis"), op)
    type = if op == :argsort, do: {:s, 64}, else: x.type
    new({op, x, opts[:axis], opts[:direction]}, type, x.shape)
  end

  @doc """
  Removes size-1 axes (`axes:`, default all of them), as `Mure.squeeze/2`.

  ## Examples

      iex> Mure.Expr.squeeze(Mure.Expr.parameter(0, {:f, 32}, {1, 3, 1})).shape
      {3}

  """
  @spec squeeze(operand(), keyword()) :: t()
  def squeeze(x, opts \\ []) do
    x = operand!(x, nil, :squeeze)
    dims = Tuple.to_list(x.shape)
    rank = length(dims)
    opts = Keyword.validate!(opts, axes: for({1, i} <- Enum.with_index(dims), do: i))
    axes = Enum.map(opts[:axes], fn a -> if a < 0, do: a + rank, else: a end)

    for a <- axes, a < 0 or a >= rank or elem(x.shape, a) != 1 do
      raise ArgumentError, "squeeze: axis #{a} of #{describe(x)} is not of size 1"
    end

    reshape(x, for({d, i} <- Enum.with_index(dims), i not in axes, do: d) |> List.to_tuple())
  end

  @doc """
  Adds a size-1 axis at `axis`, as `Mure.new_axis/3`.

  ## Examples

      iex> Mure.Expr.new_axis(Mure.Expr.parameter(0, {:f, 32}, {3}), 1).shape
      {3, 1}

  """
  @spec new_axis(operand(), integer()) :: t()
  def new_axis(x, axis) do
    x = operand!(x, nil, :new_axis)
    rank = tuple_size(x.shape)
    axis = if is_integer(axis) and axis < 0, do: axis + rank + 1, else: axis

    unless is_integer(axis) and axis in 0..rank,
      do: raise(ArgumentError, "new_axis: axis out of range for #{describe(x)}")

    reshape(x, Tuple.insert_at(x.shape, axis, 1))
  end

  ## Selection

  @doc """
  Picks `on_true` where `pred` is non-zero, `on_false` elsewhere, broadcasting all three,
  as `Mure.select/4`. The result type merges the two branches.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {2, 3})
      iex> relu = Mure.Expr.select(Mure.Expr.greater(x, 0), x, 0)
      iex> {relu.type, relu.shape}
      {{:f, 32}, {2, 3}}

  """
  @spec select(operand(), operand(), operand()) :: t()
  def select(pred, on_true, on_false) do
    pred = operand!(pred, nil, :select)
    {on_true, on_false} = operands!(on_true, on_false, :select)
    bc = ok!(Rules.broadcast_shapes(on_true.shape, on_false.shape), :select)
    shape = ok!(Rules.broadcast_shapes(pred.shape, bc), :select)

    new(
      {:select, pred, on_true, on_false},
      Rules.merge_types(on_true.type, on_false.type),
      shape
    )
  end

  @doc """
  Limits `x` to `[lo, hi]` (broadcast), as `Mure.clip/4`. The result type merges all three.

  ## Examples

      iex> Mure.Expr.clip(Mure.Expr.parameter(0, {:f, 32}, {4}), 0, 6).type
      {:f, 32}

  """
  @spec clip(operand(), operand(), operand()) :: t()
  def clip(x, lo, hi) do
    x = operand!(x, nil, :clip)
    lo = operand!(lo, x.type, :clip)
    hi = operand!(hi, x.type, :clip)
    bc = ok!(Rules.broadcast_shapes(lo.shape, hi.shape), :clip)
    shape = ok!(Rules.broadcast_shapes(x.shape, bc), :clip)
    type = Rules.merge_types(x.type, Rules.merge_types(lo.type, hi.type))
    new({:clip, x, lo, hi}, type, shape)
  end

  ## Linear algebra

  @doc """
  Contracts the last axis of `a` with the first of `b`, as `Mure.dot/2`; the result type
  merges both.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {8, 4})
      iex> Mure.Expr.dot(x, Mure.Expr.parameter(1, {:f, 32}, {4, 2})).shape
      {8, 2}
      iex> Mure.Expr.dot(x, Mure.Expr.parameter(1, {:f, 32}, {3, 2}))
      ** (ArgumentError) dot: contraction axis 1 of {8, 4} and axis 0 of {3, 2} differ

  """
  @spec dot(operand(), operand()) :: t()
  def dot(a, b) do
    {a, b} = operands!(a, b, :dot)
    ca = if tuple_size(a.shape) == 0, do: [], else: [tuple_size(a.shape) - 1]
    cb = if tuple_size(b.shape) == 0, do: [], else: [0]
    dot(a, ca, [], b, cb, [])
  end

  @doc """
  `dot` with contraction and batch axes, as `Mure.dot/7` (`Nx.dot/6`): the result has the
  batch axes, then `a`'s free axes, then `b`'s.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {5, 2, 3})
      iex> y = Mure.Expr.parameter(1, {:f, 32}, {5, 3, 4})
      iex> Mure.Expr.dot(x, [2], [0], y, [1], [0]).shape
      {5, 2, 4}

  """
  @spec dot(operand(), [integer()], [integer()], operand(), [integer()], [integer()]) :: t()
  def dot(a, ca, ba, b, cb, bb) do
    {a, b} = operands!(a, b, :dot)

    for list <- [ca, ba, cb, bb] do
      unless is_list(list) and Enum.all?(list, &is_integer/1),
        do: raise(ArgumentError, "dot: axes must be lists of integers, got: #{inspect(list)}")
    end

    shape = ok!(Rules.dot(a.shape, ca, ba, b.shape, cb, bb), :dot)
    new({:dot, a, ca, ba, b, cb, bb}, Rules.merge_types(a.type, b.type), shape)
  end

  @doc """
  The outer product, shape `a.shape ++ b.shape`, as `Mure.outer/3`.

  ## Examples

      iex> Mure.Expr.outer(Mure.Expr.parameter(0, {:f, 32}, {2}), Mure.Expr.parameter(1, {:f, 32}, {3})).shape
      {2, 3}

  """
  @spec outer(operand(), operand()) :: t()
  def outer(a, b) do
    {a, b} = operands!(a, b, :outer)
    shape = ok!(Rules.outer(a.shape, b.shape), :outer)
    new({:outer, a, b}, Rules.merge_types(a.type, b.type), shape)
  end

  @doc """
  BLIS gemm of `{m, k}` by `{k, n}`, both `{:f, 32}` or both `{:f, 64}`, as `Mure.matmul/3`.

  ## Examples

      iex> a = Mure.Expr.parameter(0, {:f, 32}, {2, 3})
      iex> Mure.Expr.matmul(a, Mure.Expr.parameter(1, {:f, 32}, {3, 4})).shape
      {2, 4}

  """
  @spec matmul(operand(), operand()) :: t()
  def matmul(a, b) do
    a = operand!(a, nil, :matmul)
    b = operand!(b, nil, :matmul)

    unless a.type == b.type and a.type in [{:f, 32}, {:f, 64}] do
      raise ArgumentError,
            "matmul: expected both tensors to be {:f, 32} or both {:f, 64}, " <>
              "got #{inspect(a.type)} and #{inspect(b.type)}"
    end

    case {a.shape, b.shape} do
      {{m, k}, {k, n}} ->
        new({:matmul, a, b}, a.type, {m, n})

      _ ->
        raise ArgumentError,
              "matmul: matmul of #{inspect(a.shape)} by #{inspect(b.shape)}: needs {m, k} and {k, n}"
    end
  end

  ## Creation

  @doc """
  A tensor of `shape` filled with `value`, as `Mure.full/4`. `type:` defaults to
  `{:s, 32}` for integers and `{:f, 32}` for floats.

  ## Examples

      iex> Mure.Expr.full(1.5, {2, 2})
      #Mure.Expr<f32[2][2] full>

  """
  @spec full(number() | :infinity | :neg_infinity | :nan, Mure.shape(), keyword()) :: t()
  def full(value, shape, opts \\ []) do
    check_scalar!(value, "full")
    opts = Keyword.validate!(opts, type: default_type(value))
    Types.check_type!(opts[:type], "full")
    Types.check_shape!(shape, "full")
    new({:full, opts[:type], shape, value}, opts[:type], shape)
  end

  @doc """
  Counts along `axis:` (or over all elements, `axis: nil`, the default), as `Mure.iota/3`.
  `type:` defaults to `{:s, 32}`.

  ## Examples

      iex> Mure.Expr.iota({2, 3}, axis: 1, type: {:f, 32}).type
      {:f, 32}

  """
  @spec iota(Mure.shape(), keyword()) :: t()
  def iota(shape, opts \\ []) do
    opts = Keyword.validate!(opts, type: {:s, 32}, axis: nil)
    Types.check_type!(opts[:type], "iota")
    Types.check_shape!(shape, "iota")

    unless is_nil(opts[:axis]),
      do: ok!(Rules.axis(opts[:axis], tuple_size(shape), "iota axis"), :iota)

    new({:iota, opts[:type], shape, opts[:axis]}, opts[:type], shape)
  end

  @doc """
  An identity matrix over the last two axes, as `Mure.eye/3`. `type:` defaults to
  `{:s, 32}`.

  ## Examples

      iex> Mure.Expr.eye({3, 3}, type: {:f, 32}).shape
      {3, 3}

  """
  @spec eye(Mure.shape(), keyword()) :: t()
  def eye(shape, opts \\ []) do
    opts = Keyword.validate!(opts, type: {:s, 32})
    Types.check_type!(opts[:type], "eye")
    Types.check_shape!(shape, "eye")

    if tuple_size(shape) < 2,
      do: raise(ArgumentError, "eye: eye needs a shape of rank 2 or more, got #{inspect(shape)}")

    new({:eye, opts[:type], shape}, opts[:type], shape)
  end

  @doc """
  Uniform random floats in `[min, max)` from `seed:` (required), as `Mure.random_uniform/3`.

  ## Examples

      iex> Mure.Expr.random_uniform({4}, seed: 7).type
      {:f, 32}

  """
  @spec random_uniform(Mure.shape(), keyword()) :: t()
  def random_uniform(shape, opts) do
    opts = Keyword.validate!(opts, [:seed, min: 0.0, max: 1.0, type: {:f, 32}])
    random(:random_uniform, shape, opts[:seed], opts[:min], opts[:max], opts[:type])
  end

  @doc """
  Normal random floats (`mean:`, `std:`) from `seed:` (required), as `Mure.random_normal/3`.

  ## Examples

      iex> Mure.Expr.random_normal({4}, seed: 7, std: 0.1).shape
      {4}

  """
  @spec random_normal(Mure.shape(), keyword()) :: t()
  def random_normal(shape, opts) do
    opts = Keyword.validate!(opts, [:seed, mean: 0.0, std: 1.0, type: {:f, 32}])
    random(:random_normal, shape, opts[:seed], opts[:mean], opts[:std], opts[:type])
  end

  defp random(op, shape, seed, p1, p2, type) do
    unless is_integer(seed) and seed >= 0,
      do: raise(ArgumentError, "#{op}: :seed must be a non-negative integer")

    Types.check_type!(type, Atom.to_string(op))
    Types.check_shape!(shape, Atom.to_string(op))

    unless Rules.float?(type),
      do: raise(ArgumentError, "#{op}: makes floats, got #{inspect(type)}")

    unless is_number(p1) and is_number(p2) and
             if(op == :random_uniform, do: p2 >= p1, else: p2 >= 0) do
      raise ArgumentError,
            if(op == :random_uniform,
              do: "random_uniform: needs finite numbers min <= max",
              else: "random_normal: needs a finite mean and std >= 0"
            )
    end

    new({op, type, shape, seed, p1, p2}, type, shape)
  end

  ## Operators

  @doc """
  Rewrites Elixir's arithmetic and comparison operators in `ast` into `Mure.Expr` calls, so
  that a traced function can be written with them.

  `+ - * /` become `add/2`, `subtract/2`, `multiply/2`, `divide/2`; `== != < <= > >=`
  become `equal/2` ... `greater_equal/2`; unary `-` becomes `negate/1`. On two plain
  numbers (or anything that is not an expression) they stay Elixir's own, so shape
  arithmetic inside the function still works. Guards cannot call functions: do not wrap
  code whose guards use these operators.

  ## Examples

      iex> require Mure.Expr
      iex> f = Mure.Expr.operators(fn x, b -> -(x * 2 + b) / 4 end)
      iex> f.(Mure.Expr.parameter(0, {:f, 32}, {3}), Mure.Expr.parameter(1, {:f, 32}, {})).shape
      {3}
      iex> f.(4, 0)
      -2.0

  """
  @spec operators(Macro.t()) :: Macro.t()
  defmacro operators(ast) do
    Macro.prewalk(ast, fn
      {op, meta, [a, b]} when op in [:+, :-, :*, :/, :==, :!=, :<, :<=, :>, :>=] ->
        {{:., meta, [Mure.Expr, :__operator__]}, meta, [op, a, b]}

      {:-, meta, [a]} ->
        {{:., meta, [Mure.Expr, :__operator__]}, meta, [:-, a]}

      other ->
        other
    end)
  end

  @operator_ops %{
    +: :add,
    -: :subtract,
    *: :multiply,
    /: :divide,
    ==: :equal,
    !=: :not_equal,
    <: :less,
    <=: :less_equal,
    >: :greater,
    >=: :greater_equal
  }

  @doc false
  @spec __operator__(atom(), term(), term()) :: term()
  def __operator__(op, %__MODULE__{} = a, b), do: binary(Map.fetch!(@operator_ops, op), a, b)
  def __operator__(op, a, %__MODULE__{} = b), do: binary(Map.fetch!(@operator_ops, op), a, b)
  def __operator__(op, a, b), do: apply(Kernel, op, [a, b])

  @doc false
  @spec __operator__(:-, term()) :: term()
  def __operator__(:-, %__MODULE__{} = a), do: negate(a)
  def __operator__(:-, a), do: Kernel.-(a)

  ## Internals

  defp new(node, type, shape) do
    if tuple_size(shape) > Types.max_dims() do
      raise ArgumentError,
            "#{elem(node, 0)}: the result would have #{tuple_size(shape)} dimensions; at most #{Types.max_dims()} are allowed"
    end

    %__MODULE__{
      id: System.unique_integer([:positive, :monotonic]),
      type: type,
      shape: shape,
      node: node
    }
  end

  defp ok!({:ok, value}, _op), do: value
  defp ok!(:ok, _op), do: :ok
  defp ok!({:error, message}, op), do: raise(ArgumentError, "#{op}: #{message}")

  defp check_op!(op, known, family) do
    unless op in known do
      raise ArgumentError,
            "#{family}: unknown op #{inspect(op)}; expected one of #{Enum.map_join(known, ", ", &inspect/1)}"
    end
  end

  # Two operands: a number takes the other operand's type (Nx's weak number types).
  defp operands!(%__MODULE__{} = a, b, op), do: {a, operand!(b, a.type, op)}
  defp operands!(a, %__MODULE__{} = b, op), do: {operand!(a, b.type, op), b}
  defp operands!(a, b, op), do: {operand!(a, nil, op), operand!(b, nil, op)}

  @doc false
  # An expression, or a number turned into a scalar constant (typed after `peer`).
  @spec operand!(term(), Mure.type() | nil, atom()) :: t()
  def operand!(%__MODULE__{} = x, _peer, _op), do: x

  def operand!(n, peer, op) when is_number(n) or n in [:infinity, :neg_infinity, :nan] do
    type = constant_type(n, peer, op)
    new({:full, type, {}, n}, type, {})
  end

  def operand!(%Mure.Tensor{} = t, _peer, op) do
    raise ArgumentError,
          "#{op}: got the resident tensor #{inspect(t)} inside a traced function; " <>
            "pass it to the jit'ed function as an argument instead"
  end

  def operand!(other, _peer, op) do
    raise ArgumentError,
          "#{op}: expected a Mure.Expr or a number, got: #{inspect(other, limit: 5)}"
  end

  defp constant_type(n, nil, _op), do: default_type(n)

  defp constant_type(n, peer, op) when is_integer(n) do
    if Rules.float?(peer) or fits?(n, peer) do
      peer
    else
      raise ArgumentError,
            "#{op}: the constant #{n} does not fit the other operand's type #{inspect(peer)}"
    end
  end

  defp constant_type(_n, peer, _op), do: Rules.to_floating(peer)

  defp fits?(n, {:u, bits}), do: n >= 0 and n < Bitwise.bsl(1, bits)

  defp fits?(n, {:s, bits}),
    do: n >= -Bitwise.bsl(1, bits - 1) and n < Bitwise.bsl(1, bits - 1)

  defp default_type(n) when is_integer(n), do: {:s, 32}
  defp default_type(_), do: {:f, 32}

  defp check_scalar!(v, _what) when is_number(v) or v in [:infinity, :neg_infinity, :nan], do: :ok

  defp check_scalar!(v, what),
    do: raise(ArgumentError, "#{what}: expected a number, got: #{inspect(v)}")

  defp describe(%__MODULE__{type: type, shape: shape}),
    do: Types.type_to_string(type) <> Types.shape_to_string(shape)

  defimpl Inspect do
    def inspect(%Mure.Expr{type: type, shape: shape, node: node}, _opts) do
      "#Mure.Expr<" <>
        Mure.Types.type_to_string(type) <>
        Mure.Types.shape_to_string(shape) <> " " <> describe_node(node) <> ">"
    end

    defp describe_node({:parameter, i, _}), do: "parameter #{i}"
    defp describe_node({kind, name, _}) when kind in [:unary], do: "unary #{inspect(name)}"
    defp describe_node({:binary, name, _, _}), do: "binary #{inspect(name)}"
    defp describe_node({:reduce, name, _, _, _}), do: "reduce #{inspect(name)}"
    defp describe_node(node), do: Atom.to_string(elem(node, 0))
  end
end
