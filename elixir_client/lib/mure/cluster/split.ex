defmodule Mure.Cluster.Split do
  @moduledoc false
  # Whether a traced function can run on pieces of rows, and how the pieces' results come
  # together (combine: :auto). Walks the function's expression graph, traced with the split
  # arguments at 3 rows, and classifies every value:
  #
  #   :none          does not depend on a split argument
  #   :rows          row i of it depends only on row i of the split arguments, its axis 0
  #                  being the rows (elementwise ops with the rows aligned, reductions and
  #                  products over other axes, a shared right-hand side of a product, ...)
  #   {:partial, op} a sum/product/max/min (or all/any) over axis 0 of a :rows value: fine as
  #                  the output (the pieces' results combine with `op`), nowhere else
  #   :mixed         anything else (a reduction over the rows used further on, a transpose
  #                  that moves axis 0, a sort along it, ...): pieces would give a wrong answer
  #
  # Anything not known to keep rows apart counts as :mixed: :auto then refuses and asks for an
  # explicit combine:, rather than risk a wrong result.

  alias Mure.Expr

  @rows 3
  @combining %{
    sum: :sum,
    product: :product,
    reduce_max: :max,
    reduce_min: :min,
    all: :min,
    any: :max
  }

  @doc false
  # `args` as in Mure.Cluster.run/4 ({binary, type, shape} split, Shared whole).
  # {:ok, :concat | :sum | :product | :max | :min} or {:error, why}.
  @spec combine(Mure.Jit.t(), list()) :: {:ok, atom()} | {:error, String.t()}
  def combine(jit, args) do
    trace = make_ref()

    params =
      args
      |> Enum.with_index()
      |> Enum.map(fn
        {{_bin, type, shape}, i} ->
          {Expr.parameter(i, type, put_elem(shape, 0, @rows), trace), true}

        {%{type: type, shape: shape}, i} ->
          {Expr.parameter(i, type, shape, trace), false}
      end)

    split = for {%Expr{node: {:parameter, i, _}}, true} <- params, into: MapSet.new(), do: i

    case apply(jit.fun, Enum.map(params, &elem(&1, 0))) do
      %Expr{} = out ->
        {class, _memo} = classify(out, split, %{})
        verdict(class)

      _ ->
        {:error, "the function must return a single tensor expression"}
    end
  end

  defp verdict(:rows), do: {:ok, :concat}
  defp verdict({:partial, op}), do: {:ok, op}

  defp verdict(:none),
    do: {:error, "its result does not depend on the split ({binary, type, shape}) arguments"}

  defp verdict(:mixed),
    do:
      {:error,
       "it mixes rows of the split arguments (for example a reduction over axis 0 used " <>
         "further on, or an op along axis 0), so pieces would not give its result"}

  # Iterative over shared subexpressions through the memo (by expression id).
  defp classify(%Expr{id: id} = e, split, memo) do
    case memo do
      %{^id => class} ->
        {class, memo}

      _ ->
        {operands, memo} =
          e.node
          |> Mure.Program.operands()
          |> Enum.map_reduce(memo, fn o, acc ->
            {c, acc} = classify(o, split, acc)
            {{o, c}, acc}
          end)

        class = class_of(e, operands, split)
        {class, Map.put(memo, id, class)}
    end
  end

  defp class_of(%Expr{node: {:parameter, i, _}}, [], split),
    do: if(MapSet.member?(split, i), do: :rows, else: :none)

  defp class_of(e, operands, _split) do
    classes = Enum.map(operands, &elem(&1, 1))

    cond do
      Enum.all?(classes, &(&1 == :none)) -> :none
      Enum.any?(classes, &(&1 == :mixed or match?({:partial, _}, &1))) -> :mixed
      true -> rows_op(e.node, e, operands)
    end
  end

  # Some operand is :rows, none is :mixed or partial.
  defp rows_op({op, _, _}, _e, [{_, :rows}]) when op in [:unary, :as_type, :bitcast], do: :rows

  defp rows_op({op, _, _, _}, e, operands) when op in [:binary, :select, :clip],
    do: aligned(e, operands)

  defp rows_op({:reduce, op, x, axes, _keep}, _e, _operands) do
    axes = if axes == :all, do: Enum.to_list(0..(tuple_size(x.shape) - 1)//1), else: norm(axes, x)

    cond do
      0 not in axes -> :rows
      Map.has_key?(@combining, op) -> {:partial, @combining[op]}
      true -> :mixed
    end
  end

  defp rows_op({:dot, a, ca, ba, _b, _cb, _bb}, _e, [{_, ca_class}, {_, cb_class}]) do
    if ca_class == :rows and cb_class == :none and ba == [] and 0 not in norm(ca, a),
      do: :rows,
      else: :mixed
  end

  defp rows_op({:matmul, _a, _b}, _e, [{_, :rows}, {_, :none}]), do: :rows

  defp rows_op({:reshape, x, shape}, _e, [{_, :rows}]) do
    if tuple_size(shape) > 0 and tuple_size(x.shape) > 0 and elem(shape, 0) == elem(x.shape, 0),
      do: :rows,
      else: :mixed
  end

  defp rows_op({:transpose, _x, axes}, _e, [{_, :rows}]),
    do: if(elem(axes, 0) == 0, do: :rows, else: :mixed)

  defp rows_op({:reverse, x, axes}, _e, [{_, :rows}]),
    do: if(0 in norm(axes, x), do: :mixed, else: :rows)

  defp rows_op({:broadcast, x, shape, axes}, _e, [{_, :rows}]) do
    if axes != [] and hd(axes) == 0 and elem(shape, 0) == elem(x.shape, 0),
      do: :rows,
      else: :mixed
  end

  defp rows_op({:take, x, indices, axis}, _e, [{_, xc}, {_, ic}]) do
    axis = if axis < 0, do: axis + tuple_size(x.shape), else: axis

    cond do
      xc == :rows and ic == :none and axis != 0 -> :rows
      xc == :none and ic == :rows and axis == 0 and tuple_size(indices.shape) > 0 -> :rows
      true -> :mixed
    end
  end

  defp rows_op({:pad, _x, _value, [{0, 0, 0} | _]}, _e, [{_, :rows}, {_, :none}]), do: :rows
  defp rows_op(_node, _e, _operands), do: :mixed

  # An elementwise op with broadcasting: the rows stay rows when every :rows operand has the
  # result's rank (its axis 0 is the result's axis 0).
  defp aligned(e, operands) do
    rank = tuple_size(e.shape)

    if rank > 0 and
         Enum.all?(operands, fn {o, c} -> c == :none or tuple_size(o.shape) == rank end),
       do: :rows,
       else: :mixed
  end

  defp norm(axes, x), do: Enum.map(axes, &if(&1 < 0, do: &1 + tuple_size(x.shape), else: &1))
end
