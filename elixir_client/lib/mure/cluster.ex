defmodule Mure.Cluster do
  @moduledoc """
  Many mure nodes behind one call: finds the nodes registered with epmd on a list of hosts,
  measures each, and runs ops and programs data-parallel across them, each member's share
  following its measured speed. A member that dies or is cut off mid-job does not fail the
  job: its unfinished share is re-run on the others.

      {:ok, cluster} = Mure.Cluster.start_link(hosts: ["10.0.0.11", "10.0.0.12", "10.0.0.13"])
      :ok = Mure.Cluster.await_members(cluster, 3, 30_000)
      {:ok, b} = Mure.Cluster.share(cluster, {b_bin, {:f, 32}, {4096, 4096}})
      {:ok, c_bin} = Mure.Cluster.dot(cluster, {a_bin, {:f, 32}, {8192, 4096}}, b)
      IO.puts(Mure.Cluster.format_status(Mure.Cluster.status(cluster)))

  ## Membership

  Every `:discover_interval` the cluster asks epmd on each host for its nodes
  (`:erl_epmd.names/1`) and connects to those whose name starts with `:name_prefix`
  (nodes listed in `:nodes` are tried too). It follows hidden nodes going up and down
  (`:net_kernel.monitor_nodes/2`): a member whose node goes down leaves at once, and joins
  again when epmd lists it again. The local BEAM must be distributed.

  ## Speeds

  A member is measured as it joins, from this client: round-trip time, upload and
  download bandwidth of its link, sgemm GFLOP/s and elementwise GB/s of the node with data
  resident (each op grown until it keeps the node busy, so that a node under a CPU quota is
  measured at the speed it keeps up). These figures give a first estimate of each member's
  time per row of a job. After each job, what it really took on each member is kept per
  program and used for the next job of that program; matrix products also correct the
  member's sgemm rate or link bandwidth, whichever set the pace. `status/1` shows the
  figures and where they come from (`:probe` or `:work`).

  ## Jobs

  `run/4` runs a jit'ed function (see `Mure.jit/2`) with its `{binary, type, shape}`
  arguments split along axis 0; `dot/4` multiplies a matrix split by rows with a shared
  one. Shared tensors (`share/3`) go whole to every member, uploaded once per member and
  kept there. The pieces' results come back in row order; a function that reduces over
  axis 0 (`sum`, `product`, `max`, `min`) gets its partial results combined on the client.

  The caller's process drives the job; several jobs may run at once from different
  processes.
  """

  use GenServer

  require Logger

  alias Mure.{ClusterError, ConnectionError, Types}
  alias Mure.Cluster.{Job, Member, Shared}

  @typedoc "A cluster: its pid or registered name."
  @type cluster :: GenServer.server()

  @typedoc "Data on the client: split along axis 0 by `run/4` and `dot/4`."
  @type data :: {binary(), Mure.type(), Mure.shape()}

  @start_opts [
    :name,
    hosts: [],
    nodes: [],
    name_prefix: "mure",
    discover_interval: 2_000,
    probe: true,
    connect_opts: [],
    health_timeout: 3_000,
    timeout: 300_000
  ]

  @job_opts [:timeout, :device, :piece_rows, :progress, balance: :speed, combine: :auto]

  ## Starting

  @doc """
  Starts a cluster process (linked to the caller).

  ## Options

    * `:hosts` - host names or addresses whose epmd to ask for mure nodes
    * `:nodes` - node names to join as well (e.g. `[:"mure@10.0.0.21"]`)
    * `:name_prefix` - join the epmd names that start with this (default `"mure"`)
    * `:discover_interval` - ms between two rounds of discovery (default 2000)
    * `:probe` - measure members as they join (default `true`; without it every member
      counts as equally fast until jobs say otherwise)
    * `:connect_opts` - options for `Mure.connect/2` (`:cookie`, `:timeout`, ...)
    * `:health_timeout` - ms a member has to answer when a job found it slow (default 3000);
      one that does not is disconnected, and rejoins when it answers epmd again
    * `:timeout` - the default timeout of a job in ms (default 300000)
    * `:name` - register the cluster under this name

  ## Examples

      iex> {:ok, cluster} = Mure.Cluster.start_link(hosts: ["127.0.0.1"], name_prefix: "nobody_here")
      iex> Mure.Cluster.members(cluster)
      []
      iex> Mure.Cluster.stop(cluster)
      :ok

  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = validate_start!(opts)
    GenServer.start_link(__MODULE__, opts, Keyword.take(opts, [:name]))
  end

  @doc """
  A child specification: `{Mure.Cluster, hosts: [...]}` in a supervisor's children.

  ## Examples

      children = [{Mure.Cluster, name: MyApp.Cluster, hosts: ["gpu1.lan", "gpu2.lan"]}]
      Supervisor.start_link(children, strategy: :one_for_one)

  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = validate_start!(opts)
    %{id: opts[:name] || __MODULE__, start: {__MODULE__, :start_link, [opts]}, type: :worker}
  end

  @doc """
  Stops the cluster: every member's connection closes (the nodes free what it held).

  ## Examples

      iex> Mure.Cluster.stop(cluster)
      :ok

  """
  @spec stop(cluster(), timeout()) :: :ok
  def stop(cluster, timeout \\ 30_000), do: GenServer.stop(cluster, :normal, timeout)

  defp validate_start!(opts) do
    opts = Keyword.validate!(opts, @start_opts)

    unless is_list(opts[:hosts]) and Enum.all?(opts[:hosts], &host?/1),
      do: raise(ArgumentError, "Mure.Cluster: :hosts must be a list of host names or addresses")

    unless is_list(opts[:nodes]) and Enum.all?(opts[:nodes], &is_atom/1),
      do: raise(ArgumentError, "Mure.Cluster: :nodes must be a list of node names (atoms)")

    unless is_binary(opts[:name_prefix]),
      do: raise(ArgumentError, "Mure.Cluster: :name_prefix must be a string")

    for key <- [:discover_interval, :health_timeout, :timeout] do
      unless is_integer(opts[key]) and opts[key] > 0,
        do: raise(ArgumentError, "Mure.Cluster: #{inspect(key)} must be a positive integer (ms)")
    end

    unless is_boolean(opts[:probe]),
      do: raise(ArgumentError, "Mure.Cluster: :probe must be a boolean")

    unless Keyword.keyword?(opts[:connect_opts]),
      do: raise(ArgumentError, "Mure.Cluster: :connect_opts must be a keyword list")

    opts
  end

  defp host?(h),
    do: (is_binary(h) and h != "") or (is_atom(h) and h != nil) or (is_list(h) and h != [])

  ## Members

  @doc """
  The members ready to take work: `%{node: node, conn: conn, speeds: speeds, devices:
  [atom], member: pid}` each (`conn` is the member's `Mure` connection; `speeds` is `nil`
  when `probe: false`).

  ## Examples

      iex> Mure.Cluster.members(cluster) |> Enum.map(& &1.node)
      [:"mure@10.77.0.11", :"mure@10.77.0.12"]

  """
  @spec members(cluster()) :: [map()]
  def members(cluster), do: GenServer.call(cluster, :members)

  @doc false
  @spec joining?(cluster()) :: boolean()
  def joining?(cluster), do: GenServer.call(cluster, :joining?)

  @doc """
  Waits until at least `count` members are ready: `:ok`, or
  `{:error, %Mure.ClusterError{reason: :timeout}}` after `timeout` ms.

  ## Examples

      iex> Mure.Cluster.await_members(cluster, 3, 30_000)
      :ok

  """
  @spec await_members(cluster(), pos_integer(), timeout()) :: :ok | {:error, ClusterError.t()}
  def await_members(cluster, count, timeout \\ 30_000) when is_integer(count) and count > 0 do
    deadline = if timeout == :infinity, do: :infinity, else: now() + timeout
    do_await(cluster, count, deadline)
  end

  defp do_await(cluster, count, deadline) do
    ready = length(members(cluster))

    cond do
      ready >= count ->
        :ok

      deadline != :infinity and now() >= deadline ->
        {:error, %ClusterError{reason: :timeout, details: "#{ready} of #{count} members ready"}}

      true ->
        Process.sleep(50)
        do_await(cluster, count, deadline)
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  ## Shared tensors

  @doc """
  Shares `{binary, type, shape}` data with every member: each uploads it once, the first
  time a job needs it, and keeps it. It belongs to the calling process: it is freed on
  every member by `unshare/2`, or when the caller exits.

  ## Examples

      iex> {:ok, w} = Mure.Cluster.share(cluster, {w_bin, {:f, 32}, {784, 128}})

  """
  @spec share(cluster(), data(), keyword()) :: {:ok, Shared.t()}
  def share(cluster, {bin, type, shape}, opts \\ []) when is_binary(bin) do
    Keyword.validate!(opts, [])
    Types.check_type!(type, "Mure.Cluster.share")
    Types.check_shape!(shape, "Mure.Cluster.share")
    expected = Types.size(shape) * Types.itemsize(type)

    if byte_size(bin) != expected,
      do:
        raise(
          ArgumentError,
          "Mure.Cluster.share: #{byte_size(bin)} bytes of data, " <>
            "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} needs #{expected}"
        )

    id = System.unique_integer([:positive, :monotonic])
    pid = GenServer.call(cluster, {:register_shared, id, self()})
    {:ok, %Shared{cluster: pid, id: id, type: type, shape: shape, data: bin}}
  end

  @doc """
  Frees a shared tensor on every member.

  ## Examples

      iex> Mure.Cluster.unshare(cluster, w)
      :ok

  """
  @spec unshare(cluster(), Shared.t()) :: :ok
  def unshare(cluster, %Shared{id: id}), do: GenServer.call(cluster, {:unshare, id})

  ## Jobs

  @doc """
  Runs a jit'ed function across the members and returns its result as a binary.

  Each `{binary, type, shape}` argument is split along axis 0 (all of them must have the
  same number of rows); each `Mure.Cluster.Shared` argument goes whole to every member.
  The function must return one tensor, either with one row per input row (the pieces are
  joined in order) or a `sum`, `product`, `max` or `min` (or `all`/`any`) over axis 0 (the
  partial results are combined on the client).

  With `combine: :auto` the function's graph is checked first: every op must keep the rows
  of the split arguments apart (elementwise ops with the rows aligned, reductions and
  products over other axes, a shared right-hand side of a product, a `take` along another
  axis, ...), and only a final reduction may cover axis 0. A function that mixes rows (a
  mean over axis 0 used further on, a sort or transpose along axis 0, ...), or whose result
  does not depend on the split arguments, raises `ArgumentError` rather than giving a wrong
  answer; an explicit `:combine` is the caller's word that its pieces do combine.

  ## Options

    * `:combine` - `:auto` (default: as above, read from the program), `:concat`, `:sum`,
      `:product`, `:max` or `:min`
    * `:balance` - `:speed` (default): shares follow the members' measured speeds, and a
      member that runs out of work takes pieces from the one furthest behind; `:equal`:
      equal shares, nothing moved (a failed member's pieces are still re-run)
    * `:device` - `:auto`, `:cpu` or `:opencl` on every member
    * `:timeout` - ms for the whole job (default: the cluster's `:timeout`)
    * `:piece_rows` - rows per piece (default: about 150 ms of work, at most 4 MiB)
    * `:progress` - a pid sent `{:mure_cluster_progress, %{node: node, start: row, rows: n,
      done: rows_done, total: rows}}` as each piece's result arrives (`node` did rows
      `row..row + n - 1`; `done` of `total` rows are in so far)

  Returns `{:error, %Mure.ClusterError{}}` when no member is left to do the work (or the
  cluster process is not running), and the member's `Mure.Error` when the request itself is
  wrong. A piece that fails for lack of memory or a full queue is retried after a pause; one
  whose member fails is re-run elsewhere; a piece that failed on every member gives its
  error.

  ## Examples

      iex> softplus = Mure.jit(fn x -> x |> Mure.Expr.exp() |> Mure.Expr.log1p() end)
      iex> {:ok, y} = Mure.Cluster.run(cluster, softplus, [{x_bin, {:f, 32}, {1_000_000, 16}}])
      iex> {:ok, total} = Mure.Cluster.run(cluster, Mure.jit(&Mure.Expr.sum/1), [{x_bin, {:f, 32}, {1_000_000, 16}}])

  """
  @spec run(cluster(), Mure.Jit.t(), [data() | Shared.t()], keyword()) ::
          {:ok, binary()} | {:error, Exception.t()}
  def run(cluster, %Mure.Jit{} = jit, args, opts \\ []) when is_list(args) do
    alive(fn ->
      opts = job_opts!(cluster, opts)
      check_shared!(cluster, args)
      Job.run(cluster, jit, args, %{kind: :map, flops_per_row: nil}, opts)
    end)
  end

  # A cluster process that is not running: an error value, not an exit of the caller.
  defp alive(fun) do
    fun.()
  catch
    :exit, {reason, {GenServer, :call, _}} ->
      {:error,
       %ClusterError{
         reason: :no_members,
         details: "the cluster process is not running (#{Exception.format_exit(reason)})"
       }}
  end

  @doc """
  Multiplies `a` (`{binary, type, {m, k}}`, split by rows across the members) by `b` (a
  `Mure.Cluster.Shared` of shape `{k, n}`, or data, shared for this call only) and returns
  the `{m, n}` product as a binary. Both `{:f, 32}` or both `{:f, 64}`.

  Takes the options of `run/4` but `:combine`.

  ## Examples

      iex> {:ok, b} = Mure.Cluster.share(cluster, {b_bin, {:f, 32}, {2048, 2048}})
      iex> {:ok, c} = Mure.Cluster.dot(cluster, {a_bin, {:f, 32}, {8192, 2048}}, b)

  """
  @spec dot(cluster(), data(), Shared.t() | data(), keyword()) ::
          {:ok, binary()} | {:error, Exception.t()}
  def dot(cluster, a, b, opts \\ [])

  def dot(cluster, {_, _, _} = a, {bin, _, _} = b, opts) when is_binary(bin) do
    alive(fn ->
      {:ok, shared} = share(cluster, b)

      try do
        dot(cluster, a, shared, opts)
      after
        unshare(cluster, shared)
      end
    end)
  end

  def dot(cluster, {a_bin, type, a_shape} = a, %Shared{} = b, opts) when is_binary(a_bin) do
    if Keyword.has_key?(opts, :combine),
      do: raise(ArgumentError, "Mure.Cluster.dot: takes no :combine option")

    unless type in [{:f, 32}, {:f, 64}] and b.type == type,
      do:
        raise(
          ArgumentError,
          "Mure.Cluster.dot: both operands must be f32 or both f64, got " <>
            "#{Types.type_to_string(type)} and #{Types.type_to_string(b.type)}"
        )

    case {a_shape, b.shape} do
      {{_m, k}, {k, n}} ->
        alive(fn ->
          opts = job_opts!(cluster, opts)
          check_shared!(cluster, [b])
          jit = Mure.jit(&Mure.Expr.dot/2)
          Job.run(cluster, jit, [a, b], %{kind: :gemm, flops_per_row: 2 * k * n}, opts)
        end)

      _ ->
        raise ArgumentError,
              "Mure.Cluster.dot: expected {m, k} times {k, n}, got " <>
                "#{Types.shape_to_string(a_shape)} and #{Types.shape_to_string(b.shape)}"
    end
  end

  defp job_opts!(cluster, opts) do
    opts = Keyword.validate!(opts, @job_opts)

    unless opts[:balance] in [:speed, :equal],
      do: raise(ArgumentError, "Mure.Cluster: :balance must be :speed or :equal")

    unless opts[:combine] in [:auto, :concat, :sum, :product, :max, :min],
      do:
        raise(
          ArgumentError,
          "Mure.Cluster: :combine must be :auto, :concat, :sum, :product, :max or :min"
        )

    unless opts[:device] in [nil, :auto, :cpu, :opencl],
      do: raise(ArgumentError, "Mure.Cluster: :device must be :auto, :cpu or :opencl")

    unless opts[:piece_rows] == nil or (is_integer(opts[:piece_rows]) and opts[:piece_rows] > 0),
      do: raise(ArgumentError, "Mure.Cluster: :piece_rows must be a positive integer")

    unless opts[:progress] == nil or is_pid(opts[:progress]),
      do: raise(ArgumentError, "Mure.Cluster: :progress must be a pid")

    timeout = opts[:timeout] || GenServer.call(cluster, :default_timeout)

    unless timeout == :infinity or (is_integer(timeout) and timeout > 0),
      do: raise(ArgumentError, "Mure.Cluster: :timeout must be a positive integer or :infinity")

    Keyword.put(opts, :timeout, timeout)
  end

  defp check_shared!(cluster, args) do
    ids = for %Shared{id: id} <- args, do: id

    case GenServer.call(cluster, {:unknown_shared, ids}) do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "Mure.Cluster: shared tensors #{inspect(unknown)} are not shared with this cluster " <>
                "(unshared, or their owner exited)"
    end
  end

  ## Status

  @doc """
  The cluster's state for a person or a dashboard: `:members` (node, state, devices,
  measured speeds, work done, failures), `:departed` (members that left, and why),
  `:refused` (nodes epmd listed that could not be joined, and why),
  `:hosts` (what epmd said on each) and `:jobs` (done, failed, and pieces re-run because
  their member failed).

  ## Examples

      iex> %{members: members, jobs: %{done: _, failed: _}} = Mure.Cluster.status(cluster)

  """
  @spec status(cluster()) :: map()
  def status(cluster), do: GenServer.call(cluster, :status)

  @doc """
  `status/1` as a table, one line per member, then the members that left and the hosts.

  ## Examples

      iex> IO.puts(Mure.Cluster.format_status(Mure.Cluster.status(cluster)))
      node              state  devices       rtt ms  up MB/s  ...

  """
  @spec format_status(map()) :: String.t()
  def format_status(status), do: Mure.Cluster.Table.format(status)

  ## Server

  @impl true
  def init(opts) do
    if Node.alive?() do
      Process.flag(:trap_exit, true)
      :ok = :net_kernel.monitor_nodes(true, node_type: :hidden)

      state = %{
        opts: opts,
        hosts: Enum.map(opts[:hosts], &to_string/1),
        host_status: %{},
        members: %{},
        departed: %{},
        refused: %{},
        epmd_ports: %{},
        shared: %{},
        owners: %{},
        discovering: nil,
        checking: MapSet.new(),
        jobs: %{done: 0, failed: 0, pieces_rerun: 0}
      }

      send(self(), :discover)
      {:ok, state}
    else
      {:stop,
       %ConnectionError{
         reason: :not_alive,
         details: "start the BEAM with --name to use a cluster"
       }}
    end
  end

  @impl true
  def handle_call(:members, _from, state) do
    ready =
      for {node, %{state: :ready} = m} <- state.members do
        %{
          node: node,
          member: m.pid,
          conn: m.conn,
          speeds: m.speeds,
          learned: Map.new(m.learned, fn {key, {spr, _weight, _at}} -> {key, spr} end),
          devices: devices(m.hello)
        }
      end

    {:reply, Enum.sort_by(ready, & &1.node), state}
  end

  def handle_call(:joining?, _from, state),
    do: {:reply, Enum.any?(state.members, fn {_, m} -> m.state == :joining end), state}

  def handle_call(:default_timeout, _from, state), do: {:reply, state.opts[:timeout], state}

  def handle_call({:register_shared, id, owner}, _from, state) do
    {mon, owners} =
      case state.owners do
        %{^owner => {mon, ids}} ->
          {mon, Map.put(state.owners, owner, {mon, [id | ids]})}

        _ ->
          mon = Process.monitor(owner)
          {mon, Map.put(state.owners, owner, {mon, [id]})}
      end

    _ = mon
    {:reply, self(), %{state | shared: Map.put(state.shared, id, owner), owners: owners}}
  end

  def handle_call({:unshare, id}, _from, state), do: {:reply, :ok, unshare_ids(state, [id])}

  def handle_call({:unknown_shared, ids}, _from, state),
    do: {:reply, Enum.reject(ids, &Map.has_key?(state.shared, &1)), state}

  def handle_call(:status, _from, state), do: {:reply, status_map(state), state}

  @impl true
  def handle_cast({:job_report, report}, state) do
    jobs =
      if report.ok,
        do: %{state.jobs | done: state.jobs.done + 1},
        else: %{state.jobs | failed: state.jobs.failed + 1}

    jobs = %{jobs | pieces_rerun: jobs.pieces_rerun + report.rerun}

    members =
      Enum.reduce(report.members, state.members, fn {node, r}, acc ->
        case acc do
          %{^node => %{pid: pid} = m} when pid == r.pid ->
            Map.put(acc, node, account(m, r, report))

          _ ->
            acc
        end
      end)

    {:noreply, %{state | jobs: jobs, members: members}}
  end

  # Counted when it happens (and logged then by the job), not at the job's end: the member
  # may have left by then, and the count must agree with the log.
  def handle_cast({:piece_failed, node, pid, reason}, state) do
    why = "job piece: #{reason}"

    state =
      case state do
        %{members: %{^node => %{pid: ^pid} = m}} ->
          put_in(state.members[node], %{m | failures: m.failures + 1, last_failure: why})

        %{departed: %{^node => d}} ->
          put_in(state.departed[node], %{d | failures: d.failures + 1})

        _ ->
          state
      end

    {:noreply, state}
  end

  def handle_cast({:suspect, node, pid, reason}, state) do
    case state.members do
      %{^node => %{pid: ^pid, state: :ready, conn: conn}} ->
        if MapSet.member?(state.checking, node) do
          {:noreply, state}
        else
          cluster = self()
          timeout = state.opts[:health_timeout]

          spawn(fn ->
            ok? = match?({:ok, _}, Mure.hello(conn, timeout: timeout))
            send(cluster, {:health, node, pid, ok?, reason})
          end)

          {:noreply, %{state | checking: MapSet.put(state.checking, node)}}
        end

      _ ->
        {:noreply, state}
    end
  end

  @impl true
  def handle_info(:discover, state) do
    Process.send_after(self(), :discover, state.opts[:discover_interval])

    if state.discovering do
      {:noreply, state}
    else
      hosts = state.hosts
      task = Task.async(fn -> discover(hosts) end)
      {:noreply, %{state | discovering: task.ref}}
    end
  end

  def handle_info({ref, found}, %{discovering: ref} = state) do
    Process.demonitor(ref, [:flush])
    prefix = state.opts[:name_prefix]

    listed =
      for {host, {:ok, names}} <- found,
          {name, port} <- names,
          String.starts_with?(name, prefix),
          into: %{},
          do: {:"#{name}@#{host}", port}

    now = System.monotonic_time(:millisecond)

    candidates =
      (Map.keys(listed) ++ state.opts[:nodes])
      |> Enum.uniq()
      |> Enum.reject(&(&1 == node() or refused_now?(state.refused, &1, listed[&1], now)))

    state = %{state | discovering: nil, host_status: host_status(found), epmd_ports: listed}
    {:noreply, Enum.reduce(candidates, state, &join/2)}
  end

  def handle_info({:DOWN, ref, :process, _, reason}, %{discovering: ref} = state) do
    Logger.warning("mure cluster: discovery failed: #{inspect(reason, limit: 5)}")
    {:noreply, %{state | discovering: nil}}
  end

  def handle_info({:member_ready, pid, node, conn, hello, speeds}, state) do
    case state.members do
      %{^node => %{pid: ^pid} = m} ->
        Logger.info("mure cluster: #{node} joined#{speeds_line(speeds)}")

        m = %{
          m
          | state: :ready,
            conn: conn,
            hello: hello,
            speeds: speeds,
            joined_at: DateTime.utc_now()
        }

        members = Map.put(state.members, node, m)
        {:noreply, %{state | members: members, refused: Map.delete(state.refused, node)}}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:health, node, pid, ok?, reason}, state) do
    state = %{state | checking: MapSet.delete(state.checking, node)}

    if not ok? and match?(%{^node => %{pid: ^pid}}, state.members) do
      Logger.warning("mure cluster: #{node} does not answer (after #{reason}); disconnecting it")
      :erlang.disconnect_node(node)
      Process.exit(pid, {:shutdown, :unreachable})
    end

    {:noreply, state}
  end

  def handle_info({:nodeup, node, _info}, state) do
    # A hidden node that came up elsewhere in this BEAM (another connection to it, say):
    # join it if it is one of ours.
    {:noreply, if(ours?(state, node), do: join(node, state), else: state)}
  end

  def handle_info({:nodedown, node, _info}, state) do
    case state.members do
      %{^node => %{pid: pid}} -> Process.exit(pid, {:shutdown, :nodedown})
      _ -> :ok
    end

    {:noreply, state}
  end

  def handle_info({:EXIT, pid, reason}, state) do
    case Enum.find(state.members, fn {_, m} -> m.pid == pid end) do
      {node, m} ->
        {:noreply, leave(state, node, m, reason)}

      nil ->
        if reason in [:normal, :shutdown], do: {:noreply, state}, else: {:stop, reason, state}
    end
  end

  def handle_info({:DOWN, _ref, :process, owner, _reason}, state) do
    case Map.pop(state.owners, owner) do
      {{_mon, ids}, owners} -> {:noreply, unshare_ids(%{state | owners: owners}, ids)}
      {nil, _} -> {:noreply, state}
    end
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    for {_, m} <- state.members, do: Process.exit(m.pid, :shutdown)
    :ok
  end

  ## Membership

  defp discover(hosts) do
    hosts
    |> Task.async_stream(
      fn host -> :erl_epmd.names(String.to_charlist(host)) end,
      timeout: 3_000,
      on_timeout: :kill_task,
      max_concurrency: 64
    )
    |> Enum.zip(hosts)
    |> Enum.map(fn
      {{:ok, {:ok, names}}, host} ->
        {host, {:ok, Enum.map(names, fn {n, p} -> {to_string(n), p} end)}}

      {{:ok, {:error, reason}}, host} ->
        {host, {:error, reason}}

      {{:exit, reason}, host} ->
        {host, {:error, reason}}
    end)
  end

  defp host_status(found) do
    now = DateTime.utc_now()

    Map.new(found, fn
      {host, {:ok, names}} ->
        {host, %{reachable: true, names: Enum.map(names, &elem(&1, 0)), asked_at: now}}

      {host, {:error, reason}} ->
        {host, %{reachable: false, error: reason, asked_at: now}}
    end)
  end

  defp ours?(state, node) do
    [name, host] = node |> Atom.to_string() |> String.split("@", parts: 2) |> pad()

    node in state.opts[:nodes] or
      (host in state.hosts and String.starts_with?(name, state.opts[:name_prefix]))
  end

  defp pad([a]), do: [a, ""]
  defp pad(list), do: list

  defp join(node, state) do
    if Map.has_key?(state.members, node) do
      state
    else
      {:ok, pid} =
        Member.start_link(%{
          cluster: self(),
          node: node,
          probe: state.opts[:probe],
          connect_opts: state.opts[:connect_opts]
        })

      m = %{
        pid: pid,
        state: :joining,
        conn: nil,
        hello: nil,
        speeds: nil,
        joined_at: nil,
        work: %{jobs: 0, pieces: 0, rows: 0, flop: 0, bytes_in: 0, bytes_out: 0, busy_us: 0},
        learned: %{},
        failures: get_in(state.departed, [node, :failures]) || 0,
        last_failure: get_in(state.departed, [node, :last_failure])
      }

      %{state | members: Map.put(state.members, node, m)}
    end
  end

  defp leave(state, node, m, reason) do
    members = Map.delete(state.members, node)

    if m.state == :ready do
      why = exit_reason(reason)
      Logger.warning("mure cluster: #{node} left (#{why})")

      departed =
        Map.put(state.departed, node, %{
          failures: m.failures + 1,
          last_failure: why,
          left_at: DateTime.utc_now(),
          work: m.work
        })

      %{state | members: members, departed: departed}
    else
      refuse(%{state | members: members}, node, reason)
    end
  end

  # A node that could not be joined is not asked again at every discovery round (it would
  # sit in :joining for ever, each round), but after a back-off that doubles up to a minute,
  # or at once when its epmd registration changes (it was restarted). Logged once per
  # registration, with what can be known of the cause.
  @refuse_first_ms 5_000
  @refuse_max_ms 60_000
  defp refuse(state, node, reason) do
    port = state.epmd_ports[node]
    now = System.monotonic_time(:millisecond)
    why = refusal(node, port, reason)

    entry =
      case state.refused[node] do
        %{port: ^port, backoff_ms: b} = r ->
          b = min(2 * b, @refuse_max_ms)
          %{r | reason: why, attempts: r.attempts + 1, backoff_ms: b, retry_at: now + b}

        _ ->
          Logger.warning("mure cluster: could not join #{node}: #{why}")

          %{
            port: port,
            reason: why,
            attempts: 1,
            since: DateTime.utc_now(),
            backoff_ms: @refuse_first_ms,
            retry_at: now + @refuse_first_ms
          }
      end

    %{state | refused: Map.put(state.refused, node, entry)}
  end

  defp refused_now?(refused, node, port, now) do
    case refused do
      %{^node => %{port: ^port, retry_at: at}} -> now < at
      _ -> false
    end
  end

  defp refusal(_node, port, {:shutdown, {:connect_failed, detail}}) when is_integer(port) do
    "epmd lists it, but it refused the connection: most likely a different cookie (the node " <>
      "logs the refused handshake), else it refuses this address or is not a mure node " <>
      "[#{detail}]"
  end

  defp refusal(_node, _port, {:shutdown, {:probe_failed, detail}}),
    do: "connected, but measuring it failed: #{detail}"

  defp refusal(_node, _port, reason), do: exit_reason(reason)

  defp exit_reason({:shutdown, reason}), do: exit_reason(reason)
  defp exit_reason(reason) when is_atom(reason), do: Atom.to_string(reason)
  defp exit_reason({tag, detail}) when is_atom(tag), do: "#{tag}: #{inspect(detail, limit: 5)}"
  defp exit_reason(other), do: inspect(other, limit: 5)

  defp unshare_ids(state, ids) do
    for {_, m} <- state.members, id <- ids, do: Member.free(m.pid, id)
    shared = Map.drop(state.shared, ids)

    owners =
      state.owners
      |> Enum.map(fn {owner, {mon, owned}} -> {owner, {mon, owned -- ids}} end)
      |> Enum.reject(fn {_owner, {mon, owned}} -> owned == [] and Process.demonitor(mon) end)
      |> Map.new()

    %{state | shared: shared, owners: owners}
  end

  ## Accounting and re-measurement

  defp account(m, r, report) do
    work = m.work

    work = %{
      work
      | jobs: work.jobs + 1,
        pieces: work.pieces + r.pieces,
        rows: work.rows + r.rows,
        flop: work.flop + if(report.kind == :gemm, do: r.work, else: 0),
        bytes_in: work.bytes_in + r.in_bytes,
        bytes_out: work.bytes_out + r.out_bytes,
        busy_us: work.busy_us + r.busy_us
    }

    m = %{m | work: work}

    %{
      m
      | speeds: remeasure(m.speeds, r, report),
        learned: learn(m.learned, r, report, m.speeds)
    }
  end

  # Seconds per row of this job's program on this member, from the job's real time (while
  # the member had work), merged with what earlier jobs of the same program took, each
  # weighted by how long it was measured (up to @learn_weight_us in all, so that later jobs
  # still move the figure). A job whose pieces were too small to measure rows teaches
  # nothing (see measurable?/3).
  @max_learned 128
  @learn_weight_us 10_000_000
  defp learn(learned, r, report, speeds) do
    key = report.plan.key
    old = Map.get(learned, key)
    prior = if old, do: elem(old, 0), else: Job.row_time(speeds, report.plan)

    if report.ok and r.pieces >= 2 and r.busy_us >= 20_000 and measurable?(r, prior) do
      spr = r.busy_us / 1.0e6 / r.rows

      entry =
        case old do
          {old_spr, weight, _at} ->
            total = weight + r.busy_us

            {(old_spr * weight + spr * r.busy_us) / total, min(total, @learn_weight_us),
             System.monotonic_time()}

          nil ->
            {spr, min(r.busy_us, @learn_weight_us), System.monotonic_time()}
        end

      learned = Map.put(learned, key, entry)

      if map_size(learned) > @max_learned,
        do:
          learned
          |> Enum.sort_by(fn {_, {_, _, at}} -> -at end)
          |> Enum.take(@max_learned)
          |> Map.new(),
        else: learned
    else
      learned
    end
  end

  # Whether a job's time says anything about its rows: its pieces were expected (at `spr`
  # seconds per row) to take at least @min_piece_work_s each. Below that a piece's time is
  # its fixed costs - the round trip, a CPU quota's throttling, a wake-up - and a member
  # timed on one-row pieces would look a hundred times slower than it is.
  @min_piece_work_s 0.005
  defp measurable?(r, spr), do: r.rows > 0 and r.rows / r.pieces * spr >= @min_piece_work_s

  # After a matrix product (whose work the model knows exactly: 2mkn flops), corrects the
  # figure that set the member's pace (its sgemm rate, or its link) by how far the job's real
  # time was from the estimate; halfway, so that one noisy job does not throw the estimate
  # off. Other programs' real times are kept per program (learn/3) instead: how much
  # arithmetic an element takes is not known to the model.
  defp remeasure(nil, _r, _report), do: nil

  defp remeasure(speeds, r, report) do
    plan = report.plan

    row_time = Job.row_time(speeds, plan)

    if plan.kind == :gemm and r.pieces >= 2 and r.busy_us >= 50_000 and measurable?(r, row_time) and
         report.ok do
      predicted = r.rows * row_time + r.pieces * speeds.rtt_ms / 1000
      factor = (r.busy_us / 1.0e6 / predicted) |> max(0.1) |> min(10.0)
      scale = (1 + 1 / factor) / 2

      link = plan.in_row / speeds.upload_bytes_s + plan.out_row / speeds.download_bytes_s
      rate_key = if plan.kind == :gemm, do: :gemm_flops_s, else: :elementwise_bytes_s
      compute = plan.work_row / Map.fetch!(speeds, rate_key)

      speeds =
        if compute >= link,
          do: Map.update!(speeds, rate_key, &(&1 * scale)),
          else: %{
            speeds
            | upload_bytes_s: speeds.upload_bytes_s * scale,
              download_bytes_s: speeds.download_bytes_s * scale
          }

      %{speeds | source: :work, measured_at: DateTime.utc_now()}
    else
      speeds
    end
  end

  ## Status

  defp status_map(state) do
    members =
      for {node, m} <- Enum.sort_by(state.members, &elem(&1, 0)) do
        %{
          node: node,
          state: m.state,
          devices: devices(m.hello),
          speeds: m.speeds,
          programs_learned: map_size(m.learned),
          work: m.work,
          failures: m.failures,
          last_failure: m.last_failure,
          joined_at: m.joined_at
        }
      end

    departed =
      for {node, d} <- Enum.sort_by(state.departed, &elem(&1, 0)),
          not Map.has_key?(state.members, node),
          do: Map.put(d, :node, node)

    hosts =
      for host <- state.hosts do
        Map.merge(%{host: host, reachable: nil}, Map.get(state.host_status, host, %{}))
      end

    refused =
      for {node, r} <- Enum.sort_by(state.refused, &elem(&1, 0)),
          not Map.has_key?(state.members, node),
          do: %{node: node, reason: r.reason, attempts: r.attempts, since: r.since}

    %{members: members, departed: departed, refused: refused, hosts: hosts, jobs: state.jobs}
  end

  defp devices(%{devices: devices}) when is_list(devices),
    do: Enum.map(devices, fn d -> if is_map(d), do: d[:id], else: d end)

  defp devices(_), do: []

  defp speeds_line(nil), do: ""

  defp speeds_line(s),
    do:
      " (rtt #{Float.round(s.rtt_ms, 2)} ms, up #{mb(s.upload_bytes_s)} MB/s, down " <>
        "#{mb(s.download_bytes_s)} MB/s, sgemm #{Float.round(s.gemm_flops_s / 1.0e9, 1)} GFLOP/s, " <>
        "elementwise #{Float.round(s.elementwise_bytes_s / 1.0e9, 2)} GB/s)"

  defp mb(bytes_s), do: Float.round(bytes_s / 1.0e6, 1)
end
