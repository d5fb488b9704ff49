defmodule Mure.Types do
  @moduledoc false
  # Eager, Nx-like checks of types and shapes. Everything here raises ArgumentError
  # with a message that names the argument and the problem.

  @max_dims 16

  @spec max_dims() :: pos_integer()
  def max_dims, do: @max_dims

  @spec valid_type?(term()) :: boolean()
  def valid_type?({:u, bits}) when bits in [8, 16, 32, 64], do: true
  def valid_type?({:s, bits}) when bits in [8, 16, 32, 64], do: true
  def valid_type?({:f, bits}) when bits in [16, 32, 64], do: true
  def valid_type?({:bf, 16}), do: true
  def valid_type?({:c, bits}) when bits in [64, 128], do: true
  def valid_type?(_), do: false

  @spec itemsize(Mure.type()) :: pos_integer()
  def itemsize({_, bits}), do: div(bits, 8)

  @spec size(Mure.shape()) :: non_neg_integer()
  def size(shape), do: shape |> Tuple.to_list() |> Enum.reduce(1, &(&1 * &2))

  @spec check_type!(term(), String.t()) :: Mure.type()
  def check_type!(type, what) do
    if valid_type?(type) do
      type
    else
      raise ArgumentError,
            "#{what}: expected a type {:u, 8|16|32|64}, {:s, 8|16|32|64}, {:f, 16|32|64}, " <>
              "{:bf, 16} or {:c, 64|128}, got: #{inspect(type)}"
    end
  end

  @spec check_shape!(term(), String.t()) :: Mure.shape()
  def check_shape!(shape, what) when is_tuple(shape) do
    dims = Tuple.to_list(shape)

    Enum.with_index(dims, fn dim, axis ->
      unless is_integer(dim) and dim >= 0 do
        raise ArgumentError,
              "#{what}: expected a shape of non-negative integers, " <>
                "got #{inspect(dim)} at axis #{axis} in #{inspect(shape)}"
      end
    end)

    if length(dims) > @max_dims do
      raise ArgumentError,
            "#{what}: a shape has at most #{@max_dims} dimensions, got #{length(dims)}"
    end

    shape
  end

  def check_shape!(shape, what) do
    raise ArgumentError,
          "#{what}: expected a shape tuple such as {2, 3} ({} for a scalar), got: #{inspect(shape)}"
  end

  @spec type_to_string(Mure.type()) :: String.t()
  def type_to_string({kind, bits}) when is_atom(kind) and is_integer(bits),
    do: Atom.to_string(kind) <> Integer.to_string(bits)

  def type_to_string(other), do: inspect(other)

  @spec shape_to_string(Mure.shape()) :: String.t()
  def shape_to_string(shape) when is_tuple(shape),
    do: shape |> Tuple.to_list() |> Enum.map_join(&"[#{&1}]")

  def shape_to_string(other), do: inspect(other)
end
