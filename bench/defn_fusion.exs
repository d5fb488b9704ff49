# bench/defn_fusion.exs — for bench/defn.exs (issue 14): the fused fraction of a program that
# Mure.Compiler sent, by the node's own fusion rules. Loaded by bench/defn.exs.
defmodule Bench.Defn.Fusion do
  @moduledoc false
  # Which nodes of a program the node runs inside generated fused kernels: the rules of
  # src/sched/fusion.cpp (PlanFusion), applied to the program Mure.Compiler sent, with every
  # value's type and shape as the node itself reports them (the program run once more with
  # every value returned) and the fusible ops read from src/ir/ops.def (the node's own table).
  # A group is a tree of f32 elementwise nodes of one shape (operands of that shape or scalars)
  # whose inner values have one use and are not outputs, optionally topped by a reduction over
  # trailing axes (where the OpenCL device has fp64); groups of two or more nodes are fused.

  alias Mure.Request

  # {unary names, binary names, reduce names} that may be steps of a fused f32 chain.
  def fusible(ops_def) do
    text = File.read!(ops_def) |> String.replace(~r{//[^\n]*}, "")

    for family <- ~w(UNARY BINARY REDUCE) do
      Regex.scan(~r/^MURE_#{family}\(/m, text, return: :index)
      |> Enum.map(fn [{at, len}] ->
        args(binary_part(text, at + len, byte_size(text) - at - len))
      end)
      |> Enum.filter(fn a ->
        case family do
          "REDUCE" -> Enum.at(a, 3) == "1"
          _ -> Enum.at(a, 5) == "1" and Enum.at(a, 3) != "MURE_NONE"
        end
      end)
      |> MapSet.new(fn a -> a |> Enum.at(1) |> String.trim("\"") |> String.to_atom() end)
    end
    |> List.to_tuple()
  end

  # The macro's arguments up to its closing parenthesis (commas inside parentheses kept).
  defp args(rest), do: args(rest, 0, "", [])
  defp args(<<")", _::binary>>, 0, cur, acc), do: Enum.reverse([String.trim(cur) | acc])
  defp args(<<",", r::binary>>, 0, cur, acc), do: args(r, 0, "", [String.trim(cur) | acc])
  defp args(<<"(", r::binary>>, d, cur, acc), do: args(r, d + 1, cur <> "(", acc)
  defp args(<<")", r::binary>>, d, cur, acc), do: args(r, d - 1, cur <> ")", acc)
  defp args(<<c::utf8, r::binary>>, d, cur, acc), do: args(r, d, <<cur::binary, c::utf8>>, acc)

  # The only program step of the plan Mure.Compiler cached for `fun` (the cache cleared first).
  def program(fun) do
    Mure.Jit.Cache.clear()
    result = fun.()

    plans = for {{Mure.Compiler, _, _, _}, plan} <- :ets.tab2list(Mure.Jit.Cache), do: plan

    [plan] = plans
    programs = for {:program, p, _, _} <- plan.steps, do: p
    {result, programs, length(plan.steps)}
  end

  # Type and shape of every value of `program` (inputs of zeros), as the node gives them.
  def values(conn, program) do
    inputs =
      for {_, {_, bits} = type, shape} <- program.params do
        size = Enum.product(Tuple.to_list(shape)) * div(bits, 8)
        {:data, type, shape, <<0::size(size)-unit(8)>>}
      end

    n = length(inputs) + length(program.nodes)
    request = {:program, inputs, program.nodes, for(id <- 1..n, do: {id, :return})}

    case Request.call(conn, request, [], self(), Request.budget(60_000)) do
      {:ok, values, _, _} -> Enum.map(values, fn {type, shape, _} -> {type, shape} end)
      {:error, e} -> raise "program of every value: #{Exception.message(e)}"
    end
  end

  # %{nodes, fused, groups}: the program's node count, nodes inside fused groups, the groups.
  def plan(program, values, {unary, binary, reduce}, allow_reduce) do
    n_in = length(program.params)
    # A node placed on the CPU ({:on, :cpu, _}) runs alone; other placements keep the request.
    nodes =
      program.nodes
      |> Enum.map(fn
        {:on, :cpu, _} -> :cpu
        {:on, _, request} -> request
        node -> node
      end)
      |> List.to_tuple()

    vals = List.to_tuple(values)
    info = fn id -> elem(vals, id - 1) end
    count = tuple_size(nodes)
    outputs = MapSet.new(program.outputs, &elem(&1, 0))
    raw = List.to_tuple(program.nodes)
    ops = fn i -> operands(elem(raw, i)) end
    uses = for(i <- 0..(count - 1), id <- ops.(i), do: id) |> Enum.frequencies()
    uses = Enum.reduce(outputs, uses, &Map.update(&2, &1, 1, fn u -> u + 1 end))
    single = fn id -> Map.get(uses, id, 0) == 1 and not MapSet.member?(outputs, id) end
    shape = fn i -> elem(info.(n_in + i + 1), 1) end
    node_of = fn id -> if id > n_in, do: id - n_in - 1, else: -1 end

    elementwise = fn i ->
      {type, sh} = info.(n_in + i + 1)

      fusible =
        case elem(nodes, i) do
          {:unary, op, _} -> MapSet.member?(unary, op)
          {:binary, op, _, _} -> MapSet.member?(binary, op)
          _ -> false
        end

      fusible and type == {:f, 32} and
        Enum.all?(ops.(i), fn id ->
          {t, s} = info.(id)
          t == {:f, 32} and (s == sh or Enum.product(Tuple.to_list(s)) == 1)
        end)
    end

    group =
      Enum.reduce(0..(count - 1), %{}, fn i, group ->
        if elementwise.(i) do
          group = Map.put(group, i, i)

          Enum.reduce(ops.(i), group, fn id, group ->
            j = node_of.(id)

            if j >= 0 and Map.has_key?(group, j) and single.(id) and shape.(j) == shape.(i) do
              gj = group[j]
              Map.new(group, fn {k, g} -> {k, if(g == gj, do: i, else: g)} end)
            else
              group
            end
          end)
        else
          group
        end
      end)

    # A group topped by a reduction takes no second one (`tops`: the reductions on top).
    reduced =
      if allow_reduce do
        Enum.reduce(0..(count - 1), {group, MapSet.new()}, fn i, {group, tops} ->
          with {:reduce, op, id, axes, _keep} <- elem(nodes, i),
               true <- MapSet.member?(reduce, op) and elem(info.(n_in + i + 1), 0) == {:f, 32},
               j when j >= 0 <- node_of.(id),
               true <- group[j] == j and not MapSet.member?(tops, j) and single.(id),
               true <- trailing?(axes, tuple_size(elem(info.(id), 1))) do
            group = group |> Map.new(fn {k, g} -> {k, if(g == j, do: i, else: g)} end)
            {Map.put(group, i, i), MapSet.put(tops, i)}
          else
            _ -> {group, tops}
          end
        end)
      else
        {group, MapSet.new()}
      end

    {group, tops} = reduced

    groups =
      group
      |> Enum.group_by(&elem(&1, 1), &elem(&1, 0))
      |> Enum.filter(&(length(elem(&1, 1)) >= 2))

    # The kernel each group runs, as the node would write it (its steps and which inputs are
    # scalars; not its length): groups alike share one compiled kernel.
    kernel = fn {root, members} ->
      members = Enum.sort(members)
      top = if MapSet.member?(tops, root), do: root
      chain = members -- [top]
      inside = MapSet.new(members, &(n_in + &1 + 1))
      last = shape.(List.last(chain))

      {refs, scalars} =
        for i <- chain, id <- ops.(i), not MapSet.member?(inside, id), reduce: {%{}, []} do
          {refs, scalars} ->
            if Map.has_key?(refs, id),
              do: {refs, scalars},
              else:
                {Map.put(refs, id, {:in, map_size(refs)}), [elem(info.(id), 1) != last | scalars]}
        end

      steps =
        for i <- chain do
          name = elem(elem(nodes, i), 1)

          {name,
           Enum.map(ops.(i), fn id ->
             Map.get_lazy(refs, id, fn ->
               {:step, Enum.find_index(chain, &(&1 == id - n_in - 1))}
             end)
           end)}
        end

      {Enum.reverse(scalars), steps, top && elem(elem(nodes, top), 1)}
    end

    %{
      nodes: count,
      fused: groups |> Enum.map(&length(elem(&1, 1))) |> Enum.sum(),
      groups: length(groups),
      kernels: groups |> Enum.map(kernel) |> Enum.uniq() |> length()
    }
  end

  defp trailing?(:all, rank), do: rank > 0

  defp trailing?(axes, rank) do
    ax = axes |> Enum.map(&if(&1 < 0, do: &1 + rank, else: &1)) |> Enum.uniq() |> Enum.sort()
    ax != [] and List.last(ax) == rank - 1 and length(ax) == rank - hd(ax)
  end

  # Value ids a node reads (a placement wrapper reads what its request reads). Creation nodes
  # read none; in the others, value ids are the bare positive integers in argument position
  # (shapes, axes and permutations are tuples or lists; scalars of `full` are its last field).
  defp operands({:on, _, request}), do: operands(request)

  defp operands(node) when elem(node, 0) in [:full, :iota, :eye, :random_uniform, :random_normal],
    do: []

  defp operands(node), do: node |> Tuple.to_list() |> tl() |> Enum.flat_map(&ids/1)

  defp ids(x) when is_integer(x) and x > 0, do: [x]
  defp ids(_), do: []
end
