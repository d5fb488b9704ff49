defmodule Mure.Backend.Linalg do
  @moduledoc false
  # Nx.LinAlg's callbacks on the node, through LAPACK (docs/protocol.md, "Linear algebra"):
  # lu, triangular_solve, and the optional qr, cholesky, eigh, svd, solve and determinant,
  # each one node op (batched over leading axes there) instead of Nx's composition of many.
  # lu, qr, eigh and svd are one op with several results: a tuple value whose parts are read
  # with {:elem, v, i} in the same program. The node's dtype rules are Nx's
  # (Nx.Type.to_floating; lu's p keeps the input's type); Nx has checked the shapes before
  # calling. Iterative options (`:eps`, `:max_iter`) do not apply: LAPACK's algorithms are
  # direct or converge on their own.

  alias Mure.Backend
  alias Mure.Expr.Build

  @singular "can't solve for singular matrix"
  @complex "complex matrices (the node's LAPACK ops are real)"

  def lu({p, l, u} = out, t, opts) do
    serve_many(:lu, [p, l, u], [t], [out, t, opts], fn [x] ->
      parts({:lu, x}, [p, l, u])
    end)
  end

  def qr({q, r} = out, t, opts) do
    mode = Keyword.get(opts, :mode, :reduced)

    serve_many(:qr, [q, r], [t], [out, t, opts], fn [x] ->
      parts({:qr, x, mode}, [q, r])
    end)
  end

  def eigh({vals, vecs} = out, t, opts) do
    serve_many(:eigh, [vals, vecs], [t], [out, t, opts], fn [x] ->
      parts({:eigh, x}, [vals, vecs])
    end)
  end

  def svd({u, s, vt} = out, t, opts) do
    full = Keyword.get(opts, :full_matrices?, true)

    serve_many(:svd, [u, s, vt], [t], [out, t, opts], fn [x] ->
      parts({:svd, x, full}, [u, s, vt])
    end)
  end

  def cholesky(out, t) do
    serve(:cholesky, out, [t], [out, t], fn [x] -> one({:cholesky, x}, out) end)
  end

  def determinant(out, t) do
    serve(:determinant, out, [t], [out, t], fn [x] -> one({:determinant, x}, out) end)
  end

  def solve(out, a, b) do
    singular_as_nx(fn ->
      serve(:solve, out, [a, b], [out, a, b], fn [x, y] -> one({:solve, x, y}, out) end)
    end)
  end

  def triangular_solve(out, a, b, opts) do
    left = Keyword.get(opts, :left_side, true)
    lower = Keyword.get(opts, :lower, true)
    transform = Keyword.get(opts, :transform_a, :none)

    singular_as_nx(fn ->
      serve(:triangular_solve, out, [a, b], [out, a, b, opts], fn [x, y] ->
        one({:triangular_solve, x, y, left, lower, transform}, out)
      end)
    end)
  end

  @doc false
  # What Nx does for an optional callback that a backend lacks (Nx.BinaryBackend lacks them
  # all): its own composition, here on Nx.BinaryBackend tensors (Mure.Backend.Fallback, for
  # the types the node does not have: complex).
  def compose(:qr, [_out, t, opts]), do: Nx.LinAlg.qr(t, opts)
  def compose(:eigh, [_out, t, opts]), do: Nx.LinAlg.eigh(t, opts)
  def compose(:svd, [_out, t, opts]), do: Nx.LinAlg.svd(t, opts)
  def compose(:cholesky, [_out, t]), do: Nx.LinAlg.cholesky(t)
  def compose(:determinant, [_out, t]), do: Nx.LinAlg.determinant(t)
  def compose(:solve, [_out, a, b]), do: Nx.LinAlg.solve(a, b)
  def compose(:all_close, [_out, a, b, opts]), do: Nx.all_close(a, b, opts)
  def compose(:top_k, [_out, t, opts]), do: Nx.top_k(t, opts)

  # Complex matrices take Nx's way (Mure.Backend.Fallback: Nx.BinaryBackend's lu and
  # triangular_solve, Nx's composition for the optional ones); real ones go to the node.
  defp serve(name, out, inputs, args, build) do
    if Enum.any?([out | inputs], &complex?/1),
      do: Backend.fallback(name, args, @complex),
      else: Backend.serve(name, out, inputs, args, build)
  end

  defp serve_many(name, outs, inputs, args, build) do
    if Enum.any?(outs ++ inputs, &complex?/1),
      do: Backend.fallback(name, args, @complex),
      else: Backend.serve_many(name, outs, inputs, args, build)
  end

  defp complex?(%{type: {:c, _}}), do: true
  defp complex?(_), do: false

  # The node's op as one expression of Nx's result (the node computes Nx's type and shape).
  defp one(node, out), do: Build.new(node, out.type, out.shape)

  # The parts of a tuple value as expressions {:elem, v, i} of Nx's types and shapes (the
  # node computes the same; Node.run_many checks them against its reply).
  defp parts(node, outs) do
    tuple = Build.new(node, {:u, 8}, {})

    outs
    |> Enum.with_index()
    |> Enum.map(fn {o, i} -> Build.new({:elem, tuple, i}, o.type, o.shape) end)
  end

  # Nx raises an ArgumentError for a singular system: so does the node's refusal.
  defp singular_as_nx(fun) do
    fun.()
  rescue
    e in Mure.Error ->
      if e.kind == :badarg and String.contains?(e.message, @singular),
        do: raise(ArgumentError, @singular),
        else: reraise(e, __STACKTRACE__)
  end
end
