# bench/cluster.exs — issue 7's figures: a cluster of three hosts (network namespaces built by
# scripts/cluster, each with its own epmd and node, under CPU quotas) against the sum of its members
# measured one at a time in the same run, and a split by measured speed against an equal split
# with one member on a shaped link. Run by scripts/bench; standalone (as root):
#   cd elixir_client && elixir --name b_$$@127.0.0.1 -S mix run ../bench/cluster.exs -- [--quick] [--out FILE]
#
# Prints a markdown section and appends it to FILE when given. Where network namespaces cannot be
# made (not root, no iproute2), the section says so and why. Exits non-zero when a measurement
# breaks (a wrong result, an error); never because a goal is not met.

{opts, _, _} = OptionParser.parse(System.argv() -- ["--"], strict: [quick: :boolean, out: :string])
quick = Keyword.get(opts, :quick, false)
reps = if quick, do: 2, else: 5
root = Path.expand("..", __DIR__)
script = Path.join(root, "scripts/cluster")

emit = fn lines ->
  md = Enum.join(lines, "\n") <> "\n"
  IO.puts(md)
  if opts[:out], do: File.write!(opts[:out], md, [:append])
end

title = "## 8. A cluster of three hosts (issue 7)"

case System.cmd(script, ["check"], stderr_to_stdout: true) do
  {_, 0} ->
    :ok

  {out, _} ->
    emit.([title, "", "**SKIPPED**: scripts/cluster cannot build network namespaces here: #{String.trim(out)}", ""])
    System.halt(0)
end

sh! = fn args ->
  case System.cmd(script, args, stderr_to_stdout: true) do
    {out, 0} -> out
    {out, status} -> raise "scripts/cluster #{Enum.join(args, " ")} failed (#{status}): #{out}"
  end
end

median = fn xs -> Enum.sort(xs) |> Enum.at(div(length(xs), 2)) end
fmt = fn x, d -> :erlang.float_to_binary(x * 1.0, decimals: d) end
met = fn ok -> if ok, do: "met", else: "**not met**" end

hosts = ["10.77.0.11", "10.77.0.12", "10.77.0.13"]
nodes = Enum.map(hosts, &:"mure@#{&1}")
quotas = [0.25, 0.5, 0.5]
up = ~w(up --hosts 3 --blis-threads 1 --cpu 1=0.25 --cpu 2=0.5 --cpu 3=0.5)

matrix = fn rows, cols, seed ->
  pattern = for i <- 0..96, into: <<>>, do: <<rem(i * seed, 7) - 3.0::float-32-native>>
  :binary.part(:binary.copy(pattern, div(rows * cols, 97) + 1), 0, rows * cols * 4)
end

start = fn cluster_opts, count ->
  # The namespaces stand for separate hosts: tensors go over their links, not shared memory.
  {:ok, c} =
    Mure.Cluster.start_link(
      [discover_interval: 500, connect_opts: [shared_memory: false]] ++ cluster_opts
    )
  :ok = Mure.Cluster.await_members(c, count, 60_000)
  c
end

# The two jobs: a partitioned sgemm (the shared operand resident on every member) and an
# elementwise program with enough arithmetic per element that the members' CPUs, not this
# client's, set the pace.
k = 2048
m = if quick, do: 3000, else: 6000
ew_rows = if quick, do: 4096, else: 8192
ew_cols = 1024
a = {matrix.(m, k, 3), {:f, 32}, {m, k}}
b = {matrix.(k, k, 5), {:f, 32}, {k, k}}
x = {matrix.(ew_rows, ew_cols, 7), {:f, 32}, {ew_rows, ew_cols}}
alias Mure.Expr

ew = Mure.jit(fn x ->
  x |> Expr.sin() |> Expr.exp() |> Expr.tanh() |> Expr.cos() |> Expr.sigmoid() |> Expr.sqrt() |> Expr.log1p() |> Expr.multiply(x)
end)

flops = 2 * m * k * k
ew_bytes = ew_rows * ew_cols * 4

{:ok, ref_conn} = Mure.start_link(memory_limit: 8 * 1024 * 1024 * 1024)
dot_ref = Mure.run!(Mure.jit(&Mure.Expr.dot/2), [a, b], outputs: :return, conn: ref_conn, timeout: 300_000)
ew_ref = Mure.run!(ew, [x], outputs: :return, conn: ref_conn, timeout: 300_000)
Mure.stop(ref_conn)

# Median seconds of `reps` runs of each job on cluster `c` (after one warm-up that also puts the
# shared operand on every member), checking every result.
measure = fn c, job_opts ->
  {:ok, shared} = Mure.Cluster.share(c, b)

  dot = fn ->
    {us, r} = :timer.tc(fn -> Mure.Cluster.dot(c, a, shared, job_opts) end)
    {:ok, ^dot_ref} = r
    us / 1.0e6
  end

  ew_job = fn ->
    {us, r} = :timer.tc(fn -> Mure.Cluster.run(c, ew, [x], job_opts) end)
    {:ok, ^ew_ref} = r
    us / 1.0e6
  end

  dot.()
  ew_job.()
  dot_s = median.(for _ <- 1..reps, do: dot.())
  ew_s = median.(for _ <- 1..reps, do: ew_job.())
  Mure.Cluster.unshare(c, shared)
  %{dot: dot_s, ew: ew_s}
end

t0 = System.monotonic_time(:millisecond)
sh!.(up)

try do
  # Each member alone (a cluster of one), then all three. `dial_in: false`: the members measured
  # before stay connected to this BEAM, and a cluster that takes dial-ins takes every connected
  # hidden node with its prefix (Mure.Cluster's docs) — host 3 "alone" was then all three.
  singles =
    for node <- nodes do
      c = start.([nodes: [node], dial_in: false], 1)
      members = Mure.Cluster.status(c).members |> Enum.map(& &1.node)
      unless members == [node], do: raise("the cluster of #{node} alone has members #{inspect(members)}")
      r = measure.(c, [])
      Mure.Cluster.stop(c)
      r
    end

  c = start.([hosts: hosts], 3)
  probe_table = Mure.Cluster.format_status(Mure.Cluster.status(c))
  all = measure.(c, [])
  after_table = Mure.Cluster.format_status(Mure.Cluster.status(c))
  Mure.Cluster.stop(c)

  row = fn label, key, units, unit_name, scale ->
    rates = Enum.map(singles, &(units / &1[key] / scale))
    sum = Enum.sum(rates)
    together = units / all[key] / scale
    ratio = together / sum

    {"| #{label} | " <> Enum.map_join(rates, " | ", &fmt.(&1, 1)) <>
       " | #{fmt.(sum, 1)} | #{fmt.(together, 1)} | #{fmt.(ratio, 2)} | #{met.(ratio >= 0.8)} |",
     unit_name}
  end

  {dot_row, _} = row.("sgemm #{m}×#{k} · #{k}×#{k} (GFLOP/s)", :dot, flops, "GFLOP/s", 1.0e9)
  {ew_row, _} = row.("8-op elementwise program on #{ew_rows}×#{ew_cols} f32 (MB/s of input)", :ew, ew_bytes, "MB/s", 1.0e6)

  # One member on a phone-like link: split by measured speed against an equal split.
  sh!.(~w(shape 3 20mbit))
  small_m = if quick, do: 600, else: 1200
  small_a = {binary_part(elem(a, 0), 0, small_m * k * 4), {:f, 32}, {small_m, k}}
  small_ref = binary_part(dot_ref, 0, small_m * k * 4)
  small_x_rows = if quick, do: 1024, else: 2048
  small_x = {binary_part(elem(x, 0), 0, small_x_rows * ew_cols * 4), {:f, 32}, {small_x_rows, ew_cols}}
  small_ew_ref = binary_part(ew_ref, 0, small_x_rows * ew_cols * 4)

  c = start.([hosts: hosts], 3)
  shaped_table = Mure.Cluster.format_status(Mure.Cluster.status(c))
  {:ok, shared} = Mure.Cluster.share(c, b)
  {:ok, _} = Mure.Cluster.dot(c, {matrix.(3, k, 1), {:f, 32}, {3, k}}, shared, piece_rows: 1)

  rows_of = fn -> Map.new(Mure.Cluster.status(c).members, &{&1.node, &1.work.rows}) end

  timed = fn fun, expected ->
    before = rows_of.()
    {us, {:ok, r}} = :timer.tc(fun)
    ^expected = r
    rows = rows_of.()
    {us / 1000, Enum.map(nodes, &(rows[&1] - Map.get(before, &1, 0)))}
  end

  shaped_rows =
    for {label, fun, expected} <- [
          {"sgemm #{small_m}×#{k} · #{k}×#{k}", &Mure.Cluster.dot(c, small_a, shared, &1), small_ref},
          {"8-op elementwise program on #{small_x_rows}×#{ew_cols} f32", &Mure.Cluster.run(c, ew, [small_x], &1), small_ew_ref}
        ] do
      timed.(fn -> fun.(balance: :speed) end, expected)
      speed = for _ <- 1..reps, do: timed.(fn -> fun.(balance: :speed) end, expected)
      equal = for _ <- 1..reps, do: timed.(fn -> fun.(balance: :equal) end, expected)
      s_ms = median.(Enum.map(speed, &elem(&1, 0)))
      e_ms = median.(Enum.map(equal, &elem(&1, 0)))
      {_, s_rows} = hd(speed)
      {_, e_rows} = hd(equal)

      "| #{label} | #{fmt.(s_ms, 0)} (rows #{Enum.join(s_rows, "/")}) | #{fmt.(e_ms, 0)} (rows #{Enum.join(e_rows, "/")}) | " <>
        "#{fmt.(e_ms / s_ms, 2)} | #{met.(s_ms < e_ms)} |"
    end

  Mure.Cluster.stop(c)
  secs = (System.monotonic_time(:millisecond) - t0) / 1000

  emit.([
    title,
    "",
    "scripts/cluster builds three hosts as network namespaces on this machine (each its own address, epmd and " <>
      "node; the client BEAM outside reaches them through a bridge). Each node runs on one BLIS thread under a " <>
      "CPU quota of #{Enum.map_join(quotas, " / ", &"#{&1}")} CPU, so the members are unequal and, together, " <>
      "leave this 2-core machine's client some CPU. Every result is checked against one node's. Medians of #{reps} " <>
      "runs (after a warm-up), #{fmt.(secs, 0)} s for this section.",
    "",
    "### Throughput: the cluster of three against the sum of its members alone (same run)",
    "",
    "| job | host 1 alone | host 2 alone | host 3 alone | sum | cluster of 3 | ratio | goal ≥ 0.8 |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
    dot_row,
    ew_row,
    "",
    "Members as measured when they joined (then corrected from the jobs' real times):",
    "",
    "```",
    String.trim_trailing(probe_table),
    "```",
    "",
    "After the jobs:",
    "",
    "```",
    String.trim_trailing(after_table),
    "```",
    "",
    "### One member on a 20 Mbit/s link (tbf, both ways): split by measured speed vs equal split",
    "",
    "| job | split by speed, ms (rows h1/h2/h3) | equal split, ms (rows h1/h2/h3) | equal / speed | goal: speed faster |",
    "|---|---:|---:|---:|---|",
    shaped_rows,
    "",
    "```",
    String.trim_trailing(shaped_table),
    "```",
    ""
  ] |> List.flatten())
after
  System.cmd(script, ["down"], stderr_to_stdout: true)
end
