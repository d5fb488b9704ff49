defmodule Mure.NxServingTest do
  # Nx.Serving on defn functions compiled by Mure: batching of concurrent requests, and
  # partitions over the members of a real Mure.Cluster (plain nodes found through epmd) and
  # over a node's devices.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  alias Mure.Reliability

  defmodule Model do
    import Nx.Defn

    # A dense layer and a softmax, its weights made in the function.
    defn predict(x) do
      w = Nx.iota({4, 3}, type: :f32) |> Nx.subtract(5.0) |> Nx.divide(7.0)
      logits = x |> Nx.dot(w) |> Nx.add(Nx.tensor([0.1, -0.2, 0.3], type: :f32))
      e = Nx.exp(logits - Nx.reduce_max(logits, axes: [1], keep_axes: true))
      e / Nx.sum(e, axes: [1], keep_axes: true)
    end
  end

  defp input(i), do: Nx.tensor([i, -i / 2, i / 3, 1.0 - i], type: :f32, backend: Nx.BinaryBackend)

  defp reference(x) do
    batch = Nx.stack([x])
    Nx.Defn.jit(&Model.predict/1, compiler: Nx.Defn.Evaluator).(batch)
  end

  # A serving whose batch function returns its results as Nx.BinaryBackend tensors (the
  # node's copies are freed as they are downloaded).
  defp serving(defn_opts) do
    Nx.Serving.new(
      fn opts ->
        predict = Nx.Defn.jit(&Model.predict/1, opts)
        fn batch -> batch |> predict.() |> Nx.backend_transfer(Nx.BinaryBackend) end
      end,
      [compiler: Mure] ++ defn_opts
    )
  end

  # `count` client processes, each asking for one row at once; their results, in order.
  defp concurrent_requests(name, count) do
    1..count
    |> Enum.map(fn i ->
      Task.async(fn -> {i, Nx.Serving.batched_run(name, Nx.Batch.stack([input(i)]))} end)
    end)
    |> Task.await_many(60_000)
  end

  defp check_results(results) do
    for {i, result} <- results do
      assert result.shape == {1, 3}
      result = Nx.backend_copy(result, Nx.BinaryBackend)
      assert Nx.all_close(result, reference(input(i)), atol: 1.0e-6) == Nx.tensor(1, type: :u8)
    end
  end

  @doc false
  def program_sent(_event, _measurements, %{conn: conn}, table),
    do: :ets.insert(table, {GenServer.whereis(conn) || conn})

  # Programs sent by Mure.Compiler, per connection, while `fun` runs.
  defp count_programs(fun) do
    table = :ets.new(:programs, [:public, :duplicate_bag])
    id = "serving-programs-#{System.unique_integer([:positive])}"

    :telemetry.attach(id, [:mure, :compiler, :program], &__MODULE__.program_sent/4, table)

    try do
      result = fun.()
      counts = table |> :ets.tab2list() |> Enum.frequencies_by(&elem(&1, 0))
      {result, counts}
    after
      :telemetry.detach(id)
    end
  end

  test "a serving batches concurrent requests into one program on the node" do
    conn = start_supervised!({Mure, []})
    name = :"serving_#{System.unique_integer([:positive])}"

    start_supervised!(
      {Nx.Serving,
       serving: serving(connection: conn), name: name, batch_size: 8, batch_timeout: 60_000}
    )

    # Eight requests fill one batch of 8: one program for all of them.
    {results, counts} = count_programs(fn -> concurrent_requests(name, 8) end)
    check_results(results)
    assert counts == %{GenServer.whereis(conn) => 1}

    # The serving's process keeps nothing on the node.
    assert {:ok, %{connection_tensors: 0}} = Mure.stats(conn)

    # Nx.Serving.jit/2 too (its batch results stay on the node, the serving's tensors; the
    # clients' slices of them are theirs).
    jit_serving = Nx.Serving.jit(&Model.predict/1, compiler: Mure, connection: conn)
    jit_name = :"serving_#{System.unique_integer([:positive])}"

    start_supervised!(
      {Nx.Serving, serving: jit_serving, name: jit_name, batch_size: 4, batch_timeout: 60_000},
      id: :jit_serving
    )

    {results, counts} = count_programs(fn -> concurrent_requests(jit_name, 4) end)
    assert Enum.all?(results, fn {_, r} -> match?(%Mure.Backend{}, r.data) end)
    check_results(results)
    assert counts == %{GenServer.whereis(conn) => 1}
  end

  describe "partitions: true" do
    setup do
      prefix = "mserv#{System.unique_integer([:positive])}_"

      nodes =
        for i <- 1..2 do
          Reliability.launch_plain(["--name", "#{prefix}#{i}@127.0.0.1", "--blis-threads", "1"])
        end

      on_exit(fn -> Enum.each(nodes, &Reliability.stop_plain/1) end)

      cluster =
        start_supervised!(
          {Mure.Cluster,
           hosts: ["127.0.0.1"], name_prefix: prefix, discover_interval: 200, probe: false}
        )

      assert :ok = Mure.Cluster.await_members(cluster, 2, 30_000)
      %{cluster: cluster}
    end

    test "spreads batches over the cluster's members: each node serves", %{cluster: cluster} do
      members = Mure.Cluster.members(cluster)
      conns = members |> Enum.sort_by(& &1.node) |> Enum.map(& &1.conn)

      assert partitions(compiler: Mure, cluster: cluster) ==
               Enum.map(
                 conns,
                 &[
                   compiler: Mure,
                   connection: &1,
                   hooks: %{},
                   max_iterations: 10_000_000,
                   timeout: 60_000
                 ]
               )

      before = Map.new(conns, &{&1, requests(&1)})
      name = :"serving_#{System.unique_integer([:positive])}"

      start_supervised!(
        {Nx.Serving,
         serving: serving(cluster: cluster),
         name: name,
         partitions: true,
         batch_size: 2,
         batch_timeout: 60_000}
      )

      # Four batches of two: the first goes to partition 1, the second (while or after the
      # first runs: a partition that is done goes to the back of the queue) to partition 2.
      {results, counts} = count_programs(fn -> concurrent_requests(name, 8) end)
      check_results(results)
      assert Enum.sum(Map.values(counts)) == 4

      assert Map.keys(counts) |> Enum.sort() ==
               conns |> Enum.map(&GenServer.whereis/1) |> Enum.sort()

      # Each node counted the requests: its programs, their downloads, and this stats call.
      for conn <- conns do
        served = Map.fetch!(counts, GenServer.whereis(conn))
        assert requests(conn) - before[conn] >= 2 * served + 1
      end
    end
  end

  # The partitions' options, each sorted by key.
  defp partitions(opts),
    do: opts |> Mure.Compiler.__partitions_options__() |> Enum.map(&Enum.sort/1)

  defp requests(conn) do
    {:ok, %{requests: n}} = Mure.stats(conn)
    n
  end

  # Nx's own serving_test.exs (Nx 0.7.2, vendored) with compiler: Mure as the global default
  # compiler, in a BEAM of its own (test/support/nx_defn_suite.exs). Its :distributed tests
  # are excluded (Nx's peer nodes); the tests that fail are those that assert the exact
  # options their serving's init gets, `[[batch_keys: [:default]]]`: a global default
  # compiler adds its options there (compiler:, connection:), whichever it is.
  @tag timeout: 300_000
  test "Nx's own serving tests pass with compiler: Mure, but for the init options they assert" do
    script = Path.expand("support/nx_defn_suite.exs", __DIR__)

    code_path =
      Path.wildcard(Path.join(Mix.Project.build_path(), "lib/*/ebin"))
      |> Enum.flat_map(&["-pa", &1])

    vendor = Mix.Project.deps_paths()[:nx] |> Path.dirname()
    assert File.regular?(Path.join(vendor, "nx/test/nx/serving_test.exs"))

    {output, _status} =
      System.cmd(
        "timeout",
        ["240", System.find_executable("elixir")] ++ code_path ++ [script, "serving_test"],
        stderr_to_stdout: true,
        env: [{"MURE_VENDOR", vendor}, {"MIX_ENV", "test"}]
      )

    line = Regex.run(~r/defn tests on Mure \(serving_test\): (\d+) of (\d+) passed/, output)
    assert line, "no count from the serving suite:\n#{String.slice(output, -8000, 8000)}"
    [text, passed, total] = line
    IO.puts("\nNx's #{text}")

    failed = Regex.scan(~r/^\s+code: (.*)$/m, output) |> Enum.map(&List.last/1)
    assert length(failed) == String.to_integer(total) - String.to_integer(passed)

    for code <- failed do
      assert code =~
               ~r/^assert_received \{:init, :(inline|process), \[\[batch_keys: \[:default\]/,
             "a serving test failed otherwise than on its init options:\n" <>
               String.slice(output, -20000, 20000)
    end

    assert String.to_integer(passed) >= 37
  end

  describe "partitions of one node" do
    test "one per device where the node has a CPU and an OpenCL device" do
      conn = start_supervised!({Mure, timeout: 60_000}, id: :both)
      {:ok, devices} = Mure.devices(conn)
      ids = devices |> Enum.map(& &1.id) |> Enum.sort()
      parts = Mure.Compiler.__partitions_options__(compiler: Mure, connection: conn)

      if ids == [:blis, :opencl] do
        assert Enum.map(parts, & &1[:device]) == [:cpu, :opencl]
        assert Enum.all?(parts, &(&1[:connection] == conn and &1[:compiler] == Mure))
      else
        flunk("the node has no OpenCL device here (#{inspect(ids)}): PoCL is expected")
      end

      # A serving on them: batches run on both devices (Nx.Serving.jit/2: the results are
      # the partition's tensors, marked with its device; the clients slice them on the node,
      # an OpenCL kernel built the first time: the connection's timeout allows for that).
      name = :"serving_#{System.unique_integer([:positive])}"

      start_supervised!(
        {Nx.Serving,
         serving: Nx.Serving.jit(&Model.predict/1, compiler: Mure, connection: conn),
         name: name,
         partitions: true,
         batch_size: 2,
         batch_timeout: 60_000}
      )

      results = concurrent_requests(name, 8)
      check_results(results)

      assert results |> Enum.map(fn {_, r} -> r.data.device end) |> Enum.uniq() |> Enum.sort() ==
               [:cpu, :opencl]

      # An explicit device: one partition.
      assert [
               [
                 compiler: Mure,
                 connection: ^conn,
                 device: :cpu,
                 hooks: %{},
                 max_iterations: 10_000_000,
                 timeout: 60_000
               ]
             ] = partitions(compiler: Mure, connection: conn, device: :cpu)

      blis_only = start_supervised!({Mure, devices: [:blis]}, id: :blis)

      assert [
               [
                 compiler: Mure,
                 connection: ^blis_only,
                 hooks: %{},
                 max_iterations: 10_000_000,
                 timeout: 60_000
               ]
             ] = partitions(compiler: Mure, connection: blis_only)

      # Connections named: one each; a call without partitions runs on the first.
      assert [
               [connection: ^conn, hooks: _, max_iterations: _, timeout: _],
               [connection: ^blis_only] ++ _
             ] = partitions(connections: [conn, blis_only])

      # max_concurrency: partitions per connection and device, as Nx.Defn.Evaluator's.
      assert [[connection: ^blis_only] ++ _ = p, p] =
               partitions(connections: [blis_only], max_concurrency: 2)

      f = Nx.Defn.jit(&Model.predict/1, compiler: Mure, connections: [blis_only, conn])
      x = Nx.stack([input(3)])
      {result, counts} = count_programs(fn -> Nx.backend_transfer(f.(x), Nx.BinaryBackend) end)
      assert counts == %{GenServer.whereis(blis_only) => 1}
      assert Nx.all_close(result, reference(input(3)), atol: 1.0e-6) == Nx.tensor(1, type: :u8)
    end

    test "bad partition options raise before anything starts" do
      assert_raise ArgumentError, ~r/:connections to be a non-empty list/, fn ->
        Mure.Compiler.__partitions_options__(compiler: Mure, connections: [])
      end

      assert_raise ArgumentError, ~r/:max_concurrency to be a positive integer, got: 0/, fn ->
        Mure.Compiler.__partitions_options__(max_concurrency: 0)
      end

      assert_raise ArgumentError, ~r/:cluster to be a Mure.Cluster/, fn ->
        Mure.Compiler.__partitions_options__(cluster: "nope")
      end

      assert_raise ArgumentError, ~r/unknown keys \[:partitions\]/, fn ->
        Mure.Compiler.__partitions_options__(partitions: 2)
      end

      {:ok, empty} = Mure.Cluster.start_link(hosts: ["127.0.0.1"], name_prefix: "nobody_here")

      assert_raise ArgumentError, ~r/has no ready member.*await_members/, fn ->
        Mure.Compiler.__partitions_options__(compiler: Mure, cluster: empty)
      end

      Mure.Cluster.stop(empty)

      assert_raise ArgumentError, ~r/the cluster #PID<.*> is not running/, fn ->
        Mure.Compiler.__partitions_options__(compiler: Mure, cluster: empty)
      end
    end
  end
end
