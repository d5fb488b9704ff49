defmodule Mure.Api.Ops do
  @moduledoc false
  # Mure's eager ops on resident tensors: BLIS matmul, the OpenCL add and multiply, and
  # the op set's elementwise ops, reductions, conversions, reshapes and slices.
  # `use Mure.Api.Ops` puts the documented functions into Mure, which delegate to the
  # implementations below. The op set's ops are Mure.Expr's, run eagerly (Mure.Eager).

  alias Mure.{Call, Eager, Expr, Tensor}

  @doc false
  defmacro __using__(_opts) do
    quote location: :keep do
      @doc """
      Multiplies matrices on the node's BLIS device: `a` of shape `{m, k}` times `b` of
      shape `{k, n}` gives a resident `{m, n}` tensor. Both must be `{:f, 32}` or both
      `{:f, 64}`, and belong to the same connection.

      ## Examples

          iex> {:ok, c} = Mure.matmul(a, b)
          iex> c
          #Mure.Tensor<f32[512][256]>
          iex> Mure.matmul(a, a)
          ** (ArgumentError) matmul: cannot multiply f32[512][128] by f32[512][128]: the first tensor's axis 1 (128) must equal the second tensor's axis 0 (512)

      """
      @spec matmul(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate matmul(a, b, opts \\ []), to: Mure.Api.Ops

      @doc """
      Adds two tensors elementwise: `binary(:add, a, b, opts)`, so any two types (the result
      type is Nx's) and shapes that broadcast as in Nx. The node puts it on the device its
      cost model picks, or on `device: :cpu | :opencl`.

      ## Examples

          iex> {:ok, c} = Mure.add(a, b)
          iex> {:ok, rows_plus_v} = Mure.add(m, v)   # {2, 3} + {3}: broadcast
          iex> Mure.add(m, Mure.upload!(conn, <<0::64>>, {:f, 64}, {2}))
          ** (ArgumentError) add: shapes {2, 3} and {2} cannot be broadcast together (dimension 1: 3 vs 2)

      """
      @spec add(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate add(a, b, opts \\ []), to: Mure.Api.Ops

      @doc """
      Multiplies two tensors elementwise: `binary(:multiply, a, b, opts)` (types and
      broadcasting as `add/3`).

      ## Examples

          iex> {:ok, c} = Mure.multiply(a, b)
          iex> Mure.download!(c)

      """
      @spec multiply(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate multiply(a, b, opts \\ []), to: Mure.Api.Ops

      ## The op set (CPU executor): the lists are Mure.Expr's, both from Mure.Rules

      @doc "The unary ops `unary/3` takes (Nx's names)."
      @spec unary_ops() :: [atom()]
      defdelegate unary_ops, to: Mure.Rules

      @doc "The binary ops `binary/4` takes (Nx's names)."
      @spec binary_ops() :: [atom()]
      defdelegate binary_ops, to: Mure.Rules

      @doc "The reductions `reduce/3` takes (Nx's names)."
      @spec reductions() :: [atom()]
      defdelegate reductions, to: Mure.Rules

      @doc """
      Applies an elementwise unary op (Nx's name, see `unary_ops/0`) on the node's CPU executor.

      The result type follows Nx: float functions (`:exp`, `:sin`, ...) turn integers into
      `{:f, 32}`; `:is_nan`, `:is_infinity` and `:logical_not` give `{:u, 8}`; the bitwise ops
      take integers only.

      ## Examples

          iex> {:ok, y} = Mure.unary(:exp, x)
          iex> Mure.unary(:population_count, x_f32)
          ** (ArgumentError) population_count: population_count takes integer tensors, got {:f, 32}

      """
      @spec unary(atom(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate unary(op, t, opts \\ []), to: Mure.Api.Ops

      @doc """
      Applies an elementwise binary op (Nx's name, see `binary_ops/0`) with Nx's broadcasting
      and type promotion on the node's CPU executor: `{:s, 32}` with `{:f, 32}` gives
      `{:f, 32}`; comparisons and logical ops give `{:u, 8}`; `:divide` always gives a float.
      Integer division by zero gives -1 (quotient) and the dividend (remainder), as XLA does.

      ## Examples

          iex> {:ok, c} = Mure.binary(:add, matrix, row)      # {2, 3} + {3}
          iex> c.shape
          {2, 3}
          iex> Mure.binary(:add, Mure.upload!(conn, <<0::64>>, {:s, 32}, {2}), row)
          ** (ArgumentError) add: shapes {2} and {3} cannot be broadcast together (dimension 0: 2 vs 3)

      """
      @spec binary(atom(), Tensor.t(), Tensor.t(), call_opts()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate binary(op, a, b, opts \\ []), to: Mure.Api.Ops

      @doc """
      Reduces a tensor (see `reductions/0`) over `axes:` (a list, negative counts from the
      end; default: all axes), keeping them as size 1 with `keep_axes: true`. Integer sums
      and products are 64-bit; `:argmax`/`:argmin` give `{:s, 64}` indices (first occurrence
      on ties, NaN counts as the largest) over one axis or all of them.

      ## Examples

          iex> {:ok, s} = Mure.reduce(:sum, t, axes: [0])
          iex> {:ok, i} = Mure.reduce(:argmax, t, axes: [1], keep_axes: true)

      """
      @spec reduce(atom(), Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate reduce(op, t, opts \\ []), to: Mure.Api.Ops

      @doc """
      Converts a tensor to another type, as `Nx.as_type/2`: floats to integers truncate and
      saturate (NaN becomes 0), integers wrap.

      ## Examples

          iex> {:ok, i} = Mure.as_type(t, {:s, 32})

      """
      @spec as_type(Tensor.t(), type(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate as_type(t, type, opts \\ []), to: Mure.Api.Ops

      @doc """
      Reinterprets a tensor's bytes as another type of the same width, as `Nx.bitcast/2`.

      ## Examples

          iex> {:ok, bits} = Mure.bitcast(t_f32, {:u, 32})

      """
      @spec bitcast(Tensor.t(), type(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate bitcast(t, type, opts \\ []), to: Mure.Api.Ops

      @doc """
      Gives a tensor a new shape with the same number of elements.

      ## Examples

          iex> {:ok, r} = Mure.reshape(t, {3, 2})

      """
      @spec reshape(Tensor.t(), shape(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate reshape(t, shape, opts \\ []), to: Mure.Api.Ops

      @doc """
      Permutes a tensor's axes (`axes:` a permutation; default: reversed), as
      `Nx.transpose/2`.

      ## Examples

          iex> {:ok, tt} = Mure.transpose(t)
          iex> {:ok, p} = Mure.transpose(t3, axes: [0, 2, 1])

      """
      @spec transpose(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate transpose(t, opts \\ []), to: Mure.Api.Ops

      @doc """
      Slices a tensor: per axis a start, a length and (optionally, `strides:`) a stride, as
      `Nx.slice/4`. The length is the span of the input the slice covers, `start` to
      `start + length - 1`, and the result keeps every stride-th element of it:
      `ceil(length / stride)` elements (a length of 0 gives an empty axis). The span must lie
      inside the tensor: a slice that runs past an edge raises `ArgumentError` before anything
      is sent (it is not clamped, where Nx would move the start back).

      ## Examples

          iex> {:ok, s} = Mure.slice(t, [0, 1], [2, 2])
          iex> Mure.slice!(t, [0, 0], [2, 3], strides: [1, 2]).shape
          {2, 2}
          iex> Mure.slice(t, [0, 2], [2, 2])
          ** (ArgumentError) slice: slice of dimension 1 (size 3) from 2 with length 2 runs past its end

      """
      @spec slice(Tensor.t(), [integer()], [integer()], keyword()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate slice(t, starts, lengths, opts \\ []), to: Mure.Api.Ops

      @doc """
      Gathers entries of `t` along `axis:` (default 0) at the integer `indices` tensor's
      values, as `Nx.take/3`. Every index is range-checked on the node before anything is
      written: one outside the axis is refused with `:out_of_range`.

      ## Examples

          iex> {:ok, rows} = Mure.take(t, Mure.upload!(conn, <<2::32-native, 0::32-native>>, {:s, 32}, {2}))

      """
      @spec take(Tensor.t(), Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
      defdelegate take(t, indices, opts \\ []), to: Mure.Api.Ops
    end
  end

  @typep result :: {:ok, Tensor.t()} | {:error, Exception.t()}

  @doc false
  @spec matmul(Tensor.t(), Tensor.t(), keyword()) :: result()
  def matmul(a, b, opts \\ []) do
    Call.check_tensors!([a, b], "matmul")

    case {a.shape, b.shape} do
      {{_m, k}, {k, _n}} ->
        :ok

      {{_m, k1}, {k2, _n}} ->
        raise ArgumentError,
              "matmul: cannot multiply #{Call.describe(a)} by #{Call.describe(b)}: the first " <>
                "tensor's axis 1 (#{k1}) must equal the second tensor's axis 0 (#{k2})"

      _ ->
        raise ArgumentError,
              "matmul: expected two rank-2 tensors {m, k} and {k, n}, " <>
                "got #{Call.describe(a)} and #{Call.describe(b)}"
    end

    Eager.op("matmul", [a, b], opts, fn [x, y] -> Expr.matmul(x, y) end)
  end

  @doc false
  @spec add(Tensor.t(), Tensor.t(), keyword()) :: result()
  def add(a, b, opts \\ []), do: binary(:add, a, b, opts)

  @doc false
  @spec multiply(Tensor.t(), Tensor.t(), keyword()) :: result()
  def multiply(a, b, opts \\ []), do: binary(:multiply, a, b, opts)

  @doc false
  @spec unary(atom(), Tensor.t(), keyword()) :: result()
  def unary(op, t, opts \\ [])

  def unary(op, %Tensor{} = t, opts) when is_atom(op),
    do: Eager.op("unary", [t], opts, fn [x] -> Expr.unary(op, x) end)

  def unary(%Tensor{} = t, op, _opts) when is_atom(op),
    do:
      raise(
        ArgumentError,
        "unary: the op comes first: Mure.unary(#{inspect(op)}, tensor), got the tensor #{inspect(t)} first"
      )

  def unary(op, t, _opts),
    do:
      raise(
        ArgumentError,
        "unary: expected an op name (atom) and a %Mure.Tensor{}, got: #{inspect(op)} and #{inspect(t, limit: 5)}"
      )

  @doc false
  @spec binary(atom(), Tensor.t(), Tensor.t(), keyword()) :: result()
  def binary(op, a, b, opts \\ []) do
    what = if is_atom(op), do: Atom.to_string(op), else: "binary"
    Eager.op(what, [a, b], opts, fn [x, y] -> Expr.binary(op, x, y) end)
  end

  @doc false
  @spec reduce(atom(), Tensor.t(), keyword()) :: result()
  def reduce(op, %Tensor{} = t, opts \\ []) do
    {ro, opts} = Keyword.split(opts, [:axes, :keep_axes])
    Eager.op("reduce", [t], opts, fn [x] -> Expr.reduce(op, x, ro) end)
  end

  @doc false
  @spec as_type(Tensor.t(), Mure.type(), keyword()) :: result()
  def as_type(%Tensor{} = t, type, opts \\ []),
    do: Eager.op("as_type", [t], opts, fn [x] -> Expr.as_type(x, type) end)

  @doc false
  @spec bitcast(Tensor.t(), Mure.type(), keyword()) :: result()
  def bitcast(%Tensor{} = t, type, opts \\ []),
    do: Eager.op("bitcast", [t], opts, fn [x] -> Expr.bitcast(x, type) end)

  @doc false
  @spec reshape(Tensor.t(), Mure.shape(), keyword()) :: result()
  def reshape(%Tensor{} = t, shape, opts \\ []),
    do: Eager.op("reshape", [t], opts, fn [x] -> Expr.reshape(x, shape) end)

  @doc false
  @spec transpose(Tensor.t(), keyword()) :: result()
  def transpose(%Tensor{} = t, opts \\ []) do
    {to, opts} = Keyword.split(opts, [:axes])
    Eager.op("transpose", [t], opts, fn [x] -> Expr.transpose(x, to) end)
  end

  @doc false
  @spec slice(Tensor.t(), [integer()], [integer()], keyword()) :: result()
  def slice(%Tensor{} = t, starts, lengths, opts \\ []) do
    {so, opts} = Keyword.split(opts, [:strides])
    Eager.op("slice", [t], opts, fn [x] -> Expr.slice(x, starts, lengths, so) end)
  end

  @doc false
  @spec take(Tensor.t(), Tensor.t(), keyword()) :: result()
  def take(t, indices, opts \\ []) do
    {to, opts} = Keyword.split(opts, [:axis])
    Eager.op("take", [t, indices], opts, fn [x, i] -> Expr.take(x, i, to) end)
  end
end
