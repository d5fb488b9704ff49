defmodule Mure.NxSuiteTest do
  # Nx's own test files that exercise a backend, run with Mure.Backend as the global
  # default backend against a real node (issue 13, "the measure"). Run it alone with
  #
  #     mix test test/nx_suite_test.exs        (or: mix test --only nx_suite)
  #
  # The files run in a BEAM of their own (test/nx_suite/runner.exs: its own ExUnit, its own
  # mure node), from a copy of the vendored test/ folder in a temporary directory (the
  # vendored tree is read-only). It prints one line per file and a total:
  #
  #     nx tests on Mure.Backend: nx_test.exs 210 of 224 passed, 0 excluded
  #
  # and fails when a test that is not in test/nx_suite/expected.exs (every expected
  # failure with its reason) fails, or a file does not compile: the counts reached are the
  # floor. A listed test that passes now is reported (remove it from the list).
  #
  # Which of Nx's files (0.7.2, test/) are backend tests:
  #   run: nx_test.exs, nx/{lin_alg,complex,non_finite,random,vectorize,tensor,batch,
  #        heatmap,container,lazy_container,constants}_test.exs: every op and creation
  #        function there runs on the default backend (random_test and a few others go
  #        through Nx.Defn.Evaluator, which calls the backend op by op);
  #   not: defn_test.exs, defn/*: the compiler (issue 14); doctest_test.exs: `doctest Nx`,
  #        run with its exclusions by test/nx_doctest_test.exs; type_test.exs,
  #        shape_test.exs: Nx.Type and Nx.Shape compute on tuples, no tensor is made;
  #        optional_test.exs: Nx's dispatch of optional callbacks to backends it defines
  #        and names explicitly; serving_test.exs: Nx.Serving's processes, batching and
  #        distribution (:peer nodes), over defn-compiled functions.
  use ExUnit.Case, async: false

  @moduletag :nx_suite
  @moduletag timeout: 900_000

  @files ~w(nx_test.exs nx/lin_alg_test.exs nx/complex_test.exs nx/non_finite_test.exs
            nx/random_test.exs nx/vectorize_test.exs nx/tensor_test.exs nx/batch_test.exs
            nx/heatmap_test.exs nx/container_test.exs nx/lazy_container_test.exs
            nx/constants_test.exs)

  # The whole run is bounded: it is killed after this long.
  @limit_s 600

  test "Nx's backend test files pass on Mure.Backend, except the listed ones" do
    %{not_run: not_run, failing: failing} =
      Code.eval_file(path("nx_suite/expected.exs")) |> elem(0)

    vendor_test = vendor_test_dir()
    tmp = Path.join(System.tmp_dir!(), "mure_nx_suite_#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)
    # The fixtures are read as test/fixtures/... from the current directory.
    File.cp_r!(vendor_test, Path.join(tmp, "test"))

    not_run_file = Path.join(tmp, "not_run.bin")
    File.write!(not_run_file, :erlang.term_to_binary(Map.keys(not_run)))
    results_file = Path.join(tmp, "results.bin")
    log_file = Path.join(tmp, "failures.log")

    code_path =
      Path.wildcard(Path.join(Mix.Project.build_path(), "lib/*/ebin"))
      |> Enum.flat_map(&["-pa", &1])

    args =
      ["#{@limit_s}", System.find_executable("elixir")] ++
        code_path ++
        [
          path("nx_suite/runner.exs"),
          Path.join(tmp, "test"),
          not_run_file,
          results_file,
          log_file
        ] ++
        @files

    started = System.monotonic_time(:millisecond)
    {output, status} = System.cmd("timeout", args, cd: tmp, stderr_to_stdout: true)
    seconds = (System.monotonic_time(:millisecond) - started) / 1000

    assert status == 0 and File.exists?(results_file),
           "the Nx suite's BEAM exited with status #{status} after #{seconds} s " <>
             "(124: killed at #{@limit_s} s):\n#{output}"

    results = results_file |> File.read!() |> :erlang.binary_to_term()
    file_errors = for {file, :file_error, error} <- results, do: {file, error}

    tests =
      for {file, name, status, reason, _time} <- results, do: {{file, name}, {status, reason}}

    tests = Map.new(tests)

    slowest =
      for({file, name, _, _, time} <- results, do: {time, file, name})
      |> Enum.sort(:desc)
      |> Enum.take(8)
      |> Enum.map_join("\n", fn {us, f, n} -> "  #{div(us, 1000)} ms  #{f}: #{n}" end)

    IO.puts("nx tests on Mure.Backend: the slowest tests:\n" <> slowest)

    [fallbacks] = for {:fallbacks, counts} <- results, do: counts

    IO.puts(
      "nx tests on Mure.Backend: callbacks run on Nx.BinaryBackend (the node lacks the op " <>
        "or type): #{inspect(Enum.sort_by(fallbacks, &(-elem(&1, 1))))}"
    )

    for file <- @files do
      in_file = for {{^file, _}, {status, _}} <- tests, do: status
      passed = Enum.count(in_file, &(&1 == :passed))
      excluded = Enum.count(in_file, &(&1 == :excluded))

      IO.puts(
        "nx tests on Mure.Backend: #{file} #{passed} of #{length(in_file)} passed, " <>
          "#{excluded} excluded"
      )
    end

    counts = tests |> Map.values() |> Enum.frequencies_by(&elem(&1, 0))

    IO.puts(
      "nx tests on Mure.Backend: total #{counts[:passed] || 0} of #{map_size(tests)} passed, " <>
        "#{counts[:excluded] || 0} excluded, in #{round(seconds)} s"
    )

    unexpected =
      for {key, {:failed, reason}} <- tests, not Map.has_key?(failing, key), do: {key, reason}

    now_passing = for {key, {:passed, _}} <- tests, Map.has_key?(failing, key), do: key

    missing =
      for key <- Map.keys(failing) ++ Map.keys(not_run), not Map.has_key?(tests, key), do: key

    unless now_passing == [] do
      IO.puts(
        "nx tests on Mure.Backend: these listed failures pass now; remove them from " <>
          "test/nx_suite/expected.exs:\n" <> Enum.map_join(now_passing, "\n", &inspect/1)
      )
    end

    assert file_errors == [], "Nx test files that did not compile: #{inspect(file_errors)}"

    assert missing == [],
           "listed in test/nx_suite/expected.exs but not in Nx's files: #{inspect(missing)}"

    assert unexpected == [],
           "Nx tests that fail on Mure.Backend and are not listed in test/nx_suite/expected.exs " <>
             "(full reports in the run's failures.log):\n" <>
             Enum.map_join(unexpected, "\n", fn {{f, n}, why} -> "#{f}: #{n}\n    #{why}" end) <>
             "\n" <> File.read!(log_file)
  end

  defp path(rel), do: Path.expand(rel, __DIR__)

  # Nx's test/ folder beside the Nx the client was built with (the vendored tree).
  defp vendor_test_dir do
    nx_src = Mix.Project.deps_paths()[:nx]
    dir = Path.join(nx_src, "test")

    unless File.dir?(Path.join(dir, "nx")) do
      flunk("Nx's own test files are not at #{dir}: this test needs the vendored Nx source tree")
    end

    dir
  end
end
