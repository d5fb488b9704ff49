# The cluster part of the demo (run by scripts/demo once scripts/cluster has built three hosts in
# network namespaces: 10.77.0.11-13, each its own epmd and mure node; host 1 on a quarter of a CPU,
# hosts 2 and 3 on half of one; host 3 on a 50 Mbit/s link). Finds the nodes through epmd, shows
# what it measured, multiplies a matrix split across them, runs a program and a reduction, then
# kills a member in the middle of a job and shows the job still comes out right.
defmodule MureClusterDemo do
  alias Mure.Expr

  @hosts ["10.77.0.11", "10.77.0.12", "10.77.0.13"]

  def main do
    # The namespaces stand for separate hosts: tensors go over their (shaped) links, not
    # through this machine's shared memory.
    {:ok, cluster} =
      Mure.Cluster.start_link(
        hosts: @hosts,
        discover_interval: 500,
        connect_opts: [shared_memory: false]
      )
    :ok = Mure.Cluster.await_members(cluster, 3, 60_000)
    IO.puts("\nmembers found through epmd on #{Enum.join(@hosts, ", ")}, as measured on joining:\n")
    IO.puts(Mure.Cluster.format_status(Mure.Cluster.status(cluster)))

    {:ok, ref} = Mure.start_link([])
    {m, k, n} = {4000, 1024, 1024}
    a = {matrix(m, k, 3), {:f, 32}, {m, k}}
    b = {matrix(k, n, 5), {:f, 32}, {k, n}}
    expected = Mure.run!(Mure.jit(&Expr.dot/2), [a, b], outputs: :return, conn: ref, timeout: 60_000)

    {:ok, shared} = Mure.Cluster.share(cluster, b)
    check(Mure.Cluster.dot(cluster, a, shared), expected, "warm-up dot")
    {us, result} = :timer.tc(fn -> Mure.Cluster.dot(cluster, a, shared) end)
    check(result, expected, "dot")
    IO.puts("dot #{m}x#{k} · #{k}x#{n} f32 split by rows over 3 hosts: #{ms(us)} " <>
              "(#{Float.round(2 * m * k * n / us / 1000, 1)} GFLOP/s), same bits as one node")

    x = {matrix(4096, 512, 7), {:f, 32}, {4096, 512}}
    softsign = Mure.jit(fn x -> x |> Expr.abs() |> Expr.add(1.0) |> then(&Expr.divide(x, &1)) end)
    want = Mure.run!(softsign, [x], outputs: :return, conn: ref)
    {us, result} = :timer.tc(fn -> Mure.Cluster.run(cluster, softsign, [x]) end)
    check(result, want, "program")
    IO.puts("program x / (1 + |x|) on 4096x512 f32, pieces joined in order: #{ms(us)}")

    total = Mure.jit(fn x -> Expr.sum(x, axes: [0]) end)
    want = Mure.run!(total, [x], outputs: :return, conn: ref)
    check(Mure.Cluster.run(cluster, total, [x]), want, "column sums")
    IO.puts("column sums over 4096 rows, partial sums combined on the client: same bits as one node")

    # A member dies mid-job.
    job = Task.async(fn -> :timer.tc(fn -> Mure.Cluster.dot(cluster, a, shared, piece_rows: 25) end) end)
    Process.sleep(100)
    {_, 0} = System.cmd(Path.expand("cluster", __DIR__), ["kill", "2"])
    {us, result} = Task.await(job, 120_000)
    check(result, expected, "dot with a member killed")
    jobs = Mure.Cluster.status(cluster).jobs

    IO.puts("host 2's node killed with SIGKILL mid-job: the dot still came out right in #{ms(us)} " <>
              "(#{jobs.pieces_rerun} pieces re-run on the others)\n")

    IO.puts(Mure.Cluster.format_status(Mure.Cluster.status(cluster)))
    Mure.Cluster.stop(cluster)
    Mure.stop(ref)
  end

  defp check({:ok, got}, want, _what) when got == want, do: :ok
  defp check(other, _want, what), do: fail("#{what}: #{inspect(other, limit: 5)}")

  # Small integers in f32: products and sums exact in any order, so results compare bit for bit.
  defp matrix(rows, cols, seed) do
    pattern = for i <- 0..96, into: <<>>, do: <<rem(i * seed, 7) - 3.0::float-32-native>>
    :binary.part(:binary.copy(pattern, div(rows * cols, 97) + 1), 0, rows * cols * 4)
  end

  defp ms(us), do: "#{Float.round(us / 1000, 1)} ms"

  defp fail(message) do
    IO.puts(:stderr, "demo: FAILED: #{message}")
    System.halt(1)
  end
end

try do
  MureClusterDemo.main()
rescue
  error ->
    IO.puts(:stderr, "demo: FAILED: " <> Exception.format(:error, error, __STACKTRACE__))
    System.halt(1)
end
