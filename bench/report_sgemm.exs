# bench/report.exs, issue 18's section: end-to-end sgemm against ggml rpc's figures (fixed
# references from the issue) and the same resident sgemm across node launches (sections e2e and
# launches of bench/measure.exs, written by bench/sgemm.exs). Loaded by report.exs.

defmodule Report.Sgemm do
  @moduledoc false
  import Report.Stats

  # The issue's table (Intel Xeon family 6 model 207, 2 vCPUs; ggml built from source there):
  # seconds end to end (upload + compute + download), and the goal as a multiple of ggml's.
  @ggml %{256 => 1.39e-3, 1024 => 23.8e-3, 2048 => 208.0e-3}
  @mure_then %{256 => 2.18e-3, 1024 => 19.7e-3, 2048 => 109.0e-3}
  @goal %{256 => 1.0, 1024 => 0.5, 2048 => 0.5}
  @ggml_16 43.0e-6

  @doc "{markdown, goals} for the e2e and launches sections (either may be nil)."
  def render(nil, nil, _main, goals), do: {[], goals}

  def render(e2e, launches, main, goals) do
    {e2e_md, goals} = e2e(e2e, main, goals)
    {launch_md, goals} = launches(launches, goals)
    {["\n## 3b. End-to-end sgemm vs ggml rpc, and compute across node launches (issue 18)\n", e2e_md, launch_md], goals}
  end

  defp e2e(nil, _main, goals), do: {[], goals}

  defp e2e(e, main, goals) do
    cpu = main.cpu
    ms = &fmt(&1 * 1000)

    {rows, goals} =
      for {n, r} <- Enum.sort(e.sizes), reduce: {[], goals} do
        {rows, goals} ->
          total = summary(r.calls, & &1.total)
          prog = summary(r.program)
          step = fn k -> median(Enum.map(r.calls, &Map.fetch!(&1, k))) end
          xfer = (step.(:upload) + step.(:download)) / elem(total, 0)
          {best, way} = if elem(prog, 0) <= elem(total, 0), do: {elem(prog, 0), "program"}, else: {elem(total, 0), "calls"}
          ref = @ggml[n]
          ratio = best / ref
          ok = ratio <= @goal[n]

          row =
            "| #{n} | #{ms.(step.(:upload))} · #{ms.(step.(:matmul))} · #{ms.(step.(:download))} (#{fmt(xfer * 100, 0)} % transfer) | " <>
              "#{ms.(elem(total, 0))} / #{ms.(elem(total, 1))} / #{ms.(elem(total, 2))} | #{ms.(step.(:free))} | " <>
              "#{ms.(elem(prog, 0))} / #{ms.(elem(prog, 1))} / #{ms.(elem(prog, 2))} | #{ms.(ref)} (mure then: #{ms.(@mure_then[n])}) | " <>
              "#{fmt(ratio, 2)}× (#{way}) | ≤ #{fmt(@goal[n], 1)}×: #{if ok, do: "met", else: "**not met**"} |\n"

          goal = {"E2E sgemm n=#{n} ≤ #{fmt(@goal[n], 1)} × ggml rpc (#{ms.(ref)} ms, Intel Xeon; this run: #{cpu.vendor} family #{cpu.family} model #{cpu.model})",
                  "#{ms.(best)} ms = #{fmt(ratio, 2)}× (#{way})", ok}

          {[row | rows], [goal | goals]}
      end

    m16 = get_in(main.sections, [:opencl, :small, :matmul_16])

    line16 =
      if m16 do
        s = median(m16)
        "\nResident 16×16 matmul, one request (the figure of section 6's per-request table, `matmul_16`, default placement; measured there, not here): " <>
          "#{fmt(s * 1.0e6)} µs vs ggml rpc #{fmt(@ggml_16 * 1.0e6)} µs (Xeon) = #{fmt(s / @ggml_16, 2)}× (reported, not a goal of this section).\n"
      else
        "\nResident 16×16 matmul: not measured in this run (section opencl absent); ggml rpc took #{fmt(@ggml_16 * 1.0e6)} µs on the Xeon.\n"
      end

    {[
       "\nf32 C = A·B from the input bytes to the result's bytes through the client, as a user calls it. ",
       "**calls**: `Mure.upload/4` (A, then B), `Mure.matmul/2` (the node's default placement), `Mure.download/1`, each step timed ",
       "(the three `Mure.free/1` after the bytes are in hand are timed apart and not in the total); ",
       "**program**: `Mure.run/3` of `Mure.jit(&Mure.Expr.matmul/2, outputs: :return)` with A and B as data, one program request ",
       "(inputs above the connection's `:chunk_size`, #{fmt_chunk(e[:chunk_size])}, are uploaded in pieces first). Both ways interleaved; ",
       "results checked on sampled entries against Elixir sums. Transfers here are the current ones (Erlang distribution).\n\n",
       "**References**: ggml rpc's figures are FIXED numbers from the issue, measured on an **Intel Xeon (family 6 model 207), 2 vCPUs** ",
       "(ggml is not on these machines); this run's CPU is **#{cpu.model_name} (#{cpu.vendor} family #{cpu.family} model #{cpu.model})**, ",
       "so a ratio across the two is indicative only. \"mure then\" is mure's figure in the same table.\n\n",
       "| n | calls, medians ms: upload A+B · matmul · download | calls total median / min / max ms | frees after, ms | program median / min / max ms | ggml rpc ms (Xeon) | best / ggml | goal |\n",
       "|---|---|---|---|---|---|---|---|\n",
       Enum.reverse(rows),
       line16
     ], goals}
  end

  defp fmt_chunk(nil), do: "none"
  defp fmt_chunk(b), do: "#{div(b, 1024 * 1024)} MiB"

  defp launches(nil, goals), do: {[], goals}

  defp launches(l, goals) do
    n = l.n
    gf = fn s -> 2.0 * n * n * n / s / 1.0e9 end

    rows =
      l.runs
      |> Enum.with_index(1)
      |> Enum.map(fn {r, i} ->
        {med, mn, mx} = summary(r.mure)
        "| #{i} | #{r.arch}, #{r.threads} threads | #{fmt(med * 1000)} | #{fmt(mn * 1000)} | #{fmt(mx * 1000)} | #{fmt(gf.(med))} |\n"
      end)

    spread = fn meds ->
      mean = Enum.sum(meds) / length(meds)
      {Enum.max(Enum.map(meds, &abs(&1 / mean - 1))), Enum.max(meds) / Enum.min(meds)}
    end

    {dev, ratio} = spread.(Enum.map(l.runs, &median(&1.mure)))
    # The launches' best requests: what each launch allows when the machine leaves it alone.
    {mdev, mratio} = spread.(Enum.map(l.runs, &Enum.min(&1.mure)))
    control = summary(l.blis)
    ok = dev <= 0.10
    how = if l.node_args in [nil, ""], do: "the node's defaults (config/mure.conf)", else: "node flags `#{l.node_args}`"

    goal = {"Stable compute: resident sgemm #{n} within ±10 % across #{length(l.runs)} node launches",
            "±#{fmt(dev * 100, 1)} % (launch medians max/min #{fmt(ratio, 2)})", ok}

    {[
       "\nThe same resident f32 sgemm #{n} (raw envelope, `{:on, :cpu, {:matmul, a, b}}`, result freed untimed) on #{length(l.runs)} freshly launched nodes ",
       "(#{how}), all alive together after 2 warm-ups each, timed in #{l.rounds} rounds that visit every node in turn, round r starting at launch r (each visit: 1 untimed request, then #{div(l.reps, l.rounds)} timed, ",
       "#{l.reps} per node): a change of the machine's load during the section hits every launch alike. ",
       "Goal: every launch's median within ±10 % of their mean.\n\n",
       "| launch | kernels | mure median ms | min | max | GFLOP/s (median) |\n|---|---|---|---|---|---|\n",
       rows,
       "\nSpread of the launch medians: ±#{fmt(dev * 100, 1)} % of their mean (max/min #{fmt(ratio, 2)}) — goal ±10 %: #{if ok, do: "met", else: "**not met**"}. ",
       "Diagnostic: the launches' fastest requests spread ±#{fmt(mdev * 100, 1)} % (max/min #{fmt(mratio, 2)}). ",
       "Control, in-process BLIS (#{l.blis_arch}, its own OpenMP threads) once per round: #{mmm(control |> then(fn {a, b, c} -> {a * 1000, b * 1000, c * 1000} end))} ms (median | min | max).\n"
     ], [goal | goals]}
  end
end
