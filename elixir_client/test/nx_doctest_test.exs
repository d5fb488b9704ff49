defmodule Mure.NxDoctestCase do
  # Nx's own doctests of one module with Mure.Backend as the default backend, against a
  # real node, as Torchx and EXLA run them (`setup` sets the default backend, then
  # `doctest Nx, except: [...]`), each doctest counted when it passes. When the module's
  # doctests are done it prints one line:
  #   nx doctests on Mure.Backend: P of 946 passed, E excluded          (doctest Nx)
  #   nx doctests on Mure.Backend (Nx.LinAlg): P of N passed, E excluded
  # `exclusions` is %{doctest name => reason}: every excluded doctest has its reason.
  #
  # MURE_NX_DOCTEST_ONLY="map/3,conv/3" runs only those functions' doctests (a debugging
  # aid; the line then counts the others as excluded). MURE_NX_DOCTEST_FALLBACKS=1 also
  # prints Mure.Backend.fallbacks/0 after the line.
  #
  # The tests are what ExUnit's doctest/2 macro defines in Elixir 1.14 (it expands to
  # ExUnit.DocTest.__doctests__/2 and ExUnit.Case.register_test/4), with a counter added.

  defmacro __using__(opts) do
    quote bind_quoted: [opts: opts] do
      use ExUnit.Case, async: false

      # The fallbacks' debug lines (Mure.Backend.Fallback) show only for a failing doctest.
      @moduletag :capture_log

      @nx_module Keyword.fetch!(opts, :module)
      @label Keyword.fetch!(opts, :label)
      @exclusions Keyword.fetch!(opts, :exclusions)
      # Every doctest of the module, named as ExUnit names them ("Nx.erf_inv/1 (288)": the
      # number counts the module's doctests in order, so it is stable for a given Nx).
      all = ExUnit.DocTest.__doctests__(@nx_module, [])
      @total length(all)

      for name <- Map.keys(@exclusions),
          not List.keymember?(all, name, 0),
          do: raise(ArgumentError, "excluded doctest #{inspect(name)} does not exist")

      only =
        System.get_env("MURE_NX_DOCTEST_ONLY", "")
        |> String.split(",", trim: true)
        |> Enum.map(&"#{inspect(@nx_module)}.#{&1} (")

      run =
        Enum.filter(all, fn {name, _} ->
          not Map.has_key?(@exclusions, name) and
            (only == [] or Enum.any?(only, &String.starts_with?(name, &1)))
        end)

      @ran length(run)
      @counter {__MODULE__, :passed}

      setup_all do
        conn = start_supervised!({Mure, []})
        :persistent_term.put(@counter, :counters.new(1, []))

        on_exit(fn ->
          passed = :counters.get(:persistent_term.get(@counter), 1)

          IO.puts(
            "\nnx doctests on Mure.Backend#{@label}: #{passed} of #{@total} passed, " <>
              "#{@total - @ran} excluded"
          )

          if System.get_env("MURE_NX_DOCTEST_FALLBACKS"),
            do: IO.puts("fallbacks so far: #{inspect(Mure.Backend.fallbacks())}")
        end)

        %{conn: conn}
      end

      setup %{conn: conn} do
        Nx.default_backend({Mure.Backend, connection: conn})
        :ok
      end

      file = ExUnit.DocTest.__file__(@nx_module)

      for {name, test} <- run do
        @file file
        doc = ExUnit.Case.register_test(__ENV__, :doctest, name, [])

        def unquote(doc)(_) do
          unquote(test)
          :counters.add(:persistent_term.get(@counter), 1, 1)
        end
      end
    end
  end
end

defmodule Mure.NxDoctestTest do
  # `doctest Nx` (946 doctests at 0.7.2).
  use Mure.NxDoctestCase,
    module: Nx,
    label: "",
    exclusions: %{
      "Nx.erf_inv/1 (288)" =>
        "printed f32 differs in the last place: the node computes erf_inv in f32 and gives " <>
          "1.1630871295928955 for 0.9 where Nx.BinaryBackend (in f64, rounded) gives " <>
          "1.163087010383606, one f32 ulp apart; the other values match"
    }
end

defmodule Mure.NxLinAlgDoctestTest do
  # `doctest Nx.LinAlg`. Its ops run on the node through LAPACK, in double, each f32 result
  # rounded once (docs/protocol.md, "Linear algebra"). Nx's examples print what Nx's own
  # compositions give on Nx.BinaryBackend, and those differ from LAPACK's answers in ways
  # that are not errors of either backend's op coverage:
  #   * digits: Nx's compositions round every f32 step; the node's values are the exact ones
  #     rounded (checked by hand below: sqrt(0.5) is 0.7071067690849304 in f32, the doc
  #     prints 0.7071064710617065);
  #   * choices a factorisation leaves open: LU's pivots (Nx.BinaryBackend picks them from the
  #     original columns, LAPACK by partial pivoting on the updated ones: both are A = P.L.U),
  #     the order of eigenvalues (Nx's Jacobi sweep order; LAPACK ascending, as NumPy) and the
  #     signs of singular and eigen vectors;
  #   * Nx's eigh is an iteration stopped at eps 1.0e-4, and its svd, pinv and least_squares
  #     print its approximation.
  # test/nx_linalg_test.exs checks every op against Nx.BinaryBackend where the answer is
  # unique and against its defining identity (P.L.U = A, U.S.Vt = A, ...) where it is not.
  @exact "the node prints the correctly rounded value, the doc Nx.BinaryBackend's f32 rounding error"
  @pivots "LU pivots: LAPACK's partial pivoting chooses other (equally valid) rows than Nx.BinaryBackend"
  @eigh "eigenvalue order (LAPACK: ascending) and eigenvector basis/signs differ from Nx's Jacobi iteration"
  @signs "signs of singular vectors are a free choice: LAPACK's differ from Nx's (U.S.Vt = A both)"
  @approx "Nx's eigh-based approximation (eps 1.0e-4) is printed; the node gives the exact solution"

  use Mure.NxDoctestCase,
    module: Nx.LinAlg,
    label: " (Nx.LinAlg)",
    exclusions: %{
      "Nx.LinAlg.cholesky/1 (3)" => @exact <> " (0.7155413031578064 for 0.7155418395996094)",
      "Nx.LinAlg.cholesky/1 (4)" =>
        @exact <> " (sqrt(0.5): 0.7071067690849304 for 0.7071064710617065)",
      "Nx.LinAlg.cholesky/1 (5)" => @exact <> " (1.2247449159622192 for 1.2247447967529297)",
      "Nx.LinAlg.cholesky/1 (7)" => @exact <> " (the same, vectorized)",
      "Nx.LinAlg.qr/2 (80)" =>
        @exact <> " (1/sqrt(2): 0.7071067690849304 for 0.7071068286895752)",
      "Nx.LinAlg.matrix_power/2 (44)" =>
        @exact <> " (the inverse of [[1, 2], [3, 4]]: -2.0 for -2.000000476837158)",
      "Nx.LinAlg.matrix_power/2 (46)" =>
        @exact <> " (-110.37469482421875 for -110.37397766113281)",
      "Nx.LinAlg.solve/2 (88)" =>
        @exact <> " (results of about -1e-17 print as -0.0 after Nx.round, Nx's as 0.0)",
      "Nx.LinAlg.lu/2 (36)" => @pivots,
      "Nx.LinAlg.lu/2 (38)" => @pivots,
      "Nx.LinAlg.lu/2 (39)" => @pivots <> " (vectorized)",
      "Nx.LinAlg.eigh/2 (21)" => @eigh,
      "Nx.LinAlg.eigh/2 (22)" => @eigh,
      "Nx.LinAlg.eigh/2 (23)" => @eigh <> " (vectorized)",
      "Nx.LinAlg.svd/2 (93)" => @signs,
      "Nx.LinAlg.svd/2 (94)" => @signs <> " (and 1.0 for 0.9999999403953552)",
      "Nx.LinAlg.svd/2 (95)" => @signs <> " (and 1.0 for 0.9999999403953552)",
      "Nx.LinAlg.pinv/2 (75)" => @approx <> " (4.0 for 3.9924824237823486)",
      "Nx.LinAlg.pinv/2 (76)" => @exact <> " (0.9999999403953552 for 0.9999998807907104)",
      "Nx.LinAlg.least_squares/2 (29)" =>
        @approx <> " ([1.0, 0.0] for [1.0000004768371582, -2.66e-7])",
      "Nx.LinAlg.least_squares/2 (30)" =>
        @approx <>
          " (the line's exact fit, slope 1.0 and intercept -0.95: 0.9999998807907104, -0.949999988079071)",
      "Nx.LinAlg.least_squares/2 (31)" => @approx <> " (-0.05555558 for -0.05534053)"
    }
end
