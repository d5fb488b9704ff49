defmodule Mure.ConnectionTest do
  # Launching, stopping and reconnecting; the node's life follows its launcher's.
  use ExUnit.Case, async: true

  @moduletag :capture_log

  import Mure.TestSupport

  alias Mure.{ConnectionError, Error}

  describe "port mode" do
    test "the node is a hidden node registered with epmd, gone after stop" do
      {:ok, conn} =
        Mure.start_link(node_name: :"mure_named_#{System.unique_integer([:positive])}@127.0.0.1")

      %{node: node, os_pid: os_pid, mode: :port, state: :connected} = Mure.info(conn)
      assert node in Node.list(:hidden)
      assert short_name(node) in epmd_names()
      assert os_alive?(os_pid)

      assert :ok = Mure.stop(conn)
      refute os_alive?(os_pid), "stop/1 returned while the node still runs"
      assert wait_until(fn -> short_name(node) not in epmd_names() end, 2_000)
      assert {:error, %ConnectionError{reason: :closed}} = Mure.hello(conn)
    end

    test "when the launching BEAM is killed the node exits and leaves epmd" do
      {peer, _peer_node} = start_peer(:mure_launcher)
      on_exit(fn -> stop_peer(peer) end)
      peer_os_pid = :peer.call(peer, :os, :getpid, [])

      assert {:ok, node, os_pid} = :peer.call(peer, Mure.TestSupport, :peer_launch, [[]], 30_000)
      assert os_alive?(os_pid)
      assert short_name(node) in epmd_names()
      assert Node.ping(node) == :pong

      {_, 0} = System.cmd("kill", ["-KILL", List.to_string(peer_os_pid)])

      assert wait_until(fn -> not os_alive?(os_pid) end, 2_000),
             "mure_node #{os_pid} outlived the BEAM that launched it"

      assert wait_until(fn -> short_name(node) not in epmd_names() end, 2_000),
             "#{node} is still registered with epmd: #{inspect(epmd_names())}"
    end

    test "a node that exits is reported as :node_exited and the connection stops" do
      Process.flag(:trap_exit, true)
      {:ok, conn} = Mure.start_link(test_ops: true)
      %{os_pid: os_pid} = Mure.info(conn)
      task = Task.async(fn -> Mure.busy(conn, 10_000, timeout: 20_000) end)
      assert wait_until(fn -> Mure.info(conn).inflight == 1 end)
      {_, 0} = System.cmd("kill", ["-TERM", Integer.to_string(os_pid)])
      assert {:error, %ConnectionError{reason: reason}} = Task.await(task, 5_000)
      assert reason in [:node_exited, :node_down]
      assert_receive {:EXIT, ^conn, {:shutdown, {:node_exited, _status}}}, 5_000
    end

    test "start-up failures are returned, not raised" do
      assert {:error,
              %ConnectionError{reason: :executable_not_found, details: "/nonexistent/mure_node"}} =
               Mure.start_link(executable: "/nonexistent/mure_node")

      # Bad flags: the node exits with status 2 before MURE_READY.
      assert {:error, %ConnectionError{reason: :node_exited, details: details}} =
               Mure.start_link(extra_args: ["--no-such-flag"])

      assert details =~ "status 2"

      # An executable that never becomes ready (it waits for stdin EOF).
      dir = Path.join(System.tmp_dir!(), "mure_test_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      on_exit(fn -> File.rm_rf!(dir) end)
      silent = Path.join(dir, "silent_node")
      File.write!(silent, "#!/bin/sh\nwhile read -r line; do :; done\n")
      File.chmod!(silent, 0o755)

      assert {:error, %ConnectionError{reason: :ready_timeout}} =
               Mure.start_link(executable: silent, ready_timeout: 300)

      # A registered name that is taken.
      name = :"mure_taken_#{System.unique_integer([:positive])}"
      Process.register(self(), name)
      assert {:error, {:already_started, pid}} = Mure.start_link(name: name)
      assert pid == self()
    end

    test "a BEAM that is not distributed gets a clear error" do
      {peer, _} = start_peer(:mure_not_alive, distributed: false)
      on_exit(fn -> stop_peer(peer) end)

      assert {:error, %ConnectionError{reason: :not_alive} = error} =
               :peer.call(peer, Mure.TestSupport, :peer_start_link, [[]])

      assert Exception.message(error) =~ "--name"
      assert Exception.message(error) =~ "Node.start"
    end

    test "the README's supervision tree in a BEAM that is not distributed says what to do" do
      # What a new user runs first, verbatim, in a plain `elixir -e` (no --name): the exit
      # the supervisor reports must carry the hint, not only Exception.message/1.
      code = """
      children = [{Mure, name: MyApp.Mure, memory_limit: 2 * 1024 ** 3}]
      Supervisor.start_link(children, strategy: :one_for_one)
      """

      paths = Enum.flat_map(:code.get_path(), &["-pa", List.to_string(&1)])
      {out, status} = System.cmd("elixir", paths ++ ["-e", code], stderr_to_stdout: true)
      assert status != 0, out
      assert out =~ "failed to start child: MyApp.Mure"
      assert out =~ "reason: :not_alive"
      assert out =~ "start it with `elixir --name client@127.0.0.1"
    end

    test "the default binary is found at run time: a copied checkout runs its own node" do
      # A copy of a checkout with its compiled client: the copy's build/mure_node must be the
      # default, not the path of the tree the client was compiled in.
      copy = Path.join(System.tmp_dir!(), "mure_copy_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm_rf(copy) end)
      ebin = Path.join(copy, "elixir_client/_build/test/lib/mure/ebin")
      File.mkdir_p!(ebin)

      File.cp!(
        List.to_string(:code.which(Mure.Launcher)),
        Path.join(ebin, "Elixir.Mure.Launcher.beam")
      )

      File.mkdir_p!(Path.join(copy, "build"))
      File.write!(Path.join(copy, "build/mure_node"), "#!/bin/sh\n")

      # Only the copy's module on the path (`elixir` brings its own standard library).
      args = ["-pa", ebin]
      code = "IO.puts(Mure.Launcher.default_executable())"

      {out, 0} = System.cmd("elixir", args ++ ["-e", code], env: [{"MURE_NODE_BIN", nil}])
      assert String.trim(out) == Path.join(copy, "build/mure_node")

      {out, 0} =
        System.cmd("elixir", args ++ ["-e", code], env: [{"MURE_NODE_BIN", "/opt/x/mure_node"}])

      assert String.trim(out) == "/opt/x/mure_node"
    end

    test "the cookie never shows in inspect" do
      secret = "mure-test-secret-#{System.unique_integer([:positive])}"
      spec = Mure.child_spec(cookie: secret)
      refute inspect(spec, limit: :infinity) =~ secret

      {:ok, conn} = Mure.start_link(cookie: secret)
      state = :sys.get_state(conn)
      refute inspect(state, limit: :infinity, printable_limit: :infinity) =~ secret

      refute inspect(:sys.get_status(conn), limit: :infinity, printable_limit: :infinity) =~
               secret

      # The node took the cookie (we connected with it).
      assert {:ok, %{protocol: 1}} = Mure.hello(conn)
      Mure.stop(conn)
    end

    test "child_spec" do
      spec = Mure.child_spec(name: :mure_spec_test)
      assert spec.id == :mure_spec_test
      assert spec.restart == :permanent
      assert {Mure, :start_link, [_opts]} = spec.start
      assert Mure.child_spec([]).id == Mure
    end
  end

  describe "connect mode" do
    setup do
      launcher = start_supervised!({Mure, test_ops: true})
      %{launcher: launcher, node: Mure.info(launcher).node}
    end

    test "connects to a running node and serves calls", %{node: node} do
      {:ok, conn} = Mure.connect(node)
      assert %{mode: :remote, state: :connected, node: ^node} = Mure.info(conn)
      t = Mure.upload!(conn, <<9, 8, 7>>, {:u, 8}, {3})
      assert t.node == node
      assert Mure.download!(t) == <<9, 8, 7>>
      Mure.stop(conn)
    end

    test "reconnects after the connection drops; old tensors are reported unknown", %{node: node} do
      {:ok, conn} = Mure.connect(node, backoff_initial: 100)
      t = Mure.upload!(conn, <<1, 2>>, {:u, 8}, {2})
      task = Task.async(fn -> Mure.busy(conn, 3_000, timeout: 10_000) end)
      assert wait_until(fn -> Mure.info(conn).inflight == 1 end)

      # Drop the distribution connection (the node keeps running).
      true = Node.disconnect(node)
      assert {:error, %ConnectionError{reason: :node_down}} = Task.await(task, 2_000)

      assert wait_until(fn -> Mure.info(conn).state == :connected end, 5_000)
      assert {:ok, %{protocol: 1}} = Mure.hello(conn)

      assert {:error, %Error{kind: :unknown_handle, message: msg}} = Mure.download(t)
      assert msg =~ "earlier connection"
      t2 = Mure.upload!(conn, <<3, 4>>, {:u, 8}, {2})
      assert Mure.download!(t2) == <<3, 4>>
      Mure.stop(conn)
    end

    test "a node name as a string connects; a malformed one is an ArgumentError", %{node: node} do
      {:ok, conn} = Mure.connect(Atom.to_string(node))
      assert %{node: ^node, state: :connected} = Mure.info(conn)
      Mure.stop(conn)

      assert_raise ArgumentError, ~r/name@host/, fn -> Mure.connect("no_host_part") end
      assert_raise ArgumentError, ~r/expected a node name/, fn -> Mure.connect(42) end
    end

    test "a refused connection says which part failed: the name, or the cookie" do
      # epmd answers, the name is not there: the error lists what epmd has.
      missing = :"mure_nowhere_#{System.unique_integer([:positive])}@127.0.0.1"
      assert {:error, %ConnectionError{reason: :connect_failed} = e} = Mure.connect(missing)
      assert Exception.message(e) =~ "epmd on 127.0.0.1 has no node named mure_nowhere_"

      # epmd lists the name, the handshake is refused: the cookie differs.
      prefix = "mure_ck#{System.unique_integer([:positive])}"
      cookie = Path.join(System.tmp_dir!(), "#{prefix}_cookie")
      File.write!(cookie, "not_the_cookie_of_this_beam")
      File.chmod!(cookie, 0o600)
      on_exit(fn -> File.rm(cookie) end)

      other =
        Mure.Reliability.launch_plain([
          "--name",
          "#{prefix}@127.0.0.1",
          "--cookie-file",
          cookie,
          "--blis-threads",
          "1"
        ])

      on_exit(fn -> Mure.Reliability.stop_plain(other) end)

      assert {:error, %ConnectionError{reason: :connect_failed} = e} =
               Mure.connect(:"#{prefix}@127.0.0.1")

      assert Exception.message(e) =~ "epmd on 127.0.0.1 lists #{prefix} at port"
      assert Exception.message(e) =~ "the cookie differs"

      # The same node with its cookie connects (the diagnosis was not a guess).
      {:ok, conn} = Mure.connect(:"#{prefix}@127.0.0.1", cookie: "not_the_cookie_of_this_beam")
      assert {:ok, %{protocol: 1}} = Mure.hello(conn)
      Mure.stop(conn)
    end

    test "calls fail fast while disconnected" do
      node = :"mure_nowhere_#{System.unique_integer([:positive])}@127.0.0.1"

      assert {:error, %ConnectionError{reason: :connect_failed}} = Mure.connect(node)

      {:ok, conn} = Mure.connect(node, sync_connect: false, backoff_initial: 50, backoff_max: 200)
      assert %{state: :disconnected} = Mure.info(conn)
      assert {:error, %ConnectionError{reason: :disconnected}} = Mure.hello(conn)
      assert_raise ConnectionError, ~r/disconnected/, fn -> Mure.stats!(conn) end
      Mure.stop(conn)
    end
  end
end
