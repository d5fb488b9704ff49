defmodule Mure.Compiler.Control do
  @moduledoc false
  # The {:while, ...} and {:if, ...} program nodes (docs/protocol.md, "while / if") of a
  # defn while or cond whose regions Mure.Compiler.Lower lowered as straight-line
  # expressions. A region is a program of its own (Mure.Program.region/4): what it reads of
  # the enclosing program (captured tensors, values computed before it) is handed in as
  # invariants (while) or captured values (if). The node's value is a tuple read with
  # {:elem, v, i}; the results are symbolic tensors of those parts.

  alias Mure.Compiler.Sym
  alias Mure.Expr.Build
  alias Mure.Program

  @doc false
  # Every expression made after this is inside the region being lowered.
  @spec watermark() :: integer()
  def watermark, do: System.unique_integer([:positive, :monotonic])

  @doc false
  # The loop of state `params` (symbolic slot tensors), from `inits` to the condition's
  # `pred` and the body's `state`: {:ok, parts} or :client when it cannot be a node.
  @spec while(
          [Nx.Tensor.t()],
          [Nx.Tensor.t()],
          Nx.Tensor.t(),
          [Nx.Tensor.t()],
          integer(),
          pos_integer()
        ) ::
          {:ok, [Nx.Tensor.t()]} | :client
  def while(inits, params, pred, state, watermark, max_iterations) do
    if predicate?(pred) and symbolic?(inits ++ params ++ state) and same_types?(params, state) and
         same_types?(params, inits) do
      fixed = exprs(params)
      cond_out = [pred.data.expr]
      body_out = exprs(state)
      # The invariants are what either region reads from outside: both number them alike.
      {_, _, captured} = Program.region(cond_out, fixed, watermark)
      {_, _, captured} = Program.region(body_out, fixed, watermark, captured)
      {cond_nodes, [pred_id], captured} = Program.region(cond_out, fixed, watermark, captured)
      {body_nodes, out_ids, captured} = Program.region(body_out, fixed, watermark, captured)

      node =
        Build.new(
          {:while, exprs(inits), captured, {cond_nodes, pred_id}, {body_nodes, out_ids},
           max_iterations},
          {:u, 8},
          {}
        )

      {:ok, parts(node, inits)}
    else
      :client
    end
  end

  @doc false
  # A cond of `preds` (one per clause) and `branches` (the clauses' leaves, then the last
  # branch's; :client for a branch that is not straight-line) as nested ifs, the last
  # branch innermost: {:ok, parts} or :client.
  @spec cond([Nx.Tensor.t()], [[Nx.Tensor.t()] | :client], integer()) ::
          {:ok, [Nx.Tensor.t()]} | :client
  def cond(preds, branches, watermark) do
    {clauses, [last]} = Enum.split(branches, length(preds))

    if Enum.all?(preds, &predicate?/1) and Enum.all?(branches, &(&1 != :client)) and
         Enum.all?(branches, &symbolic?/1) and Enum.all?(clauses, &same_types?(&1, last)) do
      result =
        preds
        |> Enum.zip(clauses)
        |> Enum.reverse()
        |> Enum.reduce(exprs(last), fn {pred, then_leaves}, else_out ->
          then_out = exprs(then_leaves)
          {_, _, captured} = Program.region(then_out, [], watermark)
          {_, _, captured} = Program.region(else_out, [], watermark, captured)
          {then_nodes, then_ids, captured} = Program.region(then_out, [], watermark, captured)
          {else_nodes, else_ids, captured} = Program.region(else_out, [], watermark, captured)

          node =
            Build.new(
              {:if, pred.data.expr, captured, {then_nodes, then_ids}, {else_nodes, else_ids}},
              {:u, 8},
              {}
            )

          node |> parts(then_leaves) |> exprs()
        end)

      {:ok, Enum.zip_with(last, result, &Sym.wrap/2)}
    else
      :client
    end
  end

  # The parts of a tuple value as tensors of the templates' types and shapes.
  defp parts(node, templates) do
    templates
    |> Enum.with_index()
    |> Enum.map(fn {t, i} -> Sym.wrap(t, Build.new({:elem, node, i}, t.type, t.shape)) end)
  end

  defp exprs(tensors), do: Enum.map(tensors, & &1.data.expr)

  # Nx's predicates are {:u, 8} scalars; the node takes any integer scalar.
  defp predicate?(%Nx.Tensor{shape: {}, type: {kind, _}, data: %Sym{expr: %Mure.Expr{}}}),
    do: kind in [:u, :s]

  defp predicate?(_), do: false

  defp symbolic?(tensors),
    do: Enum.all?(tensors, &match?(%Nx.Tensor{data: %Sym{expr: %Mure.Expr{}}}, &1))

  defp same_types?(a, b) do
    length(a) == length(b) and
      Enum.all?(Enum.zip(a, b), fn {x, y} -> x.type == y.type and x.shape == y.shape end)
  end
end
