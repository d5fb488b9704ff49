defmodule Mure.Backend.Composite do
  @moduledoc false
  # Mure.Backend's callbacks that are not one op of the table: composed from the node's ops
  # (Mure.Backend.Compose: argmax/argmin with tie_break: :high, take_along_axis, conv), the
  # window, scatter and cumulative ops (Mure.Expr.Window: the node's window,
  # window_scatter, indexed and cumulative requests), or with an Elixir function traced
  # into its ops (Mure.Backend.Trace: map, reduce, window_reduce). Each runs as one
  # program; what cannot be composed falls back (Mure.Backend.Fallback) with the reason.

  alias Mure.Backend
  alias Mure.Backend.{Compose, Trace}
  alias Mure.Expr
  alias Mure.Expr.Window

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

  ## Window, scatter and cumulative ops: one node op each (Mure.Expr.Window)

  for {name, op} <- [
        window_sum: :sum,
        window_product: :product,
        window_max: :reduce_max,
        window_min: :reduce_min
      ] do
    def unquote(name)(out, t, window, opts) do
      Backend.serve(unquote(name), out, [t], [out, t, window, opts], fn [x] ->
        Window.window(unquote(op), Backend.cast(x, out.type), window, window_opts(opts))
      end)
    end
  end

  # Nx's function is traced (Mure.Backend.Trace.reduce) to the table's reduction; the
  # accumulator pads the tensor and starts every window, as in Nx.BinaryBackend.
  def window_reduce(out, t, acc, window, opts, fun) do
    args = [out, t, acc, window, opts, fun]

    with true <- Enum.all?([out, t, acc], &Backend.node_type?(&1.type)),
         {:ok, {reduction, _op}} <- Trace.reduce(fun, t.type, acc.type) do
      init = Nx.to_number(acc)

      Backend.serve(:window_reduce, out, [t], args, fn [x] ->
        Window.window(reduction, Backend.cast(x, out.type), window, [
          {:init, init} | window_opts(opts)
        ])
      end)
    else
      false -> Backend.fallback(:window_reduce, args, "complex")
      {:error, why} -> Backend.fallback(:window_reduce, args, why)
    end
  end

  for {name, op} <- [window_scatter_max: :max, window_scatter_min: :min] do
    def unquote(name)(out, t, source, init, window, opts) do
      args = [out, t, source, init, window, opts]

      if Backend.node_type?(init.type) do
        value = Nx.to_number(init)

        Backend.serve(unquote(name), out, [t, source], args, fn [x, s] ->
          Window.window_scatter(unquote(op), x, s, value, window,
            strides: opts[:strides],
            padding: opts[:padding]
          )
        end)
      else
        Backend.fallback(unquote(name), args, "complex")
      end
    end
  end

  for {name, op} <- [indexed_add: :add, indexed_put: :put] do
    def unquote(name)(out, t, indices, updates, opts) do
      args = [out, t, indices, updates, opts]

      out_of_bounds_as_nx(fn ->
        Backend.serve(unquote(name), out, [t, indices, updates], args, fn [x, i, u] ->
          Window.indexed(unquote(op), x, i, u, axes: opts[:axes])
        end)
      end)
    end
  end

  # An index out of range: the node says it in Nx's words, and Nx raises an ArgumentError.
  defp out_of_bounds_as_nx(fun) do
    fun.()
  rescue
    e in Mure.Error ->
      case {e.kind,
            Regex.run(~r/index -?\d+ is out of bounds for axis \d+ in shape \{[^}]*\}/, e.message)} do
        {:out_of_range, [nx_words]} -> raise ArgumentError, nx_words
        _ -> reraise e, __STACKTRACE__
      end
  end

  for {name, op} <- [
        cumulative_sum: :sum,
        cumulative_product: :product,
        cumulative_max: :reduce_max,
        cumulative_min: :reduce_min
      ] do
    def unquote(name)(out, t, opts) do
      Backend.serve(unquote(name), out, [t], [out, t, opts], fn [x] ->
        Window.cumulative(unquote(op), Backend.cast(x, out.type),
          axis: opts[:axis],
          reverse: opts[:reverse]
        )
      end)
    end
  end

  defp window_opts(opts) do
    [
      strides: opts[:strides],
      padding: opts[:padding],
      window_dilations: opts[:window_dilations]
    ]
  end

  def conv(out, t, k, opts) do
    args = [out, t, k, opts]
    window = k.shape |> Tuple.delete_at(0) |> Tuple.delete_at(0) |> Tuple.product()

    cond do
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
