defmodule Mure.Api.Lifecycle do
  @moduledoc false
  # Mure's connections (start, attach, stop) and its questions to the node (hello, devices,
  # stats, busy): `use Mure.Api.Lifecycle` puts the documented functions into Mure, which
  # delegate to the implementations below.

  alias Mure.{Call, Connection}

  @doc false
  defmacro __using__(_opts) do
    quote location: :keep do
      ## Connections

      @doc """
      Starts a connection that launches a `mure_node` and connects to it (port mode).

      The node runs as a child OS process of this BEAM: the cookie is written to its stdin,
      the call waits for its `MURE_READY` line, connects the distribution, monitors the
      node and asks it `:hello`. When the node process exits, every call in flight gets
      `{:error, %Mure.ConnectionError{reason: :node_exited}}` and the connection stops with
      `{:shutdown, {:node_exited, status}}`, so that a supervisor starts a fresh node. When
      the connection (or the whole BEAM) goes, the node's stdin closes and it exits.

      With `node: node` it attaches to a running node instead, like `connect/2`.

      ## Options

        * `:name` - register the connection under this local name
        * `:node_name` - the node's name (default: a unique
          `:"port_of_mure_<os pid>_<n>@<host>"` on the local node's host: outside
          `Mure.Cluster`'s default prefix `"mure"`, so no cluster joins a private node)
        * `:executable` - path of `mure_node` (default: `$MURE_NODE_BIN`, else
          `../build/mure_node` next to this client's source)
        * `:cookie` - the cookie to hand the node (default: `Node.get_cookie/0`); it is
          wrapped so that `inspect/1` never shows it
        * `:config` - a node config file (`--config`)
        * `:listen` - the node's listen address (`--listen`, node default 127.0.0.1)
        * `:memory_limit` - bytes of tensor memory (`--memory-limit`)
        * `:max_message` - the largest request the node accepts, in bytes (`--max-message`)
        * `:queue_depth` - bounded queue depth per device (`--queue-depth`)
        * `:blis_threads`, `:blis_arch` - BLIS threads and sub-configuration
          (`:auto | :skx | :zen3 | :haswell | :generic`)
        * `:devices` - e.g. `[:blis, :opencl]` (`--devices`)
        * `:test_ops` - enable test-only ops such as `busy/3` (default `false`)
        * `:log_level` - `:debug | :info | :warn | :error`; the node logs to stderr
          (default: the application environment's `:node_log_level` of `:mure`, else the
          node's own default)
        * `:extra_args` - more command-line arguments (strings)
        * `:ready_timeout` - ms to wait for `MURE_READY` (default 15000)
        * `:connect_timeout` - ms to wait for the `:hello` reply (default 5000)
        * `:timeout` - the default call timeout in ms (default 5000)
        * `:backoff_initial`, `:backoff_max` - reconnection backoff in ms (500, 30000)
        * `:sync_connect` - with `:node`, fail at start when the node is unreachable
          (default `true`); `false` starts disconnected and keeps retrying
        * `:chunk_size` - uploads and downloads larger than this many bytes move in pieces of
          at most this size, several in flight (default 8 MiB; 64 KiB to 1 GiB); see
          `upload/5`
        * `:shared_memory` - when the node runs on this host as this user, tensors of 1 MiB
          and more move through shared memory instead of the network (default `true`; the
          client checks that it reaches the node's segments, else it uses the network); see
          `upload/5`

      Returns `{:error, %Mure.ConnectionError{reason: :not_alive}}` when the local BEAM is
      not distributed.

      ## Examples

          iex> {:ok, conn} = Mure.start_link(memory_limit: 256 * 1024 * 1024)
          iex> {:ok, %{protocol: 1}} = Mure.hello(conn)

      """
      @spec start_link(keyword()) :: GenServer.on_start()
      def start_link(opts \\ []), do: Connection.start_link(opts)

      @doc """
      Connects to a node that already runs elsewhere (not launched by this BEAM).

      The connection is monitored: when the node goes down, calls in flight get
      `{:error, %Mure.ConnectionError{reason: :node_down}}`, later calls get `:disconnected`
      errors at once, and the connection is retried with exponential backoff. Tensors
      created before a reconnection are gone (the node frees a connection's tensors when
      it closes).

      Takes the options of `start_link/1` that make sense for a remote node (`:name`,
      `:cookie`, `:timeout`, `:connect_timeout`, `:sync_connect`, `:backoff_initial`,
      `:backoff_max`).

      The node name is an atom or a string (`"mure@127.0.0.1"`). When the node cannot be
      reached, the error's details say what was found: no epmd on the host, epmd without
      that name (and the names it has), or the name listed but the handshake refused (the
      cookie differs, or short and long names are mixed).

      ## Examples

          iex> {:ok, conn} = Mure.connect(:"mure@127.0.0.1")
          iex> Mure.devices!(conn) |> Enum.map(& &1.id)
          [:blis, :opencl]

      """
      @spec connect(node() | String.t(), keyword()) :: GenServer.on_start()
      def connect(node, opts \\ []),
        do: start_link(Keyword.put(opts, :node, Mure.Api.Lifecycle.node_name!(node, opts)))

      @doc """
      A child specification that starts a connection with `start_link/1`.

      The child is `:permanent`: when the node exits, the supervisor starts a new connection
      and a new node. Give a `:name` to reach the restarted connection under the same name.

      ## Examples

          children = [{Mure, name: MyApp.Mure, memory_limit: 1 <<< 30}]
          Supervisor.start_link(children, strategy: :one_for_one)

      """
      @spec child_spec(keyword()) :: Supervisor.child_spec()
      defdelegate child_spec(opts), to: Mure.Api.Lifecycle

      @doc """
      Stops a connection. In port mode the node exits too.

      ## Examples

          iex> Mure.stop(conn)
          :ok

      """
      @spec stop(conn(), term(), timeout()) :: :ok
      def stop(conn, reason \\ :normal, timeout \\ :infinity),
        do: :gen_statem.stop(conn, reason, timeout)

      @doc """
      Local information about a connection: the node's name, mode (`:port` or `:remote`),
      state (`:connected` or `:disconnected`), the node's OS pid (port mode), its last
      `:hello` answer and the number of requests in flight. Does not talk to the node.

      ## Examples

          iex> %{state: :connected, node: node} = Mure.info(conn)

      """
      @spec info(conn()) :: map()
      def info(conn), do: :gen_statem.call(conn, :info)

      ## Node information

      @doc """
      Asks the node who it is: protocol version, node name, software version, OS pid,
      devices, limits and ops.

      ## Examples

          iex> {:ok, hello} = Mure.hello(conn)
          iex> hello.protocol
          1
          iex> hello.limits.max_message_bytes > 0
          true

      """
      @spec hello(conn(), call_opts()) :: {:ok, map()} | {:error, error()}
      defdelegate hello(conn, opts \\ []), to: Mure.Api.Lifecycle

      @doc """
      Lists the node's devices: maps with `id` (`:blis`, `:opencl`), `kind` and `name`,
      plus `arch`, `arch_reason` and `threads` for BLIS, `platform`, `device_type`,
      `compute_units` and `fp64` for OpenCL.

      ## Examples

          iex> {:ok, devices} = Mure.devices(conn)
          iex> Enum.map(devices, & &1.id)
          [:blis, :opencl]

      """
      @spec devices(conn(), call_opts()) :: {:ok, [map()]} | {:error, error()}
      defdelegate devices(conn, opts \\ []), to: Mure.Api.Lifecycle

      @doc """
      The node's counters: `tensors`, `memory_used_bytes`, `memory_limit_bytes`,
      `connections`, `connection_tensors` (this connection's), `requests`, `errors` and
      `queued`.

      ## Examples

          iex> {:ok, %{tensors: 0, memory_used_bytes: 0}} = Mure.stats(conn)

      """
      @spec stats(conn(), call_opts()) :: {:ok, map()} | {:error, error()}
      defdelegate stats(conn, opts \\ []), to: Mure.Api.Lifecycle

      @doc """
      Occupies the node's BLIS executor for `ms` milliseconds and returns `{:ok, ms}`.

      A test op: the node must run with `test_ops: true`. Useful to test long operations,
      queueing and calls in flight.

      ## Examples

          iex> Mure.busy(conn, 100)
          {:ok, 100}

      """
      @spec busy(conn(), non_neg_integer(), call_opts()) ::
              {:ok, non_neg_integer()} | {:error, error()}
      defdelegate busy(conn, ms, opts \\ []), to: Mure.Api.Lifecycle
    end
  end

  @doc false
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    # Validated (and the cookie wrapped) here already, so the supervisor's copy of the
    # start arguments never holds a bare cookie.
    opts = Connection.validate_opts!(opts)

    %{
      id: opts[:name] || Mure,
      start: {Mure, :start_link, [opts]},
      restart: :permanent,
      shutdown: 10_000,
      type: :worker
    }
  end

  @doc false
  # connect/2's node argument: an atom or a string of the form name@host.
  @spec node_name!(term(), term()) :: node()
  def node_name!(node, opts) do
    unless is_list(opts) do
      raise ArgumentError,
            "Mure.connect/2: expected options as a keyword list, got: #{inspect(opts)}"
    end

    case node do
      node when is_atom(node) and node not in [nil, true, false] ->
        node

      node when is_binary(node) ->
        if match?([_, _], String.split(node, "@")),
          do: String.to_atom(node),
          else:
            raise(
              ArgumentError,
              "Mure.connect/2: expected a node name of the form \"name@host\", got: #{inspect(node)}"
            )

      other ->
        raise ArgumentError,
              "Mure.connect/2: expected a node name (an atom like :\"mure@127.0.0.1\" or a string), got: #{inspect(other)}"
    end
  end

  @doc false
  @spec hello(GenServer.server(), keyword()) :: {:ok, map()} | {:error, Exception.t()}
  def hello(conn, opts \\ []), do: Call.value(conn, :hello, opts, &is_map/1)

  @doc false
  @spec devices(GenServer.server(), keyword()) :: {:ok, [map()]} | {:error, Exception.t()}
  def devices(conn, opts \\ []), do: Call.value(conn, :devices, opts, &is_list/1)

  @doc false
  @spec stats(GenServer.server(), keyword()) :: {:ok, map()} | {:error, Exception.t()}
  def stats(conn, opts \\ []), do: Call.value(conn, :stats, opts, &is_map/1)

  @doc false
  @spec busy(GenServer.server(), term(), keyword()) ::
          {:ok, non_neg_integer()} | {:error, Exception.t()}
  def busy(conn, ms, opts \\ []) do
    unless is_integer(ms) and ms >= 0 and ms <= 600_000 do
      raise ArgumentError, "busy: expected milliseconds in 0..600000, got: #{inspect(ms)}"
    end

    Call.value(conn, {:busy, ms}, opts, &is_integer/1)
  end
end
