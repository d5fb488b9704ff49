defmodule Mure.MixProject do
  use Mix.Project

  def project do
    [
      app: :mure,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: deps()
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end

  # Nx is what every user of mure already has: Mure.Backend makes mure an Nx backend. Hex is
  # not reachable on the project's machines, so Nx 0.7.2 (the newest for Elixir 1.14) and its
  # two deps come from vendored source trees (read-only in CI; Mix writes nothing there):
  # $MURE_VENDOR, else shared/vendor beside this checkout, else beside the local checkout this
  # one was cloned from (a clone in /tmp of a working tree); where none is, from Hex.
  defp deps do
    case Enum.find(vendor_candidates(), &File.dir?(Path.join(&1, "nx"))) do
      nil ->
        [{:nx, "~> 0.7.2"}]

      vendor ->
        [
          {:nx, path: Path.join(vendor, "nx")},
          {:complex, path: Path.join(vendor, "complex"), override: true},
          {:telemetry, path: Path.join(vendor, "telemetry"), override: true}
        ]
    end
  end

  defp vendor_candidates do
    origin =
      case System.cmd("git", ["-C", __DIR__, "config", "--get", "remote.origin.url"],
             stderr_to_stdout: true
           ) do
        {"/" <> _ = path, 0} -> [Path.expand("../shared/vendor", String.trim(path))]
        _ -> []
      end

    List.wrap(System.get_env("MURE_VENDOR")) ++
      [Path.expand("../../shared/vendor", __DIR__)] ++ origin
  rescue
    # No git on the PATH: the other places only.
    ErlangError ->
      List.wrap(System.get_env("MURE_VENDOR")) ++ [Path.expand("../../shared/vendor", __DIR__)]
  end

  # test/support holds helpers that :peer nodes run, so they must be real
  # compiled modules on the code path (not .exs files held in memory).
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
