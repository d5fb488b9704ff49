defmodule Mure.Reliability.CorruptTest do
  # Hostile bytes over real distribution, in the style of OTP's binary_SUITE bad_terms and
  # distribution_SUITE bad_dist_*: real requests encoded by the BEAM, corrupted byte by byte
  # (truncated, bytes replaced, 4-byte lengths flipped to huge values), plus crafted terms
  # (huge arities, deep nesting, compressed terms, wrong tags), sent to a live node from a
  # raw distribution client (Mure.RawDist), while a :peer BEAM runs checked work.
  #
  # The bar: every corrupted message gets an error reply or is dropped; a corrupted MESSAGE
  # never costs the connection (its control message is intact); a message that still
  # decodes as an envelope gets exactly one reply; a frame that breaks the distribution
  # protocol closes that one connection only; the node never crashes; the peer's
  # interleaved requests all complete with correct results.
  use ExUnit.Case, async: false

  @moduletag :capture_log
  @moduletag timeout: 300_000

  import Bitwise
  import Mure.TestSupport

  alias Mure.{RawDist, Reliability}

  @batch 64

  setup_all do
    conn = start_supervised!({Mure, test_ops: true})
    %{node: node, os_pid: os_pid} = Mure.info(conn)
    %{conn: conn, node: node, os_pid: os_pid}
  end

  ## Corruptions

  # Every variant of `bin` that binary_SUITE's corrupter-style sweep makes: truncations at
  # every length, every byte replaced by a few values, and every 4-byte window (each length
  # or arity field among them) replaced by huge counts.
  defp corruptions(bin) do
    n = byte_size(bin)

    truncations = for len <- 0..(n - 1), do: {{:truncate, len}, binary_part(bin, 0, len)}

    replacements =
      for pos <- 0..(n - 1),
          <<_::binary-size(pos), old, _::binary>> = bin,
          new <- Enum.uniq([0, 255, bxor(old, 0x80), band(old + 1, 255), band(old - 1, 255)]),
          new != old do
        {{:byte, pos, new}, replace(bin, pos, <<new>>)}
      end

    windows =
      for pos <- 0..(n - 4)//1,
          word <- [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x00010000] do
        {{:word, pos, word}, replace(bin, pos, <<word::32>>)}
      end

    truncations ++ replacements ++ windows
  end

  defp replace(bin, pos, new) do
    <<head::binary-size(pos), _::binary-size(byte_size(new)), tail::binary>> = bin
    head <> new <> tail
  end

  # What the node must do with these bytes, judged by the BEAM's own decoder:
  #   {:must_reply, ref}  - they decode to an envelope: exactly one reply, to that ref
  #   :may_reply          - they do not decode: at most one (error) reply
  #   :no_reply           - they decode to something that is not an envelope: no reply
  defp expectation(bytes) do
    case safe_decode(bytes) do
      {:ok, {:"$mure", _v, pid, ref, _owner, _req}} when is_pid(pid) and is_reference(ref) ->
        {:must_reply, ref}

      {:ok, _other} ->
        :no_reply

      :error ->
        :may_reply
    end
  end

  defp safe_decode(bytes) do
    {:ok, :erlang.binary_to_term(bytes)}
  rescue
    ArgumentError -> :error
  end

  defp valid_result?({:ok, _}), do: true
  defp valid_result?({:error, :overloaded}), do: true

  defp valid_result?({:error, {kind, message}}) when is_atom(kind) and is_binary(message),
    do: message != ""

  defp valid_result?(_), do: false

  # Sends `variants` ({label, expectation, bytes}) in batches, each batch followed by a
  # sentinel :hello that must be answered on the same connection. Returns the replies
  # (ref => [result]) and the labels sent.
  defp blast(raw, variants) do
    variants
    |> Enum.chunk_every(@batch)
    |> Enum.reduce(%{}, fn batch, replies ->
      for {_label, _expect, bytes} <- batch, do: :ok = RawDist.send_message(raw, bytes)
      sentinel = RawDist.send_request(raw, :hello)

      case RawDist.await_reply(raw, sentinel, 10_000) do
        {:ok, {:ok, %{protocol: 1}}, others} ->
          Enum.reduce(others, replies, fn {ref, result}, acc ->
            Map.update(acc, ref, [result], &[result | &1])
          end)

        {:error, reason, _others} ->
          flunk("""
          the node #{if reason == :closed, do: "closed the connection", else: "stopped answering (#{inspect(reason)})"}
          after a batch of corrupted messages; the batch: #{inspect(Enum.map(batch, &elem(&1, 0)), limit: 80)}
          """)

        {:ok, other, _} ->
          flunk("the sentinel :hello got #{inspect(other)}")
      end
    end)
  end

  # The replies of compute ops come from a work queue and may trail the sentinel.
  defp collect_late(raw, replies) do
    raw
    |> RawDist.drain(300)
    |> Enum.reduce(replies, fn {ref, result}, acc ->
      Map.update(acc, ref, [result], &[result | &1])
    end)
  end

  defp check_replies(variants, replies) do
    {undecodable, replies} = Map.pop(replies, :undecodable, [])
    may_count = Enum.count(variants, &match?({_, {:may_reply, _}, _}, &1))

    # Replies the BEAM cannot decode: the node echoed a reply pid or ref that the BEAM's
    # decoder refuses (e.g. a reference whose first id word has more than 18 bits). Only a
    # message the BEAM could not decode either may cause one.
    assert length(undecodable) <= may_count

    must = for {label, {:must_reply, ref}, _} <- variants, do: {label, ref}
    may_refs = for {_label, {:may_reply, ref}, _} <- variants, into: MapSet.new(), do: ref

    must_refs = must |> Enum.map(&elem(&1, 1)) |> Enum.frequencies()

    missing = for {label, ref} <- must, Map.get(replies, ref, []) == [], do: label

    duplicated =
      for {ref, results} <- replies,
          allowed =
            Map.get(must_refs, ref, 0) + if(MapSet.member?(may_refs, ref), do: 1, else: 0),
          length(results) > max(allowed, 1),
          do: {ref, results}

    invalid = for {_ref, results} <- replies, r <- results, not valid_result?(r), do: r

    assert missing == [],
           "#{length(missing)} corrupted messages that still decode as envelopes got no reply, e.g. #{inspect(Enum.take(missing, 5))}"

    assert duplicated == [],
           "more than one reply to one request: #{inspect(Enum.take(duplicated, 3))}"

    assert invalid == [],
           "replies that are not {:ok, _} | {:error, {kind, message}}: #{inspect(Enum.take(invalid, 3))}"

    {length(must), length(undecodable)}
  end

  ## Tests

  test "byte-by-byte corruption of real requests: every one answered or dropped, the connection and a peer's work unharmed",
       %{conn: conn, node: node, os_pid: os_pid} do
    {peer, _peer_node} = start_peer(:mure_corrupt_worker)
    on_exit(fn -> stop_peer(peer) end)
    {count, answered, undecodable} = sweep(node, os_pid, peer, [])
    assert {:ok, %{protocol: 1}} = Mure.hello(conn)

    Reliability.record(:faults, count, "corrupted messages (byte-by-byte) over raw distribution")
    Reliability.record(:requests, 400 * 7, "peer requests interleaved with corrupted messages")

    Reliability.record(
      :lost,
      0,
      "corrupted messages that decode as envelopes and got no reply (#{answered} checked)"
    )

    Reliability.record(
      :echoed_invalid,
      undecodable,
      "replies echoing a pid/ref the BEAM cannot decode"
    )
  end

  test "the same corruption inside a TLS distribution session: answered or dropped, a TLS peer's work unharmed" do
    dir = Path.join(System.tmp_dir!(), "mure_corrupt_tls_#{System.unique_integer([:positive])}")
    certs = Mure.Test.Tls.certs!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    node = Reliability.launch_logged(certs.node_args)
    on_exit(fn -> Reliability.stop_logged(node) end)
    {peer, _} = Mure.Test.Tls.start_peer("mure_corrupt_tls", certs.conf.("client"))
    on_exit(fn -> stop_peer(peer) end)

    tls = [
      certfile: String.to_charlist(Path.join(dir, "client.pem")),
      keyfile: String.to_charlist(Path.join(dir, "client.key")),
      cacertfile: String.to_charlist(certs.ca),
      verify: :verify_peer
    ]

    {count, _answered, _undecodable} = sweep(node.node, node.os_pid, peer, tls: tls)
    assert count > 1_000
    assert File.read!(node.stderr) =~ "over TLSv1"
  end

  # Sends every corruption of a set of real requests on a raw connection (`raw_opts`: RawDist's),
  # while `peer` runs 400 rounds of checked work on the node; checks the replies, the connection
  # and the node afterwards. Returns {variants sent, envelopes checked, undecodable replies}.
  defp sweep(node, os_pid, peer, raw_opts) do
    worker =
      Task.async(fn ->
        :peer.call(peer, Mure.TestSupport, :peer_workload, [node, 400], 280_000)
      end)

    {:ok, raw} = RawDist.connect(node, raw_opts)

    {:ok, {:ok, a}} =
      {:ok,
       RawDist.call(
         raw,
         {:upload, {:f, 32}, {2, 3}, pack(Enum.to_list(1..6) |> Enum.map(&(&1 * 1.0)), 32)}
       )}

    {:ok, {:ok, b}} =
      {:ok,
       RawDist.call(raw, {:upload, {:f, 32}, {3, 2}, pack([1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 32)})}

    base_requests = [
      :hello,
      {:stats},
      {:upload, {:f, 32}, {2, 2}, pack([1.0, 2.0, 3.0, 4.0], 32)},
      {:upload, {:s, 64}, {1, 2}, <<-1::64-signed-native, 7::64-native>>},
      {:download, a},
      {:matmul, a, b},
      {:add, a, a},
      {:free, 999_999_999}
    ]

    # Each variant gets its own reference (same size, so the byte positions line up), so that
    # replies can be told apart; a corruption inside the reference makes the reply's ref
    # unknowable, and such variants may only be dropped or answered once.
    variants =
      for request <- base_requests,
          {label, _} <- corruptions(:erlang.term_to_binary(RawDist.envelope(raw, request))) do
        ref = make_ref()
        fresh = :erlang.term_to_binary(RawDist.envelope(raw, request, ref))
        bytes = apply_label(fresh, label)

        expect =
          case expectation(bytes) do
            :may_reply -> {:may_reply, ref}
            other -> other
          end

        {{request_name(request), label}, expect, bytes}
      end

    replies = raw |> blast(variants) |> then(&collect_late(raw, &1))
    {answered, undecodable} = check_replies(variants, replies)

    # The same connection still serves correct results.
    assert {:ok, bin} = RawDist.call(raw, {:download, a})
    assert unpack(bin, 32) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    refute RawDist.closed?(raw)
    RawDist.close(raw)

    assert os_alive?(os_pid), "the node died"

    assert {:ok, 400} = Task.await(worker, 280_000),
           "the peer's interleaved work did not all complete"

    {length(variants), answered, undecodable}
  end

  defp apply_label(bin, {:truncate, len}), do: binary_part(bin, 0, len)
  defp apply_label(bin, {:byte, pos, new}), do: replace(bin, pos, <<new>>)
  defp apply_label(bin, {:word, pos, word}), do: replace(bin, pos, <<word::32>>)

  defp request_name(r) when is_atom(r), do: r
  defp request_name(r) when is_tuple(r), do: elem(r, 0)

  test "crafted hostile terms: huge arities and lengths, deep nesting, compressed terms, wrong tags",
       %{conn: conn, node: node, os_pid: os_pid} do
    {:ok, raw} = RawDist.connect(node)

    # The envelope up to (not including) its request: <<131, 104, 6, '$mure', 1, pid, ref, owner>>.
    head = fn ref ->
      full = :erlang.term_to_binary(RawDist.envelope(raw, :x, ref))
      binary_part(full, 0, byte_size(full) - byte_size(:erlang.term_to_binary(:x)) + 1)
    end

    deep_list = fn depth ->
      :binary.copy(<<108, 1::32>>, depth) <> <<106>> <> :binary.copy(<<106>>, depth)
    end

    deep_tuple = fn depth -> :binary.copy(<<104, 1>>, depth) <> <<106>> end

    compressed_request =
      (fn ->
         <<131, 80, rest::binary>> =
           :erlang.term_to_binary({:upload, {:u, 8}, {4096}, :binary.copy(<<0>>, 4096)}, [
             :compressed
           ])

         <<80, rest::binary>>
       end).()

    # Tags the reader must refuse where a term belongs.
    bad_tags = [
      0,
      1,
      2,
      50,
      69,
      71,
      72,
      75,
      76,
      78,
      79,
      81,
      82,
      83,
      84,
      85,
      86,
      87,
      91,
      96,
      117,
      121,
      122,
      200,
      255
    ]

    # {label, request bytes (after the envelope head)}: each must get an error reply.
    in_envelope =
      [
        {:huge_tuple_arity, <<105, 0xFFFFFFFF::32, 97, 1>>},
        {:huge_small_tuple, <<104, 255, 97, 1>>},
        {:huge_list, <<108, 0x7FFFFFFF::32, 97, 1, 106>>},
        {:huge_map, <<116, 0xFFFFFFFF::32, 97, 1, 97, 2>>},
        {:huge_binary, <<109, 0xFFFFFFFF::32>> <> :binary.copy(<<1>>, 10)},
        {:huge_bitstring, <<77, 0xFFFFFFFF::32, 3, 1, 2>>},
        {:huge_string, <<107, 0xFFFF::16, 1, 2, 3>>},
        {:huge_atom, <<118, 0xFFFF::16, ?a>>},
        {:huge_big, <<111, 0xFFFFFFFF::32, 0, 1, 2, 3>>},
        {:ref_zero_words, <<90, 0::16, 119, 1, ?a, 0::32>>},
        {:ref_many_words, <<90, 0xFFFF::16, 119, 1, ?a, 0::32, 1::32>>},
        {:fun_short, <<112, 3::32, 1, 2>>},
        {:fun_past_end, <<112, 0xFFFFFFFF::32, 1, 2, 3>>},
        {:float_text, <<99>> <> :binary.copy(<<?9>>, 31)},
        {:float_short, <<70, 1, 2, 3>>},
        {:pid_truncated, <<88, 119, 1, ?a, 1, 2>>},
        {:pid_bad_node, <<88, 97, 1, 0::96>>},
        {:deep_list_1e5, deep_list.(100_000)},
        {:deep_tuple_1e6, deep_tuple.(1_000_000)},
        {:deep_map, :binary.copy(<<116, 1::32, 97, 1>>, 10_000) <> <<106>>},
        {:many_terms, <<108, 2_000_000::32>> <> :binary.copy(<<97, 1>>, 2_000_000) <> <<106>>},
        {:compressed_request, compressed_request},
        {:compressed_bomb,
         <<80, 0xFFFFFFFF::32>> <> :zlib.compress(:binary.copy(<<0>>, 1_000_000))},
        {:empty_request, <<>>},
        {:upload_binary_short,
         (fn ->
            <<131, r::binary>> =
              :erlang.term_to_binary({:upload, {:u, 8}, {100}, :binary.copy(<<1>>, 100)})

            binary_part(r, 0, byte_size(r) - 50)
          end).()},
        {:trailing_bytes, <<100, 0, 5, "hello", 1, 2, 3>>}
      ] ++ for(tag <- bad_tags, do: {{:bad_tag, tag}, <<tag, 1, 2, 3, 4>>})

    must_error =
      for {label, tail} <- in_envelope do
        ref = make_ref()
        {label, ref, head.(ref) <> tail}
      end

    # Messages with no readable envelope: dropped, never answered, never fatal.
    dropped = [
      {:no_version, binary_part(:erlang.term_to_binary(RawDist.envelope(raw, :hello)), 1, 50)},
      {:version_130,
       <<130>> <> binary_part(:erlang.term_to_binary(RawDist.envelope(raw, :hello)), 1, 50)},
      {:compressed_envelope,
       :erlang.term_to_binary(
         RawDist.envelope(raw, {:upload, {:u, 8}, {512}, :binary.copy(<<0>>, 512)}),
         [:compressed]
       )},
      {:whole_huge_tuple, <<131, 105, 0xFFFFFFFF::32>>},
      {:whole_deep_list, <<131>> <> deep_list.(200_000)},
      {:whole_deep_tuple, <<131>> <> deep_tuple.(2_000_000)},
      {:whole_bad_tag, <<131, 82, 1>>},
      {:version_only, <<131>>},
      {:zeros, :binary.copy(<<0>>, 1000)},
      {:envelope_tuple_5,
       <<131, 104, 5>> <>
         binary_part(:erlang.term_to_binary(RawDist.envelope(raw, :hello)), 3, 40)}
    ]

    for {_label, _ref, bytes} <- must_error, do: :ok = RawDist.send_message(raw, bytes)
    for {_label, bytes} <- dropped, do: :ok = RawDist.send_message(raw, bytes)
    sentinel = RawDist.send_request(raw, :hello)

    {:ok, {:ok, %{protocol: 1}}, others} = RawDist.await_reply(raw, sentinel, 30_000)
    replies = Enum.group_by(others, &elem(&1, 0), &elem(&1, 1))

    for {label, ref, _} <- must_error do
      case Map.get(replies, ref) do
        [{:error, {kind, message}}] when is_atom(kind) and is_binary(message) ->
          :ok

        other ->
          flunk(
            "#{inspect(label)}: expected one {:error, {kind, message}} reply, got #{inspect(other, limit: 10)}"
          )
      end
    end

    assert map_size(replies) == length(must_error),
           "replies to messages that had no envelope: #{inspect(Map.drop(replies, Enum.map(must_error, &elem(&1, 1))), limit: 10)}"

    refute RawDist.closed?(raw)
    assert {:ok, %{protocol: 1}} = RawDist.call(raw, :hello)
    RawDist.close(raw)
    assert os_alive?(os_pid)
    assert {:ok, %{protocol: 1}} = Mure.hello(conn)

    Reliability.record(
      :faults,
      length(must_error) + length(dropped),
      "crafted hostile terms (arities, nesting, compression, tags)"
    )
  end

  test "a frame that breaks the protocol closes only its own connection", %{
    conn: conn,
    node: node,
    os_pid: os_pid
  } do
    {:ok, bystander} = RawDist.connect(node)
    {:ok, {:ok, h}} = {:ok, RawDist.call(bystander, {:upload, {:u, 8}, {3}, <<1, 2, 3>>})}
    mine = Mure.upload!(conn, <<4, 5, 6>>, {:u, 8}, {3})
    msg = fn raw -> :erlang.term_to_binary(RawDist.envelope(raw, :hello)) end

    offenders = [
      no_pass_through: fn _raw -> [<<10::32>>, ?q, :binary.copy(<<0>>, 9)] end,
      control_not_a_tuple: fn raw -> RawDist.frame(:erlang.term_to_binary(:mure), msg.(raw)) end,
      control_op_not_integer: fn raw ->
        RawDist.frame(:erlang.term_to_binary({:six, raw.pid, :"", :mure}), msg.(raw))
      end,
      control_truncated: fn raw ->
        RawDist.frame(binary_part(RawDist.reg_send_control(raw), 0, 9))
      end,
      control_compressed: fn raw ->
        RawDist.frame(
          :erlang.term_to_binary({6, raw.pid, :"", :mure, :binary.copy(<<0>>, 200)}, [:compressed]),
          msg.(raw)
        )
      end,
      control_too_deep: fn raw ->
        RawDist.frame(<<131>> <> :binary.copy(<<104, 1>>, 100) <> <<97, 6>>, msg.(raw))
      end,
      control_no_version: fn raw ->
        <<131, c::binary>> = RawDist.reg_send_control(raw)
        RawDist.frame(c, msg.(raw))
      end,
      empty_frame_body: fn _raw -> [<<1::32>>, ?p] end
    ]

    for {label, make} <- offenders do
      {:ok, raw} = RawDist.connect(node)
      assert {:ok, %{protocol: 1}} = RawDist.call(raw, :hello)
      :ok = RawDist.send_bytes(raw, make.(raw))

      assert RawDist.closed?(raw, 2_000),
             "#{label}: the node kept a connection that broke the protocol"

      # The others keep their tensors and their service.
      assert {:ok, <<1, 2, 3>>} = RawDist.call(bystander, {:download, h}),
             "#{label} hurt another raw connection"

      assert {:ok, <<4, 5, 6>>} = Mure.download(mine), "#{label} hurt the BEAM's connection"
    end

    # A peer that lies about a frame's length and vanishes.
    {:ok, liar} = RawDist.connect(node)
    :ok = RawDist.send_bytes(liar, [<<1_000_000::32>>, ?p, RawDist.reg_send_control(liar)])
    RawDist.close(liar)
    assert {:ok, <<1, 2, 3>>} = RawDist.call(bystander, {:download, h})

    RawDist.close(bystander)
    assert os_alive?(os_pid)
    assert {:ok, %{protocol: 1}} = Mure.hello(conn)

    Reliability.record(
      :faults,
      length(offenders) + 1,
      "frames that break the distribution protocol"
    )
  end
end
