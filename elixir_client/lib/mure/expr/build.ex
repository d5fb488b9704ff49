defmodule Mure.Expr.Build do
  @moduledoc false
  # What every Mure.Expr function builds on: the new expression (with the limit on
  # dimensions), operands (numbers become scalar constants typed after the other operand,
  # as Nx's weak types), and raising a rule's error as an ArgumentError naming the op.

  alias Mure.{Rules, Types}

  def new(node, type, shape) do
    if tuple_size(shape) > Types.max_dims() do
      raise ArgumentError,
            "#{elem(node, 0)}: the result would have #{tuple_size(shape)} dimensions; at most #{Types.max_dims()} are allowed"
    end

    %Mure.Expr{
      id: System.unique_integer([:positive, :monotonic]),
      type: type,
      shape: shape,
      node: node
    }
  end

  def ok!({:ok, value}, _op), do: value
  def ok!(:ok, _op), do: :ok
  def ok!({:error, message}, op), do: raise(ArgumentError, "#{op}: #{message}")

  def check_op!(op, known, family) do
    unless op in known do
      raise ArgumentError,
            "#{family}: unknown op #{inspect(op)}; expected one of #{Enum.map_join(known, ", ", &inspect/1)}"
    end
  end

  # Two operands: a number takes the other operand's type (Nx's weak number types).
  def operands!(%Mure.Expr{} = a, b, op), do: {a, operand!(b, a.type, op)}
  def operands!(a, %Mure.Expr{} = b, op), do: {operand!(a, b.type, op), b}
  def operands!(a, b, op), do: {operand!(a, nil, op), operand!(b, nil, op)}

  # An expression, or a number turned into a scalar constant (typed after `peer`).
  @spec operand!(term(), Mure.type() | nil, atom()) :: Mure.Expr.t()
  def operand!(%Mure.Expr{} = x, _peer, _op), do: x

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

  def default_type(n) when is_integer(n), do: {:s, 32}
  def default_type(_), do: {:f, 32}

  def check_scalar!(v, _what) when is_number(v) or v in [:infinity, :neg_infinity, :nan], do: :ok

  def check_scalar!(v, what),
    do: raise(ArgumentError, "#{what}: expected a number, got: #{inspect(v)}")

  def describe(%Mure.Expr{type: type, shape: shape}),
    do: Types.type_to_string(type) <> Types.shape_to_string(shape)
end
