defimpl Inspect, for: Mure.Expr do
  def inspect(%Mure.Expr{type: type, shape: shape, node: node}, _opts) do
    "#Mure.Expr<" <>
      Mure.Types.type_to_string(type) <>
      Mure.Types.shape_to_string(shape) <> " " <> describe_node(node) <> ">"
  end

  defp describe_node({:parameter, i, _}), do: "parameter #{i}"
  defp describe_node({kind, name, _}) when kind in [:unary], do: "unary #{inspect(name)}"
  defp describe_node({:binary, name, _, _}), do: "binary #{inspect(name)}"
  defp describe_node({:reduce, name, _, _, _}), do: "reduce #{inspect(name)}"
  defp describe_node(node), do: Atom.to_string(elem(node, 0))
end
