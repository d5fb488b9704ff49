defmodule Mure.NxCompilerLoopTest do
  # defn while and cond run on the node ({:while, ...} and {:if, ...} program nodes): a
  # function with straight-line loops and branches is one program request however many
  # iterations it runs. Results against Nx.Defn.Evaluator on Nx.BinaryBackend; programs
  # counted with Mure.Compiler's telemetry event and the node's request counter.
  use Mure.DefnCase, async: true

  defp assert_close(got, want, tol \\ 1.0e-5) do
    [Nx.Defn.Composite.flatten_list([binary(got)]), Nx.Defn.Composite.flatten_list([want])]
    |> Enum.zip()
    |> Enum.each(fn {g, w} ->
      assert g.type == w.type and g.shape == w.shape, "got #{inspect(g)}, want #{inspect(w)}"

      assert Nx.all_close(g, w, rtol: tol, atol: tol) |> Nx.to_number() == 1,
             "got #{inspect(g)}, want #{inspect(w)}"
    end)
  end

  # A linear model y = x w + b trained by 100 steps of gradient descent on fixed data.
  defn train(w, b, x, y) do
    {w, b, _x, _y, _i} =
      while {w, b, x, y, i = 0}, i < 100 do
        {gw, gb} = grad({w, b}, fn {w, b} -> Nx.mean((Nx.dot(x, w) + b - y) ** 2) end)
        {w - 0.1 * gw, b - 0.1 * gb, x, y, i + 1}
      end

    {w, b}
  end

  defn factorial(n) do
    {acc, _n} =
      while {acc = 1, n}, n > 0 do
        {acc * n, n - 1}
      end

    acc
  end

  # x = cos(x) to a fixed point.
  defn fixed_point(x) do
    {x, _prev} =
      while {x, prev = x + 1.0}, Nx.abs(x - prev) > 1.0e-6 do
        {Nx.cos(x), x}
      end

    x
  end

  # sum over i < n of (sum over j < i of j), with an inner loop.
  defn nested(n) do
    {total, _i, _n} =
      while {total = 0, i = 0, n}, i < n do
        {inner, _j, _i} =
          while {inner = 0, j = 0, i}, j < i do
            {inner + j, j + 1, i}
          end

        {total + inner, i + 1, n}
      end

    total
  end

  # A captured tensor (a constant of the function) read by the body.
  defn captured(x) do
    {x, _i} =
      while {x, i = 0}, i < 5 do
        {x * Nx.tensor([1.0, 2.0, 0.5]) + 1.0, i + 1}
      end

    x
  end

  # cond inside the loop's body (Collatz steps of n).
  defn collatz_steps(n) do
    {_n, steps} =
      while {n, steps = 0}, n > 1 do
        n =
          cond do
            rem(n, 2) == 0 -> div(n, 2)
            true -> 3 * n + 1
          end

        {n, steps + 1}
      end

    steps
  end

  # A multi-clause cond alone (nested ifs).
  defn sign_of(x) do
    cond do
      Nx.sum(x) > 0 -> x * 10
      Nx.sum(x) < 0 -> -x
      true -> x + 100
    end
  end

  defn big_loop(x, n) do
    {x, _i, _n} =
      while {x, i = 0, n}, i < n do
        {Nx.sin(x) + 0.5, i + 1, n}
      end

    x
  end

  defn(hooked_loop(x), do: while(x, Nx.sum(x) < 100, do: hook(x * 2, :step)))

  test "100 SGD steps of a training loop are one program request", %{conn: conn} do
    key = Nx.Random.key(3)
    {x, key} = Nx.Random.uniform(key, shape: {32, 4}, type: {:f, 32})
    {w0, _} = Nx.Random.normal(key, shape: {4, 1}, type: {:f, 32})
    y = Nx.dot(x, Nx.tensor([[1.0], [-2.0], [0.5], [3.0]])) |> Nx.add(0.25)
    b0 = Nx.tensor(0.0)
    fun = mure(&train/4, conn)
    _warm = fun.(w0, b0, x, y)
    {started, _} = :erlang.statistics(:wall_clock)
    {got, programs, requests} = round_trips(conn, fn -> fun.(w0, b0, x, y) end)
    {finished, _} = :erlang.statistics(:wall_clock)
    assert programs == 1
    assert requests == 1
    assert Mure.stats!(conn).loop_iterations >= 200
    assert_close(got, reference(&train/4, [w0, b0, x, y]), 1.0e-4)
    IO.puts("\n100 SGD steps on the node: 1 program, #{finished - started} ms")
  end

  test "factorial and a fixed point", %{conn: conn} do
    {got, 1, 1} = round_trips(conn, fn -> mure(&factorial/1, conn).(Nx.tensor(10)) end)
    assert Nx.to_number(got) == 3_628_800
    assert Nx.to_number(mure(&factorial/1, conn).(Nx.tensor(0))) == 1

    x = Nx.tensor(0.5, type: {:f, 64})
    {got, 1, 1} = round_trips(conn, fn -> mure(&fixed_point/1, conn).(x) end)
    assert_close(got, reference(&fixed_point/1, [x]), 1.0e-9)
    assert_in_delta Nx.to_number(got), 0.7390851332, 1.0e-6
  end

  test "a while inside a while is a nested node", %{conn: conn} do
    {got, 1, 1} = round_trips(conn, fn -> mure(&nested/1, conn).(Nx.tensor(6)) end)
    # sum over i < 6 of i (i - 1) / 2 = 0 + 0 + 1 + 3 + 6 + 10
    assert Nx.to_number(got) == 20
  end

  test "a while reading a captured tensor", %{conn: conn} do
    x = Nx.tensor([1.0, 1.0, 1.0])
    {got, 1, 1} = round_trips(conn, fn -> mure(&captured/1, conn).(x) end)
    assert_close(got, reference(&captured/1, [x]))
  end

  test "cond inside a while body, and a cond alone, as if nodes", %{conn: conn} do
    {got, 1, 1} = round_trips(conn, fn -> mure(&collatz_steps/1, conn).(Nx.tensor(27)) end)
    assert Nx.to_number(got) == 111

    for x <- [Nx.tensor([1.0, 2.0]), Nx.tensor([-1.0, -2.0]), Nx.tensor([1.0, -1.0])] do
      {got, 1, 1} = round_trips(conn, fn -> mure(&sign_of/1, conn).(x) end)
      assert_close(got, reference(&sign_of/1, [x]))
    end
  end

  test "a loop past :max_iterations is a clear error; the node stays up", %{conn: conn} do
    fun = mure(&factorial/1, conn, max_iterations: 3)

    assert_raise Mure.Error, ~r/3 iterations.*max_iterations/, fn ->
      fun.(Nx.tensor(10))
    end

    assert Nx.to_number(fun.(Nx.tensor(3))) == 6

    assert_raise ArgumentError, ~r/:max_iterations to be a positive integer/, fn ->
      mure(&factorial/1, conn, max_iterations: 0).(Nx.tensor(3))
    end
  end

  test "a loop's memory does not grow with its iterations" do
    # 1000 iterations of a 1 MiB state under a 16 MiB limit: 1 GiB if iterations leaked.
    conn = start_supervised!({Mure, memory_limit: 16 * 1024 * 1024}, id: :small)
    x = Nx.broadcast(Nx.tensor(0.0, type: {:f, 32}), {262_144})
    {got, 1, 1} = round_trips(conn, fn -> mure(&big_loop/2, conn).(x, Nx.tensor(1000)) end)
    head = binary(got)[0..3]
    Nx.backend_deallocate(got)
    assert_close(head, reference(&big_loop/2, [x[0..3], Nx.tensor(1000)]))
    # The 1 MiB state came back through this process's reusable shared segment (kept and
    # counted until the process exits): freed now, the node holds nothing.
    Mure.Transfer.drop_reusable(conn)
    assert Mure.stats!(conn).memory_used_bytes == 0
  end

  test "a loop with a hook in its body stays a client loop", %{conn: conn} do
    parent = self()
    fun = mure(&hooked_loop/1, conn, hooks: %{step: &send(parent, {:step, Nx.to_flat_list(&1)})})
    {got, programs, _} = round_trips(conn, fn -> fun.(Nx.tensor([1.0, 2.0])) end)
    assert Nx.to_flat_list(got) == [64.0, 128.0]
    assert programs > 1
    assert_received {:step, [2.0, 4.0]}
  end
end
