defmodule Mure.Compiler.Run do
  @moduledoc false
  # Runs a plan of Mure.Compiler.Lower on a connection: each {:program, ...} step is one
  # request; the other steps run on the client over resident tensors. Slots hold Nx
  # tensors (Mure.Backend ones, or others: arguments of another backend, captured
  # tensors, predicates read back with a program's reply). Every tensor a step makes and
  # the result does not hold is freed at the end (and, in a while loop, after each
  # iteration: the loop's memory does not grow with its iterations). Each program sent is
  # the telemetry event [:mure, :compiler, :program] (measurements %{count: 1, nodes: n},
  # metadata %{conn: conn}): the round trips of a compiled function, counted.

  alias Mure.Backend.Node
  alias Mure.Compiler.Sym
  alias Mure.{Request, Tensor}
  alias Nx.Defn.Composite

  # Arguments of another backend larger than this are uploaded before the program (in
  # pieces where needed) rather than sent in it.
  @inline_bytes 1_048_576

  @doc false
  # The function's result (the plan's result container, Mure.Backend tensors) for `args`.
  @spec run(map(), [Nx.Tensor.t()], GenServer.server(), atom(), timeout()) :: term()
  def run(plan, args, conn, device, timeout) do
    env = plan.params |> Enum.zip(Enum.map(args, &Nx.devectorize/1)) |> Map.new()
    env = for {s, {_t, {:tensor, t}}} <- plan.templates, into: env, do: {s, t}
    st = %{conn: conn, device: device, templates: plan.templates, timeout: timeout}
    {env, made} = steps(plan.steps, env, st, [])

    {expr, slots} = plan.result

    {result, {[], made}} =
      Composite.traverse(expr, {slots, made}, fn template, {[s | rest], made} ->
        {value, made} = to_mure(Map.fetch!(env, s), st, made)
        {%{template | data: value.data}, {rest, made}}
      end)

    kept = [result] |> Composite.flatten_list() |> Enum.map(&ref/1) |> keys()
    free(Enum.reject(made, &MapSet.member?(kept, key(&1))))
    result
  end

  defp steps(steps, env, st, made), do: Enum.reduce(steps, {env, made}, &step(&1, &2, st))

  defp step({:program, program, outs, modes}, {env, made}, st) do
    {inputs, made} =
      Enum.map_reduce(program.params, made, fn {s, _, _}, made ->
        input(Map.fetch!(env, s), st, made)
      end)

    handles = for {:handle, _, t} <- inputs, do: t

    inputs =
      Enum.map(inputs, fn
        {:handle, id, _} -> {:handle, id}
        data -> data
      end)

    outputs = Enum.zip_with(program.outputs, modes, fn {vid, _, _}, mode -> {vid, mode} end)

    request =
      if st.device in [nil, :auto],
        do: {:program, inputs, program.nodes, outputs},
        else: {:program, inputs, program.nodes, outputs, %{device: st.device}}

    sessions = handles |> Enum.map(& &1.session) |> Enum.uniq()

    :telemetry.execute([:mure, :compiler, :program], %{count: 1, nodes: length(program.nodes)}, %{
      conn: st.conn
    })

    values =
      case Request.call(st.conn, request, sessions, Node.owner(), Request.budget(st.timeout)) do
        {:ok, values, node, session} when is_list(values) and length(values) == length(outs) ->
          Enum.zip_with([values, outs, program.outputs], fn [value, slot, {_, type, shape}] ->
            decode(value, slot, {type, shape}, node, session, st)
          end)

        {:ok, other, _node, _session} ->
          raise Mure.Error,
            kind: :internal,
            message: "Mure.Compiler: unexpected reply to a program: #{inspect(other, limit: 5)}"

        {:error, error} ->
          Node.unwrap!({:error, error}, "compiled defn function", handles)
      end

    env = outs |> Enum.zip(values) |> Enum.into(env)
    {env, for(%Nx.Tensor{data: %Mure.Backend{}} = t <- values, do: ref(t)) ++ made}
  end

  defp step({:client, op, args, out}, {env, made}, st) do
    {args, made} = concrete(args, env, st, made)
    result = apply(Mure.Backend, op, args)
    {env, made} = bind(out, result, env, made)
    {env, made}
  end

  defp step({:hook, fun, container}, {env, made}, _st) do
    container
    |> Composite.traverse(fn %{data: %Sym{slot: s}} ->
      Nx.backend_copy(Map.fetch!(env, s), Nx.BinaryBackend)
    end)
    |> fun.()

    {env, made}
  end

  defp step({:while, init, params, first, body, out}, {env, made}, st) do
    state = Enum.map(init, &Map.fetch!(env, &1))
    {env1, made1} = steps(first.steps, bind_all(env, params, state), st, [])
    pred = Map.fetch!(env1, first.pred.data.slot)
    free(made1)
    {state, owned} = loop(state, pred, [], env, params, body, st)
    {bind_all(env, out, state), owned ++ made}
  end

  defp step({:cond, clauses, last, out}, {env, made}, st) do
    {values, env, made} = choose(clauses, last, env, made, st)
    {bind_all(env, out, values), made}
  end

  # Runs iterations while `pred` holds. `owned`: the tensors of `state` that iterations
  # made (the initial state belongs to the caller).
  defp loop(state, pred, owned, env, params, body, st) do
    if truthy?(pred) do
      {env1, made1} = steps(body.steps, bind_all(env, params, state), st, [])
      new_state = Enum.map(body.state, &Map.fetch!(env1, &1.data.slot))
      keep = new_state |> Enum.flat_map(&List.wrap(ref(&1))) |> keys()
      {kept, dropped} = Enum.split_with(made1 ++ owned, &MapSet.member?(keep, key(&1)))
      free(dropped)
      pred = Map.fetch!(env1, body.pred.data.slot)
      loop(new_state, pred, Enum.uniq_by(kept, &key/1), env, params, body, st)
    else
      {state, owned}
    end
  end

  defp choose([{pred_block, body_block} | rest], last, env, made, st) do
    {env, made} = steps(pred_block.steps, env, st, made)
    pred = Map.fetch!(env, pred_block.value.data.slot)

    if truthy?(pred),
      do: run_branch(body_block, env, made, st),
      else: choose(rest, last, env, made, st)
  end

  defp choose([], last, env, made, st), do: run_branch(last, env, made, st)

  defp run_branch(block, env, made, st) do
    {env, made} = steps(block.steps, env, st, made)
    {Enum.map(block.value, &Map.fetch!(env, &1.data.slot)), env, made}
  end

  defp truthy?(pred), do: Nx.to_number(pred) != 0

  ## Values

  defp bind_all(env, slots, values), do: slots |> Enum.zip(values) |> Enum.into(env)

  defp bind(slot, value, env, made) when is_integer(slot),
    do: {Map.put(env, slot, value), List.wrap(ref(value)) ++ made}

  defp bind(slots, values, env, made) when is_tuple(slots) do
    [Tuple.to_list(slots), Tuple.to_list(values)]
    |> Enum.zip()
    |> Enum.reduce({env, made}, fn {s, v}, {env, made} -> bind(s, v, env, made) end)
  end

  # A program input: a resident tensor of this connection by handle; any other tensor's
  # bytes in the program (uploaded first when large).
  defp input(%Nx.Tensor{data: %Mure.Backend{ref: %Tensor{} = t}} = nx, st, made) do
    if same_conn?(t.conn, st.conn),
      do: {{:handle, t.id, t}, made},
      else: input(Nx.backend_copy(nx, Nx.BinaryBackend), st, made)
  end

  defp input(%Nx.Tensor{} = t, st, made) do
    if Nx.byte_size(t) > @inline_bytes do
      {t, made} = to_mure(t, st, made)
      input(t, st, made)
    else
      {{:data, t.type, t.shape, Nx.to_binary(t)}, made}
    end
  end

  # The tensors anywhere in a client op's arguments, as Mure.Backend tensors of st.conn.
  defp concrete(:"$backend_opts", _env, st, made),
    do: {[connection: st.conn, device: st.device || :auto], made}

  defp concrete(%Nx.Tensor{data: %Sym{slot: s}}, env, st, made),
    do: to_mure(Map.fetch!(env, s), st, made)

  defp concrete(list, env, st, made) when is_list(list),
    do: Enum.map_reduce(list, made, &concrete(&1, env, st, &2))

  defp concrete(tuple, env, st, made) when is_tuple(tuple) do
    {list, made} = tuple |> Tuple.to_list() |> concrete(env, st, made)
    {List.to_tuple(list), made}
  end

  defp concrete(other, _env, _st, made), do: {other, made}

  defp to_mure(%Nx.Tensor{data: %Mure.Backend{ref: t}} = nx, st, made) do
    if same_conn?(t.conn, st.conn), do: {nx, made}, else: transfer(nx, st, made)
  end

  defp to_mure(%Nx.Tensor{} = nx, st, made), do: transfer(nx, st, made)

  defp transfer(nx, st, made) do
    t = Nx.backend_copy(nx, {Mure.Backend, connection: st.conn, device: st.device || :auto})
    {t, [ref(t) | made]}
  end

  defp same_conn?(a, b), do: a == b or GenServer.whereis(a) == GenServer.whereis(b)

  defp decode(value, slot, {type, shape}, node, session, st) do
    {template, _} = Map.fetch!(st.templates, slot)

    case value do
      {^type, ^shape, bin} when is_binary(bin) ->
        bin |> Nx.from_binary(type, backend: Nx.BinaryBackend) |> Nx.reshape(shape)

      other ->
        case Tensor.from_reply(st.conn, other, node, session, {type, shape}) do
          {:ok, t} ->
            %{template | data: %Mure.Backend{ref: t, device: st.device || :auto}}

          :error ->
            raise Mure.Error,
              kind: :internal,
              message:
                "Mure.Compiler: the node returned #{inspect(other, limit: 4)} for " <>
                  "#{inspect({type, shape})}"
        end
    end
  end

  defp ref(%Nx.Tensor{data: %Mure.Backend{ref: t}}), do: t
  defp ref(_), do: nil

  defp key(%Tensor{session: s, id: id}), do: {s, id}
  defp keys(refs), do: refs |> Enum.reject(&is_nil/1) |> MapSet.new(&key/1)

  defp free(refs) do
    refs |> Enum.reject(&is_nil/1) |> Enum.uniq_by(&key/1) |> Enum.each(&Request.free_async/1)
  end
end
