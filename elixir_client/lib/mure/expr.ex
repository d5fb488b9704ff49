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
  binary ops (as `Mure.binary/4`, `Mure.add/3` and `Mure.multiply/3`).
  `operators/1` lets `+`, `*`, `<` ... stand for them (a macro: `require Mure.Expr` first).

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
  alias Mure.Expr.{Build, Create, Math, Operators, Shape}

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
    Build.new({:parameter, index, trace}, type, shape)
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
  defdelegate unary(op, x), to: Math

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
  defdelegate binary(op, a, b), to: Math

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
  defdelegate reduce(op, x, opts \\ []), to: Math

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
  defdelegate as_type(x, type), to: Math

  @doc """
  Reinterprets the bytes as `type` of the same width, as `Mure.bitcast/3`.

  ## Examples

      iex> Mure.Expr.bitcast(Mure.Expr.parameter(0, {:f, 32}, {2}), {:u, 32}).type
      {:u, 32}

  """
  @spec bitcast(operand(), Mure.type()) :: t()
  defdelegate bitcast(x, type), to: Math

  @doc """
  Gives a new shape with the same number of elements, as `Mure.reshape/3`.

  ## Examples

      iex> Mure.Expr.reshape(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), {3, 2}).shape
      {3, 2}

  """
  @spec reshape(operand(), Mure.shape()) :: t()
  defdelegate reshape(x, shape), to: Shape

  @doc """
  Permutes the axes (`axes:`, default reversed), as `Mure.transpose/2`.

  ## Examples

      iex> Mure.Expr.transpose(Mure.Expr.parameter(0, {:f, 32}, {2, 3})).shape
      {3, 2}

  """
  @spec transpose(operand(), keyword()) :: t()
  defdelegate transpose(x, opts \\ []), to: Shape

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
  defdelegate slice(x, starts, lengths, opts \\ []), to: Shape

  @doc """
  A slice whose `starts` are scalar integer expressions (or integers), computed by the
  program: the node reads them when it runs and clamps each, as `Nx.slice/4` does, to
  `0..dim - length`. `lengths` and `strides:` are as `slice/4`'s.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {6, 4})
      iex> i = Mure.Expr.parameter(1, {:s, 64}, {})
      iex> Mure.Expr.dynamic_slice(x, [i, 0], [2, 4]).shape
      {2, 4}
      iex> Mure.Expr.dynamic_slice(x, [Mure.Expr.parameter(1, {:f, 32}, {}), 0], [2, 4])
      ** (ArgumentError) dynamic_slice: start 0 must be an integer tensor, got f32

  """
  @spec dynamic_slice(operand(), [t() | integer()], [integer()], keyword()) :: t()
  defdelegate dynamic_slice(x, starts, lengths, opts \\ []), to: Shape

  @doc """
  Takes entries along `axis:` (default 0) at an integer `indices` expression, as
  `Mure.take/3`. Indices are range-checked by the node when the program runs.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {5, 3})
      iex> Mure.Expr.take(x, Mure.Expr.parameter(1, {:s, 32}, {2, 2})).shape
      {2, 2, 3}

  """
  @spec take(operand(), operand(), keyword()) :: t()
  defdelegate take(x, indices, opts \\ []), to: Shape

  @doc """
  Reads elements at full coordinates (`indices` of shape `{..., rank(x)}`), as
  `Mure.gather/3`.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {5, 3})
      iex> Mure.Expr.gather(x, Mure.Expr.parameter(1, {:s, 64}, {4, 2})).shape
      {4}

  """
  @spec gather(operand(), operand()) :: t()
  defdelegate gather(x, indices), to: Shape

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
  defdelegate broadcast(x, shape, opts \\ []), to: Shape

  @doc """
  Reverses along `axes:` (default: all), as `Mure.reverse/2`.

  ## Examples

      iex> Mure.Expr.reverse(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), axes: [1]).shape
      {2, 3}

  """
  @spec reverse(operand(), keyword()) :: t()
  defdelegate reverse(x, opts \\ []), to: Shape

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
  defdelegate pad(x, value, config), to: Shape

  @doc """
  Joins expressions along `axis:` (default 0), promoting their types, as
  `Mure.concatenate/2`.

  ## Examples

      iex> a = Mure.Expr.parameter(0, {:f, 32}, {2, 3})
      iex> Mure.Expr.concatenate([a, Mure.Expr.parameter(1, {:s, 32}, {2, 1})], axis: 1)
      #Mure.Expr<f32[2][4] concatenate>

  """
  @spec concatenate([operand()], keyword()) :: t()
  defdelegate concatenate(list, opts \\ []), to: Shape

  @doc """
  Stacks expressions of one shape along a new axis `axis:` (default 0), as `Mure.stack/2`.

  ## Examples

      iex> a = Mure.Expr.parameter(0, {:f, 32}, {3})
      iex> Mure.Expr.stack([a, a, a], axis: 1).shape
      {3, 3}

  """
  @spec stack([operand()], keyword()) :: t()
  defdelegate stack(list, opts \\ []), to: Shape

  @doc """
  Writes `update` into `x` at `starts` (it must fit), as `Mure.put_slice/4`.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:f, 32}, {4, 4})
      iex> Mure.Expr.put_slice(x, [1, 1], Mure.Expr.parameter(1, {:f, 32}, {2, 2})).shape
      {4, 4}

  """
  @spec put_slice(operand(), [integer()], operand()) :: t()
  defdelegate put_slice(x, starts, update), to: Shape

  @doc """
  `put_slice/3` with `starts` that are scalar integer expressions (or integers), clamped
  by the node when the program runs so that `update` fits, as `Nx.put_slice/3` does.

  ## Examples

      iex> x = Mure.Expr.parameter(0, {:s, 32}, {4, 4})
      iex> u = Mure.Expr.parameter(1, {:f, 32}, {1, 4})
      iex> y = Mure.Expr.dynamic_put_slice(x, [Mure.Expr.parameter(2, {:u, 8}, {}), 0], u)
      iex> {y.type, y.shape}
      {{:f, 32}, {4, 4}}

  """
  @spec dynamic_put_slice(operand(), [t() | integer()], operand()) :: t()
  defdelegate dynamic_put_slice(x, starts, update), to: Shape

  @doc """
  Sorts along `axis:` (default 0), `direction:` `:asc` or `:desc`, as `Mure.sort/2`.

  ## Examples

      iex> Mure.Expr.sort(Mure.Expr.parameter(0, {:f, 32}, {2, 3}), axis: 1).shape
      {2, 3}

  """
  @spec sort(operand(), keyword()) :: t()
  defdelegate sort(x, opts \\ []), to: Shape

  @doc """
  The `{:s, 64}` indices that sort along `axis:`, as `Mure.argsort/2`.

  ## Examples

      iex> Mure.Expr.argsort(Mure.Expr.parameter(0, {:f, 32}, {3})).type
      {:s, 64}

  """
  @spec argsort(operand(), keyword()) :: t()
  defdelegate argsort(x, opts \\ []), to: Shape

  @doc """
  Removes size-1 axes (`axes:`, default all of them), as `Mure.squeeze/2`.

  ## Examples

      iex> Mure.Expr.squeeze(Mure.Expr.parameter(0, {:f, 32}, {1, 3, 1})).shape
      {3}

  """
  @spec squeeze(operand(), keyword()) :: t()
  defdelegate squeeze(x, opts \\ []), to: Shape

  @doc """
  Adds a size-1 axis at `axis`, as `Mure.new_axis/3`.

  ## Examples

      iex> Mure.Expr.new_axis(Mure.Expr.parameter(0, {:f, 32}, {3}), 1).shape
      {3, 1}

  """
  @spec new_axis(operand(), integer()) :: t()
  defdelegate new_axis(x, axis), to: Shape

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
  defdelegate select(pred, on_true, on_false), to: Math

  @doc """
  Limits `x` to `[lo, hi]` (broadcast), as `Mure.clip/4`. The result type merges all three.

  ## Examples

      iex> Mure.Expr.clip(Mure.Expr.parameter(0, {:f, 32}, {4}), 0, 6).type
      {:f, 32}

  """
  @spec clip(operand(), operand(), operand()) :: t()
  defdelegate clip(x, lo, hi), to: Math

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
  defdelegate dot(a, b), to: Math

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
  defdelegate dot(a, ca, ba, b, cb, bb), to: Math

  @doc """
  The outer product, shape `a.shape ++ b.shape`, as `Mure.outer/3`.

  ## Examples

      iex> Mure.Expr.outer(Mure.Expr.parameter(0, {:f, 32}, {2}), Mure.Expr.parameter(1, {:f, 32}, {3})).shape
      {2, 3}

  """
  @spec outer(operand(), operand()) :: t()
  defdelegate outer(a, b), to: Math

  @doc """
  BLIS gemm of `{m, k}` by `{k, n}`, both `{:f, 32}` or both `{:f, 64}`, as `Mure.matmul/3`.

  ## Examples

      iex> a = Mure.Expr.parameter(0, {:f, 32}, {2, 3})
      iex> Mure.Expr.matmul(a, Mure.Expr.parameter(1, {:f, 32}, {3, 4})).shape
      {2, 4}

  """
  @spec matmul(operand(), operand()) :: t()
  defdelegate matmul(a, b), to: Math

  @doc """
  The discrete Fourier transform over the last axis, each row cut or zero-padded to `length`
  first (as `Nx.fft/2`; `ifft/2` is the inverse, scaled by 1/length). Complex result.

  ## Examples

      iex> Mure.Expr.fft(Mure.Expr.parameter(0, {:f, 32}, {2, 5}), 8).type
      {:c, 64}

  """
  @spec fft(operand(), pos_integer()) :: t()
  def fft(x, length), do: Math.fft(:fft, x, length)

  @doc "The inverse of `fft/2`, scaled by 1/length, as `Nx.ifft/2`."
  @spec ifft(operand(), pos_integer()) :: t()
  def ifft(x, length), do: Math.fft(:ifft, x, length)

  ## Creation

  @doc """
  A tensor of `shape` filled with `value`, as `Mure.full/4`. `type:` defaults to
  `{:s, 32}` for integers and `{:f, 32}` for floats.

  ## Examples

      iex> Mure.Expr.full(1.5, {2, 2})
      #Mure.Expr<f32[2][2] full>

  """
  @spec full(number() | :infinity | :neg_infinity | :nan, Mure.shape(), keyword()) :: t()
  defdelegate full(value, shape, opts \\ []), to: Create

  @doc """
  Counts along `axis:` (or over all elements, `axis: nil`, the default), as `Mure.iota/3`.
  `type:` defaults to `{:s, 32}`.

  ## Examples

      iex> Mure.Expr.iota({2, 3}, axis: 1, type: {:f, 32}).type
      {:f, 32}

  """
  @spec iota(Mure.shape(), keyword()) :: t()
  defdelegate iota(shape, opts \\ []), to: Create

  @doc """
  An identity matrix over the last two axes, as `Mure.eye/3`. `type:` defaults to
  `{:s, 32}`.

  ## Examples

      iex> Mure.Expr.eye({3, 3}, type: {:f, 32}).shape
      {3, 3}

  """
  @spec eye(Mure.shape(), keyword()) :: t()
  defdelegate eye(shape, opts \\ []), to: Create

  @doc """
  Uniform random floats in `[min, max)` from `seed:` (required), as `Mure.random_uniform/3`.

  ## Examples

      iex> Mure.Expr.random_uniform({4}, seed: 7).type
      {:f, 32}

  """
  @spec random_uniform(Mure.shape(), keyword()) :: t()
  defdelegate random_uniform(shape, opts), to: Create

  @doc """
  Normal random floats (`mean:`, `std:`) from `seed:` (required), as `Mure.random_normal/3`.

  ## Examples

      iex> Mure.Expr.random_normal({4}, seed: 7, std: 0.1).shape
      {4}

  """
  @spec random_normal(Mure.shape(), keyword()) :: t()
  defdelegate random_normal(shape, opts), to: Create

  ## Operators

  @doc """
  Rewrites Elixir's arithmetic and comparison operators in `ast` into `Mure.Expr` calls, so
  that a traced function can be written with them.

  `+ - * /` become `add/2`, `subtract/2`, `multiply/2`, `divide/2`; `== != < <= > >=`
  become `equal/2` ... `greater_equal/2`; unary `-` becomes `negate/1`. On two plain
  numbers (or anything that is not an expression) they stay Elixir's own, so shape
  arithmetic inside the function still works. Guards cannot call functions: do not wrap
  code whose guards use these operators.

  It is a macro: `require Mure.Expr` (or `import Mure.Expr, only: [operators: 1]`) where
  it is called, as the example's first line does; without it the compiler warns and the
  call raises `UndefinedFunctionError`.

  ## Examples

      iex> require Mure.Expr
      iex> f = Mure.Expr.operators(fn x, b -> -(x * 2 + b) / 4 end)
      iex> f.(Mure.Expr.parameter(0, {:f, 32}, {3}), Mure.Expr.parameter(1, {:f, 32}, {})).shape
      {3}
      iex> f.(4, 0)
      -2.0

  """
  @spec operators(Macro.t()) :: Macro.t()
  defmacro operators(ast), do: Operators.rewrite(ast)

  @doc false
  # An expression, or a number turned into a scalar constant (typed after `peer`).
  @spec operand!(term(), Mure.type() | nil, atom()) :: t()
  defdelegate operand!(x, peer, op), to: Build
end
