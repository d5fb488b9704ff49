# bench/programs.exs — issue 5's figures: programs, fusion, the JIT and chunked transfers, each as
# a ratio against a baseline measured in the same run. Run by scripts/bench (after its other
# passes); standalone:
#   cd elixir_client && elixir --name b_$$@127.0.0.1 -S mix run ../bench/programs.exs -- [--quick] [--out FILE]
#
# Prints a markdown section and appends it to FILE when given. Exits non-zero when a measurement
# breaks (a wrong result, an error reply); never because a goal is not met.
alias Mure.Expr

{opts, _, _} = OptionParser.parse(System.argv() -- ["--"], strict: [quick: :boolean, out: :string])
quick = Keyword.get(opts, :quick, false)
reps = if quick, do: 3, else: 7
root = Path.expand("..", __DIR__)

median = fn xs -> Enum.sort(xs) |> Enum.at(div(length(xs), 2)) end
time_ms = fn f -> {us, v} = :timer.tc(f); {us / 1000, v} end
measure = fn f -> for _ <- 1..reps, do: elem(time_ms.(f), 0) end
fmt = fn x -> :erlang.float_to_binary(x * 1.0, decimals: 2) end
stats = fn xs -> "#{fmt.(median.(xs))} | #{fmt.(Enum.min(xs))} | #{fmt.(Enum.max(xs))}" end
met = fn ok -> if ok, do: "met", else: "**not met**" end

{:ok, conn} = Mure.start_link(memory_limit: 8 * 1024 * 1024 * 1024, chunk_size: 1024 * 1024)
hello = Mure.hello!(conn)
lines = ["## 7. Programs, fusion and the JIT (issue 5)", ""]

# --- 7a: a chain of 5 elementwise ops over 16 Mi f32: one program vs the same ops one by one ---
n = if quick, do: 4 * 1024 * 1024, else: 16 * 1024 * 1024
x = Mure.random_uniform!(conn, {n}, seed: 1, min: -1.0, max: 1.0)
y = Mure.random_uniform!(conn, {n}, seed: 2, min: -1.0, max: 1.0)
chain = Mure.jit(fn x, y -> x |> Expr.multiply(y) |> Expr.add(x) |> Expr.sigmoid() |> Expr.subtract(y) |> Expr.abs() end)
{:ok, warm} = Mure.run(chain, [x, y])
Mure.free(warm)

fused = measure.(fn -> {:ok, r} = Mure.run(chain, [x, y]); Mure.free(r) end)

one_by_one = fn ->
  t1 = Mure.binary!(:multiply, x, y)
  t2 = Mure.binary!(:add, t1, x)
  t3 = Mure.unary!(:sigmoid, t2)
  t4 = Mure.binary!(:subtract, t3, y)
  t5 = Mure.unary!(:abs, t4)
  Enum.each([t1, t2, t3, t4, t5], &Mure.free/1)
end

one_by_one.()
op_by_op = measure.(one_by_one)

# Same result both ways (fused on the OpenCL device, op by op wherever the node put each op).
{:ok, a} = Mure.run(chain, [x, y], outputs: :keep)
b1 = Mure.binary!(:multiply, x, y)
b2 = Mure.binary!(:add, b1, x)
b3 = Mure.unary!(:sigmoid, b2)
b4 = Mure.binary!(:subtract, b3, y)
b = Mure.unary!(:abs, b4)
d1 = Mure.binary!(:subtract, a, b)
d2 = Mure.unary!(:abs, d1)
diff = Mure.reduce!(:reduce_max, d2)
Enum.each([b1, b2, b3, b4, d1, d2], &Mure.free/1)
<<maxdiff::float-32-native>> = Mure.download!(diff)
if maxdiff > 1.0e-5, do: raise("fused and op-by-op results differ by #{maxdiff}")

speedup = median.(op_by_op) / median.(fused)

# A memory-bound chain of 5 ops (no transcendental function): its bandwidth against the triad.
arith = Mure.jit(fn x, y -> x |> Expr.multiply(y) |> Expr.add(x) |> Expr.subtract(y) |> Expr.max(y) |> Expr.abs() end)
{:ok, warm} = Mure.run(arith, [x, y])
Mure.free(warm)
fused_arith = measure.(fn -> {:ok, r} = Mure.run(arith, [x, y]); Mure.free(r) end)

# The STREAM-like triad measured now, by the in-process C++ baseline.
baseline = Path.join(root, "build/bench/mure_bench_baseline")
{triad_out, 0} = System.cmd(baseline, ["stream", "--n", "#{n}", "--threads", "1"], stderr_to_stdout: true)

triad_gbs =
  triad_out
  |> String.split("\n")
  |> Enum.find(&String.contains?(&1, "kernel=triad"))
  |> then(fn line ->
    [_, tn] = Regex.run(~r/ n=([0-9]+)/, line)
    [_, secs] = Regex.run(~r/secs=([0-9.,e-]+)/, line)
    best = secs |> String.split(",") |> Enum.map(&String.to_float/1) |> Enum.min()
    12.0 * String.to_integer(tn) / best / 1.0e9
  end)

fused_gbs = 12.0 * n / (median.(fused) / 1000) / 1.0e9
arith_gbs = 12.0 * n / (median.(fused_arith) / 1000) / 1.0e9

lines =
  lines ++
    [
      "Device: #{Enum.map_join(hello.devices, ", ", & &1.name)}. #{n} f32 elements; #{reps} runs; ms median | min | max.",
      "",
      "| what | ms median | min | max |",
      "|---|---|---|---|",
      "| `abs(sigmoid(x*y + x) - y)` as one program (fused into one generated kernel) | #{stats.(fused)} |",
      "| the same 5 ops sent one by one (5 round trips, 4 resident intermediates) | #{stats.(op_by_op)} |",
      "| `abs(max(x*y + x - y, y))` as one program (memory-bound: no exp) | #{stats.(fused_arith)} |",
      "",
      "| ratio | value | goal | |",
      "|---|---|---|---|",
      "| op-by-op time / program time | #{fmt.(speedup)} | >= 3 | #{met.(speedup >= 3)} |",
      "| triad (C++, 1 thread, best of 10, this run) | #{fmt.(triad_gbs)} GB/s | | |",
      "| sigmoid chain: effective bandwidth (12 B/element, whole round trip) | #{fmt.(fused_gbs)} GB/s | | |",
      "| sigmoid chain: triad / fused | #{fmt.(triad_gbs / fused_gbs)} | <= 1.5 | #{met.(triad_gbs / fused_gbs <= 1.5)} |",
      "| memory-bound chain: effective bandwidth | #{fmt.(arith_gbs)} GB/s | | |",
      "| memory-bound chain: triad / fused | #{fmt.(triad_gbs / arith_gbs)} | <= 1.5 | #{met.(triad_gbs / arith_gbs <= 1.5)} |",
      "| max difference fused vs op by op | #{:erlang.float_to_binary(maxdiff, decimals: 8)} | | |",
      ""
    ]

Enum.each([x, y, a, b, diff], &Mure.free/1)

# --- 7b: a 2-layer MLP forward pass: one program vs op by op ---
{batch, din, hidden, dout} = if quick, do: {64, 256, 128, 10}, else: {256, 784, 512, 10}
xm = Mure.random_uniform!(conn, {batch, din}, seed: 3)
w1 = Mure.random_normal!(conn, {din, hidden}, seed: 4, std: 0.05)
b1 = Mure.random_normal!(conn, {hidden}, seed: 5, std: 0.05)
w2 = Mure.random_normal!(conn, {hidden, dout}, seed: 6, std: 0.05)
b2 = Mure.random_normal!(conn, {dout}, seed: 7, std: 0.05)

mlp =
  Mure.jit(fn x, w1, b1, w2, b2 ->
    x |> Expr.dot(w1) |> Expr.add(b1) |> Expr.sigmoid() |> Expr.dot(w2) |> Expr.add(b2) |> Expr.sigmoid()
  end)

{:ok, r} = Mure.run(mlp, [xm, w1, b1, w2, b2])
Mure.free(r)
mlp_prog = measure.(fn -> {:ok, r} = Mure.run(mlp, [xm, w1, b1, w2, b2]); Mure.free(r) end)

mlp_eager = fn ->
  h = Mure.dot!(xm, w1)
  h2 = Mure.binary!(:add, h, b1)
  h3 = Mure.unary!(:sigmoid, h2)
  o = Mure.dot!(h3, w2)
  o2 = Mure.binary!(:add, o, b2)
  o3 = Mure.unary!(:sigmoid, o2)
  Enum.each([h, h2, h3, o, o2, o3], &Mure.free/1)
end

mlp_eager.()
mlp_ops = measure.(mlp_eager)

lines =
  lines ++
    [
      "2-layer MLP forward (#{batch}×#{din} → #{hidden} → #{dout}, f32, dot + add + sigmoid twice):",
      "",
      "| what | round trips | ms median | min | max |",
      "|---|---|---|---|---|",
      "| one program (`Mure.jit`) | 1 | #{stats.(mlp_prog)} |",
      "| op by op | 6 | #{stats.(mlp_ops)} |",
      "| speedup | | #{fmt.(median.(mlp_ops) / median.(mlp_prog))}× | | |",
      ""
    ]

Enum.each([xm, w1, b1, w2, b2], &Mure.free/1)

# --- 7c: a 256 MiB upload in chunks while small requests run ---
big = if quick, do: 64 * 1024 * 1024, else: 256 * 1024 * 1024
data = :binary.copy(<<1, 2, 3, 4>>, div(big, 4))
probe = Mure.upload!(conn, <<0::32>>, {:u, 8}, {4})
parent = self()

pinger =
  spawn_link(fn ->
    loop = fn loop, acc ->
      receive do
        :stop -> send(parent, {:latencies, acc})
      after
        0 ->
          {ms, {:ok, _}} = time_ms.(fn -> Mure.download(probe) end)
          loop.(loop, [ms | acc])
      end
    end

    loop.(loop, [])
  end)

Process.sleep(20)
{upload_ms, {:ok, t}} = time_ms.(fn -> Mure.upload(conn, data, {:u, 8}, {big}, timeout: 120_000) end)
send(pinger, :stop)
lat = receive do {:latencies, l} -> Enum.sort(l) end
p99 = Enum.at(lat, min(length(lat) - 1, trunc(length(lat) * 0.99)))
Mure.free(t)
Mure.free(probe)

lines =
  lines ++
    [
      "#{div(big, 1024 * 1024)} MiB upload in 1 MiB chunks (4 in flight): #{fmt.(upload_ms)} ms " <>
        "(#{fmt.(big / 1024 / 1024 / (upload_ms / 1000))} MiB/s); meanwhile #{length(lat)} small requests " <>
        "(a 4-byte download each), latency ms: median #{fmt.(median.(lat))}, p99 #{fmt.(p99)}, max #{fmt.(List.last(lat))}.",
      "",
      "| ratio | value | goal | |",
      "|---|---|---|---|",
      "| p99 latency of small requests during the upload | #{fmt.(p99)} ms | < 10 ms | #{met.(p99 < 10)} |",
      ""
    ]

stats_now = Mure.stats!(conn)
k = stats_now.kernels

lines =
  lines ++
    [
      "JIT kernels this run: #{k.fused_compiled} fused kernels compiled, #{k.fused_disk_hits} loaded from the disk cache " <>
        "(#{fmt.(k.fused_compile_ms)} ms in all); op kernels compiled #{k.compiled}, cache hits #{k.cache_hits}.",
      ""
    ]

text = Enum.join(lines, "\n")
IO.puts(text)
if path = opts[:out], do: File.write!(path, "\n" <> text, [:append])
Mure.stop(conn)
