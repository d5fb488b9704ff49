defmodule Mure.RobustnessTest do
  # Bad input sent RAW (bypassing the client's checks), and the tools operators point at
  # nodes (ping, rpc). The node answers each with the documented error or drops it, stays
  # up, and a second client on another BEAM completes all its requests meanwhile.
  use ExUnit.Case, async: true

  @moduletag :capture_log

  import Bitwise
  import Mure.TestSupport

  setup_all do
    conn = start_supervised!({Mure, test_ops: true})
    node = Mure.info(conn).node
    %{conn: conn, node: node}
  end

  # `kinds` is the documented kind, or a list where the protocol allows more than one
  # reading (e.g. a non-tuple type may be :bad_type or :badarg).
  defp assert_error(node, request, kinds, opts \\ []) do
    kinds = List.wrap(kinds)

    case raw_call(node, request, opts) do
      {:error, {kind, message}} when is_binary(message) and message != "" ->
        assert kind in kinds, """
        expected one of #{inspect(kinds)} for #{inspect(request, limit: 6, printable_limit: 40)}
        got: #{inspect(kind)}: #{message}
        """

        message

      other ->
        flunk("""
        expected {:error, {kind, message}} with kind in #{inspect(kinds)} for #{inspect(request, limit: 6, printable_limit: 40)}
        got: #{inspect(other, limit: 20)}
        """)
    end
  end

  defp assert_alive(conn, node) do
    assert {:ok, %{protocol: 1}} = Mure.hello(conn)
    assert {:ok, %{protocol: 1}} = raw_call(node, :hello)
  end

  test "bad requests get the documented errors while another BEAM keeps working", %{
    conn: conn,
    node: node
  } do
    {peer, _peer_node} = start_peer(:mure_worker)
    on_exit(fn -> stop_peer(peer) end)

    worker =
      Task.async(fn ->
        :peer.call(peer, Mure.TestSupport, :peer_workload, [node, 150], 120_000)
      end)

    junk_rounds =
      for _round <- 1..5 do
        # unknown op
        assert_error(node, :frobnicate, :unknown_op)
        assert_error(node, {:frobnicate, 1, 2}, :unknown_op)
        # wrong arity / shape of request
        assert_error(node, {:upload, {:f, 32}, {1}}, :badarg)
        assert_error(node, {:download}, :badarg)
        assert_error(node, {:matmul, 1}, :badarg)
        assert_error(node, {:busy, 1, 2}, :badarg)
        assert_error(node, [], [:badarg, :unknown_op])
        assert_error(node, "hello", [:badarg, :unknown_op])
        # wrong element types
        assert_error(node, {:download, "1"}, :badarg)
        assert_error(node, {:download, -1}, [:badarg, :unknown_handle])
        assert_error(node, {:upload, {:f, 32}, {1}, [0, 0, 0, 0]}, :badarg)
        assert_error(node, {:busy, :long}, :badarg)
        assert_error(node, {:free, 1.0}, :badarg)
        # types
        assert_error(node, {:upload, {:f, 33}, {1}, <<0::33>>}, :bad_type)
        assert_error(node, {:upload, {:q, 8}, {1}, <<0>>}, :bad_type)
        assert_error(node, {:upload, :f32, {1}, <<0::32>>}, [:bad_type, :badarg])
        # shapes
        assert_error(node, {:upload, {:u, 8}, {-1}, <<>>}, :bad_shape)
        assert_error(node, {:upload, {:u, 8}, [1], <<0>>}, [:bad_shape, :badarg])
        assert_error(node, {:upload, {:u, 8}, {:a}, <<0>>}, [:bad_shape, :badarg])

        assert_error(
          node,
          {:upload, {:u, 8}, List.to_tuple(List.duplicate(1, 17)), <<0>>},
          :bad_shape
        )

        assert_error(node, {:upload, {:f, 64}, {1 <<< 40, 1 <<< 40}, <<0::64>>}, :bad_shape)
        assert_error(node, {:upload, {:f, 64}, {1 <<< 62}, <<0::64>>}, :bad_shape)
        assert_error(node, {:upload, {:u, 8}, {1 <<< 70}, <<0>>}, :bad_shape)
        # size mismatch
        assert_error(node, {:upload, {:f, 32}, {2, 2}, <<0::96>>}, :size_mismatch)
        assert_error(node, {:upload, {:f, 32}, {}, <<>>}, :size_mismatch)
        assert_error(node, {:upload, {:u, 8}, {0}, <<1>>}, :size_mismatch)
        # unknown handles
        assert_error(node, {:download, 999_999_999}, :unknown_handle)
        assert_error(node, {:free, 999_999_999}, :unknown_handle)
        assert_error(node, {:download, 0}, [:unknown_handle, :badarg])

        # operands
        {:ok, a} = raw_call(node, {:upload, {:f, 32}, {2, 3}, <<0::192>>})
        {:ok, b} = raw_call(node, {:upload, {:f, 64}, {3, 2}, <<0::384>>})
        {:ok, c} = raw_call(node, {:upload, {:s, 32}, {3, 3}, <<0::288>>})
        {:ok, d} = raw_call(node, {:upload, {:f, 64}, {2, 3}, <<0::384>>})
        {:ok, e} = raw_call(node, {:upload, {:f, 32}, {3, 2}, <<0::192>>})
        assert_error(node, {:matmul, a, a}, :shape_mismatch)
        assert_error(node, {:matmul, a, b}, :type_mismatch)
        assert_error(node, {:matmul, c, c}, :type_mismatch)
        assert_error(node, {:add, a, e}, :shape_mismatch)
        assert_error(node, {:add, a, d}, :type_mismatch)
        assert_error(node, {:multiply, c, c}, :type_mismatch)
        assert_error(node, {:multiply, d, d}, :type_mismatch)
        assert_error(node, {:matmul, a, 999_999_999}, :unknown_handle)
        assert_error(node, {:add, 999_999_999, a}, :unknown_handle)
        {:ok, :freed} = raw_call(node, {:free, a})
        assert_error(node, {:download, a}, :unknown_handle)
        # bad version
        assert_error(node, :hello, :bad_version, version: 2)
        assert_error(node, :hello, :bad_version, version: :one)
        # deep nesting
        deep = Enum.reduce(1..10_000, [], fn _, acc -> [acc] end)
        assert_error(node, deep, :badarg)
        assert_error(node, {:upload, {:f, 32}, {1}, deep}, :badarg)
        deep_tuple = Enum.reduce(1..10_000, {}, fn _, acc -> {acc} end)
        assert_error(node, {:download, deep_tuple}, :badarg)
        # huge arity and long lists
        assert_error(node, List.to_tuple(List.duplicate(:x, 100_000)), [:badarg, :unknown_op])

        assert_error(
          node,
          {:upload, {:u, 8}, List.to_tuple(List.duplicate(1, 1000)), <<1>>},
          :bad_shape
        )

        # Past the reader's bound on terms per message: refused as a whole.
        assert_error(
          node,
          {:upload, {:u, 8}, List.to_tuple(List.duplicate(1, 100_000)), <<1>>},
          [:bad_shape, :badarg]
        )

        assert_error(node, Enum.to_list(1..100_000), :badarg)
        # terms of every kind where a handle belongs
        for weird <- [self(), make_ref(), fn -> :ok end, 3.5, %{a: 1}, <<1::3>>, "1", [1]] do
          assert_error(node, {:download, weird}, :badarg)
        end

        for big <- [1 <<< 64, 1 <<< 200, -(1 <<< 200)] do
          assert_error(node, {:download, big}, [:badarg, :unknown_handle])
        end

        # non-envelope junk is dropped without a reply
        for junk <- [
              :junk,
              {:"$mure"},
              {:"$mure", 1},
              {:"$mure", 1, self()},
              {:"$mure", 1, :not_a_pid, make_ref(), self(), :hello},
              {:"$mure", 1, self(), :not_a_ref, self(), :hello},
              {:"$mure_reply", make_ref(), :ok},
              List.duplicate(:junk, 1000),
              :binary.copy(<<0>>, 100_000),
              deep
            ] do
          send({:mure, node}, junk)
        end

        assert_alive(conn, node)
        :ok
      end

    assert length(junk_rounds) == 5
    refute_received {:"$mure_reply", _, _}, "the node answered a message that was not an envelope"

    assert {:ok, 150} = Task.await(worker, 120_000)
    assert Node.ping(node) == :pong
    assert_alive(conn, node)

    stats = Mure.stats!(conn)
    assert stats.errors > 0
  end

  test "an oversized message gets :message_too_large and the node stays up" do
    small = start_supervised!({Mure, max_message: 64 * 1024}, id: :small)
    node = Mure.info(small).node

    for size <- [64 * 1024 + 1, 1024 * 1024, 16 * 1024 * 1024] do
      assert_error(
        node,
        {:upload, {:u, 8}, {size}, :binary.copy(<<7>>, size)},
        :message_too_large,
        timeout: 30_000
      )

      assert_alive(small, node)
    end

    # An envelope at the end of a large message is not readable from its first 64 KiB;
    # the node may only drop it, but it must stay up and keep serving this connection.
    ref = make_ref()

    send(
      {:mure, node},
      {:"$mure", 1, self(), ref, self(), {:upload, {:u, 8}, {1}, <<1>>},
       :binary.copy(<<0>>, 1 <<< 20)}
    )

    assert_alive(small, node)
    assert {:ok, _} = Mure.upload(small, <<1, 2, 3>>, {:u, 8}, {3})
  end

  test "ping, rpc and messages to other names leave the node up", %{conn: conn, node: node} do
    assert Node.ping(node) == :pong
    assert node in Node.list(:hidden)
    refute node in Node.list(:visible)

    assert {:badrpc, _} = :rpc.call(node, :erlang, :node, [], 5_000)
    assert {:badrpc, _} = :rpc.call(node, :os, :cmd, [~c"touch /tmp/mure_rpc_pwned"], 5_000)
    refute File.exists?("/tmp/mure_rpc_pwned")
    assert_alive(conn, node)

    for name <- [:net_kernel, :rex, :global_name_server, :code_server, :init, :nobody, :mure_x] do
      send({name, node}, :junk)
      send({name, node}, {:"$gen_call", {self(), make_ref()}, :junk})
      send({name, node}, {:"$mure", 1, self(), make_ref(), self(), :hello})
    end

    send({:net_kernel, node}, {:"$gen_call", {self(), make_ref()}, {:is_auth, :x}})
    assert Node.ping(node) == :pong
    assert_alive(conn, node)

    assert catch_exit(GenServer.call({:net_kernel, node}, :bogus, 500))
    assert Node.ping(node) == :pong
    assert_alive(conn, node)
  end
end
