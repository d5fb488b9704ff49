defmodule Mure.Connection do
  @moduledoc false
  # One process per mure node: a :gen_statem with two states.
  #
  #   :connected     - requests are sent to {:mure, node}; replies are routed back
  #   :disconnected  - requests fail at once with ConnectionError{reason: :disconnected};
  #                    a state timeout retries the connection with exponential backoff
  #
  # Reply routing. ei has no process aliases, so a reply that arrives after a caller gave
  # up would land in the caller's mailbox. Therefore every request goes through this
  # process: the caller monitors it with `alias: :demonitor` and sends
  # {:"$mure_call", alias, owner, request, sessions, timeout}; this process sends the
  # protocol envelope {:"$mure", 1, self(), node_ref, owner, request} to the node, keeps
  # node_ref -> alias, and forwards the node's reply to the alias. A caller that timed out
  # has demonitored (and so deactivated) its alias, and the runtime drops the late reply.
  #
  # Every in-flight request also has a timer here (the call's timeout, or the connection's
  # default when the caller gave none), so entries never pile up behind a hung node.
  #
  # Port mode: the process launches mure_node itself (Mure.Launcher: a Port, the cookie on
  # the first stdin line, MURE_READY on stdout) and stops with
  # {:shutdown, {:node_exited, status}} when the node exits, so that a supervisor restarts
  # it. The port is linked to this process: when it goes (or the whole BEAM does), the
  # node's stdin closes and the node exits.
  #
  # Connect mode: the node runs elsewhere; on nodedown the in-flight callers get an error
  # and the connection is retried with backoff (Redix style).

  @behaviour :gen_statem

  require Logger

  alias Mure.{ConnectionError, Cookie, Error, Launcher}
  alias Mure.Connection.Diagnosis

  # The BEAM aborts when it has to send a distribution message of 2 GiB or more to a
  # node that does not support fragments (every ei node): refuse well before that.
  @max_dist_message 2 * 1024 * 1024 * 1024 - 1

  @start_opts [
    name: nil,
    node: nil,
    node_name: nil,
    executable: nil,
    config: nil,
    listen: nil,
    memory_limit: nil,
    max_message: nil,
    queue_depth: nil,
    blis_threads: nil,
    blis_arch: nil,
    devices: nil,
    test_ops: false,
    log_level: nil,
    extra_args: [],
    cookie: nil,
    ready_timeout: 15_000,
    connect_timeout: 5_000,
    timeout: 5_000,
    sync_connect: true,
    backoff_initial: 500,
    backoff_max: 30_000,
    chunk_size: 8 * 1024 * 1024,
    shared_memory: true
  ]

  # Transfers in pieces (Mure.Transfer): the bounds of the :chunk_size option.
  @min_chunk_size 64 * 1024
  @max_chunk_size 1024 * 1024 * 1024

  defstruct [
    :mode,
    :node,
    :port,
    :os_pid,
    :cookie,
    :opts,
    :hello,
    :max_message,
    :session,
    :default_timeout,
    :backoff,
    inflight: %{},
    # Cleared when a same-host transfer found the node's segments out of reach (Mure.Transfer).
    shm_reachable: true
  ]

  ## Start-up

  @doc false
  @spec validate_opts!(keyword()) :: keyword()
  def validate_opts!(opts) when is_list(opts) do
    opts = Keyword.validate!(opts, @start_opts)

    check!(opts, :name, &(is_nil(&1) or is_atom(&1)), "an atom (a locally registered name)")
    check!(opts, :node, &(is_nil(&1) or is_atom(&1)), "a node name atom")

    check!(
      opts,
      :node_name,
      &(is_nil(&1) or valid_node_name?(&1)),
      "an atom such as :\"mure@127.0.0.1\""
    )

    check!(opts, :executable, &(is_nil(&1) or is_binary(&1)), "a path (string)")
    check!(opts, :config, &(is_nil(&1) or is_binary(&1)), "a path (string)")
    check!(opts, :listen, &(is_nil(&1) or is_binary(&1)), "an address (string)")

    for key <- [:memory_limit, :max_message, :queue_depth, :blis_threads] do
      check!(opts, key, &(is_nil(&1) or (is_integer(&1) and &1 > 0)), "a positive integer")
    end

    check!(
      opts,
      :blis_arch,
      &(is_nil(&1) or &1 in [:auto, :skx, :zen3, :haswell, :generic]),
      "one of :auto, :skx, :zen3, :haswell, :generic"
    )

    check!(
      opts,
      :devices,
      &(is_nil(&1) or
          (is_list(&1) and &1 != [] and Enum.all?(&1, fn d -> d in [:blis, :opencl] end))),
      "a non-empty list of :blis and :opencl"
    )

    check!(opts, :test_ops, &is_boolean/1, "a boolean")
    check!(opts, :shared_memory, &is_boolean/1, "a boolean")
    check!(opts, :sync_connect, &is_boolean/1, "a boolean")

    check!(
      opts,
      :log_level,
      &(is_nil(&1) or &1 in [:debug, :info, :warn, :error]),
      "one of :debug, :info, :warn, :error"
    )

    check!(
      opts,
      :extra_args,
      &(is_list(&1) and Enum.all?(&1, fn a -> is_binary(a) end)),
      "a list of strings"
    )

    for key <- [:ready_timeout, :connect_timeout, :backoff_initial, :backoff_max] do
      check!(opts, key, &(is_integer(&1) and &1 > 0), "a positive integer (milliseconds)")
    end

    check!(opts, :timeout, &valid_timeout?/1, "a non-negative integer or :infinity")

    check!(
      opts,
      :chunk_size,
      &(is_integer(&1) and &1 >= @min_chunk_size and &1 <= @max_chunk_size),
      "an integer in #{@min_chunk_size}..#{@max_chunk_size} (bytes)"
    )

    opts
    |> Keyword.update!(:cookie, &Cookie.wrap/1)
  end

  def validate_opts!(other),
    do: raise(ArgumentError, "expected options to be a keyword list, got: #{inspect(other)}")

  @doc false
  @spec min_chunk_size() :: pos_integer()
  def min_chunk_size, do: @min_chunk_size

  @doc false
  @spec valid_timeout?(term()) :: boolean()
  def valid_timeout?(:infinity), do: true
  def valid_timeout?(t), do: is_integer(t) and t >= 0

  defp check!(opts, key, fun, expected) do
    value = Keyword.fetch!(opts, key)

    unless fun.(value) do
      raise ArgumentError, "expected #{inspect(key)} to be #{expected}, got: #{inspect(value)}"
    end
  end

  defp valid_node_name?(name) when is_atom(name) and name != nil,
    do: match?([_, _], String.split(Atom.to_string(name), "@"))

  defp valid_node_name?(_), do: false

  @doc false
  @spec start_link(keyword()) :: :gen_statem.start_ret()
  def start_link(opts) do
    opts = validate_opts!(opts)

    cond do
      not Node.alive?() ->
        # The hint is in details so that a supervisor's report (which inspects the
        # reason rather than calling Exception.message/1) carries it too.
        {:error, %ConnectionError{reason: :not_alive, details: ConnectionError.not_alive_hint()}}

      is_nil(opts[:node]) and not File.regular?(Launcher.executable(opts)) ->
        {:error,
         %ConnectionError{reason: :executable_not_found, details: Launcher.executable(opts)}}

      true ->
        :proc_lib.start_link(__MODULE__, :init_it, [self(), opts], :infinity)
    end
  end

  @doc false
  # proc_lib entry point. Set-up failures are acknowledged as {:error, reason} and the
  # process then exits :normal, so a linked caller gets its error tuple instead of an
  # exit signal (init/1 returning {:stop, reason} would kill a non-trapping caller).
  @spec init_it(pid(), keyword()) :: no_return()
  def init_it(starter, opts) do
    case register(opts[:name]) do
      :ok ->
        case setup(opts) do
          {:ok, state, data, actions} ->
            :proc_lib.init_ack(starter, {:ok, self()})
            server = if opts[:name], do: {:local, opts[:name]}, else: self()
            :gen_statem.enter_loop(__MODULE__, [], state, data, server, actions)

          {:error, reason} ->
            :proc_lib.init_ack(starter, {:error, reason})
            exit(:normal)
        end

      {:error, reason} ->
        :proc_lib.init_ack(starter, {:error, reason})
        exit(:normal)
    end
  end

  defp register(nil), do: :ok

  defp register(name) do
    Process.register(self(), name)
    :ok
  rescue
    ArgumentError -> {:error, {:already_started, Process.whereis(name)}}
  end

  @impl :gen_statem
  def callback_mode, do: :handle_event_function

  @impl :gen_statem
  def init(_opts), do: {:stop, :use_start_link}

  defp setup(opts) do
    data = %__MODULE__{
      opts: opts,
      cookie: opts[:cookie],
      default_timeout: opts[:timeout],
      backoff: opts[:backoff_initial]
    }

    if opts[:node], do: setup_remote(opts[:node], data), else: setup_port(data)
  end

  defp setup_remote(node, data) do
    data = %{data | mode: :remote, node: node}

    case connect(data) do
      {:ok, data} ->
        {:ok, :connected, data, []}

      {:error, reason} ->
        if data.opts[:sync_connect] do
          {:error, reason}
        else
          Logger.warning("mure: cannot connect to #{node}: #{Exception.message(reason)}")
          {:ok, :disconnected, data, [{:state_timeout, data.backoff, :reconnect}]}
        end
    end
  end

  defp setup_port(data) do
    Process.flag(:trap_exit, true)
    cookie = data.cookie || Cookie.wrap(Node.get_cookie())

    with {:ok, node} <- Launcher.launch(data.opts, cookie) do
      data = %{
        data
        | mode: :port,
          port: node.port,
          os_pid: node.os_pid,
          node: node.name,
          cookie: cookie
      }

      case connect(data) do
        {:ok, data} ->
          {:ok, :connected, data, []}

        {:error, reason} ->
          Launcher.stop(node.port, node.os_pid)
          {:error, reason}
      end
    end
  end

  # Connects the distribution, monitors the node and asks it :hello. A new session
  # reference marks the tensors created over this connection: the node frees a
  # connection's tensors when it closes, so older handles must never be sent again.
  defp connect(%{node: node} = data) do
    if data.cookie, do: :erlang.set_cookie(node, Cookie.value(data.cookie))

    case Node.connect(node) do
      true ->
        Node.monitor(node, true)

        case hello(data) do
          {:ok, hello} ->
            warn_if_ops_differ(node, hello)

            max_message =
              case hello do
                %{limits: %{max_message_bytes: max}} when is_integer(max) -> max
                _ -> nil
              end

            {:ok,
             %{
               data
               | hello: hello,
                 max_message: max_message,
                 session: make_ref(),
                 backoff: data.opts[:backoff_initial]
             }}

          {:error, reason} ->
            Node.monitor(node, false)
            {:error, reason}
        end

      _false_or_ignored ->
        {:error, %ConnectionError{reason: :connect_failed, details: Diagnosis.explain(node)}}
    end
  end

  # A node built from another tree than this client knows other ops: calls to those fail with
  # the node's or the client's error, and this says why up front.
  defp warn_if_ops_differ(node, hello) do
    case Mure.Rules.compare_families(hello) do
      {:differs, what} ->
        Logger.warning(
          "mure: #{node}'s op table differs from this client's (#{what}): calls to those ops " <>
            "fail; build the client and the node from the same tree"
        )

      _ ->
        :ok
    end
  end

  defp hello(%{node: node} = data) do
    ref = make_ref()
    timeout = data.opts[:connect_timeout]

    case :erlang.send({:mure, node}, envelope(ref, self(), :hello), [:noconnect]) do
      :ok ->
        receive do
          {:"$mure_reply", ^ref, {:ok, %{} = hello}} ->
            {:ok, hello}

          {:"$mure_reply", ^ref, other} ->
            {:error,
             %ConnectionError{
               reason: :handshake_failed,
               details: "hello replied #{inspect(other)}"
             }}

          {:nodedown, ^node} ->
            {:error,
             %ConnectionError{reason: :handshake_failed, details: "nodedown during hello"}}
        after
          timeout ->
            {:error,
             %ConnectionError{
               reason: :handshake_failed,
               details: "no reply to hello within #{timeout} ms"
             }}
        end

      :noconnect ->
        {:error, %ConnectionError{reason: :connect_failed, details: "not connected to #{node}"}}
    end
  end

  defp envelope(ref, owner, request), do: {:"$mure", 1, self(), ref, owner, request}

  ## Events

  @impl :gen_statem
  def handle_event(
        :info,
        {:"$mure_call", alias, owner, request, sessions, timeout},
        :connected,
        data
      ) do
    cond do
      # A tensor of an earlier connection: the node freed it, and its handle may now name
      # another tensor. (A hand-built tensor without a session is left to the node.)
      Enum.any?(sessions, &(&1 != nil and &1 != data.session)) ->
        reply(alias, {:error, stale_handle_error(request, data)}, data)
        :keep_state_and_data

      error = too_large(request, owner, data) ->
        reply(alias, {:error, error}, data)
        :keep_state_and_data

      true ->
        node_ref = make_ref()

        case :erlang.send({:mure, data.node}, envelope(node_ref, owner, request), [:noconnect]) do
          :ok ->
            timer =
              case timeout || data.default_timeout do
                :infinity -> nil
                ms -> :erlang.start_timer(ms, self(), {:call_timeout, node_ref})
              end

            {:keep_state, put_in(data.inflight[node_ref], {alias, timer})}

          :noconnect ->
            reply(alias, {:error, %ConnectionError{reason: :disconnected}}, data)
            :keep_state_and_data
        end
    end
  end

  def handle_event(
        :info,
        {:"$mure_call", alias, _owner, _request, _sessions, _timeout},
        :disconnected,
        data
      ) do
    reply(
      alias,
      {:error,
       %ConnectionError{reason: :disconnected, details: "connection to #{data.node} is down"}},
      data
    )

    :keep_state_and_data
  end

  def handle_event(:info, {:"$mure_reply", node_ref, result}, _state, data) do
    case Map.pop(data.inflight, node_ref) do
      {{alias, timer}, inflight} ->
        if timer, do: :erlang.cancel_timer(timer, async: true, info: false)
        reply(alias, result, data)
        {:keep_state, %{data | inflight: inflight}}

      {nil, _} ->
        # A reply to a request that already timed out: drop it.
        :keep_state_and_data
    end
  end

  def handle_event(:info, {:timeout, _timer, {:call_timeout, node_ref}}, _state, data) do
    case Map.pop(data.inflight, node_ref) do
      {{alias, _timer}, inflight} ->
        reply(alias, {:error, %ConnectionError{reason: :timeout}}, data)
        {:keep_state, %{data | inflight: inflight}}

      {nil, _} ->
        :keep_state_and_data
    end
  end

  def handle_event(:info, {:nodedown, node}, :connected, %{node: node} = data) do
    Logger.warning("mure: connection to #{node} lost; reconnecting")
    data = fail_inflight(data, %ConnectionError{reason: :node_down, details: "#{node} went down"})
    {:next_state, :disconnected, data, [{:state_timeout, data.backoff, :reconnect}]}
  end

  def handle_event(:info, {:nodedown, _node}, _state, _data), do: :keep_state_and_data

  def handle_event(:state_timeout, :reconnect, :disconnected, data) do
    case connect(data) do
      {:ok, data} ->
        Logger.info("mure: reconnected to #{data.node}")
        {:next_state, :connected, data}

      {:error, reason} ->
        backoff = min(data.backoff * 2, data.opts[:backoff_max])
        Logger.debug("mure: reconnecting to #{data.node} failed: #{Exception.message(reason)}")
        {:keep_state, %{data | backoff: backoff}, [{:state_timeout, data.backoff, :reconnect}]}
    end
  end

  def handle_event(:info, {port, {:exit_status, status}}, _state, %{port: port} = data) do
    Logger.warning("mure: node #{data.node} (os pid #{data.os_pid}) exited with status #{status}")

    data =
      fail_inflight(data, %ConnectionError{
        reason: :node_exited,
        details: "#{data.node} exited with status #{status}"
      })

    {:stop, {:shutdown, {:node_exited, status}}, %{data | port: nil}}
  end

  def handle_event(:info, {port, {:data, {_eol, line}}}, _state, %{port: port} = data) do
    Logger.debug("mure node #{data.node}: ignored a #{byte_size(line)}-byte stdout line")
    :keep_state_and_data
  end

  def handle_event(:info, {:EXIT, port, _reason}, _state, %{port: port}), do: :keep_state_and_data

  def handle_event({:call, from}, :info, state, data) do
    info = %{
      node: data.node,
      mode: data.mode,
      state: state,
      os_pid: data.os_pid,
      hello: data.hello,
      inflight: map_size(data.inflight),
      default_timeout: data.default_timeout,
      # For transfers in pieces (Mure.Transfer).
      chunk_size: data.opts[:chunk_size],
      max_message: data.max_message,
      # For same-host transfers (Mure.Transfer).
      shared_memory: data.opts[:shared_memory] != false and data.shm_reachable
    }

    {:keep_state_and_data, [{:reply, from, info}]}
  end

  def handle_event(:cast, :shm_unreachable, _state, data) do
    Logger.info(
      "mure: #{data.node}'s shared segments are out of reach; transfers use the network"
    )

    {:keep_state, %{data | shm_reachable: false}}
  end

  def handle_event(:info, msg, _state, data) do
    Logger.debug("mure connection to #{data.node} ignored #{inspect(msg, limit: 10)}")
    :keep_state_and_data
  end

  @impl :gen_statem
  def terminate(reason, _state, data) do
    fail_inflight(data, %ConnectionError{
      reason: :closed,
      details: "connection stopped: #{inspect(reason)}"
    })

    stop_node(data)
    :ok
  end

  ## Helpers

  defp reply(alias, result, data), do: send(alias, {alias, result, data.node, data.session})

  defp fail_inflight(data, error) do
    for {_ref, {alias, timer}} <- data.inflight do
      if timer, do: :erlang.cancel_timer(timer, async: true, info: false)
      send(alias, {alias, {:error, error}, data.node, data.session})
    end

    %{data | inflight: %{}}
  end

  defp stale_handle_error(request, data) do
    %Error{
      kind: :unknown_handle,
      message:
        "#{inspect(elem(request, 0))}: a tensor was created over an earlier connection to #{data.node}; " <>
          "the node freed it when that connection closed"
    }
  end

  # Uploads, writes (pieces of a transfer) and programs (their {:data, ...} inputs) are the
  # requests that can be large. The node caps a frame at max_message_bytes (the 4-byte
  # length covers the pass-through byte, the control message and the payload), and the BEAM
  # itself aborts on frames of 2 GiB or more.
  defp too_large(request, owner, data)
       when elem(request, 0) in [:upload, :write, :program] and tuple_size(request) >= 4 do
    limit = min(data.max_message || @max_dist_message, @max_dist_message)

    frame =
      1 + :erlang.external_size({6, self(), :"", :mure}) +
        :erlang.external_size(envelope(make_ref(), owner, request))

    if frame > limit do
      why =
        if limit == @max_dist_message,
          do: "distribution messages must stay below 2 GiB",
          else: "the node's max_message_bytes is #{limit}"

      what =
        case request do
          {:upload, _type, _shape, bin} when is_binary(bin) -> "upload of #{byte_size(bin)} bytes"
          {op, _, _, _} when op in [:write] -> "write"
          _ -> "#{elem(request, 0)}"
        end

      %Error{
        kind: :message_too_large,
        message: "#{what} (a #{frame}-byte message) refused before sending: " <> why
      }
    end
  end

  defp too_large(_request, _owner, _data), do: nil

  defp stop_node(%{port: nil}), do: :ok
  defp stop_node(%{port: port, os_pid: os_pid}), do: Launcher.stop(port, os_pid)
end
