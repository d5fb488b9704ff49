defmodule Mure.Backend.Optional do
  @moduledoc false
  # Optional Nx.Backend callbacks that Nx would otherwise compose of several eager ops (a
  # round trip each): here each is one program, built of node ops.
  #
  #   * all_close: Nx's own rule (|a - b| <= atol + rtol * |b|, infinities equal only to
  #     themselves, NaN equal to NaN with equal_nan: true), reduced with all on the node;
  #   * top_k: the k largest along the last axis, values and indices from one program (a
  #     stable descending sort and argsort agree on ties and NaN, as Nx's argsort +
  #     take_along_axis does).

  alias Mure.Backend
  alias Mure.Expr

  def all_close(out, a, b, opts) do
    Backend.serve(:all_close, out, [a, b], [out, a, b, opts], fn [x, y] ->
      # |a - b| and |b| are real (of a complex type: its parts' type).
      float =
        case Nx.Type.to_floating(y.type) do
          {:c, bits} -> {:f, div(bits, 2)}
          type -> type
        end

      scalar = &Expr.full(&1, {}, type: float)

      bound =
        Expr.binary(
          :add,
          scalar.(opts[:atol]),
          Expr.binary(:multiply, scalar.(opts[:rtol]), Expr.unary(:abs, y))
        )

      finite = Expr.binary(:less_equal, Expr.unary(:abs, Expr.binary(:subtract, x, y)), bound)

      entries =
        if Nx.Type.integer?(x.type) and Nx.Type.integer?(y.type) do
          finite
        else
          inf = Expr.binary(:logical_or, Expr.unary(:is_infinity, x), Expr.unary(:is_infinity, y))
          entries = Expr.select(inf, Expr.binary(:equal, x, y), finite)

          if opts[:equal_nan] do
            nan = Expr.binary(:logical_and, Expr.unary(:is_nan, x), Expr.unary(:is_nan, y))
            Expr.select(nan, Expr.full(1, {}, type: {:u, 8}), entries)
          else
            entries
          end
        end

      Expr.reduce(:all, entries)
    end)
  end

  def top_k({values, indices} = out, t, opts) do
    k = Keyword.fetch!(opts, :k)
    axis = tuple_size(t.shape) - 1
    starts = List.duplicate(0, axis + 1)
    lengths = t.shape |> put_elem(axis, k) |> Tuple.to_list()

    Backend.serve_many(:top_k, [values, indices], [t], [out, t, opts], fn [x] ->
      sorted = Expr.sort(x, axis: axis, direction: :desc)
      order = Expr.argsort(x, axis: axis, direction: :desc)
      [Expr.slice(sorted, starts, lengths), Expr.slice(order, starts, lengths)]
    end)
  end
end
