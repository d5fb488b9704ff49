defmodule Mure.NxCompilerTest do
  # Mure.Compiler against a real node: defn functions compiled with compiler: Mure give
  # what Nx.Defn.Evaluator on Nx.BinaryBackend gives; a straight-line function is one
  # request (the node's own request counter); grad, while, cond, hooks, optional ops,
  # containers, ops the node lacks; the plan cache.
  use Mure.DefnCase, async: true

  doctest Mure.Compiler

  defp assert_close(got, want, tol \\ 1.0e-5) do
    got = binary(got)

    [Nx.Defn.Composite.flatten_list([got]), Nx.Defn.Composite.flatten_list([want])]
    |> Enum.zip()
    |> Enum.each(fn {g, w} ->
      assert g.type == w.type and g.shape == w.shape,
             "got #{inspect(g)}, want #{inspect(w)}"

      assert Nx.all_close(g, w, rtol: tol, atol: tol) |> Nx.to_number() == 1,
             "got #{inspect(g)}, want #{inspect(w)}"
    end)
  end

  defn softmax_layer(x, w, b) do
    logits = Nx.dot(x, w) + b
    max = Nx.reduce_max(logits, axes: [1], keep_axes: true)
    e = Nx.exp(logits - max)
    e / Nx.sum(e, axes: [1], keep_axes: true)
  end

  defn loss(w, x, y) do
    p = softmax_layer(x, w, 0.1)
    -Nx.mean(Nx.sum(y * Nx.log(p), axes: [1]))
  end

  defn(grad_loss(w, x, y), do: grad(w, &loss(&1, x, y)))

  defn count_to(x, n) do
    {x, _n} =
      while {x, n}, Nx.less(Nx.sum(x), n) do
        {x * 2, n}
      end

    x
  end

  defn sign_of(x) do
    cond do
      Nx.sum(x) > 0 -> x * 10
      Nx.sum(x) < 0 -> -x
      true -> x + 100
    end
  end

  defn(pair(x, y), do: {x + y, %{prod: x * y, diff: x - y}})

  defn(hooked(x), do: hook(x * 2, :doubled) + 1)

  defn with_lacking_op(x) do
    # fft: the node has no such op yet (a client step between two programs)
    y = Nx.exp(x)
    Nx.real(Nx.fft(y)) + 1
  end

  test "a straight-line function is one request and agrees with the evaluator", %{conn: conn} do
    x = Nx.iota({4, 3}, type: {:f, 32}) |> Nx.divide(10)
    w = Nx.iota({3, 5}, type: {:f, 32}) |> Nx.subtract(7) |> Nx.divide(5)
    b = Nx.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    fun = mure(&softmax_layer/3, conn)
    _warm = fun.(x, w, b)

    {got, sent} = requests(conn, fn -> fun.(x, w, b) end)
    assert sent == 1
    assert %Mure.Backend{} = got.data
    assert_close(got, reference(&softmax_layer/3, [x, w, b]))
  end

  test "the node counts the program's nodes and those it fused (stats.kernels)", %{conn: conn} do
    unless Enum.any?(Mure.hello!(conn).devices, &(&1.id == :opencl)),
      do: flunk("the node has no OpenCL device: fused kernels need one (PoCL is expected)")

    # x * y + x, then exp: three f32 elementwise nodes of one shape, one fused kernel; the
    # sum over all of it tops the group (where the device has fp64) or runs alone.
    fun = mure(fn x, y -> {Nx.exp(Nx.add(Nx.multiply(x, y), x)), Nx.sum(x)} end, conn)
    x = Nx.iota({4, 8}, type: :f32) |> Nx.divide(32)
    y = Nx.tensor(0.5, type: :f32) |> Nx.broadcast({4, 8})
    fun.(x, y)
    before = Mure.stats!(conn).kernels
    {e, _s} = fun.(x, y)
    k = Mure.stats!(conn).kernels

    want = Nx.exp(Nx.add(Nx.multiply(x, y), x))

    assert Nx.all_close(Nx.backend_copy(e, Nx.BinaryBackend), want, rtol: 1.0e-6)
           |> Nx.to_number() == 1

    # Nodes: the two arguments' bytes are inputs, not nodes; multiply, add, exp, sum.
    assert k.program_nodes - before.program_nodes == 4
    assert k.fused_nodes - before.fused_nodes == 3
    assert k.fused_groups - before.fused_groups == 1
  end

  test "arguments that are Mure.Backend tensors go by handle", %{conn: conn} do
    x = Nx.iota({2, 3}, type: {:f, 32}, backend: {Mure.Backend, connection: conn})
    fun = Nx.Defn.jit(fn x -> Nx.sum(Nx.sin(x), axes: [0]) end, compiler: Mure)
    got = fun.(x)
    assert got.data.ref.conn == conn
    assert_close(got, Nx.sum(Nx.sin(binary(x)), axes: [0]))
  end

  test "grad of a small loss", %{conn: conn} do
    key = Nx.Random.key(7)
    {w, key} = Nx.Random.normal(key, shape: {6, 4}, type: {:f, 32})
    {x, _} = Nx.Random.uniform(key, shape: {8, 6}, type: {:f, 32})
    y = Nx.tensor(for i <- 0..7, do: for(j <- 0..3, do: if(rem(i, 4) == j, do: 1.0, else: 0.0)))
    fun = mure(&grad_loss/3, conn)
    {got, sent} = requests(conn, fn -> fun.(w, x, y) end)
    assert sent == 1
    assert_close(got, reference(&grad_loss/3, [w, x, y]), 1.0e-4)
  end

  test "a straight-line while runs on the node: one program", %{conn: conn} do
    x = Nx.tensor([1.0, 2.0])
    fun = mure(&count_to/2, conn)
    _ = fun.(x, 100)
    {got, programs} = programs(conn, fn -> fun.(x, 100) end)
    # sum 3 -> 6 -> 12 -> 24 -> 48 -> 96 -> 192: six iterations, all in the one program's
    # {:while, ...} node (test/nx_compiler_loop_test.exs has the rest)
    assert programs == 1
    assert_close(got, reference(&count_to/2, [x, Nx.tensor(100)]))
  end

  test "cond picks the branch the evaluator picks", %{conn: conn} do
    fun = mure(&sign_of/1, conn)

    for x <- [Nx.tensor([1.0, 2.0]), Nx.tensor([-1.0, -2.0]), Nx.tensor([1.0, -1.0])] do
      assert_close(fun.(x), reference(&sign_of/1, [x]))
    end
  end

  test "tuples and maps are containers", %{conn: conn} do
    x = Nx.tensor([1, 2, 3])
    y = Nx.tensor([4, 5, 6])
    {s, %{prod: p, diff: d}} = mure(&pair/2, conn).(x, y)
    assert Nx.to_flat_list(s) == [5, 7, 9]
    assert Nx.to_flat_list(p) == [4, 10, 18]
    assert Nx.to_flat_list(d) == [-3, -3, -3]
  end

  test "hooks run on the client with the value", %{conn: conn} do
    parent = self()
    fun = mure(&hooked/1, conn, hooks: %{doubled: &send(parent, {:hooked, &1})})
    got = fun.(Nx.tensor([1.0, 2.0]))
    assert Nx.to_flat_list(got) == [3.0, 5.0]
    assert_received {:hooked, %Nx.Tensor{data: %Nx.BinaryBackend{}} = t}
    assert Nx.to_flat_list(t) == [2.0, 4.0]
  end

  test "an op the node lacks splits the function and still agrees", %{conn: conn} do
    x = Nx.tensor([0.0, 0.5, 1.0, 1.5])
    assert_close(mure(&with_lacking_op/1, conn).(x), reference(&with_lacking_op/1, [x]), 1.0e-4)
  end

  test "vectorized arguments and results", %{conn: conn} do
    x = Nx.iota({3, 4}, type: {:f, 32}) |> Nx.vectorize(:rows)
    fun = mure(fn x -> Nx.sum(Nx.multiply(x, x)) end, conn)
    got = fun.(x)
    assert got.vectorized_axes == [rows: 3] and got.shape == {}
    assert Nx.to_flat_list(Nx.devectorize(binary(got))) == [14.0, 126.0, 366.0]
  end

  test "the plan is cached per signature", %{conn: conn} do
    parent = self()

    fun =
      mure(
        fn x ->
          send(parent, :traced)
          Nx.multiply(x, 2)
        end,
        conn
      )

    fun.(Nx.tensor([1.0]))
    assert_received :traced
    fun.(Nx.tensor([2.0]))
    refute_received :traced
    fun.(Nx.tensor([1.0, 2.0]))
    assert_received :traced
  end

  test "options are validated", %{conn: conn} do
    assert_raise ArgumentError, ~r/unknown keys \[:nope\]/, fn ->
      mure(&Nx.exp/1, conn, nope: 1).(Nx.tensor(1.0))
    end

    assert_raise ArgumentError, ~r/:device to be :cpu, :opencl or :auto/, fn ->
      mure(&Nx.exp/1, conn, device: :gpu).(Nx.tensor(1.0))
    end
  end

  test "Nx.Defn.stream: each element one program, the accumulator stays on the node", %{
    conn: conn
  } do
    # Nx 0.7.2's stream checks each output against the accumulator's template; the output
    # and the new accumulator share a count (a value the stream must not free under the
    # caller when it replaces the accumulator).
    fun = fn x, {sum, count} ->
      count = Nx.add(count, 1)
      {{Nx.multiply(x, sum), count}, {Nx.add(sum, x), count}}
    end

    acc = {Nx.tensor([0.0, 0.0]), Nx.tensor(0)}
    stream = Nx.Defn.stream(fun, [Nx.template({2}, :f32), acc], compiler: Mure, connection: conn)
    inputs = [Nx.tensor([1.0, 2.0]), Nx.tensor([3.0, -1.0]), Nx.tensor([0.5, 4.0])]

    {outputs, programs} =
      programs(conn, fn ->
        for x <- inputs do
          :ok = Nx.Stream.send(stream, x)
          Nx.Stream.recv(stream)
        end
      end)

    {sum, count} = Nx.Stream.done(stream)

    # The reference: the same function on Nx.BinaryBackend, element by element.
    {expected, {ref_sum, ref_count}} =
      Enum.map_reduce(inputs, acc, fn x, acc ->
        Nx.Defn.jit(fun, compiler: Nx.Defn.Evaluator).(Nx.backend_copy(x, Nx.BinaryBackend), acc)
      end)

    assert programs == 3

    for {{o, n}, {e, m}} <- Enum.zip(outputs, expected) do
      assert Nx.to_list(o) == Nx.to_list(e)
      assert Nx.to_number(n) == Nx.to_number(m)
    end

    assert %Mure.Backend{} = sum.data
    assert Nx.to_list(sum) == Nx.to_list(ref_sum)
    assert Nx.to_number(count) == Nx.to_number(ref_count)

    # The earlier accumulators were freed: what the stream left on the node is the final
    # accumulator and the outputs the caller holds.
    outputs |> Enum.flat_map(&Tuple.to_list/1) |> Enum.each(&Nx.backend_deallocate/1)
    Nx.backend_deallocate(sum)
    Nx.backend_deallocate(count)
    assert {:ok, %{connection_tensors: 0}} = Mure.stats(conn)
  end
end
