defmodule Mure.Eager do
  @moduledoc false
  # An eager op is the one-op program of Mure.Expr, sent as a request of its own.
  #
  # `build` gets one Mure.Expr.parameter/3 per tensor (of its type and shape) and makes the
  # op with Mure.Expr's function of the same name. So an eager call goes through the very
  # checks a traced one does (Mure.Rules' types, shapes and axes, the options, the limit on
  # dimensions) and raises the same ArgumentError before anything is sent. The expression's
  # node, with the tensors' handles in place of the parameters, is the request
  # (Mure.Program.wire/2, as a program's nodes are made), and the expression's type and
  # shape are what the node's reply must have.
  #
  # Errors that only the node can know (an unknown handle, memory, an index out of range
  # in a tensor's data) stay {:error, exception} values.

  alias Mure.{Call, Expr, Program, Tensor}

  @doc false
  # An op on resident tensors (all of one connection); `what` names the op in argument
  # errors about the tensors themselves.
  @spec op(atom() | String.t(), [Tensor.t()], keyword(), ([Expr.t()] -> Expr.t())) ::
          {:ok, Tensor.t()} | {:error, Exception.t()}
  def op(what, [%Tensor{conn: conn} | _] = tensors, opts, build) do
    Call.check_tensors!(tensors, what)

    params =
      tensors
      |> Enum.with_index()
      |> Enum.map(fn {t, i} -> Expr.parameter(i, t.type, t.shape) end)

    expr = build.(params)
    handles = params |> Enum.zip(tensors) |> Map.new(fn {p, t} -> {p.id, t.id} end)
    Call.tensor(conn, Program.wire(expr.node, handles), tensors, opts, {expr.type, expr.shape})
  end

  def op(what, tensors, _opts, _build) do
    Call.check_tensors!(tensors, what)
    raise ArgumentError, "#{what}: expected a %Mure.Tensor{}, got: #{inspect(tensors, limit: 5)}"
  end

  @doc false
  # An op that makes a tensor from nothing but its arguments (iota, full, random, ...).
  @spec create(GenServer.server(), keyword(), Expr.t()) ::
          {:ok, Tensor.t()} | {:error, Exception.t()}
  def create(conn, opts, %Expr{} = expr),
    do: Call.tensor(conn, expr.node, [], opts, {expr.type, expr.shape})
end
