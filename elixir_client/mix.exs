defmodule Mure.MixProject do
  use Mix.Project

  def project do
    [
      app: :mure,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: []
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end

  # test/support holds helpers that :peer nodes run, so they must be real
  # compiled modules on the code path (not .exs files held in memory).
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
