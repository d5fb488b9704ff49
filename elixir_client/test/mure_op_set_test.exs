defmodule Mure.OpSetTest do
  # The op set on the node's CPU executor, end to end through the client, one family at a
  # time, each checked against a reference computed here in Elixir.
  use ExUnit.Case, async: true

  import Bitwise
  import Mure.TestSupport

  alias Mure.Error

  setup_all do
    %{conn: start_supervised!({Mure, []})}
  end

  defp f32(conn, list, shape), do: Mure.upload!(conn, pack(list, 32), {:f, 32}, shape)

  defp s32(conn, list, shape),
    do:
      Mure.upload!(conn, for(x <- list, into: <<>>, do: <<x::signed-32-native>>), {:s, 32}, shape)

  defp floats(t, bits \\ 32), do: unpack(Mure.download!(t), bits)
  defp ints(t, bits, sign \\ :signed)

  defp ints(t, bits, :signed),
    do: for(<<x::signed-size(bits)-native <- Mure.download!(t)>>, do: x)

  defp ints(t, bits, :unsigned),
    do: for(<<x::unsigned-size(bits)-native <- Mure.download!(t)>>, do: x)

  test "unary float ops match :math, integers become f32", %{conn: conn} do
    xs = [0.1, 0.5, 0.9, -0.3]
    t = f32(conn, xs, {4})

    for {op, fun} <- [
          exp: &:math.exp/1,
          sin: &:math.sin/1,
          tanh: &:math.tanh/1,
          atan: &:math.atan/1,
          sigmoid: &(1 / (1 + :math.exp(-&1))),
          erf: &:math.erf/1,
          cbrt: &(:math.pow(abs(&1), 1 / 3) * if(&1 < 0, do: -1, else: 1))
        ] do
      y = Mure.unary!(op, t)
      assert y.type == {:f, 32}
      assert_close(floats(y), Enum.map(xs, fun), 1.0e-6)
    end

    e = Mure.unary!(:exp, s32(conn, [0, 1, 2], {3}))
    assert e.type == {:f, 32}
    assert_close(floats(e), [1.0, :math.exp(1), :math.exp(2)], 1.0e-6)
    # Mure.Expr's rules, checked before anything is sent.
    assert_raise ArgumentError,
                 ~r/^population_count: population_count takes integer tensors/,
                 fn ->
                   Mure.unary(:population_count, t)
                 end

    assert ints(Mure.unary!(:population_count, s32(conn, [0, 7, -1], {3})), 32) == [0, 3, 32]
    assert_raise ArgumentError, ~r/unknown op :frobnicate/, fn -> Mure.unary(:frobnicate, t) end
  end

  test "erf_inv inverts :math.erf, eagerly and in a jitted expression", %{conn: conn} do
    ys = [0.0, 0.1, -0.5, 0.9, -0.999, 0.75]
    t = f32(conn, ys, {6})
    x = Mure.unary!(:erf_inv, t)
    assert x.type == {:f, 32}
    # The reference is Erlang's erf: erf(erf_inv(y)) gives back y (y rounded to f32 first).
    assert_close(Enum.map(floats(x), &:math.erf/1), floats(t), 1.0e-6, 1.0e-7)

    jitted = Mure.jit(fn y -> Mure.Expr.erf_inv(y) end, outputs: :return)
    assert unpack(Mure.run!(jitted, [t]), 32) == floats(x)

    # ±1 give ±inf, |y| > 1 gives NaN (read as bit patterns: Elixir floats have neither).
    edges = Mure.unary!(:erf_inv, f32(conn, [1.0, -1.0, 2.0], {3}))

    assert for(<<b::unsigned-32-native <- Mure.download!(edges)>>, do: b) |> Enum.take(2) ==
             [0x7F800000, 0xFF800000]

    <<_::binary-size(8), nan::unsigned-32-native>> = Mure.download!(edges)
    assert (nan &&& 0x7F800000) == 0x7F800000 and (nan &&& 0x007FFFFF) != 0
  end

  test "binary ops broadcast and promote like Nx", %{conn: conn} do
    m = s32(conn, [1, 2, 3, 4, 5, 6], {2, 3})
    row = f32(conn, [0.5, 1.5, -1.0], {3})
    sum = Mure.binary!(:add, m, row)
    assert sum.type == {:f, 32} and sum.shape == {2, 3}
    assert floats(sum) == [1.5, 3.5, 2.0, 4.5, 6.5, 5.0]

    lt = Mure.binary!(:less, m, s32(conn, [3], {}))
    assert lt.type == {:u, 8}
    assert ints(lt, 8, :unsigned) == [1, 1, 0, 0, 0, 0]

    q = Mure.binary!(:quotient, m, s32(conn, [0, 2, -4], {3}))
    assert ints(q, 32) == [-1, 1, 0, -1, 2, -1]

    d = Mure.binary!(:divide, m, s32(conn, [2], {}))
    assert d.type == {:f, 32}
    assert floats(d) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]

    assert_raise ArgumentError,
                 "add: shapes {2, 3} and {2} cannot be broadcast together (dimension 1: 3 vs 2)",
                 fn -> Mure.binary(:add, m, s32(conn, [1, 2], {2})) end

    assert_raise ArgumentError, ~r/^bitwise_and: bitwise_and takes integer tensors/, fn ->
      Mure.binary(:bitwise_and, m, row)
    end
  end

  test "reductions over axes, with keep_axes, ties and all axes", %{conn: conn} do
    t = s32(conn, [1, 5, 5, -2, 0, 7], {2, 3})
    s0 = Mure.reduce!(:sum, t, axes: [0])
    assert s0.type == {:s, 64} and s0.shape == {3}
    assert ints(s0, 64) == [-1, 5, 12]
    assert ints(Mure.reduce!(:sum, t), 64) == [16]
    k = Mure.reduce!(:sum, t, axes: [-1], keep_axes: true)
    assert k.shape == {2, 1}
    assert ints(Mure.reduce!(:argmax, t, axes: [1]), 64) == [1, 2]
    assert ints(Mure.reduce!(:reduce_min, t, axes: [1]), 32) == [1, -2]

    assert_raise ArgumentError, ~r/^sum: reduction axis 2 is not an axis/, fn ->
      Mure.reduce(:sum, t, axes: [2])
    end
  end

  test "as_type, bitcast, reshape and transpose", %{conn: conn} do
    t = f32(conn, [1.9, -1.9, 300.0, -1.0e10], {4})
    assert ints(Mure.as_type!(t, {:s, 8}), 8) == [1, -1, 127, -128]
    bits = Mure.bitcast!(f32(conn, [1.0], {1}), {:u, 32})
    assert ints(bits, 32, :unsigned) == [0x3F800000]
    m = s32(conn, [0, 1, 2, 3, 4, 5], {2, 3})
    assert Mure.reshape!(m, {3, 2}).shape == {3, 2}
    tt = Mure.transpose!(m)
    assert tt.shape == {3, 2}
    assert ints(tt, 32) == [0, 3, 1, 4, 2, 5]
    assert_raise ArgumentError, ~r/cannot reshape/, fn -> Mure.reshape(m, {4}) end
  end

  test "slice and take check every index", %{conn: conn} do
    m = s32(conn, [0, 1, 2, 3, 4, 5], {2, 3})
    s = Mure.slice!(m, [0, 1], [2, 2])
    assert s.shape == {2, 2}
    assert ints(s, 32) == [1, 2, 4, 5]
    # As Nx, a length is the span of the input: columns 0..2 with stride 2 are 0 and 2.
    assert ints(Mure.slice!(m, [0, 0], [1, 3], strides: [1, 2]), 32) == [0, 2]
    assert_raise ArgumentError, ~r/runs past its end/, fn -> Mure.slice(m, [0, 2], [2, 2]) end
    assert_raise ArgumentError, ~r/must be non-negative/, fn -> Mure.slice(m, [0, -1], [1, 1]) end

    idx = s32(conn, [2, 0, 2], {3})
    k = Mure.take!(m, idx, axis: 1)
    assert k.shape == {2, 3}
    assert ints(k, 32) == [2, 0, 2, 5, 3, 5]

    assert {:error, %Error{kind: :out_of_range, message: msg}} =
             Mure.take(m, s32(conn, [1, 3], {2}), axis: 1)

    assert msg =~ "index 3"
    assert {:error, %Error{kind: :out_of_range}} = Mure.take(m, s32(conn, [-1], {1}))
  end

  test "empty tensors and size-1 dims flow through every family", %{conn: conn} do
    e = f32(conn, [], {0, 3})
    assert Mure.unary!(:exp, e).shape == {0, 3}
    assert Mure.binary!(:add, e, f32(conn, [1.0, 2.0, 3.0], {1, 3})).shape == {0, 3}
    assert floats(Mure.reduce!(:sum, e, axes: [0])) == [0.0, 0.0, 0.0]
    one = f32(conn, [2.0], {1, 1})
    assert floats(Mure.binary!(:multiply, one, f32(conn, [1.0, 2.0], {2}))) == [2.0, 4.0]
  end

  test "creation: iota, eye, full, seeded random", %{conn: conn} do
    assert ints(Mure.iota!(conn, {2, 3}, axis: 1), 32) == [0, 1, 2, 0, 1, 2]
    assert ints(Mure.iota!(conn, {4}), 32) == [0, 1, 2, 3]
    assert floats(Mure.eye!(conn, {2, 2}, type: {:f, 32})) == [1.0, 0.0, 0.0, 1.0]
    assert floats(Mure.full!(conn, 2.5, {3})) == [2.5, 2.5, 2.5]
    r1 = floats(Mure.random_uniform!(conn, {1000}, seed: 7, min: -2.0, max: 2.0))
    r2 = floats(Mure.random_uniform!(conn, {1000}, seed: 7, min: -2.0, max: 2.0))
    assert r1 == r2
    assert Enum.all?(r1, &(&1 >= -2.0 and &1 < 2.0))
    refute r1 == floats(Mure.random_uniform!(conn, {1000}, seed: 8, min: -2.0, max: 2.0))
    n = floats(Mure.random_normal!(conn, {20_000}, seed: 1, mean: 3.0, std: 2.0))
    mean = Enum.sum(n) / length(n)
    assert abs(mean - 3.0) < 0.1

    assert_raise ArgumentError, ~r/makes floats/, fn ->
      Mure.random_uniform(conn, {2}, seed: 1, type: {:s, 32})
    end

    assert {:error, {:type_mismatch, _}} =
             raw_call(Mure.info(conn).node, {:random_uniform, {:s, 32}, {2}, 1, 0, 1})
  end

  test "select, clip, broadcast, reverse, pad", %{conn: conn} do
    x = f32(conn, [-1.0, 2.0, -3.0, 4.0], {4})
    zero = f32(conn, [0.0], {})
    relu = Mure.select!(Mure.binary!(:greater, x, zero), x, zero)
    assert floats(relu) == [0.0, 2.0, 0.0, 4.0]

    assert floats(Mure.clip!(x, f32(conn, [-2.0], {}), f32(conn, [3.0], {}))) == [
             -1.0,
             2.0,
             -2.0,
             3.0
           ]

    row = s32(conn, [1, 2, 3], {3})
    assert ints(Mure.broadcast!(row, {2, 3}), 32) == [1, 2, 3, 1, 2, 3]
    assert ints(Mure.broadcast!(row, {3, 2}, axes: [0]), 32) == [1, 1, 2, 2, 3, 3]
    assert ints(Mure.reverse!(row), 32) == [3, 2, 1]
    assert ints(Mure.pad!(row, 0, [{1, -1, 1}]), 32) == [0, 1, 0, 2, 0]

    assert_raise ArgumentError, ~r/^pad: pad of dimension 0 crops more/, fn ->
      Mure.pad(row, 0, [{-4, 0, 0}])
    end
  end

  test "concatenate, stack, put_slice, gather, sort, argsort, squeeze, new_axis", %{conn: conn} do
    a = s32(conn, [0, 1, 2, 3, 4, 5], {2, 3})
    b = f32(conn, [0.5, 1.5, 2.5], {1, 3})
    cat = Mure.concatenate!([a, b])
    assert cat.type == {:f, 32} and cat.shape == {3, 3}
    assert floats(cat) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.5, 1.5, 2.5]
    v = s32(conn, [1, 2, 3], {3})
    st = Mure.stack!([v, v], axis: 1)
    assert st.shape == {3, 2}
    assert ints(st, 32) == [1, 1, 2, 2, 3, 3]
    assert ints(Mure.put_slice!(a, [1, 1], s32(conn, [7, 8], {1, 2})), 32) == [0, 1, 2, 3, 7, 8]

    assert_raise ArgumentError, ~r/does not fit in dimension 1/, fn ->
      Mure.put_slice(a, [1, 2], s32(conn, [7, 8], {1, 2}))
    end

    coords = s32(conn, [1, 2, 0, 0], {2, 2})
    assert ints(Mure.gather!(a, coords), 32) == [5, 0]
    assert {:error, %Error{kind: :out_of_range}} = Mure.gather(a, s32(conn, [2, 0], {1, 2}))
    u = f32(conn, [3.0, 1.0, 3.0, -2.0], {4})
    assert floats(Mure.sort!(u)) == [-2.0, 1.0, 3.0, 3.0]
    assert ints(Mure.argsort!(u), 64) == [3, 1, 0, 2]
    assert ints(Mure.argsort!(u, direction: :desc), 64) == [0, 2, 1, 3]
    assert Mure.squeeze!(Mure.reshape!(v, {1, 3, 1})).shape == {3}
    assert Mure.new_axis!(v, 1).shape == {3, 1}
  end

  test "dot: matrix product, inner product, batched, integers; outer", %{conn: conn} do
    a = f32(conn, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], {2, 3})
    b = f32(conn, [1.0, 0.0, 0.0, 1.0, 1.0, 1.0], {3, 2})
    c = Mure.dot!(a, b)
    assert c.shape == {2, 2}
    assert floats(c) == [4.0, 5.0, 10.0, 11.0]
    v = f32(conn, [1.0, 2.0, 3.0], {3})
    assert floats(Mure.dot!(v, v)) == [14.0]
    x = Mure.iota!(conn, {2, 2, 3}, type: {:f, 32})
    y = Mure.iota!(conn, {2, 3, 1}, type: {:f, 32})
    bmm = Mure.dot!(x, [2], [0], y, [1], [0])
    assert bmm.shape == {2, 2, 1}
    # x[b] = [[0,1,2],[3,4,5]] + 6b; y[b] = [0,1,2] + 3b (columns)
    ref =
      for bt <- 0..1, i <- 0..1 do
        Enum.sum(for q <- 0..2, do: (6 * bt + 3 * i + q) * (3 * bt + q))
      end

    assert floats(bmm) == Enum.map(ref, &(&1 * 1.0))
    i8 = Mure.upload!(conn, <<100::signed-8, 100::signed-8>>, {:s, 8}, {2})
    # 100 * 100 + 100 * 100 = 20_000 wraps to 32 in {:s, 8}
    assert ints(Mure.dot!(i8, i8), 8) == [32]

    assert_raise ArgumentError,
                 "dot: contraction axis 1 of {2, 3} and axis 0 of {2, 3} differ",
                 fn ->
                   Mure.dot(a, a)
                 end

    o = Mure.outer!(v, f32(conn, [1.0, 10.0], {2}))
    assert o.shape == {3, 2}
    assert floats(o) == [1.0, 10.0, 2.0, 20.0, 3.0, 30.0]
  end

  # Nx.slice/4's rule, with Nx's own examples: per axis the length is the span of the input,
  # start..start + length - 1 (which must lie inside the tensor), and the result keeps every
  # stride-th element of it, ceil(length / stride) elements. The expected values are iota's
  # flat indices, written out by hand from that rule.
  test "slice follows Nx: lengths are spans, ceil(length / stride) elements, on both devices",
       %{conn: conn} do
    node = Mure.info(conn).node
    nx_big = Mure.iota!(conn, {2, 15, 30}, type: {:s, 32})
    nx_small = Mure.iota!(conn, {2, 8}, type: {:s, 32})
    m = Mure.iota!(conn, {7, 9}, type: {:s, 32})

    cases = [
      # Nx.slice's documented example: rows 4..6, columns 11, 14, 17 of plane 0.
      {nx_big, [0, 4, 11], [2, 3, 9], [2, 1, 3], {1, 3, 3},
       [131, 134, 137, 161, 164, 167, 191, 194, 197]},
      # Nx: slice(iota({2, 8}), [0, 0], [2, 4], strides: [1, 2]) is {2, 2}, not {2, 4}.
      {nx_small, [0, 0], [2, 4], [1, 2], {2, 2}, [0, 2, 8, 10]},
      # Strides that do not divide the length: rows 1, 5 of 1..6; columns 2, 5, 8 of 2..8.
      {m, [1, 2], [6, 7], [4, 3], {2, 3}, [11, 14, 17, 47, 50, 53]},
      # A stride past the span keeps only the start.
      {m, [6, 8], [1, 1], [100, 1 <<< 40], {1, 1}, [62]},
      # The whole tensor, every other element: ceil(7 / 2) = 4 rows, ceil(9 / 2) = 5 columns.
      {m, [0, 0], [7, 9], [2, 2], {4, 5},
       for(r <- [0, 2, 4, 6], c <- [0, 2, 4, 6, 8], do: r * 9 + c)},
      # Length 0 gives an empty axis, also at the very end.
      {m, [3, 0], [0, 9], [2, 1], {0, 9}, []},
      {m, [7, 9], [0, 0], [1, 1], {0, 0}, []}
    ]

    for {t, starts, lengths, strides, shape, want} <- cases, device <- [:cpu, :opencl] do
      what = "slice #{inspect({t.shape, starts, lengths, strides})} on #{device}"
      s = Mure.slice!(t, starts, lengths, strides: strides, device: device)
      assert s.shape == shape, what
      assert ints(s, 32) == want, what

      # The same request, raw, with its device given by {:on, device, request}.
      req = {:slice, t.id, List.to_tuple(starts), List.to_tuple(lengths), List.to_tuple(strides)}
      assert {:ok, {h, {:s, 32}, ^shape}} = raw_call(node, {:on, device, req}), what
      assert {:ok, bin} = raw_call(node, {:download, h})
      assert bin == Mure.download!(s), what
      assert {:ok, :freed} = raw_call(node, {:free, h})
    end

    # Out of range: start + length past the edge is refused, never clamped (where Nx would
    # move the start back), whatever the stride: by the client before sending, and by the
    # node (sent raw) on both devices.
    for {t, starts, lengths, strides} <- [
          {nx_big, [0, 4, 22], [2, 3, 9], [2, 1, 3]},
          {nx_small, [0, 5], [2, 4], [1, 2]},
          {nx_small, [0, 0], [3, 1], [1, 1]},
          {m, [1, 2], [7, 7], [4, 3]},
          {m, [0, 0], [8, 9], [100, 100]},
          {m, [8, 0], [0, 9], [1, 1]},
          {m, [0, -1], [1, 1], [1, 1]},
          {m, [0, 0], [1, -1], [1, 1]}
        ],
        device <- [:cpu, :opencl] do
      assert_raise ArgumentError, ~r/^slice: /, fn ->
        Mure.slice(t, starts, lengths, strides: strides, device: device)
      end

      req = {:slice, t.id, List.to_tuple(starts), List.to_tuple(lengths), List.to_tuple(strides)}
      assert {:error, {:out_of_range, _}} = raw_call(node, {:on, device, req})
    end

    assert_raise ArgumentError,
                 "slice: slice of dimension 1 (size 8) from 5 with length 4 runs past its end",
                 fn -> Mure.slice(nx_small, [0, 5], [2, 4], strides: [1, 2]) end

    assert_raise ArgumentError, "slice: slice stride 1 must be at least 1", fn ->
      Mure.slice(m, [0, 0], [1, 1], strides: [1, 0])
    end

    req = {:slice, m.id, {0, 0}, {1, 1}, {1, 0}}
    assert {:error, {:badarg, _}} = raw_call(node, req)
  end

  test "device: :opencl runs the op set on the OpenCL device with the CPU's results", %{
    conn: conn
  } do
    x = f32(conn, [0.1, -0.5, 2.0, 3.5], {2, 2})
    i = s32(conn, [7, -3, 0, 1000], {2, 2})

    for {fun, what} <- [
          {&Mure.unary!(:exp, x, &1), "exp"},
          {&Mure.binary!(:multiply, x, x, &1), "multiply"},
          {&Mure.binary!(:quotient, i, s32(conn, [0, 2], {2}), &1), "quotient"},
          {&Mure.reduce!(:sum, x, [axes: [1]] ++ &1), "sum"},
          {&Mure.transpose!(x, &1), "transpose"},
          {&Mure.as_type!(x, {:s, 8}, &1), "as_type"}
        ] do
      cpu = Mure.download!(fun.(device: :cpu))
      ocl = Mure.download!(fun.(device: :opencl))
      assert byte_size(cpu) == byte_size(ocl)

      if what in ["exp"] do
        assert_close(unpack(ocl, 32), unpack(cpu, 32), 1.0e-6)
      else
        assert ocl == cpu, "#{what} differs between the CPU and the OpenCL device"
      end
    end

    for {fun, what} <- [
          {&Mure.sort!(x, [axis: 1] ++ &1), "sort"},
          {&Mure.argsort!(x, [axis: 0, direction: :desc] ++ &1), "argsort"},
          {&Mure.dot!(x, [1], [], x, [0], [], &1), "dot"},
          {&Mure.pad!(x, 0.0, [{1, -1, 1}, {0, 1, 0}], &1), "pad"},
          {&Mure.concatenate!([x, x], [axis: 1] ++ &1), "concatenate"},
          {&Mure.iota!(conn, {3, 4}, [axis: 1] ++ &1), "iota"},
          {&Mure.random_normal!(conn, {64}, [seed: 3] ++ &1), "random_normal"}
        ] do
      assert Mure.download!(fun.(device: :opencl)) == Mure.download!(fun.(device: :cpu)),
             "#{what} differs between the CPU and the OpenCL device"
    end
  end
end
