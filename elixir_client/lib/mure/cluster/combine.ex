defmodule Mure.Cluster.Combine do
  @moduledoc false
  # Combines the partial results of a reduction (one binary per piece, all of one type and
  # shape) elementwise on the client: sum, product, max or min, with the node's semantics
  # (integers wrap at their width; NaN propagates; infinities follow IEEE rules). Float
  # partials are combined in double precision and rounded once to the output type.

  import Bitwise

  @spec combine(:sum | :product | :max | :min, Mure.type(), [binary()]) :: binary()
  def combine(op, type, [first | rest]) do
    rest
    |> Enum.reduce(decode(type, first), fn part, acc ->
      Enum.zip_with(acc, decode(type, part), &apply_op(op, type, &1, &2))
    end)
    |> Enum.map(&encode(type, &1))
    |> IO.iodata_to_binary()
  end

  ## Values: numbers, or :inf, :neg_inf, :nan for the floats that Elixir cannot hold

  @doc false
  def decode({:f, 32}, bin),
    do: for(<<b::32-little <- bin>>, do: float_bits(b, 8, 23, <<b::32>>, 32))

  def decode({:f, 64}, bin),
    do: for(<<b::64-little <- bin>>, do: float_bits(b, 11, 52, <<b::64>>, 64))

  def decode({:f, 16}, bin),
    do: for(<<b::16-little <- bin>>, do: float_bits(b, 5, 10, <<b::16>>, 16))

  def decode({:bf, 16}, bin),
    do: for(<<b::16-little <- bin>>, do: float_bits(b <<< 16, 8, 23, <<b::16, 0::16>>, 32))

  def decode({:s, bits}, bin), do: for(<<x::signed-little-size(bits) <- bin>>, do: x)
  def decode({:u, bits}, bin), do: for(<<x::unsigned-little-size(bits) <- bin>>, do: x)

  defp float_bits(b, exp_bits, man_bits, big_endian, size) do
    exp = b >>> man_bits &&& (1 <<< exp_bits) - 1
    man = b &&& (1 <<< man_bits) - 1
    neg = b >>> (exp_bits + man_bits) == 1

    cond do
      exp == (1 <<< exp_bits) - 1 and man != 0 -> :nan
      exp == (1 <<< exp_bits) - 1 -> if neg, do: :neg_inf, else: :inf
      true -> decode_finite(big_endian, size)
    end
  end

  defp decode_finite(bin, 32), do: (<<x::float-32>> = bin) && x
  defp decode_finite(bin, 64), do: (<<x::float-64>> = bin) && x
  defp decode_finite(bin, 16), do: (<<x::float-16>> = bin) && x

  @doc false
  # Each float type's largest finite value, and the value from which rounding to nearest
  # (ties to even: the largest value's mantissa is odd) gives an infinity.
  def encode({:f, 32}, v), do: encode_float(v, 32, 3.4028234663852886e38, 3.4028235677973366e38)
  def encode({:f, 64}, v), do: encode_float(v, 64, 1.7976931348623157e308, :none)
  def encode({:f, 16}, v), do: encode_float(v, 16, 65504.0, 65520.0)

  def encode({:bf, 16}, v) when is_atom(v) do
    <<b::32-little>> = encode({:f, 32}, v)
    <<b >>> 16 ||| if((b &&& 0xFFFF) != 0, do: 0x40, else: 0)::16-little>>
  end

  def encode({:bf, 16}, v) do
    <<b::32-little>> = encode({:f, 32}, v)

    if (b >>> 23 &&& 0xFF) == 0xFF do
      # Past f32's range: past bf16's too.
      <<b >>> 16::16-little>>
    else
      # Round to nearest even on the 16 bits dropped. When f32 rounding already landed on a
      # tie (a double rounding), round toward the exact value instead.
      low = b &&& 0xFFFF
      <<f::float-32-little>> = <<b::32-little>>
      up = b + 0x10000 - low

      r =
        cond do
          low == 0x8000 and abs(v) > abs(f) -> up
          low == 0x8000 and abs(v) < abs(f) -> b - low
          true -> b + 0x7FFF + (b >>> 16 &&& 1)
        end

      <<r >>> 16 &&& 0xFFFF::16-little>>
    end
  end

  def encode({:s, bits}, v), do: <<v::signed-little-size(bits)>>
  def encode({:u, bits}, v), do: <<v::unsigned-little-size(bits)>>

  defp encode_float(:nan, 32, _), do: <<0x7FC00000::32-little>>
  defp encode_float(:nan, 64, _), do: <<0x7FF8000000000000::64-little>>
  defp encode_float(:nan, 16, _), do: <<0x7E00::16-little>>
  defp encode_float(:inf, 32, _), do: <<0x7F800000::32-little>>
  defp encode_float(:inf, 64, _), do: <<0x7FF0000000000000::64-little>>
  defp encode_float(:inf, 16, _), do: <<0x7C00::16-little>>
  defp encode_float(:neg_inf, 32, _), do: <<0xFF800000::32-little>>
  defp encode_float(:neg_inf, 64, _), do: <<0xFFF0000000000000::64-little>>
  defp encode_float(:neg_inf, 16, _), do: <<0xFC00::16-little>>

  defp encode_float(special, size, max, _overflow) when is_atom(special),
    do: encode_float(special, size, max)

  defp encode_float(v, size, max, overflow) do
    cond do
      overflow != :none and v >= overflow -> encode_float(:inf, size, max)
      overflow != :none and v <= -overflow -> encode_float(:neg_inf, size, max)
      v > max -> <<max::float-little-size(size)>>
      v < -max -> <<-max::float-little-size(size)>>
      true -> <<v * 1.0::float-little-size(size)>>
    end
  end

  ## Ops

  defp apply_op(op, {kind, bits}, a, b) when kind in [:s, :u] do
    r =
      case op do
        :sum -> a + b
        :product -> a * b
        :max -> max(a, b)
        :min -> min(a, b)
      end

    wrap(kind, bits, r)
  end

  defp apply_op(_op, _type, :nan, _), do: :nan
  defp apply_op(_op, _type, _, :nan), do: :nan

  defp apply_op(:max, _type, a, b) do
    cond do
      :inf in [a, b] -> :inf
      a == :neg_inf -> b
      b == :neg_inf -> a
      true -> max(a, b)
    end
  end

  defp apply_op(:min, _type, a, b) do
    cond do
      :neg_inf in [a, b] -> :neg_inf
      a == :inf -> b
      b == :inf -> a
      true -> min(a, b)
    end
  end

  defp apply_op(:sum, _type, a, b), do: add(a, b)
  defp apply_op(:product, _type, a, b), do: mul(a, b)

  defp wrap(:u, bits, r), do: r &&& (1 <<< bits) - 1

  defp wrap(:s, bits, r) do
    u = r &&& (1 <<< bits) - 1
    if u >= 1 <<< (bits - 1), do: u - (1 <<< bits), else: u
  end

  defp add(:inf, :neg_inf), do: :nan
  defp add(:neg_inf, :inf), do: :nan
  defp add(a, _) when a in [:inf, :neg_inf], do: a
  defp add(_, b) when b in [:inf, :neg_inf], do: b
  defp add(a, b), do: add_checked(a, b, &(&1 + &2))

  defp mul(a, b) when a in [:inf, :neg_inf] or b in [:inf, :neg_inf] do
    sa = sign(a)
    sb = sign(b)
    if sa == 0 or sb == 0, do: :nan, else: if(sa * sb > 0, do: :inf, else: :neg_inf)
  end

  defp mul(a, b) do
    a * b
  rescue
    ArithmeticError -> if sign(a) * sign(b) >= 0, do: :inf, else: :neg_inf
  end

  defp sign(:inf), do: 1
  defp sign(:neg_inf), do: -1
  defp sign(x) when x > 0, do: 1
  defp sign(x) when x < 0, do: -1
  defp sign(_), do: 0

  # Beyond the range of a double (only f64 partials can get there): an infinity.
  defp add_checked(a, b, fun) do
    fun.(a, b)
  rescue
    ArithmeticError -> if sign(a) + sign(b) >= 0, do: :inf, else: :neg_inf
  end
end
