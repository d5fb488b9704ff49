defmodule Mure.NxDoctestTest do
  # Nx's own doctests (`doctest Nx`, 946 at 0.7.2) with Mure.Backend as the default backend,
  # against a real node, as Torchx and EXLA run them. Prints one line:
  #   nx doctests on Mure.Backend: P of 946 passed, E excluded
  # Every excluded function is listed below with its reason.
  use ExUnit.Case, async: false

  # The fallbacks' debug lines (Mure.Backend.Fallback) are shown only for a failing doctest.
  @moduletag :capture_log

  # {function, arity} => reason
  @exclusions %{
    {:erf_inv, 1} =>
      "printed f32 differs in the last place: the node computes erf_inv in f32 and gives " <>
        "1.1630871295928955 for 0.9 where Nx.BinaryBackend (in f64, rounded) gives " <>
        "1.163087010383606, one f32 ulp apart; the other two values match"
  }
  @excluded Map.keys(@exclusions)

  @total length(ExUnit.DocTest.__doctests__(Nx, []))
  # MURE_NX_DOCTEST_ONLY="map/3,conv/3" runs only those functions' doctests (a debugging aid).
  @only (for f <- String.split(System.get_env("MURE_NX_DOCTEST_ONLY", ""), ",", trim: true) do
           [name, arity] = String.split(f, "/")
           {String.to_atom(name), String.to_integer(arity)}
         end)
  run =
    ExUnit.DocTest.__doctests__(Nx, if(@only == [], do: [except: @excluded], else: [only: @only]))

  @ran length(run)
  @counter {__MODULE__, :passed}

  setup_all do
    conn = start_supervised!({Mure, []})
    :persistent_term.put(@counter, :counters.new(1, []))

    on_exit(fn ->
      passed = :counters.get(:persistent_term.get(@counter), 1)

      IO.puts(
        "\nnx doctests on Mure.Backend: #{passed} of #{@total} passed, " <>
          "#{@total - @ran} excluded"
      )
    end)

    %{conn: conn}
  end

  setup %{conn: conn} do
    Nx.default_backend({Mure.Backend, connection: conn})
    :ok
  end

  # What `doctest Nx, except: ...` defines, with each test counted when it passes
  # (ExUnit.DocTest.__doctests__/2 is what ExUnit's doctest/2 macro expands to in 1.14).
  file = ExUnit.DocTest.__file__(Nx)

  for {name, test} <- run do
    @file file
    doc = ExUnit.Case.register_test(__ENV__, :doctest, name, [])

    def unquote(doc)(_) do
      unquote(test)
      :counters.add(:persistent_term.get(@counter), 1, 1)
    end
  end
end
