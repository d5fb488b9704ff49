# The soak behind scripts/soak: many processes drive mixed ops (upload, matmul, add,
# multiply, download, free) against one real mure_node for a bounded time, checking every
# result. Prints the rate, the errors and the node's resident memory over time; exits
# non-zero when any request failed or returned a wrong result, when tensors are left behind,
# or when the node's RSS at the end is not within --tolerance (default 10%) of where it
# settled (the mean RSS over 20%..30% of the run).
#
# Run through scripts/soak (it starts epmd and finds the client's compiled code).

defmodule Soak do
  @switches [
    minutes: :float,
    workers: :integer,
    node_bin: :string,
    summary: :string,
    interval_ms: :integer,
    tolerance: :float,
    max_dim: :integer
  ]

  def main(argv) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches)

    if rest != [] or invalid != [] do
      IO.puts(:stderr, "soak: unexpected arguments #{inspect(rest ++ invalid)}")
      System.halt(2)
    end

    minutes = Keyword.get(opts, :minutes, 1.0)
    workers = Keyword.get(opts, :workers, 8)
    interval = Keyword.get(opts, :interval_ms, 1_000)
    tolerance = Keyword.get(opts, :tolerance, 0.10)
    max_dim = Keyword.get(opts, :max_dim, 96)
    duration_ms = round(minutes * 60_000)

    node_name = :"soak_#{System.pid()}@127.0.0.1"

    case Node.start(node_name, :longnames) do
      {:ok, _} -> :ok
      {:error, reason} -> fail("cannot start distribution (is epmd running?): #{inspect(reason)}")
    end

    start_opts =
      [memory_limit: 1024 * 1024 * 1024, timeout: 30_000, log_level: :warn]
      |> then(fn o -> if bin = opts[:node_bin], do: Keyword.put(o, :executable, bin), else: o end)

    {:ok, conn} = Mure.start_link(start_opts)
    %{os_pid: os_pid, node: node} = Mure.info(conn)

    IO.puts(
      "soak: #{workers} workers for #{Float.round(minutes * 60, 1)} s against #{node} (os pid #{os_pid}); " <>
        "matrices up to #{max_dim}x#{max_dim} f32"
    )

    counters = :counters.new(2, [:write_concurrency])
    deadline = System.monotonic_time(:millisecond) + duration_ms
    parent = self()

    pids =
      for w <- 1..workers do
        spawn_link(fn ->
          :rand.seed(:exsss, {w, 42, System.unique_integer([:positive])})
          worker_loop(conn, counters, deadline, max_dim)
          send(parent, {:done, w})
        end)
      end

    t0 = System.monotonic_time(:millisecond)
    samples = sample(conn, os_pid, counters, t0, deadline, interval, 0, [])

    for w <- 1..length(pids) do
      receive do
        {:done, ^w} -> :ok
      after
        60_000 -> fail("worker #{w} did not finish")
      end
    end

    elapsed = System.monotonic_time(:millisecond) - t0
    ops = :counters.get(counters, 1)
    errors = :counters.get(counters, 2)
    final = Mure.stats!(conn)
    rss_end_samples = samples |> Enum.take(-3) |> Enum.map(& &1.rss_kb)
    rss_end = div(Enum.sum(rss_end_samples), length(rss_end_samples))

    settled_window =
      Enum.filter(samples, fn s -> s.t >= 0.2 * duration_ms and s.t <= 0.3 * duration_ms end)

    settled_window = if settled_window == [], do: Enum.take(samples, 1), else: settled_window
    settled = div(Enum.sum(Enum.map(settled_window, & &1.rss_kb)), length(settled_window))
    drift = (rss_end - settled) / settled
    peak = samples |> Enum.map(& &1.rss_kb) |> Enum.max()

    IO.puts("""
    soak: #{ops} requests in #{Float.round(elapsed / 1000, 1)} s (#{round(ops * 1000 / max(elapsed, 1))}/s), #{errors} errors
    soak: node RSS settled at #{mib(settled)} MiB (20-30% of the run), ended at #{mib(rss_end)} MiB (#{pct(drift)}), peak #{mib(peak)} MiB
    soak: after the run the node holds #{final.tensors} tensors, #{final.memory_used_bytes} bytes in use, #{final.memory_cached_bytes} bytes cached
    """)

    if path = opts[:summary] do
      File.write!(
        path,
        "requests #{ops} soak requests (#{round(ops * 1000 / max(elapsed, 1))}/s)\n" <>
          "lost #{errors} soak requests that failed\n" <>
          "soak_rss #{settled} #{rss_end} settled/end KiB (#{pct(drift)})\n",
        [:append]
      )
    end

    Mure.stop(conn)

    problems =
      [
        errors > 0 && "#{errors} requests failed or returned wrong results",
        final.tensors != 0 && "#{final.tensors} tensors left on the node",
        final.memory_used_bytes != 0 && "#{final.memory_used_bytes} bytes left in use",
        abs(drift) > tolerance && "RSS drifted #{pct(drift)} from where it settled (tolerance #{pct(tolerance)})",
        ops == 0 && "no request completed"
      ]
      |> Enum.filter(& &1)

    if problems == [] do
      IO.puts("soak: PASS")
    else
      fail(Enum.join(problems, "; "))
    end
  end

  defp fail(message) do
    IO.puts(:stderr, "soak: FAIL: #{message}")
    System.halt(1)
  end

  defp mib(kb), do: Float.round(kb / 1024, 1)
  defp pct(x), do: "#{if x >= 0, do: "+", else: ""}#{Float.round(x * 100, 1)}%"

  # One round: two matrices filled with small integers (so every result is exact in f32),
  # their product on BLIS, its sum with itself and its square on OpenCL, a byte tensor
  # round trip; every result downloaded and checked, every tensor freed.
  defp worker_loop(conn, counters, deadline, max_dim) do
    if System.monotonic_time(:millisecond) < deadline do
      case round_trip(conn, max_dim) do
        {:ok, n} ->
          :counters.add(counters, 1, n)

        {:error, n, why} ->
          :counters.add(counters, 1, n)
          :counters.add(counters, 2, 1)
          IO.puts(:stderr, "soak: error: #{inspect(why, limit: 10)}")
      end

      worker_loop(conn, counters, deadline, max_dim)
    end
  end

  defp round_trip(conn, max_dim) do
    m = :rand.uniform(max_dim)
    k = :rand.uniform(max_dim)
    n = :rand.uniform(max_dim)
    x = :rand.uniform(4)
    y = :rand.uniform(4)
    bytes = :rand.bytes(:rand.uniform(4096))
    a_bin = :binary.copy(<<x * 1.0::float-32-native>>, m * k)
    b_bin = :binary.copy(<<y * 1.0::float-32-native>>, k * n)
    c_val = k * x * y * 1.0

    steps = [
      {:upload_a, fn _ -> Mure.upload(conn, a_bin, {:f, 32}, {m, k}) end},
      {:upload_b, fn _ -> Mure.upload(conn, b_bin, {:f, 32}, {k, n}) end},
      {:matmul, fn %{upload_a: a, upload_b: b} -> Mure.matmul(a, b) end},
      {:add, fn %{matmul: c} -> Mure.add(c, c) end},
      {:multiply, fn %{matmul: c} -> Mure.multiply(c, c) end},
      {:download_add, fn %{add: d} -> Mure.download(d) end},
      {:download_multiply, fn %{multiply: e} -> Mure.download(e) end},
      {:upload_u8, fn _ -> Mure.upload(conn, bytes, {:u, 8}, {byte_size(bytes)}) end},
      {:download_u8, fn %{upload_u8: t} -> Mure.download(t) end}
    ]

    result =
      Enum.reduce_while(steps, {:ok, %{}, 0}, fn {name, fun}, {:ok, acc, count} ->
        case fun.(acc) do
          {:ok, value} -> {:cont, {:ok, Map.put(acc, name, value), count + 1}}
          {:error, error} -> {:halt, {:error, acc, count + 1, {name, error}}}
        end
      end)

    {acc, count, failure} =
      case result do
        {:ok, acc, count} ->
          expect_add = :binary.copy(<<2 * c_val::float-32-native>>, m * n)
          expect_mul = :binary.copy(<<c_val * c_val::float-32-native>>, m * n)

          failure =
            cond do
              acc.download_add != expect_add -> {:wrong_result, :add, {m, k, n, x, y}}
              acc.download_multiply != expect_mul -> {:wrong_result, :multiply, {m, k, n, x, y}}
              acc.download_u8 != bytes -> {:wrong_result, :u8_round_trip}
              true -> nil
            end

          {acc, count, failure}

        {:error, acc, count, why} ->
          {acc, count, why}
      end

    frees =
      for key <- [:upload_a, :upload_b, :matmul, :add, :multiply, :upload_u8], t = acc[key], t != nil do
        Mure.free(t)
      end

    count = count + length(frees)
    bad_free = Enum.find(frees, &(&1 != :ok))

    cond do
      failure -> {:error, count, failure}
      bad_free -> {:error, count, {:free, bad_free}}
      true -> {:ok, count}
    end
  end

  defp sample(conn, os_pid, counters, t0, deadline, interval, last_ops, acc) do
    now = System.monotonic_time(:millisecond)

    if now >= deadline do
      Enum.reverse(acc)
    else
      Process.sleep(min(interval, max(deadline - now, 1)))
      t = System.monotonic_time(:millisecond) - t0
      ops = :counters.get(counters, 1)
      errors = :counters.get(counters, 2)
      stats = Mure.stats!(conn)
      rss = rss_kb(os_pid)

      IO.puts(
        "soak: t=#{pad(Float.round(t / 1000, 1), 6)}s  rate=#{pad(round((ops - last_ops) * 1000 / interval), 6)}/s  " <>
          "requests=#{pad(ops, 8)}  errors=#{errors}  rss=#{pad(mib(rss), 7)} MiB  " <>
          "tensors=#{pad(stats.tensors, 4)}  used=#{pad(mib(div(stats.memory_used_bytes, 1024)), 6)} MiB  queued=#{stats.queued}"
      )

      sample(conn, os_pid, counters, t0, deadline, interval, ops, [%{t: t, rss_kb: rss} | acc])
    end
  end

  defp pad(v, n), do: v |> to_string() |> String.pad_leading(n)

  defp rss_kb(os_pid) do
    [_, kb] = Regex.run(~r/^VmRSS:\s+(\d+)\s+kB/m, File.read!("/proc/#{os_pid}/status"))
    String.to_integer(kb)
  end
end

Soak.main(System.argv())
