defmodule Mure.LimitsTest do
  # Memory limit, tensor ownership, bounded queues, and caller-owned timeouts.
  use ExUnit.Case, async: true

  @moduletag :capture_log

  import Mure.TestSupport

  alias Mure.{ConnectionError, Error}

  @limit 1024 * 1024

  describe "memory limit" do
    setup do
      %{conn: start_supervised!({Mure, memory_limit: @limit})}
    end

    test "an upload past the limit is refused and succeeds after a free", %{conn: conn} do
      assert Mure.stats!(conn).memory_limit_bytes == @limit
      assert Mure.hello!(conn).limits.memory_limit_bytes == @limit

      chunk = :binary.copy(<<1>>, 600 * 1024)
      first = Mure.upload!(conn, chunk, {:u, 8}, {byte_size(chunk)})

      assert {:error, %Error{kind: :out_of_memory, message: message}} =
               Mure.upload(conn, chunk, {:u, 8}, {byte_size(chunk)})

      assert is_binary(message) and message != ""

      # Nothing was allocated by the refused upload.
      stats = Mure.stats!(conn)
      assert stats.connection_tensors == 1
      assert stats.memory_used_bytes <= @limit

      :ok = Mure.free(first)
      second = Mure.upload!(conn, chunk, {:u, 8}, {byte_size(chunk)})
      assert Mure.download!(second) == chunk
    end

    test "a compute result past the limit is refused", %{conn: conn} do
      # Two 120x1024 f32 operands (480 KiB each, and 256 bytes of bookkeeping per handle) fit;
      # their 1024x1024 product (4 MiB) does not.
      a = Mure.upload!(conn, :binary.copy(<<0::32>>, 120 * 1024), {:f, 32}, {1024, 120})
      b = Mure.upload!(conn, :binary.copy(<<0::32>>, 120 * 1024), {:f, 32}, {120, 1024})
      assert {:error, %Error{kind: :out_of_memory}} = Mure.matmul(a, b)
      assert Mure.stats!(conn).connection_tensors == 2
    end
  end

  describe "ownership" do
    setup do
      %{conn: start_supervised!({Mure, []})}
    end

    test "tensors die with their owner process", %{conn: conn} do
      baseline = Mure.stats!(conn)
      parent = self()

      owner =
        spawn(fn ->
          for i <- 1..5, do: Mure.upload!(conn, :binary.copy(<<i>>, 1000), {:u, 8}, {1000})
          send(parent, :uploaded)

          receive do
            :exit -> :ok
          end
        end)

      assert_receive :uploaded, 5_000
      assert Mure.stats!(conn).tensors == baseline.tensors + 5
      send(owner, :exit)

      assert wait_until(fn -> Mure.stats!(conn).tensors == baseline.tensors end, 5_000),
             "tensors of a dead owner were not freed: #{inspect(Mure.stats!(conn))} vs #{inspect(baseline)}"

      assert Mure.stats!(conn).memory_used_bytes == baseline.memory_used_bytes
    end

    test "a killed owner also frees its tensors and compute results", %{conn: conn} do
      baseline = Mure.stats!(conn).tensors
      parent = self()

      owner =
        spawn(fn ->
          a = Mure.upload!(conn, pack([1.0, 2.0, 3.0, 4.0], 32), {:f, 32}, {2, 2})
          _ = Mure.matmul!(a, a)
          send(parent, :done)
          Process.sleep(:infinity)
        end)

      assert_receive :done, 5_000
      assert Mure.stats!(conn).tensors == baseline + 2
      Process.exit(owner, :kill)
      assert wait_until(fn -> Mure.stats!(conn).tensors == baseline end, 5_000)
    end

    test "tensors of a living owner stay", %{conn: conn} do
      baseline = Mure.stats!(conn).tensors
      t = Mure.upload!(conn, <<1, 2, 3>>, {:u, 8}, {3})
      Process.sleep(200)
      assert Mure.stats!(conn).tensors == baseline + 1
      assert Mure.download!(t) == <<1, 2, 3>>
    end
  end

  describe "queues and timeouts" do
    setup do
      %{conn: start_supervised!({Mure, test_ops: true, queue_depth: 2, timeout: 300})}
    end

    test "a full queue answers :overloaded", %{conn: conn} do
      tasks = for _ <- 1..10, do: Task.async(fn -> Mure.busy(conn, 300, timeout: 10_000) end)
      results = Task.await_many(tasks, 15_000)
      overloaded = Enum.count(results, &match?({:error, %Error{kind: :overloaded}}, &1))
      ok = Enum.count(results, &match?({:ok, 300}, &1))
      assert overloaded >= 1, "expected some :overloaded errors, got #{inspect(results)}"
      assert ok >= 2, "expected some busy calls to complete, got #{inspect(results)}"
      assert ok + overloaded == 10, "unexpected results: #{inspect(results)}"
      assert_raise Error, ~r/overloaded/, fn -> raise Error.from_reason(:overloaded) end
    end

    test "a call times out with the caller's timeout and the late reply is dropped", %{conn: conn} do
      assert {:error, %ConnectionError{reason: :timeout}} = Mure.busy(conn, 400, timeout: 100)
      # The reply arrives after ~400 ms; it must not land in our mailbox.
      Process.sleep(600)
      refute_received _
      assert Mure.info(conn).inflight == 0
      assert {:ok, 10} = Mure.busy(conn, 10, timeout: 5_000)
    end

    test "the connection's default timeout applies when the call gives none", %{conn: conn} do
      started = System.monotonic_time(:millisecond)
      assert {:error, %ConnectionError{reason: :timeout}} = Mure.busy(conn, 800)
      elapsed = System.monotonic_time(:millisecond) - started
      assert elapsed >= 250 and elapsed < 750, "timed out after #{elapsed} ms, default is 300"
      Process.sleep(700)
      refute_received _
      assert_raise ConnectionError, ~r/timeout/, fn -> Mure.busy!(conn, 800) end
    end

    test "timeout: :infinity waits", %{conn: conn} do
      assert {:ok, 500} = Mure.busy(conn, 500, timeout: :infinity)
    end
  end
end
