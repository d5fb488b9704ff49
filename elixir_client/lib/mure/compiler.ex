defmodule Mure.Compiler do
  @moduledoc """
  An `Nx.Defn.Compiler`: `defn` functions run on a mure node, each call as one program.

      {:ok, conn} = Mure.start_link([])
      Nx.default_backend({Mure.Backend, connection: conn})

      fun = Nx.Defn.jit(&MyModel.predict/2, compiler: Mure, connection: conn)
      fun.(params, batch)       # one {:program, ...} request; results stay on the node

  (`compiler: Mure` and `compiler: Mure.Compiler` are the same.) The function is traced
  once per argument signature (types, shapes, names) and the hooks given; the plan made
  from the trace is cached (in `Mure.jit`'s cache) and reused for every later call with
  that signature. The results are `Mure.Backend` tensors, resident on the node and owned
  as eager `Mure.Backend` results are (see "Lifetime" in `Mure.Backend`).

  ## Options

    * `:connection` - the `Mure.Connection` to run on; default: that of the first
      `Mure.Backend` argument, else of the default backend if it is `Mure.Backend`, else
      `config :mure, Mure.Backend, connection: name`
    * `:device` - `:cpu`, `:opencl` or `:auto` (default: the node's choice)
    * `:timeout` - for each program the function runs, in ms (default 60 000: the first
      run of a program may build its fused kernels), or `:infinity`
    * `:hooks` - `%{name => fun}`, as for `Nx.Defn.Evaluator`: functions that run on the
      client with the hooked value (downloaded) as the function runs
    * `:max_iterations` - the most iterations a `while` run on the node may take (default
      10 000 000, the node's default `max_loop_iterations`; the smaller of the two applies);
      a loop still going at the bound raises `Mure.Error`
    * `:connections` - a list of connections: partitions of an `Nx.Serving` (below); a
      call without partitions runs on the first
    * `:cluster` - a `Mure.Cluster` (pid or name): its ready members' connections, as
      `:connections`
    * `:max_concurrency` - partitions per connection and device (default 1), as for
      `Nx.Defn.Evaluator`: batches in flight on each at once

  ## Partitions (`Nx.Serving`)

  An `Nx.Serving` started with `partitions: true` runs one partition per entry of
  `__partitions_options__/1`, and hands each batch to a partition that is free:

    * with `:connections` and/or `:cluster`: one partition per connection (per member of
      the cluster that is ready when the serving starts), so batches spread over the nodes;
    * else, without `:device`, on a node that has both a CPU and an OpenCL device: two
      partitions on its connection, `device: :cpu` and `device: :opencl`;
    * else one partition.

  A batch's results are tensors of the serving's process (see "Lifetime" in
  `Mure.Backend`), which lives as long as the serving: copy them out in the batch
  function, and they are freed as they are copied.

      serving =
        Nx.Serving.new(
          fn opts ->
            predict = Nx.Defn.jit(&MyModel.predict/1, opts)
            fn batch -> batch |> predict.() |> Nx.backend_transfer(Nx.BinaryBackend) end
          end,
          compiler: Mure,
          cluster: MyApp.Cluster
        )

      children = [{Nx.Serving, serving: serving, name: MyServing, partitions: true, batch_size: 64}]
      Nx.Serving.batched_run(MyServing, Nx.Batch.stack([x]))

  ## How a function becomes programs

  Every op is lowered by `Mure.Backend`'s own callback (the same Nx-op-to-node-op mapping as
  eager ops), as an expression of one program instead of a request; arguments are the
  program's inputs (by handle when they are `Mure.Backend` tensors of the connection, their
  bytes in the program otherwise), constants and captured tensors are inlined, tuples and
  maps are containers, `optional` ops use the node's op when `Mure.Backend` has one and
  their fallback expression otherwise. A straight-line function is **one request**.

  `while` and `cond` run on the node when they are straight-line: the condition and the body
  of a `while` (each branch of a `cond`) lowered on their own make no client step (no hook,
  no op the node lacks, no client loop inside). A `while` then becomes one `{:while, ...}`
  node of the program (docs/protocol.md, "while / if"): the node runs every iteration, and
  the tensors the loop captures are its invariants; a `cond` becomes nested `{:if, ...}`
  nodes (one per clause; its predicates are computed before the first). Loops nest. A
  training loop of 100 steps is then one request, not 100. The loop's bound is the option
  `:max_iterations` (and the node's `max_loop_iterations`); a loop still running at the
  bound raises `Mure.Error` (`:out_of_range`).

  What one program cannot hold splits the function there: the values needed are computed
  by the program so far and stay on the node; then

    * an op the node lacks (see "Ops the node does not have yet" in `Mure.Backend`) runs as
      the eager `Mure.Backend` op;
    * a `while` that is not straight-line runs on the client: the condition is tested once
      on the initial state, then each iteration is one program (the body and the test of
      the condition on the new state, whose result comes back in the reply): one round
      trip per iteration;
    * a `cond` with a branch that is not straight-line tests its clauses in order (a
      program each, the predicate in the reply) and runs the chosen branch;
    * hooks get their values downloaded and run on the client;

  and the function goes on with a new program.

  ## Examples

      iex> {:ok, conn} = Mure.start_link([])
      iex> fun = Nx.Defn.jit(fn x -> Nx.sum(Nx.exp(x)) end, compiler: Mure, connection: conn)
      iex> fun.(Nx.tensor([0.0, 0.0, 0.0])) |> Nx.to_number()
      3.0
      iex> Mure.stop(conn)
      :ok

  """

  @behaviour Nx.Defn.Compiler

  # The default bound of a `while` run on the node: the node's own default cap
  # (max_loop_iterations in config/mure.conf); the smaller of the two applies.
  @max_iterations 10_000_000

  alias Mure.Backend.Node
  alias Mure.Compiler.{Lower, Run}
  alias Mure.Request

  @impl true
  def __jit__(key, vars, fun, args_list, opts),
    do: __compile__(key, vars, fun, opts).(args_list)

  @impl true
  def __compile__(key, vars, fun, opts) do
    opts = validate!(opts)
    {plan, used} = plan(key, vars, fun, opts)

    fn args_list ->
      Enum.map(args_list, fn args ->
        args = arguments(args, used, vars)
        {conn, device} = target(args, opts)
        Run.run(plan, args, conn, device, opts[:timeout])
      end)
    end
  end

  @doc """
  `Nx.Defn.stream/3` on a node: each element sent to the stream runs the function as a
  compiled call (one program when the function is straight-line), with the accumulator
  kept on the node between elements.

  The stream's outputs and its final accumulator (`Nx.Stream.done/1`) belong to the
  process that started the stream (see "Lifetime" in `Mure.Backend`); accumulators of
  earlier elements are freed as the next one replaces them.

  ## Examples

      iex> {:ok, conn} = Mure.start_link([])
      iex> stream =
      ...>   Nx.Defn.stream(fn x, acc -> {Nx.multiply(x, 2), Nx.add(x, acc)} end,
      ...>     [Nx.template({}, :f32), Nx.tensor(0.0)], compiler: Mure, connection: conn)
      iex> Nx.Stream.send(stream, Nx.tensor(1.0))
      iex> Nx.Stream.recv(stream) |> Nx.to_number()
      2.0
      iex> Nx.Stream.send(stream, Nx.tensor(2.0))
      iex> Nx.Stream.recv(stream) |> Nx.to_number()
      4.0
      iex> Nx.Stream.done(stream) |> Nx.to_number()
      3.0
      iex> Mure.stop(conn)
      :ok

  """
  @impl true
  def __stream__(key, input, acc, vars, fun, [args], opts) do
    opts = validate!(opts)
    {plan, used} = plan(key, vars, fun, opts)
    count = Nx.Defn.Composite.count(input) + Nx.Defn.Composite.count(acc)
    rest = Enum.drop(args, count)
    caller = Node.owner()

    [
      Nx.Defn.Stream.start_link(input, acc, fn input_params, acc ->
        # The stream's own process runs each element for the caller: what it makes belongs
        # to the caller (Mure.Backend.Node.owner/0 reads $callers), not to the stream's
        # process, which exits at Nx.Stream.done/1.
        Process.put(:"$callers", [caller])
        acc_params = Nx.Defn.Composite.flatten_list([acc]) |> Enum.map(&fn -> &1 end)
        params = arguments(input_params ++ acc_params ++ rest, used, vars)
        {conn, device} = target(params, opts)
        {output, new_acc} = Run.run(plan, params, conn, device, opts[:timeout])
        free_old_acc(new_acc, output)
        {output, new_acc}
      end)
    ]
  end

  # The accumulator an element replaces is freed, unless it was the stream's initial one
  # (the caller's) or also an output (the caller has it).
  defp free_old_acc(new_acc, output) do
    keys = fn container ->
      for %Nx.Tensor{data: %Mure.Backend{ref: t}} <- Nx.Defn.Composite.flatten_list([container]),
          do: {t.session, t.id}
    end

    output_keys = MapSet.new(keys.(output))

    for %Nx.Tensor{data: %Mure.Backend{ref: t}} = old <-
          Process.get(:"$mure_stream_acc", []),
        not MapSet.member?(output_keys, {t.session, t.id}),
        do: Nx.backend_deallocate(old)

    owned =
      for %Nx.Tensor{data: %Mure.Backend{ref: t}} = new <-
            Nx.Defn.Composite.flatten_list([new_acc]),
          not MapSet.member?(output_keys, {t.session, t.id}),
          do: new

    Process.put(:"$mure_stream_acc", owned)
  end

  # The plan of `fun` for this signature and these hooks, and the indices of the
  # arguments it reads: traced and lowered once, then taken from Mure.jit's cache.
  defp plan(key, vars, fun, opts) do
    # The arguments as Nx passes them at call time: flat, one per tensor of `vars`.
    flat = Nx.Defn.Composite.flatten_list(vars)
    # The signature: the arguments' structure (containers, map keys) with their tensors'
    # types, shapes, names and vectorized axes.
    signature = Enum.map(vars, &Nx.Defn.Composite.traverse(&1, fn t -> %{t | data: nil} end))
    cache_key = {__MODULE__, key, signature, opts[:hooks], opts[:max_iterations]}

    case Mure.Jit.Cache.get(cache_key) do
      {:ok, planned} ->
        planned

      :error ->
        expr = fun.(vars)

        planned =
          {Lower.plan(expr, flat, opts[:hooks], opts[:max_iterations]), used_parameters(expr)}

        Mure.Jit.Cache.put(cache_key, planned)
        planned
    end
  end

  # The call's arguments: those the function reads, evaluated (Nx passes each as a
  # function: a lazy container's part is only read when used); the others stay templates.
  defp arguments(funs, used, vars) do
    templates = Nx.Defn.Composite.flatten_list(vars)

    [funs, templates, 0..(length(funs) - 1)//1]
    |> Enum.zip_with(fn [f, t, i] -> if MapSet.member?(used, i), do: f.(), else: t end)
  end

  # The indices of the parameters that `expr` reads outside of a while's condition and
  # body, functions and optional's fallbacks (whose parameters are their own).
  defp used_parameters(expr) do
    {_, {used, _seen}} =
      Nx.Defn.Composite.traverse(expr, {MapSet.new(), MapSet.new()}, &collect_parameters/2)

    used
  end

  defp collect_parameters(%Nx.Tensor{data: %Nx.Defn.Expr{id: id, op: op, args: args}} = t, acc) do
    {used, seen} = acc

    cond do
      MapSet.member?(seen, id) ->
        {t, acc}

      op == :parameter ->
        {t, {MapSet.put(used, hd(args)), MapSet.put(seen, id)}}

      true ->
        {_, acc} =
          Nx.Defn.Tree.apply_args(t, :scope, {used, MapSet.put(seen, id)}, &collect_parameters/2)

        {t, acc}
    end
  end

  defp collect_parameters(other, acc), do: {other, acc}

  @doc """
  Runs `fun` and counts the programs that compiled functions send on `conn` meanwhile, from
  any process: `{fun's result, count}`. Each program is one round trip to the node, so this
  is what a call costs in round trips (a straight-line function, or one whose loops run on
  the node: 1). Programs are also the telemetry event `[:mure, :compiler, :program]`
  (measurements `%{count: 1, nodes: n}`, metadata `%{conn: conn}`).

  ## Examples

      iex> {:ok, conn} = Mure.start_link([])
      iex> f = Nx.Defn.jit(fn x -> Nx.sum(Nx.exp(x)) end, compiler: Mure, connection: conn)
      iex> {_result, programs} = Mure.Compiler.programs_sent(conn, fn -> f.(Nx.tensor([1.0, 2.0])) end)
      iex> programs
      1
      iex> Mure.stop(conn)
      :ok

  """
  @spec programs_sent(GenServer.server(), (() -> result)) :: {result, non_neg_integer()}
        when result: term()
  def programs_sent(conn, fun) when is_function(fun, 0) do
    count = :counters.new(1, [])
    id = {__MODULE__, make_ref()}
    :telemetry.attach(id, [:mure, :compiler, :program], &__MODULE__.counted/4, {conn, count})

    try do
      result = fun.()
      {result, :counters.get(count, 1)}
    after
      :telemetry.detach(id)
    end
  end

  @doc false
  def counted(_event, _measurements, %{conn: c}, {conn, count}) do
    if c == conn, do: :counters.add(count, 1, 1)
  end

  @impl true
  def __partitions_options__(opts) do
    {compiler, opts} = Keyword.pop(opts, :compiler)
    opts = validate!(opts)
    base = Keyword.drop(opts, [:cluster, :connections, :max_concurrency])
    conns = Enum.uniq(List.wrap(opts[:connections]) ++ cluster_conns(opts[:cluster]))

    partitions =
      cond do
        conns != [] -> Enum.map(conns, &Keyword.put(base, :connection, &1))
        opts[:device] != nil -> [base]
        conn = default_conn(opts) -> device_partitions(base, conn)
        true -> [base]
      end

    partitions = Enum.flat_map(partitions, &List.duplicate(&1, opts[:max_concurrency]))
    if compiler, do: Enum.map(partitions, &[{:compiler, compiler} | &1]), else: partitions
  end

  # The connections of the cluster's ready members, in node order.
  defp cluster_conns(nil), do: []

  defp cluster_conns(cluster) do
    members =
      try do
        Mure.Cluster.members(cluster)
      catch
        :exit, reason ->
          raise ArgumentError,
                "Mure.Compiler: the cluster #{inspect(cluster)} is not running " <>
                  "(#{Exception.format_exit(reason)})"
      end

    case Enum.sort_by(members, & &1.node) do
      [] ->
        raise ArgumentError,
              "Mure.Compiler: the cluster #{inspect(cluster)} has no ready member: wait for " <>
                "them first (Mure.Cluster.await_members/3)"

      members ->
        Enum.map(members, & &1.conn)
    end
  end

  # One partition per device of the node (:cpu and :opencl where it has both).
  defp device_partitions(base, conn) do
    case Mure.devices(conn) do
      {:ok, devices} ->
        ids = Enum.map(devices, & &1.id)
        base = Keyword.put(base, :connection, conn)

        if :blis in ids and :opencl in ids,
          do: [Keyword.put(base, :device, :cpu), Keyword.put(base, :device, :opencl)],
          else: [base]

      {:error, error} ->
        raise error
    end
  end

  @impl true
  def __to_backend__(opts) do
    opts = validate!(opts)

    opts = Keyword.put(opts, :connection, opts[:connection] || first_conn(opts))

    {Mure.Backend,
     Keyword.take(opts, [:connection, :device]) |> Enum.reject(&is_nil(elem(&1, 1)))}
  end

  defp validate!(opts) do
    opts =
      Keyword.validate!(opts, [
        :connection,
        :connections,
        :cluster,
        :device,
        # Nx.Serving's, for functions that take a batch key: not used here.
        :batch_keys,
        max_concurrency: 1,
        hooks: %{},
        timeout: 60_000,
        max_iterations: @max_iterations
      ])

    unless is_integer(opts[:max_iterations]) and opts[:max_iterations] >= 1 do
      raise ArgumentError,
            "Mure.Compiler: expected :max_iterations to be a positive integer, got: " <>
              inspect(opts[:max_iterations])
    end

    unless is_integer(opts[:max_concurrency]) and opts[:max_concurrency] > 0 do
      raise ArgumentError,
            "Mure.Compiler: expected :max_concurrency to be a positive integer, got: " <>
              inspect(opts[:max_concurrency])
    end

    unless opts[:connections] == nil or (is_list(opts[:connections]) and opts[:connections] != []) do
      raise ArgumentError,
            "Mure.Compiler: expected :connections to be a non-empty list of connections, got: " <>
              inspect(opts[:connections])
    end

    unless opts[:cluster] == nil or is_pid(opts[:cluster]) or is_atom(opts[:cluster]) or
             is_tuple(opts[:cluster]) do
      raise ArgumentError,
            "Mure.Compiler: expected :cluster to be a Mure.Cluster (pid or name), got: " <>
              inspect(opts[:cluster])
    end

    unless opts[:device] in [nil, :cpu, :opencl, :auto] do
      raise ArgumentError,
            "Mure.Compiler: expected :device to be :cpu, :opencl or :auto, got: " <>
              inspect(opts[:device])
    end

    unless is_map(opts[:hooks]) do
      raise ArgumentError,
            "Mure.Compiler: expected :hooks to be a map of names to functions, got: " <>
              inspect(opts[:hooks])
    end

    Request.budget(opts[:timeout])
    opts
  end

  # The connection and device of a call: the options', else the first Mure.Backend
  # argument's, else the default backend's (when it is Mure.Backend), else the config.
  defp target(args, opts) do
    from_arg =
      Enum.find_value(args, fn
        %Nx.Tensor{data: %Mure.Backend{ref: ref, device: device}} -> {ref.conn, device}
        _ -> nil
      end)

    from_default =
      case Nx.default_backend() do
        {Mure.Backend, bopts} -> {bopts[:connection], bopts[:device]}
        _ -> {nil, nil}
      end

    config = Application.get_env(:mure, Mure.Backend, [])[:connection]
    {arg_conn, arg_device} = from_arg || {nil, nil}
    conn = opts[:connection] || first_conn(opts) || arg_conn || elem(from_default, 0) || config

    unless conn do
      raise ArgumentError,
            "Mure.Compiler needs a connection: Nx.Defn.jit(fun, compiler: Mure, connection: " <>
              "conn), a Mure.Backend argument, Nx.default_backend({Mure.Backend, connection: " <>
              "conn}), or config :mure, Mure.Backend, connection: name"
    end

    {conn, opts[:device] || arg_device || elem(from_default, 1) || :auto}
  end

  # Without partitions, :connections and :cluster name where to run: the first of them.
  defp first_conn(opts) do
    case {opts[:connections], opts[:cluster]} do
      {[conn | _], _} -> conn
      {nil, nil} -> nil
      {nil, cluster} -> hd(cluster_conns(cluster))
    end
  end

  # The connection a call would run on, known before any argument is: the option's, the
  # default backend's (unless it names a device), the config's.
  defp default_conn(opts) do
    from_default =
      case Nx.default_backend() do
        {Mure.Backend, bopts} -> if bopts[:device] in [nil, :auto], do: bopts[:connection]
        _ -> nil
      end

    opts[:connection] || from_default ||
      Application.get_env(:mure, Mure.Backend, [])[:connection]
  end
end
