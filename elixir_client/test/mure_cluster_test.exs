defmodule Mure.ClusterTest do
  # Mure.Cluster on this host: real nodes (not launched by the client, as on remote hosts)
  # found through the real epmd on 127.0.0.1, killed for real. The multi-host tests, with
  # network namespaces and shaped links, are in test/cluster/.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  import Mure.TestSupport

  alias Mure.{ClusterError, Error, Reliability}
  alias Mure.Cluster.{Combine, Job}

  defp matrix(rows, cols, seed), do: exact_matrix(rows, cols, seed)

  defp launch(prefix, i) do
    Reliability.launch_plain(["--name", "#{prefix}#{i}@127.0.0.1", "--blis-threads", "1"])
  end

  defp start_nodes(count) do
    prefix = "mclu#{System.unique_integer([:positive])}_"
    nodes = for i <- 1..count, do: launch(prefix, i)
    on_exit(fn -> Enum.each(nodes, &Reliability.stop_plain/1) end)
    {prefix, nodes}
  end

  defp start_cluster(prefix, count, opts \\ []) do
    cluster =
      start_supervised!(
        {Mure.Cluster,
         [hosts: ["127.0.0.1"], name_prefix: prefix, discover_interval: 200] ++ opts}
      )

    assert :ok = Mure.Cluster.await_members(cluster, count, 30_000)
    cluster
  end

  defp reference({jit, args}), do: reference_result(jit, args, 60_000)

  describe "three nodes on this host" do
    setup do
      {prefix, nodes} = start_nodes(3)
      cluster = start_cluster(prefix, 3)
      %{cluster: cluster, nodes: nodes, prefix: prefix}
    end

    test "joins every node epmd lists under the prefix, measured", %{cluster: cluster} do
      members = Mure.Cluster.members(cluster)
      assert length(members) == 3

      for m <- members do
        assert :blis in m.devices
        s = m.speeds
        assert s.source == :probe
        assert s.rtt_ms > 0 and s.rtt_ms < 1_000
        assert s.upload_bytes_s > 1.0e6 and s.download_bytes_s > 1.0e6
        assert s.gemm_flops_s > 1.0e8
        assert s.elementwise_bytes_s > 1.0e7
      end

      table = Mure.Cluster.format_status(Mure.Cluster.status(cluster))
      for m <- members, do: assert(table =~ Atom.to_string(m.node))
      assert table =~ "GFLOP/s"
      assert table =~ "jobs: 0 done, 0 failed, 0 pieces re-run"
    end

    test "dot split by rows equals one node's result, the shared operand kept resident",
         %{cluster: cluster} do
      a = {matrix(600, 256, 3), {:f, 32}, {600, 256}}
      b = {matrix(256, 192, 5), {:f, 32}, {256, 192}}
      expected = reference({Mure.jit(&Mure.Expr.dot/2), [a, b]})

      {:ok, shared} = Mure.Cluster.share(cluster, b)
      assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, shared, piece_rows: 50)
      assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, shared, piece_rows: 64)

      # Every member did work and holds the shared operand once, not once per piece or job.
      status = Mure.Cluster.status(cluster)
      assert Enum.all?(status.members, &(&1.work.pieces > 0))

      for m <- Mure.Cluster.members(cluster) do
        assert {:ok, %{tensors: 1}} = Mure.stats(m.conn)
      end

      :ok = Mure.Cluster.unshare(cluster, shared)

      for m <- Mure.Cluster.members(cluster) do
        assert wait_until(fn -> match?({:ok, %{tensors: 0}}, Mure.stats(m.conn)) end)
      end
    end

    test "elementwise programs are joined in row order; reductions over axis 0 combined",
         %{cluster: cluster} do
      x = {matrix(1000, 33, 11), {:f, 32}, {1000, 33}}
      y = {matrix(1000, 33, 13), {:f, 32}, {1000, 33}}
      f = Mure.jit(fn x, y -> x |> Mure.Expr.multiply(y) |> Mure.Expr.add(x) end)
      expected = reference({f, [x, y]})
      assert {:ok, ^expected} = Mure.Cluster.run(cluster, f, [x, y], piece_rows: 37)

      # Sums of small integers in f32 are exact in any order.
      for {jit, combine} <- [
            {Mure.jit(&Mure.Expr.sum/1), :sum},
            {Mure.jit(fn x -> Mure.Expr.reduce_max(x, axes: [0]) end), :max},
            {Mure.jit(fn x -> Mure.Expr.reduce_min(x, axes: [0, 1]) end), :min},
            {Mure.jit(fn x -> Mure.Expr.sum(x, axes: [0], keep_axes: true) end), :sum}
          ] do
        expected = reference({jit, [x]})
        assert {:ok, ^expected} = Mure.Cluster.run(cluster, jit, [x], piece_rows: 100)
        assert {:ok, ^expected} = Mure.Cluster.run(cluster, jit, [x], combine: combine)
      end

      # Integers: s64 sums of s32 data.
      ints = for i <- 1..4000, into: <<>>, do: <<i * 100_003::signed-32-native>>
      jit = Mure.jit(&Mure.Expr.sum/1)
      expected = reference({jit, [{ints, {:s, 32}, {4000}}]})

      assert {:ok, ^expected} =
               Mure.Cluster.run(cluster, jit, [{ints, {:s, 32}, {4000}}], piece_rows: 333)
    end

    test "one-row pieces teach nothing about a program's rows; pieces sized by time do",
         %{cluster: cluster} do
      # Timed one row at a time, a member's round trips (or, under a CPU quota, its
      # throttling) would pass for its arithmetic: later jobs of the program would take it
      # for a hundred times slower than it is and give it next to nothing.
      {:ok, b} = Mure.Cluster.share(cluster, {matrix(512, 512, 5), {:f, 32}, {512, 512}})
      dot = Mure.jit(&Mure.Expr.dot/2)
      a = {matrix(600, 512, 3), {:f, 32}, {600, 512}}
      expected = reference({dot, [a, {matrix(512, 512, 5), {:f, 32}, {512, 512}}]})
      assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, b, piece_rows: 1)

      members = Mure.Cluster.status(cluster).members
      assert Enum.all?(members, &(&1.work.pieces >= 2)), inspect(Enum.map(members, & &1.work))
      assert Enum.all?(members, &(&1.programs_learned == 0)), inspect(members)

      big = {matrix(6000, 512, 7), {:f, 32}, {6000, 512}}
      assert {:ok, _} = Mure.Cluster.dot(cluster, big, b)
      members = Mure.Cluster.status(cluster).members
      assert Enum.any?(members, &(&1.programs_learned == 1)), inspect(members)
    end

    test "a member killed with SIGKILL mid-job: the job is still right; it rejoins when back",
         %{cluster: cluster, nodes: nodes, prefix: prefix} do
      # About 50 GFLOP: a second or more on this machine's cores, in pieces of 50 rows.
      a = {matrix(6000, 2048, 3), {:f, 32}, {6000, 2048}}
      b = {matrix(2048, 2048, 5), {:f, 32}, {2048, 2048}}
      expected = reference({Mure.jit(&Mure.Expr.dot/2), [a, b]})
      {:ok, shared} = Mure.Cluster.share(cluster, b)
      # The shared operand resident everywhere first, so the kill lands in the compute.
      assert {:ok, _} =
               Mure.Cluster.dot(cluster, {matrix(3, 2048, 1), {:f, 32}, {3, 2048}}, shared,
                 piece_rows: 1
               )

      victim = Enum.at(nodes, 1)
      victim_node = :"#{prefix}2@127.0.0.1"
      kill = fn -> System.cmd("kill", ["-KILL", Integer.to_string(victim.os_pid)]) end
      assert {:ok, ^expected} = dot_with_fault(cluster, a, shared, victim_node, kill, 120_000)

      status = Mure.Cluster.status(cluster)
      # Two failures, as logged: the job's pieces on it, and its leaving the cluster.
      assert [%{node: ^victim_node, failures: 2}] = status.departed
      assert length(Mure.Cluster.members(cluster)) == 2

      assert status.jobs.pieces_rerun >= 1,
             "the kill did not land mid-job: #{inspect(status.jobs)}"

      # Back under the same name: found through epmd again, measured, and given work.
      back = launch(prefix, 2)
      on_exit(fn -> Reliability.stop_plain(back) end)
      assert :ok = Mure.Cluster.await_members(cluster, 3, 30_000)
      small = {matrix(300, 2048, 3), {:f, 32}, {300, 2048}}
      expected_small = binary_part(expected, 0, 300 * 2048 * 4)
      assert {:ok, ^expected_small} = Mure.Cluster.dot(cluster, small, shared, piece_rows: 10)
      rejoined = Enum.find(Mure.Cluster.status(cluster).members, &(&1.node == victim_node))
      assert rejoined.work.pieces > 0
    end

    test "when every member dies the job fails with a clear error, and the cluster stays up",
         %{cluster: cluster, nodes: nodes} do
      a = {matrix(6000, 2048, 3), {:f, 32}, {6000, 2048}}
      {:ok, b} = Mure.Cluster.share(cluster, {matrix(2048, 2048, 5), {:f, 32}, {2048, 2048}})

      kill_all = fn ->
        for n <- nodes, do: System.cmd("kill", ["-KILL", Integer.to_string(n.os_pid)])
      end

      assert {:error, %ClusterError{reason: :no_members} = e} =
               dot_with_fault(cluster, a, b, :any, kill_all, 60_000)

      assert Exception.message(e) =~ "no member"

      assert wait_until(fn -> Mure.Cluster.members(cluster) == [] end)
      assert {:error, %ClusterError{reason: :no_members}} = Mure.Cluster.dot(cluster, a, b)
      assert length(Mure.Cluster.status(cluster).departed) == 3
    end

    test "a shared tensor is freed on every member when its owner exits", %{cluster: cluster} do
      b = {matrix(64, 64, 5), {:f, 32}, {64, 64}}
      a = {matrix(64, 64, 3), {:f, 32}, {64, 64}}

      owner =
        Task.async(fn ->
          {:ok, s} = Mure.Cluster.share(cluster, b)
          {:ok, _} = Mure.Cluster.dot(cluster, a, s, piece_rows: 8)
          s
        end)

      shared = Task.await(owner)

      assert wait_until(fn ->
               Enum.all?(
                 Mure.Cluster.members(cluster),
                 &match?({:ok, %{tensors: 0}}, Mure.stats(&1.conn))
               )
             end)

      assert_raise ArgumentError, ~r/not shared with this cluster/, fn ->
        Mure.Cluster.dot(cluster, a, shared)
      end
    end

    test "jobs from several processes at once share the members, each result right",
         %{cluster: cluster} do
      b = {matrix(256, 256, 5), {:f, 32}, {256, 256}}
      {:ok, shared} = Mure.Cluster.share(cluster, b)
      f = Mure.jit(fn x -> x |> Mure.Expr.multiply(x) |> Mure.Expr.subtract(x) end)

      jobs =
        for i <- 1..6 do
          a = {matrix(500 + 37 * i, 256, i + 1), {:f, 32}, {500 + 37 * i, 256}}

          {a,
           Task.async(fn ->
             if rem(i, 2) == 0,
               do: {:dot, Mure.Cluster.dot(cluster, a, shared, piece_rows: 40)},
               else: {:map, Mure.Cluster.run(cluster, f, [a], piece_rows: 40)}
           end)}
        end

      for {a, task} <- jobs do
        case Task.await(task, 60_000) do
          {:dot, result} ->
            assert {:ok, reference({Mure.jit(&Mure.Expr.dot/2), [a, b]})} == result

          {:map, result} ->
            assert {:ok, reference({f, [a]})} == result
        end
      end

      assert Mure.Cluster.status(cluster).jobs.done == 6
    end

    test "nothing is left in the caller's mailbox after a job, done or failed",
         %{cluster: cluster} do
      x = {matrix(400, 64, 3), {:f, 32}, {400, 64}}
      f = Mure.jit(fn x -> Mure.Expr.exp(x) end)
      assert {:ok, _} = Mure.Cluster.run(cluster, f, [x], piece_rows: 10)
      idx = for _ <- 1..400, into: <<>>, do: <<99::signed-64-native>>
      bad = Mure.jit(fn x, i -> Mure.Expr.take(x, i, axis: 1) |> Mure.Expr.sum(axes: [1]) end)

      assert {:error, _} =
               Mure.Cluster.run(cluster, bad, [x, {idx, {:s, 64}, {400}}],
                 combine: :concat,
                 piece_rows: 10
               )

      # Past the job's refresh period and any piece still in flight.
      Process.sleep(1_000)
      assert {:messages, []} = Process.info(self(), :messages)
    end

    test "a stopped cluster gives an error value, not an exit", %{cluster: cluster} do
      f = Mure.jit(fn x -> Mure.Expr.exp(x) end)
      :ok = stop_supervised(Mure.Cluster)
      refute Process.alive?(cluster)

      assert {:error, %ClusterError{reason: :no_members}} =
               Mure.Cluster.run(cluster, f, [{<<0::32*8>>, {:f, 32}, {8}}])
    end

    test "a program error comes back as the member's error, not as a member failure",
         %{cluster: cluster} do
      x = {matrix(100, 4, 3), {:f, 32}, {100, 4}}
      # A gather with out-of-range indices is refused by the node: every member would refuse.
      idx = for _ <- 1..100, into: <<>>, do: <<99::signed-64-native>>
      jit = Mure.jit(fn x, i -> Mure.Expr.take(x, i, axis: 1) |> Mure.Expr.sum(axes: [1]) end)

      assert {:error, %Error{kind: :out_of_range}} =
               Mure.Cluster.run(cluster, jit, [x, {idx, {:s, 64}, {100}}], combine: :concat)

      assert length(Mure.Cluster.members(cluster)) == 3
    end
  end

  test "arguments are checked before anything is sent" do
    {prefix, _nodes} = start_nodes(1)
    cluster = start_cluster(prefix, 1)
    f = Mure.jit(fn x -> Mure.Expr.exp(x) end)
    two = Mure.jit(fn x, y -> Mure.Expr.add(x, y) end)

    assert_raise ArgumentError, ~r/differ in axis 0/, fn ->
      Mure.Cluster.run(cluster, two, [{<<0::32*8>>, {:f, 32}, {8}}, {<<0::32*4>>, {:f, 32}, {4}}])
    end

    assert_raise ArgumentError, ~r/needs 32/, fn ->
      Mure.Cluster.run(cluster, f, [{<<0::32*7>>, {:f, 32}, {8}}])
    end

    assert_raise ArgumentError, ~r/argument 1 is a scalar/, fn ->
      Mure.Cluster.run(cluster, f, [{<<0::32>>, {:f, 32}, {}}])
    end

    assert_raise ArgumentError, ~r/resident on one node/, fn ->
      [m] = Mure.Cluster.members(cluster)
      t = Mure.upload!(m.conn, <<0::32>>, {:f, 32}, {1})
      Mure.Cluster.run(cluster, f, [t])
    end

    # Programs whose pieces would not give their result: refused unless told how to combine.
    data = {<<0::32*8>>, {:f, 32}, {2, 4}}
    w = {<<0::32*4>>, {:f, 32}, {4}}

    for {fun, args} <- [
          {&Mure.Expr.transpose/1, [data]},
          {fn x -> Mure.Expr.argmax(x) end, [data]},
          {fn x -> Mure.Expr.subtract(x, Mure.Expr.sum(x, axes: [0], keep_axes: true)) end,
           [data]},
          {fn x -> x |> Mure.Expr.sum(axes: [0]) |> Mure.Expr.exp() end, [data]},
          {fn x -> Mure.Expr.sort(x, axis: 0) end, [data]},
          {fn x -> Mure.Expr.reshape(x, {elem(x.shape, 0) * 4}) end, [data]},
          {fn x -> Mure.Expr.reverse(x, axes: [0]) end, [data]}
        ] do
      assert_raise ArgumentError, ~r/cannot split this function/, fn ->
        Mure.Cluster.run(cluster, Mure.jit(fun), args)
      end
    end

    {:ok, shared_w} = Mure.Cluster.share(cluster, w)

    assert_raise ArgumentError, ~r/does not depend on the split/, fn ->
      Mure.Cluster.run(cluster, Mure.jit(fn _x, w -> Mure.Expr.sum(w) end), [data, shared_w])
    end

    # Row-local programs with shared operands, products over other axes: accepted.
    [m] = Mure.Cluster.members(cluster)

    for {fun, args} <- [
          {fn x, w -> Mure.Expr.add(x, w) end, [data, shared_w]},
          {fn x, w -> x |> Mure.Expr.dot(Mure.Expr.reshape(w, {4, 1})) |> Mure.Expr.sum() end,
           [data, shared_w]},
          {fn x -> x |> Mure.Expr.sum(axes: [1]) |> Mure.Expr.reduce_max() end, [data]},
          {fn x -> x |> Mure.Expr.transpose(axes: [0, 1]) |> Mure.Expr.negate() end, [data]}
        ] do
      jit = Mure.jit(fun)
      args_here = Enum.map(args, &resolve(&1, m.conn))
      expected = Mure.run!(jit, args_here, outputs: :return, conn: m.conn)
      assert {:ok, ^expected} = Mure.Cluster.run(cluster, jit, args, piece_rows: 1)
    end

    assert_raise ArgumentError, ~r/:balance/, fn ->
      Mure.Cluster.run(cluster, f, [{<<0::32*8>>, {:f, 32}, {8}}], balance: :random)
    end

    assert_raise ArgumentError, ~r/f32 or both f64/, fn ->
      Mure.Cluster.dot(cluster, {<<0::32*4>>, {:s, 32}, {2, 2}}, {<<0::32*4>>, {:s, 32}, {2, 2}})
    end

    assert_raise ArgumentError, ~r/\{m, k\} times \{k, n\}/, fn ->
      Mure.Cluster.dot(cluster, {<<0::32*6>>, {:f, 32}, {2, 3}}, {<<0::32*4>>, {:f, 32}, {2, 2}})
    end

    assert_raise ArgumentError, ~r/:hosts/, fn -> Mure.Cluster.start_link(hosts: [nil]) end
    assert_raise ArgumentError, fn -> Mure.Cluster.start_link(bogus: 1) end
  end

  test "no member: a clear error at once" do
    cluster =
      start_supervised!(
        {Mure.Cluster,
         hosts: ["127.0.0.1"], name_prefix: "nobody_#{System.unique_integer([:positive])}"}
      )

    f = Mure.jit(fn x -> Mure.Expr.exp(x) end)

    assert {:error, %ClusterError{reason: :no_members} = e} =
             Mure.Cluster.run(cluster, f, [{<<0::32*8>>, {:f, 32}, {8}}])

    assert Exception.message(e) =~ "start mure nodes"
    assert {:error, %ClusterError{reason: :timeout}} = Mure.Cluster.await_members(cluster, 1, 100)
    assert Mure.Cluster.format_status(Mure.Cluster.status(cluster)) =~ "no members"
  end

  test "a node epmd lists that refuses us is shown with the likely cause, and not asked at every round" do
    prefix = "mref#{System.unique_integer([:positive])}_"
    cookie = Path.join(System.tmp_dir!(), "#{prefix}cookie")
    File.write!(cookie, "not_the_cookie_of_this_beam")
    File.chmod!(cookie, 0o600)
    on_exit(fn -> File.rm(cookie) end)

    other =
      Reliability.launch_plain([
        "--name",
        "#{prefix}1@127.0.0.1",
        "--cookie-file",
        cookie,
        "--blis-threads",
        "1"
      ])

    on_exit(fn -> Reliability.stop_plain(other) end)
    node = :"#{prefix}1@127.0.0.1"

    cluster =
      start_supervised!(
        {Mure.Cluster, hosts: ["127.0.0.1"], name_prefix: prefix, discover_interval: 100}
      )

    assert wait_until(fn -> Mure.Cluster.status(cluster).refused != [] end, 20_000)
    assert [%{node: ^node, attempts: 1, reason: reason}] = Mure.Cluster.status(cluster).refused
    assert reason =~ "cookie"

    # Two more discovery rounds (each 100 ms apart): the node is left alone meanwhile, not
    # back in :joining.
    asked = fn -> hd(Mure.Cluster.status(cluster).hosts).asked_at end
    first = asked.()

    for _ <- 1..2 do
      seen = asked.()
      assert wait_until(fn -> DateTime.compare(asked.(), seen) == :gt end, 5_000)
    end

    assert DateTime.compare(asked.(), first) == :gt
    status = Mure.Cluster.status(cluster)
    assert status.members == []
    assert [%{node: ^node, attempts: 1}] = status.refused
    assert Mure.Cluster.format_status(status) =~ "could not join:\n  #{node}: epmd lists it"

    # Given the node's cookie (as the README shows), a cluster joins it; the cookie never shows.
    opts = [
      hosts: ["127.0.0.1"],
      name_prefix: prefix,
      connect_opts: [cookie: "not_the_cookie_of_this_beam"]
    ]

    refute inspect(Mure.Cluster.child_spec(opts), limit: :infinity) =~
             "not_the_cookie_of_this_beam"

    with_cookie = start_supervised!(Supervisor.child_spec({Mure.Cluster, opts}, id: :with_cookie))
    assert :ok = Mure.Cluster.await_members(with_cookie, 1, 30_000)
    assert [%{node: ^node}] = Mure.Cluster.members(with_cookie)
    refute inspect(:sys.get_state(with_cookie), limit: :infinity) =~ "not_the_cookie_of_this_beam"
  end

  test "the default prefix joins hand-started mure nodes, never a BEAM's private Port node" do
    # A Port-mode node registers with epmd like any node: discovery sees its name.
    conn = start_supervised!({Mure, blis_threads: 1})
    port_node = Mure.info(conn).node
    [port_name, _] = String.split(Atom.to_string(port_node), "@")
    {:ok, names} = :erl_epmd.names(~c"127.0.0.1")
    assert port_name in Enum.map(names, &List.to_string(elem(&1, 0)))

    own = :"mure_own#{System.unique_integer([:positive])}@127.0.0.1"
    plain = Reliability.launch_plain(["--name", Atom.to_string(own), "--blis-threads", "1"])
    on_exit(fn -> Reliability.stop_plain(plain) end)

    # Default :name_prefix ("mure"); this module is not async, so no other test's nodes run.
    cluster =
      start_supervised!(
        {Mure.Cluster, hosts: ["127.0.0.1"], discover_interval: 100, probe: false}
      )

    assert wait_until(
             fn -> own in Enum.map(Mure.Cluster.status(cluster).members, & &1.node) end,
             30_000
           )

    # Two more discovery rounds after the one that found `own`: the Port node is never tried.
    asked = fn -> hd(Mure.Cluster.status(cluster).hosts).asked_at end

    for _ <- 1..2 do
      seen = asked.()
      assert wait_until(fn -> DateTime.compare(asked.(), seen) == :gt end, 5_000)
    end

    status = Mure.Cluster.status(cluster)
    tried = Enum.map(status.members ++ status.refused ++ status.departed, & &1.node)
    refute port_node in tried
    assert port_name in hd(status.hosts).names
  end

  test "mix mure.cluster prints the members as a table" do
    {prefix, _nodes} = start_nodes(2)

    {out, status} =
      System.cmd(
        "mix",
        ["mure.cluster", "127.0.0.1", "--prefix", prefix, "--expect", "2", "--wait", "30000"],
        stderr_to_stdout: true,
        env: [{"MIX_ENV", "test"}]
      )

    assert status == 0, out
    assert out =~ "#{prefix}1@127.0.0.1"
    assert out =~ "#{prefix}2@127.0.0.1"
    assert out =~ "GFLOP/s"
  end

  defp resolve(%Mure.Cluster.Shared{} = s, conn), do: Mure.upload!(conn, s.data, s.type, s.shape)
  defp resolve(data, _conn), do: data

  describe "pieces" do
    test "shares follow the weights, to the row" do
      assert Job.apportion(10, [1.0, 1.0]) == [5, 5]
      assert Job.apportion(9, [2.0, 1.0]) == [6, 3]
      assert Job.apportion(10, [1.0, 1.0, 1.0]) |> Enum.sum() == 10
      assert Job.apportion(1000, [1.0, 0.5]) == [667, 333]
      assert Job.apportion(3, [1.0, 1.0, 1.0, 1.0]) |> Enum.sum() == 3
    end

    test "a row's time is set by the slower of link and compute" do
      plan = %{in_row: 4096, out_row: 4096, kind: :gemm, work_row: 2 * 1024 * 1024}
      fast_link = %{upload_bytes_s: 1.0e9, download_bytes_s: 1.0e9, gemm_flops_s: 1.0e10}
      slow_link = %{fast_link | upload_bytes_s: 1.0e6, download_bytes_s: 1.0e6}
      assert_in_delta Job.row_time(fast_link, plan), 2.097e-4, 1.0e-6
      assert_in_delta Job.row_time(slow_link, plan), 8.192e-3, 1.0e-6
    end
  end

  describe "combining partial results on the client" do
    test "floats: sums in double precision, specials as the node has them" do
      f32 = fn l -> for x <- l, into: <<>>, do: Combine.encode({:f, 32}, x) end

      assert Combine.combine(:sum, {:f, 32}, [f32.([1.0, 2.0]), f32.([3.0, 4.0])]) ==
               f32.([4.0, 6.0])

      assert Combine.combine(:sum, {:f, 32}, [f32.([:inf]), f32.([:neg_inf])]) == f32.([:nan])

      assert Combine.combine(:max, {:f, 32}, [f32.([1.0, :nan]), f32.([:inf, 2.0])]) ==
               f32.([:inf, :nan])

      assert Combine.combine(:min, {:f, 32}, [f32.([:neg_inf]), f32.([-3.0])]) == f32.([:neg_inf])
      assert Combine.combine(:product, {:f, 32}, [f32.([:inf]), f32.([0.0])]) == f32.([:nan])
      # Past f32's range: infinity, not an exception.
      assert Combine.combine(:sum, {:f, 32}, [f32.([3.0e38]), f32.([3.0e38])]) == f32.([:inf])

      assert Combine.decode(
               {:f, 64},
               Combine.combine(:sum, {:f, 64}, [
                 <<1.0e308::float-64-little>>,
                 <<1.0e308::float-64-little>>
               ])
             ) == [:inf]

      assert Combine.decode(
               {:f, 16},
               Combine.combine(:sum, {:f, 16}, [
                 Combine.encode({:f, 16}, 1.5),
                 Combine.encode({:f, 16}, 2.0)
               ])
             ) == [3.5]

      assert Combine.decode(
               {:bf, 16},
               Combine.combine(:max, {:bf, 16}, [
                 Combine.encode({:bf, 16}, 1.5),
                 Combine.encode({:bf, 16}, -2.0)
               ])
             ) == [1.5]
    end

    test "rounding to the output type: once, to nearest even, infinity only past half an ulp" do
      f32 = fn x -> Combine.decode({:f, 32}, Combine.encode({:f, 32}, x)) end
      assert f32.(3.4028235e38) == [3.4028234663852886e38]
      assert f32.(3.4028235677973366e38) == [:inf]
      assert f32.(-3.4028235677973366e38) == [:neg_inf]
      assert Combine.decode({:f, 16}, Combine.encode({:f, 16}, 65519.0)) == [65504.0]
      assert Combine.decode({:f, 16}, Combine.encode({:f, 16}, 65520.0)) == [:inf]
      # 1 + 2^-8 + 2^-30: f32 keeps 1 + 2^-8 (a bf16 tie, which would go down to even), but the
      # exact value is above the tie, so bf16 rounds up to 1 + 2^-7.
      assert Combine.decode(
               {:bf, 16},
               Combine.encode({:bf, 16}, 1 + :math.pow(2, -8) + :math.pow(2, -30))
             ) ==
               [1 + :math.pow(2, -7)]

      assert Combine.decode({:bf, 16}, Combine.encode({:bf, 16}, 1 + :math.pow(2, -8))) == [1.0]
    end

    test "integers wrap at their width, as on the node" do
      s8 = fn l -> for x <- l, into: <<>>, do: <<x::signed-8>> end
      assert Combine.combine(:sum, {:s, 8}, [s8.([100]), s8.([100])]) == s8.([-56])
      assert Combine.combine(:product, {:u, 8}, [<<16>>, <<32>>]) == <<0>>

      assert Combine.combine(:max, {:s, 64}, [<<-5::signed-64-little>>, <<3::signed-64-little>>]) ==
               <<3::signed-64-little>>
    end
  end
end
