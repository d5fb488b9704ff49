defmodule Mure.DefnCase do
  @moduledoc false
  # What the test modules of Mure.Compiler share: each test gets a node of its own (context:
  # conn, and backend, {Mure.Backend, connection: conn}), Nx.Defn and Mure.Test.Counting
  # imported, and the helpers below. Log lines show only for a failing test.
  use ExUnit.CaseTemplate

  using do
    quote do
      import Nx.Defn
      import Mure.Test.Counting
      import Mure.DefnCase
      @moduletag :capture_log
    end
  end

  setup do
    conn = start_supervised!({Mure, []})
    %{conn: conn, backend: {Mure.Backend, connection: conn}}
  end

  @doc false
  # `fun` compiled with compiler: Mure on `conn` (more options appended).
  def mure(fun, conn, opts \\ []),
    do: Nx.Defn.jit(fun, [compiler: Mure, connection: conn] ++ opts)

  @doc false
  # The reference: `fun` on Nx.Defn.Evaluator with Nx.BinaryBackend copies of `args`
  # (numbers become tensors).
  def reference(fun, args) do
    args = Enum.map(args, &Nx.backend_copy(Nx.to_tensor(&1), Nx.BinaryBackend))
    Nx.Defn.jit_apply(fun, args, compiler: Nx.Defn.Evaluator)
  end

  @doc false
  # The tensor, or every tensor of a container, on Nx.BinaryBackend.
  def binary(%Nx.Tensor{} = t), do: Nx.backend_copy(t, Nx.BinaryBackend)
  def binary(container), do: Nx.Defn.Composite.traverse(container, &binary/1)
end
