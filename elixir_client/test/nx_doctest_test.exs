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
  # `doctest Nx.LinAlg`.
  # Nx 0.7's eigh is an iterative approximation (its residual max |A v - l v| is ~1e-3 to
  # 1e-2 on Nx.BinaryBackend itself); svd, pinv and least_squares are built on it. The
  # node computes every f32 op in f32 (Nx.BinaryBackend in f64, rounded per op), which
  # steers the iteration to another approximation of the same quality: measured on
  # [[2, 5], [5, 6]], max |A v - l v| is 2.9e-3 on the node and 6.2e-3 on Nx.BinaryBackend;
  # for the repeated eigenvalue -1 of [[0, 1, 2], [1, 0, 2], [2, 2, 3]] it gives another
  # (equally valid) basis of the eigenspace. The printed digits then differ.
  @eigh "printed digits of an approximate eigh differ (f32 ops in f32 on the node; see above)"
  @f32 "printed f32 differs in the last place(s): the node accumulates f32 in f32"

  use Mure.NxDoctestCase,
    module: Nx.LinAlg,
    label: " (Nx.LinAlg)",
    exclusions: %{
      "Nx.LinAlg.lu/2 (36)" => @f32 <> " (p.l.u gives 6.000000476837158 for 6.0)",
      "Nx.LinAlg.lu/2 (38)" => @f32 <> " (p.l.u gives 4.000000476837158 for 4.0)",
      "Nx.LinAlg.cholesky/1 (5)" => @f32 <> " (1.587713360786438 for 1.5877134799957275)",
      "Nx.LinAlg.solve/2 (88)" =>
        @f32 <> " (two results of about -1e-7 instead of +1e-7 print as -0.0 after Nx.round)",
      "Nx.LinAlg.eigh/2 (21)" => @eigh <> " (repeated eigenvalue: another basis)",
      "Nx.LinAlg.eigh/2 (22)" => @eigh <> " (0.5603616833686829 for 0.5612090229988098)",
      "Nx.LinAlg.eigh/2 (23)" => @eigh <> " (the same, vectorized)",
      "Nx.LinAlg.least_squares/2 (30)" => @eigh <> " (via svd: 1.0040979 for 0.9966151)",
      "Nx.LinAlg.least_squares/2 (31)" => @eigh <> " (via svd: -0.0559931 for -0.0553405)",
      "Nx.LinAlg.pinv/2 (75)" => @eigh <> " (via svd: 4.0040994 for 3.9924824)"
    }
end
