defmodule Mure.Backend.Compose do
  @moduledoc false
  # Nx callbacks the node has no op of its own for, built from the ops it has (as Mure.Expr
  # expressions: Mure.Backend.Node sends each as one program, so the node runs the whole
  # composition in one request and frees its intermediates itself).

  alias Mure.Expr

  @doc false
  # argmax/argmin over `axis` (nil: all, flattened). The node's take the first of equal
  # values (tie_break: :low); the last (:high) is the first of the reversed axis, counted
  # from the end.
  @spec arg_reduce(:argmax | :argmin, Expr.t(), keyword()) :: Expr.t()
  def arg_reduce(op, x, opts) do
    {x, axis} =
      if opts[:axis], do: {x, opts[:axis]}, else: {Expr.reshape(x, {Nx.size(x.shape)}), 0}

    ro = [axes: [axis], keep_axes: opts[:keep_axis] || false]

    if opts[:tie_break] == :high do
      i = Expr.reduce(op, Expr.reverse(x, axes: [axis]), ro)
      Expr.binary(:subtract, elem(x.shape, axis) - 1, i)
    else
      Expr.reduce(op, x, ro)
    end
  end

  @doc false
  # take_along_axis: a gather at full coordinates, the indices along `axis` and the iotas
  # of the other axes.
  @spec take_along_axis(Expr.t(), Expr.t(), non_neg_integer()) :: Expr.t()
  def take_along_axis(x, indices, axis) do
    i = if indices.type == {:s, 64}, do: indices, else: Expr.as_type(indices, {:s, 64})
    rank = tuple_size(i.shape)

    coords =
      for d <- 0..(rank - 1),
          do: if(d == axis, do: i, else: Expr.iota(i.shape, type: {:s, 64}, axis: d))

    Expr.gather(x, Expr.stack(coords, axis: rank))
  end

  @doc false
  # The largest kernel window (in elements per channel) a convolution is composed for.
  @spec max_kernel() :: pos_integer()
  def max_kernel, do: 256

  @doc false
  # conv as im2col + one dot (BLIS on the node): for every position k of the (dilated)
  # kernel, the strided slice of the padded (and input-dilated) input that each output
  # element sees at k; stacked they are the {N * P, C * K} columns, multiplied by the
  # {C * K, O} kernel. Feature and batch groups are convolved one by one and joined along the
  # output channels. `opts` are Nx's; `out_shape` is Nx's result shape.
  @spec conv(Expr.t(), Expr.t(), keyword(), tuple()) :: Expr.t()
  def conv(x, w, opts, out_shape) do
    x = permute(x, opts[:input_permutation])
    w = permute(w, opts[:kernel_permutation])
    perm = opts[:output_permutation]
    # The result before the output permutation: {N, O, spatial...}.
    shape = List.to_tuple(for i <- perm, do: elem(out_shape, i))

    config =
      [{0, 0, 0}, {0, 0, 0}] ++
        Enum.zip_with(opts[:padding], opts[:input_dilation], fn {lo, hi}, d -> {lo, hi, d - 1} end)

    x = if Enum.all?(config, &(&1 == {0, 0, 0})), do: x, else: Expr.pad(x, 0, config)
    out_spatial = shape |> Tuple.to_list() |> Enum.drop(2)
    # Batch groups: batch group g of the input (rows g * N/B ...) meets output-feature group
    # g of the kernel; the results are joined along the output features.
    y =
      groups(x, w, 0, opts[:batch_group_size], fn xb, wb ->
        # Feature groups: input-channel group g meets output-feature group g.
        groups(xb, wb, 1, opts[:feature_group_size], &im2col(&1, &2, opts, out_spatial))
      end)

    permute(y, inverse(perm))
  end

  # Splits x along `x_axis` and w along its output features (axis 0) into `count` groups,
  # convolves group g of one with group g of the other, joins along the output features.
  defp groups(x, w, _x_axis, 1, conv), do: conv.(x, w)

  defp groups(x, w, x_axis, count, conv) do
    xs = Tuple.to_list(x.shape)
    ws = Tuple.to_list(w.shape)
    xg = div(Enum.at(xs, x_axis), count)
    og = div(hd(ws), count)

    for g <- 0..(count - 1) do
      xi =
        Expr.slice(
          x,
          xs |> Enum.map(fn _ -> 0 end) |> List.replace_at(x_axis, g * xg),
          List.replace_at(xs, x_axis, xg)
        )

      wi = Expr.slice(w, [g * og | tl(Enum.map(ws, fn _ -> 0 end))], [og | tl(ws)])
      conv.(xi, wi)
    end
    |> Expr.concatenate(axis: 1)
  end

  defp im2col(x, w, opts, out_spatial) do
    [n, c | _] = Tuple.to_list(x.shape)
    [o, _c | kdims] = Tuple.to_list(w.shape)
    strides = opts[:strides]
    lengths = Enum.zip_with(out_spatial, strides, &max((&1 - 1) * &2 + 1, 0))

    offsets =
      kdims
      |> Enum.zip(opts[:kernel_dilation])
      |> Enum.reduce([[]], fn {k, d}, acc ->
        for prefix <- acc, i <- 0..(k - 1), do: prefix ++ [i * d]
      end)

    ck = c * length(offsets)
    p = Enum.product(out_spatial)

    # Columns as a {N * P, C * K} matrix and the kernel as {C * K, O}: one plain matrix
    # product, which the node runs as a BLIS gemm.
    cols =
      offsets
      |> Enum.map(&Expr.slice(x, [0, 0 | &1], [n, c | lengths], strides: [1, 1 | strides]))
      |> Expr.stack(axis: 2)
      |> Expr.reshape({n, ck, p})
      |> Expr.transpose(axes: [0, 2, 1])
      |> Expr.reshape({n * p, ck})

    kernel = w |> Expr.reshape({o, ck}) |> Expr.transpose(axes: [1, 0])

    cols
    |> Expr.dot([1], [], kernel, [0], [])
    |> Expr.reshape({n, p, o})
    |> Expr.transpose(axes: [0, 2, 1])
    |> Expr.reshape(List.to_tuple([n, o | out_spatial]))
  end

  defp permute(x, axes) do
    if axes == Enum.to_list(0..(tuple_size(x.shape) - 1)),
      do: x,
      else: Expr.transpose(x, axes: axes)
  end

  defp inverse(perm), do: perm |> Enum.with_index() |> Enum.sort() |> Enum.map(&elem(&1, 1))

  @doc false
  # fft/ifft over `axis`: the node transforms the last axis, so another axis is moved there
  # and back; then parts of magnitude <= eps become 0 (Nx.BinaryBackend's cleaning).
  @spec fft(:fft | :ifft, Expr.t(), non_neg_integer() | nil, pos_integer(), number() | nil) ::
          Expr.t()
  def fft(kind, x, axis, length, eps) do
    last = tuple_size(x.shape) - 1
    axis = axis || last
    perm = Enum.to_list(0..last) |> List.delete(axis) |> Kernel.++([axis])
    back = Enum.map(0..last, fn d -> Enum.find_index(perm, &(&1 == d)) end)
    moved = if axis == last, do: x, else: Expr.transpose(x, axes: perm)
    y = if kind == :fft, do: Expr.fft(moved, length), else: Expr.ifft(moved, length)
    y = if eps, do: clean(y, eps), else: y
    if axis == last, do: y, else: Expr.transpose(y, axes: back)
  end

  defp clean(y, eps) do
    real = Mure.Rules.real_part(y.type)
    zero = Expr.full(0.0, {}, type: real)
    limit = Expr.full(eps, {}, type: real)

    [re, im] =
      for part <- [:real, :imag] do
        p = Expr.unary(part, y)
        Expr.select(Expr.binary(:less_equal, Expr.unary(:abs, p), limit), zero, p)
      end

    i = Expr.full({0.0, 1.0}, {}, type: y.type)

    Expr.binary(
      :add,
      Expr.as_type(re, y.type),
      Expr.binary(:multiply, Expr.as_type(im, y.type), i)
    )
  end
end
