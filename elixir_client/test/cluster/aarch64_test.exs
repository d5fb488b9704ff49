defmodule Mure.Aarch64Test do
  # An aarch64 mure_node (cross-built by scripts/cross_aarch64 from Debian's arm64 packages) run
  # under qemu-aarch64 (scripts/mure_node_aarch64) on loopback, beside an x86-64 node of this
  # build: both real nodes, found through the real epmd, each reading the cookie from
  # ~/.erlang.cookie (never from a command line). The op table is run on both and compared
  # (integers bit for bit, floats within the README's bounds), and a Mure.Cluster of the two
  # splits a job between them by their measured speeds. Where the aarch64 node or qemu is
  # missing, test_helper.exs excludes the :aarch64 tag and says so.
  use ExUnit.Case, async: false

  @moduletag :aarch64
  @moduletag :capture_log
  @moduletag timeout: 600_000

  import Bitwise
  import Mure.TestSupport

  alias Mure.Reliability

  @launcher Path.expand("../../../scripts/mure_node_aarch64", __DIR__)
  @op_table Path.expand("../../../src/ir/ops.def", __DIR__)

  # exact: 1 in the op table's last column means the same bits on every executor; the others
  # are the transcendental functions, within the README's bound ("4 ULP for f32 and f64, 1 ULP
  # for f16 and bf16, or closer than the type's smallest normal").
  @exact for chunk <- String.split(File.read!(@op_table), "\nMURE_"),
             [_, name] <- [Regex.run(~r/^(?:UNARY|BINARY)\(\w+, "(\w+)"/, chunk)],
             [_, exact] <- [Regex.run(~r/, [01], ([01])\)/, chunk)],
             into: %{},
             do: {String.to_atom(name), exact == "1"}
  @external_resource @op_table

  setup_all do
    prefix = "maarch#{System.unique_integer([:positive])}_"
    x86 = Reliability.launch_plain(["--name", "#{prefix}x86@127.0.0.1", "--blis-threads", "1"])
    on_exit(fn -> Reliability.stop_plain(x86) end)

    {ms, arm} =
      Reliability.timed(fn ->
        Reliability.launch_plain(
          ["--name", "#{prefix}arm@127.0.0.1", "--blis-threads", "1"],
          [],
          executable: @launcher,
          timeout: 120_000
        )
      end)

    on_exit(fn -> Reliability.stop_plain(arm) end)
    IO.puts("\naarch64 node under qemu-aarch64 ready in #{round(ms)} ms")

    {:ok, x86_conn} = Mure.connect(:"#{prefix}x86@127.0.0.1")
    {:ok, arm_conn} = Mure.connect(:"#{prefix}arm@127.0.0.1", timeout: 60_000)
    %{prefix: prefix, x86: x86_conn, arm: arm_conn, arm_stderr: arm.stderr}
  end

  test "the aarch64 node names its CPU and calibrates BLIS's arm64 kernels", %{
    arm: arm,
    x86: x86,
    arm_stderr: stderr
  } do
    [blis | _] = devices = Mure.devices!(arm, timeout: 60_000)
    assert blis.id == :blis

    assert blis.cpu_features =~
             ~r/^aarch64 .* implementer 0x[0-9a-f]{2} part 0x[0-9a-f]{3} \(.*asimd/

    assert blis.cpu =~ ~r/^aarch64 /
    # Debian's arm64 BLIS holds the cortexa57 kernel set alone: calibrated, then chosen.
    assert blis.arch == "cortexa57"
    assert blis.arch_reason =~ "calibrated at start-up"
    assert blis.arch_reason =~ ~r/cortexa57=[0-9.]+/
    assert blis.measured.gemm_gflops > 0

    [x86_blis | _] = Mure.devices!(x86)
    refute x86_blis.cpu_features =~ "aarch64"

    # PoCL under qemu: either a working CPU device or, where its LLVM cannot run emulated, a
    # node without OpenCL that said why on stderr.
    case Enum.find(devices, &(&1.id == :opencl)) do
      nil ->
        assert File.read!(stderr) =~ "OpenCL unavailable"
        IO.puts("aarch64 node under qemu: no OpenCL device (#{opencl_line(stderr)})")

      cl ->
        IO.puts("aarch64 node under qemu: OpenCL #{cl.name} (#{cl.platform})")
    end

    IO.puts(
      "aarch64 node under qemu: #{blis.cpu}; #{blis.cpu_features}; BLIS #{blis.arch_reason}"
    )
  end

  defp opencl_line(stderr) do
    stderr
    |> File.read!()
    |> String.split("\n")
    |> Enum.find("", &(&1 =~ "OpenCL"))
    |> String.trim()
  end

  test "the bundle for devices runs with its own libraries, without the sysroot" do
    # scripts/cross_aarch64's tarball's tree: qemu-aarch64 without -L finds no arm64 library on
    # this x86-64 host, so everything the node loads must come from the bundle's lib/.
    # Where scripts/cross_aarch64 left it: $MURE_AARCH64_DIR, as the script reads it.
    dir = System.get_env("MURE_AARCH64_DIR") || Path.expand("../../../build-aarch64", __DIR__)
    bundle = Path.join(dir, "mure-node-aarch64")
    lib = Path.join(bundle, "lib")

    {out, status} =
      System.cmd(
        "qemu-aarch64",
        [
          Path.join(lib, "ld-linux-aarch64.so.1"),
          "--library-path",
          lib,
          Path.join(bundle, "bin/mure_node"),
          "--version"
        ],
        stderr_to_stdout: true
      )

    assert status == 0, out
    assert out =~ ~r/^mure_node \d+\.\d+\.\d+ /
    assert File.regular?(Path.join(bundle, "config/mure.conf"))
    assert File.regular?(Path.join(dir, "mure-node-aarch64.tar.gz"))
  end

  ## The op table on both nodes

  @count 64
  @types [{:u, 8}, {:s, 32}, {:s, 64}, {:f, 16}, {:f, 32}, {:f, 64}]

  # Edge values first (zeros, ±1, the exp/overflow edges, huge, tiny and subnormal magnitudes,
  # ±inf, NaN), then pseudo-random ones; `y` is the same list rotated, so a binary op meets
  # edges against ordinary values and against each other.
  defp values({:f, bits}, seed) do
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 88.0, -89.0, 104.0, 1.0e-3, 65_000.0, 1.0e30]
    specials = [:inf, :neg_inf, :nan, :tiny]
    :rand.seed(:exsss, {seed, bits, 7})
    rest = for _ <- 1..(@count - length(edges) - length(specials)), do: :rand.uniform() * 8 - 4
    Enum.map(edges ++ specials ++ rest, &float_bits(&1, bits))
  end

  defp values({kind, bits}, seed) do
    {lo, hi} =
      if kind == :s,
        do: {-(1 <<< (bits - 1)), (1 <<< (bits - 1)) - 1},
        else: {0, (1 <<< bits) - 1}

    edges =
      Enum.filter(
        [0, 1, -1, 2, -2, 3, 7, -7, 31, 32, 33, 63, 64, 100, -100, lo, hi, lo + 1, hi - 1],
        &(&1 >= lo and &1 <= hi)
      )

    :rand.seed(:exsss, {seed, bits, 11})

    rest =
      for _ <- 1..(@count - length(edges)),
          do: Enum.random([Enum.random(-9..9), Enum.random(lo..hi)])

    Enum.map(edges ++ rest, fn x -> band(x, (1 <<< bits) - 1) end)
  end

  # A float's bit pattern in `bits` (16, 32, 64); Elixir has no inf or NaN, so those are written
  # as bits.
  defp float_bits(:inf, bits), do: inf_bits(bits)
  defp float_bits(:neg_inf, bits), do: inf_bits(bits) ||| 1 <<< (bits - 1)
  defp float_bits(:nan, bits), do: inf_bits(bits) ||| 1 <<< (mantissa(bits) - 1)
  defp float_bits(:tiny, _bits), do: 1

  defp float_bits(x, 16) when abs(x) > 65_504.0,
    do: float_bits(if(x > 0, do: :inf, else: :neg_inf), 16)

  defp float_bits(x, 32) when abs(x) > 3.0e38,
    do: float_bits(if(x > 0, do: :inf, else: :neg_inf), 32)

  defp float_bits(x, bits) do
    <<b::unsigned-size(bits)>> = <<x::float-size(bits)>>
    b
  end

  defp mantissa(16), do: 10
  defp mantissa(32), do: 23
  defp mantissa(64), do: 52
  defp inf_bits(bits), do: ((1 <<< (bits - mantissa(bits) - 1)) - 1) <<< mantissa(bits)

  defp to_bin(patterns, bits),
    do: for(p <- patterns, into: <<>>, do: <<p::unsigned-size(bits)-native>>)

  defp upload(conn, {_, bits} = type, patterns, shape),
    do: Mure.upload!(conn, to_bin(patterns, bits), type, shape)

  # Runs `fun` (given a node's conn) on both nodes: both answer alike, or the client's own rules
  # refused it before sending (the same on both). Returns {x86 reply, arm reply} or :refused.
  defp on_both(%{x86: x86, arm: arm}, fun) do
    try do
      {fun.(x86), fun.(arm)}
    rescue
      ArgumentError -> :refused
    end
  end

  # Results compared as bit patterns of their type: integers exactly, floats by `tolerance`.
  defp compare!(what, {{:ok, a}, {:ok, b}}, exact?) do
    assert a.type == b.type and a.shape == b.shape, "#{what}: #{inspect(a)} vs #{inspect(b)}"
    {kind, bits} = a.type
    xs = for <<v::unsigned-size(bits)-native <- Mure.download!(a)>>, do: v
    ys = for <<v::unsigned-size(bits)-native <- Mure.download!(b)>>, do: v

    xs
    |> Enum.zip(ys)
    |> Enum.with_index()
    |> Enum.each(fn {{x, y}, i} ->
      ok = if kind in [:f, :bf], do: float_close?(x, y, kind, bits, exact?), else: x == y

      assert ok,
             "#{what} -> #{inspect(a.type)}, element #{i}: x86-64 0x#{Integer.to_string(x, 16)}, " <>
               "aarch64 0x#{Integer.to_string(y, 16)} (#{if exact?, do: "exact", else: "ULP bound"})"
    end)

    :compared
  end

  defp compare!(what, {{:error, a}, {:error, b}}, _exact?) do
    assert a.kind == b.kind, "#{what}: errors differ: #{inspect(a)} vs #{inspect(b)}"
    :both_refused
  end

  defp compare!(what, {a, b}, _exact?),
    do: flunk("#{what}: x86-64 #{inspect(a)}, aarch64 #{inspect(b)}")

  defp nan?(x, bits),
    do: (x &&& inf_bits(bits)) == inf_bits(bits) and (x &&& (1 <<< mantissa(bits)) - 1) != 0

  # Equal bits, or both NaN (the default NaN's sign differs: x86-64 makes it negative, aarch64
  # positive); for transcendental ops within the ULP bound, or both closer to zero than the
  # smallest normal.
  defp float_close?(x, y, _kind, _bits, _exact?) when x == y, do: true

  defp float_close?(x, y, :f, bits, exact?) do
    cond do
      nan?(x, bits) and nan?(y, bits) ->
        true

      nan?(x, bits) or nan?(y, bits) ->
        false

      exact? ->
        false

      true ->
        abs(ordered(x, bits) - ordered(y, bits)) <= ulp_bound(bits) or
          (subnormal?(x, bits) and subnormal?(y, bits))
    end
  end

  defp ordered(x, bits) do
    sign = 1 <<< (bits - 1)
    if (x &&& sign) != 0, do: -(x &&& sign - 1), else: x
  end

  defp subnormal?(x, bits), do: (x &&& inf_bits(bits)) == 0
  defp ulp_bound(16), do: 1
  defp ulp_bound(_), do: 4

  test "every unary and binary op of the table, and the reductions, agree with the x86-64 node",
       ctx do
    # Every op's row was read (else it would be judged by the looser bound).
    for op <- Mure.Rules.unary_ops() ++ Mure.Rules.binary_ops(),
        do: assert(is_boolean(@exact[op]), "no exact column read for #{op}")

    {ms, counts} =
      Reliability.timed(fn ->
        for type <- @types, reduce: %{compared: 0, both_refused: 0, refused: 0} do
          acc ->
            xs = values(type, 1)
            ys = Enum.drop(xs, 5) ++ Enum.take(xs, 5)
            x = %{x86: upload(ctx.x86, type, xs, {8, 8}), arm: upload(ctx.arm, type, xs, {8, 8})}
            y = %{x86: upload(ctx.x86, type, ys, {8, 8}), arm: upload(ctx.arm, type, ys, {8, 8})}
            pick = fn t, conn -> if conn == ctx.x86, do: t.x86, else: t.arm end

            unary =
              for op <- Mure.Rules.unary_ops() do
                r = on_both(ctx, &Mure.unary(op, pick.(x, &1), device: :cpu))

                if r == :refused,
                  do: :refused,
                  else: compare!("#{op}(#{inspect(type)})", r, @exact[op])
              end

            binary =
              for op <- Mure.Rules.binary_ops() do
                r = on_both(ctx, &Mure.binary(op, pick.(x, &1), pick.(y, &1), device: :cpu))

                if r == :refused,
                  do: :refused,
                  else: compare!("#{op}(#{inspect(type)})", r, @exact[op])
              end

            # Sums run in the same order on both (no reassociation): the same bits.
            reduce =
              for op <- Mure.Rules.reductions(), axes <- [[1], :all] do
                opts = if axes == :all, do: [device: :cpu], else: [axes: axes, device: :cpu]
                r = on_both(ctx, &Mure.reduce(op, pick.(x, &1), opts))
                if r == :refused, do: :refused, else: compare!("#{op}(#{inspect(type)})", r, true)
              end

            Enum.reduce(unary ++ binary ++ reduce, acc, &Map.update!(&2, &1, fn n -> n + 1 end))
        end
      end)

    IO.puts("op table on x86-64 and aarch64 (qemu): #{inspect(counts)} in #{round(ms)} ms")
    # Most of the table runs on every type it takes; a run that compared nothing proves nothing.
    assert counts.compared > 200
  end

  test "an f32 matrix product agrees within the bound of a k-term sum", ctx do
    {m, k, n} = {48, 96, 40}
    a = random_floats(m * k, 32)
    b = random_floats(k * n, 32)

    on = fn conn ->
      Mure.matmul!(
        Mure.upload!(conn, pack(a, 32), {:f, 32}, {m, k}),
        Mure.upload!(conn, pack(b, 32), {:f, 32}, {k, n})
      )
    end

    cx = unpack(Mure.download!(on.(ctx.x86)), 32)
    ca = unpack(Mure.download!(on.(ctx.arm)), 32)

    # Each is within γk·Σ|aᵢbᵢ| of the exact sum (README, "Float products"): 2γk apart at most.
    u = :math.pow(2, -24)
    gamma = k * u / (1 - k * u)
    abs_sum = matmul_ref(Enum.map(a, &abs/1), Enum.map(b, &abs/1), m, k, n)

    for {{x, y}, s} <- Enum.zip(Enum.zip(cx, ca), abs_sum) do
      assert abs(x - y) <= 2 * gamma * s + 1.0e-30
    end
  end

  ## Both nodes as one cluster

  test "a job split across the x86-64 and the aarch64 node gives one node's result; the emulated node gets the smaller share",
       %{prefix: prefix, x86: x86} do
    cluster =
      start_supervised!(
        {Mure.Cluster,
         hosts: ["127.0.0.1"],
         name_prefix: prefix,
         discover_interval: 200,
         connect_opts: [timeout: 60_000]}
      )

    assert :ok = Mure.Cluster.await_members(cluster, 2, 180_000)
    members = Map.new(Mure.Cluster.members(cluster), &{&1.node, &1})
    arm_node = :"#{prefix}arm@127.0.0.1"
    x86_node = :"#{prefix}x86@127.0.0.1"
    assert Map.keys(members) |> Enum.sort() == Enum.sort([arm_node, x86_node])

    # The probe measured the emulated node slower than the native one.
    arm_speed = members[arm_node].speeds
    x86_speed = members[x86_node].speeds
    assert arm_speed.gemm_flops_s < x86_speed.gemm_flops_s

    rows = 4_000
    a = {exact_matrix(rows, 128, 3), {:f, 32}, {rows, 128}}
    b = {exact_matrix(128, 64, 5), {:f, 32}, {128, 64}}
    # The reference: one node (the x86-64 one) alone. Small integers: exact in any order.
    expected = Mure.run!(Mure.jit(&Mure.Expr.dot/2), [a, b], outputs: :return, conn: x86)

    {:ok, shared} = Mure.Cluster.share(cluster, b)
    assert {:ok, ^expected} = Mure.Cluster.dot(cluster, a, shared, piece_rows: 40)

    status = Mure.Cluster.status(cluster)
    work = Map.new(status.members, &{&1.node, &1.work})
    IO.puts("\n" <> Mure.Cluster.format_status(status))

    IO.puts(
      "split of #{rows} rows: x86-64 #{work[x86_node].rows}, aarch64 (qemu) #{work[arm_node].rows}"
    )

    assert work[arm_node].rows + work[x86_node].rows == rows
    assert work[arm_node].pieces >= 1, "the aarch64 node took no piece"
    assert work[arm_node].rows < work[x86_node].rows
  end
end
