defmodule Mure.ClusterNetnsTlsTest do
  # The cluster of test/cluster/netns_test.exs once over TLS distribution: `scripts/cluster up
  # --tls DIR` starts the three namespace hosts' nodes with certificates for their addresses,
  # and a :peer BEAM started with `-proto_dist inet_tls` (the ExUnit BEAM is plain TCP)
  # coordinates them with Mure.Cluster (test/support/cluster_peer.ex, through :peer.call). The
  # results are checked against one plain node launched here; a plain-TCP BEAM is refused.
  # Only the tests that prove the cluster works are repeated here (netns_test.exs has the rest).
  use ExUnit.Case, async: false

  import Mure.Test.Netns, only: [script!: 1]

  @moduletag :netns
  @moduletag :capture_log
  @moduletag timeout: 300_000

  import Mure.TestSupport

  alias Mure.Test.ClusterPeer

  @script Mure.Test.Netns.script()
  @hosts Mure.Test.Netns.hosts()
  @h1 :"mure@10.77.0.11"
  @h2 :"mure@10.77.0.12"
  @h3 :"mure@10.77.0.13"

  defp log(i),
    do:
      File.read!(Path.join(System.get_env("MURE_CLUSTER_DIR", "/tmp/mure-cluster"), "h#{i}.log"))

  setup do
    dir = Path.join(System.tmp_dir!(), "mure_netns_tls_#{System.unique_integer([:positive])}")
    out = script!(["up", "--hosts", "3", "--blis-threads", "1", "--tls", dir])
    assert out =~ "host 3: mure@10.77.0.13" and out =~ "TLS)"

    on_exit(fn ->
      System.cmd(@script, ["down"], stderr_to_stdout: true)
      File.rm_rf!(dir)
    end)

    # Keys are the nodes' and the client's alone.
    for name <- ~w(ca h1 h2 h3 client) do
      assert %File.Stat{mode: mode} = File.stat!(Path.join(dir, "#{name}.key"))
      assert Bitwise.band(mode, 0o077) == 0, "#{name}.key is mode #{Integer.to_string(mode, 8)}"
    end

    {peer, _} = Mure.Test.Tls.start_peer("netns_tls", Path.join(dir, "client.ssl_dist.conf"))
    on_exit(fn -> stop_peer(peer) end)
    %{peer: peer}
  end

  defp call(peer, fun, args), do: :peer.call(peer, ClusterPeer, fun, args, 180_000)

  test "three TLS hosts coordinated by a TLS BEAM give the results of one node; a plain-TCP BEAM is refused",
       %{peer: peer} do
    {cluster, _holder} = call(peer, :start, [@hosts, 3])
    assert call(peer, :members, [cluster]) == [@h1, @h2, @h3]

    {m, k, n} = {1500, 512, 384}
    {rows, cols} = {4000, 256}
    assert {:ok, dot, map} = call(peer, :jobs, [cluster, {m, k, n}, {rows, cols}])

    a = {exact_matrix(m, k, 3), {:f, 32}, {m, k}}
    b = {exact_matrix(k, n, 5), {:f, 32}, {k, n}}
    x = {exact_matrix(rows, cols, 7), {:f, 32}, {rows, cols}}
    assert dot == reference_result(Mure.jit(&Mure.Expr.dot/2), [a, b], 120_000)
    assert map == reference_result(Mure.jit(&ClusterPeer.square_sub_abs/1), [x], 120_000)

    status = call(peer, :status, [cluster])
    assert Enum.all?(status.members, &(&1.work.pieces > 0)), inspect(status.members)
    assert status.jobs == %{done: 2, failed: 0, pieces_rerun: 0}

    # Each host's node says its connection came over TLS.
    for i <- 1..3, do: assert(log(i) =~ ~r/connection from netns_tls_\S+ accepted over TLS/)

    # A plain-TCP BEAM (this ExUnit BEAM) cannot join them: each node refuses it, and says why.
    for {node, i} <- [{@h1, 1}, {@h2, 2}, {@h3, 3}] do
      refute Node.connect(node), "a plain-TCP BEAM connected to #{node}"

      assert wait_until(fn -> log(i) =~ "refused a connection: TLS handshake failed" end, 10_000),
             "host #{i}'s log:\n#{log(i)}"
    end

    assert {:error, _} = Mure.connect(@h1, connect_timeout: 5_000)
    refute Enum.any?(Node.list([:visible, :hidden]), &(&1 in [@h1, @h2, @h3]))
    # ...while the TLS BEAM's cluster goes on working.
    assert {:ok, _, _} = call(peer, :jobs, [cluster, {300, 64, 32}, {600, 16}])
  end

  test "a TLS member killed mid-job: the job is still right, and the member rejoins", %{
    peer: peer
  } do
    {cluster, _holder} = call(peer, :start, [@hosts, 3])
    {m, k} = {4000, 2048}
    a = {exact_matrix(m, k, 3), {:f, 32}, {m, k}}
    b = {exact_matrix(k, k, 5), {:f, 32}, {k, k}}
    expected = reference_result(Mure.jit(&Mure.Expr.dot/2), [a, b], 120_000)

    assert {:ok, size, md5, warm} = call(peer, :dot_killing, [cluster, {m, k}, @script, @h2, 2])

    assert Enum.all?(Map.values(warm), &(&1 > 0)),
           "a member got no piece of the warm-up: #{inspect(warm)}"

    assert {size, md5} == {byte_size(expected), :erlang.md5(expected)}

    status = call(peer, :status, [cluster])
    assert status.jobs.pieces_rerun >= 1, "the kill did not land mid-job: #{inspect(status.jobs)}"
    assert [%{node: @h2}] = status.departed
    assert call(peer, :members, [cluster]) == [@h1, @h3]

    Mure.Reliability.record(:faults, 1, "cluster host's node SIGKILLed mid-job (netns, TLS)")

    Mure.Reliability.record(
      :requests,
      status.jobs.pieces_rerun,
      "cluster pieces re-run after a member was killed, result still right (netns, TLS)"
    )

    # Restarted as at `up` (with its TLS files), it is found and joins again over TLS.
    script!(~w(start 2))
    assert :ok = call(peer, :await_members, [cluster, 3])
    assert {:ok, _, _} = call(peer, :jobs, [cluster, {300, 64, 32}, {600, 16}])
    assert length(Regex.scan(~r/accepted over TLS/, log(2))) >= 2
  end
end
