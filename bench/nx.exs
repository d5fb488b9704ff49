# bench/nx.exs — issue 13's figures: the same plain Nx code on Mure.Backend, on Nx.BinaryBackend
# (what an Nx user has without EXLA) and in NumPy, all in one run: a dense matmul, a conv2d, a
# softmax and an FFT. Run by scripts/bench after its other passes, which passes the default pass's
# term file (--limits) so that the FMA peak and the triad are the ones measured in this run.
# Standalone (then it measures the peak and the triad itself with build/bench/mure_bench_baseline):
#   cd elixir_client && MIX_ENV=bench elixir --name b_$$@127.0.0.1 -S mix run ../bench/nx.exs -- \
#     [--quick] [--out FILE] [--limits DEFAULT_PASS_TERM] [--baseline PATH_OF_mure_bench_baseline]
#
# Prints a markdown section (appended to FILE when given). Exits non-zero when a measurement
# breaks (a wrong result, an error reply, NumPy missing); never because of a figure. Method: the
# section's text and bench/README.md (same input bytes for all; per-unit ratios across sizes).
import Bitwise

defmodule Bench.NxSection.NumPy do
  @moduledoc false
  # NumPy through /usr/bin/python3: `gen` writes the inputs, `time` times each op on arrays in
  # memory (compute) and from input bytes to result bytes (e2e), `check` compares a result file
  # of Mure.Backend with a float64 reference. No SciPy on these machines: the conv is im2col
  # (strided view + one copy) and one matmul, as the node does it.
  @script ~S"""
  import sys, os, time
  import numpy as np
  def blas():
      libs = [l.split()[-1] for l in open('/proc/self/maps') if any(k in l for k in ('blas', 'blis', 'mkl'))]
      return sorted(set(libs))[0] if libs else 'none'
  def conv(x, k):
      n, c, h, w = x.shape; o, _, kh, kw = k.shape
      xp = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
      s = xp.strides
      cols = np.lib.stride_tricks.as_strided(xp, (c, kh, kw, n, h, w), (s[1], s[2], s[3], s[0], s[2], s[3]))
      out = k.reshape(o, c * kh * kw) @ cols.reshape(c * kh * kw, n * h * w)
      return np.ascontiguousarray(out.reshape(o, n, h, w).transpose(1, 0, 2, 3))
  def softmax(x):
      e = np.exp(x - x.max())
      return e / e.sum()
  OPS = {'matmul': lambda a, b: a @ b, 'conv': conv, 'softmax': softmax, 'fft': np.fft.fft}
  cmd, d = sys.argv[1], sys.argv[2]
  def path(name): return os.path.join(d, name)
  def shape(s): return tuple(int(x) for x in s.split('x'))
  if cmd == 'gen':
      for spec in sys.argv[3:]:
          name, dims, seed = spec.split(':')
          rng = np.random.default_rng(int(seed))
          (rng.random(shape(dims), dtype=np.float32) * 2 - 1).tofile(path(name))
  elif cmd == 'time':
      reps = int(sys.argv[3])
      print('numpy version=%s blas=%s' % (np.__version__, blas()))
      for task in sys.argv[4:]:
          op, *ins = task.split('/')
          ins = [(n, shape(s)) for n, s in (i.split(':') for i in ins)]
          raw = [open(path(n), 'rb').read() for n, _ in ins]
          arrays = [np.frombuffer(b, dtype=np.float32).reshape(s) for b, (_, s) in zip(raw, ins)]
          comp, e2e = [], []
          for r in range(reps + 1):  # the first run is a warm-up
              t0 = time.perf_counter(); y = OPS[op](*arrays); t1 = time.perf_counter(); del y
              t2 = time.perf_counter()
              out = OPS[op](*[np.frombuffer(b, dtype=np.float32).reshape(s) for b, (_, s) in zip(raw, ins)]).tobytes()
              t3 = time.perf_counter(); del out
              if r > 0: comp.append(t1 - t0); e2e.append(t3 - t2)
          print('numpy op=%s compute=%s e2e=%s' % (op, ','.join('%.9g' % t for t in comp), ','.join('%.9g' % t for t in e2e)))
          sys.stdout.flush()
  elif cmd == 'check':
      for task in sys.argv[3:]:
          op, result, *ins = task.split('/')
          xs = [np.fromfile(path(n), dtype=np.float32).reshape(shape(s)).astype(np.float64) for n, s in (i.split(':') for i in ins)]
          ref = OPS[op](*xs)
          got = np.fromfile(path(result), dtype=np.complex64 if op == 'fft' else np.float32).reshape(ref.shape)
          err = float(np.max(np.abs(got.astype(ref.dtype) - ref)) / np.max(np.abs(ref)))
          print('check op=%s result=%s maxrel=%.3g' % (op, result, err))
  """

  def python do
    Enum.find(["/usr/bin/python3", System.find_executable("python3")], fn
      nil -> false
      py -> match?({_, 0}, System.cmd(py, ["-c", "import numpy"], stderr_to_stdout: true))
    end) || raise "NumPy not found (python3-numpy): the Nx section compares with it"
  end

  def cmd(py, args, threads) do
    # All threads for NumPy's BLAS, as the node uses every core; OpenBLAS presets unset.
    env =
      [{"OPENBLAS_CORETYPE", nil}, {"OPENBLAS_L2_SIZE", nil}] ++
        Enum.map(~w(OMP_NUM_THREADS BLIS_NUM_THREADS OPENBLAS_NUM_THREADS), &{&1, "#{threads}"})

    case System.cmd(py, ["-c", @script | args], env: env, stderr_to_stdout: true) do
      {out, 0} -> String.split(out, "\n", trim: true) |> Enum.map(&fields/1)
      {out, status} -> raise "NumPy (#{py} #{hd(args)}) exited with #{status}:\n#{out}"
    end
  end

  defp fields(line) do
    [kind | pairs] = String.split(line, " ", trim: true)
    pairs |> Map.new(&List.to_tuple(String.split(&1, "=", parts: 2))) |> Map.put("kind", kind)
  end

  # "t1,t2,..." as floats times `scale` (default: seconds to ms).
  def secs(s, scale \\ 1000),
    do: s |> String.split(",") |> Enum.map(&(elem(Float.parse(&1), 0) * scale))
end

defmodule Bench.NxSection.Limits do
  @moduledoc false
  alias Bench.NxSection.NumPy
  # The f32 FMA peak (cores × the 1-thread median, as bench/report.exs computes it) and the best
  # triad bandwidth (median over passes, best thread count), from the default pass's term file
  # of this run, or measured now by the C++ baseline when there is none.

  def get(nil, baseline, quick) do
    [%{cpus: cpus}] = run(baseline, ["cpu"])
    reps = if quick, do: "3", else: "5"
    peak = run(baseline, ["peak", "--seconds", "0.15", "--reps", reps])
    stream = run(baseline, ~w(stream --n #{16 <<< 20} --reps #{reps} --threads 1,#{cpus}))

    from(peak, stream, String.to_integer(cpus), "measured by this script (no --limits)")
  end

  def get(path, _baseline, _quick) do
    main = path |> File.read!() |> :erlang.binary_to_term()
    peak = get_in(main.sections, [:limits, :peak]) || []
    stream = get_in(main.sections, [:memory, :stream]) || []

    from(
      peak,
      stream,
      String.to_integer(main.cpu.cpus),
      "from the default pass (--limits: in scripts/bench, this run's)"
    )
  end

  defp from(peak, stream, cpus, source) do
    one = Enum.find(peak, &(&1.type == "f32" and &1.threads == "1"))

    gbs = fn l -> median(Enum.map(l.secs, &(12 * String.to_integer(l.n) / &1 / 1.0e9))) end
    triad = stream |> Enum.filter(&(&1.kernel == "triad" and &1.fresh == "0")) |> Enum.map(gbs)

    %{
      peak: one && median(one.gflops) * cpus,
      triad: Enum.max(triad, fn -> nil end),
      cpus: cpus,
      source: source
    }
  end

  # bench/baseline.cpp's lines: `<kind> key=value ...`, secs and gflops are lists of floats.
  defp run(baseline, args) do
    case System.cmd(baseline, args, stderr_to_stdout: true) do
      {out, 0} -> out |> String.split("\n", trim: true) |> Enum.map(&parse/1)
      {out, status} -> raise "#{baseline} #{Enum.join(args, " ")} exited with #{status}:\n#{out}"
    end
  end

  defp parse(line) do
    [kind | pairs] = String.split(line, " ", trim: true)

    for pair <- pairs, [k, v] <- [String.split(pair, "=", parts: 2)], into: %{kind: kind} do
      {String.to_atom(k), if(k in ["secs", "gflops"], do: NumPy.secs(v, 1), else: v)}
    end
  end

  def median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))
end

defmodule Bench.NxSection do
  @moduledoc false
  import Bitwise
  alias Bench.NxSection.{Limits, NumPy}

  def median(xs), do: Limits.median(xs)
  def fmt(nil), do: "—"
  def fmt(x) when abs(x) >= 100, do: :erlang.float_to_binary(x / 1, decimals: 0)
  def fmt(x) when abs(x) >= 10, do: :erlang.float_to_binary(x / 1, decimals: 1)
  def fmt(x) when abs(x) >= 1, do: :erlang.float_to_binary(x / 1, decimals: 2)
  def fmt(x), do: :erlang.float_to_binary(x / 1, decimals: 3)
  def mmm(xs), do: "#{fmt(median(xs))} | #{fmt(Enum.min(xs))} | #{fmt(Enum.max(xs))}"

  # ms of each of `reps` runs of `fun` after one warm-up run (3 runs where the warm-up took over
  # 5 s: a loaded machine); every Mure.Backend tensor a run makes is freed after its clock stops.
  def times(reps, fun) do
    warm = ms(fn -> Mure.Backend.scope(fun) end)

    for _ <- 1..if(warm > 5000, do: min(reps, 3), else: reps),
        do: Mure.Backend.scope(fn -> ms(fun) end)
  end

  def ms(fun), do: elem(:timer.tc(fun), 0) / 1000

  def fallbacks_during(fun) do
    before = Mure.Backend.fallbacks()
    result = fun.()
    {result, diff(before, Mure.Backend.fallbacks())}
  end

  def diff(a, b), do: Map.new(for {k, v} <- b, v > (a[k] || 0), do: {k, v - (a[k] || 0)})

  def read(dir, name, shape, backend),
    do:
      File.read!(Path.join(dir, name))
      |> Nx.from_binary(:f32, backend: backend)
      |> Nx.reshape(shape)

  def dims(shape), do: shape |> Tuple.to_list() |> Enum.join("x")

  def size_label({b, c, h, w, o}), do: "#{b}×#{c}×#{h}×#{w}, #{o} kernels"
  def size_label(n) when n > 4096 and (n &&& n - 1) == 0, do: "2^#{round(:math.log2(n))}"
  def size_label(n), do: "#{n}"

  defp resident(w, %{dir: dir, reps: reps}, upload, size) do
    xs = upload.()
    resident = times(reps, fn -> apply(w.fun, xs) end)
    result = apply(w.fun, xs)
    download = times(reps, fn -> Nx.to_binary(result) end)
    File.write!(Path.join(dir, "#{w.key}_mure"), Nx.to_binary(result))
    up = times(reps, upload)
    e2e = times(reps, fn -> upload.() |> then(&apply(w.fun, &1)) |> Nx.to_binary() end)
    %{resident: resident, download: download, upload: up, e2e: e2e, size: size}
  end

  # One workload: Mure.Backend resident, its transfers and end to end, at the full size; its
  # result against Nx.BinaryBackend's at the small size; Nx.BinaryBackend timed there.
  def workload(w, ctx) do
    %{dir: dir, mure: mure} = ctx
    full = Enum.map(w.inputs, fn {name, shape} -> {"#{name}_full", shape.(w.full)} end)
    small = Enum.map(w.inputs, fn {name, shape} -> {"#{name}_small", shape.(w.small)} end)
    {mure_size, mure_inputs} = if w[:mure_small], do: {w.small, small}, else: {w.full, full}
    bins = Enum.map(mure_inputs, fn {name, _} -> File.read!(Path.join(dir, name)) end)

    upload = fn ->
      Enum.zip_with(bins, mure_inputs, fn b, {_, s} ->
        b |> Nx.from_binary(:f32, backend: mure) |> Nx.reshape(s)
      end)
    end

    {m, fell_back} =
      fallbacks_during(fn ->
        Mure.Backend.scope(fn -> resident(w, ctx, upload, mure_size) end)
      end)

    # Nx.BinaryBackend at the small size, and Mure.Backend's result there against it.
    bb = Enum.map(small, fn {name, s} -> read(dir, name, s, Nx.BinaryBackend) end)
    bb_result = apply(w.fun, bb)
    bb_times = for _ <- 1..ctx.bb_reps, do: ms(fn -> apply(w.fun, bb) end)

    mure_small =
      Mure.Backend.scope(fn ->
        small
        |> Enum.map(fn {name, s} -> read(dir, name, s, mure) end)
        |> then(&apply(w.fun, &1))
        |> Nx.backend_copy(Nx.BinaryBackend)
      end)

    close = Nx.all_close(mure_small, bb_result, atol: 1.0e-5, rtol: 1.0e-4) |> Nx.to_number()
    at = size_label(w.small)
    if close != 1, do: raise("#{w.key}: Mure.Backend and Nx.BinaryBackend differ at #{at}")

    check =
      "#{w.key}/#{w.key}_mure/" <>
        Enum.map_join(mure_inputs, "/", fn {name, s} -> "#{name}:#{dims(s)}" end)

    Map.merge(m, %{bb: bb_times, fell_back: fell_back, check: check})
  end

  # Eager elementwise ops of the softmax on 16 Mi f32, resident, on the node's placement and on
  # each device: time, bytes/s against the triad, and what the node process itself spent per op
  # (user and system CPU ms, minor page faults: /proc/<pid>/stat, independent of the load of
  # other processes), beside the same op through Mure's own API (one eager request, no program).
  def elementwise(ctx, n) do
    %{dir: dir, mure: {Mure.Backend, bopts}, reps: reps} = ctx
    conn = bopts[:connection]
    pid = Mure.info(conn).os_pid
    ids = Enum.map(Mure.hello!(conn).devices, & &1.id)

    devices = [
      :auto | Enum.filter([:cpu, :opencl], &(&1 in ids or (&1 == :cpu and :blis in ids)))
    ]

    for dev <- devices do
      Mure.Backend.scope(fn -> device_rows(dir, {bopts, pid}, dev, n, reps) end)
    end
    |> List.flatten()
  end

  defp device_rows(dir, {bopts, pid}, dev, n, reps) do
    x = read(dir, "softmax_x_full", {n}, {Mure.Backend, Keyword.put(bopts, :device, dev)})
    s = Nx.reduce_max(x)
    t = x.data.ref
    on = if dev == :auto, do: [], else: [device: dev]

    ops = [
      {"Nx.exp(x)", 8, fn -> Nx.exp(x) end},
      {"`Mure.unary!(:exp, t)` (eager request, no program)", 8,
       fn -> Mure.free(Mure.unary!(:exp, t, on)) end},
      {"Nx.add(x, x)", 12, fn -> Nx.add(x, x) end},
      {"`Mure.binary!(:add, t, t)`", 12, fn -> Mure.free(Mure.binary!(:add, t, t, on)) end},
      {"Nx.subtract(x, scalar)", 8, fn -> Nx.subtract(x, s) end},
      {"Nx.divide(x, scalar)", 8, fn -> Nx.divide(x, s) end},
      {"Nx.sum(x)", 4, fn -> Nx.sum(x) end},
      {"`Mure.reduce!(:sum, t)`", 4, fn -> Mure.free(Mure.reduce!(:sum, t, on)) end},
      {"Nx.reduce_max(x)", 4, fn -> Nx.reduce_max(x) end}
    ]

    for {what, bytes, f} <- ops do
      first = ms(fn -> Mure.Backend.scope(f) end)
      before = proc_stat(pid)
      # The first call was the warm-up; 3 runs each (16 Mi outputs: the table has 27 rows).
      ms = for _ <- 1..min(reps, 3), do: Mure.Backend.scope(fn -> ms(f) end)
      now = proc_stat(pid)
      per_op = Map.new(now, fn {k, v} -> {k, (v - before[k]) / length(ms)} end)
      %{device: dev, what: what, bytes: bytes * n, first: first, ms: ms, node: per_op}
    end
  end

  # utime and stime (ms, from clock ticks of 10 ms) and minor faults of the node process.
  defp proc_stat(pid) do
    [_, rest] = File.read!("/proc/#{pid}/stat") |> String.split(") ", parts: 2)
    f = String.split(rest, " ")
    int = &String.to_integer(Enum.at(f, &1))
    %{user: int.(11) * 10, sys: int.(12) * 10, minflt: int.(7)}
  end

  def numpy_time(py, ctx, workloads) do
    full = fn {name, shape}, w -> "#{name}_full:#{dims(shape.(w.full))}" end
    tasks = for w <- workloads, do: Enum.join([w.key | Enum.map(w.inputs, &full.(&1, w))], "/")
    [info | results] = NumPy.cmd(py, ["time", ctx.dir, "#{ctx.reps}" | tasks], ctx.cpus)

    times =
      for r <- results,
          do: {r["op"], %{compute: NumPy.secs(r["compute"]), e2e: NumPy.secs(r["e2e"])}}

    {info, Map.new(times)}
  end
end

alias Bench.NxSection, as: S
alias Bench.NxSection.{Limits, NumPy}

{opts, _, _} =
  OptionParser.parse(System.argv() -- ["--"],
    strict: [quick: :boolean, out: :string, limits: :string, baseline: :string]
  )

quick = Keyword.get(opts, :quick, false)
root = Path.expand("..", __DIR__)
baseline = opts[:baseline] || Path.join(root, "build/bench/mure_bench_baseline")
py = NumPy.python()

load = fn ->
  File.read!("/proc/loadavg") |> String.split(" ") |> Enum.take(3) |> Enum.join(" ")
end

load_start = load.()
dir = Path.join(System.tmp_dir!(), "mure_bench_nx_#{System.pid()}")
File.mkdir_p!(dir)
Nx.default_backend(Nx.BinaryBackend)

{:ok, conn} =
  Mure.start_link(memory_limit: 8 * 1024 * 1024 * 1024, chunk_size: 1024 * 1024, timeout: 120_000)

mure = {Mure.Backend, connection: conn}
# Nx calls init/1 only for a default backend, not for `backend:` options: without this call the
# fallback counters (Mure.Backend.fallbacks/0) would not exist and would count nothing.
Mure.Backend.init(connection: conn)

reps = if quick, do: 3, else: 5
ctx = %{dir: dir, mure: mure, reps: reps, bb_reps: 3, cpus: System.schedulers_online()}

# Full size (Mure.Backend and NumPy) and small size (Nx.BinaryBackend: a few seconds per run).
quick_sizes =
  {{512, 64}, {{4, 32, 28, 28, 32}, {1, 8, 8, 8, 8}}, {1 <<< 20, 1 <<< 14}, {1 <<< 16, 1 <<< 10}}

full_sizes =
  {{2048, 128}, {{32, 64, 56, 56, 64}, {1, 64, 8, 8, 64}}, {1 <<< 24, 1 <<< 16},
   {1 <<< 20, 1 <<< 12}}

{mm, conv, sm, fft} = if quick, do: quick_sizes, else: full_sizes

# FFT: where Mure.Backend falls back to Nx.BinaryBackend for it, it runs at the small size too
# (the full size would take Nx.BinaryBackend's time there); the table says so.
fft_falls_back =
  elem(
    S.fallbacks_during(fn ->
      Mure.Backend.scope(fn -> Nx.iota({16}, type: :f32, backend: mure) |> Nx.fft() end)
    end),
    1
  ) != %{}

log2 = fn n -> :math.log2(n) end

workloads = [
  %{
    key: "matmul",
    what: "dense matmul `Nx.dot(a, b)`, a and b n×n f32",
    fun: fn a, b -> Nx.dot(a, b) end,
    inputs: [{"matmul_a", &{&1, &1}}, {"matmul_b", &{&1, &1}}],
    full: elem(mm, 0),
    small: elem(mm, 1),
    work: fn n -> 2 * n * n * n end,
    unit: :flop
  },
  %{
    key: "conv",
    what: "conv2d `Nx.conv(x, k, padding: :same)`, x N×C×H×W, O kernels C×3×3, f32",
    fun: fn x, k -> Nx.conv(x, k, padding: :same) end,
    inputs: [
      {"conv_x", fn {b, c, h, w, _} -> {b, c, h, w} end},
      {"conv_k", fn {_, c, _, _, o} -> {o, c, 3, 3} end}
    ],
    full: elem(conv, 0),
    small: elem(conv, 1),
    work: fn {b, c, h, w, o} -> 2 * b * o * h * w * c * 9 end,
    unit: :flop
  },
  %{
    key: "softmax",
    what: "softmax `e = Nx.exp(x - Nx.reduce_max(x)); e / Nx.sum(e)`, x n f32",
    fun: fn x ->
      e = Nx.exp(Nx.subtract(x, Nx.reduce_max(x)))
      Nx.divide(e, Nx.sum(e))
    end,
    inputs: [{"softmax_x", &{&1}}],
    full: elem(sm, 0),
    small: elem(sm, 1),
    work: fn n -> n end,
    unit: :element
  },
  %{
    key: "fft",
    what: "`Nx.fft(x)`, x n f32 (result c64; NumPy's c128)",
    fun: &Nx.fft/1,
    inputs: [{"fft_x", &{&1}}],
    full: elem(fft, 0),
    small: elem(fft, 1),
    work: fn n -> 5 * n * log2.(n) end,
    unit: :fft,
    mure_small: fft_falls_back
  }
]

# The inputs, the same bytes for every runner.
gen =
  for {w, i} <- Enum.with_index(workloads),
      {{name, shape}, j} <- Enum.with_index(w.inputs),
      {size, tag} <- [{w.full, "full"}, {w.small, "small"}] do
    "#{name}_#{tag}:#{S.dims(shape.(size))}:#{100 * i + 10 * j + if(tag == "full", do: 1, else: 2)}"
  end

NumPy.cmd(py, ["gen", dir | gen], ctx.cpus)
{np_info, numpy} = S.numpy_time(py, ctx, workloads)
all_fallbacks_before = Mure.Backend.fallbacks()

progress = fn what ->
  IO.puts(:stderr, "bench/nx.exs: #{what} (#{Time.utc_now() |> Time.truncate(:second)})")
end

progress.("NumPy done")
results = Map.new(workloads, &{&1.key, progress.(&1.key) && S.workload(&1, ctx)})
progress.("elementwise diagnostics")
elementwise = S.elementwise(ctx, elem(sm, 0))
fallbacks = Mure.Backend.fallbacks()

section_fallbacks = S.diff(all_fallbacks_before, fallbacks)

# Mure.Backend's results against float64 NumPy references.
checks = NumPy.cmd(py, ["check", dir | Enum.map(workloads, &results[&1.key].check)], 1)

for c <- checks, {err, ""} <- [Float.parse(c["maxrel"])], err > 1.0e-4 do
  raise "#{c["op"]}: Mure.Backend differs from NumPy's float64 result by #{err} (relative to the largest)"
end

maxrel = Map.new(checks, &{&1["op"], &1["maxrel"]})
limits = Limits.get(opts[:limits], baseline, quick)
hello = Mure.hello!(conn)
load_end = load.()
Mure.stop(conn)
File.rm_rf!(dir)

# --- the section ---
rate = fn w, size, ms ->
  work = w.work.(size)

  case w.unit do
    :flop -> {work / (ms * 1.0e6), "GFLOP/s"}
    :fft -> {work / (ms * 1.0e6), "GFLOP/s (5·n·log2 n)"}
    # the least a two-pass softmax moves: x read twice, the result written once
    :element -> {12 * work / (ms * 1.0e6), "GB/s (12 B/element)"}
  end
end

of_limit = fn w, r ->
  case w.unit do
    :flop -> limits.peak && "#{S.fmt(r / limits.peak)} of f32 peak"
    :element -> limits.triad && "#{S.fmt(r / limits.triad)} of triad"
    :fft -> nil
  end
end

fb_note = fn
  fell when fell == %{} -> ""
  fell -> " (fell back: #{Enum.map_join(fell, ", ", fn {k, v} -> "#{k} ×#{v}" end)})"
end

np_name = "NumPy #{np_info["version"]} (#{Path.basename(np_info["blas"])}, #{ctx.cpus} threads)"

main_rows =
  for w <- workloads do
    r = results[w.key]
    np = numpy[w.key]
    {mure_rate, unit} = rate.(w, r.size, S.median(r.resident))

    rows = [
      {"Mure.Backend, inputs resident on the node#{fb_note.(r.fell_back)}", r.size, r.resident},
      {"Mure.Backend from binaries: `Nx.from_binary` → op → `Nx.to_binary`", r.size, r.e2e},
      {"#{np_name}, arrays in memory#{if w.key == "conv", do: " (im2col + matmul, no SciPy)", else: ""}",
       w.full, np.compute},
      {"NumPy from bytes: `frombuffer` → op → `tobytes`", w.full, np.e2e},
      {"Nx.BinaryBackend#{if w.small != r.size, do: " (smaller size: see the ran-at column)", else: ""}",
       w.small, r.bb}
    ]

    for {{runner, size, ms}, i} <- Enum.with_index(rows) do
      {rt, _} = rate.(w, size, S.median(ms))
      first = if i == 0, do: w.what, else: ""
      ratio = if i == 0, do: "1", else: S.fmt(mure_rate / rt)

      "| #{first} | #{runner} | #{S.size_label(size)} | #{S.mmm(ms)} | #{S.fmt(rt)} #{unit} | #{of_limit.(w, rt) || "—"} | #{ratio} |"
    end
  end

xfer_rows =
  for w <- workloads do
    r = results[w.key]
    [u, o, d, e] = Enum.map([r.upload, r.resident, r.download, r.e2e], &S.median/1)

    "| #{w.key} (#{S.size_label(r.size)}) | #{S.fmt(u)} | #{S.fmt(o)} | #{S.fmt(d)} | #{S.fmt(e)} | #{S.fmt((u + d) / e)} |"
  end

ew_rows =
  for r <- elementwise do
    gbs = r.bytes / (S.median(r.ms) * 1.0e6)
    of = if limits.triad, do: S.fmt(gbs / limits.triad), else: "—"
    c = r.node

    "| #{r.device} | #{r.what} | #{S.fmt(r.first)} | #{S.mmm(r.ms)} | #{S.fmt(gbs)} | #{of} | #{S.fmt(c.user)} | #{S.fmt(c.sys)} | #{round(c.minflt)} |"
  end

peak_text = if limits.peak, do: "#{S.fmt(limits.peak)} GFLOP/s", else: "not measured"
triad_text = if limits.triad, do: "#{S.fmt(limits.triad)} GB/s", else: "not measured"

lines =
  [
    "## 9. Nx on Mure.Backend vs Nx.BinaryBackend vs NumPy (issue 13)",
    "",
    "The same plain Nx code (eager: one request per Nx op) on `{Mure.Backend, connection: conn}` (node #{hello.version}, " <>
      "devices #{Enum.map_join(hello.devices, ", ", & &1.name)}), on `Nx.BinaryBackend` and in NumPy, same run, same input bytes. " <>
      "#{ctx.reps} runs after a warm-up (at most 3 where it took over 5 s; Nx.BinaryBackend: #{ctx.bb_reps}); ms median | min | max. Machine limits #{limits.source}: " <>
      "f32 FMA peak #{peak_text} (#{limits.cpus} cores × the 1-thread figure), triad #{triad_text}. Load average " <>
      "(1/5/15 min) at start → end of this section: #{load_start} → #{load_end} (other work on the machine is noise: compare min and max).",
    "",
    "Nx.BinaryBackend runs a smaller size where the full one would take it more than a few seconds: the *ran at* column " <>
      "gives each row's size, and the last column compares rates per unit of work (per FLOP, per element, per 5·n·log2 n), " <>
      "never an extrapolated time. Mure.Backend's results match float64 NumPy references (largest error relative to the " <>
      "largest value: #{Enum.map_join(workloads, ", ", &"#{&1.key} #{maxrel[&1.key]}")}) and Nx.BinaryBackend's at its size " <>
      "(`Nx.all_close`, rtol 1e-4).",
    "",
    "| workload | runner | ran at | ms median | min | max | rate | of machine limit | Mure.Backend resident is × faster (per unit) |",
    "|---|---|---|---|---|---|---|---|---|"
  ] ++
    List.flatten(main_rows) ++
    [
      "",
      "Transfers apart from resident compute (Mure.Backend, ms medians): upload = `Nx.from_binary` + `Nx.reshape` of every input, " <>
        "download = `Nx.to_binary` of the result.",
      "",
      "| workload | upload inputs | op, resident | download result | from binaries, end to end | transfer share of end to end |",
      "|---|---|---|---|---|---|"
    ] ++
    xfer_rows ++
    [
      "",
      "Eager elementwise ops of the softmax on #{elem(sm, 0)} f32, resident, with the node's placement (auto) and forced onto " <>
        "each device (`device:` option of Mure.Backend), beside the same op as one eager request of Mure's own API (no program); " <>
        "GB/s = bytes read and written / time (8 B/element unary or with a scalar, 12 B binary, 4 B reductions). The node's own " <>
        "CPU time and minor page faults per op (`/proc/<pid>/stat`, 10 ms ticks averaged over 3 runs) say where the time " <>
        "goes (compute, page faults) without the time spent waiting for a core; contention still inflates them.",
      "",
      "| device | op | first call ms | ms median of 3 | min | max | GB/s | of triad | node user ms/op | node sys ms/op | node page faults/op |",
      "|---|---|---|---|---|---|---|---|---|---|---|"
    ] ++
    ew_rows ++
    [
      "",
      "`Mure.Backend.fallbacks()` over this section: " <>
        if(section_fallbacks == %{},
          do: "none (every op ran on the node).",
          else:
            "`#{inspect(section_fallbacks)}` (these ran on Nx.BinaryBackend: download, compute, upload)."
        ),
      if(fft_falls_back,
        do:
          "FFT: `Nx.fft` falls back on this node, so its Mure.Backend rows ran at Nx.BinaryBackend's size; NumPy ran the full size.",
        else: ""
      ),
      ""
    ]

text = Enum.join(lines, "\n")
IO.puts(text)
if path = opts[:out], do: File.write!(path, "\n" <> text, [:append])
