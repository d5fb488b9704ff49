# Runs test files of Nx's own suite with Mure.Backend as the global default backend, in a
# BEAM of its own (started by test/nx_suite_test.exs), against a real mure node that this
# script starts. Nx's files are read from the vendored tree and never written.
#
#   elixir -pa ... runner.exs NX_TEST_DIR NOT_RUN_FILE RESULTS_FILE LOG_FILE FILE...
#
# NOT_RUN_FILE holds a term [{file, test name}] of tests excluded from the run (too slow
# for the time budget); they are reported as :excluded.
#
# Nx's tests compare tensors with `assert a == b`, which for Nx.BinaryBackend compares the
# bytes in the struct; a Mure.Backend tensor holds a reference to the node's copy instead.
# So each file is read as Elixir AST and `assert a == b`, `refute a == b` and
# `assert a != b` become the same comparisons of `Mure.NxSuite.Value.plain(a)` and
# `plain(b)`: every Mure.Backend tensor in them (in lists, tuples, maps, structs) is copied
# to Nx.BinaryBackend, and two tensors are then equal exactly when their type, shape,
# names and bytes are (any NaN equal to any NaN: Nx fixes no NaN bit pattern). Nx.Helpers'
# assert_all_close (`unless Nx.all_close(...) == Nx.tensor(1, ...)`) gets the same
# treatment. Nothing else in the files changes.
#
# The results (one {file, test name, :passed | :failed | :excluded, reason} per test, and
# {file, :file_error, reason} for a file that did not compile, and {:fallbacks, counts}: the
# callbacks that ran on Nx.BinaryBackend, Mure.Backend.fallbacks/0) are written to RESULTS_FILE
# as an Erlang term; every failure's full ExUnit report goes to LOG_FILE.

defmodule Mure.NxSuite.Value do
  @moduledoc false

  # The value with every Mure.Backend tensor in it copied to Nx.BinaryBackend.
  def plain(%Nx.Tensor{data: %Mure.Backend{}} = t),
    do: t |> Nx.backend_copy(Nx.BinaryBackend) |> canonical_nan()

  def plain(%Nx.Tensor{} = t), do: t
  def plain(%{__struct__: mod} = s), do: struct(mod, s |> Map.from_struct() |> plain())
  def plain(%{} = map), do: Map.new(map, fn {k, v} -> {k, plain(v)} end)
  def plain([h | t]), do: [plain(h) | plain(t)]

  def plain(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> plain() |> List.to_tuple()

  def plain(other), do: other

  # Nx gives no NaN a particular bit pattern (Nx.BinaryBackend writes 0x7FC00000 for f32;
  # the node's arithmetic, like the CPU's, may give 0xFFC00000): any NaN equals any NaN.
  defp canonical_nan(%Nx.Tensor{type: {:f, _}} = t),
    do: Nx.select(Nx.is_nan(t), Nx.tensor(:nan, type: t.type, backend: Nx.BinaryBackend), t)

  defp canonical_nan(t), do: t
end

defmodule Mure.NxSuite.Rewrite do
  @moduledoc false

  def file(path) do
    path
    |> File.read!()
    |> Code.string_to_quoted!(file: path, columns: true)
    |> Macro.prewalk(&rewrite/1)
  end

  defp rewrite({assertion, meta, [{op, op_meta, [left, right]}]})
       when assertion in [:assert, :refute] and op in [:==, :!=] do
    {assertion, meta, [{op, op_meta, [plain(left), plain(right)]}]}
  end

  # Nx.Helpers.assert_all_close: `unless Nx.all_close(...) == Nx.tensor(1, ...)`.
  defp rewrite({:unless, meta, [{:==, op_meta, [left, right]}, body]}),
    do: {:unless, meta, [{:==, op_meta, [plain(left), plain(right)]}, body]}

  defp rewrite(ast), do: ast

  defp plain(ast), do: quote(do: Mure.NxSuite.Value.plain(unquote(ast)))
end

defmodule Mure.NxSuite.Collector do
  @moduledoc false
  # An ExUnit formatter that records each test's outcome in the ETS table :nx_suite.
  use GenServer

  def init(opts), do: {:ok, opts}

  def handle_cast({:test_finished, %ExUnit.Test{} = test}, state) do
    file = Path.relative_to(test.tags.file, :persistent_term.get(:nx_suite_root))

    {status, reason} =
      case test.state do
        nil ->
          {:passed, nil}

        {:excluded, why} ->
          {:excluded, why}

        {:skipped, why} ->
          {:excluded, why}

        {:failed, failures} ->
          log(test, failures)
          {:failed, summary(failures)}

        {:invalid, module} ->
          {:failed, "setup_all of #{inspect(module)} failed"}
      end

    :ets.insert(:nx_suite, {{file, Atom.to_string(test.name)}, status, reason, test.time})
    {:noreply, state}
  end

  def handle_cast(_event, state), do: {:noreply, state}

  defp summary([{kind, reason, stack} | _]) do
    Exception.format_banner(kind, reason, stack)
    |> String.split("\n", trim: true)
    |> Enum.take(3)
    |> Enum.join(" ")
    |> String.slice(0, 300)
  end

  defp log(test, failures) do
    text = ExUnit.Formatter.format_test_failure(test, failures, 0, 100, fn _, msg -> msg end)

    File.write!(:persistent_term.get(:nx_suite_log), text <> "\n", [:append])
  end
end

[root, not_run_file, results_file, log_file | files] = System.argv()
not_run = not_run_file |> File.read!() |> :erlang.binary_to_term()
root = Path.expand(root)
:persistent_term.put(:nx_suite_root, root)
:persistent_term.put(:nx_suite_log, log_file)
File.write!(log_file, "")

name = :"mure_nx_suite_#{System.unique_integer([:positive])}_#{System.pid()}@127.0.0.1"
{:ok, _} = Node.start(name, :longnames)

Application.put_env(:mure, :node_log_level, :warn)
{:ok, _} = Application.ensure_all_started(:mure)
Logger.configure(level: :warning)
{:ok, _conn} = Mure.start_link(name: :mure_nx_suite, timeout: 60_000)

# Tests run in processes of their own: the global default reaches them. The modules'
# bodies are evaluated here, where module attributes holding tensors must stay escapable
# (Nx.BinaryBackend tensors), so this process keeps Nx.BinaryBackend.
Nx.global_default_backend({Mure.Backend, connection: :mure_nx_suite})
Nx.default_backend(Nx.BinaryBackend)

:ets.new(:nx_suite, [:named_table, :public, :set])

ExUnit.start(
  autorun: false,
  formatters: [Mure.NxSuite.Collector],
  max_cases: 2,
  timeout: 60_000,
  assert_receive_timeout: 1000,
  exclude: [
    :distributed | Enum.map(not_run, fn {_file, name} -> {:test, String.to_atom(name)} end)
  ]
)

for support <- ~w(helpers.ex container.ex backends.ex) do
  path = Path.join([root, "support", support])
  Code.compile_quoted(Mure.NxSuite.Rewrite.file(path), path)
end

file_errors =
  for file <- files,
      error =
        (try do
           Code.compile_quoted(
             Mure.NxSuite.Rewrite.file(Path.join(root, file)),
             Path.join(root, file)
           )

           nil
         rescue
           e -> Exception.format(:error, e, __STACKTRACE__) |> String.slice(0, 500)
         end),
      error != nil,
      do: {file, :file_error, error}

ExUnit.run()

tests =
  for {{file, name}, status, reason, time} <- :ets.tab2list(:nx_suite),
      do: {file, name, status, reason, time}

File.write!(
  results_file,
  :erlang.term_to_binary([{:fallbacks, Mure.Backend.fallbacks()} | file_errors ++ tests])
)
