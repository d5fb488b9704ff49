defmodule Mure.Reliability.OverloadTest do
  # Backpressure: with a small --queue-depth, a full queue answers
  # {:error, %Mure.Error{kind: :overloaded}} at once (< 50 ms), the queue never holds more
  # than its depth, and requests succeed again as soon as the load drops.
  use ExUnit.Case, async: false

  @moduletag :capture_log
  @moduletag timeout: 120_000

  import Mure.TestSupport

  alias Mure.{Error, Reliability}

  @depth 4

  test "a full queue answers :overloaded at once, stays bounded, and recovers" do
    conn = start_supervised!({Mure, test_ops: true, queue_depth: @depth})
    a = Mure.upload!(conn, pack(Enum.map(1..16, &(&1 * 1.0)), 32), {:f, 32}, {4, 4})

    # Fill the BLIS queue: @depth long ops (one runs, the others wait).
    fillers =
      for _ <- 1..@depth, do: Task.async(fn -> Mure.busy(conn, 1_500, timeout: 20_000) end)

    assert wait_until(fn -> Mure.stats!(conn).queued == @depth end, 5_000)

    # A sampler watches the queue while 200 more callers pile on.
    sampler = Task.async(fn -> sample_queue(conn, []) end)

    overflow =
      for i <- 1..200 do
        Task.async(fn ->
          Reliability.timed(fn ->
            if rem(i, 2) == 0,
              do: Mure.busy(conn, 10, timeout: 5_000),
              else: Mure.matmul(a, a, timeout: 5_000)
          end)
        end)
      end
      |> Task.await_many(10_000)

    # All 200 at once are refused; each waited only behind the others in this BEAM.
    for {ms, result} <- overflow do
      assert {:error, %Error{kind: :overloaded}} = result
      assert ms < 1_000, "an :overloaded answer took #{ms} ms under a 200-caller burst"
    end

    # One at a time, the answer is immediate.
    sequential =
      for i <- 1..100 do
        {ms, result} =
          Reliability.timed(fn ->
            if rem(i, 2) == 0,
              do: Mure.busy(conn, 10, timeout: 5_000),
              else: Mure.matmul(a, a, timeout: 5_000)
          end)

        assert {:error, %Error{kind: :overloaded}} = result
        ms
      end

    worst = Enum.max(sequential)
    assert worst < 50, "an :overloaded answer took #{worst} ms"

    # Cheap requests are not queued and still answer at once.
    {ms, {:ok, _}} = Reliability.timed(fn -> Mure.stats(conn) end)
    assert ms < 50

    assert Enum.all?(Task.await_many(fillers, 20_000), &(&1 == {:ok, 1_500}))
    send(sampler.pid, :stop)
    samples = Task.await(sampler, 5_000)
    assert length(samples) > 10

    assert Enum.max(samples) <= @depth,
           "the queue held #{Enum.max(samples)} requests with depth #{@depth}"

    # The load is gone: requests succeed again, up to the depth at a time.
    # (a job leaves the queue just after it has sent its reply)
    assert wait_until(fn -> Mure.stats!(conn).queued == 0 end, 1_000)
    assert {:ok, 10} = Mure.busy(conn, 10)

    results =
      for(_ <- 1..@depth, do: Task.async(fn -> Mure.matmul(a, a) end)) |> Task.await_many(10_000)

    assert Enum.all?(results, &match?({:ok, %Mure.Tensor{}}, &1))

    Reliability.record(
      :faults,
      300,
      "requests sent to a full queue (worst single :overloaded answer #{Float.round(worst, 1)} ms)"
    )

    Reliability.record(:requests, 300 + @depth, "requests under overload, each answered")
  end

  defp sample_queue(conn, acc) do
    receive do
      :stop -> acc
    after
      5 -> sample_queue(conn, [Mure.stats!(conn).queued | acc])
    end
  end
end
