defmodule Mure.InlineTest do
  # Tiny ops run on the thread of the connection that sent them (inline_max_us in
  # config/mure.conf), and a small legacy add goes to the CPU rather than paying the OpenCL
  # device's launch. Whatever thread runs them, every request gets exactly one reply, and one
  # connection's replies come back in the order of its requests, while another connection keeps
  # the CPU queue busy with long work. Two raw distribution connections (Mure.RawDist): each is a
  # connection of its own on the node, as two client BEAMs would be.
  use ExUnit.Case, async: true

  alias Mure.RawDist

  @moduletag timeout: 180_000
  @n 1024

  defp floats(count, seed),
    do: for(i <- 1..count, into: <<>>, do: <<rem(i * seed, 1000) / 8.0::float-32-native>>)

  defp up!(raw, shape, bin) do
    {:ok, h} = RawDist.call(raw, {:upload, {:f, 32}, shape, bin}, 30_000)
    h
  end

  defp inline_runs(raw) do
    {:ok, stats} = RawDist.call(raw, :stats)
    stats.inline_runs
  end

  # The next `count` replies on `raw`, oldest first (ticks and other frames skipped).
  defp replies(_raw, 0, _timeout), do: []

  defp replies(raw, count, timeout) do
    case RawDist.recv_frame(raw, timeout) do
      {:reply, ref, result} -> [{ref, result} | replies(raw, count - 1, timeout)]
      {:error, reason} -> flunk("#{count} replies missing: #{inspect(reason)}")
      _other -> replies(raw, count, timeout)
    end
  end

  # No further reply arrives within `ms` (an observation window: every reply owed was read).
  defp no_more_replies(raw, ms) do
    case RawDist.recv_frame(raw, ms) do
      {:reply, ref, result} -> flunk("an extra reply: #{inspect({ref, result})}")
      {:error, :timeout} -> :ok
      _other -> no_more_replies(raw, ms)
    end
  end

  test "tiny ops run inline, one reply each, in order, beside long work on another connection" do
    conn = start_supervised!({Mure, test_ops: true})
    node = Mure.info(conn).node
    {:ok, tiny} = RawDist.connect(node)
    {:ok, big} = RawDist.connect(node)
    on_exit(fn -> Enum.each([tiny, big], &RawDist.close/1) end)

    a_bin = floats(@n, 3)
    b_bin = floats(@n, 5)
    a = up!(tiny, {@n}, a_bin)
    b = up!(tiny, {@n}, b_bin)
    m16 = up!(tiny, {16, 16}, floats(256, 7))
    # The reference: f32 sums (exact in double, then rounded once).
    want =
      for {<<x::float-32-native>>, <<y::float-32-native>>} <-
            Enum.zip(for(<<c::binary-4 <- a_bin>>, do: c), for(<<c::binary-4 <- b_bin>>, do: c)),
          into: <<>>,
          do: <<x + y::float-32-native>>

    # On an idle node a tiny op runs on the connection's thread: the counter moves by exactly
    # one, for a CPU-placed add and for the legacy add with default placement (1 Ki elements:
    # the OpenCL launch would cost more than the whole add on the CPU).
    for request <- [{:on, :cpu, {:add, a, b}}, {:add, a, b}] do
      before = inline_runs(tiny)
      assert {:ok, {h, {:f, 32}, {@n}}} = RawDist.call(tiny, request)
      assert inline_runs(tiny) == before + 1, "#{inspect(request)} did not run inline"
      assert RawDist.call(tiny, {:download, h}) == {:ok, want}
    end

    # Long work on the other connection, all sent at once: CPU matmuls and busy jobs.
    big_m = up!(big, {256, 256}, floats(256 * 256, 11))

    big_requests =
      for i <- 1..30,
          do: if(rem(i, 3) == 0, do: {:busy, 5}, else: {:on, :cpu, {:matmul, big_m, big_m}})

    big_refs = for r <- big_requests, do: RawDist.send_request(big, r)

    # Meanwhile 300 tiny requests on this connection, in bursts, without waiting for replies:
    # some find the CPU queue busy (they queue behind it), some find it idle (they run inline).
    tiny_requests =
      for i <- 1..300 do
        case rem(i, 3) do
          0 -> {:on, :cpu, {:matmul, m16, m16}}
          1 -> {:on, :cpu, {:add, a, b}}
          2 -> {:on, :cpu, {:multiply, a, b}}
        end
      end

    tiny_refs =
      tiny_requests
      |> Enum.chunk_every(25)
      |> Enum.flat_map(fn burst -> for r <- burst, do: RawDist.send_request(tiny, r) end)

    got = replies(tiny, length(tiny_refs), 60_000)
    assert Enum.map(got, &elem(&1, 0)) == tiny_refs, "the replies came out of order"

    for {{_ref, result}, request} <- Enum.zip(got, tiny_requests) do
      shape = if match?({:on, :cpu, {:matmul, _, _}}, request), do: {16, 16}, else: {@n}
      assert {:ok, {_h, {:f, 32}, ^shape}} = result
    end

    no_more_replies(tiny, 300)

    big_got = replies(big, length(big_refs), 120_000)
    assert Enum.map(big_got, &elem(&1, 0)) == big_refs

    for {{_ref, result}, request} <- Enum.zip(big_got, big_requests) do
      case request do
        {:busy, ms} -> assert result == {:ok, ms}
        _ -> assert {:ok, {_h, {:f, 32}, {256, 256}}} = result
      end
    end

    no_more_replies(big, 300)

    # The adds computed inline and the ones that queued agree with the reference.
    {_, {:ok, {h, _, _}}} = Enum.at(got, 0)
    assert RawDist.call(tiny, {:download, h}) == {:ok, want}
    {_, {:ok, {h, _, _}}} = Enum.at(got, 297)
    assert RawDist.call(tiny, {:download, h}) == {:ok, want}
  end
end
