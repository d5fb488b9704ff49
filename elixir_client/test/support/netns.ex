defmodule Mure.Test.Netns do
  @moduledoc false
  # The network-namespace cluster that scripts/cluster builds (three hosts, 10.77.0.11-13, each
  # with its own epmd and node), as the :netns tests drive it.
  import ExUnit.Assertions

  @script Path.expand("../../../scripts/cluster", __DIR__)
  @hosts ["10.77.0.11", "10.77.0.12", "10.77.0.13"]

  @doc "The path of scripts/cluster."
  def script, do: @script

  @doc "The hosts' addresses, host 1 first."
  def hosts, do: @hosts

  @doc "Runs scripts/cluster with `args`; the test fails with its output unless it exits 0."
  def script!(args) do
    {out, status} = System.cmd(@script, args, stderr_to_stdout: true)
    assert status == 0, "scripts/cluster #{Enum.join(args, " ")} failed (#{status}):\n#{out}"
    out
  end
end
