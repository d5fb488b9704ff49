defmodule Mure.NxBackendTest do
  # Mure.Backend against a real node: results against Nx.BinaryBackend's, transfers, the
  # fallback count, and the lifetime rule of the moduledoc (scopes in a long-running
  # GenServer, tensors passed to and returned from Tasks, a tensor whose owner exited),
  # with the node's own memory figures (Mure.stats) as the measure.
  use Mure.NxCase, async: true

  import Mure.TestSupport, only: [wait_until: 1]

  describe "ops" do
    test "eager ops run on the node and agree with Nx.BinaryBackend", %{conn: conn} do
      before = Mure.stats!(conn).requests
      a = Nx.iota({3, 4}, type: {:f, 32})
      b = Nx.tensor([[1, -2, 3, 4]], type: {:s, 32})
      y = a |> Nx.add(b) |> Nx.exp() |> Nx.sum(axes: [1]) |> Nx.divide(7)
      assert on_node?(y)
      # one request per op, at least (the node did the work)
      assert Mure.stats!(conn).requests - before >= 5

      ref =
        Nx.iota({3, 4}, type: {:f, 32}, backend: Nx.BinaryBackend)
        |> Nx.add(Nx.tensor([[1, -2, 3, 4]], type: {:s, 32}, backend: Nx.BinaryBackend))
        |> Nx.exp()
        |> Nx.sum(axes: [1])
        |> Nx.divide(7)

      assert Nx.all_close(ref(y), ref, rtol: 1.0e-6) |> Nx.to_number() == 1
      assert y.type == {:f, 32} and y.shape == {3}

      d = Nx.dot(Nx.iota({2, 3}), Nx.iota({3, 2}))
      assert Nx.to_flat_list(d) == [10, 13, 28, 40]
      assert d.type == {:s, 64}
    end

    test "window ops run on the node (its window op) and agree with Nx.BinaryBackend", %{
      conn: conn
    } do
      key = Nx.Random.key(7) |> Nx.backend_copy(Nx.BinaryBackend)
      {ref_x, _} = Nx.Random.normal(key, shape: {2, 7, 9}, type: {:f, 32})
      x = Nx.backend_copy(ref_x, {Mure.Backend, connection: conn})
      watch = Mure.Test.Fallbacks.start()

      for fun <- [:window_sum, :window_product, :window_max, :window_min],
          opts <- [
            [],
            [strides: [1, 2, 3]],
            [padding: :same],
            [padding: [{0, 0}, {2, 1}, {1, 3}], strides: [1, 1, 2], window_dilations: [1, 2, 1]]
          ] do
        got = apply(Nx, fun, [x, {1, 3, 2}, opts])
        want = apply(Nx, fun, [ref_x, {1, 3, 2}, opts])
        assert got.shape == want.shape and got.type == want.type
        assert Nx.to_number(Nx.all_close(got, want, rtol: 1.0e-5)) == 1, "#{fun} #{inspect(opts)}"
      end

      s = Nx.window_sum(Nx.iota({5, 5}, type: {:s, 32}), {2, 2}, strides: [2, 2])
      assert Nx.to_flat_list(s) == [12, 20, 52, 60]
      assert Mure.Test.Fallbacks.counts(watch) == %{}
    end

    test "all_close and top_k run on the node as one program each, as Nx.BinaryBackend", %{
      conn: conn
    } do
      mure = {Mure.Backend, connection: conn}
      watch = Mure.Test.Fallbacks.start()
      a = Nx.tensor([[1.0, 2.0, :nan], [:infinity, 5.0, 6.0]], backend: Nx.BinaryBackend)
      b = Nx.tensor([[1.0, 2.00001, :nan], [:infinity, 5.0, 6.1]], backend: Nx.BinaryBackend)
      i = Nx.tensor([[3, 1, 4], [1, 5, 9]], backend: Nx.BinaryBackend)
      [ma, mb, mi] = Enum.map([a, b, i], &Nx.backend_copy(&1, mure))
      {:ok, %{requests: before}} = Mure.stats(conn)

      for {x, y, mx, my} <- [{a, b, ma, mb}, {i, i, mi, mi}],
          opts <- [[], [equal_nan: true], [atol: 0.2], [rtol: 0.0, atol: 0.0, equal_nan: true]] do
        # The reference entirely on Nx.BinaryBackend (Nx's composition makes its scalars on
        # the default backend).
        want = Nx.with_default_backend(Nx.BinaryBackend, fn -> Nx.all_close(x, y, opts) end)
        got = Nx.all_close(mx, my, opts)
        assert on_node?(got) and got.type == want.type
        assert Nx.to_number(got) == Nx.to_number(want), "#{inspect(opts)}"
      end

      t =
        Nx.tensor([[3.0, 1.0, 4.0, 1.0, 5.0], [9.0, 2.0, 6.0, 5.0, 3.0]],
          backend: Nx.BinaryBackend
        )

      {wv, wi} = Nx.with_default_backend(Nx.BinaryBackend, fn -> Nx.top_k(t, k: 3) end)
      {gv, gi} = Nx.top_k(Nx.backend_copy(t, mure), k: 3)
      assert on_node?(gv) and on_node?(gi)
      assert Nx.backend_copy(gv, Nx.BinaryBackend) == wv
      assert Nx.backend_copy(gi, Nx.BinaryBackend) == wi

      # 8 all_close + 1 top_k, each one program (Nx's compositions would be 5 to 10 eager ops
      # each), 1 upload, 10 reads of their results, and this stats call: exactly.
      {:ok, %{requests: now}} = Mure.stats(conn)
      assert Mure.Test.Fallbacks.counts(watch) == %{}
      assert now - before == 8 + 1 + 1 + 10 + 1
    end

    test "conv runs on the node (im2col + dot) and agrees with Nx.BinaryBackend", %{conn: conn} do
      mure = {Mure.Backend, connection: conn}
      key = Nx.Random.key(3) |> Nx.backend_copy(Nx.BinaryBackend)
      watch = Mure.Test.Fallbacks.start()

      for {xs, ks, opts} <- [
            {{2, 3, 7, 6}, {4, 3, 3, 2}, []},
            {{2, 3, 7, 6}, {4, 3, 3, 2}, strides: [2, 1], padding: [{1, 2}, {0, 1}]},
            {{1, 2, 5, 5}, {3, 2, 3, 3}, padding: :same},
            {{1, 2, 9, 8}, {3, 2, 2, 3}, kernel_dilation: [2, 1], input_dilation: [1, 2]},
            {{2, 4, 6, 6}, {6, 2, 3, 3}, feature_group_size: 2},
            {{4, 3, 6, 6}, {6, 3, 3, 3}, batch_group_size: 2},
            {{6, 2, 7, 5}, {9, 2, 2, 3}, batch_group_size: 3, strides: [2, 1], padding: :same},
            {{2, 3, 10}, {5, 3, 4}, strides: [3]},
            {{1, 2, 4, 5, 4}, {2, 2, 2, 2, 2}, []},
            {{2, 7, 6, 3}, {4, 3, 3, 2},
             input_permutation: [0, 3, 1, 2], output_permutation: [0, 3, 1, 2]}
          ] do
        {x, key} = Nx.Random.normal(key, shape: xs)
        {k, _} = Nx.Random.normal(key, shape: ks)
        want = Nx.conv(x, k, opts)
        got = Nx.conv(Nx.backend_copy(x, mure), Nx.backend_copy(k, mure), opts)
        assert on_node?(got) and got.shape == want.shape
        close = Nx.all_close(ref(got), want, rtol: 1.0e-4, atol: 1.0e-5)
        assert Nx.to_number(close) == 1, inspect(opts)
      end

      assert Mure.Test.Fallbacks.counts(watch) == %{}
    end

    test "map and reduce functions are traced into node ops; others fall back, counted" do
      t = Nx.tensor([[1, 2, 3], [4, 5, 6]])
      watch = Mure.Test.Fallbacks.start()
      assert Nx.to_flat_list(Nx.map(t, &Nx.add(Nx.multiply(&1, 2), 1))) == [3, 5, 7, 9, 11, 13]

      sel = Nx.map(t, fn x -> Nx.select(Nx.greater(x, 2), x, Nx.tensor(0)) end)
      assert Nx.to_flat_list(sel) == [0, 0, 3, 4, 5, 6]
      assert Nx.to_flat_list(Nx.map(t, fn _ -> 7 end)) == List.duplicate(7, 6)
      assert Nx.to_flat_list(Nx.reduce(t, 10, &Nx.add/2)) == [31]
      assert Nx.to_flat_list(Nx.reduce(t, 1, [axes: [1]], &Nx.multiply/2)) == [6, 120]
      maxed = Nx.reduce(t, 0, [axes: [0], keep_axes: true], fn x, acc -> Nx.max(acc, x) end)
      assert maxed.shape == {1, 3} and Nx.to_flat_list(maxed) == [4, 5, 6]
      assert Mure.Test.Fallbacks.counts(watch) == %{}

      squares = Nx.reduce(t, 0, fn x, acc -> Nx.add(Nx.multiply(x, x), acc) end)
      assert Nx.to_flat_list(squares) == [91]
      assert Mure.Test.Fallbacks.counts(watch) == %{reduce: 1}
    end

    test "an op the node lacks falls back to Nx.BinaryBackend, counted, result on the node" do
      watch = Mure.Test.Fallbacks.start()
      t = Nx.tensor([[1, 5, 2, 0], [3, 4, 7, 1]])
      g = Nx.gather(t, Nx.tensor([[1], [0], [1]]), axes: [1])
      assert on_node?(g)
      assert Nx.to_flat_list(g) == [5, 4, 1, 3, 5, 4]
      assert Mure.Test.Fallbacks.counts(watch) == %{gather: 1}
      assert Mure.Backend.fallbacks()[:gather] >= 1
    end

    test "complex tensors are stored on the node and computed by the fallback" do
      z = Nx.tensor([Complex.new(1, 2), Complex.new(3, -1)])
      assert on_node?(z) and z.type == {:c, 64}
      assert Nx.to_flat_list(Nx.multiply(z, z)) == [Complex.new(-3, 4), Complex.new(8, -6)]
    end
  end

  describe "transfers" do
    test "to and from Nx.BinaryBackend and between connections", %{conn: conn} do
      t = Nx.tensor([[1.5, 2.5], [3.5, 4.5]])
      assert on_node?(t)
      copy = Nx.backend_copy(t, Nx.BinaryBackend)
      assert copy.data.__struct__ == Nx.BinaryBackend
      assert Nx.to_binary(copy) == Nx.to_binary(t)

      back = Nx.backend_transfer(copy, {Mure.Backend, connection: conn})
      assert on_node?(back) and Nx.to_flat_list(back) == [1.5, 2.5, 3.5, 4.5]

      other = start_supervised!({Mure, []}, id: :other)
      moved = Nx.backend_transfer(t, {Mure.Backend, connection: other})
      assert moved.data.ref.node != t.data.ref.node
      assert Nx.to_flat_list(Nx.multiply(moved, 2)) == [3.0, 5.0, 7.0, 9.0]
      # the transfer freed the source on the first node
      assert_raise ArgumentError, ~r/no longer on its node/, fn -> Nx.to_binary(t) end
    end

    test "to_binary with a limit and inspect read only the head of a large tensor" do
      big = Nx.iota({1_000_000}, type: {:f, 32})
      head = for x <- [0.0, 1.0, 2.0], into: <<>>, do: <<x::float-32-native>>
      assert Nx.to_binary(big, limit: 3) == head
      assert inspect(big) =~ "[0.0, 1.0, 2.0, 3.0,"
      assert byte_size(Nx.to_binary(big)) == 4_000_000
    end

    test "Nx.backend_deallocate frees at once, the second time :already_deallocated", %{
      conn: conn
    } do
      t = Nx.iota({1000}, type: {:f, 32})
      used = Mure.stats!(conn).connection_tensors
      assert Nx.backend_deallocate(t) == :ok
      assert Mure.stats!(conn).connection_tensors == used - 1
      assert Nx.backend_deallocate(t) == :already_deallocated
    end

    test "device: places the ops (OpenCL kernels launch for :opencl, none for :cpu)", %{
      conn: conn
    } do
      launches = fn -> Mure.stats!(conn).kernels.launches end
      cpu = Nx.tensor([1.0, 2.0, 3.0], backend: {Mure.Backend, connection: conn, device: :cpu})
      before = launches.()
      y = cpu |> Nx.exp() |> Nx.multiply(2)
      assert launches.() == before
      assert y.data.device == :cpu

      ocl = Nx.backend_transfer(cpu, {Mure.Backend, connection: conn, device: :opencl})
      z = ocl |> Nx.exp() |> Nx.multiply(2)
      assert launches.() > before
      assert Nx.to_number(Nx.all_close(z, y, rtol: 1.0e-6)) == 1
    end

    test "the options are checked" do
      assert_raise ArgumentError, ~r/expected :device to be :cpu, :opencl or :auto/, fn ->
        Nx.tensor([1], backend: {Mure.Backend, connection: self(), device: :gpu})
      end

      assert_raise ArgumentError, ~r/needs a connection/, fn ->
        Nx.tensor([1], backend: Mure.Backend)
      end
    end
  end

  defmodule Looper do
    # A long-running process doing eager Nx ops: each step is a few ops on its state.
    use GenServer

    def init({backend, scoped}) do
      Nx.default_backend(backend)
      {:ok, %{x: Nx.broadcast(Nx.tensor(0.5), {64, 64}), scoped: scoped}}
    end

    def handle_call(:step, _from, state) do
      step = fn state ->
        x = state.x |> Nx.dot(state.x) |> Nx.tanh() |> Nx.multiply(0.5)
        %{state | x: x}
      end

      state = if state.scoped, do: Mure.Backend.scope(state, step), else: step.(state)
      {:reply, :ok, state}
    end
  end

  describe "lifetime" do
    test "a GenServer looping over eager ops in scope/1 does not grow the node's memory", %{
      conn: conn
    } do
      backend = {Mure.Backend, connection: conn}
      {:ok, scoped} = GenServer.start_link(Looper, {backend, true})
      for _ <- 1..10, do: GenServer.call(scoped, :step)
      s1 = Mure.stats!(conn)
      for _ <- 1..200, do: GenServer.call(scoped, :step)
      s2 = Mure.stats!(conn)
      assert s2.connection_tensors == s1.connection_tensors
      assert s2.memory_used_bytes == s1.memory_used_bytes

      # The same loop without a scope keeps its intermediates (so the measure can fail).
      {:ok, unscoped} = GenServer.start_link(Looper, {backend, false})
      for _ <- 1..50, do: GenServer.call(unscoped, :step)
      s3 = Mure.stats!(conn)
      assert s3.connection_tensors >= s2.connection_tensors + 50 * 3
      assert s3.memory_used_bytes > s2.memory_used_bytes + 50 * 3 * 64 * 64 * 4

      # ...until the process exits: then the node frees them all.
      GenServer.stop(unscoped)
      assert wait_until(fn -> Mure.stats!(conn).connection_tensors <= s2.connection_tensors end)
    end

    test "scope/1 frees what it made on an exception too", %{conn: conn} do
      before = Mure.stats!(conn).connection_tensors

      assert_raise RuntimeError, fn ->
        Mure.Backend.scope(fn ->
          Nx.iota({10}) |> Nx.add(1)
          raise "boom"
        end)
      end

      assert Mure.stats!(conn).connection_tensors == before
    end

    test "nested scopes: what the inner returns belongs to the outer", %{conn: conn} do
      before = Mure.stats!(conn).connection_tensors

      out =
        Mure.Backend.scope(fn ->
          inner = Mure.Backend.scope(fn -> Nx.iota({4}) |> Nx.add(1) end)
          assert Mure.stats!(conn).connection_tensors == before + 1
          {Nx.multiply(inner, 2), :tag}
        end)

      assert {%Nx.Tensor{} = t, :tag} = out
      assert Nx.to_flat_list(t) == [2, 4, 6, 8]
      assert Mure.stats!(conn).connection_tensors == before + 1
    end

    test "a tensor passed to a Task works there; what the Task returns works after it exits" do
      t = Nx.iota({4}, type: {:f, 32})
      task = Task.async(fn -> Nx.add(t, 1) end)
      ref = Process.monitor(task.pid)
      result = Task.await(task)
      assert_receive {:DOWN, ^ref, :process, _, _}
      # The Task made `result` for its caller (this process): it outlives the Task.
      assert Nx.to_flat_list(result) == [1.0, 2.0, 3.0, 4.0]
    end

    test "a tensor whose owner process exited fails with an error saying what to do", %{
      conn: conn
    } do
      parent = self()
      before = Mure.stats!(conn).connection_tensors

      {pid, ref} =
        spawn_monitor(fn ->
          Nx.default_backend({Mure.Backend, connection: conn})
          send(parent, {:made, Nx.iota({4})})
        end)

      assert_receive {:made, t}
      assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
      assert wait_until(fn -> Mure.stats!(conn).connection_tensors == before end)

      error = assert_raise ArgumentError, fn -> Nx.add(t, 1) end
      assert error.message =~ "no longer on its node"
      assert error.message =~ "its owner process exited"
      assert error.message =~ "Nx.backend_copy(tensor, Nx.BinaryBackend)"
    end

    test "a node that dies: the error names the node and the cause; the restarted one works" do
      name = :"nx_backend_death_#{System.unique_integer([:positive])}"
      start_supervised!({Mure, name: name}, id: name)
      Nx.default_backend({Mure.Backend, connection: name})
      t = Nx.iota({8}, type: {:f, 32})
      node = t.data.ref.node
      old = GenServer.whereis(name)
      {_, 0} = System.cmd("kill", ["-9", Integer.to_string(Mure.hello!(name).os_pid)])
      assert wait_until(fn -> GenServer.whereis(name) not in [nil, old] end)

      error = assert_raise Mure.ConnectionError, fn -> Nx.add(t, 1) end
      message = Exception.message(error)
      assert message =~ Atom.to_string(node)
      assert message =~ "no longer connected"

      # The next computation runs on the restarted node.
      y = Nx.iota({8}, type: {:f, 32}) |> Nx.add(1) |> Nx.sum()
      assert Nx.to_number(y) == 36.0
      assert y.data.ref.node != node
    end
  end
end
