defmodule Mure.Reliability.RegressionTest do
  # One test per attack class that hit a tensor server elsewhere (docs: notes/security.md):
  # sizes that overflow, empty and size-1 dimensions, handles that are unknown, foreign or
  # freed, absurd element counts, messages over the cap, slices and gather indices out of
  # range. Requests go RAW (Mure.TestSupport.raw_call/3: send/2 over real distribution),
  # bypassing the client's own checks; every answer must be the documented one, nothing may
  # be allocated for a refused request, and the node must stay up.
  use ExUnit.Case, async: true

  @moduletag :capture_log

  import Bitwise
  import Mure.TestSupport

  alias Mure.RawDist

  setup_all do
    conn = start_supervised!({Mure, test_ops: true})
    %{node: node, os_pid: os_pid} = Mure.info(conn)
    %{conn: conn, node: node, os_pid: os_pid}
  end

  setup %{conn: conn, node: node, os_pid: os_pid} do
    on_exit(fn ->
      # Whatever a case did, the node is still up and answering.
      assert os_alive?(os_pid), "the node died"
    end)

    # The previous case's tensors are freed when its process's DOWN reaches the node: wait for
    # that, so the memory figure this case starts from does not move under it.
    assert wait_until(fn -> Mure.stats!(conn).tensors == 0 end, 10_000),
           "tensors of an earlier case were not freed: #{inspect(Mure.stats!(conn))}"

    %{conn: conn, node: node, used_before: Mure.stats!(conn).memory_used_bytes}
  end

  defp error!(node, request, kinds, opts \\ []) do
    kinds = List.wrap(kinds)

    case raw_call(node, request, opts) do
      {:error, {kind, message}} when is_binary(message) and message != "" ->
        assert kind in kinds,
               "#{inspect(request, limit: 8)}: expected #{inspect(kinds)}, got #{inspect(kind)}: #{message}"

        message

      other ->
        flunk(
          "#{inspect(request, limit: 8)}: expected {:error, {#{inspect(kinds)}, msg}}, got #{inspect(other, limit: 12, printable_limit: 64)}"
        )
    end
  end

  defp ok!(node, request) do
    case raw_call(node, request) do
      {:ok, value} ->
        value

      other ->
        flunk(
          "#{inspect(request, limit: 8)}: expected {:ok, _}, got #{inspect(other, limit: 12, printable_limit: 64)}"
        )
    end
  end

  defp upload!(node, type, shape, data), do: ok!(node, {:upload, type, shape, data})

  defp f32(list), do: pack(Enum.map(list, &(&1 * 1.0)), 32)

  defp assert_nothing_allocated(conn, before) do
    assert Mure.stats!(conn).memory_used_bytes == before, "a refused request left bytes allocated"
  end

  test "shape products that overflow 64 bits are refused before any allocation", %{
    conn: conn,
    node: node,
    used_before: used
  } do
    for shape <- [
          {1 <<< 32, 1 <<< 32},
          {1 <<< (63 - 1), 2},
          {1 <<< 21, 1 <<< 21, 1 <<< 21, 1 <<< 21},
          List.to_tuple(List.duplicate(16, 16)),
          {3, 1 <<< 62, 5}
        ] do
      error!(node, {:upload, {:u, 8}, shape, <<>>}, :bad_shape)
    end

    # The product is zero, but the non-zero dims overflow: refused (a shape's non-zero dims must
    # multiply below 2^63 even with a 0 among them).
    error!(node, {:upload, {:u, 8}, {1 <<< 32, 1 <<< 32, 0}, <<>>}, :bad_shape)

    # A result shape that overflows: {2^32, 0} x {0, 2^32} of f32 (both operands are empty).
    a = upload!(node, {:f, 32}, {1 <<< 32, 0}, <<>>)
    b = upload!(node, {:f, 32}, {0, 1 <<< 32}, <<>>)
    error!(node, {:matmul, a, b}, [:bad_shape, :out_of_memory])
    # The operands' handles cost bookkeeping; once they are freed, nothing may be left.
    for h <- [a, b], do: assert(ok!(node, {:free, h}) == :freed)
    assert_nothing_allocated(conn, used)
  end

  test "size x itemsize that overflows is refused", %{conn: conn, node: node, used_before: used} do
    error!(node, {:upload, {:f, 64}, {1 <<< 61}, <<>>}, :bad_shape)
    error!(node, {:upload, {:f, 32}, {1 <<< 62}, <<>>}, :bad_shape)
    error!(node, {:upload, {:s, 16}, {1 <<< 62, 2}, <<>>}, :bad_shape)
    error!(node, {:upload, {:u, 64}, {1 <<< 30, 1 <<< 31}, <<>>}, :bad_shape)
    # Just below: fits in 64 bits, so it is a size mismatch (the binary is empty).
    error!(node, {:upload, {:f, 64}, {(1 <<< 60) - 1}, <<>>}, [:size_mismatch, :bad_shape])
    assert_nothing_allocated(conn, used)
  end

  test "zero-sized and size-1 dimensions are legal, and computed on correctly", %{node: node} do
    for {type, shape} <- [
          {{:u, 8}, {0}},
          {{:f, 32}, {0, 5}},
          {{:f, 64}, {5, 0, 3}},
          {{:s, 32}, {1, 0}}
        ] do
      h = upload!(node, type, shape, <<>>)
      assert ok!(node, {:download, h}) == <<>>
      assert ok!(node, {:free, h}) == :freed
    end

    one = upload!(node, {:f, 32}, {1, 1}, f32([3]))
    assert {_, {:f, 32}, {1, 1}} = c = ok!(node, {:matmul, one, one})
    assert unpack(ok!(node, {:download, elem(c, 0)}), 32) == [9.0]

    ones = upload!(node, {:f, 32}, {1, 1, 1}, f32([2]))
    {s, {:f, 32}, {1, 1, 1}} = ok!(node, {:add, ones, ones})
    assert unpack(ok!(node, {:download, s}), 32) == [4.0]

    scalar = upload!(node, {:f, 32}, {}, f32([5]))
    {p, {:f, 32}, {}} = ok!(node, {:multiply, scalar, scalar})
    assert unpack(ok!(node, {:download, p}), 32) == [25.0]

    # k = 0: the product of {3, 0} and {0, 4} is a {3, 4} matrix of zeros (not garbage).
    a = upload!(node, {:f, 32}, {3, 0}, <<>>)
    b = upload!(node, {:f, 32}, {0, 4}, <<>>)
    {z, {:f, 32}, {3, 4}} = ok!(node, {:matmul, a, b})
    assert ok!(node, {:download, z}) == :binary.copy(<<0.0::float-32-native>>, 12)

    # m = n = 0: {0, 3} x {3, 0}.
    m0 = upload!(node, {:f, 32}, {0, 3}, <<>>)
    n0 = upload!(node, {:f, 32}, {3, 0}, <<>>)
    {e, {:f, 32}, {0, 0}} = ok!(node, {:matmul, m0, n0})
    assert ok!(node, {:download, e}) == <<>>

    # Elementwise on empty tensors.
    empty = upload!(node, {:f, 32}, {0, 7}, <<>>)

    for op <- [:add, :multiply] do
      case raw_call(node, {op, empty, empty}) do
        {:ok, {h, {:f, 32}, {0, 7}}} -> assert ok!(node, {:download, h}) == <<>>
        {:error, {kind, _}} -> flunk("#{op} of empty tensors failed with #{kind}")
      end
    end
  end

  test "unknown handles are refused for every op", %{node: node} do
    real = upload!(node, {:f, 32}, {2, 2}, f32([1, 2, 3, 4]))

    for h <- [999_999_999, (1 <<< 63) - 1, 1 <<< 40] do
      error!(node, {:download, h}, :unknown_handle)
      error!(node, {:free, h}, :unknown_handle)
      error!(node, {:matmul, real, h}, :unknown_handle)
      error!(node, {:matmul, h, real}, :unknown_handle)
      error!(node, {:add, h, real}, :unknown_handle)
      error!(node, {:multiply, real, h}, :unknown_handle)
    end

    # Not a handle at all (0, negative, beyond 64 bits).
    for h <- [0, -1, -(1 <<< 63), 1 <<< 64, 1 <<< 100] do
      error!(node, {:download, h}, [:badarg, :unknown_handle])
    end

    assert unpack(ok!(node, {:download, real}), 32) == [1.0, 2.0, 3.0, 4.0]
  end

  test "a handle of another connection (another BEAM) is unknown here, and its tensor unharmed",
       %{node: node} do
    {peer, _} = start_peer(:mure_foreign)
    on_exit(fn -> stop_peer(peer) end)

    {{:ok, foreign}, _holder} =
      :peer.call(peer, Mure.Reliability, :peer_hold, [
        node,
        {:upload, {:u, 8}, {4}, <<9, 8, 7, 6>>}
      ])

    {{:ok, foreign_f}, _holder} =
      :peer.call(peer, Mure.Reliability, :peer_hold, [
        node,
        {:upload, {:f, 32}, {2, 2}, f32([9, 8, 7, 6])}
      ])

    assert is_integer(foreign) and is_integer(foreign_f)
    mine = upload!(node, {:u, 8}, {4}, <<1, 2, 3, 4>>)
    mine_f = upload!(node, {:f, 32}, {2, 2}, f32([1, 2, 3, 4]))

    error!(node, {:download, foreign}, :unknown_handle)
    error!(node, {:free, foreign}, :unknown_handle)
    error!(node, {:add, foreign, foreign}, :unknown_handle)
    error!(node, {:matmul, mine_f, foreign_f}, :unknown_handle)
    error!(node, {:multiply, foreign_f, mine_f}, :unknown_handle)
    error!(node, {:binary, :add, mine_f, foreign_f}, :unknown_handle)

    # A raw distribution client is a third connection: same answer.
    {:ok, raw} = RawDist.connect(node)
    assert {:error, {:unknown_handle, _}} = RawDist.call(raw, {:download, foreign})
    assert {:error, {:unknown_handle, _}} = RawDist.call(raw, {:download, mine})
    RawDist.close(raw)

    # Its connection still has it (handles are per connection; any process of it may use them).
    assert {:ok, <<9, 8, 7, 6>>} =
             :peer.call(peer, Mure.Reliability, :peer_raw_call, [node, {:download, foreign}])

    assert ok!(node, {:download, mine}) == <<1, 2, 3, 4>>
  end

  test "ops on freed tensors, and frees while an op that reads them waits in the queue", %{
    conn: conn,
    node: node
  } do
    a = upload!(node, {:f, 32}, {2, 2}, f32([1, 2, 3, 4]))
    b = upload!(node, {:f, 32}, {2, 2}, f32([1, 0, 0, 1]))
    assert ok!(node, {:free, a}) == :freed

    error!(node, {:download, a}, :unknown_handle)
    error!(node, {:free, a}, :unknown_handle)
    error!(node, {:matmul, a, b}, :unknown_handle)
    error!(node, {:add, b, a}, :unknown_handle)

    # Queue a matmul behind a busy op, then free its operands before it runs.
    c = upload!(node, {:f, 32}, {2, 2}, f32([1, 2, 3, 4]))
    busy = Task.async(fn -> Mure.busy(conn, 500) end)

    assert wait_until(fn -> Mure.stats!(conn).queued == 1 end),
           "the busy op never reached the node's BLIS queue"

    ref = make_ref()
    send({:mure, node}, {:"$mure", 1, self(), ref, self(), {:matmul, c, b}})

    # The matmul waits on the same queue, behind the busy op, when its operands are freed.
    assert wait_until(fn -> Mure.stats!(conn).queued == 2 end),
           "the matmul was not queued behind the busy op: #{inspect(Mure.stats!(conn))}"

    assert ok!(node, {:free, c}) == :freed
    assert ok!(node, {:free, b}) == :freed
    assert {:ok, 500} = Task.await(busy)

    assert_receive {:"$mure_reply", ^ref, result}, 5_000

    case result do
      # The op holds its operands: it computes on them and the result is correct.
      {:ok, {h, {:f, 32}, {2, 2}}} ->
        assert unpack(ok!(node, {:download, h}), 32) == [1.0, 2.0, 3.0, 4.0]

      {:error, {:unknown_handle, _}} ->
        :ok
    end
  end

  test "requests for 2^62 elements are refused without allocating", %{
    conn: conn,
    node: node,
    used_before: used
  } do
    error!(node, {:upload, {:u, 8}, {1 <<< 62}, <<>>}, [
      :size_mismatch,
      :bad_shape,
      :out_of_memory
    ])

    error!(node, {:upload, {:u, 8}, {1 <<< 31, 1 <<< 31}, <<>>}, [
      :size_mismatch,
      :bad_shape,
      :out_of_memory
    ])

    error!(node, {:upload, {:u, 8}, {1 <<< 62}, <<1, 2, 3>>}, [
      :size_mismatch,
      :bad_shape,
      :out_of_memory
    ])

    # A matmul whose result has 2^62 (f32: 2^64 bytes) or 2^61 elements (2^63 bytes).
    a = upload!(node, {:f, 32}, {1 <<< 31, 0}, <<>>)
    b = upload!(node, {:f, 32}, {0, 1 <<< 31}, <<>>)
    error!(node, {:matmul, a, b}, [:bad_shape, :out_of_memory])
    b2 = upload!(node, {:f, 32}, {0, 1 <<< 30}, <<>>)
    error!(node, {:matmul, a, b2}, [:out_of_memory, :bad_shape])
    for h <- [a, b, b2], do: assert(ok!(node, {:free, h}) == :freed)
    assert_nothing_allocated(conn, used)
    assert {:ok, %{protocol: 1}} = raw_call(node, :hello)
  end

  test "a message over the node's size cap is answered :message_too_large, and the connection serves on" do
    small = start_supervised!({Mure, max_message: 64 * 1024}, id: :small_cap)
    node = Mure.info(small).node

    for size <- [64 * 1024 + 1, 4 * 1024 * 1024] do
      error!(node, {:upload, {:u, 8}, {size}, :binary.copy(<<1>>, size)}, :message_too_large,
        timeout: 30_000
      )

      assert {:ok, %{protocol: 1}} = raw_call(node, :hello)
    end

    # Over a raw connection too, with a frame length the node must not believe.
    {:ok, raw} = RawDist.connect(node)
    ref = make_ref()

    env =
      :erlang.term_to_binary(
        RawDist.envelope(raw, {:upload, {:u, 8}, {100_000}, :binary.copy(<<2>>, 100_000)}, ref)
      )

    :ok = RawDist.send_message(raw, env)
    assert {:ok, {:error, {:message_too_large, _}}, _} = RawDist.await_reply(raw, ref, 10_000)
    assert {:ok, %{protocol: 1}} = RawDist.call(raw, :hello)
    RawDist.close(raw)

    # The client refuses before sending.
    assert {:error, %Mure.Error{kind: :message_too_large}} =
             Mure.upload(small, :binary.copy(<<1>>, 128 * 1024), {:u, 8}, {128 * 1024})

    assert Mure.stats!(small).memory_used_bytes == 0
  end

  @tag :lead_ops
  test "slices out of range are refused with :out_of_range", %{node: node} do
    h = upload!(node, {:f, 32}, {4, 6}, f32(Enum.to_list(0..23)))

    # In range: rows 1..2, every other column of the span 1..5 (as Nx: a length is the span
    # of the input, and the result has ceil(length / stride) elements).
    {s, {:f, 32}, {2, 3}} = ok!(node, {:slice, h, {1, 1}, {2, 5}, {1, 2}})
    assert unpack(ok!(node, {:download, s}), 32) == Enum.map([7, 9, 11, 13, 15, 17], &(&1 * 1.0))

    # Strides past the span keep only its start; they cannot take a slice out of range.
    {s, {:f, 32}, {1, 1}} = ok!(node, {:slice, h, {0, 0}, {1, 2}, {1, 1 <<< 62}})
    assert unpack(ok!(node, {:download, s}), 32) == [0.0]
    {s, {:f, 32}, {1, 1}} = ok!(node, {:slice, h, {3, 5}, {1, 1}, {(1 <<< 63) - 1, 1}})
    assert unpack(ok!(node, {:download, s}), 32) == [23.0]

    for {starts, lengths, strides} <- [
          {{4, 0}, {1, 1}, {1, 1}},
          {{0, 0}, {5, 1}, {1, 1}},
          {{3, 0}, {2, 1}, {1, 1}},
          {{0, 5}, {1, 2}, {1, 1}},
          {{0, 0}, {5, 1}, {2, 1}},
          {{0, 5}, {1, 2}, {1, 1 <<< 62}},
          {{(1 <<< 63) - 1, 0}, {2, 1}, {1, 1}},
          {{1, 0}, {(1 <<< 63) - 1, 1}, {1, 1}},
          {{(1 <<< 63) - 1, 0}, {(1 <<< 63) - 1, 1}, {1, 1}},
          {{0, 0}, {5, 1}, {(1 <<< 63) - 1, 1}},
          {{5, 0}, {0, 1}, {1, 1}},
          {{-1, 0}, {1, 1}, {1, 1}}
        ] do
      error!(node, {:slice, h, starts, lengths, strides}, :out_of_range)
    end

    for bad <- [
          {{0}, {1}, {1}},
          {{0, 0}, {1, 1}, {0, 1}},
          {{0, 0}, {1, 1}, {1, -1}},
          {:a, {1, 1}, {1, 1}}
        ] do
      {starts, lengths, strides} = bad
      error!(node, {:slice, h, starts, lengths, strides}, [:badarg, :bad_shape, :out_of_range])
    end

    # Empty slices at the very end are legal.
    {e, {:f, 32}, {0, 6}} = ok!(node, {:slice, h, {4, 0}, {0, 6}, {1, 1}})
    assert ok!(node, {:download, e}) == <<>>
  end

  @tag :lead_ops
  test "gather indices out of range are refused with :out_of_range", %{node: node} do
    h = upload!(node, {:f, 32}, {3, 2}, f32([0, 1, 10, 11, 20, 21]))
    idx = upload!(node, {:s, 64}, {2}, <<2::64-signed-native, 0::64-signed-native>>)
    {t, {:f, 32}, {2, 2}} = ok!(node, {:take, h, idx, 0})
    assert unpack(ok!(node, {:download, t}), 32) == [20.0, 21.0, 0.0, 1.0]

    for {type, bytes} <- [
          {{:s, 64}, <<3::64-signed-native>>},
          {{:s, 64}, <<-1::64-signed-native>>},
          {{:s, 64}, <<(1 <<< 63) - 1::64-signed-native>>},
          {{:s, 64}, <<-(1 <<< 63)::64-signed-native>>},
          {{:u, 64}, <<(1 <<< 64) - 1::64-native>>},
          {{:s, 32}, <<0::32-native, 1::32-native, 3::32-native>>},
          {{:u, 8}, <<255>>},
          {{:s, 8}, <<-128::8-signed>>}
        ] do
      n = div(byte_size(bytes), div(elem(type, 1), 8))
      bad = upload!(node, type, {n}, bytes)
      error!(node, {:take, h, bad, 0}, :out_of_range)
    end

    # An index in range for axis 0 (3) but not axis 1 (2).
    two = upload!(node, {:s, 64}, {1}, <<2::64-signed-native>>)
    error!(node, {:take, h, two, 1}, :out_of_range)

    # Axes that do not exist.
    for axis <- [2, 3, -3, 1 <<< 40] do
      error!(node, {:take, h, idx, axis}, [:out_of_range, :badarg])
    end

    # Float indices are a type error, not an address.
    fidx = upload!(node, {:f, 32}, {1}, f32([1]))
    error!(node, {:take, h, fidx, 0}, [:type_mismatch, :badarg])
  end

  # Issue 11, item 1: a program's output ids were used by fusion planning (writes at the id the
  # client chose) before they were checked. 99 corrupted the heap behind a clean :badarg (the
  # ASan node aborts); ids far out of range crashed the node at once.
  test "program ids out of range are refused before any pass reads the program", %{node: node} do
    x = upload!(node, {:f, 32}, {4}, f32([1, 2, 3, 4]))

    for id <- [0, 4, 99, 1 <<< 20, 1 <<< 40, (1 <<< 63) - 1] do
      for outs <- [[{id, :return}], [{2, :keep}, {id, :keep}]] do
        msg =
          error!(
            node,
            {:program, [{:handle, x}], [{:unary, :exp, 1}, {:unary, :negate, 2}], outs},
            :badarg
          )

        assert msg =~ "output"
      end

      # Operand ids that are not earlier values, in a chain fusion would take.
      if id > 0 do
        error!(
          node,
          {:program, [{:handle, x}], [{:unary, :exp, 1}, {:binary, :add, 2, id + 2}],
           [{3, :return}]},
          :badarg
        )
      end
    end

    # The node is whole: the same chain with good ids runs, fused, and matches its reference.
    {:ok, [{{:f, 32}, {4}, bin}]} =
      raw_call(
        node,
        {:program, [{:handle, x}], [{:unary, :exp, 1}, {:unary, :negate, 2}], [{3, :return}]}
      )

    assert_close(unpack(bin, 32), Enum.map([1, 2, 3, 4], &(-:math.exp(&1))), 1.0e-6)
    assert %{protocol: 1} = ok!(node, :hello)
  end

  describe "replies and handle lists within their limits (issue 11, items 7 and 8)" do
    setup do
      # A node of its own, with an 8 MiB max_message, whose first handles are below 256.
      conn = start_supervised!({Mure, max_message: 8 <<< 20}, id: :small_messages)
      %{node: node} = Mure.info(conn)
      %{small: conn, small_node: node}
    end

    test "a program's returned outputs are checked against max_message", %{
      small: conn,
      small_node: node
    } do
      mib = upload!(node, {:u, 8}, {1 <<< 20}, :binary.copy(<<7>>, 1 <<< 20))
      outs = List.duplicate({1, :return}, 17)
      msg = error!(node, {:program, [{:handle, mib}], [], outs}, :message_too_large)
      assert msg =~ "Mure.download"
      assert msg =~ "max_message"
      # Data inputs and nodes count too; :keep outputs do not travel.
      error!(
        node,
        {:program, [{:handle, mib}], [{:unary, :bitwise_not, 1}],
         List.duplicate({2, :return}, 9)},
        :message_too_large
      )

      assert {:ok, [_ | _]} =
               raw_call(
                 node,
                 {:program, [{:handle, mib}], [{:unary, :bitwise_not, 1}],
                  List.duplicate({2, :keep}, 9)}
               )

      # What fits is returned whole.
      {:ok, [{{:u, 8}, {1_048_576}, a}, {{:u, 8}, {1_048_576}, b}]} =
        raw_call(
          node,
          {:program, [{:handle, mib}], [{:unary, :bitwise_not, 1}], [{1, :return}, {2, :return}]}
        )

      assert a == :binary.copy(<<7>>, 1 <<< 20) and b == :binary.copy(<<248>>, 1 <<< 20)
      assert %{memory_used_bytes: used} = Mure.stats!(conn)
      assert used >= 1 <<< 20
    end

    test "a handle list sent as a byte string is capped like any list", %{small_node: node} do
      h = upload!(node, {:u, 8}, {1}, <<1>>)
      assert h < 256, "the test needs a handle the BEAM encodes in a byte string (got #{h})"

      # The BEAM sends a list of integers below 256 as STRING_EXT: 60,000 of them here.
      for n <- [1025, 60_000] do
        msg = error!(node, {:concatenate, List.duplicate(h, n), 0}, :badarg)
        assert msg =~ "more than 1024"
        error!(node, {:stack, List.duplicate(h, n), 0}, :badarg)
      end

      {c, {:u, 8}, {1024}} = ok!(node, {:concatenate, List.duplicate(h, 1024), 0})
      assert ok!(node, {:download, c}) == :binary.copy(<<1>>, 1024)
    end
  end

  test "empty tensors cannot grow the node past its memory limit: each handle costs bookkeeping" do
    conn = start_supervised!({Mure, memory_limit: 1 <<< 20}, id: :tiny_budget)
    %{node: node, os_pid: os_pid} = Mure.info(conn)
    # 1 MiB of budget holds 4,096 handles' bookkeeping (256 bytes each); 67c2630 took all 10,000.
    results =
      Enum.reduce_while(1..10_000, [], fn _, acc ->
        case raw_call(node, {:upload, {:f, 32}, {0, 1 <<< 30}, <<>>}) do
          {:ok, h} -> {:cont, [h | acc]}
          {:error, {:out_of_memory, msg}} -> {:halt, {acc, msg}}
        end
      end)

    assert {handles, msg} = results, "10,000 empty tensors were all accepted"
    assert length(handles) <= 4096 and length(handles) >= 4000
    assert msg =~ "bookkeeping"
    assert os_alive?(os_pid)
    assert ok!(node, {:free, hd(handles)}) == :freed
    assert is_integer(ok!(node, {:upload, {:u, 8}, {0}, <<>>}))
  end
end
