defmodule Mure.Backend.Slice do
  @moduledoc false
  # Mure.Backend's slice and put_slice. Nx gives each start as an integer or a scalar integer
  # tensor. Starts known on the client (integers, tensors of another backend, constants of a
  # defn function) are clamped here, as Nx.BinaryBackend clamps them, and the op is the node's
  # static slice / put_slice. A start that lives on the node (a Mure.Backend tensor) or that a
  # defn function computes (a Mure.Compiler.Sym without a value) is not read: the op is the
  # node's dynamic_slice / dynamic_put_slice, which clamps it when it runs. So an eager slice
  # at a resident index is one request (not a download and a request), and a compiled
  # function with a computed start stays one program.

  alias Mure.Backend
  alias Mure.Compiler.Sym
  alias Mure.Expr

  @doc false
  def slice(out, t, starts, lengths, strides) do
    case split(starts) do
      {:static, starts} ->
        starts = clamp(starts, lengths, t.shape)

        Backend.serve(:slice, out, [t], [out, t, starts, lengths, strides], fn [x] ->
          Expr.slice(x, starts, lengths, strides: strides)
        end)

      {:dynamic, tensors, join} ->
        build = fn [x | dyn] -> Expr.dynamic_slice(x, join.(dyn), lengths, strides: strides) end
        Backend.serve(:slice, out, [t | tensors], [out, t, starts, lengths, strides], build)
    end
  end

  @doc false
  def put_slice(out, t, starts, update) do
    case split(starts) do
      {:static, starts} ->
        starts = clamp(starts, Tuple.to_list(update.shape), t.shape)

        Backend.serve(:put_slice, out, [t, update], [out, t, starts, update], fn [x, u] ->
          Expr.put_slice(Backend.cast(x, out.type), starts, Backend.cast(u, out.type))
        end)

      {:dynamic, tensors, join} ->
        build = fn [x, u | dyn] ->
          Expr.dynamic_put_slice(
            Backend.cast(x, out.type),
            join.(dyn),
            Backend.cast(u, out.type)
          )
        end

        Backend.serve(:put_slice, out, [t, update | tensors], [out, t, starts, update], build)
    end
  end

  # {:static, [integer]} when every start is known here; else {:dynamic, tensors, join}:
  # the starts to send as operands, and join.(their expressions) giving one start per axis
  # (the known ones as integers, which Mure.Expr makes constants of the program).
  defp split(starts) do
    if Enum.any?(starts, &dynamic?/1) do
      tensors = Enum.filter(starts, &dynamic?/1)

      join = fn exprs ->
        {joined, []} =
          Enum.map_reduce(starts, exprs, fn s, rest ->
            if dynamic?(s), do: {hd(rest), tl(rest)}, else: {known(s), rest}
          end)

        joined
      end

      {:dynamic, tensors, join}
    else
      {:static, Enum.map(starts, &known/1)}
    end
  end

  defp dynamic?(%Nx.Tensor{data: %Backend{}}), do: true
  defp dynamic?(%Nx.Tensor{data: %Sym{value: v}}), do: not is_number(v)
  defp dynamic?(_), do: false

  defp known(i) when is_integer(i), do: i
  defp known(%Nx.Tensor{} = t), do: t |> Nx.to_number() |> trunc()

  defp clamp(starts, spans, shape) do
    Enum.zip_with([starts, spans, Tuple.to_list(shape)], fn [s, len, dim] ->
      s |> max(0) |> min(dim - len)
    end)
  end
end
