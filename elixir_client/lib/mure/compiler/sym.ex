defmodule Mure.Compiler.Sym do
  @moduledoc false
  # A symbolic Mure.Backend tensor: the data of an Nx tensor that stands for a value of the
  # program being built (a Mure.Expr), not a resident one. Mure.Compiler calls Mure.Backend's
  # own callbacks with such tensors, so that the compiler and the eager backend share one
  # mapping from Nx ops to node ops: Mure.Backend.serve/5 hands them to serve/5 here
  # (which records the op instead of sending it), and Mure.Backend.fallback/3 to refuse/2
  # (an op the node cannot run: the compiler splits the program there and runs the op on
  # the client, as the backend would).
  #
  # `value` is the number a scalar constant stands for (pad values, slice starts and other
  # arguments that Mure.Backend reads with Nx.to_number/1); any other read is refused.

  alias Mure.Expr

  @enforce_keys [:expr]
  defstruct [:expr, value: nil, slot: nil]

  # `slot`: the plan's slot this tensor is (a program input: an argument, a captured
  # tensor, or a value computed by an earlier step), or nil for an expression of this step.
  @type t :: %__MODULE__{expr: Expr.t() | nil, value: number() | nil, slot: pos_integer() | nil}

  @doc false
  # Wraps an expression as the Nx tensor `out` (its type and shape are Nx's).
  @spec wrap(Nx.Tensor.t(), Expr.t(), number() | nil) :: Nx.Tensor.t()
  def wrap(%Nx.Tensor{} = out, %Expr{} = expr, value \\ nil),
    do: %{out | data: %__MODULE__{expr: expr, value: value}}

  @doc false
  # The tensor that stands for a slot of the plan (`expr`: its program parameter, nil for a
  # type the node cannot hold).
  @spec slot(Nx.Tensor.t(), pos_integer(), Expr.t() | nil) :: Nx.Tensor.t()
  def slot(%Nx.Tensor{} = template, slot, expr),
    do: %{template | data: %__MODULE__{expr: expr, slot: slot}}

  @doc false
  # Mure.Backend.serve/5 on symbolic inputs: the op as an expression, cast and reshaped to
  # Nx's `out` where the node's rules give another (as Mure.Backend.Node.run/6 does).
  @spec serve(atom(), Nx.Tensor.t(), [Nx.Tensor.t()], list(), ([Expr.t()] -> Expr.t())) ::
          Nx.Tensor.t()
  def serve(name, out, inputs, _args, build) do
    unless Enum.all?([out | inputs], &Mure.Backend.node_type?(&1.type)),
      do: throw({:mure_client_op, "#{name} on a complex tensor"})

    exprs =
      Enum.map(inputs, fn
        %Nx.Tensor{data: %__MODULE__{expr: e}} ->
          e

        other ->
          throw({:mure_client_op, "#{name} of a concrete #{inspect(other.data.__struct__)}"})
      end)

    try do
      expr = build.(exprs)
      expr = if expr.type != out.type, do: Expr.as_type(expr, out.type), else: expr
      if expr.shape != out.shape, do: Expr.reshape(expr, out.shape), else: expr
    rescue
      e in ArgumentError -> throw({:mure_client_op, "#{name}: " <> Exception.message(e)})
    else
      expr -> wrap(out, expr)
    end
  end

  @doc false
  # Mure.Backend.fallback/3 while the compiler lowers: the op cannot be a node op.
  @spec refuse(atom(), String.t()) :: no_return()
  def refuse(name, why), do: throw({:mure_client_op, "#{name}: #{why}"})

  @doc false
  # True while Mure.Compiler is lowering in this process (Mure.Backend.fallback/3 asks).
  @spec lowering?() :: boolean()
  def lowering?, do: Process.get(:"$mure_compiler_lowering", false)

  @doc false
  @spec lowering((() -> result)) :: result when result: term()
  def lowering(fun) do
    previous = Process.put(:"$mure_compiler_lowering", true)

    try do
      fun.()
    after
      if previous, do: :ok, else: Process.delete(:"$mure_compiler_lowering")
    end
  end

  ## The part of Nx.Backend that Nx calls on a tensor's data directly

  @doc false
  # Nx.to_number/1 on a symbolic tensor: the number of a constant, else the op is a
  # client op (its argument is only known when the program runs).
  def to_binary(%Nx.Tensor{data: %__MODULE__{value: v}, type: type}, limit)
      when is_number(v) do
    one = Nx.BinaryBackend.to_binary(Nx.tensor(v, type: type, backend: Nx.BinaryBackend), 1)
    :binary.copy(one, limit)
  end

  def to_binary(_t, _limit),
    do: throw({:mure_client_op, "an argument read as a number is computed, not a constant"})

  def inspect(%Nx.Tensor{data: %__MODULE__{expr: e}}, _opts),
    do: Inspect.Algebra.string("Mure.Compiler.Sym<#{inspect(e)}>")
end
