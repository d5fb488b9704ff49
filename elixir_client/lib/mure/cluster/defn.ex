defmodule Mure.Cluster.Defn do
  @moduledoc false
  # A defn function (or any function Nx.Defn can trace) as a %Mure.Jit{} for
  # Mure.Cluster.run/4. The Mure.Jit's function, called with Mure.Expr parameters (as
  # Mure.jit traces), traces the defn function for their types and shapes with Nx.Defn and
  # lowers it with Mure.Compiler.Lower: the Mure compiler's own path, each Nx op by
  # Mure.Backend's mapping. A function that lowers to one program (no while, cond, hook or
  # op the node lacks: those need steps on the client between programs) returns that
  # program's output expressions with the parameters in place of its inputs. From there the
  # cluster treats it as any Mure.jit function: traced per piece size (cached), checked for
  # rows that mix (Mure.Cluster.Split), run on the members.

  alias Mure.Compiler.Lower
  alias Mure.Expr

  @doc false
  @spec jit(function()) :: Mure.Jit.t()
  def jit(fun) when is_function(fun) do
    {:arity, arity} = Function.info(fun, :arity)
    # Equal for equal functions: the JIT's cache finds the traces of an earlier job.
    Mure.Jit.new(Nx.Defn.Compiler.fun(arity, &exprs(fun, &1)), [])
  end

  @doc false
  # Nx.Defn's compiler callback for the trace below: the traced expression and the
  # parameters it was traced with, as Mure.Compiler.__compile__ gets them.
  def __jit__(_key, vars, fun, [_args], _opts),
    do: [{fun.(vars), Nx.Defn.Composite.flatten_list(vars)}]

  defp exprs(fun, params) do
    templates = Enum.map(params, &Nx.template(&1.shape, &1.type))
    {expr, vars} = Nx.Defn.jit_apply(fun, templates, compiler: __MODULE__)
    plan = Mure.Program.keeping_exprs(fn -> Lower.plan(expr, vars, %{}) end)

    case plan.steps do
      [{:program, program, out_slots, _modes}] ->
        outputs(plan, program, out_slots, params)

      steps ->
        raise ArgumentError,
              "Mure.Cluster.run: the function cannot run as one program on a member: it " <>
                "needs #{describe(steps)} run from the client between programs; only a " <>
                "straight-line function (no while, cond, hooks, or ops the node lacks) " <>
                "can be split across members"
    end
  end

  defp describe(steps) do
    steps
    |> Enum.map(fn
      {:program, _, _, _} -> nil
      {:client, op, _, _} -> "#{op} (an op the node lacks)"
      {:hook, _, _} -> "a hook"
      {:while, _, _, _, _, _} -> "a while loop"
      {:cond, _, _, _} -> "a cond"
    end)
    |> Enum.reject(&is_nil/1)
    |> Enum.uniq()
    |> case do
      [] -> "several programs"
      kinds -> Enum.join(kinds, ", ")
    end
  end

  defp outputs(plan, program, out_slots, params) do
    # The program's inputs: the arguments' slots, else tensors the function captured.
    arg_of = plan.params |> Enum.zip(params) |> Map.new()

    for {slot, type, shape} <- program.params, not Map.has_key?(arg_of, slot) do
      raise ArgumentError,
            "Mure.Cluster.run: the function captures a tensor " <>
              "(#{Mure.Types.type_to_string(type)}#{Mure.Types.shape_to_string(shape)}): " <>
              "pass it as an argument instead (shared with every member: Mure.Cluster.share/3)"
    end

    expr_of = out_slots |> Enum.zip(program.exprs) |> Map.new()
    {_template, slots} = plan.result

    {exprs, _memo} =
      Enum.map_reduce(slots, %{}, fn slot, memo ->
        substitute(Map.fetch!(expr_of, slot), arg_of, memo)
      end)

    case exprs do
      [one] -> one
      many -> many
    end
  end

  # The expression with the parameters of `arg_of` in place of the program's inputs (by
  # slot); each node made anew once (memo by id), after its operands, so that ids stay in
  # topological order.
  defp substitute(%Expr{node: {:parameter, slot, _}}, arg_of, memo),
    do: {Map.fetch!(arg_of, slot), memo}

  defp substitute(%Expr{id: id} = e, arg_of, memo) do
    case memo do
      %{^id => new} ->
        {new, memo}

      _ ->
        {items, memo} =
          e.node
          |> Tuple.to_list()
          |> Enum.map_reduce(memo, fn
            %Expr{} = o, memo ->
              substitute(o, arg_of, memo)

            list, memo when is_list(list) ->
              Enum.map_reduce(list, memo, fn
                %Expr{} = o, memo -> substitute(o, arg_of, memo)
                other, memo -> {other, memo}
              end)

            other, memo ->
              {other, memo}
          end)

        new = %{
          e
          | id: System.unique_integer([:positive, :monotonic]),
            node: List.to_tuple(items)
        }

        {new, Map.put(memo, id, new)}
    end
  end
end
