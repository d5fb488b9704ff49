defmodule Mure.Backend.Composite do
  @moduledoc false
  # Mure.Backend's callbacks that the node has no op of its own for but runs all the same:
  # composed from its ops (Mure.Backend.Compose: argmax/argmin with tie_break: :high,
  # take_along_axis, window sums/products/maxima/minima, conv), or with an Elixir function
  # traced into its ops (Mure.Backend.Trace: map, reduce). Each runs as one program; what
  # cannot be composed falls back (Mure.Backend.Fallback) with the reason.

  alias Mure.Backend
  alias Mure.Backend.{Compose, Trace}
  alias Mure.Expr

  for op <- [:argmax, :argmin] do
    def unquote(op)(out, t, opts) do
      Backend.serve(unquote(op), out, [t], [out, t, opts], fn [x] ->
        Compose.arg_reduce(unquote(op), x, opts)
      end)
    end
  end

  def take_along_axis(out, t, indices, axis) do
    Backend.serve(:take_along_axis, out, [t, indices], [out, t, indices, axis], fn [x, i] ->
      Compose.take_along_axis(x, i, axis)
    end)
  end

  for {name, op} <- [
        window_sum: :add,
        window_product: :multiply,
        window_max: :max,
        window_min: :min
      ] do
    def unquote(name)(out, t, window, opts) do
      args = [out, t, window, opts]
      size = Tuple.product(window)

      if size > Compose.max_window() do
        Backend.fallback(
          unquote(name),
          args,
          "a window of #{size} elements (slices: at most #{Compose.max_window()})"
        )
      else
        Backend.serve(unquote(name), out, [t], args, fn [x] ->
          Compose.window(unquote(op), Backend.cast(x, out.type), window, opts, out.shape)
        end)
      end
    end
  end

  def conv(out, t, k, opts) do
    args = [out, t, k, opts]
    window = k.shape |> Tuple.delete_at(0) |> Tuple.delete_at(0) |> Tuple.product()

    cond do
      opts[:batch_group_size] != 1 ->
        Backend.fallback(
          :conv,
          args,
          "batch_group_size #{opts[:batch_group_size]} (not composed yet)"
        )

      window > Compose.max_kernel() or Nx.size(out.shape) == 0 ->
        Backend.fallback(
          :conv,
          args,
          "a kernel of #{window} elements per channel, or an empty result"
        )

      true ->
        Backend.serve(:conv, out, [t, k], args, fn [x, w] ->
          Compose.conv(Backend.cast(x, out.type), Backend.cast(w, out.type), opts, out.shape)
        end)
    end
  end

  ## Functions: traced (Mure.Backend.Trace), never sent

  def map(out, t, opts, fun) do
    args = [out, t, opts, fun]

    with true <- Backend.node_type?(t.type) and Backend.node_type?(out.type),
         {:ok, build} <- Trace.map(fun, t.type, out.type) do
      Backend.serve(:map, out, [t], args, fn [x] -> build.(x) end)
    else
      false -> Backend.fallback(:map, args, "complex")
      {:error, why} -> Backend.fallback(:map, args, why)
    end
  end

  def reduce(out, t, acc, opts, fun) do
    args = [out, t, acc, opts, fun]

    ro =
      [keep_axes: opts[:keep_axes] || false] ++ if(opts[:axes], do: [axes: opts[:axes]], else: [])

    with true <- Enum.all?([out, t, acc], &Backend.node_type?(&1.type)),
         {:ok, {reduction, op}} <- Trace.reduce(fun, t.type, acc.type) do
      Backend.serve(:reduce, out, [t, acc], args, fn [x, a] ->
        reduced = Expr.reduce(reduction, Backend.cast(x, out.type), ro)
        Expr.binary(op, Backend.cast(reduced, out.type), Backend.cast(a, out.type))
      end)
    else
      false -> Backend.fallback(:reduce, args, "complex")
      {:error, why} -> Backend.fallback(:reduce, args, why)
    end
  end
end
