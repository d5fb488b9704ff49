defmodule Mure.TickTest do
  # A long op must not starve the node's distribution: the node answers ticks on its
  # socket thread while the executor computes. A peer with net_ticktime 2 would declare
  # the node down after ~2-3 s of silence; the op takes 30 s.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  @moduletag :long_op
  @moduletag timeout: 120_000

  test "a 30 s op completes and the node is never declared down (peer net_ticktime 2)" do
    conn = start_supervised!({Mure, test_ops: true})
    node = Mure.info(conn).node
    {peer, _peer_node} = start_peer(:mure_tick, args: [~c"-kernel", ~c"net_ticktime", ~c"2"])
    on_exit(fn -> stop_peer(peer) end)

    report = :peer.call(peer, Mure.TestSupport, :peer_busy_watch, [node, 30_000, 45_000], 60_000)

    assert report.net_ticktime == 2
    assert report.result == {:ok, 30_000}, "the long op failed: #{inspect(report)}"
    assert report.nodedowns == [], "the peer saw the node go down: #{inspect(report)}"
    assert report.connection_state == :connected
    assert report.elapsed_ms >= 30_000

    # Meanwhile the node stayed available to this BEAM too.
    assert {:ok, %{protocol: 1}} = Mure.hello(conn)
  end
end
