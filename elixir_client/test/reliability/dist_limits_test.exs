defmodule Mure.Reliability.DistLimitsTest do
  # Limits of the distribution layer against a peer that holds the cookie (or only a socket):
  #   * a fatal signal is reported on stderr in one line and still kills the node.
  # Every node here is launched by hand (launch_logged), so its stderr and /proc are at hand.
  use ExUnit.Case, async: false

  @moduletag :capture_log
  @moduletag timeout: 180_000

  alias Mure.Reliability

  ## Fatal signals

  test "a fatal signal writes one line naming it on stderr; the node still dies of it" do
    node = Reliability.launch_logged([])
    {_, 0} = System.cmd("kill", ["-SEGV", Integer.to_string(node.os_pid)])
    port = node.port

    status =
      receive do
        {^port, {:exit_status, s}} -> s
      after
        10_000 -> flunk("the node did not die of SIGSEGV")
      end

    stderr = File.read!(node.stderr)
    assert status == 128 + 11, "exit status #{status}"

    assert [_] = Regex.scan(~r/^mure_node: fatal signal 11 \(SIGSEGV\) in thread \S+$/m, stderr),
           "stderr: #{stderr}"
  end
end
