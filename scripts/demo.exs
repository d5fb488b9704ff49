# mure demo: launch a node, multiply matrices on BLIS, run elementwise ops on OpenCL, run
# ordinary Nx code on the node (Mure.Backend),
# check everything against references computed here, and print timings.
#
#   cd elixir_client && elixir --name demo_$$@127.0.0.1 -S mix run ../scripts/demo.exs
#
# Environment: MURE_DEMO_N (matrix size, default 512), MURE_DEMO_ELEMS (elementwise
# element count, default 1_048_576), MURE_DEMO_EPOCHS (epochs of the digits model, default 10),
# MURE_NODE_BIN (the node binary).
# Exits non-zero on any mismatch or error.

Code.require_file("../elixir_client/examples/digits.exs", __DIR__)

defmodule MureDemo do
  @f32 {:f, 32}

  def main do
    n = env_int("MURE_DEMO_N", 512)
    elems = env_int("MURE_DEMO_ELEMS", 1_048_576)

    unless Node.alive?() do
      fail(
        "this BEAM is not distributed: run with `elixir --name demo_$$@127.0.0.1 -S mix run ../scripts/demo.exs`"
      )
    end

    {launch_us, conn} =
      :timer.tc(fn ->
        case Mure.start_link(timeout: 60_000) do
          {:ok, conn} -> conn
          {:error, error} -> fail("could not launch the node: #{Exception.message(error)}")
        end
      end)

    hello = Mure.hello!(conn)

    IO.puts(
      "node #{hello.node} (mure #{hello.version}, os pid #{hello.os_pid}) ready in #{ms(launch_us)}"
    )

    IO.puts(
      "limits: max message #{mib(hello.limits.max_message_bytes)}, " <>
        "memory #{mib(hello.limits.memory_limit_bytes)}, queue depth #{hello.limits.queue_depth}"
    )

    devices = Mure.devices!(conn)

    for device <- devices do
      case device.id do
        :blis ->
          IO.puts(
            "device blis: #{device.name}, arch #{device.arch} (#{device.arch_reason}), " <>
              "#{device.threads} thread(s)"
          )

        :opencl ->
          IO.puts(
            "device opencl: #{device.name} on #{device.platform} (#{device.device_type}, " <>
              "#{device.compute_units} compute units, fp64: #{device.fp64})"
          )

        other ->
          IO.puts("device #{other}: #{inspect(device)}")
      end
    end

    unless Enum.any?(devices, &(&1.id == :opencl)), do: fail("the node has no OpenCL device")

    matmul(conn, n)
    elementwise(conn, elems)
    nx(conn)
    digits(conn, env_int("MURE_DEMO_EPOCHS", 10))

    stats = Mure.stats!(conn)

    IO.puts(
      "node stats: #{stats.requests} requests, #{stats.errors} errors, #{stats.tensors} tensors resident"
    )

    Mure.stop(conn)
    IO.puts("demo: OK")
  end

  defp matmul(conn, n) do
    IO.puts("\n== matmul #{n}x#{n} f32 on BLIS ==")
    a = random_f32(n * n)
    b = random_f32(n * n)
    bytes = byte_size(a) * 2

    {up_us, {ta, tb}} =
      :timer.tc(fn ->
        {Mure.upload!(conn, a, @f32, {n, n}), Mure.upload!(conn, b, @f32, {n, n})}
      end)

    IO.puts("upload:   #{ms(up_us)} (#{mib(bytes)}, #{rate(bytes, up_us)})")

    # The first product warms the node up (buffers, BLIS threads); time the next ones.
    Mure.free!(Mure.matmul!(ta, tb))
    times = time_runs(5, fn -> Mure.matmul!(ta, tb) end)
    best = Enum.min(times)
    flops = 2 * n * n * n

    IO.puts(
      "matmul:   best #{ms(best)}, median #{ms(median(times))} of 5 " <>
        "(#{Float.round(flops / best / 1.0e3, 1)} GFLOP/s incl. round trip)"
    )

    tc = Mure.matmul!(ta, tb)
    {down_us, c} = :timer.tc(fn -> Mure.download!(tc) end)
    IO.puts("download: #{ms(down_us)} (#{mib(byte_size(c))}, #{rate(byte_size(c), down_us)})")

    # Check sampled entries (all of them for small n) against a reference in f64.
    a_t = :erlang.list_to_tuple(unpack(a))
    b_t = :erlang.list_to_tuple(unpack(b))
    c_t = :erlang.list_to_tuple(unpack(c))

    samples =
      if n <= 64,
        do: for(i <- 0..(n - 1), j <- 0..(n - 1), do: {i, j}),
        else:
          [{0, 0}, {n - 1, n - 1}, {0, n - 1}, {n - 1, 0}] ++
            for(_ <- 1..60, do: {:rand.uniform(n) - 1, :rand.uniform(n) - 1})

    bad =
      Enum.reject(samples, fn {i, j} ->
        expected =
          Enum.reduce(0..(n - 1), 0.0, fn p, acc ->
            acc + elem(a_t, i * n + p) * elem(b_t, p * n + j)
          end)

        got = elem(c_t, i * n + j)
        abs(got - expected) <= 1.0e-3 + 1.0e-4 * abs(expected)
      end)

    if bad != [],
      do:
        fail(
          "matmul mismatch at #{length(bad)} of #{length(samples)} sampled entries: #{inspect(Enum.take(bad, 5))}"
        )

    IO.puts("check:    #{length(samples)} sampled entries match the reference")
    Enum.each([ta, tb, tc], &Mure.free!/1)
  end

  # Ordinary Nx code, unchanged, on the node: a softmax layer over a matrix product, checked
  # against the same code on Nx.BinaryBackend (the reference computed here).
  defp nx(conn) do
    IO.puts("\n== ordinary Nx code on Mure.Backend ==")

    layer = fn x, w ->
      logits = Nx.dot(x, w)
      exp = Nx.exp(Nx.subtract(logits, Nx.reduce_max(logits, axes: [1], keep_axes: true)))
      Nx.divide(exp, Nx.sum(exp, axes: [1], keep_axes: true))
    end

    # Made on Nx's default backend (this BEAM's Nx.BinaryBackend), then moved to the node.
    key = Nx.Random.key(42)
    {x, key} = Nx.Random.uniform(key, shape: {256, 128}, type: :f32)
    {w, _key} = Nx.Random.uniform(key, shape: {128, 10}, type: :f32)
    reference = layer.(x, w)

    backend = {Mure.Backend, connection: conn}

    {us, on_node} =
      :timer.tc(fn -> layer.(Nx.backend_transfer(x, backend), Nx.backend_transfer(w, backend)) end)

    IO.puts(
      "softmax(x . w), x {256, 128}, w {128, 10}: #{ms(us)} on the node, result #{inspect(on_node.data.__struct__)}"
    )

    unless Nx.all_close(Nx.backend_transfer(on_node, Nx.BinaryBackend), reference, atol: 1.0e-5)
           |> Nx.to_number() == 1 do
      fail("Nx on Mure.Backend differs from Nx.BinaryBackend")
    end

    IO.puts("check:    the 2560 probabilities match Nx.BinaryBackend's (atol 1e-5)")
  end

  # A real model trained on the node: the 64-64-10 MLP of examples/digits.exs (plain defn,
  # value_and_grad, SGD) jitted with compiler: Mure, one program per step, on the 8x8 digits of
  # python3-sklearn; then its accuracy on held-out digits, classified on the node too.
  defp digits(conn, epochs) do
    alias Mure.Examples.Digits

    IO.puts(
      "\n== a real model: the digits MLP (64-64-10, plain defn) trained with compiler: Mure =="
    )

    {{train_x, train_labels}, {test_x, test_labels}} =
      case Digits.load() do
        {:ok, data} -> data
        {:error, message} -> fail(message)
      end

    batch = 64

    batches =
      train_x |> Digits.batches(Digits.one_hot(train_labels), batch) |> Digits.to_node(conn)

    step = Nx.Defn.jit(&Digits.train_step/4, compiler: Mure, connection: conn)
    lr = Nx.tensor(0.5, type: @f32)
    steps = length(batches)

    IO.puts(
      "#{length(train_labels)} training rows in #{steps} batches of #{batch} (on the node), " <>
        "#{length(test_labels)} held out; lr 0.5"
    )

    params =
      Enum.reduce(1..epochs, Digits.to_node(Digits.init_params(), conn), fn epoch, params ->
        {{us, {params, loss}}, programs} =
          Digits.programs(conn, fn ->
            :timer.tc(fn -> Digits.epoch(step, params, batches, lr) end)
          end)

        if programs != steps,
          do: fail("epoch #{epoch}: #{programs} programs for #{steps} steps (one each expected)")

        IO.puts(
          "epoch #{String.pad_leading("#{epoch}", 2)}: #{ms(us)}, #{Float.round(us / steps / 1000, 2)} ms/step, " <>
            "#{programs / steps} round trips per step, last batch loss #{Float.round(Nx.to_number(loss), 4)}" <>
            if(epoch == 1, do: " (the first step traces and builds kernels)", else: "")
        )

        params
      end)

    classify = Nx.Defn.jit(&Digits.classify/2, compiler: Mure, connection: conn)
    {us, predicted} = :timer.tc(fn -> classify.(params, Digits.to_node(test_x, conn)) end)
    {accuracy, correct} = Digits.accuracy(predicted, test_labels)

    IO.puts(
      "digits: test accuracy #{Float.round(accuracy, 1)} % (#{correct} of #{length(test_labels)} " <>
        "held-out digits after #{epochs} epochs; classified on the node in #{ms(us)})"
    )

    Enum.each([params, predicted | batches], &Digits.free/1)
    if accuracy < 90.0, do: fail("the digits model reached only #{Float.round(accuracy, 1)} %")
  end

  defp elementwise(conn, elems) do
    IO.puts("\n== elementwise add and multiply, #{elems} f32 on OpenCL ==")
    a = random_f32(elems)
    b = random_f32(elems)
    ta = Mure.upload!(conn, a, @f32, {elems})
    tb = Mure.upload!(conn, b, @f32, {elems})

    # Warm up (buffers, first kernel launches), then time a few runs of each.
    on_opencl = [device: :opencl]
    Mure.free!(Mure.add!(ta, tb, on_opencl))
    Mure.free!(Mure.multiply!(ta, tb, on_opencl))

    for {name, fun} <- [{"add:     ", &Mure.add!/3}, {"multiply:", &Mure.multiply!/3}] do
      times = time_runs(5, fn -> fun.(ta, tb, on_opencl) end)
      best = Enum.min(times)

      IO.puts(
        "#{name} best #{ms(best)}, median #{ms(median(times))} of 5 " <>
          "(#{Float.round(elems / best / 1.0e3, 2)} GFLOP/s, " <>
          "#{Float.round(3 * 4 * elems / best, 1)} MB/s of operands and result; incl. round trip)"
      )
    end

    tsum = Mure.add!(ta, tb, on_opencl)
    tprod = Mure.multiply!(ta, tb, on_opencl)

    {down_us, {sum, prod}} = :timer.tc(fn -> {Mure.download!(tsum), Mure.download!(tprod)} end)
    IO.puts("download: #{ms(down_us)} (#{mib(byte_size(sum) * 2)})")

    check(:add, a, b, sum, &+/2)
    check(:multiply, a, b, prod, &*/2)
    IO.puts("check:    all #{elems} sums and products match the reference")
    Enum.each([ta, tb, tsum, tprod], &Mure.free!/1)
  end

  # f32 add and multiply are correctly rounded: the reference is the f64 result rounded
  # to f32; allow one ulp of slack.
  defp check(op, a, b, got, fun) do
    mismatches =
      Enum.zip([unpack(a), unpack(b), unpack(got)])
      |> Enum.with_index()
      |> Enum.reject(fn {{x, y, z}, _i} ->
        <<expected::float-32-native>> = <<fun.(x, y)::float-32-native>>
        abs(z - expected) <= 1.2e-7 * abs(expected) + 1.0e-30
      end)

    if mismatches != [],
      do:
        fail(
          "#{op} mismatch at #{length(mismatches)} elements, e.g. #{inspect(Enum.take(mismatches, 3))}"
        )
  end

  # Runs `fun` (which returns a resident tensor) `runs` times; the times in µs.
  defp time_runs(runs, fun) do
    for _ <- 1..runs do
      {us, tensor} = :timer.tc(fun)
      Mure.free!(tensor)
      us
    end
  end

  defp median(times), do: Enum.at(Enum.sort(times), div(length(times), 2))

  defp random_f32(count) do
    for _ <- 1..count, into: <<>>, do: <<:rand.uniform() * 2.0 - 1.0::float-32-native>>
  end

  defp unpack(bin), do: for(<<x::float-32-native <- bin>>, do: x)

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      value -> String.to_integer(value)
    end
  end

  defp ms(us), do: "#{Float.round(us / 1000, 2)} ms"
  defp mib(bytes), do: "#{Float.round(bytes / 1_048_576, 2)} MiB"
  defp rate(bytes, us), do: "#{Float.round(bytes / us, 1)} MB/s"

  defp fail(message) do
    IO.puts(:stderr, "demo: FAILED: #{message}")
    System.halt(1)
  end
end

try do
  MureDemo.main()
rescue
  error ->
    IO.puts(:stderr, "demo: FAILED: " <> Exception.format(:error, error, __STACKTRACE__))
    System.halt(1)
end
