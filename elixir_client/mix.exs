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
  # two deps come from the vendored source trees in ../../shared/vendor (read-only in CI; Mix
  # writes nothing there); where that folder is absent they come from Hex.
  defp deps do
    vendor = Path.expand("../../shared/vendor", __DIR__)

    if File.dir?(vendor) do
      [
        {:nx, path: Path.join(vendor, "nx")},
        {:complex, path: Path.join(vendor, "complex"), override: true},
        {:telemetry, path: Path.join(vendor, "telemetry"), override: true}
      ]
    else
      [{:nx, "~> 0.7.2"}]
    end
  end

  # test/support holds helpers that :peer nodes run, so they must be real
  # compiled modules on the code path (not .exs files held in memory).
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
