defmodule Mure.Program do
  @moduledoc """
  A traced program: what `Mure.jit/2` sends to the node for one argument signature.

  Made by tracing (see `Mure.jit/2` and `Mure.trace/2`); kept in the JIT's cache and
  reused for every call with the same argument types and shapes. The fields are public for
  inspection:

    * `signature` - `[{type, shape}]`, one per argument of the traced function
    * `params` - the arguments the program uses, in input order: `{index, type, shape}`
      (an argument that no output depends on is not sent)
    * `nodes` - the op-set requests of docs/protocol.md, "Programs", with 1-based value
      ids in place of handles: the used arguments are values `1..length(params)`, node `i`
      is value `length(params) + i`. Only nodes that an output depends on are present.
    * `outputs` - `[{value_id, type, shape}]`, one per output, in order
    * `result` - the shape of the traced function's return value, with `{:"$mure_output", i}`
      in place of output `i` (a single output, or tuples and lists of them)

  ## Examples

      iex> jit = Mure.jit(fn x, y -> x |> Mure.Expr.multiply(y) |> Mure.Expr.sum() end)
      iex> p = Mure.trace(jit, [{{:f, 32}, {3}}, {{:f, 32}, {3}}])
      iex> p.nodes
      [{:binary, :multiply, 1, 2}, {:reduce, :sum, 3, :all, false}]
      iex> p.outputs
      [{4, {:f, 32}, {}}]

  """

  alias Mure.Expr

  defstruct [:signature, :params, :nodes, :outputs, :result, exprs: nil]

  @type t :: %__MODULE__{
          signature: [{Mure.type(), Mure.shape()}],
          params: [{non_neg_integer(), Mure.type(), Mure.shape()}],
          nodes: [tuple()],
          outputs: [{pos_integer(), Mure.type(), Mure.shape()}],
          result: term(),
          exprs: [Expr.t()] | nil
        }

  @keep_exprs :"$mure_program_keep_exprs"

  # The node's limits on a program (src/proto/request.cpp).
  @max_nodes 10_000
  @max_inputs 1024
  @max_outputs 1024

  @doc false
  # Builds the program from a traced function's return value. `trace` is the reference that
  # marks this trace's parameters (expressions of another trace are refused).
  @spec build(term(), [{Mure.type(), Mure.shape()}], reference()) :: t()
  def build(returned, signature, trace) do
    {result, outputs} = flatten(returned, [])
    outputs = Enum.reverse(outputs)

    if outputs == [] do
      raise ArgumentError, "jit: the traced function returned no expression: #{inspect(returned)}"
    end

    # Every output gets a value of its own: an output that is an argument as such, or that
    # appears twice, is copied (a reshape to the same shape), so that no kept handle is ever
    # shared by two results or with an argument.
    {outputs, _seen} =
      Enum.map_reduce(outputs, MapSet.new(), fn expr, seen ->
        expr =
          if match?({:parameter, _, _}, expr.node) or MapSet.member?(seen, expr.id),
            do: Expr.reshape(expr, expr.shape),
            else: expr

        {expr, MapSet.put(seen, expr.id)}
      end)

    reachable = reach(outputs, %{})

    {params, nodes} =
      reachable
      |> Map.values()
      |> Enum.split_with(&match?({:parameter, _, _}, &1.node))

    params =
      params
      |> Enum.map(fn %Expr{node: {:parameter, i, t}} = p ->
        if t != trace or i >= length(signature) do
          raise ArgumentError,
                "jit: the traced function used #{inspect(p)}, an argument of another trace; " <>
                  "expressions cannot be kept from one trace to the next"
        end

        p
      end)
      |> Enum.sort_by(fn %Expr{node: {:parameter, i, _}} -> i end)

    # Unique ids grow with creation time, and an expression's operands exist before it:
    # sorting by id orders the nodes topologically.
    nodes = Enum.sort_by(nodes, & &1.id)

    if length(nodes) > @max_nodes,
      do:
        raise(ArgumentError, "jit: the program has #{length(nodes)} nodes; at most #{@max_nodes}")

    if length(params) > @max_inputs,
      do:
        raise(
          ArgumentError,
          "jit: the program has #{length(params)} inputs; at most #{@max_inputs}"
        )

    if length(outputs) > @max_outputs,
      do:
        raise(
          ArgumentError,
          "jit: the program has #{length(outputs)} outputs; at most #{@max_outputs}"
        )

    ids =
      (params ++ nodes)
      |> Enum.with_index(1)
      |> Map.new(fn {e, vid} -> {e.id, vid} end)

    %__MODULE__{
      signature: signature,
      params:
        Enum.map(params, fn %Expr{node: {:parameter, i, _}} = p -> {i, p.type, p.shape} end),
      nodes: Enum.map(nodes, &wire(&1.node, ids)),
      outputs: Enum.map(outputs, &{Map.fetch!(ids, &1.id), &1.type, &1.shape}),
      result: result,
      exprs: if(Process.get(@keep_exprs), do: outputs)
    }
  end

  @doc false
  # Runs `fun`; the programs it builds keep their output expressions in `exprs` (one per
  # output; Mure.Cluster.Defn reads them). Never otherwise: a program goes into the JIT
  # cache's ETS table, where shared subexpressions would be copied apart.
  @spec keeping_exprs((() -> result)) :: result when result: term()
  def keeping_exprs(fun) do
    previous = Process.put(@keep_exprs, true)

    try do
      fun.()
    after
      unless previous, do: Process.delete(@keep_exprs)
    end
  end

  @doc false
  # A region of a {:while, ...} or {:if, ...} node (docs/protocol.md, "while / if"): the
  # nodes computing `outputs` with their own value numbering. `fixed` are the expressions
  # that are values 1..length(fixed) (a while's state parameters); every other expression
  # reached that is a parameter or that existed before the region was lowered (an id at most
  # `watermark`) is a value the region captures from the enclosing program, numbered after
  # `fixed` (pass `captured` to give some a number first). Returns
  # `{nodes, output_ids, captured}`, `captured` in value order.
  @spec region([Expr.t()], [Expr.t()], integer(), [Expr.t()]) ::
          {[tuple()], [pos_integer()], [Expr.t()]}
  def region(outputs, fixed, watermark, captured \\ []) do
    fixed_ids = MapSet.new(fixed, & &1.id)

    outside? = fn e ->
      MapSet.member?(fixed_ids, e.id) or match?({:parameter, _, _}, e.node) or
        e.id <= watermark
    end

    {inner, outer} = reach_region(outputs, outside?, %{}, [])
    known = MapSet.new(fixed ++ captured, & &1.id)

    captured =
      captured ++
        (outer
         |> Enum.reverse()
         |> Enum.uniq_by(& &1.id)
         |> Enum.reject(&MapSet.member?(known, &1.id))
         |> Enum.sort_by(& &1.id))

    nodes = inner |> Map.values() |> Enum.sort_by(& &1.id)

    ids =
      (fixed ++ captured ++ nodes)
      |> Enum.with_index(1)
      |> Map.new(fn {e, vid} -> {e.id, vid} end)

    {Enum.map(nodes, &wire(&1.node, ids)), Enum.map(outputs, &Map.fetch!(ids, &1.id)), captured}
  end

  # The region's own nodes (by id) and the outside expressions it reads.
  defp reach_region([], _outside?, seen, outer), do: {seen, outer}

  defp reach_region([%Expr{id: id} = e | rest], outside?, seen, outer) do
    cond do
      Map.has_key?(seen, id) -> reach_region(rest, outside?, seen, outer)
      outside?.(e) -> reach_region(rest, outside?, seen, [e | outer])
      true -> reach_region(operands(e.node) ++ rest, outside?, Map.put(seen, id, e), outer)
    end
  end

  # The return value's structure, with {:"$mure_output", i} in place of each expression.
  defp flatten(%Expr{} = e, acc), do: {{:"$mure_output", length(acc)}, [e | acc]}

  defp flatten(n, acc) when is_number(n) or n in [:infinity, :neg_infinity, :nan],
    do: flatten(Expr.operand!(n, nil, :jit), acc)

  defp flatten(t, acc) when is_tuple(t) do
    {list, acc} = t |> Tuple.to_list() |> flatten_list(acc)
    {List.to_tuple(list), acc}
  end

  defp flatten(l, acc) when is_list(l), do: flatten_list(l, acc)

  defp flatten(other, _acc) do
    raise ArgumentError,
          "jit: the traced function must return a Mure.Expr, or a tuple or list of them; " <>
            "got: #{inspect(other, limit: 5)}"
  end

  defp flatten_list(list, acc) do
    Enum.map_reduce(list, acc, &flatten/2)
  end

  # Every expression the outputs depend on, by id (iterative: programs may be deep).
  defp reach(stack, seen)
  defp reach([], seen), do: seen

  defp reach([%Expr{id: id} = e | rest], seen) do
    if Map.has_key?(seen, id),
      do: reach(rest, seen),
      else: reach(operands(e.node) ++ rest, Map.put(seen, id, e))
  end

  @doc false
  # The operand expressions of an expression's node, in order.
  @spec operands(tuple()) :: [Expr.t()]
  def operands({:parameter, _, _}), do: []

  def operands(node) do
    node
    |> Tuple.to_list()
    |> Enum.flat_map(fn
      %Expr{} = e -> [e]
      list when is_list(list) -> Enum.filter(list, &match?(%Expr{}, &1))
      _ -> []
    end)
  end

  @doc false
  # The request with `ids[expr.id]` in place of its operand expressions: value ids in a
  # program, handles in an eager call (Mure.Api.Eager).
  @spec wire(tuple(), %{pos_integer() => pos_integer()}) :: tuple()
  def wire(node, ids) do
    node
    |> Tuple.to_list()
    |> Enum.map(fn
      %Expr{id: id} -> Map.fetch!(ids, id)
      list when is_list(list) -> Enum.map(list, &wire_item(&1, ids))
      other -> other
    end)
    |> List.to_tuple()
  end

  defp wire_item(%Expr{id: id}, ids), do: Map.fetch!(ids, id)
  defp wire_item(other, _ids), do: other

  @doc false
  # Puts the results (in output order) back into the traced function's return structure.
  @spec rebuild(term(), tuple()) :: term()
  def rebuild({:"$mure_output", i}, results), do: elem(results, i)

  def rebuild(t, results) when is_tuple(t),
    do: t |> Tuple.to_list() |> Enum.map(&rebuild(&1, results)) |> List.to_tuple()

  def rebuild(l, results) when is_list(l), do: Enum.map(l, &rebuild(&1, results))
end
