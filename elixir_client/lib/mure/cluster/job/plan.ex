defmodule Mure.Cluster.Job.Plan do
  @moduledoc false
  # The plan of a Mure.Cluster.Job, made in the caller before anything is sent: the
  # arguments checked and split by rows, the program traced for one and two rows, how the
  # pieces' results combine, each member's expected time per row and the job's pieces.

  alias Mure.Types
  alias Mure.Cluster.Shared

  @target_piece_ms 150
  @max_piece_bytes 4 * 1024 * 1024
  @combinable [:sum, :product, :max, :min]

  def plan!(jit, args, spec, opts) do
    {split, rows} = split_args!(args)

    sig = fn r ->
      Enum.map(args, fn
        {_bin, type, shape} -> {type, put_elem(shape, 0, r)}
        %Shared{type: type, shape: shape} -> {type, shape}
      end)
    end

    p1 = Mure.trace(jit, sig.(1))
    p2 = Mure.trace(jit, sig.(2))

    case {p1.outputs, p2.outputs, p1.result} do
      {[{_, type, shape1}], [{_, _, shape2}], {:"$mure_output", _}} ->
        combine = combine!(opts[:combine], jit, args, shape1, shape2)

        out_row =
          if combine == :concat,
            do: div(Types.size(shape1) * Types.itemsize(type), 1),
            else: 0

        in_row = split |> Enum.map(fn {_i, row_bytes} -> row_bytes end) |> Enum.sum()

        %{
          # Jobs of the same program on rows of the same shape share what members learn.
          key: :erlang.phash2({spec.kind, jit.fun, sig.(1)}),
          jit: jit,
          args: args,
          split: Map.new(split),
          rows: rows,
          combine: combine,
          out_type: type,
          out_shape: shape1,
          in_row: in_row,
          out_row: out_row,
          kind: spec.kind,
          work_row:
            if(spec.kind == :gemm, do: spec.flops_per_row, else: in_row + max(out_row, 0)),
          device: opts[:device],
          balance: opts[:balance],
          piece_rows: opts[:piece_rows]
        }

      _ ->
        raise ArgumentError,
              "Mure.Cluster.run: the function must return a single tensor expression " <>
                "(got #{length(p1.outputs)} outputs)"
    end
  end

  defp split_args!(args) do
    indexed =
      args
      |> Enum.with_index()
      |> Enum.map(fn
        {{bin, type, shape}, i} when is_binary(bin) ->
          Types.check_type!(type, "Mure.Cluster.run")
          Types.check_shape!(shape, "Mure.Cluster.run")

          if tuple_size(shape) == 0,
            do:
              raise(
                ArgumentError,
                "Mure.Cluster.run: argument #{i + 1} is a scalar: data arguments are split along " <>
                  "axis 0; share a scalar with Mure.Cluster.share/3"
              )

          expected = Types.size(shape) * Types.itemsize(type)

          if byte_size(bin) != expected,
            do:
              raise(
                ArgumentError,
                "Mure.Cluster.run: argument #{i + 1} has #{byte_size(bin)} bytes, " <>
                  "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} needs #{expected}"
              )

          {:split, i, elem(shape, 0),
           if(elem(shape, 0) == 0, do: 0, else: div(expected, elem(shape, 0)))}

        {%Shared{}, _i} ->
          :shared

        {%Mure.Tensor{}, i} ->
          raise ArgumentError,
                "Mure.Cluster.run: argument #{i + 1} is a tensor resident on one node; a cluster " <>
                  "job takes {binary, type, shape} data (split by rows) or Mure.Cluster.Shared " <>
                  "tensors (see Mure.Cluster.share/3)"

        {other, i} ->
          raise ArgumentError,
                "Mure.Cluster.run: argument #{i + 1}: expected {binary, type, shape} or a " <>
                  "Mure.Cluster.Shared, got: #{inspect(other, limit: 5)}"
      end)

    splits = for {:split, i, rows, row_bytes} <- indexed, do: {i, rows, row_bytes}

    case Enum.uniq_by(splits, &elem(&1, 1)) do
      [] ->
        raise ArgumentError,
              "Mure.Cluster.run: no argument to split: give at least one {binary, type, shape}"

      [{_, 0, _}] ->
        raise ArgumentError, "Mure.Cluster.run: the split arguments have no rows (axis 0 is 0)"

      [{_, rows, _}] ->
        {Enum.map(splits, fn {i, _, rb} -> {i, rb} end), rows}

      _ ->
        raise ArgumentError,
              "Mure.Cluster.run: the split arguments differ in axis 0: " <>
                inspect(Enum.map(splits, &elem(&1, 1)))
    end
  end

  # How partial results come together: :concat (rows in order) or an elementwise op. :auto
  # reads it off the program (Mure.Cluster.Split), and refuses what pieces cannot compute;
  # an explicit choice is the caller's word that the program keeps rows apart.
  defp combine!(:auto, jit, args, _shape1, _shape2) do
    case Mure.Cluster.Split.combine(jit, args) do
      {:ok, combine} ->
        combine

      {:error, why} ->
        raise ArgumentError,
              "Mure.Cluster.run: cannot split this function across members: #{why}; " <>
                "give combine: :concat | :sum | :product | :max | :min if its pieces do combine"
    end
  end

  defp combine!(:concat, _jit, _args, shape1, shape2) do
    if tuple_size(shape1) > 0 and elem(shape1, 0) == 1 and elem(shape2, 0) == 2 and
         Tuple.delete_at(shape1, 0) == Tuple.delete_at(shape2, 0),
       do: :concat,
       else:
         raise(
           ArgumentError,
           "Mure.Cluster.run: combine: :concat needs an output with one row per input row"
         )
  end

  defp combine!(op, _jit, _args, shape1, shape2) when op in @combinable do
    if shape1 == shape2,
      do: op,
      else:
        raise(
          ArgumentError,
          "Mure.Cluster.run: combine: #{inspect(op)} needs an output whose shape does not " <>
            "depend on the rows (a reduction over axis 0)"
        )
  end

  # A member's time per row: what earlier jobs of this program took on it, else the estimate
  # from its measured speeds.
  def new_member(%{node: node, member: pid, conn: conn, speeds: speeds} = member, plan) do
    learned = get_in(member, [:learned, plan.key])

    %{
      node: node,
      pid: pid,
      conn: conn,
      speeds: speeds,
      row_time: learned || row_time(speeds, plan),
      excluded: nil,
      cooldown_until: nil,
      inflight: 0,
      slack: 1,
      pieces: 0,
      rows: 0,
      intervals: []
    }
  end

  # Seconds per row on this member: the link (in and out) and the compute overlap, so the
  # slower of the two sets the pace.
  def row_time(nil, _plan), do: 1.0e-3

  def row_time(speeds, plan) do
    link = plan.in_row / speeds.upload_bytes_s + plan.out_row / speeds.download_bytes_s

    compute =
      case plan.kind do
        :gemm -> plan.work_row / speeds.gemm_flops_s
        :map -> plan.work_row / speeds.elementwise_bytes_s
      end

    max(max(link, compute), 1.0e-9)
  end

  def pieces(plan, members) do
    members = Enum.sort_by(members, & &1.node)

    weights =
      case plan.balance do
        :equal -> Enum.map(members, fn _ -> 1.0 end)
        :speed -> Enum.map(members, &(1.0 / &1.row_time))
      end

    shares = apportion(plan.rows, weights)

    {pieces, _start} =
      members
      |> Enum.zip(shares)
      |> Enum.flat_map_reduce(0, fn {m, share}, start ->
        size = piece_rows(plan, m, share)

        ps =
          Stream.unfold({start, share}, fn
            {_, 0} -> nil
            {s, left} -> {{s, min(size, left)}, {s + min(size, left), left - min(size, left)}}
          end)
          |> Enum.map(fn {s, n} -> %{start: s, rows: n, owner: m.node} end)

        {ps, start + share}
      end)

    pieces |> Enum.with_index() |> Enum.map(fn {p, i} -> Map.put(p, :id, i) end)
  end

  defp piece_rows(_plan, _m, 0), do: 1

  defp piece_rows(plan, m, share) do
    by_time = trunc(@target_piece_ms / 1000 / m.row_time)
    by_bytes = if plan.in_row > 0, do: div(@max_piece_bytes, plan.in_row), else: share
    two = div(share + 1, 2)
    (plan.piece_rows || Enum.min([by_time, by_bytes, two])) |> max(1) |> min(share)
  end

  # Splits `total` in proportion to `weights` (largest remainders).
  def apportion(total, weights) do
    sum = Enum.sum(weights)
    exact = Enum.map(weights, &(total * &1 / sum))
    floors = Enum.map(exact, &trunc/1)
    left = total - Enum.sum(floors)

    extra =
      exact
      |> Enum.with_index()
      |> Enum.sort_by(fn {x, i} -> {-(x - trunc(x)), i} end)
      |> Enum.take(left)
      |> MapSet.new(fn {_, i} -> i end)

    floors |> Enum.with_index() |> Enum.map(fn {f, i} -> if i in extra, do: f + 1, else: f end)
  end
end
