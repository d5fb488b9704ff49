defmodule Mure.ClusterNetnsDialoutTest do
  # A host no one can dial (behind NAT, say) joins the cluster by dialling out: scripts/cluster
  # builds three network namespaces and drops every inbound TCP connection to host 3 (an
  # nftables rule in its namespace), whose node is started with --connect to this BEAM. This
  # BEAM takes a name at the bridge address (x@10.77.0.1) for the test, so that the node can
  # reach it, and takes its old name back afterwards. Needs root: where network namespaces
  # cannot be made, test_helper.exs excludes the :netns tag and says so.
  use ExUnit.Case, async: false

  import Mure.Test.Netns, only: [script!: 1]

  @moduletag :netns
  @moduletag :capture_log
  @moduletag timeout: 300_000

  import Mure.TestSupport

  @script Mure.Test.Netns.script()
  @hosts Mure.Test.Netns.hosts()
  @h1 :"mure@10.77.0.11"
  @h3 :"mure@10.77.0.13"

  setup do
    old = node()
    coordinator = :"mure_coord#{System.unique_integer([:positive])}@10.77.0.1"

    case Node.stop() do
      :ok ->
        {:ok, _} = Node.start(coordinator, :longnames)

        on_exit(fn ->
          System.cmd(@script, ["down"], stderr_to_stdout: true)
          :ok = Node.stop()
          {:ok, _} = Node.start(old, :longnames)
        end)

        script!(~w(up --hosts 3 --blis-threads 1 --dial-out 3=#{coordinator}))
        %{coordinator: coordinator}

      {:error, reason} ->
        IO.puts(
          "\nNOTE: the dial-out cluster test is SKIPPED: this BEAM's distribution was not " <>
            "started by Node.start/2 and cannot take a name at 10.77.0.1 (#{inspect(reason)})\n"
        )

        %{coordinator: nil}
    end
  end

  # What one reachable node computes for the whole product, over its own connection.
  defp one_node_dot(node, {a, _, {m, k}}, {b, _, {k, n}}) do
    {:ok, conn} = Mure.connect(node, timeout: 60_000, shared_memory: false)
    ta = Mure.upload!(conn, a, {:f, 32}, {m, k})
    tb = Mure.upload!(conn, b, {:f, 32}, {k, n})
    {:ok, c} = Mure.matmul(ta, tb, timeout: 60_000)
    {:ok, bin} = Mure.download(c, timeout: 60_000)
    :ok = Mure.stop(conn)
    bin
  end

  defp at(bin, i), do: bin |> binary_part(i * 4, 4) |> then(fn <<x::float-32-native>> -> x end)

  # Entry (r, j) of the product of a {_, k} and b {k, k}, summed here (exact: small integers).
  defp entry(a, b, r, j, k),
    do: Enum.reduce(0..(k - 1), 0.0, fn i, acc -> acc + at(a, r * k + i) * at(b, i * k + j) end)

  defp rows_by_member(cluster),
    do: Map.new(Mure.Cluster.status(cluster).members, &{&1.node, &1.work.rows})

  test "a host that drops inbound connections joins by dialling out, computes, and is re-run when killed",
       %{coordinator: coordinator} do
    if coordinator do
      cluster =
        start_supervised!(
          {Mure.Cluster,
           hosts: @hosts, discover_interval: 500, connect_opts: [shared_memory: false]}
        )

      assert :ok = Mure.Cluster.await_members(cluster, 3, 60_000)
      assert @h3 in Enum.map(Mure.Cluster.members(cluster), & &1.node)
      # Out of reach all along: its epmd never answered this BEAM (scripts/cluster up checked
      # that too).
      status = Mure.Cluster.status(cluster)
      assert Enum.find(status.hosts, &(&1.host == "10.77.0.13")).reachable == false

      # The reference: one reachable node computes the whole product (about 50 GFLOP, long
      # enough for a kill to land mid-job); a few of its entries are checked here in plain Elixir.
      a = {exact_matrix(6000, 2048, 3), {:f, 32}, {6000, 2048}}
      b = {exact_matrix(2048, 2048, 5), {:f, 32}, {2048, 2048}}
      expected = one_node_dot(@h1, a, b)

      for r <- [0, 2999, 5999], j <- [0, 1, 2047] do
        assert at(expected, r * 2048 + j) == entry(elem(a, 0), elem(b, 0), r, j, 2048)
      end

      # The shared operand resident on every member first (a piece of one row each).
      {:ok, shared} = Mure.Cluster.share(cluster, b)
      warm = {exact_matrix(30, 2048, 1), {:f, 32}, {30, 2048}}
      {:ok, _} = Mure.Cluster.dot(cluster, warm, shared, piece_rows: 1)

      before = rows_by_member(cluster)
      assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, shared, piece_rows: 50)
      assert rows_by_member(cluster)[@h3] > before[@h3], "the dial-out member did no work"

      # Killed mid-job: its pieces are re-run on the others, the result is the same.
      assert {:ok, ^expected} =
               dot_with_fault(cluster, a, shared, @h3, fn -> script!(~w(kill 3)) end, 120_000)

      status = Mure.Cluster.status(cluster)

      assert status.jobs.pieces_rerun >= 1,
             "the kill did not land mid-job: #{inspect(status.jobs)}"

      assert Enum.any?(status.departed, &(&1.node == @h3))

      # Restarted, it dials in again and is given work.
      script!(~w(start 3))
      assert :ok = Mure.Cluster.await_members(cluster, 3, 60_000)
      before = rows_by_member(cluster)
      assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, shared, piece_rows: 50)
      assert rows_by_member(cluster)[@h3] > before[@h3]
      assert File.read!("/tmp/mure-cluster/h3.log") =~ "connection to #{coordinator} established"
    end
  end
end
