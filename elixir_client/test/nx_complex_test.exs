defmodule Mure.NxComplexTest do
  # The complex types and fft/ifft on Mure.Backend against a real node: results against
  # Nx.BinaryBackend's, bytes identical both ways, inspect as Nx prints, and no fallback
  # counted for the ops the node has.
  use Mure.NxCase, async: true

  defp close!(got, want, tol) do
    assert got.type == want.type and got.shape == want.shape,
           "#{inspect(got.type)}#{inspect(got.shape)} vs #{inspect(want.type)}#{inspect(want.shape)}"

    got = ref(got)

    assert Nx.all_close(got, want, atol: tol, rtol: tol) |> Nx.to_number() == 1,
           "got #{inspect(got)}, want #{inspect(want)}"
  end

  test "complex tensors upload and download byte-identical to Nx.BinaryBackend's", %{conn: conn} do
    for type <- [{:c, 64}, {:c, 128}] do
      z = Nx.tensor([Complex.new(1, 2), Complex.new(-0.5, 3), Complex.new(0, -1)], type: type)
      assert on_node?(z)

      r =
        Nx.tensor([Complex.new(1, 2), Complex.new(-0.5, 3), Complex.new(0, -1)],
          type: type,
          backend: Nx.BinaryBackend
        )

      assert Nx.to_binary(z) == Nx.to_binary(r)

      assert Nx.backend_copy(r, {Mure.Backend, connection: conn}) |> Nx.to_binary() ==
               Nx.to_binary(r)
    end

    s = Nx.tensor(Complex.new(1, 2))
    assert on_node?(s) and s.type == {:c, 64}
    assert Nx.to_number(s) == Complex.new(1.0, 2.0)

    # As Nx prints it (the test environment leaves the node's name out, as EXLA does).
    assert inspect(Nx.tensor([Complex.new(1, 2), Complex.new(3, -4)])) ==
             inspect(
               Nx.tensor([Complex.new(1, 2), Complex.new(3, -4)], backend: Nx.BinaryBackend)
             )
  end

  test "complex arithmetic on the node agrees with Nx.BinaryBackend, with no fallback" do
    a =
      Nx.tensor([
        [Complex.new(1, 2), Complex.new(-0.5, 0.25)],
        [Complex.new(3, -4), Complex.new(0, 1)]
      ])

    b = Nx.tensor([Complex.new(2, -1), Complex.new(0.5, 0.5)], type: {:c, 64})
    r = Nx.tensor([1.5, -2.0], type: {:f, 32})
    ra = ref(a)
    rb = ref(b)
    rr = ref(r)

    no_fallbacks(fn ->
      for {f, tol} <- [
            {&Nx.add/2, 1.0e-6},
            {&Nx.subtract/2, 1.0e-6},
            {&Nx.multiply/2, 1.0e-6},
            {&Nx.divide/2, 1.0e-5},
            {&Nx.pow/2, 1.0e-4}
          ] do
        close!(f.(a, b), f.(ra, rb), tol)
        close!(f.(a, r), f.(ra, rr), tol)
      end

      for f <- [
            &Nx.negate/1,
            &Nx.exp/1,
            &Nx.sqrt/1,
            &Nx.sin/1,
            &Nx.cos/1,
            &Nx.tanh/1,
            &Nx.conjugate/1,
            &Nx.real/1,
            &Nx.imag/1,
            &Nx.abs/1,
            &Nx.log/1
          ] do
        close!(f.(a), f.(ra), 1.0e-5)
      end

      close!(Nx.sum(a, axes: [1]), Nx.sum(ra, axes: [1]), 1.0e-5)
      close!(Nx.product(a), Nx.product(ra), 1.0e-4)
      close!(Nx.dot(a, b), Nx.dot(ra, rb), 1.0e-5)
      close!(Nx.equal(a, a), Nx.equal(ra, ra), 0)
      close!(Nx.conjugate(r), Nx.conjugate(rr), 0)
      close!(Nx.as_type(a, {:f, 32}), Nx.as_type(ra, {:f, 32}), 0)
      close!(Nx.as_type(r, {:c, 128}), Nx.as_type(rr, {:c, 128}), 0)
      close!(Nx.transpose(a), Nx.transpose(ra), 0)

      close!(
        Nx.concatenate([a, Nx.reshape(r, {1, 2})]),
        Nx.concatenate([ra, Nx.reshape(rr, {1, 2})]),
        0
      )

      close!(
        Nx.pad(b, Complex.new(7, -7), [{1, 2, 1}]),
        Nx.pad(rb, Complex.new(7, -7), [{1, 2, 1}]),
        0
      )

      close!(Nx.reverse(a, axes: [1]), Nx.reverse(ra, axes: [1]), 0)
      close!(Nx.slice(a, [1, 0], [1, 2]), Nx.slice(ra, [1, 0], [1, 2]), 0)
      close!(Nx.broadcast(b, {3, 2}), Nx.broadcast(rb, {3, 2}), 0)
    end)
  end

  test "fft and ifft run on the node (FFTW) and agree with Nx.BinaryBackend" do
    x = Nx.iota({3, 12}, type: {:f, 32}) |> Nx.sin()
    rx = ref(x)

    no_fallbacks(fn ->
      for opts <- [[], [length: 8], [length: 16], [length: 13]] do
        close!(Nx.fft(x, opts), Nx.fft(rx, opts), 1.0e-4)
        close!(Nx.ifft(x, opts), Nx.ifft(rx, opts), 1.0e-5)
      end

      close!(Nx.fft(x, axis: 0), Nx.fft(rx, axis: 0), 1.0e-4)
      z = Nx.fft(Nx.as_type(x, {:f, 64}))
      assert z.type == {:c, 128}
      close!(Nx.ifft(z), Nx.as_type(rx, {:c, 128}), 1.0e-12)
    end)

    # Nx's own doctest values, printed the same.
    t = Nx.fft(Nx.tensor([1, 1, 0, 0]))

    assert Nx.to_flat_list(t) == [
             Complex.new(2.0, 0.0),
             Complex.new(1.0, -1.0),
             Complex.new(0.0, 0.0),
             Complex.new(1.0, 1.0)
           ]
  end

  test "bad requests give clear errors" do
    assert_raise ArgumentError, ~r/sort is not defined on complex tensors|complex/, fn ->
      Mure.Expr.full(Complex.new(1, 1), {2}) |> Mure.Expr.sort([])
    end

    assert_raise ArgumentError, ~r/fft's length must be between 1 and 2\^31-1/, fn ->
      Mure.Expr.fft(Mure.Expr.parameter(0, {:f, 32}, {4}), 0)
    end
  end
end
