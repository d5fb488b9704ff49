defmodule Mure do
  @moduledoc """
  Elixir client of mure, a compute node that keeps tensors resident and runs ops on
  them (matrix multiply on BLIS, elementwise ops on OpenCL).

  The node (`mure_node`) is a hidden Erlang C-node. A connection is a process that
  either launches a node itself (port mode, `start_link/1`) or attaches to a node that
  runs elsewhere (`connect/2`). The local BEAM must be distributed: start it with
  `elixir --name client@127.0.0.1 ...` or call `Node.start/2` first.

      {:ok, conn} = Mure.start_link([])
      {:ok, a} = Mure.upload(conn, a_bin, {:f, 32}, {512, 512})
      {:ok, b} = Mure.upload(conn, b_bin, {:f, 32}, {512, 512})
      {:ok, c} = Mure.matmul(a, b)
      {:ok, c_bin} = Mure.download(c)

  ## A tour of the op set (run as a doctest)

  Every family of ops, on a node launched for the occasion. `f/1` reads an `{:f, 32}`
  tensor back as a list.

      iex> {:ok, conn} = Mure.start_link([])
      iex> f = fn t -> for <<x::float-32-native <- Mure.download!(t)>>, do: x end
      iex> x = Mure.iota!(conn, {2, 3}, type: {:f, 32})
      iex> f.(x)
      [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
      iex> f.(Mure.unary!(:sqrt, Mure.full!(conn, 4.0, {2})))
      [2.0, 2.0]
      iex> f.(Mure.binary!(:multiply, x, Mure.full!(conn, 2.0, {3})))
      [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
      iex> Mure.reduce!(:sum, x, axes: [1]) |> f.()
      [3.0, 12.0]
      iex> Mure.reduce!(:argmax, x, axes: [1]).type
      {:s, 64}
      iex> f.(Mure.transpose!(x))
      [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
      iex> f.(Mure.slice!(x, [0, 1], [2, 2]))
      [1.0, 2.0, 4.0, 5.0]
      iex> f.(Mure.slice!(x, [0, 0], [2, 3], strides: [1, 2]))
      [0.0, 2.0, 3.0, 5.0]
      iex> f.(Mure.dot!(x, Mure.transpose!(x)))
      [5.0, 14.0, 14.0, 50.0]
      iex> f.(Mure.sort!(Mure.reverse!(x), axis: 1))
      [3.0, 4.0, 5.0, 0.0, 1.0, 2.0]
      iex> Mure.as_type!(x, {:u, 8}).type
      {:u, 8}
      iex> {:error, %Mure.Error{kind: :out_of_range}} = Mure.slice(x, [0, 2], [2, 2])
      iex> Mure.stop(conn)
      :ok

  ## Types and shapes

  Types are Nx's tuples: `{:u, 8 | 16 | 32 | 64}`, `{:s, 8 | 16 | 32 | 64}`,
  `{:f, 16 | 32 | 64}` and `{:bf, 16}`. Shapes are tuples of non-negative integers
  (`{}` is a scalar, at most 16 dimensions). Data is native little-endian, row-major:
  `<<x::float-32-native>>` per element for `{:f, 32}`.

  Arguments are checked eagerly, like Nx does: a wrong type, shape or size raises
  `ArgumentError` before anything is sent.

  ## Errors and timeouts

  Every call returns `{:ok, value}` or `{:error, exception}`:

    * `Mure.Error` - the node refused the request (`kind` says why: `:out_of_memory`,
      `:unknown_handle`, `:overloaded`, ...)
    * `Mure.ConnectionError` - the transport failed (`reason`: `:timeout`,
      `:node_down`, `:node_exited`, `:disconnected`, `:closed`, ...)

  The `!` variants return the value or raise the exception.

  Every call accepts `timeout:` (milliseconds or `:infinity`); the default is the
  connection's `:timeout` option (5000 ms). A call that times out returns
  `{:error, %Mure.ConnectionError{reason: :timeout}}` and its late reply is dropped,
  never delivered to the caller's mailbox.

  ## Programs, the JIT and requests in flight

  A function of tensors written with `Mure.Expr`'s ops runs as one program per call,
  traced once per argument signature and cached (`jit/2`, `run/3`):

      predict = Mure.jit(fn x, w, b ->
        x |> Mure.Expr.dot(w) |> Mure.Expr.add(b) |> Mure.Expr.sigmoid()
      end)
      {:ok, y} = Mure.run(predict, [x, w, {b_bin, {:f, 32}, {128}}])

  `async_run/3`, `async_upload/5` and `async_download/2` return at once; `await/2` and
  `await_many/2` collect the results, so that transfers overlap computation. Tensors
  larger than the connection's `:chunk_size` move in pieces, several in flight.

  ## Ownership

  A tensor is owned by the process that created it: when that process exits the node
  frees its tensors. All tensors of a connection are freed when the connection to the
  node closes; using such a tensor afterwards gives an `:unknown_handle` error.
  """

  alias Mure.{Connection, ConnectionError, Error, Request, Tensor, Transfer, Types}

  @typedoc "A connection: its pid or registered name."
  @type conn :: GenServer.server()

  @typedoc "An Nx-style element type."
  @type type ::
          {:u, 8 | 16 | 32 | 64}
          | {:s, 8 | 16 | 32 | 64}
          | {:f, 16 | 32 | 64}
          | {:bf, 16}

  @typedoc "A tuple of non-negative integers; `{}` is a scalar."
  @type shape :: tuple()

  @typedoc "What a failed call returns."
  @type error :: Error.t() | ConnectionError.t()

  @typedoc """
  Options of every call: `timeout:` in milliseconds or `:infinity`. Compute ops also take
  `device: :cpu | :opencl | :auto` (default `:auto`: the node's choice).
  """
  @type call_opts :: [timeout: timeout(), device: :cpu | :opencl | :auto]

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
    * `:node_name` - the node's name (default: a unique `:"mure_<pid>_<n>@<host>"` on the
      local node's host)
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

  ## Examples

      iex> {:ok, conn} = Mure.connect(:"mure@127.0.0.1")
      iex> Mure.devices!(conn) |> Enum.map(& &1.id)
      [:blis, :opencl]

  """
  @spec connect(node(), keyword()) :: GenServer.on_start()
  def connect(node, opts \\ []) when is_atom(node) and is_list(opts),
    do: start_link(Keyword.put(opts, :node, node))

  @doc """
  A child specification that starts a connection with `start_link/1`.

  The child is `:permanent`: when the node exits, the supervisor starts a new connection
  and a new node. Give a `:name` to reach the restarted connection under the same name.

  ## Examples

      children = [{Mure, name: MyApp.Mure, memory_limit: 1 <<< 30}]
      Supervisor.start_link(children, strategy: :one_for_one)

  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    # Validated (and the cookie wrapped) here already, so the supervisor's copy of the
    # start arguments never holds a bare cookie.
    opts = Connection.validate_opts!(opts)

    %{
      id: opts[:name] || __MODULE__,
      start: {__MODULE__, :start_link, [opts]},
      restart: :permanent,
      shutdown: 10_000,
      type: :worker
    }
  end

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
  def hello(conn, opts \\ []), do: simple_call(conn, :hello, opts, &is_map/1)

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
  def devices(conn, opts \\ []), do: simple_call(conn, :devices, opts, &is_list/1)

  @doc """
  The node's counters: `tensors`, `memory_used_bytes`, `memory_limit_bytes`,
  `connections`, `connection_tensors` (this connection's), `requests`, `errors` and
  `queued`.

  ## Examples

      iex> {:ok, %{tensors: 0, memory_used_bytes: 0}} = Mure.stats(conn)

  """
  @spec stats(conn(), call_opts()) :: {:ok, map()} | {:error, error()}
  def stats(conn, opts \\ []), do: simple_call(conn, :stats, opts, &is_map/1)

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
  def busy(conn, ms, opts \\ []) do
    unless is_integer(ms) and ms >= 0 and ms <= 600_000 do
      raise ArgumentError, "busy: expected milliseconds in 0..600000, got: #{inspect(ms)}"
    end

    simple_call(conn, {:busy, ms}, opts, &is_integer/1)
  end

  ## Tensors

  @doc """
  Uploads `data` as a tensor of `type` and `shape` and returns the resident tensor.

  `byte_size(data)` must be `product(shape) * byte_size(type)`; otherwise, or for an
  invalid type or shape, `ArgumentError` is raised before anything is sent. Data larger
  than the node accepts (its `max_message_bytes`, and never 2 GiB or more, which would
  abort the BEAM) is refused with `{:error, %Mure.Error{kind: :message_too_large}}`
  without being sent.

  Data larger than the connection's `:chunk_size` (8 MiB by default, see `start_link/1`)
  goes in pieces: `{:alloc, type, shape}`, then `{:write, h, offset, piece}` messages with
  several in flight, so that requests of other processes interleave with it and no message
  nears the 2 GiB limit. `timeout:` then bounds the whole upload; without it each piece
  gets the connection's default timeout. A piece that fails fails the upload with its error
  and frees the tensor.

  The calling process owns the tensor: it is freed when that process exits.

  ## Examples

      iex> data = <<1.0::float-32-native, 2.0::float-32-native, 3.0::float-32-native, 4.0::float-32-native>>
      iex> {:ok, t} = Mure.upload(conn, data, {:f, 32}, {2, 2})
      iex> t
      #Mure.Tensor<f32[2][2]>
      iex> Mure.upload(conn, <<1, 2, 3>>, {:f, 32}, {1})
      ** (ArgumentError) upload: expected 4 bytes for a f32[1] tensor (1 elements of 4 bytes), got 3 bytes
      iex> Mure.upload(conn, <<>>, {:f, 33}, {0})
      ** (ArgumentError) upload: expected a type {:u, 8|16|32|64}, {:s, 8|16|32|64}, {:f, 16|32|64} or {:bf, 16}, got: {:f, 33}

  """
  @spec upload(conn(), binary(), type(), shape(), call_opts()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def upload(conn, data, type, shape, opts \\ []) do
    unless is_binary(data) do
      raise ArgumentError,
            "upload: expected the data to be a binary, got: #{inspect(data, limit: 5)}"
    end

    Types.check_type!(type, "upload")
    Types.check_shape!(shape, "upload")
    itemsize = Types.itemsize(type)
    count = Types.size(shape)

    if byte_size(data) != count * itemsize do
      raise ArgumentError,
            "upload: expected #{count * itemsize} bytes for a " <>
              "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} tensor " <>
              "(#{count} elements of #{itemsize} bytes), got #{byte_size(data)} bytes"
    end

    if pieces = in_pieces(conn, byte_size(data), opts) do
      {limits, budget} = pieces
      Transfer.upload(conn, data, type, shape, self(), budget, limits)
    else
      case call(conn, {:upload, type, shape, data}, [], opts) do
        {:ok, handle, node, session} when is_integer(handle) and handle > 0 ->
          {:ok,
           %Tensor{conn: conn, node: node, id: handle, type: type, shape: shape, session: session}}

        {:ok, other, _node, _session} ->
          {:error, unexpected(:upload, other)}

        {:error, error} ->
          {:error, error}
      end
    end
  end

  @doc """
  Downloads a tensor's data as a binary (native little-endian, row-major).

  A tensor larger than the connection's `:chunk_size` comes in pieces
  (`{:read, h, offset, length}`, several in flight), joined in order into one binary;
  `timeout:` then bounds the whole download (without it, each piece gets the connection's
  default timeout).

  ## Examples

      iex> {:ok, t} = Mure.upload(conn, <<7::32-native>>, {:s, 32}, {})
      iex> Mure.download(t)
      {:ok, <<7, 0, 0, 0>>}

  """
  @spec download(Tensor.t(), call_opts()) :: {:ok, binary()} | {:error, error()}
  def download(tensor, opts \\ []) do
    check_tensor!(tensor, "download")

    if pieces = in_pieces(tensor.conn, Tensor.byte_size(tensor), opts) do
      {limits, budget} = pieces
      Transfer.download(tensor, budget, limits)
    else
      download_whole(tensor, opts)
    end
  end

  defp download_whole(tensor, opts) do
    case call(tensor.conn, {:download, tensor.id}, [tensor.session], opts) do
      {:ok, data, _node, _session} when is_binary(data) ->
        expected = Tensor.byte_size(tensor)

        if byte_size(data) == expected do
          {:ok, data}
        else
          {:error,
           %Error{
             kind: :internal,
             message:
               "download: the node returned #{byte_size(data)} bytes for #{inspect(tensor)} (expected #{expected})"
           }}
        end

      {:ok, other, _node, _session} ->
        {:error, unexpected(:download, other)}

      {:error, error} ->
        {:error, error}
    end
  end

  @doc """
  Frees a tensor on the node. Using it afterwards gives an `:unknown_handle` error.

  ## Examples

      iex> Mure.free(t)
      :ok
      iex> Mure.download(t)
      {:error, %Mure.Error{kind: :unknown_handle, message: "..."}}

  """
  @spec free(Tensor.t(), call_opts()) :: :ok | {:error, error()}
  def free(tensor, opts \\ []) do
    check_tensor!(tensor, "free")

    case call(tensor.conn, {:free, tensor.id}, [tensor.session], opts) do
      {:ok, :freed, _node, _session} -> :ok
      {:ok, other, _node, _session} -> {:error, unexpected(:free, other)}
      {:error, error} -> {:error, error}
    end
  end

  @doc """
  Multiplies matrices on the node's BLIS device: `a` of shape `{m, k}` times `b` of
  shape `{k, n}` gives a resident `{m, n}` tensor. Both must be `{:f, 32}` or both
  `{:f, 64}`, and belong to the same connection.

  ## Examples

      iex> {:ok, c} = Mure.matmul(a, b)
      iex> c
      #Mure.Tensor<f32[512][256]>
      iex> Mure.matmul(a, a)
      ** (ArgumentError) matmul: cannot multiply f32[512][128] by f32[512][128]: the first tensor's axis 1 (128) must equal the second tensor's axis 0 (512)

  """
  @spec matmul(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def matmul(a, b, opts \\ []) do
    check_pair!(a, b, "matmul")

    case {a.shape, b.shape} do
      {{_m, k}, {k, _n}} ->
        :ok

      {{_m, k1}, {k2, _n}} ->
        raise ArgumentError,
              "matmul: cannot multiply #{describe(a)} by #{describe(b)}: the first tensor's " <>
                "axis 1 (#{k1}) must equal the second tensor's axis 0 (#{k2})"

      _ ->
        raise ArgumentError,
              "matmul: expected two rank-2 tensors {m, k} and {k, n}, got #{describe(a)} and #{describe(b)}"
    end

    unless a.type == b.type and a.type in [{:f, 32}, {:f, 64}] do
      raise ArgumentError,
            "matmul: expected both tensors to be {:f, 32} or both {:f, 64}, " <>
              "got #{inspect(a.type)} and #{inspect(b.type)}"
    end

    compute(a, b, {:matmul, a.id, b.id}, opts)
  end

  @doc """
  Adds two `{:f, 32}` tensors of the same shape elementwise on the node's OpenCL device.

  ## Examples

      iex> {:ok, c} = Mure.add(a, b)
      iex> Mure.add(a, Mure.upload!(conn, <<0::64>>, {:f, 64}, {1}))
      ** (ArgumentError) add: expected both tensors to be {:f, 32}, got {:f, 32} and {:f, 64}

  """
  @spec add(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def add(a, b, opts \\ []), do: elementwise(:add, a, b, opts)

  @doc """
  Multiplies two `{:f, 32}` tensors of the same shape elementwise on the node's OpenCL
  device.

  ## Examples

      iex> {:ok, c} = Mure.multiply(a, b)
      iex> Mure.download!(c)

  """
  @spec multiply(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def multiply(a, b, opts \\ []), do: elementwise(:multiply, a, b, opts)

  ## The op set (CPU executor)

  # The same lists as Mure.Expr's: both come from Mure.Rules.
  @unary_ops Mure.Rules.unary_ops()
  @binary_ops Mure.Rules.binary_ops()
  @reductions Mure.Rules.reductions()

  @doc "The unary ops `unary/3` takes (Nx's names)."
  @spec unary_ops() :: [atom()]
  def unary_ops, do: @unary_ops

  @doc "The binary ops `binary/4` takes (Nx's names)."
  @spec binary_ops() :: [atom()]
  def binary_ops, do: @binary_ops

  @doc "The reductions `reduce/3` takes (Nx's names)."
  @spec reductions() :: [atom()]
  def reductions, do: @reductions

  @doc """
  Applies an elementwise unary op (Nx's name, see `unary_ops/0`) on the node's CPU executor.

  The result type follows Nx: float functions (`:exp`, `:sin`, ...) turn integers into
  `{:f, 32}`; `:is_nan`, `:is_infinity` and `:logical_not` give `{:u, 8}`; the bitwise ops
  take integers only.

  ## Examples

      iex> {:ok, y} = Mure.unary(:exp, x)
      iex> Mure.unary(:population_count, x_f32)
      {:error, %Mure.Error{kind: :type_mismatch, message: "population_count takes integer tensors, got {:f, 32}"}}

  """
  @spec unary(atom(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def unary(op, %Tensor{} = t, opts \\ []) do
    check_op!(op, @unary_ops, "unary")
    compute(t, t, {:unary, op, t.id}, opts)
  end

  @doc """
  Applies an elementwise binary op (Nx's name, see `binary_ops/0`) with Nx's broadcasting
  and type promotion on the node's CPU executor: `{:s, 32}` with `{:f, 32}` gives
  `{:f, 32}`; comparisons and logical ops give `{:u, 8}`; `:divide` always gives a float.
  Integer division by zero gives -1 (quotient) and the dividend (remainder), as XLA does.

  ## Examples

      iex> {:ok, c} = Mure.binary(:add, matrix, row)      # {2, 3} + {3}
      iex> c.shape
      {2, 3}
      iex> Mure.binary(:add, Mure.upload!(conn, <<0::64>>, {:s, 32}, {2}), row)
      {:error, %Mure.Error{kind: :shape_mismatch, message: "shapes {2} and {3} cannot be broadcast together (dimension 0: 2 vs 3)"}}

  """
  @spec binary(atom(), Tensor.t(), Tensor.t(), call_opts()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def binary(op, a, b, opts \\ []) do
    check_op!(op, @binary_ops, "binary")
    check_pair!(a, b, Atom.to_string(op))
    compute(a, b, {:binary, op, a.id, b.id}, opts)
  end

  @doc """
  Reduces a tensor (see `reductions/0`) over `axes:` (a list, negative counts from the
  end; default: all axes), keeping them as size 1 with `keep_axes: true`. Integer sums
  and products are 64-bit; `:argmax`/`:argmin` give `{:s, 64}` indices (first occurrence
  on ties, NaN counts as the largest) over one axis or all of them.

  ## Examples

      iex> {:ok, s} = Mure.reduce(:sum, t, axes: [0])
      iex> {:ok, i} = Mure.reduce(:argmax, t, axes: [1], keep_axes: true)

  """
  @spec reduce(atom(), Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def reduce(op, %Tensor{} = t, opts \\ []) do
    check_op!(op, @reductions, "reduce")
    {ro, opts} = Keyword.split(opts, [:axes, :keep_axes])
    ro = Keyword.validate!(ro, axes: :all, keep_axes: false)

    axes =
      case ro[:axes] do
        :all ->
          :all

        list when is_list(list) ->
          Enum.map(list, &check_int!(&1, "reduce axes"))

        other ->
          raise ArgumentError, "reduce: :axes must be a list of integers, got: #{inspect(other)}"
      end

    unless is_boolean(ro[:keep_axes]),
      do: raise(ArgumentError, "reduce: :keep_axes must be a boolean")

    compute(t, t, {:reduce, op, t.id, axes, ro[:keep_axes]}, opts)
  end

  @doc """
  Converts a tensor to another type, as `Nx.as_type/2`: floats to integers truncate and
  saturate (NaN becomes 0), integers wrap.

  ## Examples

      iex> {:ok, i} = Mure.as_type(t, {:s, 32})

  """
  @spec as_type(Tensor.t(), type(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def as_type(%Tensor{} = t, type, opts \\ []) do
    Types.check_type!(type, "as_type")
    compute(t, t, {:as_type, t.id, type}, opts)
  end

  @doc """
  Reinterprets a tensor's bytes as another type of the same width, as `Nx.bitcast/2`.

  ## Examples

      iex> {:ok, bits} = Mure.bitcast(t_f32, {:u, 32})

  """
  @spec bitcast(Tensor.t(), type(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def bitcast(%Tensor{} = t, type, opts \\ []) do
    Types.check_type!(type, "bitcast")

    unless elem(type, 1) == elem(t.type, 1) do
      raise ArgumentError,
            "bitcast: #{inspect(t.type)} and #{inspect(type)} differ in width"
    end

    compute(t, t, {:bitcast, t.id, type}, opts)
  end

  @doc """
  Gives a tensor a new shape with the same number of elements.

  ## Examples

      iex> {:ok, r} = Mure.reshape(t, {3, 2})

  """
  @spec reshape(Tensor.t(), shape(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def reshape(%Tensor{} = t, shape, opts \\ []) do
    Types.check_shape!(shape, "reshape")

    unless Types.size(shape) == Types.size(t.shape) do
      raise ArgumentError,
            "reshape: cannot reshape #{describe(t)} (#{Types.size(t.shape)} elements) " <>
              "to #{inspect(shape)} (#{Types.size(shape)} elements)"
    end

    compute(t, t, {:reshape, t.id, shape}, opts)
  end

  @doc """
  Permutes a tensor's axes (`axes:` a permutation; default: reversed), as
  `Nx.transpose/2`.

  ## Examples

      iex> {:ok, tt} = Mure.transpose(t)
      iex> {:ok, p} = Mure.transpose(t3, axes: [0, 2, 1])

  """
  @spec transpose(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def transpose(%Tensor{} = t, opts \\ []) do
    {to, opts} = Keyword.split(opts, [:axes])
    rank = tuple_size(t.shape)
    axes = Keyword.get(to, :axes, Enum.reverse(Enum.to_list(0..(rank - 1)//1)))
    Enum.each(axes, &check_int!(&1, "transpose axes"))
    compute(t, t, {:transpose, t.id, List.to_tuple(axes)}, opts)
  end

  @doc """
  Slices a tensor: per axis a start, a length and (optionally, `strides:`) a stride, as
  `Nx.slice/4`. The length is the span of the input the slice covers, `start` to
  `start + length - 1`, and the result keeps every stride-th element of it:
  `ceil(length / stride)` elements (a length of 0 gives an empty axis). The span must lie
  inside the tensor: a slice that runs past an edge is refused with `:out_of_range` (it is
  not clamped, where Nx would move the start back).

  ## Examples

      iex> {:ok, s} = Mure.slice(t, [0, 1], [2, 2])
      iex> Mure.slice!(t, [0, 0], [2, 3], strides: [1, 2]).shape
      {2, 2}
      iex> Mure.slice(t, [0, 2], [2, 2])
      {:error, %Mure.Error{kind: :out_of_range, message: "slice of dimension 1 (size 3) from 2 with length 2 runs past its end"}}

  """
  @spec slice(Tensor.t(), [integer()], [integer()], keyword()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def slice(%Tensor{} = t, starts, lengths, opts \\ []) do
    {so, opts} = Keyword.split(opts, [:strides])
    rank = tuple_size(t.shape)
    strides = Keyword.get(so, :strides, List.duplicate(1, rank))

    for {list, what} <- [{starts, "starts"}, {lengths, "lengths"}, {strides, "strides"}] do
      unless is_list(list) and length(list) == rank do
        raise ArgumentError,
              "slice: #{what} must be a list of #{rank} integers, got: #{inspect(list)}"
      end

      Enum.each(list, &check_int!(&1, "slice #{what}"))
    end

    compute(
      t,
      t,
      {:slice, t.id, List.to_tuple(starts), List.to_tuple(lengths), List.to_tuple(strides)},
      opts
    )
  end

  @doc """
  Gathers entries of `t` along `axis:` (default 0) at the integer `indices` tensor's
  values, as `Nx.take/3`. Every index is range-checked on the node before anything is
  written: one outside the axis is refused with `:out_of_range`.

  ## Examples

      iex> {:ok, rows} = Mure.take(t, Mure.upload!(conn, <<2::32-native, 0::32-native>>, {:s, 32}, {2}))

  """
  @spec take(Tensor.t(), Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def take(t, indices, opts \\ []) do
    check_pair!(t, indices, "take")
    {to, opts} = Keyword.split(opts, [:axis])
    axis = check_int!(Keyword.get(to, :axis, 0), "take axis")
    compute(t, indices, {:take, t.id, indices.id, axis}, opts)
  end

  ## Creation

  @doc """
  Creates a tensor of `shape` counting along `axis:` (or over all elements when `axis: nil`,
  the default), as `Nx.iota/2`. `type:` defaults to `{:s, 32}`.

  ## Examples

      iex> t = Mure.iota!(conn, {2, 3}, axis: 1)
      iex> Mure.download!(t)
      <<0::32-native, 1::32-native, 2::32-native, 0::32-native, 1::32-native, 2::32-native>>

  """
  @spec iota(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def iota(conn, shape, opts \\ []) do
    {co, opts} = Keyword.split(opts, [:type, :axis])
    co = Keyword.validate!(co, type: {:s, 32}, axis: nil)
    Types.check_type!(co[:type], "iota")
    Types.check_shape!(shape, "iota")
    axis = if is_nil(co[:axis]), do: nil, else: check_int!(co[:axis], "iota axis")
    create(conn, {:iota, co[:type], shape, axis}, opts)
  end

  @doc """
  Creates an identity matrix (ones on the diagonal of the last two axes), as `Nx.eye/2`.
  `type:` defaults to `{:s, 32}`.

  ## Examples

      iex> {:ok, i} = Mure.eye(conn, {3, 3}, type: {:f, 32})

  """
  @spec eye(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def eye(conn, shape, opts \\ []) do
    {co, opts} = Keyword.split(opts, [:type])
    type = Keyword.get(co, :type, {:s, 32})
    Types.check_type!(type, "eye")
    Types.check_shape!(shape, "eye")
    create(conn, {:eye, type, shape}, opts)
  end

  @doc """
  Creates a tensor of `shape` filled with `value` (a number, or `:infinity`,
  `:neg_infinity`, `:nan`), as `Nx.broadcast/2` of a scalar. `type:` defaults to
  `{:f, 32}` for floats and `{:s, 32}` for integers.

  ## Examples

      iex> {:ok, zeros} = Mure.full(conn, 0.0, {1024, 1024})

  """
  @spec full(conn(), number() | :infinity | :neg_infinity | :nan, shape(), keyword()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def full(conn, value, shape, opts \\ []) do
    {co, opts} = Keyword.split(opts, [:type])
    type = Keyword.get(co, :type, if(is_integer(value), do: {:s, 32}, else: {:f, 32}))
    check_scalar!(value, "full")
    Types.check_type!(type, "full")
    Types.check_shape!(shape, "full")
    create(conn, {:full, type, shape, value}, opts)
  end

  @doc """
  Creates uniformly distributed random floats in `[min, max)` (`min:` 0.0, `max:` 1.0,
  `type:` `{:f, 32}`). Element i depends only on `seed:` (required) and i: the same seed
  gives the same numbers, on every executor.

  ## Examples

      iex> {:ok, r} = Mure.random_uniform(conn, {1000}, seed: 42, min: -1.0, max: 1.0)

  """
  @spec random_uniform(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def random_uniform(conn, shape, opts) do
    {co, opts} = Keyword.split(opts, [:seed, :min, :max, :type])
    co = Keyword.validate!(co, [:seed, min: 0.0, max: 1.0, type: {:f, 32}])
    random(conn, :random_uniform, shape, co[:seed], co[:min], co[:max], co[:type], opts)
  end

  @doc """
  Creates normally distributed random floats (`mean:` 0.0, `std:` 1.0, `type:` `{:f, 32}`)
  from `seed:` (required), by Box-Muller over the same counter-based generator as
  `random_uniform/3`.

  ## Examples

      iex> {:ok, w} = Mure.random_normal(conn, {784, 128}, seed: 1, std: 0.05)

  """
  @spec random_normal(conn(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def random_normal(conn, shape, opts) do
    {co, opts} = Keyword.split(opts, [:seed, :mean, :std, :type])
    co = Keyword.validate!(co, [:seed, mean: 0.0, std: 1.0, type: {:f, 32}])
    random(conn, :random_normal, shape, co[:seed], co[:mean], co[:std], co[:type], opts)
  end

  ## Selection and shapes

  @doc """
  Picks `on_true` where `pred` is non-zero and `on_false` elsewhere, broadcasting all
  three, as `Nx.select/3`.

  ## Examples

      iex> {:ok, relu} = Mure.select(Mure.binary!(:greater, x, zero), x, zero)

  """
  @spec select(Tensor.t(), Tensor.t(), Tensor.t(), call_opts()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def select(pred, on_true, on_false, opts \\ []) do
    check_pair!(pred, on_true, "select")
    check_pair!(pred, on_false, "select")
    compute(pred, on_true, {:select, pred.id, on_true.id, on_false.id}, opts, [on_false])
  end

  @doc """
  Limits `t` to `[min, max]` (tensors, broadcast), as `Nx.clip/3`.

  ## Examples

      iex> {:ok, c} = Mure.clip(t, lo, hi)

  """
  @spec clip(Tensor.t(), Tensor.t(), Tensor.t(), call_opts()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def clip(t, min, max, opts \\ []) do
    check_pair!(t, min, "clip")
    check_pair!(t, max, "clip")
    compute(t, min, {:clip, t.id, min.id, max.id}, opts, [max])
  end

  @doc """
  Broadcasts `t` to `shape`; `axes:` says where each of `t`'s axes goes (default: aligned
  to the right), as `Nx.broadcast/3`.

  ## Examples

      iex> {:ok, m} = Mure.broadcast(row, {4, 3})
      iex> {:ok, m} = Mure.broadcast(col, {3, 4}, axes: [0])

  """
  @spec broadcast(Tensor.t(), shape(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def broadcast(%Tensor{} = t, shape, opts \\ []) do
    Types.check_shape!(shape, "broadcast")
    {bo, opts} = Keyword.split(opts, [:axes])
    rank = tuple_size(t.shape)
    out_rank = tuple_size(shape)
    axes = Keyword.get(bo, :axes, Enum.to_list((out_rank - rank)..(out_rank - 1)//1))
    Enum.each(axes, &check_int!(&1, "broadcast axes"))
    compute(t, t, {:broadcast, t.id, shape, axes}, opts)
  end

  @doc """
  Reverses `t` along `axes:` (default: all), as `Nx.reverse/2`.

  ## Examples

      iex> {:ok, r} = Mure.reverse(t, axes: [0])

  """
  @spec reverse(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def reverse(%Tensor{} = t, opts \\ []) do
    {ro, opts} = Keyword.split(opts, [:axes])
    axes = Keyword.get(ro, :axes, Enum.to_list(0..(tuple_size(t.shape) - 1)//1))
    Enum.each(axes, &check_int!(&1, "reverse axes"))
    compute(t, t, {:reverse, t.id, axes}, opts)
  end

  @doc """
  Pads `t` with `value`: `config` has one `{low, high, interior}` per axis; negative
  `low`/`high` crop, as `Nx.pad/3`.

  ## Examples

      iex> {:ok, p} = Mure.pad(t, 0.0, [{1, 1, 0}, {0, 0, 1}])

  """
  @spec pad(Tensor.t(), number(), [{integer(), integer(), non_neg_integer()}], call_opts()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def pad(%Tensor{} = t, value, config, opts \\ []) do
    check_scalar!(value, "pad")

    unless is_list(config) and length(config) == tuple_size(t.shape) and
             Enum.all?(
               config,
               &match?({lo, hi, i} when is_integer(lo) and is_integer(hi) and is_integer(i), &1)
             ) do
      raise ArgumentError,
            "pad: expected one {low, high, interior} tuple of integers per axis (#{tuple_size(t.shape)}), " <>
              "got: #{inspect(config)}"
    end

    compute(t, t, {:pad, t.id, value, config}, opts)
  end

  @doc """
  Joins tensors along `axis:` (default 0), promoting their types, as `Nx.concatenate/2`.

  ## Examples

      iex> {:ok, ab} = Mure.concatenate([a, b], axis: 1)

  """
  @spec concatenate([Tensor.t()], keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def concatenate(tensors, opts \\ []), do: join(:concatenate, tensors, opts)

  @doc """
  Stacks tensors of one shape along a new axis `axis:` (default 0), as `Nx.stack/2`.

  ## Examples

      iex> {:ok, s} = Mure.stack([a, b, c])

  """
  @spec stack([Tensor.t()], keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def stack(tensors, opts \\ []), do: join(:stack, tensors, opts)

  @doc """
  Writes `update` into `t` at `starts` (the update must fit: no clamping), as
  `Nx.put_slice/3`.

  ## Examples

      iex> {:ok, t2} = Mure.put_slice(t, [0, 1], patch)

  """
  @spec put_slice(Tensor.t(), [integer()], Tensor.t(), call_opts()) ::
          {:ok, Tensor.t()} | {:error, error()}
  def put_slice(t, starts, update, opts \\ []) do
    check_pair!(t, update, "put_slice")
    Enum.each(List.wrap(starts), &check_int!(&1, "put_slice starts"))
    compute(t, update, {:put_slice, t.id, starts, update.id}, opts)
  end

  @doc """
  Reads the elements of `t` at full coordinates: `indices` has shape `{..., rank(t)}`, as
  `Nx.gather/2`. Every coordinate is range-checked first.

  ## Examples

      iex> {:ok, g} = Mure.gather(t, coords)

  """
  @spec gather(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def gather(t, indices, opts \\ []) do
    check_pair!(t, indices, "gather")
    compute(t, indices, {:gather, t.id, indices.id}, opts)
  end

  @doc """
  Sorts along `axis:` (default 0), `direction:` `:asc` (default) or `:desc`; stable, NaN
  sorts as the largest value, as `Nx.sort/2`.

  ## Examples

      iex> {:ok, s} = Mure.sort(t, axis: 1, direction: :desc)

  """
  @spec sort(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def sort(t, opts \\ []), do: sort_op(:sort, t, opts)

  @doc """
  Like `sort/2`, but gives the `{:s, 64}` indices that sort `t`, as `Nx.argsort/2`.

  ## Examples

      iex> {:ok, order} = Mure.argsort(t)

  """
  @spec argsort(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def argsort(t, opts \\ []), do: sort_op(:argsort, t, opts)

  @doc """
  Removes size-1 axes (`axes:` default: all of them), as `Nx.squeeze/2`.

  ## Examples

      iex> {:ok, v} = Mure.squeeze(t)   # {1, 3, 1} -> {3}

  """
  @spec squeeze(Tensor.t(), keyword()) :: {:ok, Tensor.t()} | {:error, error()}
  def squeeze(%Tensor{} = t, opts \\ []) do
    {so, opts} = Keyword.split(opts, [:axes])
    dims = Tuple.to_list(t.shape)
    rank = length(dims)
    axes = Keyword.get(so, :axes, for({1, i} <- Enum.with_index(dims), do: i))
    axes = Enum.map(axes, fn a -> if a < 0, do: a + rank, else: a end)

    for a <- axes, a < 0 or a >= rank or elem(t.shape, a) != 1 do
      raise ArgumentError, "squeeze: axis #{a} of #{describe(t)} is not of size 1"
    end

    shape = for({d, i} <- Enum.with_index(dims), i not in axes, do: d) |> List.to_tuple()
    reshape(t, shape, opts)
  end

  @doc """
  Adds a size-1 axis at `axis`, as `Nx.new_axis/2`.

  ## Examples

      iex> {:ok, col} = Mure.new_axis(v, 1)   # {3} -> {3, 1}

  """
  @spec new_axis(Tensor.t(), integer(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def new_axis(%Tensor{} = t, axis, opts \\ []) do
    rank = tuple_size(t.shape)
    axis = if axis < 0, do: axis + rank + 1, else: axis

    unless axis in 0..rank do
      raise ArgumentError, "new_axis: axis out of range for #{describe(t)}"
    end

    reshape(t, Tuple.insert_at(t.shape, axis, 1), opts)
  end

  ## Linear algebra

  @doc """
  `dot/2` contracts the last axis of `a` with the first of `b` (a matrix product for
  matrices, an inner product for vectors); `dot/6` takes contraction and batch axes as
  `Nx.dot/6`. `{:f, 32}` and `{:f, 64}` go through BLIS gemm one batch at a time; other
  types are computed with plain loops (integers wrap).

  ## Examples

      iex> {:ok, c} = Mure.dot(a, b)
      iex> {:ok, bmm} = Mure.dot(x, [2], [0], y, [1], [0])   # batched matmul

  """
  @spec dot(Tensor.t(), Tensor.t()) :: {:ok, Tensor.t()} | {:error, error()}
  def dot(a, b) do
    check_pair!(a, b, "dot")
    ra = tuple_size(a.shape)
    contract_a = if ra == 0, do: [], else: [ra - 1]
    contract_b = if tuple_size(b.shape) == 0, do: [], else: [0]
    dot(a, contract_a, [], b, contract_b, [])
  end

  @spec dot(
          Tensor.t(),
          [integer()],
          [integer()],
          Tensor.t(),
          [integer()],
          [integer()],
          call_opts()
        ) ::
          {:ok, Tensor.t()} | {:error, error()}
  def dot(a, contract_a, batch_a, b, contract_b, batch_b, opts \\ []) do
    check_pair!(a, b, "dot")

    for list <- [contract_a, batch_a, contract_b, batch_b] do
      unless is_list(list), do: raise(ArgumentError, "dot: axes must be lists of integers")
      Enum.each(list, &check_int!(&1, "dot axes"))
    end

    compute(a, b, {:dot, a.id, contract_a, batch_a, b.id, contract_b, batch_b}, opts)
  end

  @doc """
  The outer product: every element of `a` times every element of `b`, shape
  `a.shape ++ b.shape`.

  ## Examples

      iex> {:ok, o} = Mure.outer(u, v)

  """
  @spec outer(Tensor.t(), Tensor.t(), call_opts()) :: {:ok, Tensor.t()} | {:error, error()}
  def outer(a, b, opts \\ []) do
    check_pair!(a, b, "outer")
    compute(a, b, {:outer, a.id, b.id}, opts)
  end

  for {name, arity, args} <- [
        {:iota, 3, quote(do: [conn, shape, opts])},
        {:eye, 3, quote(do: [conn, shape, opts])},
        {:full, 4, quote(do: [conn, value, shape, opts])},
        {:select, 4, quote(do: [p, a, b, opts])},
        {:clip, 4, quote(do: [t, lo, hi, opts])},
        {:broadcast, 3, quote(do: [t, shape, opts])},
        {:reverse, 2, quote(do: [t, opts])},
        {:pad, 4, quote(do: [t, value, config, opts])},
        {:concatenate, 2, quote(do: [ts, opts])},
        {:stack, 2, quote(do: [ts, opts])},
        {:put_slice, 4, quote(do: [t, starts, update, opts])},
        {:gather, 3, quote(do: [t, indices, opts])},
        {:sort, 2, quote(do: [t, opts])},
        {:argsort, 2, quote(do: [t, opts])},
        {:squeeze, 2, quote(do: [t, opts])},
        {:new_axis, 3, quote(do: [t, axis, opts])},
        {:outer, 3, quote(do: [a, b, opts])}
      ] do
    bang = :"#{name}!"
    {leading, [last]} = Enum.split(args, length(args) - 1)
    @doc "Like `#{name}/#{arity}`, but returns the tensor or raises."
    def unquote(bang)(unquote_splicing(leading), unquote(last) \\ []),
      do: unwrap!(unquote(name)(unquote_splicing(leading), unquote(last)))
  end

  @doc "Like `random_uniform/3`, but returns the tensor or raises."
  @spec random_uniform!(conn(), shape(), keyword()) :: Tensor.t()
  def random_uniform!(conn, shape, opts), do: unwrap!(random_uniform(conn, shape, opts))

  @doc "Like `random_normal/3`, but returns the tensor or raises."
  @spec random_normal!(conn(), shape(), keyword()) :: Tensor.t()
  def random_normal!(conn, shape, opts), do: unwrap!(random_normal(conn, shape, opts))

  @doc "Like `dot/2`, but returns the tensor or raises."
  @spec dot!(Tensor.t(), Tensor.t()) :: Tensor.t()
  def dot!(a, b), do: unwrap!(dot(a, b))

  @doc "Like `dot/7`, but returns the tensor or raises."
  @spec dot!(
          Tensor.t(),
          [integer()],
          [integer()],
          Tensor.t(),
          [integer()],
          [integer()],
          call_opts()
        ) ::
          Tensor.t()
  def dot!(a, ca, ba, b, cb, bb, opts \\ []), do: unwrap!(dot(a, ca, ba, b, cb, bb, opts))

  defp random(conn, op, shape, seed, p1, p2, type, opts) do
    unless is_integer(seed), do: raise(ArgumentError, "#{op}: :seed must be an integer")
    Types.check_type!(type, Atom.to_string(op))
    Types.check_shape!(shape, Atom.to_string(op))

    unless match?({:f, _}, type) or type == {:bf, 16},
      do: raise(ArgumentError, "#{op}: makes floats, got #{inspect(type)}")

    check_scalar!(p1, Atom.to_string(op))
    check_scalar!(p2, Atom.to_string(op))
    create(conn, {op, type, shape, seed, p1, p2}, opts)
  end

  defp join(op, tensors, opts) do
    unless is_list(tensors) and tensors != [],
      do: raise(ArgumentError, "#{op}: expected a non-empty list of tensors")

    [first | _] = tensors
    Enum.each(tensors, &check_pair!(first, &1, Atom.to_string(op)))
    {jo, opts} = Keyword.split(opts, [:axis])
    axis = check_int!(Keyword.get(jo, :axis, 0), "#{op} axis")
    compute(first, first, {op, Enum.map(tensors, & &1.id), axis}, opts, tensors)
  end

  defp sort_op(op, %Tensor{} = t, opts) do
    {so, opts} = Keyword.split(opts, [:axis, :direction])
    so = Keyword.validate!(so, axis: 0, direction: :asc)

    unless so[:direction] in [:asc, :desc],
      do: raise(ArgumentError, "#{op}: :direction must be :asc or :desc")

    compute(t, t, {op, t.id, check_int!(so[:axis], "#{op} axis"), so[:direction]}, opts)
  end

  defp check_scalar!(v, _what) when is_number(v) or v in [:infinity, :neg_infinity, :nan], do: :ok

  defp check_scalar!(v, what),
    do: raise(ArgumentError, "#{what}: expected a number, got: #{inspect(v)}")

  @doc "Like `unary/3`, but returns the tensor or raises."
  @spec unary!(atom(), Tensor.t(), call_opts()) :: Tensor.t()
  def unary!(op, t, opts \\ []), do: unwrap!(unary(op, t, opts))

  @doc "Like `binary/4`, but returns the tensor or raises."
  @spec binary!(atom(), Tensor.t(), Tensor.t(), call_opts()) :: Tensor.t()
  def binary!(op, a, b, opts \\ []), do: unwrap!(binary(op, a, b, opts))

  @doc "Like `reduce/3`, but returns the tensor or raises."
  @spec reduce!(atom(), Tensor.t(), keyword()) :: Tensor.t()
  def reduce!(op, t, opts \\ []), do: unwrap!(reduce(op, t, opts))

  @doc "Like `as_type/3`, but returns the tensor or raises."
  @spec as_type!(Tensor.t(), type(), call_opts()) :: Tensor.t()
  def as_type!(t, type, opts \\ []), do: unwrap!(as_type(t, type, opts))

  @doc "Like `bitcast/3`, but returns the tensor or raises."
  @spec bitcast!(Tensor.t(), type(), call_opts()) :: Tensor.t()
  def bitcast!(t, type, opts \\ []), do: unwrap!(bitcast(t, type, opts))

  @doc "Like `reshape/3`, but returns the tensor or raises."
  @spec reshape!(Tensor.t(), shape(), call_opts()) :: Tensor.t()
  def reshape!(t, shape, opts \\ []), do: unwrap!(reshape(t, shape, opts))

  @doc "Like `transpose/2`, but returns the tensor or raises."
  @spec transpose!(Tensor.t(), keyword()) :: Tensor.t()
  def transpose!(t, opts \\ []), do: unwrap!(transpose(t, opts))

  @doc "Like `slice/4`, but returns the tensor or raises."
  @spec slice!(Tensor.t(), [integer()], [integer()], keyword()) :: Tensor.t()
  def slice!(t, starts, lengths, opts \\ []), do: unwrap!(slice(t, starts, lengths, opts))

  @doc "Like `take/3`, but returns the tensor or raises."
  @spec take!(Tensor.t(), Tensor.t(), keyword()) :: Tensor.t()
  def take!(t, indices, opts \\ []), do: unwrap!(take(t, indices, opts))

  defp check_op!(op, known, family) do
    unless op in known do
      raise ArgumentError,
            "#{family}: unknown op #{inspect(op)}; expected one of #{Enum.map_join(known, ", ", &inspect/1)}"
    end
  end

  defp check_int!(v, _what) when is_integer(v), do: v

  defp check_int!(v, what),
    do: raise(ArgumentError, "#{what}: expected an integer, got: #{inspect(v)}")

  ## Programs and the JIT

  @doc """
  Makes a function of tensors run on the node as one program per call.

  `fun` is written with `Mure.Expr`'s ops (the names and argument conventions of this
  module's eager functions). `run/3` calls it once per distinct *signature* — the types and
  shapes of the arguments — with one symbolic `%Mure.Expr{}` per argument; the expressions it
  returns (one, or a tuple or list of them) and everything they depend on make a program
  (docs/protocol.md, "Programs"), which the node validates as a whole and runs in one
  message, freeing intermediates after their last use. Nodes no output depends on are not
  sent. Types and shapes are checked while tracing, with the node's rules: a mistake raises
  `ArgumentError` naming the op, before anything is sent.

  Traced programs are cached per `{fun, signature}` in an ETS table shared by the whole
  BEAM: a second call with the same types and shapes (and new data) sends the cached
  program without calling `fun`; calling `jit/2` again on the same function (the same code
  with the same captured values) reuses its traces. Two processes that trace the same new
  signature at the same moment may both trace it.

  ## Options (defaults for every call; `run/3` takes them too, to override)

    * `:outputs` - `:keep` (default): results stay on the node as `%Mure.Tensor{}`s owned
      by the caller; `:return`: results come back as binaries; or a list with one of
      them per output
    * `:device` - `:auto`, `:cpu` or `:opencl`: where the node runs the program (default:
      the node's choice)
    * `:timeout` - milliseconds or `:infinity` for the whole call (default: the
      connection's)
    * `:conn` - the connection, needed when no argument is a resident tensor

  ## Examples

      iex> {:ok, conn} = Mure.start_link([])
      iex> predict = Mure.jit(fn x, w, b ->
      ...>   x |> Mure.Expr.dot(w) |> Mure.Expr.add(b) |> Mure.Expr.sigmoid()
      ...> end, outputs: :return)
      iex> f32 = fn list -> for v <- list, into: <<>>, do: <<v::float-32-native>> end
      iex> w = Mure.upload!(conn, f32.([1.0, 0.0, 0.0, 1.0]), {:f, 32}, {2, 2})
      iex> {:ok, y} = Mure.run(predict, [{f32.([0.0, 0.0]), {:f, 32}, {1, 2}}, w, {f32.([0.0, 0.0]), {:f, 32}, {2}}])
      iex> for <<v::float-32-native <- y>>, do: v
      [0.5, 0.5]
      iex> Mure.run(predict, [{f32.([0.0, 0.0, 0.0]), {:f, 32}, {1, 3}}, w, {f32.([0.0]), {:f, 32}, {1}}])
      ** (ArgumentError) dot: contraction axis 1 of {1, 3} and axis 0 of {2, 2} differ
      iex> Mure.stop(conn)
      :ok

  """
  @spec jit(function(), keyword()) :: Mure.Jit.t()
  def jit(fun, opts \\ []), do: Mure.Jit.new(fun, opts)

  @doc """
  Runs a jit'ed function (see `jit/2`) on `args` and returns its results, in the structure
  `fun` returned them: `%Mure.Tensor{}`s for kept outputs, binaries for returned ones.

  Each argument is a resident `%Mure.Tensor{}` (sent as its handle) or data as a
  `{binary, type, shape}` tuple (sent with the program; data larger than the connection's
  `:chunk_size` is uploaded in pieces first and freed after). All tensors must belong to one
  connection. Returned outputs larger than the chunk size come back in pieces. `opts`
  override the jit's (see `jit/2`).

  ## Examples

      iex> {:ok, y} = Mure.run(predict, [x, w, b])
      iex> {:ok, {loss, grads}} = Mure.run(step, [x, w], outputs: [:return, :keep])

  """
  @spec run(Mure.Jit.t(), [Tensor.t() | {binary(), type(), shape()}], keyword()) ::
          {:ok, term()} | {:error, error()}
  def run(%Mure.Jit{} = jit, args, opts \\ []) when is_list(args),
    do: Mure.Jit.run(jit, args, opts)

  @doc "Like `run/3`, but returns the results or raises."
  @spec run!(Mure.Jit.t(), [Tensor.t() | {binary(), type(), shape()}], keyword()) :: term()
  def run!(jit, args, opts \\ []), do: unwrap!(run(jit, args, opts))

  @doc """
  The program a jit'ed function makes for these arguments (tensors, `{binary, type, shape}`
  data, or `{type, shape}` pairs): from the cache, or traced now. Sends nothing.

  ## Examples

      iex> jit = Mure.jit(fn x -> Mure.Expr.exp(x) end)
      iex> Mure.trace(jit, [{{:f, 32}, {3}}]).nodes
      [{:unary, :exp, 1}]

  """
  @spec trace(Mure.Jit.t(), list()) :: Mure.Program.t()
  def trace(%Mure.Jit{} = jit, args) when is_list(args), do: Mure.Jit.program(jit, args)

  ## Asynchronous requests

  @doc """
  Like `run/3`, but returns at once with a `Mure.Request` to await (`await/2`).

  Several requests may be in flight at once, and awaited in any order: the node works on
  one program while the next one's data is on its way.

  ## Examples

      iex> r1 = Mure.async_run(predict, [x1, w, b])
      iex> r2 = Mure.async_run(predict, [x2, w, b])
      iex> [{:ok, y1}, {:ok, y2}] = Mure.await_many([r1, r2])

  """
  @spec async_run(Mure.Jit.t(), [Tensor.t() | {binary(), type(), shape()}], keyword()) ::
          Request.t()
  def async_run(%Mure.Jit{} = jit, args, opts \\ []) when is_list(args),
    do: Mure.Jit.async_run(jit, args, opts)

  @doc """
  Like `upload/5`, but returns at once with a `Mure.Request` to await (`await/2`). Data
  larger than the connection's `:chunk_size` moves in pieces from a helper process while
  the caller goes on; the tensor belongs to the caller.

  ## Examples

      iex> r = Mure.async_upload(conn, batch, {:f, 32}, {256, 784})
      iex> {:ok, x} = Mure.await(r)

  """
  @spec async_upload(conn(), binary(), type(), shape(), call_opts()) :: Request.t()
  def async_upload(conn, data, type, shape, opts \\ []) do
    check_data!(data, type, shape, "async_upload")
    opts = Keyword.validate!(opts, [:timeout])
    check_timeout!(opts[:timeout])

    case transfer_limits(conn, byte_size(data)) do
      {:pieces, limits} ->
        owner = self()

        Request.job(
          opts[:timeout],
          &Transfer.upload(conn, data, type, shape, owner, &1, limits),
          "upload"
        )

      :whole ->
        finish = fn
          handle, node, session when is_integer(handle) and handle > 0 ->
            {:ok,
             %Tensor{
               conn: conn,
               node: node,
               id: handle,
               type: type,
               shape: shape,
               session: session
             }}

          other, _node, _session ->
            {:error, unexpected(:upload, other)}
        end

        Request.submit(conn, {:upload, type, shape, data}, [], opts[:timeout], finish, "upload")
    end
  end

  @doc """
  Like `download/2`, but returns at once with a `Mure.Request` to await (`await/2`).

  ## Examples

      iex> r = Mure.async_download(y)
      iex> {:ok, bin} = Mure.await(r)

  """
  @spec async_download(Tensor.t(), call_opts()) :: Request.t()
  def async_download(tensor, opts \\ []) do
    check_tensor!(tensor, "async_download")
    opts = Keyword.validate!(opts, [:timeout])
    check_timeout!(opts[:timeout])
    expected = Tensor.byte_size(tensor)

    case transfer_limits(tensor.conn, expected) do
      {:pieces, limits} ->
        Request.job(opts[:timeout], &Transfer.download(tensor, &1, limits), "download")

      :whole ->
        finish = fn
          data, _node, _session when is_binary(data) and byte_size(data) == expected ->
            {:ok, data}

          other, _node, _session ->
            {:error, unexpected(:download, inspect(other, limit: 3))}
        end

        Request.submit(
          tensor.conn,
          {:download, tensor.id},
          [tensor.session],
          opts[:timeout],
          finish,
          "download"
        )
    end
  end

  @doc """
  Waits for a request made by `async_run/3`, `async_upload/5` or `async_download/2` and
  returns its result: `{:ok, value}` or `{:error, exception}`.

  Only the process that made the request can await it, once. `timeout` (milliseconds or
  `:infinity`) defaults to the request's own timeout (`timeout:` when it was made, else
  the connection's default). When it runs out, the result is
  `{:error, %Mure.ConnectionError{reason: :timeout}}` and the request is abandoned: a late
  reply is dropped, a transfer in pieces is cancelled and frees its tensor.

  ## Examples

      iex> {:ok, y} = Mure.await(Mure.async_run(predict, [x, w, b]))
      iex> Mure.await(Mure.async_run(slow, [x]), 10)
      {:error, %Mure.ConnectionError{reason: :timeout}}

  """
  @spec await(Request.t(), timeout() | nil) :: {:ok, term()} | {:error, error()}
  def await(%Request{} = request, timeout \\ nil), do: Request.await(request, timeout)

  @doc "Like `await/2`, but returns the value or raises."
  @spec await!(Request.t(), timeout() | nil) :: term()
  def await!(request, timeout \\ nil), do: unwrap!(await(request, timeout))

  @doc """
  Awaits several requests (in any order of completion) and returns their results in the
  order given. `timeout` bounds the whole wait; by default each request waits for its own.

  ## Examples

      iex> [{:ok, a}, {:ok, b}] = Mure.await_many([Mure.async_upload(conn, d1, t, s), Mure.async_upload(conn, d2, t, s)])

  """
  @spec await_many([Request.t()], timeout() | nil) :: [{:ok, term()} | {:error, error()}]
  def await_many(requests, timeout \\ nil) when is_list(requests),
    do: Request.await_many(requests, timeout)

  # Transfers: whether `bytes` move in pieces, and how large (see Mure.Transfer).
  defp transfer_limits(conn, bytes) do
    if bytes > Connection.min_chunk_size() do
      case Transfer.limits(conn) do
        {:ok, %{chunk_size: chunk} = limits} when bytes > chunk -> {:pieces, limits}
        _ -> :whole
      end
    else
      :whole
    end
  end

  defp in_pieces(conn, bytes, opts) do
    case transfer_limits(conn, bytes) do
      {:pieces, limits} ->
        opts = Keyword.validate!(opts, [:timeout])
        check_timeout!(opts[:timeout])
        {limits, Request.budget(opts[:timeout])}

      :whole ->
        nil
    end
  end

  defp check_timeout!(timeout) do
    unless is_nil(timeout) or Connection.valid_timeout?(timeout) do
      raise ArgumentError,
            "expected :timeout to be a non-negative integer or :infinity, got: #{inspect(timeout)}"
    end
  end

  defp check_data!(data, type, shape, what) do
    unless is_binary(data) do
      raise ArgumentError,
            "#{what}: expected the data to be a binary, got: #{inspect(data, limit: 5)}"
    end

    Types.check_type!(type, what)
    Types.check_shape!(shape, what)
    itemsize = Types.itemsize(type)
    count = Types.size(shape)

    if byte_size(data) != count * itemsize do
      raise ArgumentError,
            "#{what}: expected #{count * itemsize} bytes for a " <>
              "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} tensor " <>
              "(#{count} elements of #{itemsize} bytes), got #{byte_size(data)} bytes"
    end
  end

  ## Bang variants

  @doc "Like `hello/2`, but returns the map or raises."
  @spec hello!(conn(), call_opts()) :: map()
  def hello!(conn, opts \\ []), do: unwrap!(hello(conn, opts))

  @doc "Like `devices/2`, but returns the list or raises."
  @spec devices!(conn(), call_opts()) :: [map()]
  def devices!(conn, opts \\ []), do: unwrap!(devices(conn, opts))

  @doc "Like `stats/2`, but returns the map or raises."
  @spec stats!(conn(), call_opts()) :: map()
  def stats!(conn, opts \\ []), do: unwrap!(stats(conn, opts))

  @doc "Like `busy/3`, but returns `ms` or raises."
  @spec busy!(conn(), non_neg_integer(), call_opts()) :: non_neg_integer()
  def busy!(conn, ms, opts \\ []), do: unwrap!(busy(conn, ms, opts))

  @doc "Like `upload/5`, but returns the tensor or raises."
  @spec upload!(conn(), binary(), type(), shape(), call_opts()) :: Tensor.t()
  def upload!(conn, data, type, shape, opts \\ []),
    do: unwrap!(upload(conn, data, type, shape, opts))

  @doc "Like `download/2`, but returns the binary or raises."
  @spec download!(Tensor.t(), call_opts()) :: binary()
  def download!(tensor, opts \\ []), do: unwrap!(download(tensor, opts))

  @doc "Like `free/2`, but raises on error."
  @spec free!(Tensor.t(), call_opts()) :: :ok
  def free!(tensor, opts \\ []) do
    case free(tensor, opts) do
      :ok -> :ok
      {:error, error} -> raise error
    end
  end

  @doc "Like `matmul/3`, but returns the tensor or raises."
  @spec matmul!(Tensor.t(), Tensor.t(), call_opts()) :: Tensor.t()
  def matmul!(a, b, opts \\ []), do: unwrap!(matmul(a, b, opts))

  @doc "Like `add/3`, but returns the tensor or raises."
  @spec add!(Tensor.t(), Tensor.t(), call_opts()) :: Tensor.t()
  def add!(a, b, opts \\ []), do: unwrap!(add(a, b, opts))

  @doc "Like `multiply/3`, but returns the tensor or raises."
  @spec multiply!(Tensor.t(), Tensor.t(), call_opts()) :: Tensor.t()
  def multiply!(a, b, opts \\ []), do: unwrap!(multiply(a, b, opts))

  ## Internals

  defp unwrap!({:ok, value}), do: value
  defp unwrap!({:error, error}), do: raise(error)

  defp elementwise(op, a, b, opts) do
    check_pair!(a, b, Atom.to_string(op))

    unless a.shape == b.shape do
      raise ArgumentError,
            "#{op}: expected tensors of the same shape, got #{describe(a)} and #{describe(b)}"
    end

    unless a.type == {:f, 32} and b.type == {:f, 32} do
      raise ArgumentError,
            "#{op}: expected both tensors to be {:f, 32}, got #{inspect(a.type)} and #{inspect(b.type)}"
    end

    compute(a, b, {op, a.id, b.id}, opts)
  end

  defp compute(a, b, request, opts, more \\ []) do
    {request, opts} = placed(request, opts)

    case call(
           a.conn,
           request,
           Enum.uniq([a.session, b.session | Enum.map(more, & &1.session)]),
           opts
         ) do
      {:ok, {handle, type, shape}, node, session} when is_integer(handle) and is_tuple(shape) ->
        {:ok,
         %Tensor{conn: a.conn, node: node, id: handle, type: type, shape: shape, session: session}}

      {:ok, other, _node, _session} ->
        {:error, unexpected(elem(request, 0), other)}

      {:error, error} ->
        {:error, error}
    end
  end

  defp create(conn, request, opts) do
    {request, opts} = placed(request, opts)

    case call(conn, request, [], opts) do
      {:ok, {handle, type, shape}, node, session} when is_integer(handle) and is_tuple(shape) ->
        {:ok,
         %Tensor{conn: conn, node: node, id: handle, type: type, shape: shape, session: session}}

      {:ok, other, _node, _session} ->
        {:error, unexpected(elem(request, 0), other)}

      {:error, error} ->
        {:error, error}
    end
  end

  # `device: :cpu | :opencl | :auto` places a compute op ({:on, device, request}).
  defp placed(request, opts) do
    case Keyword.pop(opts, :device) do
      {nil, opts} ->
        {request, opts}

      {device, opts} when device in [:cpu, :opencl, :auto] ->
        {{:on, device, request}, opts}

      {other, _} ->
        raise ArgumentError,
              "expected :device to be :cpu, :opencl or :auto, got: #{inspect(other)}"
    end
  end

  defp check_tensor!(%Tensor{}, _what), do: :ok

  defp check_tensor!(other, what),
    do:
      raise(ArgumentError, "#{what}: expected a %Mure.Tensor{}, got: #{inspect(other, limit: 5)}")

  defp check_pair!(a, b, what) do
    check_tensor!(a, what)
    check_tensor!(b, what)

    unless a.conn == b.conn and a.node == b.node do
      raise ArgumentError,
            "#{what}: the tensors belong to different connections " <>
              "(#{inspect(a.conn)} on #{a.node} and #{inspect(b.conn)} on #{b.node})"
    end
  end

  defp describe(%Tensor{type: type, shape: shape}),
    do: Types.type_to_string(type) <> Types.shape_to_string(shape)

  defp unexpected(op, value),
    do: %Error{
      kind: :internal,
      message: "#{op}: unexpected reply from the node: #{inspect(value, limit: 10)}"
    }

  defp simple_call(conn, request, opts, check) do
    case call(conn, request, [], opts) do
      {:ok, value, _node, _session} ->
        if check.(value), do: {:ok, value}, else: {:error, unexpected(request, value)}

      {:error, error} ->
        {:error, error}
    end
  end

  # The caller owns its timeout (Redix style): it monitors the connection process with
  # an alias, and on timeout demonitors it, which deactivates the alias so that the
  # runtime drops a late reply. The connection also times every request (with this
  # timeout or its default) so that its table of requests in flight stays bounded.
  defp call(conn, request, sessions, opts) do
    opts = Keyword.validate!(opts, [:timeout])
    timeout = opts[:timeout]

    unless is_nil(timeout) or Connection.valid_timeout?(timeout) do
      raise ArgumentError,
            "expected :timeout to be a non-negative integer or :infinity, got: #{inspect(timeout)}"
    end

    # Not cancellable: a cancellation meant for a job's transfer waits for the job's own wait.
    with {:ok, _pid, alias} <- Request.send_call(conn, request, sessions, self(), timeout) do
      Request.receive_call(alias, timeout || :infinity, nil, false)
    end
  end
end
