defmodule Mure.CrashTest do
  # Crash isolation: the node dies with >= 100 calls in flight. Every caller gets a
  # ConnectionError within 1 s, the test BEAM lives, the supervisor starts a new node.
  # Not async: the 1 s bound is a timing assertion.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  import Mure.TestSupport

  alias Mure.ConnectionError

  @callers 150

  setup do
    name = :"mure_crash_#{System.unique_integer([:positive])}"

    children = [{Mure, name: name, test_ops: true}]

    sup =
      start_supervised!(%{
        id: :mure_sup,
        start: {Supervisor, :start_link, [children, [strategy: :one_for_one]]},
        type: :supervisor
      })

    %{name: name, sup: sup}
  end

  for signal <- ["KILL", "SEGV"] do
    test "SIG#{signal} of the node with #{@callers} calls in flight", %{name: name, sup: sup} do
      signal = unquote(signal)
      old_pid = Process.whereis(name)
      %{node: old_node, os_pid: os_pid} = Mure.info(name)
      assert is_integer(os_pid)
      parent = self()

      # Busy ops serialize on the BLIS executor: the first runs, the rest queue.
      tasks =
        for i <- 1..@callers do
          Task.async(fn ->
            send(parent, {:sent, i})
            result = Mure.busy(name, 5_000, timeout: 60_000)
            {result, System.monotonic_time(:millisecond)}
          end)
        end

      for i <- 1..@callers, do: assert_receive({:sent, ^i}, 5_000)

      assert wait_until(fn -> Mure.info(name).inflight == @callers end, 5_000),
             "only #{Mure.info(name).inflight} calls in flight"

      # Make sure the node holds them (one running, the rest queued).
      Process.sleep(300)
      {_, 0} = System.cmd("kill", ["-#{signal}", Integer.to_string(os_pid)])
      killed_at = System.monotonic_time(:millisecond)

      results = Task.yield_many(tasks, 3_000)
      answered = Enum.count(results, fn {_task, res} -> res != nil end)

      if answered < @callers do
        Enum.each(tasks, &Task.shutdown(&1, :brutal_kill))

        flunk(
          "#{@callers - answered} of #{@callers} callers got no reply within 3 s of " <>
            "kill -#{signal}; node os process alive: #{os_alive?(os_pid)}"
        )
      end

      for {_task, {:ok, {result, at}}} <- results do
        assert {:error, %ConnectionError{reason: reason}} = result
        assert reason in [:node_down, :node_exited, :closed]
        assert at - killed_at < 1_000, "a caller waited #{at - killed_at} ms after the kill"
      end

      assert wait_until(fn -> not os_alive?(os_pid) end, 2_000),
             "the node process #{os_pid} is still alive"

      # The supervisor restarts the connection, which launches a fresh node.
      assert wait_until(
               fn ->
                 pid = Process.whereis(name)
                 pid && pid != old_pid && match?({:ok, _}, Mure.hello(name))
               end,
               10_000
             ),
             "the connection was not restarted"

      %{node: new_node, os_pid: new_os_pid, state: :connected} = Mure.info(name)
      assert new_node != old_node
      assert new_os_pid != os_pid
      assert Process.alive?(sup)

      assert {:ok, 10} = Mure.busy(name, 10)
      t = Mure.upload!(name, <<1, 2, 3, 4>>, {:u, 8}, {4})
      assert Mure.download!(t) == <<1, 2, 3, 4>>
      refute old_node in Node.list(:hidden)
    end
  end

  test "a caller blocked on a dead connection process gets an error", %{name: name} do
    pid = Process.whereis(name)
    task = Task.async(fn -> Mure.busy(name, 5_000, timeout: 30_000) end)
    assert wait_until(fn -> Mure.info(name).inflight == 1 end)
    Process.exit(pid, :kill)
    assert {:error, %ConnectionError{reason: :closed}} = Task.await(task, 2_000)
  end
end
