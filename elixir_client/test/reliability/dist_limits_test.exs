defmodule Mure.Reliability.DistLimitsTest do
  # Limits of the distribution layer against a peer that holds the cookie (or only a socket):
  #   * receive buffers: big frames do not leave big buffers behind, and all connections'
  #     buffers share one budget (receive_buffer_limit);
  #   * replies a peer does not read: the node stops reading that peer's requests (memory
  #     stays bounded), answers every request it did read once the peer reads, and drops a
  #     peer that reads nothing for reply_stall_timeout_s;
  #   * handshakes: one source address cannot hold every pending handshake, and a source whose
  #     handshakes keep failing is refused at accept for a while;
  #   * a fatal signal is reported on stderr in one line and still kills the node.
  # Every node here is launched by hand (launch_logged), so its stderr and /proc are at hand.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  import Bitwise
  @moduletag timeout: 180_000

  import Mure.TestSupport

  alias Mure.{RawDist, Reliability}

  ## Receive buffers

  @big 256 * 1024 * 1024

  test "two connections that each received a 256 MB frame do not keep 256 MB buffers" do
    # Without a buffer cache, released receive buffers go back to the system.
    node = Reliability.launch_logged(["--buffer-cache", "0"])
    on_exit(fn -> Reliability.stop_logged(node) end)
    raws = for _ <- 1..2, do: connect!(node.node)
    {base, after_kb, _cached} = big_frames(raws)
    grown = after_kb - base
    IO.puts("receive buffers: RSS #{base} KiB -> #{after_kb} KiB after 2 x #{@big} B frames")

    # Before: +2 x 256 MiB (the buffers stay until the connections close). Allowed: 64 MiB of
    # allocator slack, far below one such buffer. (Not under ASan: its quarantine keeps freed
    # memory resident on purpose.)
    assert sanitized?(node.os_pid) or grown < 64 * 1024,
           "RSS grew by #{div(grown, 1024)} MiB (#{base} -> #{after_kb} KiB) with both connections idle"

    # With the default buffer cache (1G), released buffers are kept faulted in for the next
    # large frame or tensor: held by the node's capped cache, not by the idle connections.
    cached_node = Reliability.launch_logged([])
    on_exit(fn -> Reliability.stop_logged(cached_node) end)
    cached_raws = for _ <- 1..2, do: connect!(cached_node.node)
    {base2, after2, cached} = big_frames(cached_raws)
    IO.puts("receive buffers, default cache: RSS #{base2} -> #{after2} KiB, cached #{cached} B")
    assert cached >= 2 * @big and cached <= 1 <<< 30
    assert sanitized?(cached_node.os_pid) or after2 - base2 < div(cached, 1024) + 64 * 1024
    Enum.each(cached_raws, &RawDist.close/1)

    # The connections still work, and an upload in 8 MiB pieces still goes through.
    [raw | _] = raws
    piece = :binary.copy(<<1.0::float-32-native>>, 2 * 1024 * 1024)
    assert {:ok, h} = RawDist.call(raw, {:upload, {:f, 32}, {2 * 1024 * 1024}, piece}, 30_000)
    assert {:ok, _} = RawDist.call(raw, {:free, h})
    Enum.each(raws, &RawDist.close/1)
  end

  test "frames wait for room in receive_buffer_limit instead of passing it" do
    node = Reliability.launch_logged(["--max-message", "48M", "--receive-buffer-limit", "64M"])

    on_exit(fn -> Reliability.stop_logged(node) end)
    a = connect!(node.node)
    b = connect!(node.node)

    body = :erlang.term_to_binary(:binary.copy(<<1>>, 40 * 1024 * 1024))
    frame_a = IO.iodata_to_binary(RawDist.frame(RawDist.reg_send_control(a, :nobody), body))
    # A sends most of a 40 MiB frame and stalls: its buffer is taken from the budget.
    :ok = RawDist.send_bytes(a, binary_part(frame_a, 0, 1024 * 1024))

    # B's 40 MiB frame, then a :hello, do not fit beside it: B waits, and the node says so.
    # (One process sends both: gen_tcp.send blocks while the node does not read.)
    ref_b = make_ref()

    sender =
      Task.async(fn ->
        :ok = RawDist.send_message(b, body, :nobody)
        :ok = RawDist.send_message(b, :erlang.term_to_binary(RawDist.envelope(b, :hello, ref_b)))
        :done
      end)

    assert wait_until(
             fn -> File.read!(node.stderr) =~ "waits for receive-buffer room" end,
             20_000
           ),
           "no frame waited for receive-buffer room: #{File.read!(node.stderr)}"

    assert {:error, :timeout, []} = RawDist.await_reply(b, ref_b, 200)

    # A finishes; its buffer goes back; B's frame is read and its :hello answered.
    rest = byte_size(frame_a) - 1024 * 1024
    :ok = RawDist.send_bytes(a, binary_part(frame_a, 1024 * 1024, rest))
    assert {:ok, {:ok, %{protocol: 1}}, _} = RawDist.await_reply(b, ref_b, 30_000)
    assert :done = Task.await(sender, 30_000)
    assert {:ok, %{protocol: 1}} = RawDist.call(a, :hello)
  end

  ## Replies a peer does not read

  @requests 300_000

  test "a peer that never reads its replies is not read either; once it reads, every request has one reply" do
    node = Reliability.launch_logged([])
    on_exit(fn -> Reliability.stop_logged(node) end)
    raw = connect!(node.node)
    assert {:ok, _} = RawDist.call(raw, :devices)
    base = Reliability.rss_kb(node.os_pid)
    control = RawDist.reg_send_control(raw)

    # The sender blocks in gen_tcp.send once the node stops reading; the test reads nothing yet.
    parent = self()

    _sender =
      spawn_link(fn ->
        refs =
          for _ <- 1..div(@requests, 1_000), reduce: [] do
            acc ->
              batch = for _ <- 1..1_000, do: make_ref()

              frames =
                for ref <- batch,
                    do:
                      RawDist.frame(
                        control,
                        :erlang.term_to_binary(RawDist.envelope(raw, :devices, ref))
                      )

              :ok = RawDist.send_bytes(raw, frames)
              batch ++ acc
          end

        send(parent, {:sent, MapSet.new(refs)})
      end)

    paused = wait_until(fn -> File.read!(node.stderr) =~ "not reading its requests" end, 60_000)

    # Resident memory while the peer reads nothing: settled, then measured.
    peak = settle_rss(node.os_pid)
    grown = peak - base
    IO.puts("unread replies: RSS #{base} KiB -> #{peak} KiB, paused: #{paused}")

    assert paused, "the node never stopped reading a peer that reads nothing"

    # Before: +1.5 GB for 1 M requests. max_queued_replies is 16 MiB: allowed 96 MiB.
    assert sanitized?(node.os_pid) or grown < 96 * 1024,
           "RSS grew by #{div(grown, 1024)} MiB with replies unread"

    # Now the peer reads: every request gets exactly one reply.
    seen = read_replies(raw, @requests, MapSet.new())

    sent =
      receive do
        {:sent, refs} -> refs
      after
        60_000 -> flunk("the sender never finished")
      end

    assert MapSet.size(seen) == @requests
    assert MapSet.equal?(seen, sent)
    assert RawDist.drain(raw, 200) == []
    assert {:ok, %{protocol: 1}} = RawDist.call(raw, :hello)

    Reliability.record(
      :requests,
      @requests,
      "requests from a peer that read no replies for a while (RSS #{base} -> #{peak} KiB)"
    )
  end

  test "a peer that reads none of its replies past reply_stall_timeout_s is dropped, with a log line" do
    node =
      Reliability.launch_logged(["--max-queued-replies", "64K", "--reply-stall-timeout-s", "2"])

    on_exit(fn -> Reliability.stop_logged(node) end)
    raw = connect!(node.node)
    control = RawDist.reg_send_control(raw)

    frames =
      for _ <- 1..1_000,
          do: RawDist.frame(control, :erlang.term_to_binary(RawDist.envelope(raw, :devices)))

    # The peer has read nothing since it connected: the node may not drop it sooner than
    # reply_stall_timeout_s (2 s) after the flood began.
    t0 = System.monotonic_time(:millisecond)

    spawn(fn ->
      for _ <- 1..100, do: RawDist.send_bytes(raw, frames)
    end)

    assert wait_until(fn -> File.read!(node.stderr) =~ "not reading its requests" end, 30_000)

    assert wait_until(
             fn ->
               File.read!(node.stderr) =~
                 ~r/connection from rawdist_\S+: dropped: it has read none/
             end,
             15_000
           ),
           "the stuck peer was not dropped: #{File.read!(node.stderr)}"

    waited = System.monotonic_time(:millisecond) - t0
    assert waited >= 2_000, "dropped #{waited} ms after the flood began, before its deadline"
    # The node is fine; others are served.
    other = connect!(node.node)
    assert {:ok, %{protocol: 1}} = RawDist.call(other, :hello)
  end

  ## Handshakes

  test "300 silent sockets from one address do not lock out another address" do
    node = Reliability.launch_logged([])
    on_exit(fn -> Reliability.stop_logged(node) end)
    {:ok, port} = RawDist.port_of(node.node)

    flood =
      for _ <- 1..300 do
        {:ok, s} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false], 5_000)
        s
      end

    # 24 handshakes from 127.0.0.2, one after the other, while the flood is pending.
    outcomes =
      for _ <- 1..24 do
        case RawDist.connect(node.node, ip: {127, 0, 0, 2}) do
          {:ok, raw} ->
            result = RawDist.call(raw, :hello)
            RawDist.close(raw)
            result

          error ->
            error
        end
      end

    ok = Enum.count(outcomes, &match?({:ok, %{protocol: 1}}, &1))
    # The flood's sockets past the per-address limit were closed at accept.
    closed = Enum.count(flood, &RawDist.socket_closed?(&1, 0))

    IO.puts(
      "handshakes from a second address under a flood: #{ok} of 24 succeeded; #{closed} of 300 flood sockets refused at once"
    )

    Enum.each(flood, &:gen_tcp.close/1)

    assert ok == 24, "#{24 - ok} of 24 handshakes failed: #{inspect(Enum.frequencies(outcomes))}"
    assert closed >= 300 - 16 - 1

    assert File.read!(node.stderr) =~
             ~r/refused a connection from 127\.0\.0\.1: .*from this address/
  end

  test "a source whose handshakes keep failing is refused for the back-off; others are not" do
    node =
      Reliability.launch_logged(["--max-failed-handshakes", "5", "--handshake-backoff-s", "3"])

    on_exit(fn -> Reliability.stop_logged(node) end)
    bad = {127, 0, 0, 3}

    for _ <- 1..5,
        do: assert({:error, :refused} = RawDist.connect(node.node, ip: bad, wrong_digest: true))

    assert wait_until(
             fn -> File.read!(node.stderr) =~ "refusing connections from 127.0.0.3 for 3 s" end,
             5_000
           )

    blocked_at = System.monotonic_time(:millisecond)
    # Even with the right cookie, closed at accept; another address is served.
    assert {:error, _} = RawDist.connect(node.node, ip: bad)
    assert {:ok, raw} = RawDist.connect(node.node, ip: {127, 0, 0, 4})
    assert {:ok, %{protocol: 1}} = RawDist.call(raw, :hello)

    # After the back-off, the address gets in again.
    assert wait_until(
             fn ->
               case RawDist.connect(node.node, ip: bad) do
                 {:ok, r} -> RawDist.close(r) || true
                 _ -> false
               end
             end,
             10_000
           )

    waited = System.monotonic_time(:millisecond) - blocked_at
    assert waited >= 2_000, "let in again after #{waited} ms of a 3 s back-off"

    assert File.read!(node.stderr) =~
             ~r/refused a connection from 127\.0\.0\.3: too many failed handshakes/
  end

  ## Fatal signals

  test "a fatal signal writes one line naming it on stderr; the node still dies of it" do
    node = Reliability.launch_logged([])
    sanitized = sanitized?(node.os_pid)
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
    # A sanitized node leaves crash reports to the sanitizer (common/signals.h).
    unless sanitized, do: assert_one_line(stderr)
  end

  defp assert_one_line(stderr) do
    assert [_] = Regex.scan(~r/^mure_node: fatal signal 11 \(SIGSEGV\) in thread \S+$/m, stderr),
           "stderr: #{stderr}"
  end

  ## Helpers

  # Built with AddressSanitizer (its runtime is mapped into the node)?
  defp sanitized?(os_pid), do: File.read!("/proc/#{os_pid}/maps") =~ "libasan"

  defp connect!(node) do
    {:ok, raw} = RawDist.connect(node)
    raw
  end

  # Each connection sends a 256 MB message to a name the node does not have (read whole, then
  # dropped); the :hello behind it on the same connection is answered only once the big frame
  # has been handled. Returns the RSS before and after (KiB) and the node's cached bytes.
  defp big_frames(raws) do
    for raw <- raws, do: assert({:ok, _} = RawDist.call(raw, :hello))
    [first | _] = raws
    base = Reliability.rss_kb(RawDist.call(first, :hello) |> elem(1) |> Map.fetch!(:os_pid))
    big = :erlang.term_to_binary(:binary.copy(<<7>>, @big))

    raws
    |> Enum.map(fn raw ->
      Task.async(fn ->
        :ok = RawDist.send_message(raw, big, :nobody_here)
        RawDist.call(raw, :hello, 60_000)
      end)
    end)
    |> Task.await_many(90_000)
    |> Enum.each(&assert({:ok, %{protocol: 1}} = &1))

    {:ok, %{os_pid: os_pid}} = RawDist.call(first, :hello)
    {:ok, stats} = RawDist.call(first, :stats)
    {base, Reliability.rss_kb(os_pid), stats.memory_cached_bytes}
  end

  # RSS once it stops moving (two readings 300 ms apart within 1 MiB), at most 10 s.
  defp settle_rss(os_pid) do
    deadline = System.monotonic_time(:millisecond) + 10_000
    settle_rss(os_pid, Reliability.rss_kb(os_pid), deadline)
  end

  defp settle_rss(os_pid, last, deadline) do
    Process.sleep(300)
    now = Reliability.rss_kb(os_pid)

    if abs(now - last) < 1024 or System.monotonic_time(:millisecond) > deadline,
      do: max(now, last),
      else: settle_rss(os_pid, now, deadline)
  end

  defp read_replies(_raw, 0, seen), do: seen

  defp read_replies(raw, left, seen) do
    case RawDist.recv_frame(raw, 30_000) do
      {:reply, ref, {:ok, _}} ->
        refute MapSet.member?(seen, ref), "a second reply to one request"
        read_replies(raw, left - 1, MapSet.put(seen, ref))

      {:reply, _ref, other} ->
        flunk("a :devices request got #{inspect(other)}")

      :tick ->
        read_replies(raw, left, seen)

      {:other, _, _} ->
        read_replies(raw, left, seen)

      other ->
        flunk("#{left} replies missing: #{inspect(other)}")
    end
  end
end
