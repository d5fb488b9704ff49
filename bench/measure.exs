# scripts/bench, measuring pass: runs in a distributed BEAM inside the client's Mix project,
#
#   cd elixir_client && MIX_ENV=bench elixir --name bench_$$@127.0.0.1 --erl "<flags>" \
#     -S mix run ../bench/measure.exs --label default --out /tmp/x.bin [--quick] [--sections a,b]
#
# launches a mure node (the client's Port mode), a baseline BEAM (:peer, same emulator flags), the
# C++ baselines (bench/baseline.cpp) and NumPy, and writes every raw sample (seconds, or GFLOP/s for
# the FMA peak) to --out as an Erlang term. bench/report.exs turns one or more of these files into
# the markdown tables and plots. Any failed measurement raises: the BEAM exits non-zero.
# Goals are judged only by the report, and never fail the run.

defmodule Bench.Util do
  @moduledoc false

  def now_ns, do: :erlang.monotonic_time(:nanosecond)

  @doc "Seconds `fun` takes, and its result."
  def tc(fun) do
    t0 = now_ns()
    r = fun.()
    {(now_ns() - t0) / 1.0e9, r}
  end

  def secs(fun), do: elem(tc(fun), 0)

  @doc "This OS process's minor page faults so far (/proc/self/stat), or nil where unreadable."
  def minor_faults do
    with {:ok, stat} <- File.read("/proc/self/stat"),
         [_, rest] <- String.split(stat, ") ", parts: 2),
         {n, ""} <- rest |> String.split(" ") |> Enum.at(7, "") |> Integer.parse() do
      n
    else
      _ -> nil
    end
  end

  def median(list) do
    s = Enum.sort(list)
    n = length(s)
    if rem(n, 2) == 1, do: Enum.at(s, div(n, 2)), else: (Enum.at(s, div(n, 2) - 1) + Enum.at(s, div(n, 2))) / 2
  end

  def log(msg), do: IO.puts(:stderr, "[bench #{time()}] #{msg}")

  defp time do
    {{_, _, _}, {h, m, s}} = :calendar.local_time()
    :io_lib.format("~2..0B:~2..0B:~2..0B", [h, m, s]) |> IO.iodata_to_binary()
  end

  def fail!(msg) do
    IO.puts(:stderr, "bench: FAILED: #{msg}")
    System.halt(1)
  end

  @doc "A binary of `count` floats in [0, 1): a random block of 64 Ki elements, repeated."
  def random_floats(count, bits, seed) do
    :rand.seed(:exsss, {seed, seed * 7 + 1, seed * 13 + 2})
    block_elems = min(count, 65_536)

    block =
      for _ <- 1..block_elems, into: <<>>, do: <<:rand.uniform()::float-size(bits)-native>>

    reps = div(count + block_elems - 1, block_elems)
    binary_part(:binary.copy(block, reps), 0, count * div(bits, 8))
  end

  def mib(bytes), do: div(bytes, 1024 * 1024)
end

defmodule Bench.Raw do
  @moduledoc false
  # The protocol envelope (docs/protocol.md) sent straight from the calling process: one message
  # each way, nothing in between. The messaging benchmark uses it to stay minimal.

  @doc "Like call/3, but an error reply comes back as `{:error, reason}` instead of raising."
  def try_call(node, request, timeout \\ 600_000) do
    ref = make_ref()
    send({:mure, node}, {:"$mure", 1, self(), ref, self(), request})

    receive do
      {:"$mure_reply", ^ref, reply} -> reply
    after
      timeout -> raise "mure #{inspect(request, limit: 5)}: no reply in #{timeout} ms"
    end
  end

  def call(node, request, timeout \\ 10_000) do
    ref = make_ref()
    send({:mure, node}, {:"$mure", 1, self(), ref, self(), request})

    receive do
      {:"$mure_reply", ^ref, {:ok, value}} -> value
      {:"$mure_reply", ^ref, {:error, e}} -> raise "mure #{inspect(request)}: #{inspect(e)}"
    after
      timeout -> raise "mure #{inspect(request)}: no reply in #{timeout} ms"
    end
  end
end

{:module, _, echo_beam, _} =
  defmodule Bench.Echo do
    @moduledoc false
    # Runs on the baseline BEAM (a :peer node): what a user would run instead of a C-node.
    use GenServer

    def init(_), do: {:ok, <<>>}

    def handle_call(:ping, _from, state), do: {:reply, :pong, state}
    def handle_call({:push, bin}, _from, state), do: {:reply, byte_size(bin), state, {:continue, :gc}}
    def handle_call({:echo, bin}, _from, state), do: {:reply, bin, state, {:continue, :gc}}
    def handle_call({:make, n}, _from, _state), do: {:reply, :ok, :binary.copy(<<7>>, n), {:continue, :gc}}
    def handle_call(:pull, _from, state), do: {:reply, state, state}

    def handle_info({:raw_ping, pid, ref}, state) do
      send(pid, {ref, :pong})
      {:noreply, state}
    end

    # Drop the big binaries just handled (after the reply is on its way).
    def handle_continue(:gc, state) do
      :erlang.garbage_collect()
      {:noreply, state}
    end

    def start do
      {:ok, pid} = GenServer.start(__MODULE__, nil, name: __MODULE__)
      pid
    end
  end

defmodule Bench.Peer do
  @moduledoc false
  import Bench.Util

  def start(beam_flags, echo_beam) do
    name = :"bench_peer_#{System.pid()}_#{System.unique_integer([:positive])}"
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    flags = beam_flags |> String.split() |> Enum.map(&String.to_charlist/1)

    {:ok, peer, node} =
      :peer.start(%{name: name, host: ~c"127.0.0.1", longnames: true, args: flags ++ paths, wait_boot: 30_000})

    {:module, Bench.Echo} = :erpc.call(node, :code, :load_binary, [Bench.Echo, ~c"bench_echo.beam", echo_beam])
    pid = :erpc.call(node, Bench.Echo, :start, [])
    unless is_pid(pid), do: fail!("the baseline BEAM did not start its echo server")
    log("baseline BEAM #{node} started (flags: #{if beam_flags == "", do: "none", else: beam_flags})")
    {peer, node}
  end

  def call(node, msg, timeout \\ 600_000), do: GenServer.call({Bench.Echo, node}, msg, timeout)

  def raw_ping(node) do
    ref = make_ref()
    send({Bench.Echo, node}, {:raw_ping, self(), ref})

    receive do
      {^ref, :pong} -> :ok
    after
      10_000 -> raise "baseline BEAM: no raw pong in 10 s"
    end
  end
end

defmodule Bench.Baseline do
  @moduledoc false
  # The C++ baselines: bench/baseline.cpp, built by scripts/bench into the build tree.
  import Bench.Util

  def run(bin, args) do
    case System.cmd(bin, args, stderr_to_stdout: true) do
      {out, 0} ->
        out |> String.split("\n", trim: true) |> Enum.map(&parse_line/1)

      {out, status} ->
        fail!("#{bin} #{Enum.join(args, " ")} exited with #{status}:\n#{out}")
    end
  end

  # `<kind> key=value ...`; secs and gflops are comma-separated float lists.
  defp parse_line(line) do
    [kind | pairs] = String.split(line, " ", trim: true)

    fields =
      for pair <- pairs, into: %{} do
        case String.split(pair, "=", parts: 2) do
          [k, v] when k in ["secs", "gflops"] ->
            {String.to_atom(k), v |> String.split(",") |> Enum.map(&to_float/1)}

          [k, v] ->
            {String.to_atom(k), v}

          _ ->
            fail!("unparseable baseline output: #{line}")
        end
      end

    Map.put(fields, :kind, kind)
  end

  defp to_float(s) do
    case Float.parse(s) do
      {f, ""} -> f
      _ -> fail!("not a number in baseline output: #{s}")
    end
  end
end

defmodule Bench.Plain do
  @moduledoc false
  # What a user writes without a numerics library: plain Elixir over binaries and lists.

  def matmul_f32(a, b, n) do
    rows = a |> floats() |> Enum.chunk_every(n)
    cols = b |> floats() |> Enum.chunk_every(n) |> Enum.zip() |> Enum.map(&Tuple.to_list/1)
    for row <- rows, col <- cols, into: <<>>, do: <<dot(row, col, 0.0)::float-32-native>>
  end

  defp floats(bin), do: for(<<x::float-32-native <- bin>>, do: x)

  defp dot([x | xs], [y | ys], acc), do: dot(xs, ys, acc + x * y)
  defp dot([], [], acc), do: acc

  def add_f32(a, b), do: add(a, b, <<>>)
  defp add(<<x::float-32-native, ra::binary>>, <<y::float-32-native, rb::binary>>, acc),
    do: add(ra, rb, <<acc::binary, x + y::float-32-native>>)

  defp add(<<>>, <<>>, acc), do: acc
end

defmodule Bench.NumPy do
  @moduledoc false
  import Bench.Util

  # Timed inside Python (perf_counter), so interpreter start-up is not counted. End to end means
  # from the input bytes to the result's bytes, as with mure (upload ... download).
  @script ~S"""
  import sys, time, os
  import numpy as np
  def blas():
      libs = [l.split()[-1] for l in open('/proc/self/maps') if any(k in l for k in ('blas', 'blis', 'mkl'))]
      return sorted(set(libs))[0] if libs else 'none'
  rng = np.random.default_rng(1)
  print('numpy version=%s blas=%s' % (np.__version__, blas()))
  for task in sys.argv[1:]:
      op, dt, n, reps = task.split(':'); n = int(n); reps = int(reps)
      dtype = np.float32 if dt == 'f32' else np.float64
      count = n * n if op == 'matmul' else n
      ab = rng.random(count, dtype=dtype).tobytes(); bb = rng.random(count, dtype=dtype).tobytes()
      shape = (n, n) if op == 'matmul' else (n,)
      f = (lambda x, y: x @ y) if op == 'matmul' else (lambda x, y: x + y)
      e2e = []; comp = []
      for r in range(reps + 2):
          t0 = time.perf_counter()
          A = np.frombuffer(ab, dtype=dtype).reshape(shape); B = np.frombuffer(bb, dtype=dtype).reshape(shape)
          t1 = time.perf_counter()
          C = f(A, B)
          t2 = time.perf_counter()
          out = C.tobytes()
          t3 = time.perf_counter()
          if r >= 2:
              e2e.append(t3 - t0); comp.append(t2 - t1)
          del C, out
      print('numpy op=%s type=%s n=%d e2e=%s compute=%s' % (op, dt, n, ','.join('%.9g' % x for x in e2e),
            ','.join('%.9g' % x for x in comp)))
      sys.stdout.flush()
  """

  def python do
    Enum.find(["/usr/bin/python3", System.find_executable("python3")], fn
      nil -> false
      py -> match?({_, 0}, System.cmd(py, ["-c", "import numpy"], stderr_to_stdout: true))
    end)
  end

  @doc "Runs the tasks (`op:type:n:reps`); `threads` nil = the environment as a user has it."
  def run(py, tasks, threads) do
    # OpenBLAS presets of this workplace halve a current OpenBLAS: unset them for this command only.
    env = [{"OPENBLAS_CORETYPE", nil}, {"OPENBLAS_L2_SIZE", nil}]

    env =
      if threads,
        do: env ++ Enum.map(~w(OMP_NUM_THREADS BLIS_NUM_THREADS OPENBLAS_NUM_THREADS), &{&1, "#{threads}"}),
        else: env

    case System.cmd(py, ["-c", @script | tasks], env: env, stderr_to_stdout: true) do
      {out, 0} ->
        lines = String.split(out, "\n", trim: true)

        info =
          Enum.find_value(lines, fn
            "numpy version=" <> rest ->
              [v, "blas=" <> b] = String.split(rest, " ", parts: 2)
              %{version: v, blas: b}

            _ ->
              nil
          end)

        results =
          for "numpy op=" <> _ = line <- lines, into: %{} do
            f = line |> String.split(" ") |> tl() |> Map.new(&List.to_tuple(String.split(&1, "=", parts: 2)))
            nums = fn s -> s |> String.split(",") |> Enum.map(&elem(Float.parse(&1), 0)) end
            {{f["op"], f["type"], String.to_integer(f["n"])}, %{e2e: nums.(f["e2e"]), compute: nums.(f["compute"])}}
          end

        {info, results}

      {out, status} ->
        fail!("NumPy (#{py}) exited with #{status}:\n#{out}")
    end
  end
end

# Sections e2e and launches (issue 18): end-to-end sgemm and the same product across node launches.
Code.require_file("sgemm.exs", __DIR__)

defmodule Bench.Main do
  @moduledoc false
  import Bench.Util

  @f32 {:f, 32}
  @all_sections ~w(limits messaging transfer compute e2e launches memory user opencl spot)

  def main(argv, echo_beam) do
    {opts, _, invalid} =
      OptionParser.parse(argv,
        strict: [quick: :boolean, label: :string, out: :string, sections: :string, baseline: :string, node: :string]
      )

    if invalid != [], do: fail!("unknown arguments: #{inspect(invalid)}")
    unless Node.alive?(), do: fail!("this BEAM is not distributed (run it with --name, as scripts/bench does)")

    quick = Keyword.get(opts, :quick, false)
    label = Keyword.get(opts, :label, "default")
    out = Keyword.get(opts, :out) || fail!("--out FILE is required")
    baseline = Keyword.get(opts, :baseline) || fail!("--baseline PATH (mure_bench_baseline) is required")
    node_bin = Keyword.get(opts, :node) || fail!("--node PATH (mure_node) is required")
    sections = opts |> Keyword.get(:sections, Enum.join(@all_sections, ",")) |> String.split(",", trim: true)
    Enum.each(sections, fn s -> unless s in @all_sections, do: fail!("unknown section #{s}") end)
    beam_flags = System.get_env("MURE_BENCH_BEAM_FLAGS", "")

    t_start = now_ns()
    load_start = loadavg()
    log("pass #{label}: sections #{Enum.join(sections, ",")}#{if quick, do: " (quick)"}, BEAM flags: #{if beam_flags == "", do: "none (defaults)", else: beam_flags}")

    {launch_s, conn} =
      tc(fn ->
        # MURE_BENCH_NODE_ARGS: extra node flags for experiments, e.g. "--blis-threads 1" or "--devices blis".
        extra = System.get_env("MURE_BENCH_NODE_ARGS", "") |> String.split()

        case Mure.start_link(executable: node_bin, timeout: 600_000, log_level: :warn, memory_limit: 6 * 1024 * 1024 * 1024, extra_args: extra) do
          {:ok, conn} -> conn
          {:error, e} -> fail!("could not launch the node: #{Exception.message(e)}")
        end
      end)

    hello = Mure.hello!(conn)
    devices = Mure.devices!(conn)
    cpu = cpu_info(baseline)
    # The client moves tensors above this size in pieces (nil: a client without chunked transfers).
    chunk_size = conn |> Mure.info() |> Map.get(:chunk_size)
    node = hello.node
    log("node #{node} up in #{Float.round(launch_s * 1000, 1)} ms; devices #{inspect(Enum.map(devices, & &1.id))}")

    ctx = %{
      quick: quick,
      conn: conn,
      node: node,
      node_bin: node_bin,
      baseline: baseline,
      devices: devices,
      cpus: String.to_integer(cpu.cpus),
      echo_beam: echo_beam,
      beam_flags: beam_flags
    }

    ctx = Map.put(ctx, :placement?, placement?(ctx))

    # The first elementwise op of a fresh node, before anything else touches the OpenCL device.
    cold = if "opencl" in sections and opencl?(ctx), do: opencl_cold(ctx), else: %{}

    {peer, peer_node} =
      if Enum.any?(sections, &(&1 in ~w(messaging transfer))),
        do: Bench.Peer.start(beam_flags, echo_beam),
        else: {nil, nil}

    ctx = Map.put(ctx, :peer_node, peer_node)

    data =
      Enum.reduce(sections, %{}, fn section, acc ->
        log("section #{section}")
        {s, result} = tc(fn -> run_section(section, ctx) end)
        log("section #{section} done in #{Float.round(s, 1)} s")
        Map.put(acc, String.to_atom(section), result)
      end)

    data = if cold != %{}, do: Map.update(data, :opencl, %{cold: cold}, &Map.put(&1, :cold, cold)), else: data

    stats = Mure.stats!(conn)
    if stats.tensors != 0, do: fail!("the node still holds #{stats.tensors} tensors after the run (leak)")
    if peer, do: :peer.stop(peer)
    Mure.stop(conn)

    result = %{
      label: label,
      quick: quick,
      beam_flags: beam_flags,
      date: DateTime.utc_now() |> DateTime.truncate(:second) |> DateTime.to_iso8601(),
      otp: List.to_string(:erlang.system_info(:otp_release)),
      erts: List.to_string(:erlang.system_info(:version)),
      elixir: System.version(),
      schedulers: System.schedulers_online(),
      node: %{hello: Map.drop(hello, [:devices]), devices: devices, launch_s: launch_s, requests: stats.requests, errors: stats.errors},
      cpu: cpu,
      client_chunk_size: chunk_size,
      elapsed_s: (now_ns() - t_start) / 1.0e9,
      loadavg: %{start: load_start, end: loadavg()},
      sections: data
    }

    File.write!(out, :erlang.term_to_binary(result))
    log("pass #{label} done in #{Float.round(result.elapsed_s, 1)} s (node: #{stats.requests} requests, #{stats.errors} errors)")
  end

  defp loadavg do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> Enum.take(3) |> Enum.join(" ")
      _ -> "unknown"
    end
  end

  # Whether the node knows placement ({:on, device, request}); older nodes ran matmul on BLIS only.
  defp placement?(ctx) do
    t = Mure.upload!(ctx.conn, :binary.copy(<<1.0::float-32-native>>, 4), @f32, {2, 2})

    ok =
      case Bench.Raw.try_call(ctx.node, {:on, :cpu, {:matmul, t.id, t.id}}) do
        {:ok, {h, _, _}} -> Bench.Raw.call(ctx.node, {:free, h}) == :freed
        _ -> false
      end

    Mure.free!(t)
    ok
  end

  # Matmul on the node's BLIS path: placed on the CPU executor when the node knows placement (its
  # default placement may choose another device, see the compute section's probe).
  defp blis_matmul(ctx, a, b), do: if(ctx.placement?, do: {:on, :cpu, {:matmul, a, b}}, else: {:matmul, a, b})
  defp cpu_opts(ctx), do: if(ctx.placement?, do: [device: :cpu], else: [])

  # Whether the node answers an f32 add with its default placement.
  defp add_supported?(ctx) do
    t = Mure.upload!(ctx.conn, <<1.0::float-32-native>>, @f32, {1})

    ok =
      case Bench.Raw.try_call(ctx.node, {:add, t.id, t.id}) do
        {:ok, {h, _, _}} -> Bench.Raw.call(ctx.node, {:free, h}) == :freed
        _ -> false
      end

    Mure.free!(t)
    ok
  end

  defp placed(request, :default), do: request
  defp placed(request, device), do: {:on, device, request}

  # Seconds per round trip of a compute request (2 warm-up calls, results freed untimed), or
  # {:unsupported, why} when the node refuses it (an older node, or no such device or kernel).
  defp time_placed(ctx, request, reps) do
    run = fn ->
      case Bench.Raw.try_call(ctx.node, request) do
        {:ok, {h, _type, _shape}} ->
          :freed = Bench.Raw.call(ctx.node, {:free, h})
          :ok

        {:error, {kind, msg}} when kind in [:unsupported, :unknown_op, :badarg] ->
          {:unsupported, "#{kind}: #{msg}"}

        other ->
          raise "mure #{inspect(request)}: #{inspect(other, limit: 8)}"
      end
    end

    case run.() do
      {:unsupported, why} ->
        {:unsupported, why}

      :ok ->
        run.()

        for _ <- 1..reps do
          {s, :ok} = tc(run)
          s
        end
    end
  end

  defp opencl?(ctx), do: Enum.any?(ctx.devices, &(&1.id == :opencl))

  defp cpu_info(baseline) do
    [cpu] = Bench.Baseline.run(baseline, ["cpu"])

    flags =
      case File.read("/proc/cpuinfo") do
        {:ok, text} ->
          text |> String.split("\n") |> Enum.find_value("", fn
            "flags" <> rest -> rest |> String.split(":", parts: 2) |> List.last() |> String.trim()
            _ -> nil
          end)

        _ ->
          ""
      end

    model_name =
      case File.read("/proc/cpuinfo") do
        {:ok, text} ->
          text |> String.split("\n") |> Enum.find_value("unknown", fn
            "model name" <> rest -> rest |> String.split(":", parts: 2) |> List.last() |> String.trim()
            _ -> nil
          end)

        _ ->
          "unknown"
      end

    vector_flags =
      flags |> String.split() |> Enum.filter(&(String.starts_with?(&1, "avx") or &1 in ~w(fma f16c amx_tile))) |> Enum.join(" ")

    Map.merge(cpu, %{model_name: model_name, vector_flags: vector_flags, flags: flags})
  end

  ## Sections --------------------------------------------------------------------------------

  defp run_section("limits", ctx) do
    peak_reps = if ctx.quick, do: "3", else: "7"
    %{
      peak: Bench.Baseline.run(ctx.baseline, ["peak", "--seconds", "0.15", "--reps", peak_reps]),
      pages: Bench.Baseline.run(ctx.baseline, ["pages", "--mib", "64", "--reps", peak_reps])
    }
  end

  # Round trip of a tiny request. Each run times `calls` sequential calls one by one and keeps their
  # median; the four kinds are interleaved run by run so that load from elsewhere hits all of them.
  defp run_section("messaging", ctx) do
    {runs, calls} = if ctx.quick, do: {7, 1000}, else: {15, 2000}
    node = ctx.node
    peer = ctx.peer_node

    kinds = [
      mure_raw: fn -> Bench.Raw.call(node, :stats) end,
      mure_client: fn -> Mure.stats!(ctx.conn) end,
      beam_genserver: fn -> :pong = Bench.Peer.call(peer, :ping) end,
      beam_raw: fn -> Bench.Peer.raw_ping(peer) end
    ]

    for {_, f} <- kinds, _ <- 1..200, do: f.()

    samples =
      Enum.reduce(1..runs, %{}, fn _, acc ->
        Enum.reduce(kinds, acc, fn {k, f}, acc ->
          times = for _ <- 1..calls, do: secs(f)
          Map.update(acc, k, [median(times)], &[median(times) | &1])
        end)
      end)

    Map.put(samples, :calls_per_run, calls)
  end

  # Upload/download of 1 MiB .. 256 MiB vs the same bytes through a GenServer on a BEAM node.
  defp run_section("transfer", ctx) do
    sizes_mib = if ctx.quick, do: [1, 16], else: [1, 4, 16, 64, 256]
    reps_for = fn mib -> if ctx.quick, do: 7, else: (cond do mib <= 4 -> 15; mib <= 16 -> 10; mib <= 64 -> 7; true -> 5 end) end
    peer = ctx.peer_node

    for mib <- sizes_mib, into: %{} do
      bytes = mib * 1024 * 1024
      data = :binary.copy(:rand.bytes(1024 * 1024), mib)
      :ok = Bench.Peer.call(peer, {:make, bytes})
      reps = reps_for.(mib)
      # The bound of any same-host path without a NIF: one copy out of this BEAM (`:file.pwrite`
      # into a file on tmpfs, its pages already there) and one copy into a fresh binary
      # (`:file.pread` from it). Measured at the sizes the same-host goal is set at.
      bound = if mib >= 16, do: bound_file(data)

      # Warm-up of every path once (also checks the bytes come back intact).
      t = Mure.upload!(ctx.conn, data, {:u, 8}, {bytes})
      unless Mure.download!(t) == data, do: fail!("download of #{mib} MiB returned other bytes")
      Mure.free!(t)
      h = Bench.Raw.call(ctx.node, {:upload, {:u, 8}, {bytes}, data}, 600_000)
      unless Bench.Raw.call(ctx.node, {:download, h}, 600_000) == data, do: fail!("raw download of #{mib} MiB returned other bytes")
      :freed = Bench.Raw.call(ctx.node, {:free, h})
      unless Bench.Peer.call(peer, {:echo, data}) == data, do: fail!("BEAM echo of #{mib} MiB returned other bytes")
      ^bytes = Bench.Peer.call(peer, {:push, data})
      ^bytes = byte_size(Bench.Peer.call(peer, :pull))
      :erlang.garbage_collect()

      samples =
        Enum.reduce(1..reps, %{}, fn _, acc ->
          # Each timed transfer directly follows an untimed one of the same kind and size (steady(),
          # below): what a user moving tensors repeatedly gets, the BEAM's allocator handing back
          # the memory the previous one freed. Without it every figure depended on what the other
          # paths of the round had left in that allocator's cache: a new binary whose pages are
          # fresh costs a page fault per 4 KiB (the limits section's fresh-memory row).
          {up, t} = steady(fn -> Mure.upload!(ctx.conn, data, {:u, 8}, {bytes}) end, &Mure.free!/1)
          {down, back} = steady(fn -> Mure.download!(t) end)
          ^bytes = byte_size(back)
          Mure.free!(t)
          :erlang.garbage_collect()
          # The client with shared memory off: the distribution path the same-host one replaces.
          # (with this BEAM's page faults during each timed call)
          {dup, t, up_faults} = steady_faults(fn -> Mure.upload!(ctx.conn, data, {:u, 8}, {bytes}, shared_memory: false) end, &Mure.free!/1)
          {ddown, back, down_faults} = steady_faults(fn -> Mure.download!(t, shared_memory: false) end)
          ^bytes = byte_size(back)
          Mure.free!(t)
          :erlang.garbage_collect()
          # The same through raw envelopes (one message each way, no client process): the node alone.
          raw_free = fn h -> :freed = Bench.Raw.call(ctx.node, {:free, h}) end
          {rup, h} = steady(fn -> Bench.Raw.call(ctx.node, {:upload, {:u, 8}, {bytes}, data}, 600_000) end, raw_free)
          {rdown, back} = steady(fn -> Bench.Raw.call(ctx.node, {:download, h}, 600_000) end)
          ^bytes = byte_size(back)
          raw_free.(h)
          :erlang.garbage_collect()
          {push, _} = steady(fn -> ^bytes = Bench.Peer.call(peer, {:push, data}) end)
          {pull, _} = steady(fn -> ^bytes = byte_size(Bench.Peer.call(peer, :pull)) end)
          {echo, _} = steady(fn -> ^bytes = byte_size(Bench.Peer.call(peer, {:echo, data})) end)
          :erlang.garbage_collect()

          copies =
            if bound do
              {copy_up, _} = steady(fn -> :ok = :file.pwrite(bound, 4096, data) end)
              {copy_down, _} = steady(fn -> {:ok, <<_::binary-size(bytes)>>} = :file.pread(bound, 4096, bytes) end)
              :erlang.garbage_collect()
              [copy_up: copy_up, copy_down: copy_down]
            else
              []
            end

          [mure_up: up, mure_down: down, mure_rt: up + down, raw_up: rup, raw_down: rdown, raw_rt: rup + rdown] ++
            [dist_up: dup, dist_down: ddown] ++
            if(up_faults && down_faults, do: [dist_up_faults: up_faults, dist_down_faults: down_faults], else: []) ++
            [beam_push: push, beam_pull: pull, beam_echo: echo] ++ copies
          |> Enum.reduce(acc, fn {k, v}, acc -> Map.update(acc, k, [v], &[v | &1]) end)
        end)

      :ok = Bench.Peer.call(peer, {:make, 0})
      if bound, do: :file.close(bound)
      log("transfer #{mib} MiB: #{reps} reps")
      {bytes, samples}
    end
  end

  # {seconds, result} of `f` run once more after an untimed run whose result `undo` disposes of,
  # with this process's garbage collected between (what the untimed run made is freed).
  defp steady(f, undo \\ fn _ -> :ok end) do
    {secs, result, _faults} = steady_faults(f, undo)
    {secs, result}
  end

  # steady/2 and this BEAM's minor page faults during the timed run (nil where unreadable).
  defp steady_faults(f, undo \\ fn _ -> :ok end) do
    undo.(f.())
    :erlang.garbage_collect()
    f0 = minor_faults()
    {secs, result} = tc(f)
    f1 = minor_faults()
    {secs, result, f0 && f1 && f1 - f0}
  end

  # A file on tmpfs holding `data` at offset 4096 (written once, so its pages exist), opened
  # raw and already unlinked: nothing is left behind whatever happens to this BEAM.
  defp bound_file(data) do
    dir = if File.dir?("/dev/shm"), do: "/dev/shm", else: System.tmp_dir!()
    path = Path.join(dir, "mure-bench-" <> Base.url_encode64(:crypto.strong_rand_bytes(12)))
    {:ok, fd} = :file.open(path, [:raw, :binary, :read, :write, :exclusive])
    File.rm!(path)
    :ok = :file.pwrite(fd, 4096, data)
    fd
  end

  # Matmul with the data resident: only the request's round trip is timed. The C++ baseline calls
  # BLIS in-process with the best kernel set it measures (and the node's, when they differ).
  defp run_section("compute", ctx) do
    sizes = if ctx.quick, do: [256, 1024], else: [256, 512, 1024, 2048, 4096]
    reps_for = fn n -> if ctx.quick, do: (if n <= 256, do: 20, else: 7), else: (cond do n <= 512 -> 20; n <= 1024 -> 10; n <= 2048 -> 7; true -> 4 end) end
    node_arch = Enum.find_value(ctx.devices, fn d -> d.id == :blis && d.arch end)
    arches = Bench.Baseline.run(ctx.baseline, ["arches", "--n", "1024", "--reps", if(ctx.quick, do: "2", else: "4")])

    best =
      for type <- ["f32", "f64"], into: %{} do
        {type, arches |> Enum.filter(&(&1.type == type)) |> Enum.max_by(&hd(&1.gflops), fn -> %{name: "generic"} end) |> Map.get(:name)}
      end

    log("BLIS kernel set: node #{node_arch}; in-process best #{inspect(best)}")

    results =
      for type <- ["f32", "f64"], n <- sizes, into: %{} do
        bits = if type == "f32", do: 32, else: 64
        reps = reps_for.(n)
        ta = Mure.upload!(ctx.conn, random_floats(n * n, bits, 1), {:f, bits}, {n, n})
        tb = Mure.upload!(ctx.conn, random_floats(n * n, bits, 2), {:f, bits}, {n, n})
        req = blis_matmul(ctx, ta.id, tb.id)

        run = fn ->
          {s, {h, _, _}} = tc(fn -> Bench.Raw.call(ctx.node, req, 600_000) end)
          :freed = Bench.Raw.call(ctx.node, {:free, h})
          s
        end

        for _ <- 1..2, do: run.()

        gemm = fn arch, r, extra ->
          [line] = Bench.Baseline.run(ctx.baseline, ["gemm", "--type", type, "--sizes", "#{n}", "--reps", "#{r}", "--arch", arch | extra])
          line.secs
        end

        # Rounds of (node, in-process BLIS), so that a change of load from elsewhere during the
        # size's measurement hits both sides.
        rounds = if n >= 4096, do: 2, else: 4
        per_round = max(div(reps + rounds - 1, rounds), 2)

        # In-process BLIS both ways: its own OpenMP threads, and split as the node does by default
        # (--split: one single-threaded call per block of C); the report holds the node against the
        # faster of the two.
        # Each round warms both sides alike: bench/baseline.cpp makes 2 untimed calls (1 from
        # n = 2048) before it times its reps, and so does the node here. (After the other
        # process's round this VM's cores come back cold: measured 6.5 ms for an f32 1024 gemm
        # back to back, 7.9 ms after 20 ms idle, 10.4 ms after 200 ms, in-process alike.)
        warm = if n < 2048, do: 2, else: 1

        {mure, blis, split} =
          Enum.reduce(1..rounds, {[], [], []}, fn _, {mure, blis, split} ->
            for _ <- 1..warm, do: run.()
            m = for _ <- 1..per_round, do: run.()

            {mure ++ m, blis ++ gemm.(best[type], per_round, []), split ++ gemm.(best[type], per_round, ["--split"])}
          end)

        Mure.free!(ta)
        Mure.free!(tb)
        :erlang.garbage_collect()

        entry = %{mure: mure, blis: blis, blis_split: split, blis_arch: best[type], node_arch: node_arch}
        entry = if ctx.quick and n > 1024, do: entry, else: Map.put(entry, :blis_fresh, gemm.(best[type], per_round, ["--fresh"]))
        entry = if node_arch != best[type] and node_arch, do: Map.put(entry, :blis_node_arch, gemm.(node_arch, per_round, [])), else: entry
        log("matmul #{type} #{n}: #{length(mure)} reps")
        {{type, n}, entry}
      end

    # The node's default placement for the same request (what `Mure.matmul/2` without `device:`
    # gets): one call at n = 1024, f32, against the BLIS path's median above.
    auto =
      if ctx.placement? and Map.has_key?(results, {"f32", 1024}) do
        n = 1024
        ta = Mure.upload!(ctx.conn, random_floats(n * n, 32, 1), @f32, {n, n})
        tb = Mure.upload!(ctx.conn, random_floats(n * n, 32, 2), @f32, {n, n})
        {s, {h, _, _}} = tc(fn -> Bench.Raw.call(ctx.node, {:matmul, ta.id, tb.id}, 600_000) end)
        :freed = Bench.Raw.call(ctx.node, {:free, h})
        Mure.free!(ta)
        Mure.free!(tb)
        log("matmul f32 1024 with the node's default placement: #{Float.round(s * 1000, 1)} ms")
        %{n: n, secs: s}
      end

    %{matmul: results, arches: arches, best: best, node_arch: node_arch, placement: ctx.placement?, auto: auto}
  end

  defp run_section("e2e", ctx), do: Bench.Sgemm.e2e(ctx)
  defp run_section("launches", ctx), do: Bench.Sgemm.launches(ctx)

  # Elementwise add/multiply over 16 Mi f32 through the node vs C++ loops over the same n. The node
  # places each op itself unless told (`{:on, device, request}`, docs/protocol.md): the default, the
  # CPU executor and the OpenCL device are timed separately (raw envelopes; results freed untimed).
  defp run_section("memory", ctx) do
    n = 16 * 1024 * 1024
    reps = if ctx.quick, do: 5, else: 15
    ta = Mure.upload!(ctx.conn, random_floats(n, 32, 3), @f32, {n})
    tb = Mure.upload!(ctx.conn, random_floats(n, 32, 4), @f32, {n})

    node =
      for op <- [:add, :multiply], placement <- [:default, :cpu, :opencl], into: %{} do
        {{op, placement}, time_placed(ctx, placed({op, ta.id, tb.id}, placement), reps)}
      end

    Mure.free!(ta)
    Mure.free!(tb)
    threads = Enum.uniq([1, ctx.cpus]) |> Enum.join(",")
    stream = Bench.Baseline.run(ctx.baseline, ["stream", "--n", "#{n}", "--reps", "#{reps}", "--threads", threads])
    %{n: n, node: node, stream: stream}
  end

  # What a user would run instead: plain Elixir (small sizes) and NumPy, end to end from the input
  # bytes to the result's bytes; mure's end to end includes upload, compute, download and free.
  defp run_section("user", ctx) do
    elixir_mm = if ctx.quick, do: [128], else: [128, 256]
    other_mm = if ctx.quick, do: [], else: [1024, 2048]
    # `Mure.add/2` with the node's default placement (older nodes: OpenCL only, so maybe absent).
    elixir_ew = if add_supported?(ctx), do: [1_048_576], else: []
    other_ew = if ctx.quick or elixir_ew == [], do: [], else: [16_777_216]
    reps_mm = fn n -> cond do n <= 256 -> (if ctx.quick, do: 3, else: 5); n <= 1024 -> 7; true -> 5 end end
    reps_ew = fn n -> if n <= 1_048_576, do: (if ctx.quick, do: 3, else: 7), else: 5 end

    mure_mm = fn n, reps ->
      a = random_floats(n * n, 32, 5)
      b = random_floats(n * n, 32, 6)

      run = fn ->
        ta = Mure.upload!(ctx.conn, a, @f32, {n, n})
        tb = Mure.upload!(ctx.conn, b, @f32, {n, n})
        tc_ = Mure.matmul!(ta, tb, cpu_opts(ctx))
        c = Mure.download!(tc_)
        Enum.each([ta, tb, tc_], &Mure.free!/1)
        c
      end

      run.()
      {for(_ <- 1..reps, do: secs(run)), {a, b, run.()}}
    end

    mure_ew = fn n, reps ->
      a = random_floats(n, 32, 7)
      b = random_floats(n, 32, 8)

      run = fn ->
        ta = Mure.upload!(ctx.conn, a, @f32, {n})
        tb = Mure.upload!(ctx.conn, b, @f32, {n})
        tc_ = Mure.add!(ta, tb)
        c = Mure.download!(tc_)
        Enum.each([ta, tb, tc_], &Mure.free!/1)
        c
      end

      run.()
      {for(_ <- 1..reps, do: secs(run)), {a, b, run.()}}
    end

    mm =
      for n <- elixir_mm ++ other_mm, into: %{} do
        reps = reps_mm.(n)
        {mure, {a, b, c_mure}} = mure_mm.(n, reps)

        elixir =
          if n in elixir_mm do
            {s, c_ex} = tc(fn -> Bench.Plain.matmul_f32(a, b, n) end)
            check_close!(c_mure, c_ex, "matmul #{n}")
            more = for _ <- 2..min(reps, 3)//1, do: secs(fn -> Bench.Plain.matmul_f32(a, b, n) end)
            [s | more]
          end

        log("user matmul #{n}")
        {n, %{mure: mure, elixir: elixir}}
      end

    ew =
      for n <- elixir_ew ++ other_ew, into: %{} do
        reps = reps_ew.(n)
        {mure, {a, b, c_mure}} = mure_ew.(n, reps)

        elixir =
          if n in elixir_ew do
            {s, c_ex} = tc(fn -> Bench.Plain.add_f32(a, b) end)
            unless c_ex == c_mure, do: fail!("mure add of #{n} f32 differs from plain Elixir's")
            [s | for(_ <- 2..reps//1, do: secs(fn -> Bench.Plain.add_f32(a, b) end))]
          end

        log("user add #{n}")
        {n, %{mure: mure, elixir: elixir}}
      end

    numpy =
      case Bench.NumPy.python() do
        nil ->
          log("NumPy: not installed (python3-numpy); skipped")
          nil

        py ->
          tasks =
            Enum.map(elixir_mm ++ other_mm, &"matmul:f32:#{&1}:#{reps_mm.(&1)}") ++
              Enum.map(elixir_ew ++ other_ew, &"add:f32:#{&1}:#{reps_ew.(&1)}")

          {info, default} = Bench.NumPy.run(py, tasks, nil)
          {_, threaded} = Bench.NumPy.run(py, tasks, ctx.cpus)
          %{python: py, info: info, default: default, threaded: threaded, threads: ctx.cpus}
      end

    %{matmul: mm, add: ew, numpy: numpy}
  end

  # The OpenCL path against the CPU executor inside the same node: per-request cost of tiny ops,
  # matmul on each device, plus the cold build figures. Raw envelopes; results freed untimed.
  defp run_section("opencl", ctx) do
    if opencl?(ctx) do
      {runs, calls} = if ctx.quick, do: {3, 100}, else: {9, 300}
      small = 1024
      a = Mure.upload!(ctx.conn, random_floats(small, 32, 9), @f32, {small})
      b = Mure.upload!(ctx.conn, random_floats(small, 32, 10), @f32, {small})
      ma = Mure.upload!(ctx.conn, random_floats(16 * 16, 32, 11), @f32, {16, 16})
      node = ctx.node

      # Which placements this node accepts (an older node knows no {:on, ...}).
      supported? = fn req ->
        case Bench.Raw.try_call(node, req) do
          {:ok, {h, _, _}} -> Bench.Raw.call(node, {:free, h}) == :freed
          _ -> false
        end
      end

      kinds =
        [stats: :stats] ++
          for {name, req} <- [
                add_1k: {:add, a.id, b.id},
                add_1k_cpu: {:on, :cpu, {:add, a.id, b.id}},
                add_1k_opencl: {:on, :opencl, {:add, a.id, b.id}},
                matmul_16: {:matmul, ma.id, ma.id},
                matmul_16_cpu: {:on, :cpu, {:matmul, ma.id, ma.id}},
                matmul_16_opencl: {:on, :opencl, {:matmul, ma.id, ma.id}}
              ],
              supported?.(req),
              do: {name, req}

      samples =
        Enum.reduce(1..runs, %{}, fn _, acc ->
          Enum.reduce(kinds, acc, fn {k, req}, acc ->
            times =
              for _ <- 1..calls do
                {s, r} = tc(fn -> Bench.Raw.call(node, req) end)
                with {h, _, _} <- r, do: Bench.Raw.call(node, {:free, h})
                s
              end

            Map.update(acc, k, [median(times)], &[median(times) | &1])
          end)
        end)

      Enum.each([a, b, ma], &Mure.free!/1)

      # Matmul on each device (OpenCL's is a generic dot kernel: slow, so small sizes only).
      sizes = if ctx.quick, do: [256], else: [256, 512]
      reps = if ctx.quick, do: 3, else: 5

      matmul =
        for n <- sizes, into: %{} do
          ta = Mure.upload!(ctx.conn, random_floats(n * n, 32, 14), @f32, {n, n})
          tb = Mure.upload!(ctx.conn, random_floats(n * n, 32, 15), @f32, {n, n})

          r =
            for placement <- [:cpu, :opencl], into: %{} do
              {placement, time_placed(ctx, placed({:matmul, ta.id, tb.id}, placement), reps)}
            end

          Mure.free!(ta)
          Mure.free!(tb)
          {n, r}
        end

      opencl = Enum.find(ctx.devices, &(&1.id == :opencl))
      blis = Enum.find(ctx.devices, &(&1.id == :blis))

      %{
        small: samples,
        matmul: matmul,
        kernel_build_ms: opencl[:kernel_build_ms],
        device: opencl,
        measured: %{opencl: opencl[:measured], cpu: blis && blis[:measured]}
      }
    else
      %{unavailable: true}
    end
  end

  # A spot check of the compute paths, for the pass with other BEAM flags: schedulers that spin
  # while the node computes take CPU from BLIS and PoCL on a 2-core machine.
  defp run_section("spot", ctx) do
    n = 1024
    reps = if ctx.quick, do: 5, else: 10
    ta = Mure.upload!(ctx.conn, random_floats(n * n, 32, 1), @f32, {n, n})
    tb = Mure.upload!(ctx.conn, random_floats(n * n, 32, 2), @f32, {n, n})
    for _ <- 1..2, do: Mure.free!(Mure.matmul!(ta, tb, cpu_opts(ctx)))

    time = fn f ->
      for _ <- 1..reps do
        {s, t} = tc(f)
        Mure.free!(t)
        s
      end
    end

    mm = time.(fn -> Mure.matmul!(ta, tb, cpu_opts(ctx)) end)
    Enum.each([ta, tb], &Mure.free!/1)
    arch = Enum.find_value(ctx.devices, "generic", fn d -> d.id == :blis && d.arch end)
    [line] = Bench.Baseline.run(ctx.baseline, ["gemm", "--type", "f32", "--sizes", "#{n}", "--reps", "#{reps}", "--arch", arch])
    e = 16 * 1024 * 1024

    add =
      if add_supported?(ctx) do
        ea = Mure.upload!(ctx.conn, random_floats(e, 32, 3), @f32, {e})
        eb = Mure.upload!(ctx.conn, random_floats(e, 32, 4), @f32, {e})
        for _ <- 1..2, do: Mure.free!(Mure.add!(ea, eb))
        r = time.(fn -> Mure.add!(ea, eb) end)
        Enum.each([ea, eb], &Mure.free!/1)
        r
      end

    %{matmul_f32_1024: mm, blis_f32_1024: line.secs, add_16m: add}
  end

  # Right after start-up: the first add on the OpenCL device (placed there explicitly when the node
  # knows placement), then warm ones (1 Mi f32). Raw envelopes.
  defp opencl_cold(ctx) do
    n = 1_048_576
    ta = Mure.upload!(ctx.conn, random_floats(n, 32, 12), @f32, {n})
    tb = Mure.upload!(ctx.conn, random_floats(n, 32, 13), @f32, {n})
    placed_req = {:on, :opencl, {:add, ta.id, tb.id}}

    time_add = fn req ->
      {s, r} = tc(fn -> Bench.Raw.try_call(ctx.node, req) end)

      case r do
        {:ok, {h, _, _}} ->
          :freed = Bench.Raw.call(ctx.node, {:free, h})
          {:ok, s}

        {:error, e} ->
          {:error, e}
      end
    end

    {req, first} =
      case time_add.(placed_req) do
        {:ok, s} -> {placed_req, s}
        {:error, _} -> {{:add, ta.id, tb.id}, elem(time_add.({:add, ta.id, tb.id}), 1)}
      end

    unless is_float(first), do: fail!("the first add after start failed: #{inspect(first)}")
    warm = for _ <- 1..10, do: elem(time_add.(req), 1)
    Mure.free!(ta)
    Mure.free!(tb)
    %{n: n, first: first, warm: warm, request: if(elem(req, 0) == :on, do: "{:on, :opencl, {:add, a, b}}", else: "{:add, a, b}")}
  end

  defp check_close!(got, want, what) do
    g = for <<x::float-32-native <- got>>, do: x
    w = for <<x::float-32-native <- want>>, do: x

    bad =
      Enum.zip(g, w)
      |> Enum.count(fn {x, y} -> abs(x - y) > 1.0e-3 + 1.0e-4 * abs(y) end)

    if length(g) != length(w) or bad > 0, do: fail!("#{what}: mure and plain Elixir differ in #{bad} entries")
  end
end

try do
  Bench.Main.main(System.argv(), echo_beam)
rescue
  e ->
    IO.puts(:stderr, "bench: FAILED: " <> Exception.format(:error, e, __STACKTRACE__))
    System.halt(1)
catch
  kind, reason ->
    IO.puts(:stderr, "bench: FAILED: " <> Exception.format(kind, reason, __STACKTRACE__))
    System.halt(1)
end
