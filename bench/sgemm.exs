# bench/measure.exs sections "e2e" and "launches" (issue 18, goals 4 and 5), loaded by
# measure.exs with Code.require_file; they use its Bench.Util, Bench.Raw and Bench.Baseline.
#
# e2e: f32 sgemm from the input bytes to the result's bytes through the client API, as a user
# calls it, at n = 256, 1024, 2048, two ways:
#   calls    Mure.upload/4 (A, B), Mure.matmul/2 (the node's default placement), Mure.download/1;
#            each step timed on its own (the frees after the result is in hand, timed apart)
#   program  Mure.run/3 of a jit'ed Mure.Expr.matmul with both inputs as data and the output
#            returned (outputs: :return): one program request when the inputs fit the
#            connection's :chunk_size, else the client uploads them in pieces first
# Results are checked against an Elixir reference on sampled entries, and the two ways against
# each other.
#
# launches: the same resident f32 sgemm 1024 (raw envelope, {:on, :cpu, {:matmul, a, b}}) on 5
# freshly launched nodes, all alive together, timed in rounds that visit every node in turn (so
# that the machine's drift hits all alike; each round starts one launch further on, each visit with
# an untimed request), with in-process BLIS (bench/baseline.cpp, the node's kernel set) in every
# round as a control.

defmodule Bench.Sgemm do
  @moduledoc false
  import Bench.Util

  @f32 {:f, 32}

  def e2e(ctx) do
    sizes = [256, 1024, 2048]
    reps_for = fn n -> if ctx.quick, do: %{256 => 10, 1024 => 5, 2048 => 3}[n], else: %{256 => 40, 1024 => 15, 2048 => 7}[n] end
    mm = Mure.jit(fn a, b -> Mure.Expr.matmul(a, b) end, outputs: :return)

    for n <- sizes, into: %{} do
      a = random_floats(n * n, 32, 21)
      b = random_floats(n * n, 32, 22)
      timeout = [timeout: 600_000]

      calls = fn ->
        t0 = now_ns()
        ta = Mure.upload!(ctx.conn, a, @f32, {n, n}, timeout)
        tb = Mure.upload!(ctx.conn, b, @f32, {n, n}, timeout)
        t1 = now_ns()
        tc_ = Mure.matmul!(ta, tb, timeout)
        t2 = now_ns()
        c = Mure.download!(tc_, timeout)
        t3 = now_ns()
        Enum.each([ta, tb, tc_], &Mure.free!/1)
        t4 = now_ns()
        s = fn x, y -> (y - x) / 1.0e9 end
        {%{upload: s.(t0, t1), matmul: s.(t1, t2), download: s.(t2, t3), total: s.(t0, t3), free: s.(t3, t4)}, c}
      end

      program = fn ->
        t0 = now_ns()
        c = Mure.run(mm, [{a, @f32, {n, n}}, {b, @f32, {n, n}}], conn: ctx.conn, timeout: 600_000)
        {(now_ns() - t0) / 1.0e9, c}
      end

      # Warm-up (buffers, the jit's trace, BLIS's packing memory), then the checks.
      {_, c_calls} = calls.()
      {_, {:ok, c_prog}} = program.()
      check!(a, b, c_calls, n, "calls")
      check!(a, b, c_prog, n, "program")
      unless close?(c_calls, c_prog), do: fail!("e2e sgemm #{n}: the calls and the program disagree")

      # Interleaved, so that a change of load hits both ways alike.
      {steps, prog} =
        Enum.reduce(1..reps_for.(n), {[], []}, fn _, {steps, prog} ->
          {st, _} = calls.()
          {s, {:ok, _}} = program.()
          {[st | steps], [s | prog]}
        end)

      :erlang.garbage_collect()
      log("e2e sgemm #{n}: calls #{ms(median(Enum.map(steps, & &1.total)))} ms, program #{ms(median(prog))} ms")
      {n, %{calls: Enum.reverse(steps), program: Enum.reverse(prog)}}
    end
    |> then(&%{sizes: &1, chunk_size: ctx.conn |> Mure.info() |> Map.get(:chunk_size)})
  end

  def launches(ctx) do
    n = 1024
    # Rounds of `per_round` requests on each node in turn: a change of load during the section
    # hits every launch alike, so what stays different between launches is the launch's own.
    # Each visit starts with one untimed request, and round r starts at launch r: the first
    # request after an idle spell (the control's process start, another node's turn) comes back
    # slow on these VMs (a parked vCPU and BLIS threads to wake), and without both the launch
    # visited first in every round took it each time (launch medians 10.2 .. 6.4 ms in visit
    # order, their fastest requests within ±2.8 %).
    {launches, rounds, per_round} = if ctx.quick, do: {5, 3, 2}, else: {5, 8, 2}
    a = random_floats(n * n, 32, 23)
    b = random_floats(n * n, 32, 24)
    extra = System.get_env("MURE_BENCH_NODE_ARGS", "") |> String.split()

    nodes =
      for i <- 1..launches do
        {:ok, conn} =
          Mure.start_link(executable: ctx.node_bin, timeout: 600_000, log_level: :warn, extra_args: extra)

        node = Mure.hello!(conn).node
        blis = Enum.find(Mure.devices!(conn), &(&1.id == :blis)) || fail!("launch #{i}: the node has no BLIS device")
        ta = Mure.upload!(conn, a, @f32, {n, n})
        tb = Mure.upload!(conn, b, @f32, {n, n})
        l = %{conn: conn, node: node, req: {:on, :cpu, {:matmul, ta.id, tb.id}}, arch: blis.arch, threads: blis.threads}
        for _ <- 1..2, do: request(l)
        l
      end

    arch = hd(nodes).arch

    {samples, control} =
      Enum.reduce(1..rounds, {Map.new(1..launches, &{&1, []}), []}, fn r, {samples, control} ->
        {first, rest} = nodes |> Enum.with_index(1) |> Enum.split(rem(r - 1, launches))

        samples =
          (rest ++ first)
          |> Enum.reduce(samples, fn {l, i}, acc ->
            _warm = request(l)
            Map.update!(acc, i, &(&1 ++ for(_ <- 1..per_round, do: request(l))))
          end)

        [line] = Bench.Baseline.run(ctx.baseline, ["gemm", "--type", "f32", "--sizes", "#{n}", "--reps", "#{per_round}", "--arch", arch])
        {samples, control ++ line.secs}
      end)

    Enum.each(nodes, &Mure.stop(&1.conn))

    runs =
      for {l, i} <- Enum.with_index(nodes, 1) do
        log("launch #{i}: sgemm #{n} median #{ms(median(samples[i]))} ms, #{l.arch}")
        %{mure: samples[i], arch: l.arch, threads: l.threads}
      end

    %{n: n, reps: rounds * per_round, rounds: rounds, runs: runs, blis: control, blis_arch: arch, node_args: Enum.join(extra, " ")}
  end

  # One resident matmul on a launch's node (raw envelope); the result is freed untimed.
  defp request(l) do
    {s, {h, _, _}} = tc(fn -> Bench.Raw.call(l.node, l.req, 600_000) end)
    :freed = Bench.Raw.call(l.node, {:free, h})
    s
  end

  defp ms(s), do: Float.round(s * 1000, 2)

  defp floats(bin), do: for(<<x::float-32-native <- bin>>, do: x)

  defp close?(x, y) do
    Enum.zip(floats(x), floats(y)) |> Enum.all?(fn {p, q} -> abs(p - q) <= 1.0e-3 * max(1.0, abs(q)) end)
  end

  # Sampled entries of c = a b (rows 0, n/2, n-1; 16 columns each) against sums in Elixir.
  defp check!(a, b, c, n, what) do
    if byte_size(c) != n * n * 4, do: fail!("e2e sgemm #{n} (#{what}): #{byte_size(c)} bytes back")
    cols = for j <- 0..15, do: rem(j * 131 + 7, n)

    for i <- [0, div(n, 2), n - 1], j <- cols do
      row = for p <- 0..(n - 1), do: elem(at(a, i * n + p), 0)
      want = row |> Enum.with_index() |> Enum.reduce(0.0, fn {x, p}, acc -> acc + x * elem(at(b, p * n + j), 0) end)
      {got, _} = at(c, i * n + j)
      if abs(got - want) > 1.0e-4 * n, do: fail!("e2e sgemm #{n} (#{what}): c[#{i}][#{j}] = #{got}, expected #{want}")
    end
  end

  defp at(bin, i) do
    <<x::float-32-native>> = binary_part(bin, i * 4, 4)
    {x, i}
  end
end
