defmodule Mure.Reliability do
  @moduledoc false
  # Helpers of the reliability suite (test/reliability): the figures the suite reports,
  # the node's resident memory, its listening sockets, and nodes launched by hand with
  # their stderr captured in a file.

  import ExUnit.Assertions

  ## Figures

  @doc """
  Appends `key value label` to the summary file named by $MURE_RELIABILITY_SUMMARY (if
  set; $MURE_RELIABILITY_TAG, if set, is appended to the label); scripts/test adds them up
  and prints them. Keys: `faults` (faults injected), `lost` (requests that got no answer),
  `requests` (requests answered under faults).
  """
  def record(key, value, label) when is_atom(key) and is_integer(value) do
    label =
      case System.get_env("MURE_RELIABILITY_TAG") do
        tag when tag in [nil, ""] -> label
        tag -> "#{label} [#{tag}]"
      end

    case System.get_env("MURE_RELIABILITY_SUMMARY") do
      nil -> :ok
      "" -> :ok
      path -> File.write!(path, "#{key} #{value} #{label}\n", [:append])
    end
  end

  ## The node's OS process

  @doc "VmRSS of an OS process in KiB (from /proc/PID/status)."
  def rss_kb(os_pid) do
    status = File.read!("/proc/#{os_pid}/status")
    [_, kb] = Regex.run(~r/^VmRSS:\s+(\d+)\s+kB/m, status)
    String.to_integer(kb)
  end

  @doc "Threads of an OS process (from /proc/PID/status)."
  def threads(os_pid) do
    [_, n] = Regex.run(~r/^Threads:\s+(\d+)/m, File.read!("/proc/#{os_pid}/status"))
    String.to_integer(n)
  end

  @doc "The names of an OS process's threads (/proc/PID/task/*/comm), sorted, for messages."
  def thread_names(os_pid) do
    "/proc/#{os_pid}/task"
    |> File.ls!()
    |> Enum.map(fn tid ->
      case File.read("/proc/#{os_pid}/task/#{tid}/comm") do
        {:ok, name} -> String.trim(name)
        {:error, _} -> "?"
      end
    end)
    |> Enum.frequencies()
    |> Enum.sort()
    |> Enum.map_join(", ", fn {name, n} -> "#{name} x#{n}" end)
  end

  @doc "Open file descriptors of an OS process."
  def fd_count(os_pid), do: length(File.ls!("/proc/#{os_pid}/fd"))

  @doc "What the open file descriptors of an OS process point at."
  def fds(os_pid) do
    for fd <- File.ls!("/proc/#{os_pid}/fd"),
        {:ok, link} <- [File.read_link("/proc/#{os_pid}/fd/#{fd}")],
        do: {fd, link}
  end

  @doc """
  The TCP sockets an OS process listens on, as `{ip_string, port}`, read from
  /proc/net/tcp and /proc/net/tcp6 matched against the socket inodes in /proc/PID/fd.
  """
  def listening_sockets(os_pid) do
    inodes =
      for fd <- File.ls!("/proc/#{os_pid}/fd"),
          {:ok, link} <- [File.read_link("/proc/#{os_pid}/fd/#{fd}")],
          [_, inode] <- [Regex.run(~r/^socket:\[(\d+)\]$/, link)],
          into: MapSet.new(),
          do: inode

    for file <- ["/proc/net/tcp", "/proc/net/tcp6"],
        File.exists?(file),
        line <- file |> File.read!() |> String.split("\n") |> Enum.drop(1),
        fields = String.split(line),
        length(fields) >= 10,
        [_sl, local, _remote, state | _] = fields,
        # 0A = TCP_LISTEN
        state == "0A",
        MapSet.member?(inodes, Enum.at(fields, 9)) do
      [ip_hex, port_hex] = String.split(local, ":")
      {decode_ip(ip_hex), String.to_integer(port_hex, 16)}
    end
  end

  defp decode_ip(hex) when byte_size(hex) == 8 do
    <<a, b, c, d>> = <<String.to_integer(hex, 16)::little-32>>
    "#{a}.#{b}.#{c}.#{d}"
  end

  defp decode_ip(hex), do: "ipv6:" <> hex

  ## Runs on a peer

  @doc """
  Runs on a peer: sends `request` raw to `node` from a process that stays alive (it owns
  what the request creates) and returns `{result, holder_pid}`.
  """
  def peer_hold(node, request) do
    parent = self()

    holder =
      spawn(fn ->
        ref = make_ref()
        send({:mure, node}, {:"$mure", 1, self(), ref, self(), request})

        receive do
          {:"$mure_reply", ^ref, result} -> send(parent, {:held, result})
        after
          5_000 -> send(parent, {:held, :no_reply})
        end

        Process.sleep(:infinity)
      end)

    receive do
      {:held, result} -> {result, holder}
    end
  end

  @doc "Runs on a peer: one raw request to `node`, answered to this process."
  def peer_raw_call(node, request) do
    ref = make_ref()
    send({:mure, node}, {:"$mure", 1, self(), ref, self(), request})

    receive do
      {:"$mure_reply", ^ref, result} -> result
    after
      5_000 -> :no_reply
    end
  end

  @doc "Runs on a peer: Mure.connect/2 to `node` and a :hello, timed: `{ms, hello_result}`."
  def peer_connect_timed(node) do
    timed(fn ->
      case Mure.connect(node) do
        {:ok, c} -> Mure.hello(c)
        error -> error
      end
    end)
  end

  ## Nodes launched by hand

  @doc """
  Launches mure_node in Port mode through /bin/sh so that its stderr goes to a file.
  Returns `%{port:, node:, os_pid:, stderr:}` once MURE_READY arrives. `args` are extra
  flags. The node exits when the port closes (stdin EOF).
  """
  def launch_logged(args, opts \\ []) do
    exe = Mure.Launcher.default_executable()
    dir = Keyword.get_lazy(opts, :dir, fn -> tmp_dir("logged") end)
    stderr = Path.join(dir, "node.stderr")
    node = :"mure_logged_#{System.unique_integer([:positive])}@127.0.0.1"
    cookie = Keyword.get(opts, :cookie, Atom.to_string(Node.get_cookie()))
    argv = ["--name", Atom.to_string(node), "--port-mode"] ++ args

    script = ~s(exec "$0" "$@" 2>>"#{stderr}")

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        {:line, 4096},
        :exit_status,
        :use_stdio,
        args: ["-c", script, exe | argv]
      ])

    Port.command(port, [cookie, ?\n])

    receive do
      {^port, {:data, {:eol, "MURE_READY " <> rest}}} ->
        [name, os_pid] = String.split(rest)

        %{
          port: port,
          node: String.to_atom(name),
          os_pid: String.to_integer(os_pid),
          stderr: stderr
        }

      {^port, {:exit_status, status}} ->
        flunk("mure_node exited with status #{status} before MURE_READY: #{File.read!(stderr)}")
    after
      20_000 -> flunk("no MURE_READY from a hand-launched mure_node: #{File.read!(stderr)}")
    end
  end

  @doc "Stops a node from launch_logged/2 (closes its stdin; kills it if it lingers)."
  def stop_logged(%{port: port, os_pid: os_pid}) do
    try do
      Port.close(port)
    rescue
      ArgumentError -> :ok
    end

    unless Mure.TestSupport.wait_until(fn -> not Mure.TestSupport.os_alive?(os_pid) end, 3_000) do
      System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end

    :ok
  end

  @doc """
  Launches mure_node NOT in Port mode (its cookie from a file or the environment), stderr
  to a file. Returns `%{port:, os_pid:, stderr:}` once the node logs that it listens.
  Stop it with stop_plain/1 (SIGTERM). Options: `:executable` (default the suite's node
  binary; e.g. scripts/mure_node_aarch64), `:timeout` (ms to wait for it to listen, 20000).
  """
  def launch_plain(args, env \\ [], opts \\ []) do
    exe = opts[:executable] || Mure.Launcher.default_executable()
    stderr = Path.join(tmp_dir("plain"), "node.stderr")
    env = Enum.map(env, fn {k, v} -> {String.to_charlist(k), v && String.to_charlist(v)} end)

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        {:line, 4096},
        :exit_status,
        {:env, Enum.map(env, fn {k, v} -> {k, v || false} end)},
        args: ["-c", ~s(echo "PID $$"; exec "$0" "$@" 2>"#{stderr}" </dev/null), exe | args]
      ])

    os_pid =
      receive do
        {^port, {:data, {:eol, "PID " <> pid}}} -> String.to_integer(pid)
      after
        5_000 -> flunk("the shell did not start")
      end

    listening? = fn ->
      case File.read(stderr) do
        {:ok, text} -> text =~ "listening on"
        {:error, _} -> false
      end
    end

    # Until it listens, or exits (then at once, not at the timeout).
    Mure.TestSupport.wait_until(
      fn -> listening?.() or not Mure.TestSupport.os_alive?(os_pid) end,
      opts[:timeout] || 20_000
    )

    unless listening?.() do
      System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
      flunk("mure_node did not start: #{File.read!(stderr)}")
    end

    %{port: port, os_pid: os_pid, stderr: stderr}
  end

  @doc "Stops a node from launch_plain/2 with SIGTERM and waits for it to go."
  def stop_plain(%{os_pid: os_pid}) do
    System.cmd("kill", ["-TERM", Integer.to_string(os_pid)], stderr_to_stdout: true)

    unless Mure.TestSupport.wait_until(fn -> not Mure.TestSupport.os_alive?(os_pid) end, 5_000) do
      System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end

    :ok
  end

  @doc "Runs mure_node to completion (for start-up refusals): `{exit_status, stderr}`."
  def run_node(args, env \\ [], stdin \\ nil) do
    exe = Mure.Launcher.default_executable()
    dir = tmp_dir("run")
    err = Path.join(dir, "stderr")
    input = if stdin, do: ~s(printf '%s\\n' "#{stdin}" | ), else: "exec </dev/null; "

    {_out, status} =
      System.cmd("/bin/sh", ["-c", ~s(#{input}"$0" "$@" 2>"#{err}"), exe | args],
        env: env,
        stderr_to_stdout: true
      )

    {status, File.read!(err)}
  end

  @doc "A fresh temporary directory, removed when the test ends."
  def tmp_dir(prefix) do
    dir = Path.join(System.tmp_dir!(), "mure_#{prefix}_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    ExUnit.Callbacks.on_exit(fn -> File.rm_rf(dir) end)
    dir
  end

  @doc "Milliseconds `fun` takes, and its result."
  def timed(fun) do
    t0 = System.monotonic_time(:microsecond)
    result = fun.()
    {(System.monotonic_time(:microsecond) - t0) / 1000, result}
  end
end
