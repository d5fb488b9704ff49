defmodule Mure.NxCase do
  @moduledoc false
  # What the test modules of Nx on Mure.Backend share: each test gets a node of its own
  # (started under the test's supervisor) with Mure.Backend on it as the process's default
  # backend (context: conn, mure), and the helpers below. Log lines (the fallbacks' debug
  # lines, a killed node's warnings) show only for a failing test.
  use ExUnit.CaseTemplate

  using do
    quote do
      import Mure.NxCase
      @moduletag :capture_log
    end
  end

  setup do
    conn = start_supervised!({Mure, []})
    mure = {Mure.Backend, connection: conn}
    Nx.default_backend(mure)
    %{conn: conn, mure: mure}
  end

  @doc false
  # True for a tensor resident on a node.
  def on_node?(%Nx.Tensor{data: %Mure.Backend{}}), do: true
  def on_node?(_), do: false

  @doc false
  # The tensor on Nx.BinaryBackend: a reference, or a node result to compare with one.
  def ref(t), do: Nx.backend_copy(t, Nx.BinaryBackend)

  @doc false
  # Runs `fun` and asserts that it made no fallback to Nx.BinaryBackend (this process's
  # fallbacks only: Mure.Test.Fallbacks).
  def no_fallbacks(fun) do
    {result, fallbacks} = Mure.Test.Fallbacks.during(fun)

    ExUnit.Assertions.assert(
      fallbacks == %{},
      "fell back to Nx.BinaryBackend: #{inspect(fallbacks)}"
    )

    result
  end
end
