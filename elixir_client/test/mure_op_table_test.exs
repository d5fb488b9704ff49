defmodule Mure.OpTableTest do
  # Mure.Rules reads its op names and type classes from the node's op table (src/ir/ops.def) at
  # compile time. This checks both against the real node: the names it knows (it lists them
  # when asked for an op it does not know) and the type every op gives on every kind of type.
  # A table and a client that drift apart fail here.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  setup_all do
    conn = start_supervised!({Mure, []})
    %{conn: conn, node: Mure.info(conn).node}
  end

  # The node's answer to an op name it does not know names every op of that family, from the
  # same table the hello and the planner use.
  defp node_names(node, request) do
    assert {:error, {:unknown_op, message}} = raw_call(node, request)
    assert [_, known] = String.split(message, "; known: ", parts: 2)
    known |> String.split(" ", trim: true) |> Enum.map(&String.to_atom/1)
  end

  test "Rules' op names are the node's, in the node's order", %{node: node} do
    assert {:ok, h} = raw_call(node, {:upload, {:f, 32}, {1}, <<0::32>>})
    assert node_names(node, {:unary, :mure_not_an_op, h}) == Mure.Rules.unary_ops()
    assert node_names(node, {:binary, :mure_not_an_op, h, h}) == Mure.Rules.binary_ops()
    assert node_names(node, {:reduce, :mure_not_an_op, h, :all, false}) == Mure.Rules.reductions()
    # Mure's eager functions take the same lists.
    assert Mure.unary_ops() == Mure.Rules.unary_ops()
    assert Mure.binary_ops() == Mure.Rules.binary_ops()
  end

  @types [{:u, 8}, {:s, 32}, {:s, 64}, {:f, 16}, {:f, 32}, {:f, 64}]

  defp zeros(conn, type, n) do
    {_, bits} = type
    Mure.upload!(conn, <<0::size(bits * n)>>, type, {n})
  end

  test "Rules' unary type classes give the node's result types", %{conn: conn} do
    for type <- @types, op <- Mure.Rules.unary_ops() do
      t = zeros(conn, type, 3)

      case {Mure.Rules.unary_type(op, type), Mure.unary(op, t)} do
        {{:ok, want}, {:ok, got}} ->
          assert got.type == want, "#{op} on #{inspect(type)}: node #{inspect(got.type)}"

        {{:error, _}, {:error, %Mure.Error{kind: :type_mismatch}}} ->
          :ok

        {rules, node} ->
          flunk(
            "#{op} on #{inspect(type)}: Rules say #{inspect(rules)}, the node #{inspect(node)}"
          )
      end
    end
  end

  test "Rules' binary type classes give the node's result types", %{conn: conn} do
    for a <- @types, b <- [{:s, 32}, {:f, 32}], op <- Mure.Rules.binary_ops() do
      x = zeros(conn, a, 2)
      y = zeros(conn, b, 2)

      case {Mure.Rules.binary_type(op, a, b), Mure.binary(op, x, y)} do
        {{:ok, want}, {:ok, got}} ->
          assert got.type == want,
                 "#{op} on #{inspect(a)}, #{inspect(b)}: node #{inspect(got.type)}"

        {{:error, _}, {:error, %Mure.Error{kind: :type_mismatch}}} ->
          :ok

        {rules, node} ->
          flunk(
            "#{op} on #{inspect(a)}, #{inspect(b)}: Rules say #{inspect(rules)}, the node #{inspect(node)}"
          )
      end
    end
  end
end
