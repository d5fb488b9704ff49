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

  test "the node's hello lists its op families, and this client agrees with them", %{conn: conn} do
    hello = Mure.info(conn).hello
    assert hello.op_families.unary == Mure.Rules.unary_ops()
    assert hello.op_families.binary == Mure.Rules.binary_ops()
    assert hello.op_families.reduce == Mure.Rules.reductions()
    assert Mure.Rules.compare_families(hello) == :same

    # A node from another tree: said in words, both ways.
    other = %{
      hello
      | op_families: %{
          hello.op_families
          | unary: [:frobnicate | hello.op_families.unary -- [:erf_inv]]
        }
    }

    assert {:differs, what} = Mure.Rules.compare_families(other)
    assert what =~ "unary: the node lacks erf_inv; this client does not know frobnicate"
    assert Mure.Rules.compare_families(%{}) == :unknown
  end

  @types [{:u, 8}, {:s, 32}, {:s, 64}, {:f, 16}, {:f, 32}, {:f, 64}, {:c, 64}, {:c, 128}]

  # Raw requests, not Mure's eager functions: those check with Mure.Rules before sending, and
  # the node must be asked itself.
  defp zeros(node, type, n) do
    {_, bits} = type
    assert {:ok, reply} = raw_call(node, {:upload, type, {n}, <<0::size(bits * n)>>})
    handle(reply)
  end

  defp handle({h, _type, _shape}), do: h
  defp handle(h), do: h

  defp node_type({:ok, {_h, type, _shape}}), do: {:ok, type}
  defp node_type({:error, {:type_mismatch, _}} = e), do: e
  defp node_type(other), do: {:unexpected, other}

  test "Rules' unary type classes give the node's result types", %{node: node} do
    for type <- @types, op <- Mure.Rules.unary_ops() do
      t = zeros(node, type, 3)

      case {Mure.Rules.unary_type(op, type), node_type(raw_call(node, {:unary, op, t}))} do
        {{:ok, want}, {:ok, got}} ->
          assert got == want, "#{op} on #{inspect(type)}: node #{inspect(got)}"

        {{:error, _}, {:error, {:type_mismatch, _}}} ->
          :ok

        {rules, node} ->
          flunk(
            "#{op} on #{inspect(type)}: Rules say #{inspect(rules)}, the node #{inspect(node)}"
          )
      end
    end
  end

  test "Rules' binary type classes give the node's result types", %{node: node} do
    for a <- @types, b <- [{:s, 32}, {:f, 32}, {:c, 64}], op <- Mure.Rules.binary_ops() do
      x = zeros(node, a, 2)
      y = zeros(node, b, 2)

      case {Mure.Rules.binary_type(op, a, b), node_type(raw_call(node, {:binary, op, x, y}))} do
        {{:ok, want}, {:ok, got}} ->
          assert got == want, "#{op} on #{inspect(a)}, #{inspect(b)}: node #{inspect(got)}"

        {{:error, _}, {:error, {:type_mismatch, _}}} ->
          :ok

        {rules, node} ->
          flunk(
            "#{op} on #{inspect(a)}, #{inspect(b)}: Rules say #{inspect(rules)}, the node #{inspect(node)}"
          )
      end
    end
  end

  # docs/protocol.md lists each family's names for someone without the client: the same lists.
  test "docs/protocol.md names exactly the table's ops" do
    doc = File.read!(Path.expand("../../docs/protocol.md", __DIR__))

    listed = fn request ->
      [_, names] =
        Regex.run(~r/^\| `#{Regex.escape(request)}` \|[^\n]*?: ([a-z0-9_ ]+) \|$/m, doc)

      names |> String.split(" ", trim: true) |> Enum.map(&String.to_atom/1)
    end

    assert listed.("{:unary, name, h}") == Mure.Rules.unary_ops()
    assert listed.("{:binary, name, a, b}") == Mure.Rules.binary_ops()
  end

  test "README's op-set table names exactly the table's ops" do
    readme = File.read!(Path.expand("../../README.md", __DIR__))

    row = fn family ->
      [_, names] = Regex.run(~r/^\| #{Regex.escape(family)} \| ([a-z0-9_ ]+)[;|]/m, readme)
      names |> String.split(" ", trim: true) |> Enum.map(&String.to_atom/1)
    end

    assert row.("unary") == Mure.Rules.unary_ops()
    assert row.("binary (broadcasting)") == Mure.Rules.binary_ops()
    assert row.("reductions (any axes, `keep_axes`)") == Mure.Rules.reductions()
  end
end
