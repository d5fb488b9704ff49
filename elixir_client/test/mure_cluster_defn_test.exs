defmodule Mure.ClusterDefnTest do
  # Mure.Cluster.run/4 with defn functions: compiled as compiler: Mure compiles them, split
  # by rows across two real nodes found through epmd, checked and combined as Mure.jit
  # functions are.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  import Mure.TestSupport

  alias Mure.Reliability

  defmodule Model do
    import Nx.Defn

    defn(predict(x, w, b), do: x |> Nx.dot(w) |> Nx.add(b) |> Nx.sigmoid())
    defn(squares_total(x), do: Nx.sum(x * x, axes: [0]))
    defn(centered(x), do: x - Nx.sum(x, axes: [0]))
    defn(pair(x), do: {Nx.exp(x), Nx.negate(x)})

    # A gradient with respect to the rows: row i's depends on row i only.
    defn(grad_rows(x, w), do: grad(x, fn x -> Nx.sum(Nx.tanh(Nx.dot(x, w))) end))

    defn hooked(x) do
      x |> Nx.exp() |> hook(fn _ -> :ok end)
    end
  end

  setup_all do
    prefix = "mcdef#{System.unique_integer([:positive])}_"

    nodes =
      for i <- 1..2 do
        Reliability.launch_plain(["--name", "#{prefix}#{i}@127.0.0.1", "--blis-threads", "1"])
      end

    on_exit(fn -> Enum.each(nodes, &Reliability.stop_plain/1) end)
    %{prefix: prefix}
  end

  setup %{prefix: prefix} do
    cluster =
      start_supervised!(
        {Mure.Cluster, hosts: ["127.0.0.1"], name_prefix: prefix, discover_interval: 200}
      )

    assert :ok = Mure.Cluster.await_members(cluster, 2, 30_000)
    %{cluster: cluster}
  end

  # The defn function compiled by Mure on one node (launched for the test), as a binary.
  defp one_node(fun, args) do
    conn =
      Process.get(:one_node) ||
        tap(start_supervised!({Mure, []}, id: :one_node), &Process.put(:one_node, &1))

    tensors =
      Enum.map(args, fn {bin, type, shape} -> Nx.from_binary(bin, type) |> Nx.reshape(shape) end)

    result = Nx.Defn.jit_apply(fun, tensors, compiler: Mure, connection: conn)
    Nx.to_binary(result)
  end

  test "a defn function split by rows equals its one-node result", %{cluster: cluster} do
    x = {exact_matrix(900, 16, 3), {:f, 32}, {900, 16}}
    w = {exact_matrix(16, 5, 5), {:f, 32}, {16, 5}}
    b = {exact_matrix(1, 5, 7), {:f, 32}, {5}}
    expected = one_node(&Model.predict/3, [x, w, b])

    {:ok, ws} = Mure.Cluster.share(cluster, w)
    {:ok, bs} = Mure.Cluster.share(cluster, b)

    assert {:ok, ^expected} =
             Mure.Cluster.run(cluster, &Model.predict/3, [x, ws, bs],
               piece_rows: 100,
               balance: :equal
             )

    # Both members did pieces of it.
    assert Enum.all?(Mure.Cluster.status(cluster).members, &(&1.work.pieces > 0))

    # And it is the function's value (Nx.BinaryBackend, within f32 rounding).
    reference =
      Nx.Defn.jit_apply(
        &Model.predict/3,
        for({bin, type, shape} <- [x, w, b], do: Nx.from_binary(bin, type) |> Nx.reshape(shape)),
        compiler: Nx.Defn.Evaluator
      )

    got = Nx.from_binary(expected, {:f, 32}) |> Nx.reshape({900, 5})
    assert Nx.all_close(got, reference, atol: 1.0e-6) == Nx.tensor(1, type: :u8)

    # A reduction over the rows: partial sums combined on the client (small integers in f32
    # add up exactly in any order).
    expected = one_node(&Model.squares_total/1, [x])

    assert {:ok, ^expected} =
             Mure.Cluster.run(cluster, &Model.squares_total/1, [x], piece_rows: 128)

    # A gradient (Nx.Defn.grad) splits too; BLIS may block a product of fewer rows
    # otherwise, so the last bits may differ from the one-node result.
    expected = one_node(&Model.grad_rows/2, [x, w])

    assert {:ok, got} = Mure.Cluster.run(cluster, &Model.grad_rows/2, [x, ws], piece_rows: 100)

    assert Nx.all_close(Nx.from_binary(got, {:f, 32}), Nx.from_binary(expected, {:f, 32}),
             atol: 1.0e-6
           ) == Nx.tensor(1, type: :u8)

    # An anonymous function Nx.Defn can trace works the same.
    fun = fn x -> Nx.multiply(Nx.log1p(Nx.abs(x)), 3) end
    expected = one_node(fun, [x])
    assert {:ok, ^expected} = Mure.Cluster.run(cluster, fun, [x], piece_rows: 64)
  end

  test "a defn function that mixes rows is refused as a Mure.jit one is", %{cluster: cluster} do
    x = {exact_matrix(40, 3, 3), {:f, 32}, {40, 3}}

    jit = Mure.jit(fn x -> Mure.Expr.subtract(x, Mure.Expr.sum(x, axes: [0])) end)

    jit_error = assert_raise(ArgumentError, fn -> Mure.Cluster.run(cluster, jit, [x]) end)

    defn_error =
      assert_raise(ArgumentError, fn -> Mure.Cluster.run(cluster, &Model.centered/1, [x]) end)

    assert defn_error.message == jit_error.message
    assert defn_error.message =~ "cannot split this function across members: it mixes rows"

    # With an explicit combine the caller vouches for the pieces, as for Mure.jit.
    assert {:ok, _} = Mure.Cluster.run(cluster, &Model.centered/1, [x], combine: :concat)
  end

  test "what cannot be one program on a member is refused, clearly", %{cluster: cluster} do
    x = {exact_matrix(40, 3, 3), {:f, 32}, {40, 3}}

    assert_raise ArgumentError,
                 ~r/needs a hook run from the client between programs; only a straight-line/,
                 fn -> Mure.Cluster.run(cluster, &Model.hooked/1, [x]) end

    captured = Nx.tensor([1.0, 2.0, 3.0])

    assert_raise ArgumentError,
                 ~r/captures a tensor \(f32\[3\]\): pass it as an argument instead/,
                 fn -> Mure.Cluster.run(cluster, &Nx.add(&1, captured), [x]) end

    assert_raise ArgumentError,
                 ~r/must return a single tensor expression \(got 2 outputs\)/,
                 fn ->
                   Mure.Cluster.run(cluster, &Model.pair/1, [x])
                 end

    assert_raise ArgumentError, ~r/the function takes 3 arguments, got 1/, fn ->
      Mure.Cluster.run(cluster, &Model.predict/3, [x])
    end

    # The cluster still works after them.
    assert {:ok, _} = Mure.Cluster.run(cluster, &Nx.exp/1, [x])
  end
end
