defmodule Mure.Launcher do
  @moduledoc false
  # Launches mure_node as an OS process of this BEAM (port mode) and stops it.
  #
  # The node runs behind a Port opened by the calling process (the connection), which gets
  # the port's messages and is linked to it: when that process (or the whole BEAM) goes,
  # the node's stdin closes and the node exits. The cookie travels on the first stdin line,
  # never on argv (argv is visible in `ps`); the node answers `MURE_READY <name> <os pid>`
  # on stdout once it listens.

  require Logger

  alias Mure.{ConnectionError, Cookie}

  @client_dir Path.expand("../..", __DIR__)
  @default_executable Path.expand("../build/mure_node", @client_dir)

  @typedoc "A launched node: its port, OS pid and node name."
  @type node_process :: %{port: port(), os_pid: non_neg_integer() | nil, name: node()}

  @doc false
  # Resolved at each call: $MURE_NODE_BIN, else build/mure_node of the checkout whose _build
  # holds this very module (a copied checkout runs its own node, not the one of the tree it
  # was compiled in), else the path of the tree it was compiled in.
  @spec default_executable() :: Path.t()
  def default_executable,
    do: System.get_env("MURE_NODE_BIN") || in_checkout_of_loaded_code() || @default_executable

  # <checkout>/elixir_client/_build/<env>/lib/mure/ebin/Elixir.Mure.Launcher.beam
  defp in_checkout_of_loaded_code do
    with path when is_list(path) <- :code.which(__MODULE__),
         exe =
           Path.expand("../../../../../../build/mure_node", Path.dirname(List.to_string(path))),
         true <- File.regular?(exe) do
      exe
    else
      _ -> nil
    end
  end

  @doc false
  # The executable that `opts` (Mure.start_link/1's) name.
  @spec executable(keyword()) :: Path.t()
  def executable(opts), do: opts[:executable] || default_executable()

  @doc false
  # Starts the node with Mure.start_link/1's (validated) options and hands it `cookie`;
  # returns once it is ready. On failure the node is stopped and the error returned.
  @spec launch(keyword(), Cookie.t()) :: {:ok, node_process()} | {:error, ConnectionError.t()}
  def launch(opts, cookie) do
    exe = executable(opts)
    name = opts[:node_name] || unique_node_name()

    port =
      Port.open({:spawn_executable, exe}, [
        :binary,
        {:line, 4096},
        :exit_status,
        :use_stdio,
        :hide,
        args: node_args(name, opts)
      ])

    os_pid =
      case Port.info(port, :os_pid) do
        {:os_pid, pid} -> pid
        nil -> nil
      end

    write_cookie(port, cookie)

    case await_ready(port, name, opts) do
      {:ok, reported_name, reported_pid} ->
        {:ok, %{port: port, os_pid: reported_pid || os_pid, name: reported_name}}

      {:error, reason} ->
        stop(port, os_pid)
        {:error, reason}
    end
  rescue
    error in ErlangError ->
      {:error, %ConnectionError{reason: :executable_not_found, details: Exception.message(error)}}
  end

  defp unique_node_name do
    host =
      case String.split(Atom.to_string(node()), "@") do
        [_, host] -> host
        _ -> "127.0.0.1"
      end

    # Not under Mure.Cluster's default name prefix "mure": a node launched for this BEAM
    # is private to it, and a cluster discovering through epmd must not join it.
    :"port_of_mure_#{System.pid()}_#{System.unique_integer([:positive])}@#{host}"
  end

  defp node_args(node_name, opts) do
    flag = fn
      nil, _name -> []
      false, _name -> []
      true, name -> [name]
      value, name when is_atom(value) -> [name, Atom.to_string(value)]
      value, name when is_integer(value) -> [name, Integer.to_string(value)]
      value, name when is_binary(value) -> [name, value]
    end

    devices = opts[:devices] && Enum.map_join(opts[:devices], ",", &Atom.to_string/1)

    ["--name", Atom.to_string(node_name), "--port-mode"] ++
      flag.(opts[:config], "--config") ++
      flag.(opts[:listen], "--listen") ++
      flag.(opts[:memory_limit], "--memory-limit") ++
      flag.(opts[:max_message], "--max-message") ++
      flag.(opts[:queue_depth], "--queue-depth") ++
      flag.(opts[:blis_threads], "--blis-threads") ++
      flag.(opts[:blis_arch], "--blis-arch") ++
      flag.(devices, "--devices") ++
      flag.(opts[:test_ops], "--test-ops") ++
      flag.(opts[:log_level] || Application.get_env(:mure, :node_log_level), "--log-level") ++
      opts[:extra_args]
  end

  defp write_cookie(port, cookie) do
    Port.command(port, [Atom.to_string(Cookie.value(cookie)), ?\n])
    :ok
  rescue
    # The node exited already (e.g. bad flags): await_ready/3 reports its exit status.
    ArgumentError -> :ok
  end

  defp await_ready(port, name, opts) do
    deadline = System.monotonic_time(:millisecond) + opts[:ready_timeout]
    await_ready(port, name, opts, deadline)
  end

  defp await_ready(port, name, opts, deadline) do
    remaining = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {^port, {:data, {:eol, "MURE_READY " <> rest}}} ->
        case String.split(rest, " ", trim: true) do
          [node, os_pid] ->
            {:ok, String.to_atom(node), parse_int(os_pid)}

          _ ->
            {:error,
             %ConnectionError{
               reason: :ready_timeout,
               details: "malformed ready line: #{inspect(rest)}"
             }}
        end

      {^port, {:data, {_eol, line}}} ->
        Logger.debug("mure node #{name}: ignored a #{byte_size(line)}-byte stdout line")
        await_ready(port, name, opts, deadline)

      {^port, {:exit_status, status}} ->
        exited_before_ready(opts, "with status #{status}")

      # The node died before it read the cookie: the write failed (EPIPE) and the port
      # closed with that reason. Its exit status, when it comes, is the better report.
      {:EXIT, ^port, reason} ->
        receive do
          {^port, {:exit_status, status}} -> exited_before_ready(opts, "with status #{status}")
        after
          1_000 -> exited_before_ready(opts, "(port closed: #{inspect(reason)})")
        end
    after
      remaining ->
        {:error,
         %ConnectionError{
           reason: :ready_timeout,
           details: "no MURE_READY from #{name} within #{opts[:ready_timeout]} ms"
         }}
    end
  end

  defp exited_before_ready(opts, how) do
    {:error,
     %ConnectionError{
       reason: :node_exited,
       details: "#{executable(opts)} exited #{how} before MURE_READY (see its stderr)"
     }}
  end

  defp parse_int(string) do
    case Integer.parse(string) do
      {int, ""} -> int
      _ -> nil
    end
  end

  @doc false
  # Stops a launched node: closing the port closes its stdin, and it exits on EOF; one that
  # is still there after ~2.5 s is killed.
  @spec stop(port(), non_neg_integer() | nil) :: :ok
  def stop(port, os_pid) do
    try do
      Port.close(port)
    rescue
      ArgumentError -> :ok
    end

    if os_pid, do: await_os_exit(os_pid, 50)
    :ok
  end

  defp await_os_exit(os_pid, 0) do
    Logger.warning("mure: node os pid #{os_pid} did not exit on stdin EOF; sending SIGKILL")
    System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    :ok
  end

  defp await_os_exit(os_pid, tries) do
    if os_process_alive?(os_pid) do
      Process.sleep(50)
      await_os_exit(os_pid, tries - 1)
    else
      :ok
    end
  end

  @doc false
  @spec os_process_alive?(non_neg_integer()) :: boolean()
  def os_process_alive?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        # The state letter follows the last ")" (the command name may contain one).
        case Regex.run(~r/^.*\)\s+(\S)/s, stat) do
          [_, state] -> state not in ["Z", "X"]
          _ -> true
        end

      {:error, _} ->
        if File.dir?("/proc/self") do
          false
        else
          match?(
            {_, 0},
            System.cmd("kill", ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true)
          )
        end
    end
  end
end
