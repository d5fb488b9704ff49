defmodule Mure.Backend.Trace do
  @moduledoc false
  # The Elixir functions that Nx.map/3 and Nx.reduce/4 take, run on the node: each is
  # traced once into an Nx.Defn.Expr (Nx.Defn.debug_expr/1: the function is called with
  # symbolic scalars; no code is sent anywhere) and translated into Mure.Expr ops.
  #
  #   * map: an elementwise function of one scalar (unary and binary ops, constants,
  #     as_type, select) becomes the same ops over the whole tensor, one program.
  #   * reduce: a function that combines the element and the accumulator with add,
  #     multiply, max or min becomes the node's sum, product, reduce_max or reduce_min,
  #     combined once with the accumulator.
  #
  # Anything else (another op, a captured non-scalar tensor, a function that inspects its
  # argument's value) is {:error, why}: Mure.Backend falls back to Nx.BinaryBackend.

  alias Mure.{Expr, Rules}
  alias Nx.Defn.Expr, as: DefnExpr

  @unary_ops Rules.unary_ops()
  @binary_ops Rules.binary_ops()
  @monoids %{add: :sum, multiply: :product, max: :reduce_max, min: :reduce_min}

  @doc false
  # The builder of a map: given the Mure.Expr of the whole input, the whole result (of
  # `out_type`, broadcast to the input's shape).
  @spec map((Nx.Tensor.t() -> term()), Nx.Type.t(), Nx.Type.t()) ::
          {:ok, (Expr.t() -> Expr.t())} | {:error, String.t()}
  def map(fun, in_type, out_type) do
    with {:ok, %Nx.Tensor{data: %DefnExpr{}} = result} <- trace(fun, [in_type]) do
      build = fn x ->
        {expr, _memo} = translate(result, %{0 => x}, %{})
        expr = if expr.type == out_type, do: expr, else: Expr.as_type(expr, out_type)
        if expr.shape == x.shape, do: expr, else: Expr.broadcast(expr, x.shape)
      end

      # Translated once here on a stand-in, so that an untranslatable function is known
      # before anything is sent.
      try do
        build.(Expr.parameter(0, in_type, {1}))
        {:ok, build}
      rescue
        e in ArgumentError -> {:error, Exception.message(e)}
      catch
        {:untraceable, why} -> {:error, why}
      end
    else
      {:ok, other} -> {:error, "the function returned #{inspect(other, limit: 3)}"}
      {:error, why} -> {:error, why}
    end
  end

  @doc false
  # The node's reduction that a reduce function amounts to, and the binary op that adds
  # the accumulator: {:ok, {reduction, op}} or {:error, why}.
  @spec reduce((Nx.Tensor.t(), Nx.Tensor.t() -> term()), Nx.Type.t(), Nx.Type.t()) ::
          {:ok, {atom(), atom()}} | {:error, String.t()}
  def reduce(fun, in_type, acc_type) do
    case trace(fun, [in_type, acc_type]) do
      {:ok, %Nx.Tensor{data: %DefnExpr{op: op, args: [a, b]}}} when is_map_key(@monoids, op) ->
        if Enum.sort([parameter(a), parameter(b)]) == [0, 1],
          do: {:ok, {Map.fetch!(@monoids, op), op}},
          else: {:error, "the function is not #{op} of the element and the accumulator"}

      {:ok, %Nx.Tensor{data: %DefnExpr{op: op}}} ->
        {:error, "the function's result is #{op}, not add, multiply, max or min of its arguments"}

      {:ok, other} ->
        {:error, "the function returned #{inspect(other, limit: 3)}"}

      {:error, why} ->
        {:error, why}
    end
  end

  defp parameter(%Nx.Tensor{data: %DefnExpr{op: :parameter, args: [i]}}), do: i
  defp parameter(%Nx.Tensor{data: %DefnExpr{op: :metadata, args: [t, _]}}), do: parameter(t)
  defp parameter(_), do: nil

  defp trace(fun, types) do
    templates = Enum.map(types, &Nx.template({}, &1))
    {:ok, Nx.Defn.debug_expr_apply(fun, templates)}
  rescue
    e -> {:error, "tracing the function raised: " <> Exception.message(e)}
  end

  # Nx.Defn.Expr (scalars) to Mure.Expr; `params` maps parameter indices to Mure.Expr.
  defp translate(%Nx.Tensor{data: %DefnExpr{id: id, op: op, args: args}} = t, params, memo) do
    case memo do
      %{^id => expr} ->
        {expr, memo}

      _ ->
        {expr, memo} = node(op, args, t, params, memo)
        expr = if expr.type == t.type, do: expr, else: Expr.as_type(expr, t.type)
        {expr, Map.put(memo, id, expr)}
    end
  end

  defp translate(other, _params, _memo),
    do: throw({:untraceable, "a value that is not an expression: #{inspect(other, limit: 3)}"})

  defp node(:parameter, [i], _t, params, memo), do: {Map.fetch!(params, i), memo}
  defp node(:metadata, [inner, _], _t, params, memo), do: translate(inner, params, memo)

  defp node(:constant, [n], t, _params, memo) when is_number(n) or is_atom(n),
    do: {Expr.full(n, {}, type: t.type), memo}

  defp node(:tensor, [%Nx.Tensor{shape: {}} = c], t, _params, memo) do
    if Mure.Types.valid_type?(c.type),
      do: {Expr.full(Nx.to_number(c), {}, type: t.type), memo},
      else: throw({:untraceable, "a captured #{inspect(c.type)} tensor"})
  end

  defp node(:as_type, [a], t, params, memo) do
    {a, memo} = translate(a, params, memo)
    {Expr.as_type(a, t.type), memo}
  end

  defp node(:select, [p, a, b], _t, params, memo) do
    {[p, a, b], memo} = translate_all([p, a, b], params, memo)
    {Expr.select(p, a, b), memo}
  end

  defp node(op, [a], _t, params, memo) when op in @unary_ops do
    {a, memo} = translate(a, params, memo)
    {Expr.unary(op, a), memo}
  end

  defp node(op, [a, b], _t, params, memo) when op in @binary_ops do
    {[a, b], memo} = translate_all([a, b], params, memo)
    {Expr.binary(op, a, b), memo}
  end

  defp node(op, _args, _t, _params, _memo),
    do: throw({:untraceable, "the function uses #{op}, which is not traced yet"})

  defp translate_all(list, params, memo),
    do: Enum.map_reduce(list, memo, &translate(&1, params, &2))
end
