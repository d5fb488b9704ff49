defmodule Mure.Expr.Operators do
  @moduledoc false
  # Mure.Expr.operators/1: Elixir's arithmetic and comparison operators rewritten into calls
  # of operator/3 and operator/2, which build Mure.Expr ops when an operand is an expression
  # and are Kernel's own operators otherwise.

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

  @spec rewrite(Macro.t()) :: Macro.t()
  def rewrite(ast) do
    Macro.prewalk(ast, fn
      {op, meta, [a, b]} when op in [:+, :-, :*, :/, :==, :!=, :<, :<=, :>, :>=] ->
        {{:., meta, [__MODULE__, :operator]}, meta, [op, a, b]}

      {:-, meta, [a]} ->
        {{:., meta, [__MODULE__, :operator]}, meta, [:-, a]}

      other ->
        other
    end)
  end

  @spec operator(atom(), term(), term()) :: term()
  def operator(op, %Mure.Expr{} = a, b),
    do: Mure.Expr.binary(Map.fetch!(@operator_ops, op), a, b)

  def operator(op, a, %Mure.Expr{} = b),
    do: Mure.Expr.binary(Map.fetch!(@operator_ops, op), a, b)

  def operator(op, a, b), do: apply(Kernel, op, [a, b])

  @spec operator(:-, term()) :: term()
  def operator(:-, %Mure.Expr{} = a), do: Mure.Expr.negate(a)
  def operator(:-, a), do: Kernel.-(a)
end
