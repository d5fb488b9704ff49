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

  Nodes that no one can dial (behind NAT or a firewall: phones, boards) dial in instead:
  started with `mure_node --connect coordinator@host`, such a node opens the connection to
  this BEAM itself and keeps it up. With `dial_in: true` (the default) every hidden node
  whose name starts with `:name_prefix` that is connected to this BEAM joins, whatever its
  host: it is measured and used as any member, and when its connection drops it leaves as
  on a `nodedown` (its unfinished pieces are re-run elsewhere) and joins again when it
  dials back in.

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

  `run/4` runs a jit'ed function (see `Mure.jit/2`) or a `defn` function with its
  `{binary, type, shape}` arguments split along axis 0; `dot/4` multiplies a matrix split
  by rows with a shared one. Shared tensors (`share/3`) go whole to every member, uploaded
  once per member and kept there. The pieces' results come back in row order; a function that reduces over
  axis 0 (`sum`, `product`, `max`, `min`) gets its partial results combined on the client.

  The caller's process drives the job; several jobs may run at once from different
  processes.
  """

  alias Mure.{ClusterError, Types}
  alias Mure.Cluster.{Job, Shared}

  @typedoc "A cluster: its pid or registered name."
  @type cluster :: GenServer.server()

  @typedoc "Data on the client: split along axis 0 by `run/4` and `dot/4`."
  @type data :: {binary(), Mure.type(), Mure.shape()}

  @start_opts [
    :name,
    hosts: [],
    nodes: [],
    name_prefix: "mure",
    dial_in: true,
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
    * `:dial_in` - join the nodes that dial in to this BEAM (`mure_node --connect`) whose
      name starts with `:name_prefix`, from any host (default `true`). A connection does not
      say who opened it: a node this BEAM reached for another cluster or with
      `Mure.connect/2` counts as well, so give `dial_in: false` to a cluster that must hold
      exactly its `:hosts` and `:nodes`
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
    GenServer.start_link(Mure.Cluster.Server, opts, Keyword.take(opts, [:name]))
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

    for key <- [:probe, :dial_in] do
      unless is_boolean(opts[key]),
        do: raise(ArgumentError, "Mure.Cluster: #{inspect(key)} must be a boolean")
    end

    unless Keyword.keyword?(opts[:connect_opts]),
      do: raise(ArgumentError, "Mure.Cluster: :connect_opts must be a keyword list")

    # Wrapped here, so that the child spec and the cluster's state never hold a bare cookie.
    Keyword.update!(opts, :connect_opts, fn co ->
      if Keyword.has_key?(co, :cookie),
        do: Keyword.update!(co, :cookie, &Mure.Cookie.wrap/1),
        else: co
    end)
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
  Runs a jit'ed function (see `Mure.jit/2`), or a `defn` function, across the members and
  returns its result as a binary.

  A `defn` function (`&MyModel.predict/2`, or any function `Nx.Defn` can trace, one tensor
  per argument) is compiled as `compiler: Mure` compiles it, once per piece size: it must
  be one program on the node (no `while`, `cond`, hooks, or ops the node lacks: they need
  the client between programs), and must not capture tensors (pass them as arguments,
  `share/3`d). Its pieces are checked and combined as those of a `Mure.jit` function.

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
      iex> {:ok, w} = Mure.Cluster.share(cluster, {w_bin, {:f, 32}, {16, 4}})
      iex> {:ok, y} = Mure.Cluster.run(cluster, &MyModel.predict/2, [{x_bin, {:f, 32}, {1_000_000, 16}}, w])

  """
  @spec run(cluster(), Mure.Jit.t() | function(), [data() | Shared.t()], keyword()) ::
          {:ok, binary()} | {:error, Exception.t()}
  def run(cluster, fun, args, opts \\ [])

  def run(cluster, fun, args, opts) when is_function(fun) and is_list(args),
    do: run(cluster, Mure.Cluster.Defn.jit(fun), args, opts)

  def run(cluster, %Mure.Jit{} = jit, args, opts) when is_list(args) do
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
end
