defmodule Mure.Api.Shapes do
  @moduledoc false
  # Mure's eager ops that create tensors, select, change shapes and contract (dot, outer).
  # `use Mure.Api.Shapes` puts the documented functions into Mure, which delegate to the
  # implementations below: each is Mure.Expr's op of the same name, run eagerly
  # (Mure.Eager).

  alias Mure.{Eager, Expr, Tensor}

  @doc false
  defmacro __using__(_opts) do
    quote location: :keep do
      ## Creation

      @doc """
      Creates a tensor of `shape` counting along `axis:` (or over all elements when `axis: nil`,
      the default), as `Nx.iota/2`. `type:` defaults to `{:s, 32}`.

      ## Examples

          iex> t = Mure.iota!(conn, {2, 3}, axis: 1)
          iex> Mure.download!(t)
          <<0::32-native, 1::32-native, 2::32-native, 0::32-native, 1::32-native, 2::32-native>>

      """
      @spec iota(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate iota(conn, shape, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Creates an identity matrix (ones on the diagonal of the last two axes), as `Nx.eye/2`.
      `type:` defaults to `{:s, 32}`.

      ## Examples

          iex> {:ok, i} = Mure.eye(conn, {3, 3}, type: {:f, 32})

      """
      @spec eye(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate eye(conn, shape, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Creates a tensor of `shape` filled with `value` (a number, or `:infinity`,
      `:neg_infinity`, `:nan`), as `Nx.broadcast/2` of a scalar. `type:` defaults to
      `{:f, 32}` for floats and `{:s, 32}` for integers.

      ## Examples

          iex> {:ok, zeros} = Mure.full(conn, 0.0, {1024, 1024})

      """
      @spec full(conn(), number() | :infinity | :neg_infinity | :nan, shape(), keyword()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate full(conn, value, shape, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Creates uniformly distributed random floats in `[min, max)` (`min:` 0.0, `max:` 1.0,
      `type:` `{:f, 32}`). Element i depends only on `seed:` (required) and i: the same seed
      gives the same numbers, on every executor.

      ## Examples

          iex> {:ok, r} = Mure.random_uniform(conn, {1000}, seed: 42, min: -1.0, max: 1.0)

      """
      @spec random_uniform(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate random_uniform(conn, shape, opts), to: Mure.Api.Shapes

      @doc """
      Creates normally distributed random floats (`mean:` 0.0, `std:` 1.0, `type:` `{:f, 32}`)
      from `seed:` (required), by Box-Muller over the same counter-based generator as
      `random_uniform/3`.

      ## Examples

          iex> {:ok, w} = Mure.random_normal(conn, {784, 128}, seed: 1, std: 0.05)

      """
      @spec random_normal(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate random_normal(conn, shape, opts), to: Mure.Api.Shapes

      ## Selection and shapes

      @doc """
      Picks `on_true` where `pred` is non-zero and `on_false` elsewhere, broadcasting all
      three, as `Nx.select/3`.

      ## Examples

          iex> {:ok, relu} = Mure.select(Mure.binary!(:greater, x, zero), x, zero)

      """
      @spec select(Tensor.t(), Tensor.t(), Tensor.t(), call_opts()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate select(pred, on_true, on_false, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Limits `t` to `[min, max]` (tensors, broadcast), as `Nx.clip/3`.

      ## Examples

          iex> {:ok, c} = Mure.clip(t, lo, hi)

      """
      @spec clip(Tensor.t(), Tensor.t(), Tensor.t(), call_opts()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate clip(t, min, max, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Broadcasts `t` to `shape`; `axes:` says where each of `t`'s axes goes (default: aligned
      to the right), as `Nx.broadcast/3`.

      ## Examples

          iex> {:ok, m} = Mure.broadcast(row, {4, 3})
          iex> {:ok, m} = Mure.broadcast(col, {3, 4}, axes: [0])

      """
      @spec broadcast(Tensor.t(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate broadcast(t, shape, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Reverses `t` along `axes:` (default: all), as `Nx.reverse/2`.

      ## Examples

          iex> {:ok, r} = Mure.reverse(t, axes: [0])

      """
      @spec reverse(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate reverse(t, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Pads `t` with `value`: `config` has one `{low, high, interior}` per axis; negative
      `low`/`high` crop, as `Nx.pad/3`.

      ## Examples

          iex> {:ok, p} = Mure.pad(t, 0.0, [{1, 1, 0}, {0, 0, 1}])

      """
      @spec pad(Tensor.t(), number(), [{integer(), integer(), non_neg_integer()}], call_opts()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate pad(t, value, config, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Joins tensors along `axis:` (default 0), promoting their types, as `Nx.concatenate/2`.

      ## Examples

          iex> {:ok, ab} = Mure.concatenate([a, b], axis: 1)

      """
      @spec concatenate([Tensor.t()], keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate concatenate(tensors, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Stacks tensors of one shape along a new axis `axis:` (default 0), as `Nx.stack/2`.

      ## Examples

          iex> {:ok, s} = Mure.stack([a, b, c])

      """
      @spec stack([Tensor.t()], keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate stack(tensors, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Writes `update` into `t` at `starts` (the update must fit: no clamping), as
      `Nx.put_slice/3`.

      ## Examples

          iex> {:ok, t2} = Mure.put_slice(t, [0, 1], patch)

      """
      @spec put_slice(Tensor.t(), [integer()], Tensor.t(), call_opts()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate put_slice(t, starts, update, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Reads the elements of `t` at full coordinates: `indices` has shape `{..., rank(t)}`, as
      `Nx.gather/2`. Every coordinate is range-checked first.

      ## Examples

          iex> {:ok, g} = Mure.gather(t, coords)

      """
      @spec gather(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate gather(t, indices, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Sorts along `axis:` (default 0), `direction:` `:asc` (default) or `:desc`; stable, NaN
      sorts as the largest value, as `Nx.sort/2`.

      ## Examples

          iex> {:ok, s} = Mure.sort(t, axis: 1, direction: :desc)

      """
      @spec sort(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate sort(t, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Like `sort/2`, but gives the `{:s, 64}` indices that sort `t`, as `Nx.argsort/2`.

      ## Examples

          iex> {:ok, order} = Mure.argsort(t)

      """
      @spec argsort(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate argsort(t, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Removes size-1 axes (`axes:` default: all of them), as `Nx.squeeze/2`.

      ## Examples

          iex> {:ok, v} = Mure.squeeze(t)   # {1, 3, 1} -> {3}

      """
      @spec squeeze(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate squeeze(t, opts \\ []), to: Mure.Api.Shapes

      @doc """
      Adds a size-1 axis at `axis`, as `Nx.new_axis/2`.

      ## Examples

          iex> {:ok, col} = Mure.new_axis(v, 1)   # {3} -> {3, 1}

      """
      @spec new_axis(Tensor.t(), integer(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate new_axis(t, axis, opts \\ []), to: Mure.Api.Shapes

      ## Linear algebra

      @doc """
      `dot/2` contracts the last axis of `a` with the first of `b` (a matrix product for
      matrices, an inner product for vectors); `dot/6` takes contraction and batch axes as
      `Nx.dot/6`. `{:f, 32}` and `{:f, 64}` go through BLIS gemm one batch at a time; other
      types are computed with plain loops (integers wrap).

      ## Examples

          iex> {:ok, c} = Mure.dot(a, b)
          iex> {:ok, bmm} = Mure.dot(x, [2], [0], y, [1], [0])   # batched matmul

      """
      @spec dot(Tensor.t(), Tensor.t()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate dot(a, b), to: Mure.Api.Shapes

      @doc """
      The general contraction, with `Nx.dot/6`'s arguments: the axes of `a` in `contract_a`
      are contracted with those of `b` in `contract_b` (pairwise, same sizes), and the axes in
      `batch_a`/`batch_b` are batch axes (pairwise, same sizes, listed in the same order).

      The result's shape is the batch axes, then `a`'s remaining axes, then `b`'s, in their
      order. Negative axes count from the end. Both tensors must have the same type; the
      options are the call options (`:timeout`, `:device`). Shape, axis and type mistakes
      raise `ArgumentError` before anything is sent.

      ## Examples

          # a {2, 3, 4} batch of 3x4 matrices times a {2, 4, 5} batch of 4x5: {2, 3, 5}
          iex> {:ok, bmm} = Mure.dot(x, [2], [0], y, [1], [0])
          iex> bmm.shape
          {2, 3, 5}

          # a contraction over two axes at once: {3, 4} with {4, 3} on both axes -> {}
          iex> {:ok, s} = Mure.dot(m, [0, 1], [], n, [1, 0], [], device: :cpu)
          iex> s.shape
          {}

      """
      @spec dot(
              Tensor.t(),
              [integer()],
              [integer()],
              Tensor.t(),
              [integer()],
              [integer()],
              call_opts()
            ) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate dot(a, contract_a, batch_a, b, contract_b, batch_b, opts \\ []),
        to: Mure.Api.Shapes

      @doc """
      The outer product: every element of `a` times every element of `b`, shape
      `a.shape ++ b.shape`.

      ## Examples

          iex> {:ok, o} = Mure.outer(u, v)

      """
      @spec outer(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate outer(a, b, opts \\ []), to: Mure.Api.Shapes
    end
  end

  @typep result :: {:ok, Tensor.t()} | {:error, Exception.t()}

  ## Creation

  @doc false
  @spec iota(GenServer.server(), Mure.shape(), keyword()) :: result()
  def iota(conn, shape, opts \\ []) do
    {co, opts} = Keyword.split(opts, [:type, :axis])
    Eager.create(conn, opts, Expr.iota(shape, co))
  end

  @doc false
  @spec eye(GenServer.server(), Mure.shape(), keyword()) :: result()
  def eye(conn, shape, opts \\ []) do
    {co, opts} = Keyword.split(opts, [:type])
    Eager.create(conn, opts, Expr.eye(shape, co))
  end

  @doc false
  @spec full(GenServer.server(), term(), Mure.shape(), keyword()) :: result()
  def full(conn, value, shape, opts \\ []) do
    {co, opts} = Keyword.split(opts, [:type])
    Eager.create(conn, opts, Expr.full(value, shape, co))
  end

  @doc false
  @spec random_uniform(GenServer.server(), Mure.shape(), keyword()) :: result()
  def random_uniform(conn, shape, opts) do
    {co, opts} = Keyword.split(opts, [:seed, :min, :max, :type])
    Eager.create(conn, opts, Expr.random_uniform(shape, co))
  end

  @doc false
  @spec random_normal(GenServer.server(), Mure.shape(), keyword()) :: result()
  def random_normal(conn, shape, opts) do
    {co, opts} = Keyword.split(opts, [:seed, :mean, :std, :type])
    Eager.create(conn, opts, Expr.random_normal(shape, co))
  end

  ## Selection and shapes

  @doc false
  @spec select(Tensor.t(), Tensor.t(), Tensor.t(), keyword()) :: result()
  def select(pred, on_true, on_false, opts \\ []),
    do:
      Eager.op("select", [pred, on_true, on_false], opts, fn [p, t, f] -> Expr.select(p, t, f) end)

  @doc false
  @spec clip(Tensor.t(), Tensor.t(), Tensor.t(), keyword()) :: result()
  def clip(t, min, max, opts \\ []),
    do: Eager.op("clip", [t, min, max], opts, fn [x, lo, hi] -> Expr.clip(x, lo, hi) end)

  @doc false
  @spec broadcast(Tensor.t(), Mure.shape(), keyword()) :: result()
  def broadcast(%Tensor{} = t, shape, opts \\ []) do
    {bo, opts} = Keyword.split(opts, [:axes])
    Eager.op("broadcast", [t], opts, fn [x] -> Expr.broadcast(x, shape, bo) end)
  end

  @doc false
  @spec reverse(Tensor.t(), keyword()) :: result()
  def reverse(%Tensor{} = t, opts \\ []) do
    {ro, opts} = Keyword.split(opts, [:axes])
    Eager.op("reverse", [t], opts, fn [x] -> Expr.reverse(x, ro) end)
  end

  @doc false
  @spec pad(Tensor.t(), term(), list(), keyword()) :: result()
  def pad(%Tensor{} = t, value, config, opts \\ []),
    do: Eager.op("pad", [t], opts, fn [x] -> Expr.pad(x, value, config) end)

  @doc false
  @spec concatenate([Tensor.t()], keyword()) :: result()
  def concatenate(tensors, opts \\ []), do: join(:concatenate, tensors, opts)

  @doc false
  @spec stack([Tensor.t()], keyword()) :: result()
  def stack(tensors, opts \\ []), do: join(:stack, tensors, opts)

  defp join(op, tensors, opts) do
    unless is_list(tensors) and tensors != [],
      do: raise(ArgumentError, "#{op}: expected a non-empty list of tensors")

    {jo, opts} = Keyword.split(opts, [:axis])
    build = if op == :stack, do: &Expr.stack(&1, jo), else: &Expr.concatenate(&1, jo)
    Eager.op(Atom.to_string(op), tensors, opts, build)
  end

  @doc false
  @spec put_slice(Tensor.t(), [integer()], Tensor.t(), keyword()) :: result()
  def put_slice(t, starts, update, opts \\ []),
    do: Eager.op("put_slice", [t, update], opts, fn [x, u] -> Expr.put_slice(x, starts, u) end)

  @doc false
  @spec gather(Tensor.t(), Tensor.t(), keyword()) :: result()
  def gather(t, indices, opts \\ []),
    do: Eager.op("gather", [t, indices], opts, fn [x, i] -> Expr.gather(x, i) end)

  @doc false
  @spec sort(Tensor.t(), keyword()) :: result()
  def sort(t, opts \\ []), do: sort_op(:sort, t, opts)

  @doc false
  @spec argsort(Tensor.t(), keyword()) :: result()
  def argsort(t, opts \\ []), do: sort_op(:argsort, t, opts)

  defp sort_op(op, %Tensor{} = t, opts) do
    {so, opts} = Keyword.split(opts, [:axis, :direction])
    build = if op == :argsort, do: &Expr.argsort(&1, so), else: &Expr.sort(&1, so)
    Eager.op(Atom.to_string(op), [t], opts, fn [x] -> build.(x) end)
  end

  @doc false
  @spec squeeze(Tensor.t(), keyword()) :: result()
  def squeeze(%Tensor{} = t, opts \\ []) do
    {so, opts} = Keyword.split(opts, [:axes])
    Eager.op("squeeze", [t], opts, fn [x] -> Expr.squeeze(x, so) end)
  end

  @doc false
  @spec new_axis(Tensor.t(), integer(), keyword()) :: result()
  def new_axis(%Tensor{} = t, axis, opts \\ []),
    do: Eager.op("new_axis", [t], opts, fn [x] -> Expr.new_axis(x, axis) end)

  ## Linear algebra

  @doc false
  @spec dot(Tensor.t(), Tensor.t()) :: result()
  def dot(a, b), do: Eager.op("dot", [a, b], [], fn [x, y] -> Expr.dot(x, y) end)

  @doc false
  @spec dot(Tensor.t(), [integer()], [integer()], Tensor.t(), [integer()], [integer()], keyword()) ::
          result()
  def dot(a, contract_a, batch_a, b, contract_b, batch_b, opts \\ []) do
    Eager.op("dot", [a, b], opts, fn [x, y] ->
      Expr.dot(x, contract_a, batch_a, y, contract_b, batch_b)
    end)
  end

  @doc false
  @spec outer(Tensor.t(), Tensor.t(), keyword()) :: result()
  def outer(a, b, opts \\ []),
    do: Eager.op("outer", [a, b], opts, fn [x, y] -> Expr.outer(x, y) end)
end
