# Nx's own defn tests (the vendored Nx 0.7.2: test/nx/defn/*_test.exs and
# test/nx/defn_test.exs, grad_test.exs among them) with Mure.Compiler as the global default
# compiler, against a real node. test/nx_defn_suite_test.exs runs it in a BEAM of its own
# (~1.5 min on 2 cores) and checks its count; by hand:
#
#     cd elixir_client && MIX_ENV=test mix run test/support/nx_defn_suite.exs [NAME ...]
#
# NAME (e.g. grad_test) runs only the files whose names contain it. The vendored files are
# READ-ONLY: they are copied to a temporary directory and loaded from there, with Nx's
# test support files. Prints `defn tests on Mure: P of R passed, E excluded`.
#
# Two adaptations, both of the harness, not of the compiler:
#   * Nx's tests compare results with `==` against Nx.BinaryBackend tensors (and
#     Nx.Helpers compares Nx.all_close/3's result with `==` to a BinaryBackend tensor), as
#     Nx.Defn.Evaluator's results are. Mure.Compiler's results are Mure.Backend tensors, so
#     the compiler the tests get (Mure.DefnSuite.Compiler below) is Mure.Compiler with each
#     result copied to Nx.BinaryBackend after it ran on the node (a stream's too: what
#     Nx.Stream.recv/1 and done/1 give).
#   * Nx's test support implements Nx.Container/Nx.LazyContainer for its own structs; this
#     project's protocols are consolidated, so they are reloaded unconsolidated here.
#
# Excluded: the :distributed tests (they need Nx's peer nodes), as Nx's own helper does
# when peers cannot start.

vendor =
  Enum.find(
    [
      System.get_env("MURE_VENDOR"),
      Path.expand("../../../../shared/vendor", __DIR__),
      "/work/shared/vendor"
    ],
    &(&1 && File.dir?(Path.join(&1, "nx/test")))
  ) || raise "the vendored Nx (with its tests) was not found; set MURE_VENDOR"

tests = Path.join(vendor, "nx/test")
names = System.argv()

# Nx.Serving's tests (serving_test.exs: batching and partitions over defn-compiled
# functions) run only when named: test/nx_serving_test.exs runs them.
serving = if "serving_test" in names, do: [Path.join(tests, "nx/serving_test.exs")], else: []

files =
  (Path.wildcard(Path.join(tests, "nx/defn/*_test.exs")) ++ [Path.join(tests, "nx/defn_test.exs")])
  |> Enum.filter(fn f ->
    names == [] or Enum.any?(names, &String.contains?(Path.basename(f), &1))
  end)
  |> Kernel.++(serving)

dir = Path.join(System.tmp_dir!(), "mure_defn_suite_#{System.unique_integer([:positive])}")
File.mkdir_p!(dir)

# Copied under the same relative paths (test/nx/...), and loaded from there: the tests
# that check compile errors compare messages that name the file.
copies =
  for f <- files do
    relative = Path.relative_to(f, Path.dirname(tests))
    File.mkdir_p!(Path.join(dir, Path.dirname(relative)))
    File.cp!(f, Path.join(dir, relative))
    relative
  end

# Unconsolidated protocols, so that the support files' implementations are found.
for p <- [Nx.Container, Nx.LazyContainer, Nx.Stream] do
  :code.purge(p)
  :code.delete(p)
end

for path <- :code.get_path(),
    String.ends_with?(to_string(path), "consolidated"),
    do: :code.del_path(path)

for p <- [Nx.Container, Nx.LazyContainer, Nx.Stream], do: {:module, _} = Code.ensure_loaded(p)

for f <- Path.wildcard(Path.join(tests, "support/*.ex")), do: Code.require_file(f)

defmodule Mure.DefnSuite.Compiler do
  @moduledoc false
  # Mure.Compiler, with results copied to Nx.BinaryBackend (see above).
  @behaviour Nx.Defn.Compiler

  @impl true
  def __jit__(key, vars, fun, args_list, opts),
    do: __compile__(key, vars, fun, opts).(args_list)

  @impl true
  def __compile__(key, vars, fun, opts) do
    compiled = Mure.Compiler.__compile__(key, vars, fun, opts)

    fn args_list ->
      args_list
      |> compiled.()
      |> Enum.map(
        &Nx.Defn.Composite.traverse(&1, fn t -> Nx.backend_transfer(t, Nx.BinaryBackend) end)
      )
    end
  end

  @impl true
  def __stream__(key, input, acc, vars, fun, args_list, opts) do
    key
    |> Mure.Compiler.__stream__(input, acc, vars, fun, args_list, opts)
    |> Enum.map(&struct(Mure.DefnSuite.Stream, stream: &1, pid: &1.pid))
  end

  @impl true
  defdelegate __partitions_options__(opts), to: Mure.Compiler
  @impl true
  defdelegate __to_backend__(opts), to: Mure.Compiler
end

defmodule Mure.DefnSuite.Stream do
  @moduledoc false
  # Mure.Compiler's stream, its outputs and final accumulator copied to Nx.BinaryBackend.
  defstruct [:stream, :pid]

  defimpl Nx.Stream do
    def send(%{stream: s}, data), do: Nx.Stream.send(s, data)
    def recv(%{stream: s}), do: s |> Nx.Stream.recv() |> binary()
    def done(%{stream: s}), do: s |> Nx.Stream.done() |> binary()

    defp binary(container),
      do: Nx.Defn.Composite.traverse(container, &Nx.backend_transfer(&1, Nx.BinaryBackend))
  end
end

unless Node.alive?(),
  do: {:ok, _} = Node.start(:"mure_defn_suite_#{System.pid()}@127.0.0.1", :longnames)

Application.put_env(:mure, :node_log_level, :error)
# Run as a plain `elixir -pa ...` (test/nx_defn_suite_test.exs) nothing is started yet.
{:ok, _} = Application.ensure_all_started(:mure)
{:ok, conn} = Mure.start_link(timeout: 60_000)
Nx.Defn.global_default_options(compiler: Mure.DefnSuite.Compiler, connection: conn)

Logger.configure(level: :info)

# Excluded groups (describe blocks), with the reason: none (svd, which took minutes as Nx's
# defn composition, is one LAPACK op on the node now).
exclusions = []

for {group, why} <- exclusions, do: IO.puts("excluded: describe #{inspect(group)}: #{why}")
timeout = String.to_integer(System.get_env("MURE_DEFN_SUITE_TIMEOUT", "30000"))

# ExUnit's trace formatter names each test and its time as it runs.
ExUnit.start(
  autorun: false,
  exclude: Enum.map(exclusions, fn {group, _} -> {:describe, group} end) ++ [:distributed],
  assert_receive_timeout: 1000,
  timeout: timeout,
  trace: System.get_env("MURE_DEFN_SUITE_TRACE") == "1"
)

{:ok, _, _} = File.cd!(dir, fn -> Kernel.ParallelCompiler.require(copies) end)
# Run from the copies' root too: compile errors name files relative to the cwd.
result = File.cd!(dir, &ExUnit.run/0)
File.rm_rf!(dir)

IO.puts(
  "defn tests on Mure#{if names != [], do: " (#{Enum.join(names, ", ")})"}: " <>
    "#{result.total - result.failures - result.excluded - result.skipped} of " <>
    "#{result.total - result.excluded} passed, #{result.excluded} excluded"
)
