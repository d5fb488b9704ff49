defmodule Mure.NxDynamicSliceTest do
  # Nx.slice and Nx.put_slice with tensor starts, on a real node: eagerly, a start that is a
  # Mure.Backend tensor is not downloaded (the node's dynamic_slice, one request); in a defn
  # function compiled with compiler: Mure, a computed start keeps the function one program.
  # Every result is checked against Nx.BinaryBackend (or Nx.Defn.Evaluator on it): starts out
  # of range (clamped), every integer type of start, strides, put_slice with type casts. Bad
  # starts sent past the client's checks get the node's errors.
  use Mure.DefnCase, async: true

  alias Mure.Request

  @int_types [{:s, 8}, {:s, 16}, {:s, 32}, {:s, 64}, {:u, 8}, {:u, 16}, {:u, 32}, {:u, 64}]

  defp local(%Nx.Tensor{} = t), do: binary(t)
  defp local(i) when is_integer(i), do: i

  defp assert_same(got, want) do
    got = binary(got)

    assert got.type == want.type and got.shape == want.shape,
           "got #{inspect(got)}, want #{inspect(want)}"

    assert got == want, "got #{inspect(got)}, want #{inspect(want)}"
  end

  # Start values per type: in range, below 0 and past the end (clamped), the type's extremes
  # (made on Nx.BinaryBackend and uploaded: Mure.Backend's constant takes 64-bit signed values).
  defp starts_of({:s, bits}),
    do: [0, 2, 4, -1, -3, Bitwise.bsl(1, bits - 1) - 1, -Bitwise.bsl(1, bits - 1)]

  defp starts_of({:u, bits}), do: [0, 1, 3, 5, Bitwise.bsl(1, bits) - 1]

  describe "eager" do
    test "a slice at a resident start is one request and clamps as Nx does", %{
      conn: conn,
      backend: backend
    } do
      ref = Nx.iota({5, 3}, type: {:f, 32})
      x = Nx.backend_copy(ref, backend)

      for type <- @int_types, v <- starts_of(type) do
        i = Nx.backend_copy(Nx.tensor(v, type: type), backend)
        {got, sent} = requests(conn, fn -> Nx.slice(x, [i, 1], [2, 2]) end)
        assert sent == 1, "#{inspect(type)} start #{v}: #{sent} requests"
        assert %Mure.Backend{} = got.data
        assert_same(got, Nx.slice(ref, [Nx.tensor(v, type: type), 1], [2, 2]))
      end
    end

    test "strides, and starts of several kinds together", %{conn: conn, backend: backend} do
      ref = Nx.iota({6, 5}, type: {:s, 32})
      x = Nx.backend_copy(ref, backend)

      for {row, col} <- [{0, 0}, {1, 2}, {5, 9}, {-2, 3}] do
        i = Nx.tensor(row, type: {:s, 64}, backend: backend)
        j = Nx.tensor(col, type: {:u, 16}, backend: backend)
        # the reference takes the same kinds of starts, on Nx.BinaryBackend (Nx turns an
        # integer start next to a tensor start into a tensor of the merged type)
        want = fn starts -> Nx.slice(ref, Enum.map(starts, &local/1), [3, 3], strides: [2, 2]) end
        {got, sent} = requests(conn, fn -> Nx.slice(x, [i, j], [3, 3], strides: [2, 2]) end)
        assert sent == 1
        assert_same(got, want.([i, j]))
        # an integer start and a resident one in one op
        assert_same(Nx.slice(x, [row, j], [3, 3], strides: [2, 2]), want.([row, j]))
        # a start of Nx.BinaryBackend is read on the client: the static slice
        here = Nx.tensor(row)
        assert_same(Nx.slice(x, [here, j], [3, 3], strides: [2, 2]), want.([here, j]))
      end
    end

    test "put_slice at resident starts casts as Nx does", %{conn: conn, backend: backend} do
      ref = Nx.iota({4, 4}, type: {:s, 32})
      x = Nx.backend_copy(ref, backend)
      upd = Nx.tensor([[0.5, -1.5], [2.5, 3.5]])
      u = Nx.backend_copy(upd, backend)

      for type <- @int_types, v <- starts_of(type) do
        i = Nx.backend_copy(Nx.tensor(v, type: type), backend)
        {got, sent} = requests(conn, fn -> Nx.put_slice(x, [i, 1], u) end)
        assert sent == 1
        assert_same(got, Nx.put_slice(ref, [Nx.tensor(v, type: type), 1], upd))
      end

      # an integer update into floats, at a clamped start
      f = Nx.iota({3, 3}, type: {:f, 64})
      small = Nx.tensor([[7, 8]], type: {:s, 8})
      j = Nx.tensor(-4, backend: backend)

      assert_same(
        Nx.put_slice(Nx.backend_copy(f, backend), [j, Nx.tensor(2, backend: backend)], small),
        Nx.put_slice(f, [-4, 2], small)
      )
    end
  end

  describe "compiled" do
    defn(rows_at(x, i), do: Nx.slice(x, [i * 2, 0], [2, 3]))

    defn(strided_at(x, i, j), do: Nx.slice(x, [i + 1, j], [3, 2], strides: [2, 1]))

    defn(put_rows(x, u, i), do: Nx.put_slice(x, [i - 1, 0], u))

    defn minibatch_loss(x, w, i) do
      batch = Nx.slice(x, [i * 4, 0], [4, 3])
      Nx.sum(Nx.dot(batch, w) ** 2)
    end

    defn sum_batches(x) do
      {_i, acc, _x} =
        while {i = 0, acc = Nx.tensor(0.0), x}, i < 3 do
          {i + 1, acc + Nx.sum(Nx.slice(x, [i * 2, 0], [2, 3])), x}
        end

      acc
    end

    test "a computed start keeps the function one program", %{conn: conn} do
      x = Nx.iota({7, 3}, type: {:f, 32})
      fun = mure(&rows_at/2, conn)

      for type <- @int_types, v <- starts_of(type) do
        i = Nx.tensor(v, type: type)
        {got, n} = programs(conn, fn -> fun.(x, i) end)
        assert n == 1, "#{inspect(type)} start #{v}: #{n} programs"
        assert_same(got, reference(&rows_at/2, [x, i]))
      end
    end

    test "strides and put_slice with computed starts", %{conn: conn} do
      x = Nx.iota({6, 4}, type: {:s, 16})
      fun = mure(&strided_at/3, conn)

      for {i, j} <- [{0, 0}, {1, 2}, {9, -1}, {-5, 7}] do
        args = [x, Nx.tensor(i), Nx.tensor(j, type: {:s, 8})]
        {got, n} = programs(conn, fn -> apply(fun, args) end)
        assert n == 1
        assert_same(got, reference(&strided_at/3, args))
      end

      put = mure(&put_rows/3, conn)
      u = Nx.tensor([[1.5, 2.5, 3.5, 4.5]])

      for i <- [-3, 0, 2, 6, 100] do
        args = [x, u, Nx.tensor(i, type: {:s, 64})]
        {got, n} = programs(conn, fn -> apply(put, args) end)
        assert n == 1
        assert got.type == {:f, 32}
        assert_same(got, reference(&put_rows/3, args))
      end
    end

    test "a minibatch at a computed offset, its gradient, a loop over batches", %{conn: conn} do
      x = Nx.iota({12, 3}, type: {:f, 32}) |> Nx.divide(10)
      w = Nx.tensor([[0.5], [-1.0], [0.25]])
      grad_fun = fn x, w, i -> grad(w, &minibatch_loss(x, &1, i)) end
      # the gradient for x puts the batch's gradient back at the computed offset
      grad_x = fn x, w, i -> grad(x, &minibatch_loss(&1, w, i)) end

      for i <- [0, 1, 2, 5] do
        args = [x, w, Nx.tensor(i)]
        {got, n} = programs(conn, fn -> apply(mure(&minibatch_loss/3, conn), args) end)
        assert n == 1
        assert_same(got, reference(&minibatch_loss/3, args))
        {g, n} = programs(conn, fn -> apply(mure(grad_fun, conn), args) end)
        assert n == 1
        assert Nx.all_close(binary(g), reference(grad_fun, args)) == Nx.tensor(1, type: {:u, 8})
        {gx, n} = programs(conn, fn -> apply(mure(grad_x, conn), args) end)
        assert n == 1
        assert Nx.all_close(binary(gx), reference(grad_x, args)) == Nx.tensor(1, type: {:u, 8})
      end

      assert_same(mure(&sum_batches/1, conn).(x), reference(&sum_batches/1, [x]))
    end

    test "resident arguments as starts go by handle", %{conn: conn} do
      backend = {Mure.Backend, connection: conn}
      x = Nx.iota({7, 3}, type: {:f, 32})
      i = Nx.tensor(2, backend: backend)
      got = mure(&rows_at/2, conn).(Nx.backend_copy(x, backend), i)
      assert_same(got, reference(&rows_at/2, [x, Nx.tensor(2)]))
    end
  end

  describe "bad starts" do
    test "the client refuses them before sending" do
      x = Mure.Expr.parameter(0, {:f, 32}, {4, 3})

      assert_raise ArgumentError,
                   "dynamic_slice: start 0 must be an integer tensor, got f32",
                   fn ->
                     Mure.Expr.dynamic_slice(x, [Mure.Expr.parameter(1, {:f, 32}, {}), 0], [2, 3])
                   end

      assert_raise ArgumentError,
                   ~r/^dynamic_slice: start 1 must be an integer or a scalar/,
                   fn ->
                     Mure.Expr.dynamic_slice(x, [0, Mure.Expr.parameter(1, {:s, 32}, {2})], [2, 3])
                   end

      assert_raise ArgumentError, ~r/^dynamic_put_slice: expected a list of 2 starts/, fn ->
        Mure.Expr.dynamic_put_slice(x, [0], Mure.Expr.parameter(1, {:f, 32}, {1, 3}))
      end

      assert_raise ArgumentError, ~r/^dynamic_slice: slice of dimension 1 \(size 3\)/, fn ->
        Mure.Expr.dynamic_slice(x, [0, 0], [2, 4])
      end
    end

    test "the node refuses them with an error a person can act on", %{conn: conn} do
      data = fn type, shape, values ->
        {_, bits} = type
        kind = elem(type, 0)

        bin =
          for v <- values, into: <<>> do
            case kind do
              :f -> <<v::float-size(bits)-little>>
              _ -> <<v::size(bits)-little>>
            end
          end

        {:data, type, shape, bin}
      end

      x = data.({:s, 32}, {2, 3}, [1, 2, 3, 4, 5, 6])

      cases = [
        {[x, data.({:f, 32}, {}, [1.0])], [{:dynamic_slice, 1, [2, 2], [1, 1], [1, 1]}],
         :type_mismatch,
         "node 1 (:dynamic_slice): dynamic_slice: start 0 (axis 0) must be an integer tensor, got {:f, 32}"},
        {[x, data.({:s, 32}, {2}, [0, 0])], [{:dynamic_slice, 1, [2, 2], [1, 1], [1, 1]}],
         :shape_mismatch,
         "node 1 (:dynamic_slice): dynamic_slice: start 0 (axis 0) must be a scalar tensor, got shape {2}"},
        {[x, data.({:s, 32}, {}, [0])], [{:dynamic_put_slice, 1, [2], 1}], :badarg,
         "node 1 (:dynamic_put_slice): dynamic_put_slice of a rank-2 tensor needs 2 starts (one scalar " <>
           "integer tensor per axis); got 1"},
        {[x, data.({:s, 32}, {}, [0])], [{:dynamic_slice, 1, [2, 2], [3, 1], [1, 1]}],
         :out_of_range,
         "node 1 (:dynamic_slice): dynamic_slice: length 3 of dimension 0 is outside 0..2 (its size)"}
      ]

      for {inputs, nodes, kind, message} <- cases do
        n = length(inputs) + length(nodes)
        request = {:program, inputs, nodes, [{n, :return}]}

        assert {:error, %Mure.Error{kind: ^kind, message: ^message}} =
                 Request.call(conn, request, [], self(), Request.budget(nil))
      end

      # the node is still there, and the good form works
      request =
        {:program, [x, data.({:u, 8}, {}, [200])], [{:dynamic_slice, 1, [2, 2], [1, 2], [1, 1]}],
         [{3, :return}]}

      assert {:ok, [{{:s, 32}, {1, 2}, <<5::32-little, 6::32-little>>}], _, _} =
               Request.call(conn, request, [], self(), Request.budget(nil))
    end
  end
end
