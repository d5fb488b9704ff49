defmodule Mure.JitTest do
  # Programs through the JIT, end to end on a real node: tracing once per signature, the
  # fused program against the same computation run op by op with Mure's eager functions,
  # errors at trace time (Elixir) and at validation time (the node), kept and returned
  # outputs, and several programs in flight.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  alias Mure.{ConnectionError, Error, Expr, Tensor}

  setup_all do
    %{conn: start_supervised!({Mure, []})}
  end

  defp f32(list), do: pack(list, 32)
  defp s32(list), do: for(x <- list, into: <<>>, do: <<x::signed-32-native>>)
  defp up(conn, bin, type, shape), do: Mure.upload!(conn, bin, type, shape)
  defp floats(bin), do: unpack(bin, 32)

  defp counting(test_pid, fun) do
    fn x, y ->
      send(test_pid, :traced)
      fun.(x, y)
    end
  end

  defp traces do
    receive do
      :traced -> 1 + traces()
    after
      0 -> 0
    end
  end

  test "traces once per signature and reruns the cached program with new inputs", %{conn: conn} do
    jit =
      Mure.jit(
        counting(self(), fn x, y -> x |> Expr.multiply(y) |> Expr.add(1) end),
        outputs: :return
      )

    a = up(conn, f32([1.0, 2.0, 3.0]), {:f, 32}, {3})

    assert Mure.run!(jit, [a, {f32([2.0, 2.0, 2.0]), {:f, 32}, {3}}]) |> floats() == [
             3.0,
             5.0,
             7.0
           ]

    assert traces() == 1

    # Same types and shapes, new data (a tensor where data was, too): no new trace.
    b = up(conn, f32([-1.0, 0.5, 10.0]), {:f, 32}, {3})
    assert Mure.run!(jit, [a, b]) |> floats() == [0.0, 2.0, 31.0]

    assert Mure.run!(jit, [{f32([4.0, 4.0, 4.0]), {:f, 32}, {3}}, b]) |> floats() == [
             -3.0,
             3.0,
             41.0
           ]

    assert traces() == 0

    # Another shape, another type: one trace each; then cached again.
    m = up(conn, f32([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), {:f, 32}, {2, 3})
    assert Mure.run!(jit, [m, a]) |> floats() == [2.0, 5.0, 10.0, 5.0, 11.0, 19.0]
    assert traces() == 1
    i = up(conn, s32([1, 2, 3]), {:s, 32}, {3})
    assert Mure.run!(jit, [i, i]) == s32([2, 5, 10])
    assert traces() == 1
    assert Mure.run!(jit, [m, b]) |> floats() == [0.0, 2.0, 31.0, -3.0, 3.5, 61.0]
    assert traces() == 0

    # jit/2 again on the same function shares the traces (the cache key is the function).
    fun = jit.fun
    assert Mure.run!(Mure.jit(fun, outputs: :return), [i, i]) == s32([2, 5, 10])
    assert traces() == 0

    # The program sent holds only what the outputs need, and only the arguments they use.
    dead =
      Mure.jit(fn x, _y ->
        _unused = x |> Expr.exp() |> Expr.sum()
        Expr.negate(x)
      end)

    program = Mure.trace(dead, [{{:f, 32}, {3}}, {{:f, 32}, {3}}])
    assert program.nodes == [{:unary, :negate, 1}]
    assert program.params == [{0, {:f, 32}, {3}}]

    assert Mure.run!(dead, [a, {<<0::96>>, {:f, 32}, {3}}], outputs: :return) |> floats() == [
             -1.0,
             -2.0,
             -3.0
           ]
  end

  test "a fused float program equals the same ops run one by one", %{conn: conn} do
    xs = random_floats(4 * 6, 32)
    ys = random_floats(6, 32)
    x = up(conn, f32(xs), {:f, 32}, {4, 6})
    y = up(conn, f32(ys), {:f, 32}, {6})

    fused =
      Mure.jit(fn x, y ->
        z = x |> Expr.multiply(y) |> Expr.exp() |> Expr.subtract(Expr.tanh(x))
        s = Expr.sum(z, axes: [1], keep_axes: true)
        n = Expr.divide(z, s)

        t =
          n
          |> Expr.transpose()
          |> Expr.reshape({3, 8})
          |> Expr.slice([0, 1], [3, 7], strides: [1, 2])

        c = Expr.concatenate([t, Expr.reverse(t, axes: [1])], axis: 1)
        relu = Expr.select(Expr.greater(c, 0.0), c, 0.0)
        clipped = Expr.clip(Expr.multiply(relu, 10), 0.1, 0.5)
        p = Expr.pad(clipped, 0.0, [{1, 0, 0}, {0, 1, 1}])
        {p, Expr.reduce_max(n, axes: [0]), Expr.argmax(n, axes: [1])}
      end)

    {p, m, am} = Mure.run!(fused, [x, y], outputs: :return)

    # The same, op by op.
    e = fn r -> Mure.download!(r) end
    full = fn v, shape -> Mure.full!(conn, v, shape) end

    z =
      Mure.binary!(
        :subtract,
        Mure.unary!(:exp, Mure.binary!(:multiply, x, y)),
        Mure.unary!(:tanh, x)
      )

    s = Mure.reduce!(:sum, z, axes: [1], keep_axes: true)
    n = Mure.binary!(:divide, z, s)

    t =
      n
      |> Mure.transpose!()
      |> Mure.reshape!({3, 8})
      |> Mure.slice!([0, 1], [3, 7], strides: [1, 2])

    c = Mure.concatenate!([t, Mure.reverse!(t, axes: [1])], axis: 1)
    relu = Mure.select!(Mure.binary!(:greater, c, full.(0.0, {})), c, full.(0.0, {}))

    clipped =
      Mure.clip!(Mure.binary!(:multiply, relu, full.(10.0, {})), full.(0.1, {}), full.(0.5, {}))

    p_eager = Mure.pad!(clipped, 0.0, [{1, 0, 0}, {0, 1, 1}])

    assert byte_size(p) == Tensor.byte_size(p_eager) and p_eager.shape == {4, 16}
    assert_close(floats(p), floats(e.(p_eager)), 1.0e-6)
    assert_close(floats(m), floats(e.(Mure.reduce!(:reduce_max, n, axes: [0]))), 1.0e-6)
    assert am == e.(Mure.reduce!(:argmax, n, axes: [1]))
  end

  test "a traced slice has Nx's shape (ceil(length / stride)) and the node agrees, on both devices",
       %{conn: conn} do
    big = Mure.iota!(conn, {2, 15, 30}, type: {:s, 32})
    small = Mure.iota!(conn, {2, 8}, type: {:s, 32})

    nx =
      Mure.jit(fn big, small ->
        a = Expr.slice(big, [0, 4, 11], [2, 3, 9], strides: [2, 1, 3])
        b = Expr.slice(small, [0, 0], [2, 4], strides: [1, 2])
        c = Expr.slice(small, [1, 1], [1, 7], strides: [1, 3])
        # The shapes are known while tracing, before anything is sent.
        assert {a.shape, b.shape, c.shape} == {{1, 3, 3}, {2, 2}, {1, 3}}
        {a, b, c}
      end)

    for device <- [:cpu, :opencl] do
      {a, b, c} = Mure.run!(nx, [big, small], outputs: :return, device: device)
      ints = fn bin -> for <<x::signed-32-native <- bin>>, do: x end
      # Nx.slice's documented example; iota({2, 8})'s columns 0 and 2; row 1's columns 1, 4, 7.
      assert ints.(a) == [131, 134, 137, 161, 164, 167, 191, 194, 197], "#{device}"
      assert ints.(b) == [0, 2, 8, 10], "#{device}"
      assert ints.(c) == [9, 12, 15], "#{device}"
    end

    assert_raise ArgumentError,
                 "slice: slice of dimension 1 (size 8) from 5 with length 4 runs past its end",
                 fn -> Expr.slice(Expr.parameter(0, {:s, 32}, {2, 8}), [0, 5], [2, 4]) end
  end

  test "a fused integer program equals the eager ops exactly", %{conn: conn} do
    a_list = for _ <- 1..12, do: :rand.uniform(2001) - 1001
    b_list = for _ <- 1..4, do: :rand.uniform(41) - 21
    a = up(conn, s32(a_list), {:s, 32}, {3, 4})
    b = up(conn, s32(b_list), {:s, 32}, {4})
    idx = up(conn, s32([2, 0, 2]), {:s, 32}, {3})
    u = {for(x <- 1..4, into: <<>>, do: <<x * 60::8>>), {:u, 8}, {4}}

    fused =
      Mure.jit(fn a, b, idx, u ->
        q = Expr.quotient(a, b)
        r = Expr.remainder(a, b)
        bits = Expr.bitwise_xor(Expr.left_shift(a, 2), Expr.bitwise_and(b, 7))
        mixed = Expr.add(a, u)
        cmp = Expr.logical_and(Expr.less(a, b), Expr.not_equal(a, 0))
        sorted = Expr.sort(Expr.take(a, idx, axis: 0), axis: 1, direction: :desc)
        sum = Expr.sum(Expr.multiply(a, a), axes: [0])
        d = Expr.dot(a, Expr.as_type(b, {:s, 64}))
        {q, r, bits, mixed, cmp, sorted, sum, d, Expr.argsort(a, axis: 1)}
      end)

    results = Mure.run!(fused, [a, b, idx, u], outputs: :return) |> Tuple.to_list()
    ut = up(conn, elem(u, 0), {:u, 8}, {4})

    eager = [
      Mure.binary!(:quotient, a, b),
      Mure.binary!(:remainder, a, b),
      Mure.binary!(
        :bitwise_xor,
        Mure.binary!(:left_shift, a, Mure.full!(conn, 2, {})),
        Mure.binary!(:bitwise_and, b, Mure.full!(conn, 7, {}))
      ),
      Mure.binary!(:add, a, ut),
      Mure.binary!(
        :logical_and,
        Mure.binary!(:less, a, b),
        Mure.binary!(:not_equal, a, Mure.full!(conn, 0, {}))
      ),
      Mure.sort!(Mure.take!(a, idx, axis: 0), axis: 1, direction: :desc),
      Mure.reduce!(:sum, Mure.binary!(:multiply, a, a), axes: [0]),
      Mure.dot!(a, Mure.as_type!(b, {:s, 64})),
      Mure.argsort!(a, axis: 1)
    ]

    types = Enum.map(eager, & &1.type)
    assert types == [s: 32, s: 32, s: 32, s: 32, u: 8, s: 32, s: 64, s: 64, s: 64]
    assert results == Enum.map(eager, &Mure.download!/1)
    # And the traced types are the node's: what the JIT predicted is what it got.
    assert Enum.map(Mure.trace(fused, [a, b, idx, u]).outputs, &elem(&1, 1)) == types
  end

  @types [u: 8, u: 16, u: 32, u: 64, s: 8, s: 16, s: 32, s: 64, f: 16, f: 32, f: 64, bf: 16]

  defp zeros(type, shape),
    do: {<<0::size(Mure.Types.size(shape) * Mure.Types.itemsize(type) * 8)>>, type, shape}

  test "the client's type and shape rules are the node's, for every op and type", %{conn: conn} do
    # Every output of a program is checked against the trace's prediction (a mismatch is an
    # :internal error); an op the client refuses (eagerly too, before sending) must be one
    # the node refuses too, sent to it raw.
    node = Mure.info(conn).node

    refused_by_node = fn request, eager_fun ->
      assert_raise ArgumentError, eager_fun
      assert {:error, {kind, _}} = raw_call(node, request)
      assert kind in [:type_mismatch, :shape_mismatch, :badarg]
    end

    for type <- @types do
      x = zeros(type, {2, 3})
      t = Mure.upload!(conn, elem(x, 0), type, {2, 3})

      {ok_unary, bad_unary} =
        Enum.split_with(Expr.unary_ops(), fn op ->
          try do
            Expr.unary(op, Expr.parameter(0, type, {2, 3}))
            true
          rescue
            ArgumentError -> false
          end
        end)

      unary = Mure.jit(fn x -> Enum.map(ok_unary, &Expr.unary(&1, x)) end, outputs: :return)
      assert {:ok, results} = Mure.run(unary, [x], conn: conn)
      assert length(results) == length(ok_unary)

      for op <- bad_unary,
          do: refused_by_node.({:unary, op, t.id}, fn -> Mure.unary(op, t) end)

      reductions =
        Mure.jit(
          fn x ->
            for op <- Expr.reductions(), keep <- [false, true], axes <- [[1], :all] do
              Expr.reduce(op, x, axes: axes, keep_axes: keep)
            end
          end,
          outputs: :return
        )

      assert {:ok, _} = Mure.run(reductions, [x], conn: conn)

      for other <- @types do
        y = zeros(other, {3})
        u = Mure.upload!(conn, elem(y, 0), other, {3})

        {ok_binary, bad_binary} =
          Enum.split_with(Expr.binary_ops(), fn op ->
            try do
              Expr.binary(op, Expr.parameter(0, type, {2, 3}), Expr.parameter(1, other, {3}))
              true
            rescue
              ArgumentError -> false
            end
          end)

        binary =
          Mure.jit(
            fn x, y ->
              Enum.map(ok_binary, &Expr.binary(&1, x, y)) ++
                [
                  Expr.select(y, x, y),
                  Expr.clip(x, y, y),
                  Expr.concatenate([x, Expr.reshape(y, {1, 3})]),
                  Expr.dot(x, y),
                  Expr.outer(y, y),
                  Expr.put_slice(x, [1, 0], Expr.reshape(y, {1, 3}))
                ]
            end,
            outputs: :return
          )

        assert {:ok, results} = Mure.run(binary, [x, y], conn: conn), "#{inspect({type, other})}"
        assert length(results) == length(ok_binary) + 6

        for op <- bad_binary,
            do: refused_by_node.({:binary, op, t.id, u.id}, fn -> Mure.binary(op, t, u) end)
      end
    end

    # Creation and shape ops.
    shapes =
      Mure.jit(
        fn x, i ->
          [
            Expr.iota({2, 3}, axis: 1, type: {:u, 16}),
            Expr.iota({4}),
            Expr.eye({2, 3, 3}, type: {:bf, 16}),
            Expr.full(7, {2}, type: {:s, 8}),
            Expr.random_uniform({5}, seed: 1, type: {:f, 64}),
            Expr.random_normal({2, 2}, seed: 2, std: 0.5),
            Expr.broadcast(Expr.reshape(i, {3, 1}), {2, 3, 4}, axes: [1, 2]),
            Expr.gather(
              x,
              Expr.reshape(Expr.iota({4}, type: {:s, 64}) |> Expr.remainder(2), {2, 2})
            ),
            Expr.stack([x, x], axis: 2),
            Expr.squeeze(Expr.new_axis(x, 1)),
            Expr.bitcast(x, {:s, 32}),
            Expr.matmul(x, Expr.transpose(x)),
            Expr.argsort(x, axis: 1, direction: :desc),
            Expr.take(x, i, axis: 1),
            Expr.slice(x, [0, 0], [2, 2], strides: [1, 2]),
            Expr.as_type(x, {:u, 8})
          ]
        end,
        outputs: :return
      )

    assert {:ok, results} =
             Mure.run(shapes, [zeros({:f, 32}, {2, 3}), {s32([2, 0, 1]), {:s, 32}, {3}}],
               conn: conn
             )

    assert length(results) == 16
  end

  test "a 2-layer MLP forward pass through the JIT equals the eager one", %{conn: conn} do
    {n, d, h, o} = {16, 32, 24, 5}

    param = fn shape ->
      up(conn, f32(random_floats(Tuple.product(shape), 32)), {:f, 32}, shape)
    end

    x = param.({n, d})
    {w1, b1, w2, b2} = {param.({d, h}), param.({h}), param.({h, o}), param.({o})}

    layer = fn x, w, b -> x |> Expr.dot(w) |> Expr.add(b) |> Expr.sigmoid() end
    mlp = Mure.jit(fn x, w1, b1, w2, b2 -> x |> layer.(w1, b1) |> layer.(w2, b2) end)

    eager_layer = fn x, w, b ->
      Mure.unary!(:sigmoid, Mure.binary!(:add, Mure.dot!(x, w), b))
    end

    expected = x |> eager_layer.(w1, b1) |> eager_layer.(w2, b2) |> Mure.download!() |> floats()

    assert %Tensor{type: {:f, 32}, shape: {^n, ^o}} = y = Mure.run!(mlp, [x, w1, b1, w2, b2])
    assert_close(floats(Mure.download!(y)), expected, 1.0e-6)

    # Six nodes: dot, add, sigmoid twice; one message.
    assert length(Mure.trace(mlp, [x, w1, b1, w2, b2]).nodes) == 6
  end

  test "the operators of Mure.Expr.operators/1 trace to the same program as the calls", %{
    conn: conn
  } do
    require Mure.Expr
    with_ops = Mure.jit(Expr.operators(fn x, y -> -(x + y) * 2 - x / y end), outputs: :return)

    with_calls =
      Mure.jit(
        fn x, y ->
          Expr.subtract(Expr.multiply(Expr.negate(Expr.add(x, y)), 2), Expr.divide(x, y))
        end,
        outputs: :return
      )

    args = [up(conn, f32([1.0, 2.0]), {:f, 32}, {2}), {f32([4.0, -8.0]), {:f, 32}, {2}}]
    assert Mure.trace(with_ops, args).nodes == Mure.trace(with_calls, args).nodes
    assert floats(Mure.run!(with_ops, args)) == [-10.25, 12.25]
  end

  test "a bad program is an ArgumentError at trace time, before anything is sent", %{conn: conn} do
    x = up(conn, f32([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), {:f, 32}, {2, 3})
    requests = Mure.stats!(conn).requests

    cases = [
      {fn x -> Expr.add(x, Expr.iota({2})) end,
       "add: shapes {2, 3} and {2} cannot be broadcast together (dimension 1: 3 vs 2)"},
      {fn x -> Expr.dot(x, x) end,
       "dot: contraction axis 1 of {2, 3} and axis 0 of {2, 3} differ"},
      {fn x -> Expr.bitwise_and(x, 1) end,
       "bitwise_and: bitwise_and takes integer tensors, got {:f, 32} and {:f, 32}"},
      {fn x -> Expr.sum(x, axes: [0, -2]) end, "sum: reduction axis 0 is given twice"},
      {fn x -> Expr.slice(x, [1, 0], [2, 1]) end,
       "slice: slice of dimension 0 (size 2) from 1 with length 2 runs past its end"},
      {fn x -> Expr.reshape(x, {4}) end,
       "reshape: cannot reshape {2, 3} (6 elements) to {4} (4 elements)"},
      {fn x -> Expr.take(x, x) end, "take: take's indices must be integers, got {:f, 32}"},
      {fn x -> Expr.add(Expr.as_type(x, {:u, 8}), 256) end,
       "add: the constant 256 does not fit the other operand's type {:u, 8}"},
      {fn x -> x |> Expr.exp() |> Expr.transpose(axes: [0, 0]) end,
       "transpose: transpose axes must be a permutation; 0 repeats"},
      {fn _x -> :not_an_expression end, "jit: the traced function must return a Mure.Expr"},
      {fn _x -> Expr.add(x, 1) end, "add: got the resident tensor #Mure.Tensor<f32[2][3]>"}
    ]

    for {fun, message} <- cases do
      error = assert_raise ArgumentError, fn -> Mure.run(Mure.jit(fun), [x]) end
      assert String.starts_with?(Exception.message(error), message), Exception.message(error)
    end

    assert_raise ArgumentError, ~r/the function takes 1 arguments, got 2/, fn ->
      Mure.run(Mure.jit(&Expr.exp/1), [x, x])
    end

    assert_raise ArgumentError, ~r/pass the connection as conn: conn/, fn ->
      Mure.run(Mure.jit(&Expr.exp/1), [{f32([1.0]), {:f, 32}, {1}}])
    end

    assert_raise ArgumentError, ~r/argument 1 needs 8 bytes/, fn ->
      Mure.run(Mure.jit(&Expr.exp/1), [{f32([1.0]), {:f, 32}, {2}}], conn: conn)
    end

    # Only the stats call itself reached the node.
    assert Mure.stats!(conn).requests == requests + 1
  end

  test "an error from a traced argument names its position (from 1), an intermediate the op that made it",
       %{conn: conn} do
    requests = Mure.stats!(conn).requests
    f32_of = fn shape -> {f32(List.duplicate(0.0, Tuple.product(shape))), {:f, 32}, shape} end
    message = fn fun, args -> Exception.message(catch_error(Mure.run(Mure.jit(fun), args))) end

    # The operands are named by the position of the argument they are, not their order in
    # the op: dot(y, x) names argument 2 first.
    assert message.(&Expr.dot/2, [f32_of.({256, 784}), f32_of.({100, 128})]) ==
             "dot: contraction axis 1 of {256, 784} and axis 0 of {100, 128} differ " <>
               "(operands: argument 1 {256, 784} of type {:f, 32}, " <>
               "argument 2 {100, 128} of type {:f, 32})"

    assert message.(fn x, y -> Expr.dot(y, x) end, [f32_of.({256, 784}), f32_of.({100, 128})]) ==
             "dot: contraction axis 1 of {100, 128} and axis 0 of {256, 784} differ " <>
               "(operands: argument 2 {100, 128} of type {:f, 32}, " <>
               "argument 1 {256, 784} of type {:f, 32})"

    # Mure.trace/2 (signatures only) raises the same.
    assert_raise ArgumentError, ~r/\(operands: argument 1 \{2, 3\} .*, argument 2 \{4\} /, fn ->
      Mure.trace(Mure.jit(&Expr.add/2), [{{:f, 32}, {2, 3}}, {{:f, 32}, {4}}])
    end

    # An intermediate value is named by the op that made it, a number by its value.
    assert message.(fn x, y -> x |> Expr.dot(y) |> Expr.add(x) end, [
             f32_of.({2, 3}),
             f32_of.({3, 4})
           ]) ==
             "add: shapes {2, 4} and {2, 3} cannot be broadcast together (dimension 1: 4 vs 3) " <>
               "(operands: the result of dot {2, 4} of type {:f, 32}, argument 1 {2, 3} of type {:f, 32})"

    assert message.(fn x -> x |> Expr.as_type({:u, 8}) |> Expr.add(256) end, [f32_of.({2})]) ==
             "add: the constant 256 does not fit the other operand's type {:u, 8} " <>
               "(operand: the result of as_type {2} of type {:u, 8})"

    assert message.(fn x -> x |> Expr.sum(axes: [0]) |> Expr.reshape({3}) end, [f32_of.({2, 2})]) ==
             "reshape: cannot reshape {2} (2 elements) to {3} (3 elements) " <>
               "(operand: the result of sum {2} of type {:f, 32})"

    assert message.(fn x, y -> Expr.select(x, y, 1.5) end, [f32_of.({2}), f32_of.({3})]) =~
             "(operands: argument 1 {2} of type {:f, 32}, argument 2 {3} of type {:f, 32}, " <>
               "the constant 1.5 of type {:f, 32})"

    # Type errors: a dtype mismatch, an op's type rule.
    assert message.(&Expr.matmul/2, [f32_of.({2, 3}), {pack([0.0], 64), {:f, 64}, {1}}]) ==
             "matmul: expected both tensors to be {:f, 32} or both {:f, 64}, got {:f, 32} and " <>
               "{:f, 64} (operands: argument 1 {2, 3} of type {:f, 32}, argument 2 {1} of type {:f, 64})"

    assert message.(fn _x, y -> Expr.population_count(y) end, [f32_of.({1}), f32_of.({3})]) ==
             "population_count: population_count takes integer tensors, got {:f, 32} " <>
               "(operand: argument 2 {3} of type {:f, 32})"

    # The call itself: arity, an argument that is not a tensor, a bad type, a wrong size.
    assert message.(&Expr.exp/1, [f32_of.({1}), f32_of.({1})]) ==
             "jit: the function takes 1 arguments, got 2: argument 2 is one too many"

    assert message.(&Expr.add/2, [f32_of.({1})]) ==
             "jit: the function takes 2 arguments, got 1: argument 2 is missing"

    assert message.(&Expr.add/2, [f32_of.({1}), :oops]) ==
             "jit: argument 2 must be a %Mure.Tensor{} or a {binary, type, shape} tuple, got: :oops"

    assert message.(&Expr.add/2, [f32_of.({1}), {<<0>>, {:f, 8}, {1}}]) =~
             ~r/^jit: argument 2: expected a type .* got: \{:f, 8\}$/

    assert message.(&Expr.add/2, [f32_of.({1}), {<<0>>, {:f, 32}, {-1}}]) =~
             ~r/^jit: argument 2: expected a shape of non-negative integers/

    assert message.(&Expr.add/2, [f32_of.({1}), {{:f, 32}, {1}}]) =~
             ~r/^run: argument 2 must be a %Mure.Tensor\{\} or a \{binary, type, shape\} tuple/

    assert message.(&Expr.add/2, [f32_of.({1}), {f32([1.0]), {:f, 32}, {2}}]) =~
             ~r/^run: argument 2 needs 8 bytes/

    # Expressions built by hand (and eager calls, which build them) are not a trace's: their
    # messages stay the op's alone.
    assert_raise ArgumentError,
                 "dot: contraction axis 1 of {8, 4} and axis 0 of {3, 2} differ",
                 fn ->
                   Expr.dot(
                     Expr.parameter(0, {:f, 32}, {8, 4}),
                     Expr.parameter(1, {:f, 32}, {3, 2})
                   )
                 end

    # Nothing reached the node but the stats calls.
    assert Mure.stats!(conn).requests == requests + 1
  end

  test "the node rejects a bad raw program as a whole, with one error naming the node", %{
    conn: conn
  } do
    node = Mure.info(conn).node
    # The module's connection is shared: the tensors of the previous test's (ended) process are
    # freed when its DOWN reaches the node, which may be after this test starts.
    assert wait_until(fn -> Mure.stats!(conn).tensors == 0 end, 10_000),
           "tensors of earlier tests still resident: #{inspect(Mure.stats!(conn))}"

    stats = Mure.stats!(conn)
    data = {:data, {:f, 32}, {2}, f32([1.0, 2.0])}

    # Node 2 of 3 is bad; nothing runs, not even node 1, and nothing is allocated.
    assert {:error, {:type_mismatch, message}} =
             raw_call(
               node,
               {:program, [data],
                [{:unary, :exp, 1}, {:binary, :bitwise_and, 2, 1}, {:unary, :sin, 3}],
                [{4, :keep}]}
             )

    assert message =~ ~r/^node 2 \(:binary :bitwise_and\): /
    assert message =~ "bitwise_and takes integer tensors"

    assert {:error, {:badarg, message}} =
             raw_call(
               node,
               {:program, [data], [{:unary, :exp, 1}, {:binary, :add, 1, 4}], [{3, :keep}]}
             )

    assert message =~ ~r/^node 2 \(:binary :add\): value 4 /

    assert {:error, {:shape_mismatch, message}} =
             raw_call(
               node,
               {:program, [data, {:data, {:f, 32}, {3}, f32([1.0, 2.0, 3.0])}],
                [{:unary, :exp, 1}, {:binary, :add, 3, 2}], [{4, :return}]}
             )

    assert message =~ ~r/^node 2 \(:binary :add\): shapes \{2\} and \{3\} cannot be broadcast/

    after_stats = Mure.stats!(conn)
    assert after_stats.connection_tensors == stats.connection_tensors
    assert after_stats.memory_used_bytes == stats.memory_used_bytes
  end

  test "outputs stay resident (:keep) or come back (:return), per jit and per call", %{conn: conn} do
    x = up(conn, f32([1.0, 4.0, 9.0]), {:f, 32}, {3})

    jit =
      Mure.jit(fn x ->
        r = Expr.sqrt(x)
        {r, [Expr.sum(r), x]}
      end)

    tensors = Mure.stats!(conn).connection_tensors

    # Default :keep: every output is a resident tensor owned by the caller; the argument
    # returned as such is a copy of its own.
    assert {%Tensor{shape: {3}} = r, [%Tensor{shape: {}} = s, %Tensor{} = x2]} =
             Mure.run!(jit, [x])

    assert x2.id != x.id
    assert floats(Mure.download!(r)) == [1.0, 2.0, 3.0]
    assert floats(Mure.download!(s)) == [6.0]
    assert Mure.download!(x2) == Mure.download!(x)
    assert Mure.stats!(conn).connection_tensors == tensors + 3

    # Per call: all returned, nothing new resident.
    assert {r_bin, [s_bin, x_bin]} = Mure.run!(jit, [x], outputs: :return)
    assert {floats(r_bin), floats(s_bin), x_bin} == {[1.0, 2.0, 3.0], [6.0], Mure.download!(x)}
    assert Mure.stats!(conn).connection_tensors == tensors + 3

    # Per output.
    assert {%Tensor{}, [s_bin, %Tensor{}]} = Mure.run!(jit, [x], outputs: [:keep, :return, :keep])
    assert floats(s_bin) == [6.0]
    assert Mure.stats!(conn).connection_tensors == tensors + 5

    assert_raise ArgumentError, ~r/:outputs lists 2 modes for 3 outputs/, fn ->
      Mure.run(jit, [x], outputs: [:keep, :keep])
    end

    # The same output twice gets two tensors.
    twice =
      Mure.jit(fn x ->
        r = Expr.exp(x)
        {r, r}
      end)

    {a, b} = Mure.run!(twice, [x])
    assert a.id != b.id
    :ok = Mure.free(a)
    assert Mure.download!(b) |> byte_size() == 12
  end

  test "several programs in flight, awaited out of order", %{conn: conn} do
    jit = Mure.jit(fn x, k -> x |> Expr.multiply(k) |> Expr.sum(axes: [1]) end, outputs: :return)
    x = up(conn, f32(Enum.map(1..6000, &(&1 * 1.0))), {:f, 32}, {60, 100})

    requests =
      for k <- 1..8 do
        {k, Mure.async_run(jit, [x, {f32([k * 1.0]), {:f, 32}, {}}])}
      end

    # An upload and a download in flight between them.
    up_req = Mure.async_upload(conn, f32([7.0, 8.0]), {:f, 32}, {2})
    down_req = Mure.async_download(x)

    row_sums = for r <- 0..59, do: Enum.sum(for(c <- 1..100, do: r * 100 + c)) * 1.0

    for {k, req} <- Enum.reverse(requests) do
      assert {:ok, bin} = Mure.await(req)
      assert floats(bin) == Enum.map(row_sums, &(&1 * k))
    end

    assert {:ok, bin} = Mure.await(down_req)
    assert bin == Mure.download!(x)
    assert {:ok, %Tensor{} = t} = Mure.await(up_req)
    assert Mure.download!(t) == f32([7.0, 8.0])

    # await_many keeps the order given, whatever the order of completion.
    many = for k <- [3, 1, 2], do: Mure.async_run(jit, [x, {f32([k * 1.0]), {:f, 32}, {}}])
    assert [{:ok, b3}, {:ok, b1}, {:ok, b2}] = Mure.await_many(many, 10_000)

    assert {floats(b3), floats(b1), floats(b2)} ==
             {Enum.map(row_sums, &(&1 * 3)), row_sums, Enum.map(row_sums, &(&1 * 2))}

    # Only the process that made a request may await it.
    req = Mure.async_run(jit, [x, {f32([1.0]), {:f, 32}, {}}])

    assert {:error, %ArgumentError{message: message}} =
             Task.async(fn ->
               try do
                 Mure.await(req)
               rescue
                 e -> {:error, e}
               end
             end)
             |> Task.await()

    assert message =~ "only that process can await it"
    assert {:ok, _} = Mure.await(req)
    assert {:messages, []} = Process.info(self(), :messages)
  end

  test "a request that times out gets one :timeout error, and its late reply is dropped", %{
    conn: conn
  } do
    a = up(conn, f32(random_floats(512 * 512, 32)), {:f, 32}, {512, 512})

    slow =
      Mure.jit(fn a -> a |> Expr.dot(a) |> Expr.dot(a) |> Expr.dot(a) |> Expr.sum() end,
        outputs: :return
      )

    _ = Mure.run!(slow, [a], timeout: 30_000)

    req = Mure.async_run(slow, [a])
    assert {:error, %ConnectionError{reason: :timeout}} = Mure.await(req, 0)
    Process.sleep(1_000)
    assert {:messages, []} = Process.info(self(), :messages)

    # A timeout given when the request was made is its own deadline.
    req = Mure.async_run(slow, [a], timeout: 0)
    assert {:error, %ConnectionError{reason: :timeout}} = Mure.await(req)

    # Errors of the node come back as Mure.Error, one per request.
    idx = up(conn, s32([0, 600]), {:s, 32}, {2})
    take = Mure.jit(fn x, i -> Expr.take(x, i) end)
    assert {:error, %Error{kind: :out_of_range}} = Mure.await(Mure.async_run(take, [a, idx]))

    assert {:ok, %Tensor{}} =
             Mure.await(Mure.async_run(take, [a, up(conn, s32([0, 1]), {:s, 32}, {2})]))

    Process.sleep(100)
    assert {:messages, []} = Process.info(self(), :messages)
  end

  test "large data arguments and returned outputs move in pieces around the program" do
    # Over distribution (same-host shared memory would move them in one piece each).
    conn =
      start_supervised!({Mure, chunk_size: 64 * 1024, shared_memory: false}, id: :small_chunks)

    n = 256 * 1024
    data = f32(random_floats(n, 32))

    jit =
      Mure.jit(fn x, y -> {Expr.multiply(x, y), Expr.sum(x)} end, outputs: :return, conn: conn)

    before = Mure.stats!(conn)

    {prod, sum} = Mure.run!(jit, [{data, {:f, 32}, {n}}, {f32([2.0]), {:f, 32}, {}}])
    assert prod == f32(Enum.map(floats(data), &(&1 * 2.0)))
    assert_close(floats(sum), [Enum.sum(floats(data))], 1.0e-3, 0.05)

    after_stats = Mure.stats!(conn)
    # The 1 MiB argument went up in 16+ pieces and the 1 MiB result came down in 16+;
    # the temporary tensors are gone.
    assert after_stats.requests - before.requests > 32
    assert after_stats.connection_tensors == before.connection_tensors
    assert after_stats.memory_used_bytes == before.memory_used_bytes

    # The same, asynchronously (a job).
    assert {:ok, {^prod, ^sum}} =
             Mure.await(Mure.async_run(jit, [{data, {:f, 32}, {n}}, {f32([2.0]), {:f, 32}, {}}]))

    assert Mure.stats!(conn).connection_tensors == before.connection_tensors
  end
end
