defmodule Mure.NxWindowTest do
  # The node's window, window_scatter, indexed and cumulative ops under Mure.Backend, each
  # against Nx.BinaryBackend for every option, with no fallback counted; and the errors
  # (out-of-range indices) as Nx.BinaryBackend gives them.
  # async: false: the window_reduce test makes one fallback on purpose, and other modules
  # compare the whole fallback count map
  use Mure.NxCase, async: false

  doctest Mure.Expr.Window

  # The fallback counts of this module's callbacks (other modules run alongside and count
  # their own).
  @mine [
    :window_sum,
    :window_product,
    :window_max,
    :window_min,
    :window_reduce,
    :window_scatter_max,
    :window_scatter_min,
    :indexed_add,
    :indexed_put,
    :cumulative_sum,
    :cumulative_product,
    :cumulative_max,
    :cumulative_min
  ]
  defp mine(counts), do: Map.take(counts, @mine)

  # Runs `fun` on the node's copies of `inputs` and on Nx.BinaryBackend's; same type,
  # shape and values (floats within `rtol`).
  defp same(fun, inputs, mure, rtol \\ 1.0e-6) do
    got = apply(fun, Enum.map(inputs, &Nx.backend_copy(&1, mure)))

    want =
      Nx.with_default_backend(Nx.BinaryBackend, fn -> apply(fun, Enum.map(inputs, &ref/1)) end)

    assert on_node?(got)
    assert {got.type, got.shape} == {want.type, want.shape}
    got = ref(got)

    if Nx.Type.float?(want.type) do
      assert Nx.to_number(Nx.all_close(got, want, rtol: rtol, equal_nan: true)) == 1,
             "#{inspect(got)} vs #{inspect(want)}"
    else
      assert got == want
    end
  end

  defp random(shape, type, seed) do
    key = Nx.Random.key(seed) |> Nx.backend_copy(Nx.BinaryBackend)
    {x, _} = Nx.Random.uniform(key, -5.0, 5.0, shape: shape, type: {:f, 32})
    x |> Nx.round() |> Nx.as_type(type) |> ref()
  end

  test "window_sum/product/max/min of every type and option, any window size", %{mure: mure} do
    before = Mure.Backend.fallbacks()

    for type <- [{:f, 32}, {:s, 32}, {:u, 8}, {:f, 64}],
        fun <- [:window_sum, :window_product, :window_max, :window_min],
        {window, opts} <- [
          {{1, 3, 2}, []},
          {{2, 2, 3}, [strides: [1, 2, 3]]},
          {{1, 3, 2}, [padding: :same]},
          {{1, 3, 2},
           [padding: [{0, 0}, {2, 1}, {1, 3}], strides: [1, 1, 2], window_dilations: [1, 2, 1]]},
          # 2 * 7 * 9 = 126 elements per window: past the old composition's 64
          {{2, 7, 9}, [padding: :valid]},
          {{2, 5, 5}, [padding: :same, strides: [2, 2, 2]]}
        ] do
      x = random({2, 7, 9}, type, 7)
      x = if fun == :window_product, do: ref(Nx.remainder(x, 2)), else: x
      same(&apply(Nx, fun, [&1, window, opts]), [x], mure, 1.0e-5)
    end

    assert mine(Mure.Backend.fallbacks()) == mine(before)
  end

  test "window_reduce with a traced function and an accumulator that pads", %{mure: mure} do
    before = Mure.Backend.fallbacks()
    # f32: Nx.BinaryBackend calls the function on numbers, and its integer results are
    # {:s, 32} tensors that it refuses to write into other integer types
    x = random({4, 6}, {:f, 32}, 3)

    for {acc, fun} <- [
          {0, &Nx.add/2},
          {10, &Nx.add/2},
          {1, &Nx.multiply/2},
          {-100, fn x, acc -> Nx.max(acc, x) end},
          {100, &Nx.min/2}
        ],
        opts <- [[], [padding: :same], [strides: [2, 1], padding: [{1, 2}, {0, 1}]]] do
      same(&Nx.window_reduce(&1, acc, {2, 3}, opts, fun), [x], mure)
    end

    f = random({3, 5}, {:f, 32}, 5)

    same(
      &Nx.window_reduce(&1, 0.5, {2, 2}, [padding: :same], fn a, b -> Nx.add(b, a) end),
      [f],
      mure
    )

    assert mine(Mure.Backend.fallbacks()) == mine(before)

    # A function the trace cannot translate falls back, counted.
    squares =
      Nx.window_reduce(Nx.backend_copy(x, mure), 0, {2, 2}, fn a, b ->
        Nx.add(Nx.multiply(a, a), b)
      end)

    want =
      Nx.with_default_backend(Nx.BinaryBackend, fn ->
        Nx.window_reduce(x, 0, {2, 2}, fn a, b -> Nx.add(Nx.multiply(a, a), b) end)
      end)

    assert ref(squares) == want

    assert Mure.Backend.fallbacks()[:window_reduce] == Map.get(before, :window_reduce, 0) + 1
  end

  test "window_scatter_max/min: Nx's examples, ties and overlapping windows", %{mure: mure} do
    before = Mure.Backend.fallbacks()

    x =
      Nx.tensor([[7, 2, 5, 3, 10, 2], [3, 8, 9, 3, 4, 2], [1, 5, 7, 5, 6, 1], [0, 6, 2, 7, 2, 8]],
        backend: Nx.BinaryBackend
      )

    s = Nx.tensor([[2, 6], [3, 1]], backend: Nx.BinaryBackend)

    for fun <- [:window_scatter_max, :window_scatter_min] do
      same(&apply(Nx, fun, [&1, &2, 0, {2, 3}, [strides: [2, 3]]]), [x, s], mure)
      # overlapping windows with ties (equal values): the selections accumulate
      ties = Nx.tensor([[1, 1, 2, 2], [1, 1, 2, 2]], type: {:f, 32}, backend: Nx.BinaryBackend)
      src = Nx.tensor([[1.5, 2.5, 4.0]], backend: Nx.BinaryBackend)
      same(&apply(Nx, fun, [&1, &2, 0.25, {2, 2}, [strides: [1, 1]]]), [ties, src], mure)
      r = random({5, 7}, {:f, 32}, 11)
      src = random({4, 3}, {:f, 32}, 12)
      same(&apply(Nx, fun, [&1, &2, 1, {2, 3}, [strides: [1, 2]]]), [r, src], mure)
    end

    assert mine(Mure.Backend.fallbacks()) == mine(before)
  end

  test "indexed_add/put: duplicates, axes, types, and out-of-range indices", %{mure: mure} do
    before = Mure.Backend.fallbacks()
    t = random({3, 4, 2}, {:s, 32}, 1)
    i = Nx.tensor([[0, 1], [2, 3], [0, 1], [1, 0]], backend: Nx.BinaryBackend)
    u = random({4, 2}, {:f, 32}, 2)

    for fun <- [:indexed_add, :indexed_put] do
      same(&apply(Nx, fun, [&1, &2, &3]), [t, i, u], mure)
      # axes: index axes 0 and 2; the updates run along axis 1
      u1 = random({4, 4}, {:s, 64}, 4)
      i1 = Nx.tensor([[0, 1], [2, 0], [0, 1], [1, 1]], type: {:u, 8}, backend: Nx.BinaryBackend)
      same(&apply(Nx, fun, [&1, &2, &3, [axes: [0, 2]]]), [t, i1, u1], mure)
      # full coordinates: scalar updates
      i3 = Nx.tensor([[0, 0, 0], [2, 3, 1], [0, 0, 0]], type: {:s, 16}, backend: Nx.BinaryBackend)
      u3 = Nx.tensor([1, 2, 3], type: {:s, 32}, backend: Nx.BinaryBackend)
      same(&apply(Nx, fun, [&1, &2, &3]), [t, i3, u3], mure)
      # Nx's one-index form
      same(
        &apply(Nx, fun, [&1, &2, &3]),
        [
          Nx.iota({4}, backend: Nx.BinaryBackend),
          Nx.tensor([2], backend: Nx.BinaryBackend),
          Nx.tensor(9, backend: Nx.BinaryBackend)
        ],
        mure
      )
    end

    assert mine(Mure.Backend.fallbacks()) == mine(before)

    bad = Nx.tensor([[0, 1], [3, 0]])
    upd = Nx.tensor([[1, 1], [1, 1]])

    # Nx.BinaryBackend's exception and words (the node's out_of_range, raised as Nx does).
    assert_raise ArgumentError, "index 3 is out of bounds for axis 0 in shape {3, 4, 2}", fn ->
      Nx.indexed_add(Nx.backend_copy(t, mure), bad, upd)
    end

    assert_raise ArgumentError, ~r/index 3 is out of bounds/, fn ->
      Nx.indexed_add(t, ref(bad), ref(upd))
    end

    # the node is still up
    assert Nx.to_flat_list(Nx.indexed_put(Nx.tensor([0, 0]), Nx.tensor([[1]]), Nx.tensor([5]))) ==
             [0, 5]
  end

  test "cumulative_sum/product/max/min over each axis, both directions", %{mure: mure} do
    before = Mure.Backend.fallbacks()

    for type <- [{:s, 64}, {:f, 32}, {:u, 8}],
        fun <- [:cumulative_sum, :cumulative_product, :cumulative_max, :cumulative_min],
        axis <- [0, 1, -1],
        reverse <- [false, true] do
      x = random({3, 4, 5}, type, 21)
      x = if fun == :cumulative_product, do: ref(Nx.remainder(x, 3)), else: x
      same(&apply(Nx, fun, [&1, [axis: axis, reverse: reverse]]), [x], mure, 1.0e-5)
    end

    assert Nx.to_flat_list(Nx.cumulative_product(Nx.tensor([1, 2, 3, 4]))) == [1, 2, 6, 24]
    assert mine(Mure.Backend.fallbacks()) == mine(before)
  end

  test "device :opencl refuses the ops clearly; :auto runs them", %{conn: conn} do
    opencl = {Mure.Backend, connection: conn, device: :opencl}
    x = Nx.backend_copy(Nx.tensor([1.0, 2.0, 3.0], backend: Nx.BinaryBackend), opencl)

    error = assert_raise Mure.Error, fn -> Nx.cumulative_sum(x) end
    assert error.kind == :unsupported

    assert Exception.message(error) =~ "cumulative" and
             Exception.message(error) =~ ":cpu or :auto"

    # :auto runs them on the CPU executor, in one program with the cast Nx asks for
    y = Nx.backend_copy(x, {Mure.Backend, connection: conn})
    assert Nx.to_flat_list(Nx.cumulative_max(Nx.negate(y))) == [-1.0, -1.0, -1.0]
  end
end
