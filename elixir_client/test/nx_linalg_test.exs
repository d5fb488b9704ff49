defmodule Mure.NxLinAlgTest do
  # Nx.LinAlg on Mure.Backend against a real node (LAPACK there): every result against
  # Nx.BinaryBackend's, or, where a decomposition is not unique (signs of vectors, the order
  # of eigenvalues), against its defining identity; batched inputs; Nx's errors; and no
  # fallback counted for any of them.
  use Mure.NxCase, async: true

  defp on(t), do: Nx.backend_copy(t, Nx.default_backend())

  # A reference result: Nx.BinaryBackend throughout (Nx's compositions make tensors of the
  # default backend as they go).
  defp nx_ref(fun), do: Nx.with_default_backend(Nx.BinaryBackend, fun)

  defp close!(a, b, tol) do
    a = ref(a)
    b = ref(b)
    assert a.shape == b.shape, "shapes #{inspect(a.shape)} and #{inspect(b.shape)}"
    diff = Nx.subtract(a, b) |> Nx.abs() |> Nx.reduce_max() |> Nx.to_number()
    assert diff <= tol, "max |a - b| = #{diff} > #{tol}:\n#{inspect(a)}\n#{inspect(b)}"
  end

  # a.b of batched matrices, on Nx.BinaryBackend.
  defp mm(a, b), do: Nx.dot(ref(a), [-1], [0], ref(b), [-2], [0])

  defp random(shape, type, seed) do
    key = Nx.Random.key(seed) |> ref()
    {x, _} = Nx.Random.uniform(key, -1.0, 1.0, shape: shape, type: type)
    x
  end

  test "lu: the same p, l and u as Nx.BinaryBackend, batched; p keeps an integer type", %{conn: _} do
    no_fallbacks(fn ->
      for {type, tol} <- [{{:f, 64}, 1.0e-12}, {{:f, 32}, 1.0e-5}] do
        a = random({3, 4, 4}, type, 1)
        {p, l, u} = Nx.LinAlg.lu(on(a))
        assert on_node?(p) and on_node?(l) and on_node?(u)
        # Nx.BinaryBackend pivots on the original columns, LAPACK on the updated ones (partial
        # pivoting): both give A = P.L.U with a permutation P, unit lower L and upper U.
        close!(mm(p, mm(l, u)), a, 10 * tol)
        close!(Nx.sum(ref(p), axes: [1]), Nx.broadcast(1.0, {3, 4}), 0)
        close!(Nx.sum(ref(p), axes: [2]), Nx.broadcast(1.0, {3, 4}), 0)
        close!(Nx.tril(ref(l), k: -1) |> Nx.add(Nx.eye(4)), l, 0)
        close!(Nx.triu(ref(u)), u, 0)
      end

      # Partial pivoting by hand: 7 leads, then 6/7 over 3/7.
      {p, l, _u} = Nx.LinAlg.lu(Nx.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 10]]))
      assert p.type == {:s, 64} and l.type == {:f, 32}
      assert Nx.to_flat_list(p) == [0, 1, 0, 0, 0, 1, 1, 0, 0]
    end)
  end

  test "triangular_solve: Nx.BinaryBackend's results for every option; singular a raises" do
    no_fallbacks(fn ->
      a = Nx.tensor([[2.0, 0, 0], [1, 3, 0], [-1, 2, 4]], type: {:f, 64})

      for left <- [true, false], lower <- [true, false], transform <- [:none, :transpose] do
        aa = if lower, do: a, else: Nx.transpose(a)
        b = random(if(left, do: {3, 2}, else: {2, 3}), {:f, 64}, 3)
        opts = [left_side: left, lower: lower, transform_a: transform]
        x = Nx.LinAlg.triangular_solve(on(aa), b, opts)
        assert on_node?(x)
        close!(x, nx_ref(fn -> Nx.LinAlg.triangular_solve(ref(aa), b, opts) end), 1.0e-12)
      end

      # A batch of vectors (Nx's doctest), integers to {:f, 32}.
      a = Nx.tensor([[[1, 0], [2, 3]], [[4, 0], [5, 6]]])
      b = Nx.tensor([[2, -1], [3, 7]])
      x = Nx.LinAlg.triangular_solve(a, b)
      assert x.type == {:f, 32}
      close!(x, nx_ref(fn -> Nx.LinAlg.triangular_solve(ref(a), ref(b)) end), 1.0e-6)

      assert_raise ArgumentError, "can't solve for singular matrix", fn ->
        Nx.LinAlg.triangular_solve(Nx.tensor([[0, 0], [1, 1]]), Nx.tensor([4, 2]))
      end
    end)
  end

  test "qr: Q.R == A, Q orthonormal, R upper triangular; reduced and complete, batched" do
    no_fallbacks(fn ->
      for {m, n} <- [{5, 3}, {3, 5}, {4, 4}], mode <- [:reduced, :complete] do
        a = random({2, m, n}, {:f, 64}, 4)
        {q, r} = Nx.LinAlg.qr(on(a), mode: mode)
        assert on_node?(q) and on_node?(r)
        {rq, rr} = nx_ref(fn -> Nx.LinAlg.qr(ref(a), mode: mode) end)
        assert q.shape == rq.shape and r.shape == rr.shape
        close!(mm(q, r), a, 1.0e-12)
        qc = elem(q.shape, 2)

        close!(
          mm(Nx.transpose(ref(q), axes: [0, 2, 1]), q),
          Nx.broadcast(Nx.eye(qc), {2, qc, qc}),
          1.0e-12
        )

        close!(Nx.triu(ref(r)), r, 0)
      end
    end)
  end

  test "cholesky: Nx.BinaryBackend's factor, batched" do
    no_fallbacks(fn ->
      m = random({2, 4, 4}, {:f, 64}, 5)
      a = Nx.add(mm(m, Nx.transpose(m, axes: [0, 2, 1])), Nx.multiply(Nx.eye(4), 4))
      l = Nx.LinAlg.cholesky(on(a))
      assert on_node?(l)
      close!(mm(l, Nx.transpose(ref(l), axes: [0, 2, 1])), a, 1.0e-12)
      # Nx's own composition is the less accurate one (~3e-11 from L.L^T = A here).
      close!(l, nx_ref(fn -> Nx.LinAlg.cholesky(ref(a)) end), 1.0e-9)
    end)
  end

  test "eigh: V.diag(w).V^T == A, and Nx.BinaryBackend's eigenvalues (its own precision)" do
    no_fallbacks(fn ->
      m = random({2, 5, 5}, {:f, 64}, 6)
      a = Nx.add(m, Nx.transpose(m, axes: [0, 2, 1]))
      {w, v} = Nx.LinAlg.eigh(on(a))
      assert on_node?(w) and on_node?(v)
      vd = Nx.multiply(ref(v), Nx.new_axis(ref(w), 1))
      close!(mm(vd, Nx.transpose(ref(v), axes: [0, 2, 1])), a, 1.0e-12)
      {rw, _} = nx_ref(fn -> Nx.LinAlg.eigh(ref(a)) end)
      # Nx.BinaryBackend's eigh is an iteration stopped at eps 1.0e-4: its values to that.
      close!(Nx.sort(ref(w), axis: 1), Nx.sort(rw, axis: 1), 1.0e-3)
    end)
  end

  test "svd: U.S.Vt == A, Nx.BinaryBackend's singular values; full and reduced" do
    no_fallbacks(fn ->
      for {m, n} <- [{4, 3}, {3, 4}], full <- [true, false] do
        a = random({m, n}, {:f, 64}, 7)
        {u, s, vt} = Nx.LinAlg.svd(on(a), full_matrices?: full)
        assert on_node?(u) and on_node?(s) and on_node?(vt)
        {ru, rs, rvt} = nx_ref(fn -> Nx.LinAlg.svd(ref(a), full_matrices?: full) end)
        assert {u.shape, s.shape, vt.shape} == {ru.shape, rs.shape, rvt.shape}
        k = min(m, n)
        us = Nx.multiply(Nx.slice(ref(u), [0, 0], [m, k]), ref(s))
        close!(Nx.dot(us, Nx.slice(ref(vt), [0, 0], [k, n])), a, 1.0e-12)
        close!(s, rs, 1.0e-3)
      end
    end)
  end

  test "solve and determinant: Nx.BinaryBackend's results, batched; singular solve raises" do
    no_fallbacks(fn ->
      a = random({3, 4, 4}, {:f, 64}, 8)
      b = random({3, 4, 2}, {:f, 64}, 9)
      x = Nx.LinAlg.solve(on(a), b)
      assert on_node?(x)
      close!(mm(a, x), b, 1.0e-12)
      close!(x, nx_ref(fn -> Nx.LinAlg.solve(ref(a), ref(b)) end), 1.0e-9)

      d = Nx.LinAlg.determinant(on(a))
      assert on_node?(d) and d.shape == {3}
      close!(d, nx_ref(fn -> Nx.LinAlg.determinant(ref(a)) end), 1.0e-12)

      assert Nx.LinAlg.determinant(Nx.tensor([[1, 2], [3, 4]]))
             |> Nx.to_number()
             |> Kernel.-(-2.0)
             |> abs() < 1.0e-6

      assert_raise ArgumentError, "can't solve for singular matrix", fn ->
        Nx.LinAlg.solve(Nx.tensor([[1.0, 2.0], [2.0, 4.0]]), Nx.tensor([1.0, 1.0]))
      end
    end)
  end

  test "invert, which Nx composes (with an indexed_put the node lacks), agrees with Nx.BinaryBackend" do
    a = Nx.tensor([[4.0, 7.0], [2.0, 6.0]], type: {:f, 64})
    inv = Nx.LinAlg.invert(a)
    close!(inv, nx_ref(fn -> Nx.LinAlg.invert(ref(a)) end), 1.0e-12)
    close!(Nx.dot(ref(a), ref(inv)), Nx.eye(2, type: {:f, 64}), 1.0e-12)
  end
end
