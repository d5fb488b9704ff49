defmodule Mure.Expr.Build do
  @moduledoc false
  # What every Mure.Expr function builds on: the new expression (with the limit on
  # dimensions), operands (numbers become scalar constants typed after the other operand,
  # as Nx's weak types), and raising a rule's error as an ArgumentError naming the op and,
  # in a traced function, where its operands come from (fail!/3).

  alias Mure.{Rules, Types}

  def new(node, type, shape) do
    if tuple_size(shape) > Types.max_dims() do
      fail!(
        elem(node, 0),
        "the result would have #{tuple_size(shape)} dimensions; at most #{Types.max_dims()} are allowed",
        Mure.Program.operands(node)
      )
    end

    %Mure.Expr{
      id: System.unique_integer([:positive, :monotonic]),
      type: type,
      shape: shape,
      node: node
    }
  end

  def ok!(result, op, operands \\ [])
  def ok!({:ok, value}, _op, _operands), do: value
  def ok!(:ok, _op, _operands), do: :ok
  def ok!({:error, message}, op, operands), do: fail!(op, message, operands)

  # Raises `message` as `op`'s ArgumentError. When an operand comes from the arguments of a
  # traced function (Mure.jit/2), the message ends with where each operand comes from: the
  # argument's position (from 1), the op that made it, or the constant. Only this path
  # walks the expressions; hand-made ones (and eager calls) get the message alone.
  @spec fail!(atom() | String.t(), String.t(), [Mure.Expr.t()]) :: no_return()
  def fail!(op, message, operands) do
    raise ArgumentError, "#{op}: #{message}" <> origins(operands)
  end

  defp origins(operands) do
    exprs = for %Mure.Expr{} = e <- operands, do: e

    cond do
      not traced?(exprs, MapSet.new()) -> ""
      match?([_], exprs) -> " (operand: #{origin(hd(exprs))})"
      true -> " (operands: #{Enum.map_join(exprs, ", ", &origin/1)})"
    end
  end

  defp origin(%Mure.Expr{node: node, type: type, shape: shape}) do
    typed = "#{inspect(shape)} of type #{inspect(type)}"

    case node do
      {:parameter, i, nil} -> "parameter #{i} #{typed}"
      {:parameter, i, _trace} -> "argument #{i + 1} #{typed}"
      {:full, _, {}, value} -> "the constant #{inspect(value)} of type #{inspect(type)}"
      {kind, name, _} when kind == :unary -> "the result of #{name} #{typed}"
      {:binary, name, _, _} -> "the result of #{name} #{typed}"
      {:reduce, name, _, _, _} -> "the result of #{name} #{typed}"
      _ -> "the result of #{elem(node, 0)} #{typed}"
    end
  end

  # Whether an expression depends on a parameter of a trace (iterative: programs may be deep).
  defp traced?([], _seen), do: false
  defp traced?([%Mure.Expr{node: {:parameter, _, trace}} | _], _seen) when trace != nil, do: true

  defp traced?([%Mure.Expr{id: id, node: node} | rest], seen) do
    if MapSet.member?(seen, id),
      do: traced?(rest, seen),
      else: traced?(Mure.Program.operands(node) ++ rest, MapSet.put(seen, id))
  end

  def check_op!(op, known, family) do
    unless op in known do
      raise ArgumentError,
            "#{family}: unknown op #{inspect(op)}; expected one of #{Enum.map_join(known, ", ", &inspect/1)}"
    end
  end

  # Two operands: a number takes the other operand's type (Nx's weak number types).
  def operands!(%Mure.Expr{} = a, b, op), do: {a, operand!(b, a, op)}
  def operands!(a, %Mure.Expr{} = b, op), do: {operand!(a, b, op), b}
  def operands!(a, b, op), do: {operand!(a, nil, op), operand!(b, nil, op)}

  # An expression, or a number turned into a scalar constant (typed after `peer`: a type,
  # or the other operand, which a constant that does not fit it names).
  @spec operand!(term(), Mure.type() | Mure.Expr.t() | nil, atom()) :: Mure.Expr.t()
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

  defp constant_type(n, %Mure.Expr{type: type} = other, op),
    do: constant_type(n, type, op, [other])

  defp constant_type(n, type, op), do: constant_type(n, type, op, [])

  defp constant_type(n, peer, op, others) when is_integer(n) do
    if Rules.float?(peer) or Rules.complex?(peer) or fits?(n, peer) do
      peer
    else
      fail!(
        op,
        "the constant #{n} does not fit the other operand's type #{inspect(peer)}",
        others
      )
    end
  end

  defp constant_type(_n, peer, _op, _others), do: Rules.to_floating(peer)

  defp fits?(n, {:u, bits}), do: n >= 0 and n < Bitwise.bsl(1, bits)

  defp fits?(n, {:s, bits}),
    do: n >= -Bitwise.bsl(1, bits - 1) and n < Bitwise.bsl(1, bits - 1)

  def default_type(n) when is_integer(n), do: {:s, 32}
  def default_type(%Complex{}), do: {:c, 64}
  def default_type({_re, _im}), do: {:c, 64}
  def default_type(_), do: {:f, 32}

  def check_scalar!(v, _what) when is_number(v) or v in [:infinity, :neg_infinity, :nan], do: :ok
  def check_scalar!({re, im}, what), do: check_scalar!(re, what) && check_scalar!(im, what)

  def check_scalar!(v, what),
    do: raise(ArgumentError, "#{what}: expected a number, got: #{inspect(v)}")

  # A scalar as the node takes it: a number, or {re, im} for a complex one (a Complex struct
  # becomes that pair; its parts may be :infinity, :neg_infinity or :nan).
  def scalar_term(%Complex{re: re, im: im}), do: {re, im}
  def scalar_term(v), do: v

  def describe(%Mure.Expr{type: type, shape: shape}),
    do: Types.type_to_string(type) <> Types.shape_to_string(shape)
end
