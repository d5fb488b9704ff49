defmodule Mure.ClusterNetnsAarch64Test do
  # The aarch64 node as one of the network-namespace hosts: scripts/cluster builds three hosts
  # (namespaces with their own address, epmd and node, behind a bridge), and host 3 runs the
  # aarch64 mure_node under qemu-aarch64 (scripts/mure_node_aarch64, `up --node-bin`) instead of
  # the x86-64 one. This BEAM, outside, runs Mure.Cluster over the three: a split job gives what
  # one x86-64 node gives alone, and the cluster's own measurement gives the emulated host the
  # smallest share. Needs root (:netns) and the cross-built node with qemu-user (:aarch64):
  # test_helper.exs excludes either tag where it cannot run, and says so.
  use ExUnit.Case, async: false

  import Mure.Test.Netns, only: [script!: 1]

  @moduletag :netns
  @moduletag :aarch64
  @moduletag :capture_log
  @moduletag timeout: 600_000

  import Mure.TestSupport

  @script Mure.Test.Netns.script()
  @launcher Path.expand("../../../scripts/mure_node_aarch64", __DIR__)
  @hosts Mure.Test.Netns.hosts()
  @x86 [:"mure@10.77.0.11", :"mure@10.77.0.12"]
  @arm :"mure@10.77.0.13"

  setup do
    script!(~w(up --hosts 3 --blis-threads 1 --node-bin 3=#{@launcher}))
    on_exit(fn -> System.cmd(@script, ["down"], stderr_to_stdout: true) end)
    :ok
  end

  test "an emulated aarch64 host in the cluster: one node's results, the smallest share" do
    # It is the aarch64 node: its BLIS device names an aarch64 CPU.
    {:ok, arm} = Mure.connect(@arm, timeout: 120_000, shared_memory: false)
    {:ok, devices} = Mure.devices(arm)
    blas = Enum.find(devices, &(&1.kind == :blas))
    assert blas.cpu_features =~ "aarch64", "host 3 runs #{inspect(blas)}"
    :ok = Mure.stop(arm)

    cluster =
      start_supervised!(
        {Mure.Cluster,
         hosts: @hosts,
         discover_interval: 500,
         connect_opts: [shared_memory: false, timeout: 120_000]}
      )

    assert :ok = Mure.Cluster.await_members(cluster, 3, 180_000)
    members = Map.new(Mure.Cluster.members(cluster), &{&1.node, &1})
    assert Enum.sort(Map.keys(members)) == Enum.sort([@arm | @x86])

    for x86 <- @x86 do
      assert members[@arm].speeds.gemm_flops_s < members[x86].speeds.gemm_flops_s,
             "the probe measured the emulated host at #{members[@arm].speeds.gemm_flops_s} FLOP/s, " <>
               "#{x86} at #{members[x86].speeds.gemm_flops_s}"
    end

    # Small integers: exact in any order of summation, so one node's bits are the reference. A
    # product with k = 512: compute, not the link, sets each member's pace.
    rows = 3_000
    a = {exact_matrix(rows, 512, 3), {:f, 32}, {rows, 512}}
    b = {exact_matrix(512, 64, 5), {:f, 32}, {512, 64}}
    expected = reference_result(Mure.jit(&Mure.Expr.dot/2), [a, b], 120_000)

    {:ok, shared} = Mure.Cluster.share(cluster, b)
    assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, shared, piece_rows: 30)

    # The product's split: the emulated host's share is the smallest.
    status = Mure.Cluster.status(cluster)
    work = Map.new(status.members, &{&1.node, &1.work})
    IO.puts("\n" <> Mure.Cluster.format_status(status))
    assert work[@arm].pieces >= 1, "the aarch64 host took no piece"

    for x86 <- @x86 do
      assert work[@arm].rows < work[x86].rows,
             "the emulated host got #{work[@arm].rows} rows of the product, #{x86} #{work[x86].rows}"
    end

    # An elementwise job over the hosts too (its pace is the link's: results only), against the
    # same kind of one-node reference.
    x = {exact_matrix(rows, 64, 7), {:f, 32}, {rows, 64}}
    map = Mure.jit(fn x -> Mure.Expr.add(Mure.Expr.multiply(x, x), x) end)
    expected_map = reference_result(map, [x], 120_000)
    assert {:ok, ^expected_map} = Mure.Cluster.run(cluster, map, [x], piece_rows: 100)
  end
end
