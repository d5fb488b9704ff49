defmodule Mure.Compiler.Lower do
  @moduledoc false
  # Nx.Defn.Expr -> a plan of steps (Mure.Compiler.Run runs it).
  #
  # The DAG is walked once, memoised by node id. Every op is lowered by calling
  # Mure.Backend's own callback with symbolic tensors (Mure.Compiler.Sym): the callback
  # builds its Mure.Expr as it does for an eager op, and the expression joins the program
  # being built instead of being sent (one mapping from Nx ops to node ops). Values live in
  # numbered slots: the arguments, captured tensors, and the values steps compute.
  #
  # Where the program format cannot go (an op the node lacks or refuses, an argument read
  # as a number that is computed, `while`, `cond`, hooks), the values needed there are
  # "flushed": a {:program, ...} step computes them into slots; the construct becomes a step
  # of its own ({:client, ...}, {:while, ...}, {:cond, ...}, {:hook, ...}) that writes slots;
  # the walk goes on with those slots as program inputs. A function without such a
  # construct is one program: one request.
  #
  # Steps:
  #   {:program, %Mure.Program{}, out_slots, modes}  params are {slot, type, shape}
  #   {:client, op, args, out}          Mure.Backend.op(args...) on resident tensors;
  #                                     out: a slot, or a tuple of slots
  #   {:hook, fun, container}           fun.(the container's values, downloaded)
  #   {:while, init, params, first, body, out}
  #                                     first: %{steps, pred}; body: %{steps, state, pred}
  #   {:cond, [{pred_block, body_block}], last_block, out}

  require Logger

  alias Mure.Compiler.{Control, Sym}
  alias Mure.{Expr, Program}
  alias Nx.Defn.{Composite, Tree}
  alias Nx.Defn.Expr, as: DExpr

  # scope: the ids of the current scope (Nx.Defn.Tree.scope_ids/2): nodes a cond's branches
  # share with it are computed before the cond, once, as Nx.Defn.Evaluator does.
  defstruct [
    :trace,
    :params,
    hooks: %{},
    memo: %{},
    steps: [],
    next: 1,
    templates: %{},
    scope: %{},
    max_iterations: 10_000_000
  ]

  @doc false
  # The plan of `expr` (the traced function's result) for `vars` (its parameter templates).
  @spec plan(term(), [Nx.Tensor.t()], map(), pos_integer()) :: map()
  def plan(expr, vars, hooks, max_iterations \\ 10_000_000) do
    ctx = %__MODULE__{trace: make_ref(), hooks: hooks, max_iterations: max_iterations}
    # Vectorized tensors are walked devectorized, as Nx.Defn.Evaluator does; the results
    # take their vectorized axes back from the templates.
    {params, ctx} = Enum.map_reduce(vars, ctx, &new_slot(&2, Nx.devectorize(&1)))

    Sym.lowering(fn ->
      ctx = %{ctx | params: List.to_tuple(params)}
      walked = Composite.traverse(expr, &Nx.devectorize/1)
      {result, ctx} = composite(walked, %{ctx | scope: Tree.scope_ids(walked)})
      leaves = Composite.flatten_list([result])
      # Results are fresh tensors: an argument or a captured tensor returned as such is
      # copied by the program (Mure.Program.build copies parameters it outputs).
      made = made_slots(ctx)
      copy = fn %{data: %Sym{slot: s}} -> s != nil and not MapSet.member?(made, s) end
      {leaves, ctx} = flush(leaves, ctx, copy)

      %{
        params: Enum.map(params, & &1.data.slot),
        steps: Enum.reverse(ctx.steps),
        templates: ctx.templates,
        # The traced result's templates (its tensors, without their expressions) and the slot
        # of each of its tensors, in Composite.flatten_list/1 order.
        result: {Composite.traverse(expr, &%{&1 | data: nil}), slots(leaves)}
      }
    end)
  end

  # Slots that a step writes (not arguments or captured tensors).
  defp made_slots(ctx) do
    for {s, {_t, :made}} <- ctx.templates, into: MapSet.new(), do: s
  end

  defp new_slot(ctx, template, kind \\ :external) do
    slot = ctx.next
    template = %{template | data: nil, vectorized_axes: []}

    expr =
      if Mure.Types.valid_type?(template.type),
        do: Expr.parameter(slot, template.type, template.shape, ctx.trace)

    ctx = %{ctx | next: slot + 1, templates: Map.put(ctx.templates, slot, {template, kind})}
    {Sym.slot(template, slot, expr), ctx}
  end

  ## The walk

  defp composite(container, ctx), do: Composite.traverse(container, ctx, &eval/2)

  defp eval(%Nx.Tensor{data: %DExpr{id: id, op: op}} = t, ctx) do
    case ctx.memo do
      %{^id => value} ->
        {value, ctx}

      _ ->
        {value, ctx} = op(op, t, ctx)
        {value, %{ctx | memo: Map.put(ctx.memo, id, value)}}
    end
  end

  defp eval(other, ctx), do: {other, ctx}

  defp op(:parameter, %{data: %{args: [i]}}, ctx), do: {elem(ctx.params, i), ctx}

  defp op(:constant, %{data: %{args: [c]}} = t, ctx) do
    if Mure.Types.valid_type?(t.type) and (is_number(c) or c in [:infinity, :neg_infinity, :nan]) do
      {Sym.wrap(t, Expr.full(c, t.shape, type: t.type), if(is_number(c), do: c)), ctx}
    else
      client(:constant, [t, c, :"$backend_opts"], t, ctx)
    end
  end

  defp op(:tensor, %{data: %{args: [tensor]}}, ctx) do
    new_slot(ctx, tensor, {:tensor, tensor})
  end

  defp op(:metadata, %{data: %{args: [expr, _meta]}}, ctx), do: composite(expr, ctx)

  defp op(:elem, %{data: %{args: [tuple, i]}}, ctx) do
    {tuple, ctx} = composite(tuple, ctx)
    {elem(tuple, i), ctx}
  end

  defp op(:attach_token, %{data: %{args: [token, expr]}}, ctx) do
    {_, ctx} = eval(token, ctx)
    eval(expr, ctx)
  end

  defp op(:token, %{data: %{args: [token]}}, ctx) do
    ctx =
      List.foldr(token.hooks, ctx, fn %{name: name, expr: expr, callback: callback}, ctx ->
        case ctx.hooks[name] || callback do
          nil ->
            if Tree.has_hooks?(expr, ctx.hooks), do: elem(composite(expr, ctx), 1), else: ctx

          fun ->
            {value, ctx} = composite(expr, ctx)
            {leaves, ctx} = flush(Composite.flatten_list([value]), ctx)
            {value, []} = Composite.traverse(value, leaves, fn _, [l | r] -> {l, r} end)
            step(ctx, {:hook, fun, value})
        end
      end)

    {{}, ctx}
  end

  defp op(:fun, %{data: %{args: [args, expr, _mfa]}}, ctx) do
    {closure(length(args), expr), ctx}
  end

  defp op(:optional, %{data: %{args: [call, expr, _callback]}} = t, ctx) do
    {args, ctx} = Tree.apply_args(call, ctx, &eval/2)
    name = call.data.op
    out = if match?({:tuple, _}, call.type), do: t, else: call

    native =
      if function_exported?(Mure.Backend, name, length(args) + 1),
        do: lower(fn -> apply(Mure.Backend, name, [out | args]) end)

    case native do
      {:ok, value} ->
        {value, ctx}

      _ ->
        # The fallback expression, with the call's arguments as its parameters.
        saved = {ctx.memo, ctx.params, ctx.scope}
        inner = %{ctx | memo: %{}, params: List.to_tuple(args), scope: Tree.scope_ids(expr)}
        {value, ctx} = composite(expr, inner)
        {memo, params, scope} = saved
        {value, %{ctx | memo: memo, params: params, scope: scope}}
    end
  end

  defp op(:while, %{data: %{args: args}}, ctx) do
    case node_while(args, ctx) do
      {:ok, value, ctx} -> {value, ctx}
      :client -> client_while(args, ctx)
    end
  end

  defp op(:cond, %{data: %{args: [clauses, last]}}, ctx) do
    # What the branches share with the enclosing scope is computed there, first.
    branches = [Enum.map(clauses, &Tuple.to_list/1), last]

    ctx =
      branches
      |> shared(ctx.scope)
      |> Enum.reduce(ctx, fn t, ctx -> elem(eval(t, ctx), 1) end)

    case node_cond(clauses, last, ctx) do
      {:ok, value, ctx} -> {value, ctx}
      :client -> client_cond(clauses, last, ctx)
    end
  end

  defp op(op, t, ctx) do
    {args, ctx} = Tree.apply_args(t, ctx, &eval/2)

    result =
      cond do
        op in [:eye, :iota] -> lower(fn -> create(op, t, args) end)
        match?({:tuple, _}, t.type) -> lower(fn -> apply(Mure.Backend, op, args) end)
        true -> lower(fn -> apply(Mure.Backend, op, [t | args]) end)
      end

    case result do
      {:ok, value} ->
        {value, ctx}

      {:client, why} ->
        Logger.debug("Mure.Compiler: #{op} splits the program: it runs as an eager op (#{why})")

        args =
          cond do
            op in [:eye, :iota] -> [t | args] ++ [:"$backend_opts"]
            match?({:tuple, _}, t.type) -> args
            true -> [t | args]
          end

        client(op, args, if(match?({:tuple, _}, t.type), do: hd(args), else: t), ctx)
    end
  end

  # The client loop: each iteration one program (the fallback when the condition or the body
  # is not straight-line).
  defp client_while([initial, arg, condition, block], ctx) do
    {init, ctx} = composite(initial, ctx)
    {init_leaves, ctx} = flush(Composite.flatten_list([init]), ctx)

    {params, ctx} = Enum.map_reduce(Composite.flatten_list([arg]), ctx, &new_slot(&2, &1, :made))
    saved = {ctx.memo, ctx.params, ctx.steps}

    # The first test of the condition, on the initial state.
    outer_scope = ctx.scope
    scope = Tree.scope_ids({condition, block})
    ctx = %{ctx | memo: %{}, params: List.to_tuple(params), steps: [], scope: scope}
    {pred, ctx} = eval(condition, ctx)
    {[pred], ctx} = flush([pred], ctx, fn _ -> false end, :return)
    first = %{steps: Enum.reverse(ctx.steps), pred: pred}

    # One iteration: the body, then the condition on the new state, in one program when
    # both are straight-line (one round trip per iteration).
    ctx = %{ctx | memo: %{}, steps: []}
    {state, ctx} = composite(block, ctx)
    state = Composite.flatten_list([state])
    ctx = %{ctx | memo: %{}, params: List.to_tuple(state)}
    {pred, ctx} = eval(condition, ctx)

    {state_and_pred, ctx} =
      flush(state ++ [pred], ctx, fn _ -> false end, modes(state ++ [pred], :return))

    {state, [pred]} = Enum.split(state_and_pred, length(state))
    body = %{steps: Enum.reverse(ctx.steps), state: state, pred: pred}

    {memo, outer_params, steps} = saved
    ctx = %{ctx | memo: memo, params: outer_params, steps: steps, scope: outer_scope}
    {out, ctx} = Enum.map_reduce(init_leaves, ctx, &new_slot(&2, &1, :made))
    ctx = step(ctx, {:while, slots(init_leaves), slots(params), first, body, slots(out)})
    {value, []} = Composite.traverse(init, out, fn _, [o | r] -> {o, r} end)
    {value, ctx}
  end

  # The client cond: each clause's test a program, then the chosen branch (the fallback when
  # a branch is not straight-line).
  defp client_cond(clauses, last, ctx) do
    saved = {ctx.memo, ctx.steps, ctx.scope}

    {clauses, ctx} =
      Enum.map_reduce(clauses, ctx, fn {pred, body}, ctx ->
        {pred_block, ctx} =
          block(ctx, fn ctx ->
            {p, ctx} = eval(pred, ctx)
            {[p], ctx} = flush([p], ctx, fn _ -> false end, :return)
            {p, ctx}
          end)

        # The memo after the test holds only what ran before the body would.
        {body_block, ctx} = branch(ctx, body)
        {{pred_block, body_block}, ctx}
      end)

    {last_block, ctx} = branch(ctx, last)
    {memo, steps, scope} = saved
    ctx = %{ctx | memo: memo, steps: steps, scope: scope}
    {out, ctx} = Enum.map_reduce(last_block.value, ctx, &new_slot(&2, &1, :made))
    ctx = step(ctx, {:cond, clauses, last_block, slots(out)})
    {value, []} = Composite.traverse(last, out, fn _, [o | r] -> {o, r} end)
    {value, ctx}
  end

  ## while and cond on the node (Mure.Compiler.Control builds the nodes)

  # The loop as one {:while, ...} node of the program being built, when the condition and
  # the body are straight-line: lowering them in a fresh sub-context adds no step (no hook,
  # client op or client loop). {:ok, value, ctx}, or :client.
  defp node_while([initial, arg, condition, block], ctx) do
    {init, ctx} = composite(initial, ctx)
    init_leaves = Composite.flatten_list([init])

    {params, ctx} =
      Enum.map_reduce(Composite.flatten_list([arg]), ctx, &new_slot(&2, &1, :region))

    watermark = Control.watermark()
    scope = Tree.scope_ids({condition, block})
    inner = %{ctx | memo: %{}, params: List.to_tuple(params), steps: [], scope: scope}
    {pred, inner} = eval(condition, inner)
    {state, inner} = composite(block, %{inner | memo: %{}})
    state = Composite.flatten_list([state])

    with [] <- inner.steps,
         {:ok, out} <-
           Control.while(init_leaves, params, pred, state, watermark, ctx.max_iterations) do
      {value, []} = Composite.traverse(init, out, fn _, [o | r] -> {o, r} end)

      {:ok, value,
       %{inner | memo: ctx.memo, params: ctx.params, steps: ctx.steps, scope: ctx.scope}}
    else
      _ -> :client
    end
  end

  # A cond as nested {:if, ...} nodes when every branch is straight-line. The predicates
  # are computed first, in the enclosing program (they are pure). {:ok, value, ctx}, or
  # :client.
  defp node_cond(clauses, last, ctx) do
    {preds, ctx} = Enum.map_reduce(clauses, ctx, fn {pred, _}, ctx -> eval(pred, ctx) end)
    watermark = Control.watermark()
    bodies = Enum.map(clauses, &elem(&1, 1)) ++ [last]
    {branches, ctx} = Enum.map_reduce(bodies, ctx, &node_branch/2)

    case Control.cond(preds, branches, watermark) do
      {:ok, out} ->
        {value, []} = Composite.traverse(last, out, fn _, [o | r] -> {o, r} end)
        {:ok, value, ctx}

      :client ->
        :client
    end
  end

  # A branch lowered as a region: its leaves, or :client when it needs a step. The memo and
  # scope are left as they were (what a branch computes is its own).
  defp node_branch(body, ctx) do
    {memo, scope, steps} = {ctx.memo, ctx.scope, ctx.steps}
    inner = %{ctx | steps: [], scope: Tree.scope_ids(body, scope)}
    {value, inner} = composite(body, inner)
    result = if inner.steps == [], do: Composite.flatten_list([value]), else: :client
    {result, %{inner | memo: memo, scope: scope, steps: steps}}
  end

  defp create(:eye, t, []) do
    if Mure.Types.valid_type?(t.type),
      do: Sym.wrap(t, Expr.eye(t.shape, type: t.type)),
      else: throw({:mure_client_op, "eye of a complex type"})
  end

  defp create(:iota, t, [axis]) do
    opts = if axis, do: [type: t.type, axis: axis], else: [type: t.type]

    if Mure.Types.valid_type?(t.type),
      do: Sym.wrap(t, Expr.iota(t.shape, opts)),
      else: throw({:mure_client_op, "iota of a complex type"})
  end

  # Runs a Mure.Backend callback on symbolic tensors: {:ok, result} or {:client, why}.
  defp lower(fun) do
    {:ok, fun.()}
  catch
    {:mure_client_op, why} -> {:client, why}
    kind, reason -> {:client, Exception.format_banner(kind, reason)}
  end

  # A step that runs `op` eagerly on Mure.Backend: its tensor arguments are flushed first.
  defp client(op, args, out, ctx) do
    {args, ctx} = flush_args(args, ctx)

    {value, ctx} =
      case out do
        %Nx.Tensor{} -> new_slot(ctx, out, :made)
        tuple when is_tuple(tuple) -> tuple_slots(tuple, ctx)
      end

    {value, step(ctx, {:client, op, args, out_slots(value)})}
  end

  defp tuple_slots(tuple, ctx) do
    {list, ctx} = tuple |> Tuple.to_list() |> Enum.map_reduce(ctx, &new_slot(&2, &1, :made))
    {List.to_tuple(list), ctx}
  end

  defp out_slots(%Nx.Tensor{data: %Sym{slot: s}}), do: s

  defp out_slots(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&out_slots/1) |> List.to_tuple()

  # Flushes the symbolic tensors anywhere in the arguments (lists, tuples).
  defp flush_args(args, ctx) when is_list(args), do: Enum.map_reduce(args, ctx, &flush_args/2)

  defp flush_args(%Nx.Tensor{data: %Sym{}} = t, ctx) do
    {[t], ctx} = flush([t], ctx)
    {t, ctx}
  end

  defp flush_args(tuple, ctx) when is_tuple(tuple) do
    {list, ctx} = tuple |> Tuple.to_list() |> flush_args(ctx)
    {List.to_tuple(list), ctx}
  end

  defp flush_args(other, ctx), do: {other, ctx}

  # A sub-block: `fun` runs with an empty step list; the block is its steps and value.
  defp block(ctx, fun) do
    saved = ctx.steps
    {value, ctx} = fun.(%{ctx | steps: []})
    {%{steps: Enum.reverse(ctx.steps), value: value}, %{ctx | steps: saved}}
  end

  # A branch of a cond: evaluated in a block; the memo is left as it was.
  defp branch(ctx, body) do
    {memo, scope} = {ctx.memo, ctx.scope}

    {block, ctx} =
      block(%{ctx | scope: Tree.scope_ids(body, scope)}, fn ctx ->
        {value, ctx} = composite(body, ctx)
        flush(Composite.flatten_list([value]), ctx)
      end)

    {block, %{ctx | memo: memo, scope: scope}}
  end

  # The nodes of `exprs` (not inside a while or a function) that are in `scope`: walked
  # from the roots, not below such a node.
  defp shared(exprs, scope) do
    {_, {found, _seen}} = traverse_all(exprs, {[], MapSet.new()}, scope)
    Enum.reverse(found)
  end

  defp traverse_all(list, acc, scope) when is_list(list),
    do: Enum.map_reduce(list, acc, &traverse_all(&1, &2, scope))

  defp traverse_all(other, acc, scope),
    do: Composite.traverse(other, acc, &collect(&1, &2, scope))

  defp collect(%Nx.Tensor{data: %DExpr{id: id, op: op}} = t, {found, seen} = acc, scope) do
    cond do
      MapSet.member?(seen, id) or op == :constant ->
        {t, acc}

      Map.has_key?(scope, id) ->
        {t, {[t | found], MapSet.put(seen, id)}}

      true ->
        {_, acc} =
          Tree.apply_args(t, :scope, {found, MapSet.put(seen, id)}, &collect(&1, &2, scope))

        {t, acc}
    end
  end

  defp collect(other, acc, _scope), do: {other, acc}

  ## Flushing

  @doc false
  # Makes every tensor of `tensors` a slot: those that are not (expressions of the program
  # being built), and those for which `copy?` is true, are computed by one program step
  # into new slots. `modes`: :keep (resident) or :return (read back with the reply), one
  # for all or a list.
  defp flush(tensors, ctx, copy? \\ fn _ -> false end, modes \\ :keep) do
    modes = if is_list(modes), do: modes, else: modes(tensors, modes)

    pending =
      tensors
      |> Enum.zip(modes)
      |> Enum.with_index()
      |> Enum.filter(fn {{%{data: %Sym{slot: s}} = t, mode}, _} ->
        s == nil or copy?.(t) or mode == :return
      end)

    if pending == [] do
      {tensors, ctx}
    else
      exprs = Enum.map(pending, fn {{t, _}, _} -> t.data.expr end)
      program = Program.build(exprs, List.duplicate(nil, ctx.next), ctx.trace)

      {outs, ctx} =
        Enum.map_reduce(pending, ctx, fn {{t, _}, _}, ctx -> new_slot(ctx, t, :made) end)

      modes = Enum.map(pending, fn {{_, mode}, _} -> mode end)
      ctx = step(ctx, {:program, program, slots(outs), modes})
      by_index = pending |> Enum.map(&elem(&1, 1)) |> Enum.zip(outs) |> Map.new()

      tensors =
        tensors
        |> Enum.with_index()
        |> Enum.map(fn {t, i} -> Map.get(by_index, i, t) end)

      # Later uses of a flushed expression read its slot instead of computing it again.
      flushed =
        pending |> Enum.zip(outs) |> Map.new(fn {{{t, _}, _}, o} -> {t.data.expr.id, o} end)

      {tensors, %{ctx | memo: rebind(ctx.memo, flushed)}}
    end
  end

  defp modes(list, last_mode), do: List.duplicate(:keep, length(list) - 1) ++ [last_mode]

  defp rebind(memo, flushed) do
    Map.new(memo, fn
      {k, %Nx.Tensor{data: %Sym{slot: nil, expr: %Expr{id: id}}} = v} ->
        {k, Map.get(flushed, id, v)}

      other ->
        other
    end)
  end

  defp slots(tensors), do: Enum.map(tensors, & &1.data.slot)

  defp step(ctx, step), do: %{ctx | steps: [step | ctx.steps]}

  ## Functions inside expressions (reduce, window_reduce, ...)

  # A :fun node as the Elixir function Mure.Backend's callback expects: evaluated with
  # Nx.Defn.Evaluator on whatever tensors it gets (symbolic ones while Mure.Backend.Trace
  # traces it into node ops; Nx.BinaryBackend ones where the backend falls back).
  defp closure(1, expr), do: fn a -> evaluate(expr, [a]) end
  defp closure(2, expr), do: fn a, b -> evaluate(expr, [a, b]) end

  defp evaluate(expr, args) do
    params = Enum.map(args, fn a -> fn -> Nx.to_tensor(a) end end)
    [result] = Nx.Defn.Evaluator.__jit__(make_ref(), [], fn _ -> expr end, [params], [])
    result
  end
end
