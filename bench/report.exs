# scripts/bench, report step: turns the raw samples of the measuring passes (bench/measure.exs)
# into markdown tables (printed and written to <dir>/bench-<stamp>.md) and gnuplot PNGs.
#
#   elixir bench/report.exs --dir bench-results --stamp 20261125-133000 --wall 95.2 \
#     [--cmd "scripts/bench --quick"] default.bin [tuned.bin]
#
# The first file is the pass with default BEAM flags (every section); later files are passes with
# other flags (their messaging and spot-check rows are added to the same tables).
# Goals are reported as met / not met; they never change the exit status.

defmodule Report.Stats do
  @moduledoc false

  def median(list) do
    s = Enum.sort(list)
    n = length(s)
    if rem(n, 2) == 1, do: Enum.at(s, div(n, 2)), else: (Enum.at(s, div(n, 2) - 1) + Enum.at(s, div(n, 2))) / 2
  end

  @doc "{median, min, max} of `f` applied to each sample."
  def summary(samples, f \\ & &1) do
    v = Enum.map(samples, f)
    {median(v), Enum.min(v), Enum.max(v)}
  end

  def fmt(x, digits \\ nil)
  def fmt(nil, _), do: "—"
  def fmt(x, nil) when is_number(x) do
    a = abs(x)

    cond do
      a == 0 -> "0"
      a >= 1000 -> :erlang.float_to_binary(x / 1, decimals: 0)
      a >= 100 -> :erlang.float_to_binary(x / 1, decimals: 0)
      a >= 10 -> :erlang.float_to_binary(x / 1, decimals: 1)
      a >= 1 -> :erlang.float_to_binary(x / 1, decimals: 2)
      true -> :erlang.float_to_binary(x / 1, decimals: 3)
    end
  end

  def fmt(x, d), do: :erlang.float_to_binary(x / 1, decimals: d)

  def mmm({med, mn, mx}, d \\ nil), do: "#{fmt(med, d)} | #{fmt(mn, d)} | #{fmt(mx, d)}"
end

# Issue 18's section (end-to-end sgemm, compute across node launches): Report.Sgemm.
Code.require_file("report_sgemm.exs", __DIR__)

defmodule Report do
  @moduledoc false
  import Report.Stats

  def main(argv) do
    {opts, files, _} =
      OptionParser.parse(argv, strict: [dir: :string, stamp: :string, wall: :float, cmd: :string, extra: :string])
    if files == [], do: raise("no result files given")
    dir = opts[:dir] || "bench-results"
    stamp = opts[:stamp] || "now"
    File.mkdir_p!(dir)
    passes = Enum.map(files, &(&1 |> File.read!() |> :erlang.binary_to_term()))
    [main | others] = passes
    plots = plots(main, dir, stamp)
    md = render(main, others, opts, plots) |> IO.iodata_to_binary()
    path = Path.join(dir, "bench-#{stamp}.md")
    File.write!(path, md)
    IO.puts(md)
    IO.puts("results: #{path}")
    for p <- plots, do: IO.puts("plot:    #{Path.join(dir, p)}")
  end

  ## Markdown ---------------------------------------------------------------------------------

  defp render(main, others, opts, plots) do
    s = main.sections
    goals = []

    {limits_md, peaks, triad} = limits(main)
    {msg_md, goals} = messaging([main | others], goals)
    {xfer_md, goals} = transfer(s[:transfer], main[:client_chunk_size], goals)
    {shm_md, goals} = same_host(s[:transfer], s[:user], get_in(main.sections, [:user, :numpy]), goals, flags_label(main.beam_flags))
    {mm_md, goals} = compute(s[:compute], peaks, goals)
    {sgemm_md, goals} = Report.Sgemm.render(s[:e2e], s[:launches], main, goals)
    mem_md = memory(s[:memory], triad)
    user_md = user(s[:user])
    {ocl_md, goals} = opencl(s[:opencl], s[:memory], s[:messaging], goals)
    # The sections written by other scripts of this run (bench/programs.exs, bench/cluster.exs,
    # bench/nx.exs: scripts/bench joins them in --extra), included as they are. bench/nx.exs takes
    # the peak and the triad of this report's main pass (its --limits), so its fractions of the
    # machine's limits use the figures of the "Machine limits" table above.
    extra_md = if opts[:extra] && File.exists?(opts[:extra]), do: ["\n", File.read!(opts[:extra]) |> String.trim(), "\n"], else: []
    # The spot check comes after the extra sections: its number follows theirs.
    extra_sections = extra_md |> IO.iodata_to_binary() |> String.split("\n") |> Enum.count(&String.starts_with?(&1, "## "))
    spot_md = spot([main | others], 7 + extra_sections)

    [
      header(main, others, opts),
      limits_md,
      msg_md,
      xfer_md,
      shm_md,
      mm_md,
      sgemm_md,
      mem_md,
      user_md,
      ocl_md,
      extra_md,
      spot_md,
      goals_md(Enum.reverse(goals)),
      if(plots != [], do: ["\n## Plots\n\n", Enum.map(plots, &"- `#{&1}`\n")], else: []),
      if(main.cpu[:flags] not in [nil, ""], do: "\nAll CPU flags (/proc/cpuinfo): `#{main.cpu.flags}`\n", else: [])
    ]
  end

  defp flags_label(""), do: "none (defaults)"
  defp flags_label(f), do: "`#{f}`"

  defp header(main, others, opts) do
    cpu = main.cpu
    node = main.node
    blis = Enum.find(node.devices, &(&1.id == :blis))
    ocl = Enum.find(node.devices, &(&1.id == :opencl))
    np = get_in(main.sections, [:user, :numpy])
    avx512 = if String.contains?(cpu.features, "avx512f"), do: "", else: " (no AVX-512 exposed)"

    [
      "# mure benchmark — #{main.date}\n\n",
      "- Command: `#{opts[:cmd] || "scripts/bench"}` (#{if main.quick, do: "quick mode: fewer sizes and repetitions", else: "full mode"})",
      if(opts[:wall], do: "; wall time #{fmt(opts[:wall], 0)} s\n", else: "\n"),
      "- CPU: #{cpu.model_name} — #{cpu.vendor} family #{cpu.family} model #{cpu.model} stepping #{cpu.stepping}, ",
      "#{cpu.cpus} online CPUs; vector flags: #{cpu.vector_flags}#{avx512}\n",
      "- BEAM: OTP #{main.otp} (erts #{main.erts}), Elixir #{main.elixir}, #{main.schedulers} schedulers. ",
      "Pass `#{main.label}`: flags #{flags_label(main.beam_flags)}",
      Enum.map(others, &"; pass `#{&1.label}`: flags #{flags_label(&1.beam_flags)}"),
      ". The baseline BEAM (`:peer`) runs with the same flags as the bench BEAM in each pass.\n",
      "- Node: mure #{node.hello.version}, launched in #{fmt(node.launch_s * 1000)} ms; ",
      if(blis, do: "#{blis.name}, #{blis.threads} threads, #{blis.arch_reason}; ", else: "no BLIS; "),
      if(ocl,
        do: "OpenCL #{ocl.name} on #{ocl.platform} (#{ocl.device_type}, #{ocl.compute_units} compute units)\n",
        else: "no OpenCL device\n"
      ),
      if(np,
        do: "- NumPy #{np.info.version} (#{np.python}) with #{np.info.blas}; OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset for that command only\n",
        else: "- NumPy: not installed, not compared\n"
      ),
      "- Load average (1/5/15 min) at start → end of each pass: ",
      Enum.map_join([main | others], "; ", &"#{&1.label} #{&1[:loadavg][:start]} → #{&1[:loadavg][:end]}"),
      " (other work on the machine shows up as noise: compare min and max)\n",
      "- Figures: median over repeated runs, with min and max; ratios are median / median. ",
      "Every baseline was measured in this same run.\n"
    ]
  end

  defp limits(main) do
    peak = get_in(main.sections, [:limits, :peak]) || []
    stream = get_in(main.sections, [:memory, :stream]) || []
    cpus = String.to_integer(main.cpu.cpus)

    peaks =
      for type <- ["f32", "f64"], into: %{} do
        one = Enum.find(peak, &(&1.type == type and &1.threads == "1"))
        all = Enum.find(peak, &(&1.type == type and &1.threads == "#{cpus}"))

        if one do
          {per_core, _, _} = summary(one.gflops)
          {type, %{per_core: per_core, peak: per_core * cpus, measured_all: all && elem(summary(all.gflops), 0), isa: one.isa, lanes: one.lanes}}
        else
          {type, nil}
        end
      end

    triads =
      for line <- stream, line.kernel == "triad", line.fresh == "0" do
        n = String.to_integer(line.n)
        {String.to_integer(line.threads), median(Enum.map(line.secs, &(12 * n / &1 / 1.0e9)))}
      end

    triad = if triads == [], do: nil, else: Enum.max_by(triads, &elem(&1, 1))

    rows =
      for {type, p} <- peaks, p do
        "| #{type} FMA peak | #{cpus} cores × #{fmt(p.per_core)} GFLOP/s per core (1 thread: #{p.isa}, #{p.lanes} lanes × 2 flops × 12 accumulators) = **#{fmt(p.peak)} GFLOP/s**; all #{cpus} threads together measured #{fmt(p.measured_all)} |\n"
      end

    triad_row =
      if triads != [] do
        "| STREAM-like triad `a = b + s·c`, 16 Mi f32 (3 × 4 B × n per pass) | " <>
          Enum.map_join(triads, "; ", fn {t, g} -> "#{t} thread#{if t > 1, do: "s"}: #{fmt(g)} GB/s" end) <>
          " → limit used: **#{fmt(elem(triad, 1))} GB/s** |\n"
      else
        ""
      end

    arch_row =
      case get_in(main.sections, [:compute]) do
        %{arches: arches, best: best, node_arch: node_arch} ->
          per =
            for type <- ["f32", "f64"] do
              list = arches |> Enum.filter(&(&1.type == type)) |> Enum.map_join(", ", &"#{&1.name} #{fmt(hd(&1.gflops))}")
              "#{type}: #{list} (best #{best[type]})"
            end

          "| BLIS kernel sets, gemm n=1024, #{cpus} threads, best round, GFLOP/s | #{Enum.join(per, "; ")}; the node chose **#{node_arch}** |\n"

        _ ->
          ""
      end

    pages_row =
      case get_in(main.sections, [:limits, :pages]) do
        [_ | _] = lines ->
          rate = fn fresh ->
            line = Enum.find(lines, &(&1.fresh == fresh))
            median(Enum.map(line.secs, &(String.to_integer(line.bytes) / &1 / 1.0e9)))
          end

          {fresh, warm} = {rate.("1"), rate.("0")}
          mib = div(String.to_integer(hd(lines).bytes), 1024 * 1024)

          "| Fresh memory: 1 thread writing #{mib} MiB into a new anonymous mapping (a page fault per 4 KiB page), then into the same pages again | " <>
            "fresh **#{fmt(fresh)} GB/s** (#{fmt(4096 / (fresh * 1.0e3))} µs per page); pages that exist #{fmt(warm)} GB/s (#{fmt(warm / fresh)} ×). " <>
            "Every new BEAM binary the allocator cannot take from memory it kept pays the first figure |\n"

        _ ->
          ""
      end

    md =
      if rows == [] and triad_row == "" do
        []
      else
        ["\n## Machine limits (measured in this run)\n\n| limit | value |\n|---|---|\n", rows, triad_row, pages_row, arch_row]
      end

    {md, peaks, triad}
  end

  defp messaging(passes, goals) do
    rows =
      for pass <- passes, m = pass.sections[:messaging], m do
        base = median(m.beam_genserver)

        for {key, what} <- [
              mure_raw: "mure `:stats`, raw envelope (1 message each way)",
              mure_client: "mure `:stats` via `Mure.stats/1` (client process in between)",
              beam_genserver: "**baseline**: `GenServer.call` `:ping` to a BEAM node",
              beam_raw: "BEAM node, raw send/receive `:ping`"
            ] do
          sm = summary(m[key], &(&1 * 1.0e6))
          ratio = median(m[key]) / base

          goal =
            case key do
              :mure_raw -> if ratio <= 1.0, do: "met", else: "**not met**"
              :mure_client -> if ratio <= 1.0, do: "met", else: "**not met**"
              _ -> "—"
            end

          {pass, key, ratio, "| #{what} | #{flags_label(pass.beam_flags)} | #{mmm(sm)} | #{fmt(ratio, 2)} | #{goal} |\n"}
        end
      end
      |> List.flatten()

    if rows == [] do
      {[], goals}
    else
      calls = hd(passes).sections.messaging.calls_per_run

      goals =
        Enum.reduce(rows, goals, fn
          {pass, :mure_raw, ratio, _}, g -> [{"Messaging: tiny round trip ≤ 1.0 × BEAM GenServer call, raw envelope (#{flags_label(pass.beam_flags)})", "#{fmt(ratio, 2)}×", ratio <= 1.0} | g]
          {pass, :mure_client, ratio, _}, g -> [{"Messaging: tiny round trip ≤ 1.0 × BEAM GenServer call, through the client `Mure.stats/1` (#{flags_label(pass.beam_flags)})", "#{fmt(ratio, 2)}×", ratio <= 1.0} | g]
          _, g -> g
        end)

      {[
         "\n## 1. Messaging: tiny request round trip\n\n",
         "Each run times #{calls} sequential calls one by one and keeps their median; the table gives the median, min and max of those run medians, in µs. ",
         "The four kinds are interleaved run by run. Goal: ratio ≤ 1.0 against the GenServer call.\n\n",
         "| round trip | BEAM flags | median µs | min | max | ratio vs GenServer | goal ≤ 1.0 |\n|---|---|---|---|---|---|---|\n",
         Enum.map(rows, &elem(&1, 3))
       ], goals}
    end
  end

  defp transfer(nil, _chunk, goals), do: {[], goals}

  defp transfer(t, chunk, goals) do
    mib = 1024 * 1024

    {rows, goals} =
      for {bytes, s} <- Enum.sort(t),
          {dir, mk, bk, factor, summary?} <- [
            {"upload, client", :mure_up, :beam_push, 1, false},
            {"upload, raw envelope", :raw_up, :beam_push, 1, false},
            {"download, client", :mure_down, :beam_pull, 1, false},
            {"download, raw envelope", :raw_down, :beam_pull, 1, false},
            {"round trip (up + down vs echo), client", :mure_rt, :beam_echo, 2, true},
            {"round trip (up + down vs echo), raw envelope", :raw_rt, :beam_echo, 2, true}
          ],
          s[mk],
          reduce: {[], goals} do
        {rows, goals} ->
          tput = fn secs -> factor * bytes / secs / mib end
          m = summary(s[mk], tput)
          b = summary(s[bk], tput)
          ratio = elem(m, 0) / elem(b, 0)
          big = bytes >= 16 * mib
          goal = cond do not big -> "(info: < 16 MiB)"; ratio >= 1.5 -> "met"; true -> "**not met**" end
          row = "| #{div(bytes, mib)} MiB | #{dir} | #{mmm(m, 0)} | #{mmm(b, 0)} | #{fmt(ratio, 2)} | #{goal} |\n"
          goals = if big and summary?, do: [{"Transfer #{div(bytes, mib)} MiB #{dir}: ≥ 1.5 × BEAM-to-BEAM", "#{fmt(ratio, 2)}×", ratio >= 1.5} | goals], else: goals
          {[row | rows], goals}
      end

    {[
       "\n## 2. Transfer: tensors to and from the node vs the same bytes through a BEAM node\n\n",
       "MiB/s (bytes carried / time; round trip carries the bytes twice). mure, client: `Mure.upload/4`, `Mure.download/1` (what a user calls",
       if(chunk, do: "; the client moves tensors above #{fmt_bytes(chunk)} in pieces, several in flight", else: ""),
       "); ",
       "mure, raw envelope: the same requests sent straight to the node (one message each way; the node alone). ",
       "Baseline: `GenServer.call` to a `:peer` BEAM on the same host that takes the binary (push), returns a binary it holds (pull), or returns what it got (echo). ",
       "Goal: ≥ 1.5 × BEAM-to-BEAM at ≥ 16 MiB. Upload and download are separate requests, so the round trip includes one extra request latency. ",
       "Every timed transfer (mure's and the baseline's) directly follows an untimed one of the same kind and size, garbage collected between: the steady state of ",
       "repeated transfers, where the BEAM's allocator hands back the memory the previous one freed (a new binary on fresh pages costs what the limits ",
       "section's fresh-memory row says).\n\n",
       "| size | direction | mure MiB/s median | min | max | BEAM MiB/s median | min | max | ratio | goal ≥ 1.5 |\n",
       "|---|---|---|---|---|---|---|---|---|---|\n",
       Enum.reverse(rows)
     ], goals}
  end

  defp compute(nil, _peaks, goals), do: {[], goals}

  defp compute(c, peaks, goals) do
    {rows, diag, goals} =
      for {{type, n}, e} <- Enum.sort(c.matmul), reduce: {[], [], goals} do
        {rows, diag, goals} ->
          gf = fn secs -> 2.0 * n * n * n / secs / 1.0e9 end
          m = summary(e.mure, gf)
          # The faster in-process way (BLIS's OpenMP threads, or split as the node does) is the baseline.
          {b, how} = best_blis(e, gf)
          ratio = elem(m, 0) / elem(b, 0)
          peak = peaks[type] && peaks[type].peak
          of_peak = peak && elem(m, 0) / peak
          blis_peak = peak && elem(b, 0) / peak
          big = n >= 1024
          goal = cond do not big -> "(info: n < 1024)"; ratio >= 0.95 -> "met"; true -> "**not met**" end

          row =
            "| #{type} | #{n} | #{mmm(m)} | #{mmm(b)} (#{how}) | #{fmt(ratio, 3)} | #{fmt(of_peak, 2)} / #{fmt(blis_peak, 2)} | #{goal} |\n"

          over_ms = (median(e.mure) - 2.0 * n * n * n / elem(b, 0) / 1.0e9) * 1000
          fresh = e[:blis_fresh] && median(Enum.map(e.blis_fresh, gf))
          node_arch = e[:blis_node_arch] && median(Enum.map(e.blis_node_arch, gf))

          ways = "#{fmt(median(Enum.map(e.blis, gf)))} / #{if e[:blis_split], do: fmt(median(Enum.map(e.blis_split, gf))), else: "—"}"

          d =
            "| #{type} | #{n} | #{fmt(over_ms)} | #{ways} | #{fmt(fresh)} | #{if node_arch, do: "#{fmt(node_arch)} (#{e.node_arch})", else: "same set (#{e.node_arch})"} |\n"

          goals = if big, do: [{"Compute: #{type} matmul n=#{n} ≥ 0.95 × in-process BLIS", "#{fmt(ratio, 3)}×", ratio >= 0.95} | goals], else: goals
          {[row | rows], [d | diag], goals}
      end

    {[
       "\n## 3. Compute: matmul through the node vs BLIS in-process vs the FMA peak\n\n",
       "GFLOP/s = 2n³ / time. mure: data resident on the node, only the request's round trip is timed (raw envelope; result freed untimed)",
       if(c[:placement], do: ", placed on the BLIS path with `{:on, :cpu, {:matmul, a, b}}`", else: ""),
       ". ",
       "Baseline: `bench/baseline.cpp` calls `bli_sgemm_ex`/`bli_dgemm_ex` in-process with the same threads and the kernel set that measured best here ",
       "(candidates chosen from cpuid as the node does), C reused, both with BLIS's own OpenMP threads and split as the node does by default ",
       "(`--split`: one single-threaded BLIS call per block of C); and with the node's kernel set when it differs; the fastest of these (by median) is the baseline. ",
       "Node and baseline take turns in rounds, and each round starts with the same untimed warm-up on both sides (2 calls below n = 2048, else 1). Goal: ≥ 0.95 × in-process BLIS at n ≥ 1024.\n\n",
       "| type | n | mure GFLOP/s median | min | max | BLIS in-process median | min | max (kernels) | ratio | of peak: mure / BLIS | goal ≥ 0.95 |\n",
       "|---|---|---|---|---|---|---|---|---|---|---|\n",
       Enum.reverse(rows),
       auto_line(c),
       "\nWhere the time goes (medians): the node's extra time per request over in-process BLIS; in-process BLIS with a fresh output buffer ",
       "per call (as the node allocates each result: page faults); in-process BLIS with the node's kernel set when it differs.\n\n",
       "| type | n | node − BLIS, ms (difference of medians; < 0 = noise) | BLIS in-process GFLOP/s: OpenMP threads / split | BLIS fresh-C GFLOP/s | BLIS with node's kernels GFLOP/s |\n|---|---|---|---|---|---|\n",
       Enum.reverse(diag)
     ], goals}
  end

  # {summary, label} of the fastest in-process way measured: BLIS's OpenMP threads or the node's
  # split with the best kernel set, or BLIS's threads with the node's kernel set.
  defp best_blis(e, gf) do
    [{e.blis, "#{e.blis_arch}, OpenMP"}, {e[:blis_split], "#{e.blis_arch}, split"}, {e[:blis_node_arch], "#{e[:node_arch]}, OpenMP"}]
    |> Enum.reject(fn {samples, _} -> samples in [nil, []] end)
    |> Enum.map(fn {samples, label} -> {summary(samples, gf), label} end)
    |> Enum.max_by(fn {{med, _, _}, _} -> med end)
  end

  defp auto_line(%{auto: %{n: n, secs: secs}, matmul: mm}) do
    gf = 2.0 * n * n * n / secs / 1.0e9
    blis = mm[{"f32", n}] && median(Enum.map(mm[{"f32", n}].mure, &(2.0 * n * n * n / &1 / 1.0e9)))
    ratio = blis && gf / blis

    "\nThe same f32 #{n}×#{n} matmul with the node's **default placement** (`{:matmul, a, b}`, what `Mure.matmul/2` without `device:` gets), one call: " <>
      "#{fmt(secs * 1000)} ms = #{fmt(gf)} GFLOP/s, #{fmt(ratio, 3)} × the BLIS path above" <>
      if(ratio && ratio < 0.5, do: " — **the node placed it on a slower device**.\n", else: ".\n")
  end

  defp auto_line(_), do: ""

  defp memory(nil, _), do: []

  defp memory(m, triad) do
    n = m.n
    gbs = fn secs -> 12 * n / secs / 1.0e9 end
    stream = m.stream

    cxx = fn kernel, threads, fresh ->
      line = Enum.find(stream, &(&1.kernel == kernel and &1.threads == "#{threads}" and &1.fresh == fresh))
      line && summary(line.secs, gbs)
    end

    threads = stream |> Enum.map(&String.to_integer(&1.threads)) |> Enum.max()
    {tthreads, tgb} = triad || {threads, nil}

    node_rows =
      for {op, kernel} <- [add: "add", multiply: "multiply"],
          {placement, what} <- [default: "node's default placement", cpu: "`{:on, :cpu, ...}`: CPU executor", opencl: "`{:on, :opencl, ...}`: OpenCL"],
          v = m.node[{op, placement}] || (placement == :default && m.node[op]),
          v do
        case v do
          {:unsupported, why} ->
            "| mure `#{op}`, #{what} | not available on this node (#{String.slice(why, 0, 80)}) | | | | |\n"

          secs ->
            s = summary(secs, gbs)
            loop = cxx.(kernel, threads, "0")
            "| mure `#{op}`, #{what} | #{mmm(s)} | #{fmt(elem(s, 0) / tgb, 2)} | #{fmt(loop && elem(s, 0) / elem(loop, 0), 2)} |\n"
        end
      end

    cxx_rows =
      for {kernel, t, fresh, what} <- [
            {"triad", tthreads, "0", "C++ triad (the limit), #{tthreads} thread(s)"},
            {"add", 1, "0", "C++ plain add loop, 1 thread"},
            {"add", threads, "0", "C++ plain add loop, #{threads} threads"},
            {"multiply", threads, "0", "C++ plain multiply loop, #{threads} threads"},
            {"add", threads, "1", "C++ add, fresh output array per call (malloc + page faults), #{threads} threads"}
          ],
          s = cxx.(kernel, t, fresh),
          s do
        "| #{what} | #{mmm(s)} | #{fmt(elem(s, 0) / tgb, 2)} | — |\n"
      end

    [
      "\n## 4. Memory-bound: elementwise over #{div(n, 1024 * 1024)} Mi f32 vs a STREAM-like triad\n\n",
      "Effective GB/s = 3 arrays × 4 B × n / time (the request round trip for mure, raw envelopes; result freed untimed). ",
      "The node places each op itself unless the request says `{:on, device, request}`; each placement is timed. ",
      "No numeric goal is set; the ratio says how close the node gets to the machine's memory bandwidth.\n\n",
      "| what | GB/s median | min | max | ratio vs triad | ratio vs same C++ loop |\n|---|---|---|---|---|---|\n",
      if(node_rows == [], do: "| mure `add` / `multiply` | not measured | | | | |\n", else: node_rows),
      cxx_rows
    ]
  end

  defp user(nil), do: []

  defp user(u) do
    np = u.numpy
    ms = fn list -> list && median(list) * 1000 end

    row = fn what, key, n, e ->
      mure = ms.(e.mure)
      elixir = ms.(e.elixir)
      npd = np && np.default[{key, "f32", n}]
      npt = np && np.threaded[{key, "f32", n}]
      npd_ms = npd && ms.(npd.e2e)
      npt_ms = npt && ms.(npt.e2e)
      npc_ms = npd && ms.(npd.compute)

      "| #{what} | #{fmt(mure)} | #{fmt(elixir)} | #{if elixir, do: "#{fmt(elixir / mure)}×", else: "—"} | " <>
        "#{fmt(npd_ms)} (compute #{fmt(npc_ms)}) | #{if npd_ms, do: "#{fmt(npd_ms / mure, 2)}×", else: "—"} | " <>
        "#{fmt(npt_ms)} | #{if npt_ms, do: "#{fmt(npt_ms / mure, 2)}×", else: "—"} |\n"
    end

    threads = np && np.threads

    [
      "\n## 5. What a user would pick instead (end to end)\n\n",
      "Milliseconds, medians. End to end from input bytes to result bytes: mure = upload both operands, compute, download, free; ",
      "plain Elixir = decode the binaries, compute with lists/binaries, encode (checked equal to mure's result); ",
      "NumPy = `frombuffer`, compute, `tobytes`, timed inside Python (start-up excluded). ",
      "\"vs\" columns: other time / mure time (> 1: mure is faster). NumPy runs once as a user has it (its BLAS's default threads) ",
      "and once with #{threads || "all"} BLAS threads.\n\n",
      "| work (f32) | mure ms | plain Elixir ms | mure speedup vs Elixir | NumPy ms (default) | vs mure | NumPy ms (#{threads} threads) | vs mure |\n",
      "|---|---|---|---|---|---|---|---|\n",
      for({n, e} <- Enum.sort(u.matmul), do: row.("matmul #{n}×#{n}", "matmul", n, e)),
      for({n, e} <- Enum.sort(u.add), do: row.("add #{fmt_count(n)} elements", "add", n, e))
    ]
  end

  # Issue 18, goal 2: the client's same-host path (shared memory; :mure_up / :mure_down when the
  # node shares the host) against the client with shared_memory: false (:dist_up / :dist_down),
  # in the same run (goals at 16 and 64 MiB; 256 MiB is shown); `add` of 16 Mi f32 end to end
  # against NumPy; and issue 18 goal 3: the client's download over distribution against its
  # upload, at every size.
  defp same_host(t, u, np, goals, flags) do
    mib = 1024 * 1024
    tput = fn bytes -> fn secs -> bytes / secs / 1.0e9 end end

    {rows, goals} =
      for {bytes, s} <- Enum.sort(t || %{}),
          bytes >= 16 * mib,
          {dir, mk, dk, ck} <- [
            {"upload", :mure_up, :dist_up, :copy_up},
            {"download", :mure_down, :dist_down, :copy_down}
          ],
          s[mk] && s[dk],
          reduce: {[], goals} do
        {rows, goals} ->
          m = summary(s[mk], tput.(bytes))
          d = summary(s[dk], tput.(bytes))
          ratio = elem(m, 0) / elem(d, 0)
          ok = ratio >= 4.0
          goal? = bytes <= 64 * mib
          verdict = cond do not goal? -> "(info: > 64 MiB)"; ok -> "met"; true -> "**not met**" end
          # The bound: one copy between this BEAM and tmpfs, no node, no request (measure.exs).
          {bound_cols, bound_note} =
            case s[ck] do
              nil ->
                {"— | —", ""}

              samples ->
                b = summary(samples, tput.(bytes))
                {"#{fmt(elem(b, 0), 2)} | #{fmt(elem(b, 0) / elem(d, 0), 2)}", "; one copy alone: #{fmt(elem(b, 0) / elem(d, 0), 2)}×"}
            end

          row = "| #{div(bytes, mib)} MiB | #{dir} | #{mmm(m, 2)} | #{mmm(d, 2)} | #{bound_cols} | #{fmt(ratio, 2)} | #{verdict} |\n"
          goals = if goal?, do: [{"Same-host #{dir} #{div(bytes, mib)} MiB: ≥ 4 × the distribution path (BEAM flags: #{flags})", "#{fmt(ratio, 2)}×#{bound_note}", ok} | goals], else: goals
          {[row | rows], goals}
      end

    {dist_rows, goals} =
      for {bytes, s} <- Enum.sort(t || %{}), s[:dist_up] && s[:dist_down], reduce: {[], goals} do
        {rows, goals} ->
          up = summary(s.dist_up, tput.(bytes))
          down = summary(s.dist_down, tput.(bytes))
          ratio = elem(down, 0) / elem(up, 0)
          ok = ratio >= 0.9
          faults = fn k -> if s[k], do: "#{round(median(s[k]))}", else: "—" end
          pull = if s[:beam_pull], do: fmt(elem(summary(s.beam_pull, tput.(bytes)), 0), 2), else: "—"
          row = "| #{div(bytes, mib)} MiB | #{mmm(up, 2)} | #{mmm(down, 2)} | #{pull} | #{faults.(:dist_up_faults)} / #{faults.(:dist_down_faults)} | #{fmt(ratio, 2)} | #{if ok, do: "met", else: "**not met**"} |\n"
          {[row | rows], [{"Download #{div(bytes, mib)} MiB over distribution through the client: ≥ 0.9 × its upload (BEAM flags: #{flags})", "#{fmt(ratio, 2)}×", ok} | goals]}
      end

    dist_md =
      if dist_rows == [],
        do: [],
        else: [
          "\nOver distribution (`shared_memory: false`), through the client, BEAM flags: #{flags}: downloads against uploads of the same size, same run (GB/s). Goal: ≥ 0.9 ×. ",
          "*BEAM pull*: this BEAM receiving the same bytes from the baseline BEAM (section 2's pull, same rounds), what its own receive path reaches. ",
          "*Page faults*: this BEAM's minor faults during the timed call, median (a download makes a new binary; each fault is a fresh 4 KiB page, priced in the limits section).\n\n",
          "| size | upload GB/s median | min | max | download GB/s median | min | max | BEAM pull GB/s | page faults up / down | ratio | goal ≥ 0.9 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
          Enum.reverse(dist_rows)
        ]

    n = 16 * mib
    mure_add = u && u[:add] && u.add[n] && u.add[n].mure
    np_add = np && np.default[{"add", "f32", n}]

    {add_md, goals} =
      if mure_add && np_add do
        ratio = median(mure_add) / median(np_add.e2e)
        ok = ratio <= 1.0

        {"\n`add` of 16 Mi f32 end to end (upload both, add, download, free): mure #{fmt(median(mure_add) * 1000)} ms, " <>
           "NumPy #{fmt(median(np_add.e2e) * 1000)} ms: #{fmt(ratio, 2)} × NumPy's time (goal ≤ 1.0: #{if ok, do: "met", else: "**not met**"}).\n",
         [{"`add` 16 Mi f32 end to end: ≤ 1.0 × NumPy", "#{fmt(ratio, 2)}×", ok} | goals]}
      else
        {"\n`add` of 16 Mi f32 vs NumPy: not measured (full mode and NumPy needed).\n", goals}
      end

    md =
      if rows == [] do
        ["\n## 2b. Same-host transfers (shared memory)\n\nNot measured (transfers of 16 MiB and more are measured in full mode).\n", dist_md, add_md]
      else
        [
          "\n## 2b. Same-host transfers (shared memory)\n\n",
          "GB/s. The client as a user calls it (`Mure.upload/4`, `Mure.download/1`: tensors of 1 MiB and more through a shared segment ",
          "when the node shares the host; up to 64 MiB through the calling process's reusable segment) against the same calls with `shared_memory: false` (the distribution), ",
          "in the same run; BEAM flags: #{flags} (the bench sets no `+zdbbl`). Goal: ≥ 4 × at 16 and 64 MiB (quick mode: 16 MiB only). ",
          "*One copy* is the bound of any same-host path without a NIF, measured in the same rounds: the same bytes written by this BEAM into a file on tmpfs ",
          "whose pages exist (`:file.pwrite`, upload) and read from it into a new binary (`:file.pread`, download), no node and no request; ",
          "*bound ×* is its rate against the distribution path's: where it is below 4, no path that copies the bytes out of the BEAM once can meet the goal on this machine. ",
          "As in section 2, each timed figure follows an untimed run of the same kind and size.\n\n",
          "| size | direction | shared GB/s median | min | max | distribution GB/s median | min | max | one copy GB/s | bound × | ratio | goal ≥ 4 |\n",
          "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
          Enum.reverse(rows),
          dist_md,
          add_md
        ]
      end

    {md, goals}
  end

  defp fmt_bytes(b) when rem(b, 1024 * 1024) == 0, do: "#{div(b, 1024 * 1024)} MiB"
  defp fmt_bytes(b), do: "#{b} bytes"

  defp fmt_count(n) when rem(n, 1024 * 1024) == 0, do: "#{div(n, 1024 * 1024)} Mi"
  defp fmt_count(n), do: "#{n}"

  defp opencl(nil, _, _, goals), do: {[], goals}
  defp opencl(%{unavailable: true}, _, _, goals), do: {["\n## 6. The OpenCL path\n\nThe node has no OpenCL device: nothing measured.\n"], goals}

  defp opencl(o, mem, _msg, goals) do
    us = fn list -> median(list) * 1.0e6 end
    small = o.small
    cold = o[:cold]
    stats_us = us.(small.stats)

    # Elementwise bandwidth per placement, from the memory-bound section.
    bw =
      if mem do
        n = mem.n
        gbs = fn secs -> 12 * n / secs / 1.0e9 end
        threads = mem.stream |> Enum.map(&String.to_integer(&1.threads)) |> Enum.max()
        loop = Enum.find(mem.stream, &(&1.kernel == "add" and &1.threads == "#{threads}" and &1.fresh == "0"))
        loop1 = Enum.find(mem.stream, &(&1.kernel == "add" and &1.threads == "1" and &1.fresh == "0"))
        l = median(Enum.map(loop.secs, gbs))
        l1 = loop1 && median(Enum.map(loop1.secs, gbs))

        gb = fn placement ->
          case mem.node[{:add, placement}] || (placement == :opencl && mem.node[:add]) do
            list when is_list(list) -> median(Enum.map(list, gbs))
            _ -> nil
          end
        end

        ocl = gb.(:opencl)
        cpu = gb.(:cpu)

        [
          if(ocl,
            do: "| `add` #{div(n, 1024 * 1024)} Mi f32 on OpenCL | #{fmt(ocl)} GB/s = #{fmt(ocl / l, 2)} × the C++ loop on #{threads} threads (#{fmt(l)} GB/s)#{if l1, do: ", #{fmt(ocl / l1, 2)} × on 1 thread (#{fmt(l1)} GB/s)"} |\n",
            else: ""
          ),
          if(cpu, do: "| `add` #{div(n, 1024 * 1024)} Mi f32 on the node's CPU executor | #{fmt(cpu)} GB/s = #{fmt(cpu / l, 2)} × the C++ loop on #{threads} threads |\n", else: ""),
          if(ocl && cpu, do: "| OpenCL / CPU executor, `add` #{div(n, 1024 * 1024)} Mi f32 | **#{fmt(ocl / cpu, 2)}** |\n", else: "")
        ]
      else
        []
      end

    small_row = fn key, what ->
      case small[key] do
        nil -> ""
        list -> "| #{what} | #{fmt(us.(list))} µs round trip → ~#{fmt(us.(list) - stats_us)} µs beyond `:stats` (#{fmt(stats_us)} µs) |\n"
      end
    end

    mm_rows =
      for {n, r} <- Enum.sort(o[:matmul] || %{}) do
        gf = fn secs -> 2.0 * n * n * n / secs / 1.0e9 end

        val = fn
          {:unsupported, why} -> "not available (#{String.slice(why, 0, 60)})"
          list -> "#{fmt(median(Enum.map(list, gf)))} GFLOP/s"
        end

        ratio =
          case {r[:opencl], r[:cpu]} do
            {o_, c} when is_list(o_) and is_list(c) -> "; OpenCL / CPU = **#{fmt(median(c) / median(o_), 3)}**"
            _ -> ""
          end

        "| `matmul` f32 #{n}×#{n}: OpenCL vs CPU executor (BLIS) | #{val.(r[:opencl])} vs #{val.(r[:cpu])}#{ratio} |\n"
      end

    measured =
      case o[:measured] do
        %{opencl: oc, cpu: cc} when is_map(oc) or is_map(cc) ->
          show = fn
            m when is_map(m) -> m |> Enum.sort() |> Enum.map_join(", ", fn {k, v} -> "#{k} #{if is_number(v), do: fmt(v), else: inspect(v)}" end)
            _ -> "—"
          end

          "| the node's own start-up measurements (`:devices` → `measured`, used for default placement) | OpenCL: #{show.(oc)}; CPU: #{show.(cc)} |\n"

        _ ->
          ""
      end

    {per_request_md, goals} = per_request(small, stats_us, goals)

    {[
      "\n## 6. The OpenCL path\n\n",
      "The same ops on the node's OpenCL device (PoCL here) and on its CPU executor (`{:on, device, request}`), raw envelopes. ",
      "Rows a node cannot answer (older nodes knew no placement) say so.\n\n",
      "| figure | value |\n|---|---|\n",
      "| kernel build, cold (`clBuildProgram` at node start-up, `:devices` → `kernel_build_ms`) | #{fmt(o.kernel_build_ms)} ms (on the node's start-up path, not on any request) |\n",
      if(cold,
        do: "| first OpenCL `add` after start (#{fmt_count(cold.n)} f32, `#{cold[:request] || "{:add, a, b}"}`; includes PoCL's first launch) | #{fmt(cold.first * 1000)} ms vs #{fmt(median(cold.warm) * 1000)} ms warm (median of #{length(cold.warm)}) |\n",
        else: ""
      ),
      bw,
      mm_rows,
      small_row.(:add_1k_opencl, "per-request cost, `add` of 1 Ki f32 on OpenCL"),
      small_row.(:add_1k_cpu, "per-request cost, `add` of 1 Ki f32 on the CPU executor"),
      small_row.(:add_1k, "per-request cost, `add` of 1 Ki f32, default placement"),
      small_row.(:matmul_16_opencl, "per-request cost, `matmul` 16×16 on OpenCL"),
      small_row.(:matmul_16_cpu, "per-request cost, `matmul` 16×16 on the CPU executor"),
      small_row.(:matmul_16, "per-request cost, `matmul` 16×16, default placement"),
      measured,
      per_request_md,
      "\nNot measured here: f64 elementwise, fused kernels and the JIT (see the programs section when present), ",
      "eager Nx ops through Mure.Backend (see the Nx section when present), ",
      "a per-request kernel build (kernels are built at start-up or cached), and OpenCL on a GPU (PoCL's CPU device only on this machine).\n"
    ], goals}
  end

  # Issue 18, goal 1: what a tiny op on a resident tensor costs beyond a `:stats` round trip, and a
  # 16x16 matmul round trip against ggml rpc's (43 us for matmul 16x16 resident, measured on an
  # Intel Xeon in issue 18: a fixed reference, since ggml is not on this machine).
  @ggml_matmul_16_us 43.0
  @tiny_beyond_stats_us 10.0

  defp per_request(small, stats_us, goals) do
    us = fn list -> median(list) * 1.0e6 end
    runs = length(small.stats)
    beyond = fn key -> small[key] && us.(small[key]) - stats_us end
    # The kinds are interleaved run by run: each run's op median minus the same run's `:stats` median.
    paired = fn key -> small[key] && Enum.zip_with(small[key], small.stats, &((&1 - &2) * 1.0e6)) end

    show = fn key ->
      case beyond.(key) do
        nil -> "—"
        d -> "#{fmt(d)} µs (per run #{fmt(Enum.min(paired.(key)))} .. #{fmt(Enum.max(paired.(key)))})"
      end
    end

    goals =
      case beyond.(:add_1k) do
        nil ->
          goals

        d ->
          [{"Per-request: `add` 1 Ki f32 on a resident tensor (default placement) ≤ #{fmt(@tiny_beyond_stats_us)} µs beyond `:stats` " <>
              "(CPU executor #{show.(:add_1k_cpu)}, OpenCL #{show.(:add_1k_opencl)})",
            show.(:add_1k), d <= @tiny_beyond_stats_us} | goals]
      end

    {mm_md, goals} =
      case small[:matmul_16] do
        nil ->
          {"", goals}

        list ->
          m = us.(list)
          ratio = m / @ggml_matmul_16_us

          {"| `matmul` 16×16 round trip (default placement) vs ggml rpc's #{fmt(@ggml_matmul_16_us)} µs (fixed reference: Intel Xeon, issue 18; ggml is not on this machine) | #{fmt(m)} µs (min #{fmt(Enum.min(list) * 1.0e6)}) = **#{fmt(ratio, 2)} ×** |\n",
           [{"Per-request: `matmul` 16×16 round trip ≤ 1.0 × ggml rpc (#{fmt(@ggml_matmul_16_us)} µs, fixed reference from issue 18's Intel Xeon, not measured here)",
             "#{fmt(m)} µs = #{fmt(ratio, 2)}×", ratio <= 1.0} | goals]}
      end

    {["| tiny op beyond `:stats` (medians of #{runs} run medians; per run: that run's op minus its `:stats`) | `add` 1 Ki default #{show.(:add_1k)}; CPU executor #{show.(:add_1k_cpu)}; OpenCL #{show.(:add_1k_opencl)} |\n",
      mm_md], goals}
  end

  defp spot(passes, number) do
    rows =
      for pass <- passes, s = pass.sections[:spot], s do
        gf = &(2.0 * 1024 * 1024 * 1024 / &1 / 1.0e9)
        mm = summary(s.matmul_f32_1024, gf)
        blis = s[:blis_f32_1024] && median(Enum.map(s.blis_f32_1024, gf))
        add = s.add_16m && summary(s.add_16m, &(12 * 16 * 1024 * 1024 / &1 / 1.0e9))
        "| #{flags_label(pass.beam_flags)} | #{mmm(mm)} | #{fmt(blis)} | #{if add, do: mmm(add), else: "— | — | —"} |\n"
      end

    if length(rows) < 2 do
      []
    else
      [
        "\n## #{number}. BEAM flags and compute (spot check)\n\n",
        "The same requests under each pass's BEAM flags (same node binary and settings), with in-process BLIS measured in the same pass as a control. ",
        "BEAM schedulers that spin while waiting for a reply compete with the node's BLIS (OpenMP) and PoCL threads for the cores.\n\n",
        "| BEAM flags | mure matmul f32 1024 GFLOP/s median | min | max | in-process BLIS, same pass (node's kernels) | mure add 16 Mi f32 (default placement) GB/s median | min | max |\n|---|---|---|---|---|---|---|---|\n",
        rows
      ]
    end
  end

  defp goals_md([]), do: []

  defp goals_md(goals) do
    met = Enum.count(goals, &elem(&1, 2))

    [
      "\n## Goals: #{met} of #{length(goals)} met\n\n| goal | achieved | |\n|---|---|---|\n",
      Enum.map(goals, fn {what, got, ok} -> "| #{what} | #{got} | #{if ok, do: "met", else: "**not met**"} |\n" end)
    ]
  end

  ## Plots --------------------------------------------------------------------------------------

  defp plots(main, dir, stamp) do
    gnuplot = System.find_executable("gnuplot")
    s = main.sections

    cond do
      is_nil(gnuplot) ->
        IO.puts(:stderr, "report: gnuplot not found (apt-get install gnuplot-nox); no plots")
        []

      true ->
        terminal = if terminal?(gnuplot, "pngcairo"), do: "pngcairo size 1100,600", else: "png size 1100,600"
        xfer = s[:transfer] && transfer_plot(s.transfer, dir, stamp, terminal, gnuplot)
        comp = s[:compute] && compute_plot(s.compute, main, dir, stamp, terminal, gnuplot)
        Enum.reject([xfer, comp], &is_nil/1)
    end
  end

  defp terminal?(gnuplot, name) do
    match?({_, 0}, System.cmd(gnuplot, ["-e", "set terminal #{name}; exit"], stderr_to_stdout: true))
  end

  defp run_gnuplot(gnuplot, script_path, png) do
    case System.cmd(gnuplot, [script_path], stderr_to_stdout: true) do
      {_, 0} -> Path.basename(png)
      {out, st} ->
        IO.puts(:stderr, "report: gnuplot failed (#{st}) for #{png}:\n#{out}")
        nil
    end
  end

  defp transfer_plot(t, dir, stamp, terminal, gnuplot) do
    mib = 1024 * 1024
    dat = Path.join(dir, "bench-#{stamp}-transfer.dat")
    png = Path.join(dir, "bench-#{stamp}-transfer.png")

    lines =
      for {bytes, s} <- Enum.sort(t) do
        cols =
          for {k, f} <- [mure_up: 1, mure_down: 1, mure_rt: 2, beam_push: 1, beam_pull: 1, beam_echo: 2, raw_up: 1, raw_down: 1] do
            if s[k], do: fmt(median(Enum.map(s[k], &(f * bytes / &1 / mib))), 1), else: "NaN"
          end

        "#{div(bytes, mib)} #{Enum.join(cols, " ")}\n"
      end

    File.write!(dat, ["# MiB mure_up mure_down mure_rt beam_push beam_pull beam_echo raw_up raw_down (MiB/s, medians)\n" | lines])

    script = """
    set terminal #{terminal}
    set output '#{png}'
    set title 'Transfer throughput vs size (medians; lines: client and BEAM baseline)'
    set xlabel 'tensor size (MiB)'
    set ylabel 'MiB/s'
    set yrange [0:*]
    set logscale x 2
    set key outside right
    set grid
    plot '#{dat}' using 1:2 with linespoints lw 2 lc rgb 'dark-violet' title 'mure upload', \\
         '' using 1:5 with linespoints dt 2 lc rgb 'dark-violet' title 'BEAM push', \\
         '' using 1:3 with linespoints lw 2 lc rgb 'forest-green' title 'mure download', \\
         '' using 1:6 with linespoints dt 2 lc rgb 'forest-green' title 'BEAM pull', \\
         '' using 1:4 with linespoints lw 2 lc rgb 'blue' title 'mure up+down', \\
         '' using 1:7 with linespoints dt 2 lc rgb 'blue' title 'BEAM echo', \\
         '' using 1:8 with points pt 7 lc rgb 'dark-violet' title 'mure upload, raw envelope', \\
         '' using 1:9 with points pt 7 lc rgb 'forest-green' title 'mure download, raw envelope'
    """

    gp = Path.join(dir, "bench-#{stamp}-transfer.gp")
    File.write!(gp, script)
    run_gnuplot(gnuplot, gp, png)
  end

  defp compute_plot(c, main, dir, stamp, terminal, gnuplot) do
    dat = Path.join(dir, "bench-#{stamp}-compute.dat")
    png = Path.join(dir, "bench-#{stamp}-compute.png")
    {_, peaks, _} = limits(main)
    sizes = c.matmul |> Map.keys() |> Enum.map(&elem(&1, 1)) |> Enum.uniq() |> Enum.sort()

    lines =
      for n <- sizes do
        gf = fn secs -> 2.0 * n * n * n / secs / 1.0e9 end

        cols =
          for type <- ["f32", "f64"], k <- [:mure, :blis] do
            case c.matmul[{type, n}] do
              nil -> "NaN"
              e -> fmt(median(Enum.map(e[k], gf)), 2)
            end
          end

        "#{n} #{Enum.join(cols, " ")}\n"
      end

    File.write!(dat, ["# n mure_f32 blis_f32 mure_f64 blis_f64 (GFLOP/s, medians)\n" | lines])
    p32 = peaks["f32"] && peaks["f32"].peak
    p64 = peaks["f64"] && peaks["f64"].peak

    peak_lines =
      [p32 && "#{fmt(p32, 2)} with lines dt 3 lw 2 lc rgb 'blue' title 'f32 FMA peak (cores x 1-thread)'", p64 && "#{fmt(p64, 2)} with lines dt 3 lw 2 lc rgb 'red' title 'f64 FMA peak (cores x 1-thread)'"]
      |> Enum.reject(&is_nil/1)

    script = """
    set terminal #{terminal}
    set output '#{png}'
    set title 'Matmul throughput vs size (medians; data resident on the node)'
    set xlabel 'n (n x n times n x n)'
    set ylabel 'GFLOP/s'
    set logscale x 2
    set yrange [0:*]
    set key outside right
    set grid
    plot '#{dat}' using 1:2 with linespoints lw 2 lc rgb 'blue' title 'mure f32', \\
         '' using 1:3 with linespoints dt 2 lc rgb 'blue' title 'BLIS in-process f32', \\
         '' using 1:4 with linespoints lw 2 lc rgb 'red' title 'mure f64', \\
         '' using 1:5 with linespoints dt 2 lc rgb 'red' title 'BLIS in-process f64'#{Enum.map(peak_lines, &", \\\n     #{&1}")}
    """

    gp = Path.join(dir, "bench-#{stamp}-compute.gp")
    File.write!(gp, script)
    run_gnuplot(gnuplot, gp, png)
  end
end

Report.main(System.argv())
