defmodule Mure.Reliability.EmptyWorkTest do
  # Issue 11, the op layer, end to end over real distribution with RAW requests
  # (Mure.TestSupport.raw_call/3, bypassing the client's checks), on both devices:
  #
  #   * work is bounded by what a request really costs: a zero-byte tensor with 2^33 rows is
  #     answered at once and does not hold the CPU executor (a tiny negate sent right behind it
  #     is answered about as fast as one sent alone);
  #   * every byte the node holds for a client counts against its budget: sorting a 0-byte
  #     {0, 2^24} tensor leaves resident memory flat, {0, 2^30} and argsort of {0, 2^40} get a
  #     proper reply (never :internal);
  #   * shape rules use checked arithmetic: pad of 65,537 elements with interior 2^48 is refused.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  import Bitwise
  import Mure.TestSupport

  @devices [:cpu, :opencl]

  setup_all do
    conn = start_supervised!({Mure, test_ops: true})
    %{node: node, os_pid: os_pid} = Mure.info(conn)
    %{conn: conn, node: node, os_pid: os_pid}
  end

  setup %{os_pid: os_pid} do
    on_exit(fn -> assert os_alive?(os_pid), "the node died" end)
    :ok
  end

  defp ok!(node, request, timeout \\ 10_000) do
    case raw_call(node, request, timeout: timeout) do
      {:ok, value} ->
        value

      other ->
        flunk(
          "#{inspect(request, limit: 8)}: expected {:ok, _}, got #{inspect(other, limit: 12)}"
        )
    end
  end

  defp upload!(node, type, shape, data), do: ok!(node, {:upload, type, shape, data})

  defp on(device, request), do: {:on, device, request}

  # Send a raw request without waiting; `await/2` takes its reply.
  defp send_raw(node, request) do
    ref = make_ref()
    send({:mure, node}, {:"$mure", 1, self(), ref, self(), request})
    ref
  end

  defp await(ref, timeout) do
    receive do
      {:"$mure_reply", ^ref, result} -> result
    after
      timeout -> flunk("no reply within #{timeout} ms")
    end
  end

  defp ms(fun) do
    t0 = System.monotonic_time(:microsecond)
    result = fun.()
    {(System.monotonic_time(:microsecond) - t0) / 1000, result}
  end

  # VmRSS (resident now) and VmHWM (the peak resident so far) of the node, in MB. A scratch
  # buffer freed at the end of a request no longer shows in VmRSS (glibc unmaps large blocks), so
  # the peak is what shows that a request allocated and touched memory.
  defp mem_mb(os_pid) do
    fields =
      "/proc/#{os_pid}/status"
      |> File.read!()
      |> String.split("\n")
      |> Enum.flat_map(fn line ->
        case String.split(line) do
          [key, kb, "kB"] when key in ["VmRSS:", "VmHWM:"] ->
            [{key, String.to_integer(kb) / 1024}]

          _ ->
            []
        end
      end)
      |> Map.new()

    {fields["VmRSS:"], fields["VmHWM:"]}
  end

  # The best of a few negates of a tiny tensor: what an answer costs when nothing is in the way.
  defp baseline_ms(node, device, tiny) do
    for _ <- 1..5 do
      {t, {:ok, _}} = ms(fn -> raw_call(node, on(device, {:unary, :negate, tiny})) end)
      t
    end
    |> Enum.min()
  end

  for device <- @devices do
    @device device

    test "#{device}: ops on zero-byte tensors with 2^33 rows neither loop nor block other work",
         %{node: node} do
      tiny = upload!(node, {:f, 32}, {4}, pack([1.0, 2.0, 3.0, 4.0], 32))
      base = baseline_ms(node, @device, tiny)
      rows = 1 <<< 33
      empty = upload!(node, {:u, 8}, {rows, 0}, <<>>)
      none = upload!(node, {:s, 64}, {0}, <<>>)

      heavy = [
        {:sort, empty, 1, :asc},
        {:argsort, empty, 1, :desc},
        {:concatenate, [empty, empty], 1},
        {:take, empty, none, 1},
        {:reverse, empty, [0]},
        {:transpose, empty, [1, 0]}
      ]

      for request <- heavy do
        # The empty op, and a tiny negate right behind it on the same device's queue: on
        # 67c2630 the negate waited for the sort's 2^33 empty rows (33.8 s).
        sent = System.monotonic_time(:microsecond)
        r1 = send_raw(node, on(@device, request))
        r2 = send_raw(node, on(@device, {:unary, :negate, tiny}))
        assert {:ok, {_, _, _}} = await(r1, 10_000), "#{inspect(request)} failed"
        assert {:ok, {_, {:f, 32}, {4}}} = await(r2, 10_000)
        behind = (System.monotonic_time(:microsecond) - sent) / 1000

        assert behind < max(50 * base, 250),
               "#{inspect(request)} then negate took #{behind} ms; negate alone #{base} ms"
      end
    end

    test "#{device}: sorting wide empty tensors allocates nothing and never answers :internal",
         %{node: node, os_pid: os_pid} do
      # Warm the kernels up so that their first build is not counted as the sort's memory.
      warm = upload!(node, {:u, 8}, {2, 2}, <<4, 3, 2, 1>>)
      ok!(node, on(@device, {:sort, warm, 1, :asc}), 60_000)
      ok!(node, on(@device, {:argsort, warm, 1, :asc}), 60_000)
      {rss0, peak0} = mem_mb(os_pid)

      # {0, 2^24}: on 67c2630 the sort's scratch (24 bytes per axis element) raised RSS by 364 MB.
      e24 = upload!(node, {:u, 8}, {0, 1 <<< 24}, <<>>)
      assert {_, {:u, 8}, {0, 16_777_216}} = ok!(node, on(@device, {:sort, e24, 1, :asc}))
      assert {_, {:s, 64}, {0, 16_777_216}} = ok!(node, on(@device, {:argsort, e24, 1, :asc}))
      {rss, peak} = mem_mb(os_pid)

      assert peak - peak0 < 32 and rss - rss0 < 32,
             "sorting a 0-byte {0, 2^24} tensor raised the node's RSS by #{rss - rss0} MB, its peak by #{peak - peak0} MB"

      # {0, 2^30} (24 GB of scratch on 67c2630) and argsort of {0, 2^40} (:internal there):
      # an ok with nothing allocated, or a proper error, never :internal.
      for {shape, op} <- [
            {{0, 1 <<< 30}, :sort},
            {{0, 1 <<< 40}, :argsort},
            {{0, 1 <<< 40}, :sort}
          ] do
        h = upload!(node, {:u, 8}, shape, <<>>)

        case raw_call(node, on(@device, {op, h, 1, :asc}), timeout: 10_000) do
          {:ok, {_, _, ^shape}} -> :ok
          {:error, {kind, msg}} when kind in [:out_of_memory, :bad_shape] and msg != "" -> :ok
          other -> flunk("#{op} of #{inspect(shape)}: #{inspect(other)}")
        end
      end

      {rss, peak} = mem_mb(os_pid)

      assert peak - peak0 < 32 and rss - rss0 < 32,
             "sorting 0-byte tensors raised the node's RSS by #{rss - rss0} MB, its peak by #{peak - peak0} MB"
    end

    test "#{device}: pad whose interior padding overflows the shape is refused", %{node: node} do
      x = upload!(node, {:u, 8}, {65_537}, :binary.copy(<<7>>, 65_537))

      # 65,536 * 2^48 + 65,537 wrapped to 65,537 on 67c2630: ok, and the devices disagreed.
      assert {:error, {:bad_shape, msg}} =
               raw_call(node, on(@device, {:pad, x, 0, [{0, 0, 1 <<< 48}]}))

      assert msg =~ "pad"

      # A pad that fits still works, and a {0, 2^40, 2^40} shape is refused at upload.
      assert {_, {:u, 8}, {5}} =
               ok!(
                 node,
                 on(@device, {:pad, upload!(node, {:u, 8}, {0}, <<>>), 1, [{2, 3, 1 <<< 48}]})
               )

      assert {:error, {:bad_shape, _}} =
               raw_call(node, {:upload, {:u, 8}, {0, 1 <<< 40, 1 <<< 40}, <<>>})
    end
  end
end
