defmodule Mure.DialoutTest do
  # Dial-out on loopback: a real mure_node started with --connect opens the distribution
  # connection to this test BEAM itself (listening on no address, so nothing can reach it any
  # other way), serves requests over it, comes back after the BEAM drops it, keeps retrying with
  # backoff while the cookies differ, and joins a Mure.Cluster that does not know its host.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  import Mure.TestSupport

  alias Mure.Reliability

  setup do
    prefix = "mdial#{System.unique_integer([:positive])}_"
    dir = Path.join(System.tmp_dir!(), prefix)
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf(dir) end)
    :ok = :net_kernel.monitor_nodes(true, node_type: :hidden)
    on_exit(fn -> :net_kernel.monitor_nodes(false, node_type: :hidden) end)
    %{prefix: prefix, dir: dir}
  end

  # A 0600 cookie file, as an operator would write one.
  defp cookie_file(dir, cookie) do
    path = Path.join(dir, "cookie")
    File.write!(path, cookie)
    File.chmod!(path, 0o600)
    path
  end

  defp dial_out(node, cookie_path, extra \\ [], coordinator \\ node()) do
    plain =
      Reliability.launch_plain(
        [
          "--name",
          Atom.to_string(node),
          "--connect",
          Atom.to_string(coordinator),
          "--listen",
          "none",
          "--cookie-file",
          cookie_path,
          "--blis-threads",
          "1",
          "--log-level",
          "info"
        ] ++ extra
      )

    on_exit(fn -> Reliability.stop_plain(plain) end)
    plain
  end

  defp log(plain), do: File.read!(plain.stderr)
  defp count(text, pattern), do: length(String.split(text, pattern)) - 1

  # A small exact product on `node` over its own connection, against a product computed here.
  defp assert_serves(node) do
    {:ok, conn} = Mure.connect(node, timeout: 10_000)
    a = exact_matrix(7, 5, 3)
    b = exact_matrix(5, 4, 5)
    ta = Mure.upload!(conn, a, {:f, 32}, {7, 5})
    tb = Mure.upload!(conn, b, {:f, 32}, {5, 4})
    assert {:ok, c} = Mure.matmul(ta, tb)
    assert {:ok, bin} = Mure.download(c)
    expected = matmul_ref(unpack(a, 32), unpack(b, 32), 7, 5, 4)
    assert unpack(bin, 32) == expected
    :ok = Mure.stop(conn)
  end

  test "a node with --connect dials this BEAM, serves it, and dials again when dropped", ctx do
    node = :"#{ctx.prefix}1@127.0.0.1"
    plain = dial_out(node, cookie_file(ctx.dir, Atom.to_string(Node.get_cookie())))

    assert_receive {:nodeup, ^node, _}, 20_000
    assert log(plain) =~ "listening on no address (listen = none)"
    # (The node logs it right after its side of the handshake, as this BEAM sees the nodeup.)
    assert wait_until(fn -> log(plain) =~ "connection to #{node()} established" end)
    assert_serves(node)

    # Dropped by this side: the node notices, and dials again after its backoff.
    true = :erlang.disconnect_node(node)
    assert_receive {:nodedown, ^node, _}, 5_000
    assert_receive {:nodeup, ^node, _}, 20_000
    assert wait_until(fn -> count(log(plain), "connection to #{node()} established") == 2 end)
    assert log(plain) =~ "dial-out: connection to #{node()} ended; reconnecting in"
    assert_serves(node)
    # Only ever dialled out: the node accepted nothing.
    refute log(plain) =~ "connection from"
  end

  test "a coordinator with another cookie refuses it; it retries with backoff, quietly, and joins once the cookie fits",
       ctx do
    node = :"#{ctx.prefix}1@127.0.0.1"

    plain =
      dial_out(node, cookie_file(ctx.dir, "not_the_cookie_of_this_beam"), [
        "--connect-backoff-max-ms",
        "400",
        "--log-level",
        "debug"
      ])

    # Several refused attempts, each logged at debug level only after the first warning.
    assert wait_until(fn -> log(plain) =~ "failed again (5 in a row)" end, 30_000), log(plain)
    text = log(plain)
    assert count(text, "mure[warn] dial-out to #{node()} failed") == 1, text
    assert text =~ "wrong cookie"
    refute_received {:nodeup, ^node, _}
    assert os_alive?(plain.os_pid)

    waits =
      Regex.scan(~r/next attempt in (\d+) ms/, text)
      |> Enum.map(fn [_, ms] -> String.to_integer(ms) end)

    assert waits != [] and Enum.all?(waits, &(&1 >= 62 and &1 <= 400)), inspect(waits)

    # This BEAM learns the node's cookie: the next attempt gets in.
    true = :erlang.set_cookie(node, :not_the_cookie_of_this_beam)
    assert_receive {:nodeup, ^node, _}, 20_000
    assert_serves(node)
  end

  test "a Mure.Cluster joins a node that dialled in, from a host it does not ask, and runs jobs on it",
       ctx do
    cookie = cookie_file(ctx.dir, Atom.to_string(Node.get_cookie()))
    node = :"#{ctx.prefix}1@127.0.0.1"
    plain = dial_out(node, cookie)
    assert_receive {:nodeup, ^node, _}, 20_000

    # No hosts to ask: the member is known only by its connection.
    cluster =
      start_supervised!(
        {Mure.Cluster, hosts: [], name_prefix: ctx.prefix, discover_interval: 200}
      )

    assert :ok = Mure.Cluster.await_members(cluster, 1, 30_000)
    assert [%{node: ^node, speeds: %{source: :probe}}] = Mure.Cluster.members(cluster)

    a = exact_matrix(60, 16, 3)
    b = exact_matrix(16, 8, 5)
    expected = matmul_ref(unpack(a, 32), unpack(b, 32), 60, 16, 8)

    assert {:ok, bin} =
             Mure.Cluster.dot(cluster, {a, {:f, 32}, {60, 16}}, {b, {:f, 32}, {16, 8}},
               piece_rows: 7
             )

    assert unpack(bin, 32) == expected

    # Its connection dropped: it leaves as on a nodedown, and joins again when it dials back.
    true = :erlang.disconnect_node(node)

    assert wait_until(
             fn -> Enum.any?(Mure.Cluster.status(cluster).departed, &(&1.node == node)) end,
             10_000
           )

    assert wait_until(fn -> Mure.Cluster.members(cluster) != [] end, 30_000)

    assert {:ok, ^bin} =
             Mure.Cluster.dot(cluster, {a, {:f, 32}, {60, 16}}, {b, {:f, 32}, {16, 8}},
               piece_rows: 9
             )

    refute log(plain) =~ "connection from"
  end

  test "with dial_in: false a dialled-in node is left alone", ctx do
    node = :"#{ctx.prefix}1@127.0.0.1"
    plain = dial_out(node, cookie_file(ctx.dir, Atom.to_string(Node.get_cookie())))
    assert_receive {:nodeup, ^node, _}, 20_000

    # Asks epmd at 127.0.0.2 (this host's, which does not list the node: it registers nowhere;
    # the node's own host, 127.0.0.1, is not one the cluster asks).
    cluster =
      start_supervised!(
        {Mure.Cluster,
         hosts: ["127.0.0.2"], name_prefix: ctx.prefix, discover_interval: 100, dial_in: false}
      )

    # It comes up again while the cluster watches (a nodeup the cluster sees), then three
    # discovery rounds pass: it is never tried.
    true = :erlang.disconnect_node(node)
    assert_receive {:nodeup, ^node, _}, 20_000
    asked = fn -> hd(Mure.Cluster.status(cluster).hosts)[:asked_at] end
    assert wait_until(fn -> asked.() != nil end, 5_000)

    for _ <- 1..3 do
      seen = asked.()
      assert wait_until(fn -> DateTime.compare(asked.(), seen) == :gt end, 5_000)
    end

    status = Mure.Cluster.status(cluster)

    assert status.members == [] and status.refused == [] and status.departed == [],
           inspect(status)

    assert wait_until(fn -> count(log(plain), "connection to #{node()} established") == 2 end)
    assert_raise ArgumentError, ~r/:dial_in/, fn -> Mure.Cluster.start_link(dial_in: :yes) end
  end

  defp f32(bin), do: for(<<x::float-32-native <- bin>>, do: x)

  test "over TLS: the node is the TLS client, verifies the coordinator's certificate, and serves it",
       ctx do
    certs = Mure.Test.Tls.certs!(Path.join(ctx.dir, "tls"))
    {peer, coordinator} = Mure.Test.Tls.start_peer("dial_tls", certs.conf.("client"))
    on_exit(fn -> stop_peer(peer) end)
    node = :"#{ctx.prefix}1@127.0.0.1"
    cookie = cookie_file(ctx.dir, Atom.to_string(Node.get_cookie()))
    plain = dial_out(node, cookie, certs.node_args, coordinator)

    assert wait_until(fn -> node in :peer.call(peer, Node, :list, [:hidden]) end, 30_000),
           log(plain)

    assert log(plain) =~ ~r/connection to #{coordinator} established over TLSv1\.[23]/
    result = :peer.call(peer, Mure.Test.Tls, :exercise, [{:connect, node}], 120_000)
    assert %{protocol: 1} = result.hello
    want_sum = Enum.zip_with(f32(result.a), f32(result.b), &(&1 + &2))
    assert f32(result.sum) == want_sum
    assert f32(result.prod) == Enum.zip_with(want_sum, f32(result.b), &(&1 * &2))
  end

  test "over TLS: a coordinator whose certificate another CA signed is refused by the node, which keeps trying",
       ctx do
    certs = Mure.Test.Tls.certs!(Path.join(ctx.dir, "tls"))
    # The stranger's own configuration: its certificate and CA are another CA's.
    {peer, coordinator} = Mure.Test.Tls.start_peer("dial_stranger", certs.conf.("stranger"))
    on_exit(fn -> stop_peer(peer) end)
    node = :"#{ctx.prefix}1@127.0.0.1"
    cookie = cookie_file(ctx.dir, Atom.to_string(Node.get_cookie()))

    plain =
      dial_out(
        node,
        cookie,
        certs.node_args ++ ["--connect-backoff-max-ms", "300", "--log-level", "debug"],
        coordinator
      )

    assert wait_until(fn -> log(plain) =~ "failed again (3 in a row)" end, 30_000), log(plain)
    text = log(plain)
    assert count(text, "mure[warn] dial-out to #{coordinator} failed") == 1, text
    assert text =~ "TLS handshake failed: the peer's certificate"
    refute text =~ "established"
    refute node in :peer.call(peer, Node, :list, [:hidden])
    assert os_alive?(plain.os_pid)
  end
end
