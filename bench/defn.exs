# bench/defn.exs — issue 14's figures: the digits model (elixir_client/examples/digits.exs, a
# 64-64-10 MLP in plain defn) through Mure.Compiler, the same defn on Nx.Defn.Evaluator +
# Nx.BinaryBackend, and the same model written in NumPy (float32, the same initial parameters and
# batches), all in one run: one training step (value_and_grad + SGD) at batch 128 and on the whole
# training set, and one forward batch. Round trips per step, time per step as ratios, the fused
# fraction of the program's nodes, and a check that the three agree. Run by scripts/bench;
# standalone:
#   cd elixir_client && MIX_ENV=bench elixir --name b_$$@127.0.0.1 -S mix run ../bench/defn.exs -- \
#     [--quick] [--out FILE]
#
# Prints a markdown section (appended to FILE when given). Exits non-zero when a measurement
# breaks (the runners disagree, an error reply, NumPy missing); never because of a figure.
Code.require_file("../elixir_client/examples/digits.exs", __DIR__)

defmodule Bench.Defn.NumPy do
  @moduledoc false
  # The model in NumPy, float32 throughout, gradients written out by hand. `step` times one
  # SGD step from the initial parameters on a batch and prints the loss before the step and after
  # it (the new parameters on the same batch); `forward` times the logits of a batch and writes them.
  @script ~S"""
  import sys, os, time
  import numpy as np
  d, reps, lr, hidden = sys.argv[1], int(sys.argv[2]), np.float32(sys.argv[3]), int(sys.argv[4])
  def load(name, shape): return np.fromfile(os.path.join(d, name), dtype=np.float32).reshape(shape)
  p0 = (load('w1', (64, hidden)), load('b1', (hidden,)), load('w2', (hidden, 10)), load('b2', (10,)))
  def forward(p, x):
      w1, b1, w2, b2 = p
      z = x @ w1 + b1
      h = np.maximum(z, np.float32(0))
      return z, h, h @ w2 + b2
  def loss(p, x, y):
      s = forward(p, x)[2]
      s = s - s.max(axis=1, keepdims=True)
      return -np.mean((y * (s - np.log(np.exp(s).sum(axis=1, keepdims=True)))).sum(axis=1))
  def step(p, x, y):
      w1, b1, w2, b2 = p
      z, h, l = forward(p, x)
      s = l - l.max(axis=1, keepdims=True)
      e = np.exp(s)
      se = e.sum(axis=1, keepdims=True)
      value = -np.mean((y * (s - np.log(se))).sum(axis=1))
      g = (e / se * y.sum(axis=1, keepdims=True) - y) / np.float32(x.shape[0])
      gw2, gb2 = h.T @ g, g.sum(axis=0)
      dz = (g @ w2.T) * (z > 0)
      gw1, gb1 = x.T @ dz, dz.sum(axis=0)
      return (w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2), value
  print('numpy version=%s' % np.__version__)
  for task in sys.argv[5:]:
      kind, xs, rows, *ys = task.split(':')
      rows = int(rows)
      x = load(xs, (rows, 64))
      y = load(ys[0], (rows, 10)) if ys else None
      f = (lambda: step(p0, x, y)) if kind == 'step' else (lambda: forward(p0, x)[2])
      ms = []
      for r in range(reps + 1):  # the first run is a warm-up
          t0 = time.perf_counter(); out = f(); t1 = time.perf_counter()
          if r > 0: ms.append((t1 - t0) * 1000)
      times = ','.join('%.6g' % t for t in ms)
      if kind == 'step':
          p1, before = out
          print('numpy task=%s ms=%s loss=%.9g after=%.9g' % (task, times, before, loss(p1, x, y)))
      else:
          out.astype(np.float32).tofile(os.path.join(d, 'logits_numpy'))
          print('numpy task=%s ms=%s' % (task, times))
      sys.stdout.flush()
  """

  def run(dir, reps, lr, tasks, threads) do
    py =
      Enum.find(["/usr/bin/python3", System.find_executable("python3")], fn
        nil -> false
        py -> match?({_, 0}, System.cmd(py, ["-c", "import numpy"], stderr_to_stdout: true))
      end) || raise "NumPy not found (python3-numpy): the defn section compares with it"

    threads = "#{threads}"
    env = Enum.map(~w(OMP_NUM_THREADS BLIS_NUM_THREADS OPENBLAS_NUM_THREADS), &{&1, threads})
    args = ["-c", @script, dir, "#{reps}", "#{lr}", "#{Mure.Examples.Digits.hidden()}" | tasks]

    case System.cmd(py, args, env: env, stderr_to_stdout: true) do
      {out, 0} ->
        out |> String.split("\n", trim: true) |> Enum.map(&fields/1)

      {out, status} ->
        raise "NumPy (#{py}) exited with #{status}:\n#{out}"
    end
  end

  # "t1,t2,..." as floats.
  def secs(s), do: s |> String.split(",") |> Enum.map(&elem(Float.parse(&1), 0))

  defp fields(line) do
    [kind | pairs] = String.split(line, " ", trim: true)
    pairs |> Map.new(&List.to_tuple(String.split(&1, "=", parts: 2))) |> Map.put("kind", kind)
  end
end

defmodule Bench.Defn do
  @moduledoc false
  def median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))
  def fmt(nil), do: "—"
  def fmt(x) when abs(x) >= 100, do: :erlang.float_to_binary(x / 1, decimals: 0)
  def fmt(x) when abs(x) >= 10, do: :erlang.float_to_binary(x / 1, decimals: 1)
  def fmt(x) when abs(x) >= 1, do: :erlang.float_to_binary(x / 1, decimals: 2)
  def fmt(x), do: :erlang.float_to_binary(x / 1, decimals: 3)
  def mmm(xs), do: "#{fmt(median(xs))} | #{fmt(Enum.min(xs))} | #{fmt(Enum.max(xs))}"
  def ms(fun), do: fun |> :timer.tc() |> then(fn {us, v} -> {us / 1000, v} end)

  def free(container), do: Mure.Examples.Digits.free(container)

  # One runner of one workload: the first call (tracing, kernels), then `reps` timed calls,
  # each from the same inputs; `{first_ms, [ms], result_of_the_first_call}`.
  def times(reps, fun) do
    {first, result} = ms(fun)
    runs = for _ <- 1..reps, do: ms(fun)
    Enum.each(runs, &free(elem(&1, 1)))
    {first, Enum.map(runs, &elem(&1, 0)), result}
  end

  # Requests the node counted per call of `fun` over `reps` calls (its own `stats` calls and
  # the frees after the clock are left out), and the programs Mure.Compiler sent per call.
  def round_trips(conn, reps, fun) do
    s0 = Mure.stats!(conn).requests
    s1 = Mure.stats!(conn).requests

    {results, programs} =
      Mure.Examples.Digits.programs(conn, fn -> for _ <- 1..reps, do: fun.() end)

    s2 = Mure.stats!(conn).requests
    free(results)
    {(s2 - s1 - (s1 - s0)) / reps, programs / reps}
  end

  def to_host(t), do: Nx.backend_copy(t, Nx.BinaryBackend)
  def number(t), do: t |> to_host() |> Nx.to_number()
end

alias Bench.Defn, as: B
alias Bench.Defn.NumPy
alias Mure.Examples.Digits

{opts, _, _} =
  OptionParser.parse(System.argv() -- ["--"], strict: [quick: :boolean, out: :string])

quick = Keyword.get(opts, :quick, false)
root = Path.expand("..", __DIR__)
reps = if quick, do: 9, else: 21
# Nx.BinaryBackend takes seconds to a minute per call here: `bb_reps` calls, the first one
# included (the Evaluator keeps no compiled form to warm up); --quick runs it at batch 128 only.
bb_reps = if quick, do: 1, else: 2
lr = 0.5

load = fn ->
  File.read!("/proc/loadavg") |> String.split(" ") |> Enum.take(3) |> Enum.join(" ")
end

load_start = load.()
dir = Path.join(System.tmp_dir!(), "mure_bench_defn_#{System.pid()}")
File.mkdir_p!(dir)

progress = fn what ->
  IO.puts(:stderr, "bench/defn.exs: #{what} (#{Time.utc_now() |> Time.truncate(:second)})")
end

# The data and the initial parameters: the same bytes for every runner.
{{train_x, train_labels}, _test} = Digits.load!()
train_y = Digits.one_hot(train_labels)
rows = length(train_labels)
{w1, b1, w2, b2} = params = Digits.init_params()

for {name, t} <- [w1: w1, b1: b1, w2: w2, b2: b2],
    do: File.write!(Path.join(dir, "#{name}"), Nx.to_binary(t))

batch = fn n -> {Nx.slice(train_x, [0, 0], [n, 64]), Nx.slice(train_y, [0, 0], [n, 10])} end

workloads =
  for {kind, n} <- [step: 128, step: rows, forward: rows] do
    {x, y} = batch.(n)
    File.write!(Path.join(dir, "x#{n}"), Nx.to_binary(x))
    File.write!(Path.join(dir, "y#{n}"), Nx.to_binary(y))
    task = if kind == :step, do: "step:x#{n}:#{n}:y#{n}", else: "forward:x#{n}:#{n}"
    %{kind: kind, n: n, x: x, y: y, task: task}
  end

progress.("NumPy")
# NumPy with all BLAS threads (as the node uses every core) and with one (this model's matrices
# are small: on a loaded machine a second thread mostly waits); the faster median is the ratio's.
cpus = System.schedulers_online()
[np_info | np_rows] = NumPy.run(dir, reps, lr, Enum.map(workloads, & &1.task), cpus)
[_ | np1_rows] = NumPy.run(dir, reps, lr, Enum.map(workloads, & &1.task), 1)
numpy1 = Map.new(np1_rows, &{&1["task"], &1})
numpy = Map.new(np_rows, &{&1["task"], &1})

{:ok, conn} = Mure.start_link(timeout: 120_000)
hello = Mure.hello!(conn)
lr_t = Nx.tensor(lr, type: {:f, 32}, backend: Nx.BinaryBackend)
mure = [compiler: Mure, connection: conn]
step_m = Nx.Defn.jit(&Digits.train_step/4, mure)
loss_m = Nx.Defn.jit(&Digits.loss/3, mure)
fwd_m = Nx.Defn.jit(&Digits.predict/2, mure)
eval = [compiler: Nx.Defn.Evaluator]
step_b = Nx.Defn.jit(&Digits.train_step/4, eval)
loss_b = Nx.Defn.jit(&Digits.loss/3, eval)
fwd_b = Nx.Defn.jit(&Digits.predict/2, eval)
p_node = Digits.to_node(params, conn)
lr_node = Digits.to_node(lr_t, conn)

results =
  for w <- workloads do
    progress.("#{w.kind} #{w.n}")
    {x, y} = Digits.to_node({w.x, w.y}, conn)

    {mure_fun, bb_fun} =
      case w.kind do
        :step ->
          {fn -> step_m.(p_node, x, y, lr_node) end, fn -> step_b.(params, w.x, w.y, lr_t) end}

        :forward ->
          {fn -> fwd_m.(p_node, x) end, fn -> fwd_b.(params, w.x) end}
      end

    # The first call (a cold JIT cache: traced and lowered again) and the fused kernels the node
    # built or loaded for it; then one more call, whose program nodes the node counts, with those
    # it ran inside generated fused kernels (stats.kernels: program_nodes, fused_nodes, fused_groups).
    Mure.Jit.Cache.clear()
    k0 = Mure.stats!(conn).kernels
    {cold, first_result} = B.ms(mure_fun)
    k1 = Mure.stats!(conn).kernels
    kernels = k1.fused_compiled + k1.fused_disk_hits - k0.fused_compiled - k0.fused_disk_hits
    B.free(first_result)
    B.free(mure_fun.())
    k2 = Mure.stats!(conn).kernels

    fusion = [
      %{
        nodes: k2.program_nodes - k1.program_nodes,
        fused: k2.fused_nodes - k1.fused_nodes,
        groups: k2.fused_groups - k1.fused_groups
      }
    ]

    {_warm, ms, result} = B.times(reps, mure_fun)
    {requests, sent} = B.round_trips(conn, reps, mure_fun)

    {bb_ms, bb_result} =
      if not quick or w.n == 128 do
        runs = for _ <- 1..bb_reps, do: B.ms(bb_fun)
        {Enum.map(runs, &elem(&1, 0)), runs |> List.last() |> elem(1)}
      else
        {nil, nil}
      end

    np = numpy[w.task]
    ref = if bb_ms, do: :bb, else: :numpy

    # Agreement: the step's loss before and after (the new parameters on the same batch), the
    # forward batch's logits; against Nx.BinaryBackend's (NumPy's where it did not run).
    agree =
      case w.kind do
        :step ->
          {new_m, before_m} = result
          after_m = loss_m.(new_m, x, y)

          losses = %{
            mure: {B.number(before_m), B.number(after_m)},
            numpy: {String.to_float(np["loss"]), String.to_float(np["after"])}
          }

          losses =
            case bb_result do
              {new_b, before_b} ->
                Map.put(losses, :bb, {B.number(before_b), B.number(loss_b.(new_b, w.x, w.y))})

              nil ->
                losses
            end

          B.free([result, after_m])
          {r0, r1} = losses[ref]

          for {who, {l0, l1}} <- losses,
              {got, want} <- [{l0, r0}, {l1, r1}],
              abs(got - want) > 1.0e-4 * abs(want) + 1.0e-6 do
            raise "#{w.kind} #{w.n}: the loss of #{who} (#{got}) differs from #{ref}'s (#{want})"
          end

          losses

        :forward ->
          np_logits =
            File.read!(Path.join(dir, "logits_numpy"))
            |> Nx.from_binary(:f32)
            |> Nx.reshape({w.n, 10})

          got = B.to_host(result)
          B.free(result)
          want = bb_result || np_logits

          diff = fn a ->
            a |> Nx.subtract(want) |> Nx.abs() |> Nx.reduce_max() |> Nx.to_number()
          end

          d = %{mure: diff.(got), numpy: diff.(np_logits)}

          for {who, e} <- d,
              e > 1.0e-4,
              do: raise("forward #{w.n}: #{who}'s logits differ from #{ref}'s by #{e}")

          d
      end

    Map.merge(w, %{
      first: cold,
      ms: ms,
      bb_ms: bb_ms,
      ref: ref,
      np_ms: NumPy.secs(np["ms"]),
      np1_ms: NumPy.secs(numpy1[w.task]["ms"]),
      requests: requests,
      sent: sent,
      fusion: fusion,
      kernels: kernels,
      agree: agree
    })
  end

load_end = load.()
Mure.stop(conn)
File.rm_rf!(dir)

# --- the section ---
label = fn
  %{kind: :step, n: n} when n == rows -> "training step on the whole training set (#{n} rows)"
  %{kind: :step, n: n} -> "training step, batch #{n}"
  %{kind: :forward, n: n} -> "forward batch (logits) of #{n} rows"
end

rows_md =
  for r <- results do
    m = B.median(r.ms)

    bb =
      if r.bb_ms,
        do:
          "| | Nx.Defn.Evaluator + Nx.BinaryBackend (same defn, same size) | #{B.mmm(r.bb_ms)} | #{length(r.bb_ms)} | #{B.fmt(hd(r.bb_ms))} | — | #{B.fmt(m / B.median(r.bb_ms))} |",
        else:
          "| | Nx.Defn.Evaluator + Nx.BinaryBackend | not run in --quick (see batch 128; the full mode runs it) | | | | | | |"

    [
      "| #{label.(r)} | Mure.Compiler (`compiler: Mure`), inputs resident, results stay on the node | #{B.mmm(r.ms)} | #{length(r.ms)} | #{B.fmt(r.first)} | #{B.fmt(r.sent)} (node: #{B.fmt(r.requests)} requests) | 1 |",
      bb,
      "| | NumPy #{np_info["version"]} (same model, float32, gradients by hand), arrays in memory, #{cpus} BLAS threads | #{B.mmm(r.np_ms)} | #{length(r.np_ms)} | — | — | #{B.fmt(m / B.median(r.np_ms))} |",
      "| | the same NumPy, 1 BLAS thread | #{B.mmm(r.np1_ms)} | #{length(r.np1_ms)} | — | — | #{B.fmt(m / B.median(r.np1_ms))} |"
    ]
  end

ratio_md =
  for r <- results do
    m = B.median(r.ms)

    f =
      Enum.reduce(
        r.fusion,
        %{nodes: 0, fused: 0, groups: 0},
        &Map.merge(&1, &2, fn _, a, b -> a + b end)
      )

    frac =
      if f.nodes > 0,
        do:
          "#{B.fmt(100 * f.fused / f.nodes)} % (#{f.fused} of #{f.nodes} nodes, in #{f.groups} fused kernels run)",
        else: "—"

    names = [mure: "Mure", bb: "BinaryBackend", numpy: "NumPy"]

    agree =
      case r.agree do
        %{numpy: {_, _}} = l ->
          Enum.map_join(names, ", ", fn {k, name} ->
            case l[k] do
              {a, b} ->
                "#{name} #{:erlang.float_to_binary(a, decimals: 6)} → #{:erlang.float_to_binary(b, decimals: 6)}"

              nil ->
                "#{name} not run"
            end
          end)

        d ->
          "largest logit difference from #{names[r.ref]}'s: Mure #{:erlang.float_to_binary(d.mure, scientific: 1)}" <>
            if(r.ref == :bb,
              do: ", NumPy #{:erlang.float_to_binary(d.numpy, scientific: 1)}",
              else: ""
            )
      end

    bb_ratio = if r.bb_ms, do: B.fmt(B.median(r.bb_ms) / m), else: "—"

    np = min(B.median(r.np_ms), B.median(r.np1_ms))

    "| #{label.(r)} | #{B.fmt(m / np)} | #{bb_ratio} | #{B.fmt(r.sent)} | #{frac} | #{r.kernels} | #{agree} |"
  end

devices = Enum.map_join(hello.devices, ", ", & &1.name)

lines =
  [
    "## 10. defn through Mure.Compiler vs Nx.Defn.Evaluator + Nx.BinaryBackend vs NumPy (issue 14)",
    "",
    "The digits model of `elixir_client/examples/digits.exs` (a 64-#{Digits.hidden()}-10 MLP in plain defn: `value_and_grad` of a " <>
      "softmax cross-entropy, then SGD with lr #{lr}) on the 8×8 digits of python3-sklearn, the same initial parameters " <>
      "and rows for every runner, one call per step from those parameters. Node #{hello.version} (devices #{devices}); " <>
      "NumPy #{np_info["version"]} with #{cpus} BLAS threads and with 1 (the ratios take the faster median). #{reps} timed calls after a warm-up " <>
      "(Nx.BinaryBackend: #{bb_reps} call#{if bb_reps > 1, do: "s"}, no warm-up, at the same sizes: nothing extrapolated#{if quick, do: "; --quick: batch 128 only", else: ""}); ms per call median | min | max. " <>
      "*First call*: Mure's with a cold JIT cache (trace, lower, the node's fused kernels built or loaded); " <>
      "the Evaluator's first call (its first timed one). Load average (1/5/15 min) at start → end: #{load_start} → #{load_end}.",
    "",
    "| workload | runner | ms median | min | max | runs | first call ms | round trips per call | Mure time / this time |",
    "|---|---|---|---|---|---|---|---|---|"
  ] ++
    List.flatten(rows_md) ++
    [
      "",
      "*Round trips per call*: programs Mure.Compiler sent (telemetry `[:mure, :compiler, :program]`) per call (goal: 1); " <>
        "in brackets, requests the node counted (`stats.requests`) per call, its own `stats` calls left out. " <>
        "*Fused fraction*: of the program nodes the node ran for one call, those it ran inside generated fused kernels " <>
        "(its own counters, `stats.kernels`: `program_nodes`, `fused_nodes`, `fused_groups`); *new fused kernels* is what the node's " <>
        "`stats.kernels` counted at the first call (`fused_compiled` + `fused_disk_hits`; identical groups share a kernel; 0 where an earlier row built them). " <>
        "*Agrees*: loss of the batch before → after the step (the new parameters on the same rows), each within 1e-4 " <>
        "(relative) of Nx.BinaryBackend's (NumPy's where it did not run); forward logits within 1e-4.",
      "",
      "| workload | Mure / NumPy (time) | BinaryBackend / Mure (time) | round trips per call | fused fraction | new fused kernels at the first call | agrees |",
      "|---|---|---|---|---|---|---|"
    ] ++ ratio_md ++ [""]

text = Enum.join(lines, "\n")
IO.puts(text)
if path = opts[:out], do: File.write!(path, "\n" <> text, [:append])
