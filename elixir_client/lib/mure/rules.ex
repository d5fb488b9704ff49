defmodule Mure.Rules do
  @moduledoc false
  # The op set's type and shape rules, in Elixir: a mirror of the node's src/ir/ops.cpp and
  # src/sched/planner.cpp, so that Mure.Expr can check a whole program while it is traced and
  # raise before anything is sent. Every function returns {:ok, result} or {:error, message};
  # the messages follow the node's wording.
  #
  # The op names and the elementwise ops' type classes are not mirrored: they are read from the
  # node's op table below. The rest must be kept in step with the node: the JIT compares the type
  # and shape of every program output the node reports with what these rules predicted, and fails
  # loudly on a mismatch (test/mure_op_table_test.exs checks names and type classes directly).

  import Bitwise

  @max_dims 16

  # The op names and their type-rule classes come from the node's own op table, read at compile
  # time: a row added there is an op here, with no second list to forget. Each row starts
  # `MURE_UNARY(Id, "name", Rule, ...`; the classes are explained in the table's header.
  @op_table Path.expand("../../../src/ir/ops.def", __DIR__)
  @external_resource @op_table

  @op_rows (for [_, family, id, name, rule] <-
                  Regex.scan(
                    ~r/^MURE_(UNARY|BINARY|REDUCE)\((\w+), "(\w+)", (\w+)/m,
                    File.read!(@op_table)
                  ) do
              {String.to_atom(String.downcase(family)), String.to_atom(name), rule, id}
            end)

  # The complex table's rows (`MURE_COMPLEX_UNARY(Id, Rule, ...`, `MURE_COMPLEX_BINARY(Id, ...`,
  # `MURE_COMPLEX_REDUCE(Id, ...`): the ops that take {:c, 64} and {:c, 128}, by the Id of
  # their row above.
  @names_by_id Map.new(for {family, name, _, id} <- @op_rows, do: {{family, id}, name})
  @complex_rows (for [_, family, id, rest] <-
                       Regex.scan(
                         ~r/^MURE_COMPLEX_(UNARY|BINARY|REDUCE)\((\w+), ([^,\n]*)/m,
                         File.read!(@op_table)
                       ) do
                   family = String.to_atom(String.downcase(family))
                   {family, Map.fetch!(@names_by_id, {family, id}), rest}
                 end)
  @complex_unary Map.new(for {:unary, name, rule} <- @complex_rows, do: {name, rule})
  @complex_binary for {:binary, name, _} <- @complex_rows, do: name
  @complex_reduce for {:reduce, name, _} <- @complex_rows, do: name

  @unary_ops for {:unary, name, _, _} <- @op_rows, do: name
  @binary_ops for {:binary, name, _, _} <- @op_rows, do: name
  @reductions for {:reduce, name, _, _} <- @op_rows, do: name
  @unary_rules Map.new(for {:unary, name, rule, _} <- @op_rows, do: {name, rule})
  @binary_rules Map.new(for {:binary, name, rule, _} <- @op_rows, do: {name, rule})
  @reduce_rules Map.new(for {:reduce, name, rule, _} <- @op_rows, do: {name, rule})

  @spec unary_ops() :: [atom()]
  def unary_ops, do: @unary_ops
  @spec binary_ops() :: [atom()]
  def binary_ops, do: @binary_ops
  @spec reductions() :: [atom()]
  def reductions, do: @reductions

  @doc false
  # A node's op families (its :hello) against these rules: `:same`, or what differs, for a
  # warning at connect (a client built from another tree than the node's).
  @spec compare_families(map()) :: :same | :unknown | {:differs, String.t()}
  def compare_families(%{op_families: %{unary: u, binary: b, reduce: r}})
      when is_list(u) and is_list(b) and is_list(r) do
    mine = %{unary: @unary_ops, binary: @binary_ops, reduce: @reductions}
    theirs = %{unary: u, binary: b, reduce: r}

    diffs =
      for family <- [:unary, :binary, :reduce],
          node_only = theirs[family] -- mine[family],
          client_only = mine[family] -- theirs[family],
          node_only != [] or client_only != [] do
        parts =
          for {names, what} <- [
                {client_only, "the node lacks "},
                {node_only, "this client does not know "}
              ],
              names != [],
              do: what <> Enum.join(names, ", ")

        "#{family}: " <> Enum.join(parts, "; ")
      end

    if diffs == [], do: :same, else: {:differs, Enum.join(diffs, "; ")}
  end

  def compare_families(_hello), do: :unknown

  ## Types

  @spec float?(Mure.type()) :: boolean()
  def float?({:f, _}), do: true
  def float?({:bf, 16}), do: true
  def float?(_), do: false

  @spec complex?(Mure.type()) :: boolean()
  def complex?({:c, _}), do: true
  def complex?(_), do: false

  @doc false
  # Nx.Type.to_complex: {:f, 64} -> {:c, 128}, complex stays, the rest -> {:c, 64}.
  @spec to_complex(Mure.type()) :: Mure.type()
  def to_complex({:c, _} = t), do: t
  def to_complex({:f, 64}), do: {:c, 128}
  def to_complex(_), do: {:c, 64}

  @doc false
  # The type of a complex type's parts ({:c, 64} -> {:f, 32}).
  @spec real_part(Mure.type()) :: Mure.type()
  def real_part({:c, bits}), do: {:f, div(bits, 2)}
  def real_part(t), do: t

  @spec signed?(Mure.type()) :: boolean()
  def signed?({:s, _}), do: true
  def signed?(_), do: false

  @doc false
  # Nx.Type.merge.
  @spec merge_types(Mure.type(), Mure.type()) :: Mure.type()
  def merge_types(t, t), do: t

  def merge_types({_, ba} = a, {_, bb} = b) do
    cond do
      # The complex class wins over every real one ({:c, 64} with {:f, 64} stays {:c, 64}).
      complex?(a) and complex?(b) ->
        {:c, max(ba, bb)}

      complex?(a) ->
        a

      complex?(b) ->
        b

      float?(a) and float?(b) ->
        cond do
          a == {:bf, 16} or b == {:bf, 16} ->
            other = if a == {:bf, 16}, do: b, else: a
            if elem(other, 1) > 16, do: other, else: {:f, 32}

          ba >= bb ->
            a

          true ->
            b
        end

      float?(a) ->
        a

      float?(b) ->
        b

      signed?(a) == signed?(b) ->
        if ba >= bb, do: a, else: b

      true ->
        {s, u} = if signed?(a), do: {ba, bb}, else: {bb, ba}
        {:s, max(s, min(2 * u, 64))}
    end
  end

  @spec to_floating(Mure.type()) :: Mure.type()
  def to_floating(t), do: if(float?(t) or complex?(t), do: t, else: {:f, 32})

  ## Elementwise

  @spec unary_type(atom(), Mure.type()) :: {:ok, Mure.type()} | {:error, String.t()}
  def unary_type(op, {:c, _} = t) do
    case Map.get(@complex_unary, op) do
      "Same" -> {:ok, t}
      "Real" -> {:ok, real_part(t)}
      "Predicate" -> {:ok, {:u, 8}}
      nil -> {:error, "#{op} is not defined on complex tensors, got #{inspect(t)}"}
    end
  end

  def unary_type(op, t) do
    case Map.get(@unary_rules, op, "Floating") do
      "Complex" ->
        {:ok, to_complex(t)}

      "ComplexPart" ->
        {:error, "#{op} takes complex tensors ({:c, 64} or {:c, 128}), got #{inspect(t)}"}

      "Same" ->
        {:ok, t}

      "Predicate" ->
        {:ok, {:u, 8}}

      "IntegerOnly" ->
        if float?(t),
          do: {:error, "#{op} takes integer tensors, got #{inspect(t)}"},
          else: {:ok, t}

      "Floating" ->
        {:ok, to_floating(t)}
    end
  end

  @spec binary_type(atom(), Mure.type(), Mure.type()) :: {:ok, Mure.type()} | {:error, String.t()}
  def binary_type(op, a, b) do
    m = merge_types(a, b)

    if complex?(m) and op not in @complex_binary do
      {:error, "#{op} is not defined on complex tensors, got #{inspect(a)} and #{inspect(b)}"}
    else
      binary_rule(op, a, b, m)
    end
  end

  defp binary_rule(op, a, b, m) do
    case Map.get(@binary_rules, op, "Merge") do
      "Floating" ->
        {:ok, to_floating(m)}

      "Compare" ->
        {:ok, {:u, 8}}

      "IntegerOnly" ->
        if float?(m),
          do: {:error, "#{op} takes integer tensors, got #{inspect(a)} and #{inspect(b)}"},
          else: {:ok, m}

      "Merge" ->
        {:ok, m}
    end
  end

  @doc false
  # Nx's broadcasting: align from the right; each pair of dims equal, or one of them 1.
  @spec broadcast_shapes(Mure.shape(), Mure.shape()) :: {:ok, Mure.shape()} | {:error, String.t()}
  def broadcast_shapes(a, b) do
    rank = max(tuple_size(a), tuple_size(b))
    pa = pad_left(a, rank)
    pb = pad_left(b, rank)

    Enum.zip(pa, pb)
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, []}, fn {{da, db}, i}, {:ok, acc} ->
      if da != db and da != 1 and db != 1 do
        {:halt,
         {:error,
          "shapes #{inspect(a)} and #{inspect(b)} cannot be broadcast together " <>
            "(dimension #{i}: #{da} vs #{db})"}}
      else
        {:cont, {:ok, [if(da == 1, do: db, else: da) | acc]}}
      end
    end)
    |> case do
      {:ok, dims} -> {:ok, dims |> Enum.reverse() |> List.to_tuple()}
      error -> error
    end
  end

  defp pad_left(shape, rank),
    do: List.duplicate(1, rank - tuple_size(shape)) ++ Tuple.to_list(shape)

  ## Axes

  @doc false
  # Normalises an axis (negative counts from the end) of a rank-`rank` tensor.
  @spec axis(integer(), non_neg_integer(), String.t()) ::
          {:ok, non_neg_integer()} | {:error, String.t()}
  def axis(axis, rank, what) when is_integer(axis) do
    if axis < -rank or axis >= rank,
      do: {:error, "#{what} #{axis} is not an axis of a rank-#{rank} tensor"},
      else: {:ok, if(axis < 0, do: axis + rank, else: axis)}
  end

  def axis(other, _rank, what), do: {:error, "#{what} must be an integer, got: #{inspect(other)}"}

  defp axes(list, rank, what, allow_repeats \\ false)

  defp axes(list, rank, what, allow_repeats) when is_list(list) do
    Enum.reduce_while(list, {:ok, []}, fn a, {:ok, acc} ->
      case axis(a, rank, what) do
        {:ok, n} ->
          if not allow_repeats and n in acc,
            do: {:halt, {:error, "#{what} #{n} is given twice"}},
            else: {:cont, {:ok, [n | acc]}}

        error ->
          {:halt, error}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  defp axes(other, _rank, what, _),
    do: {:error, "#{what}s must be a list of integers, got: #{inspect(other)}"}

  ## Reductions

  @spec reduce(atom(), Mure.type(), Mure.shape(), [integer()] | :all, boolean()) ::
          {:ok, {Mure.type(), Mure.shape()}} | {:error, String.t()}
  def reduce(op, type, shape, axes, keep_axes) do
    rank = tuple_size(shape)
    axes = if axes == :all, do: Enum.to_list(0..(rank - 1)//1), else: axes

    with :ok <- check_complex_reduce(op, type),
         {:ok, axes} <- axes(axes, rank, "reduction axis"),
         :ok <- check_arg_reduce(op, shape, axes) do
      dims =
        for {d, i} <- Enum.with_index(Tuple.to_list(shape)),
            not (i in axes and not keep_axes),
            do: if(i in axes, do: 1, else: d)

      out_type =
        case Map.fetch!(@reduce_rules, op) do
          "Widen" ->
            cond do
              float?(type) or complex?(type) -> type
              signed?(type) -> {:s, 64}
              true -> {:u, 64}
            end

          "Same" ->
            type

          "Predicate" ->
            {:u, 8}

          "Index" ->
            {:s, 64}
        end

      {:ok, {out_type, List.to_tuple(dims)}}
    end
  end

  defp check_complex_reduce(op, {:c, _} = type) do
    if op in @complex_reduce,
      do: :ok,
      else: {:error, "#{op} is not defined on complex tensors, got #{inspect(type)}"}
  end

  defp check_complex_reduce(_op, _type), do: :ok

  defp check_arg_reduce(op, shape, axes) do
    cond do
      Map.get(@reduce_rules, op) != "Index" ->
        :ok

      length(axes) > 1 and length(axes) != tuple_size(shape) ->
        {:error, "#{op} takes one axis, or all of them"}

      Enum.any?(axes, &(elem(shape, &1) == 0)) ->
        {:error, "#{op} of an empty axis has no answer"}

      true ->
        :ok
    end
  end

  ## Shapes

  @spec reshape(Mure.shape(), Mure.shape()) :: :ok | {:error, String.t()}
  def reshape(in_shape, out_shape) do
    a = Mure.Types.size(in_shape)
    b = Mure.Types.size(out_shape)

    if a == b,
      do: :ok,
      else:
        {:error,
         "cannot reshape #{inspect(in_shape)} (#{a} elements) to #{inspect(out_shape)} (#{b} elements)"}
  end

  @spec transpose(Mure.shape(), [integer()]) :: {:ok, Mure.shape()} | {:error, String.t()}
  def transpose(shape, perm) do
    rank = tuple_size(shape)

    cond do
      not is_list(perm) ->
        {:error, "transpose axes must be a list of integers, got: #{inspect(perm)}"}

      length(perm) != rank ->
        {:error, "transpose of a rank-#{rank} tensor needs #{rank} axes, got #{length(perm)}"}

      true ->
        with {:ok, perm} <- axes(perm, rank, "transpose axis", true) do
          case perm -- Enum.uniq(perm) do
            [] -> {:ok, perm |> Enum.map(&elem(shape, &1)) |> List.to_tuple()}
            [n | _] -> {:error, "transpose axes must be a permutation; #{n} repeats"}
          end
        end
    end
  end

  @spec slice(Mure.shape(), [integer()], [integer()], [integer()]) ::
          {:ok, Mure.shape()} | {:error, String.t()}
  def slice(shape, starts, lengths, strides) do
    rank = tuple_size(shape)

    if length(starts) != rank or length(lengths) != rank or length(strides) != rank do
      {:error,
       "slice of a rank-#{rank} tensor needs #{rank} starts, lengths and strides; got " <>
         "#{length(starts)}, #{length(lengths)} and #{length(strides)}"}
    else
      [Tuple.to_list(shape), starts, lengths, strides]
      |> Enum.zip()
      |> Enum.with_index()
      |> Enum.reduce_while({:ok, []}, fn {{dim, start, len, stride}, i}, {:ok, acc} ->
        cond do
          stride < 1 ->
            {:halt, {:error, "slice stride #{i} must be at least 1"}}

          start < 0 or len < 0 ->
            {:halt, {:error, "slice start and length of dimension #{i} must be non-negative"}}

          start + len > dim ->
            {:halt,
             {:error,
              "slice of dimension #{i} (size #{dim}) from #{start} with length #{len} " <>
                "runs past its end"}}

          true ->
            # As Nx: the length is the span of the input; every stride-th element of it is kept.
            {:cont, {:ok, [div(len + stride - 1, stride) | acc]}}
        end
      end)
      |> case do
        {:ok, dims} -> {:ok, dims |> Enum.reverse() |> List.to_tuple()}
        error -> error
      end
    end
  end

  @spec take(Mure.shape(), Mure.type(), Mure.shape(), integer()) ::
          {:ok, Mure.shape()} | {:error, String.t()}
  def take(shape, index_type, indices_shape, axis) do
    with :ok <- integer_indices("take", index_type),
         {:ok, ax} <- axis(axis, tuple_size(shape), "take axis") do
      dims = Tuple.to_list(shape)

      out = Enum.take(dims, ax) ++ Tuple.to_list(indices_shape) ++ Enum.drop(dims, ax + 1)

      if length(out) > @max_dims,
        do: {:error, "take's result would have more than 16 dimensions"},
        else: {:ok, List.to_tuple(out)}
    end
  end

  defp integer_indices(op, type) do
    if float?(type) or complex?(type),
      do: {:error, "#{op}'s indices must be integers, got #{inspect(type)}"},
      else: :ok
  end

  @spec gather(Mure.shape(), Mure.type(), Mure.shape()) ::
          {:ok, Mure.shape()} | {:error, String.t()}
  def gather(shape, index_type, indices_shape) do
    with :ok <- integer_indices("gather", index_type) do
      rank = tuple_size(shape)
      n = tuple_size(indices_shape)

      if n == 0 or elem(indices_shape, n - 1) != rank do
        {:error,
         "gather's indices #{inspect(indices_shape)} must end in a dimension of #{rank} " <>
           "(one coordinate per axis of the tensor)"}
      else
        {:ok, Tuple.delete_at(indices_shape, n - 1)}
      end
    end
  end

  @spec broadcast_to(Mure.shape(), Mure.shape(), [integer()]) :: :ok | {:error, String.t()}
  def broadcast_to(in_shape, out_shape, axes) do
    rank = tuple_size(in_shape)
    out_rank = tuple_size(out_shape)

    if length(axes) != rank do
      {:error, "broadcast of a rank-#{rank} tensor needs #{rank} axes, got #{length(axes)}"}
    else
      axes
      |> Enum.with_index()
      |> Enum.reduce_while(-1, fn {a, i}, prev ->
        case axis(a, out_rank, "broadcast axis") do
          {:ok, ax} when ax <= prev ->
            {:halt, {:error, "broadcast axes must be strictly increasing"}}

          {:ok, ax} ->
            d = elem(in_shape, i)

            if d != 1 and d != elem(out_shape, ax) do
              {:halt,
               {:error,
                "cannot broadcast #{inspect(in_shape)} to #{inspect(out_shape)}: dimension #{i} " <>
                  "(#{d}) is neither 1 nor #{elem(out_shape, ax)}"}}
            else
              {:cont, ax}
            end

          error ->
            {:halt, error}
        end
      end)
      |> case do
        {:error, _} = error -> error
        _ -> :ok
      end
    end
  end

  @spec reverse(Mure.shape(), [integer()]) :: {:ok, [non_neg_integer()]} | {:error, String.t()}
  def reverse(shape, axes_list), do: axes(axes_list, tuple_size(shape), "reverse axis")

  @spec pad(Mure.shape(), [{integer(), integer(), integer()}]) ::
          {:ok, Mure.shape()} | {:error, String.t()}
  def pad(shape, config) do
    rank = tuple_size(shape)

    if length(config) != rank do
      {:error,
       "pad of a rank-#{rank} tensor needs #{rank} {low, high, interior} entries, got #{length(config)}"}
    else
      limit = 1 <<< 48

      config
      |> Enum.with_index()
      |> Enum.reduce_while({:ok, []}, fn {{lo, hi, interior}, i}, {:ok, acc} ->
        d = elem(shape, i)

        cond do
          interior < 0 ->
            {:halt, {:error, "pad interior of dimension #{i} must be >= 0"}}

          abs(lo) > limit or abs(hi) > limit or interior > limit or d > limit ->
            {:halt, {:error, "pad sizes of dimension #{i} are too large"}}

          true ->
            size = lo + hi + d + if(d > 0, do: (d - 1) * interior, else: 0)

            if size < 0,
              do: {:halt, {:error, "pad of dimension #{i} crops more than its #{d} elements"}},
              else: {:cont, {:ok, [size | acc]}}
        end
      end)
      |> case do
        {:ok, dims} -> {:ok, dims |> Enum.reverse() |> List.to_tuple()}
        error -> error
      end
    end
  end

  @doc false
  # concatenate (stack: false) or stack (stack: true) of shapes along axis.
  @spec join([Mure.shape()], integer(), boolean()) :: {:ok, Mure.shape()} | {:error, String.t()}
  def join([first | _] = shapes, axis, stack?) do
    op = if stack?, do: "stack", else: "concatenate"
    rank = tuple_size(first) + if(stack?, do: 1, else: 0)

    with {:ok, ax} <- axis(axis, rank, "axis"),
         {:ok, shapes} <- stack_shapes(shapes, ax, rank, stack?) do
      [s0 | _] = shapes

      shapes
      |> Enum.with_index()
      |> Enum.reduce_while({:ok, 0}, fn {s, t}, {:ok, total} ->
        cond do
          tuple_size(s) != tuple_size(s0) ->
            {:halt,
             {:error,
              "#{op}: tensor #{t} has rank #{tuple_size(s)}, the first has #{tuple_size(s0)}"}}

          Enum.any?(0..(tuple_size(s) - 1)//1, &(&1 != ax and elem(s, &1) != elem(s0, &1))) ->
            {:halt,
             {:error,
              "#{op}: tensor #{t} has shape #{inspect(s)}, which differs from #{inspect(s0)} " <>
                "outside axis #{ax}"}}

          true ->
            {:cont, {:ok, total + elem(s, ax)}}
        end
      end)
      |> case do
        {:ok, total} -> {:ok, put_elem(s0, ax, total)}
        error -> error
      end
    end
  end

  defp stack_shapes(shapes, _ax, _rank, false), do: {:ok, shapes}

  defp stack_shapes(shapes, ax, rank, true) do
    case Enum.find(shapes, &(tuple_size(&1) + 1 != rank)) do
      nil ->
        {:ok, Enum.map(shapes, &Tuple.insert_at(&1, ax, 1))}

      s ->
        {:error, "stack needs tensors of one rank; got #{tuple_size(s)} and #{rank - 1}"}
    end
  end

  @spec put_slice(Mure.shape(), [integer()], Mure.shape()) :: :ok | {:error, String.t()}
  def put_slice(shape, starts, update) do
    rank = tuple_size(shape)

    if length(starts) != rank or tuple_size(update) != rank do
      {:error,
       "put_slice of a rank-#{rank} tensor needs #{rank} starts and an update of the same rank"}
    else
      starts
      |> Enum.with_index()
      |> Enum.find_value(:ok, fn {s, i} ->
        d = elem(shape, i)
        u = elem(update, i)

        if s < 0 or u > d or s > d - u,
          do:
            {:error,
             "put_slice: an update of #{u} elements at #{s} does not fit in dimension #{i} (size #{d})"}
      end)
    end
  end

  @spec dot(Mure.shape(), [integer()], [integer()], Mure.shape(), [integer()], [integer()]) ::
          {:ok, Mure.shape()} | {:error, String.t()}
  def dot(a, ca, ba, b, cb, bb) do
    with {:ok, ca} <- axes(ca, tuple_size(a), "contraction axis of a"),
         {:ok, ba} <- axes(ba, tuple_size(a), "batch axis of a"),
         {:ok, cb} <- axes(cb, tuple_size(b), "contraction axis of b"),
         {:ok, bb} <- axes(bb, tuple_size(b), "batch axis of b"),
         :ok <- same_count(ca, cb, ba, bb),
         :ok <- pairs_equal(a, ca, b, cb, "contraction"),
         :ok <- pairs_equal(a, ba, b, bb, "batch"),
         :ok <- disjoint(ca, ba, "a"),
         :ok <- disjoint(cb, bb, "b") do
      batch = Enum.map(ba, &elem(a, &1))
      free_a = for d <- 0..(tuple_size(a) - 1)//1, d not in ca and d not in ba, do: elem(a, d)
      free_b = for d <- 0..(tuple_size(b) - 1)//1, d not in cb and d not in bb, do: elem(b, d)
      out = batch ++ free_a ++ free_b

      if length(out) > @max_dims,
        do: {:error, "dot's result would have more than 16 dims"},
        else: {:ok, List.to_tuple(out)}
    end
  end

  defp same_count(ca, cb, ba, bb) do
    if length(ca) != length(cb) or length(ba) != length(bb),
      do: {:error, "dot needs as many contraction (and batch) axes on a as on b"},
      else: :ok
  end

  defp pairs_equal(a, axa, b, axb, what) do
    Enum.zip(axa, axb)
    |> Enum.find_value(:ok, fn {x, y} ->
      if elem(a, x) != elem(b, y),
        do: {:error, "#{what} axis #{x} of #{inspect(a)} and axis #{y} of #{inspect(b)} differ"}
    end)
  end

  defp disjoint(contract, batch, which) do
    if Enum.any?(contract, &(&1 in batch)),
      do: {:error, "an axis of #{which} is both a contraction and a batch axis"},
      else: :ok
  end

  @spec fft(atom(), Mure.type(), Mure.shape(), term()) ::
          {:ok, {Mure.type(), Mure.shape()}} | {:error, String.t()}
  def fft(op, type, shape, length) do
    cond do
      tuple_size(shape) == 0 ->
        {:error, "#{op} needs a tensor of rank 1 or more (it runs over the last axis)"}

      not is_integer(length) or length < 1 or length > 2_147_483_647 ->
        {:error,
         "#{op}'s length must be between 1 and 2^31-1 (FFTW's limit), got #{inspect(length)}"}

      true ->
        {:ok, {to_complex(type), put_elem(shape, tuple_size(shape) - 1, length)}}
    end
  end

  @spec outer(Mure.shape(), Mure.shape()) :: {:ok, Mure.shape()} | {:error, String.t()}
  def outer(a, b) do
    out = Tuple.to_list(a) ++ Tuple.to_list(b)

    if length(out) > @max_dims,
      do: {:error, "outer's result would have more than 16 dims"},
      else: {:ok, List.to_tuple(out)}
  end
end
