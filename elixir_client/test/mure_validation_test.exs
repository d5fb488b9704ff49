defmodule Mure.ValidationTest do
  # The client checks its arguments eagerly, like Nx, and raises before sending.
  use ExUnit.Case, async: true

  alias Mure.{Error, Tensor}

  @max_message 64 * 1024

  setup_all do
    conn = start_supervised!({Mure, max_message: @max_message})
    other = start_supervised!({Mure, []}, id: :other)
    %{conn: conn, other: other}
  end

  # Counts the requests the node saw between two stats calls: 1 means only the second
  # stats call itself, i.e. nothing else reached the node.
  defp assert_nothing_sent(conn, fun) do
    before = Mure.stats!(conn).requests
    fun.()
    assert Mure.stats!(conn).requests - before == 1, "the node received requests"
  end

  defp f32(conn, shape) do
    count = shape |> Tuple.to_list() |> Enum.product()
    Mure.upload!(conn, :binary.copy(<<0::32>>, count), {:f, 32}, shape)
  end

  test "upload checks type, shape and size", %{conn: conn} do
    assert_nothing_sent(conn, fn ->
      assert_raise ArgumentError, ~r/upload: expected a type .* got: \{:f, 33\}/, fn ->
        Mure.upload(conn, <<>>, {:f, 33}, {0})
      end

      assert_raise ArgumentError, ~r/got: :f32/, fn -> Mure.upload(conn, <<0::32>>, :f32, {1}) end

      assert_raise ArgumentError, ~r/got: \{:bf, 32\}/, fn ->
        Mure.upload(conn, <<>>, {:bf, 32}, {0})
      end

      assert_raise ArgumentError, ~r/non-negative integers, got -1 at axis 1/, fn ->
        Mure.upload(conn, <<>>, {:u, 8}, {2, -1})
      end

      assert_raise ArgumentError, ~r/got 1.5 at axis 0/, fn ->
        Mure.upload(conn, <<>>, {:u, 8}, {1.5})
      end

      assert_raise ArgumentError, ~r/expected a shape tuple .* got: \[2, 3\]/, fn ->
        Mure.upload(conn, <<0::48>>, {:u, 8}, [2, 3])
      end

      assert_raise ArgumentError, ~r/at most 16 dimensions, got 17/, fn ->
        Mure.upload(conn, <<0>>, {:u, 8}, List.to_tuple(List.duplicate(1, 17)))
      end

      assert_raise ArgumentError,
                   "upload: expected 24 bytes for a f32[2][3] tensor (6 elements of 4 bytes), got 20 bytes",
                   fn -> Mure.upload(conn, <<0::160>>, {:f, 32}, {2, 3}) end

      assert_raise ArgumentError, ~r/expected 4 bytes for a s32 tensor/, fn ->
        Mure.upload(conn, <<>>, {:s, 32}, {})
      end

      assert_raise ArgumentError, ~r/expected the data to be a binary/, fn ->
        Mure.upload(conn, [1, 2], {:u, 8}, {2})
      end

      assert_raise ArgumentError, ~r/unknown keys \[:timeuot\]/, fn ->
        Mure.upload(conn, <<1>>, {:u, 8}, {1}, timeuot: 5)
      end

      assert_raise ArgumentError, ~r/:timeout/, fn ->
        Mure.upload(conn, <<1>>, {:u, 8}, {1}, timeout: -1)
      end
    end)
  end

  test "matmul checks shapes, types and connections", %{conn: conn, other: other} do
    a23 = f32(conn, {2, 3})
    v3 = f32(conn, {3})
    d34 = Mure.upload!(conn, :binary.copy(<<0::64>>, 12), {:f, 64}, {3, 4})
    s23 = Mure.upload!(conn, :binary.copy(<<0::32>>, 6), {:s, 32}, {2, 3})
    s34 = Mure.upload!(conn, :binary.copy(<<0::32>>, 12), {:s, 32}, {3, 4})
    x34 = f32(other, {3, 4})

    assert_nothing_sent(conn, fn ->
      assert_raise ArgumentError,
                   "matmul: cannot multiply f32[2][3] by f32[2][3]: the first tensor's axis 1 (3) " <>
                     "must equal the second tensor's axis 0 (2)",
                   fn -> Mure.matmul(a23, a23) end

      assert_raise ArgumentError,
                   ~r/expected two rank-2 tensors .* got f32\[2\]\[3\] and f32\[3\]/,
                   fn ->
                     Mure.matmul(a23, v3)
                   end

      assert_raise ArgumentError,
                   ~r/to be \{:f, 32\} or both \{:f, 64\}, got \{:f, 32\} and \{:f, 64\}/,
                   fn ->
                     Mure.matmul(a23, d34)
                   end

      assert_raise ArgumentError, ~r/got \{:s, 32\} and \{:s, 32\}/, fn ->
        Mure.matmul(s23, s34)
      end

      assert_raise ArgumentError, ~r/matmul: the tensors belong to different connections/, fn ->
        Mure.matmul(a23, x34)
      end

      assert_raise ArgumentError, ~r/expected a %Mure.Tensor\{\}, got: :nope/, fn ->
        Mure.matmul(a23, :nope)
      end
    end)
  end

  test "add and multiply check shapes and connections as binary/4 does", %{
    conn: conn,
    other: other
  } do
    a = f32(conn, {2, 3})
    b = f32(conn, {3, 2})
    x = f32(other, {2, 3})

    assert_nothing_sent(conn, fn ->
      for op <- [:add, :multiply] do
        assert_raise ArgumentError,
                     "#{op}: shapes {2, 3} and {3, 2} cannot be broadcast together (dimension 0: 2 vs 3)",
                     fn -> apply(Mure, op, [a, b]) end

        assert_raise ArgumentError, ~r/#{op}: the tensors belong to different connections/, fn ->
          apply(Mure, op, [a, x])
        end

        assert_raise ArgumentError, ~r/#{op}: expected a %Mure.Tensor\{\}, got: 1.0/, fn ->
          apply(Mure, op, [a, 1.0])
        end
      end

      assert_raise ArgumentError, ~r/unary: the op comes first: Mure.unary\(:exp, tensor\)/, fn ->
        Mure.unary(a, :exp)
      end

      assert_raise ArgumentError, ~r/download: expected a %Mure.Tensor\{\}/, fn ->
        Mure.download(1)
      end

      assert_raise ArgumentError, ~r/free: expected a %Mure.Tensor\{\}/, fn ->
        Mure.free(%{id: 1})
      end

      assert_raise ArgumentError, ~r/busy: expected milliseconds/, fn -> Mure.busy(conn, -5) end
    end)
  end

  test "an upload larger than the node's max_message_bytes is refused before sending", %{
    conn: conn
  } do
    assert Mure.hello!(conn).limits.max_message_bytes == @max_message
    big = :binary.copy(<<0>>, @max_message)

    assert_nothing_sent(conn, fn ->
      assert {:error, %Error{kind: :message_too_large, message: msg}} =
               Mure.upload(conn, big, {:u, 8}, {@max_message})

      assert msg =~ "max_message_bytes is #{@max_message}"
    end)

    # Just below the limit (leaving room for the envelope) it goes through.
    ok = :binary.copy(<<0>>, @max_message - 1024)
    assert {:ok, %Tensor{}} = Mure.upload(conn, ok, {:u, 8}, {byte_size(ok)})
  end

  test "start options are validated" do
    assert_raise ArgumentError, ~r/unknown keys \[:bogus\]/, fn -> Mure.start_link(bogus: 1) end

    assert_raise ArgumentError, ~r/:memory_limit to be a positive integer/, fn ->
      Mure.start_link(memory_limit: 0)
    end

    assert_raise ArgumentError, ~r/:devices/, fn -> Mure.start_link(devices: [:gpu]) end
    assert_raise ArgumentError, ~r/:extra_args/, fn -> Mure.child_spec(extra_args: [:x]) end
    assert_raise ArgumentError, ~r/:node_name/, fn -> Mure.start_link(node_name: :no_host) end
  end
end
