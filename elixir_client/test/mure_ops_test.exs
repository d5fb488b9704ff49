defmodule Mure.OpsTest do
  # Info, round trips and the compute ops, checked against references computed here.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  alias Mure.{Error, Tensor}

  setup_all do
    %{conn: start_supervised!({Mure, test_ops: true})}
  end

  describe "node information" do
    test "hello", %{conn: conn} do
      assert {:ok, hello} = Mure.hello(conn)
      assert hello.protocol == 1
      assert hello.node == Mure.info(conn).node
      assert is_binary(hello.version)
      assert is_integer(hello.os_pid) and hello.os_pid == Mure.info(conn).os_pid
      assert is_list(hello.devices)

      assert %{max_message_bytes: max, memory_limit_bytes: mem, queue_depth: depth, max_dims: 16} =
               hello.limits

      assert is_integer(max) and max > 0
      assert is_integer(mem) and mem > 0
      assert is_integer(depth) and depth > 0

      for op <- [:hello, :devices, :stats, :upload, :download, :free, :matmul, :add, :multiply] do
        assert op in hello.ops, "op #{inspect(op)} missing from hello.ops #{inspect(hello.ops)}"
      end
    end

    test "devices include BLIS and an OpenCL device", %{conn: conn} do
      assert {:ok, devices} = Mure.devices(conn)
      blis = Enum.find(devices, &(&1.id == :blis))
      assert blis, "no :blis device in #{inspect(devices)}"
      assert blis.kind == :blas
      assert is_binary(blis.name)
      assert is_binary(blis.arch) or is_atom(blis.arch)
      assert Map.has_key?(blis, :arch_reason)
      assert is_integer(blis.threads) and blis.threads > 0

      opencl = Enum.find(devices, &(&1.id == :opencl))

      assert opencl,
             "no :opencl device in #{inspect(devices)}: PoCL is installed here and in CI, " <>
               "so the node must find an OpenCL device (check `clinfo -l`)"

      assert opencl.kind == :opencl
      assert is_binary(opencl.name)
      assert is_binary(opencl.platform)
      assert Map.has_key?(opencl, :device_type)
      assert is_integer(opencl.compute_units) and opencl.compute_units > 0
      assert is_boolean(opencl.fp64)
    end

    test "stats", %{conn: conn} do
      assert {:ok, stats} = Mure.stats(conn)

      for key <- [
            :tensors,
            :memory_used_bytes,
            :memory_limit_bytes,
            :connections,
            :connection_tensors,
            :requests,
            :errors,
            :queued
          ] do
        assert is_integer(Map.fetch!(stats, key)),
               "stats.#{key} is not an integer: #{inspect(stats)}"
      end

      assert stats.connections >= 1
      assert Mure.stats!(conn).requests > stats.requests
    end
  end

  describe "upload/download round trips" do
    @cases [
      {{:u, 8}, {5}},
      {{:u, 16}, {2, 3}},
      {{:u, 32}, {4}},
      {{:u, 64}, {2, 2}},
      {{:s, 8}, {3, 1}},
      {{:s, 16}, {7}},
      {{:s, 32}, {2, 2, 2}},
      {{:s, 64}, {3}},
      {{:f, 16}, {6}},
      {{:bf, 16}, {2, 5}},
      {{:f, 32}, {3, 4}},
      {{:f, 64}, {2, 3}},
      # scalars
      {{:f, 32}, {}},
      {{:s, 64}, {}},
      {{:u, 8}, {}},
      # empty tensors
      {{:f, 32}, {0}},
      {{:f, 64}, {3, 0}},
      {{:u, 8}, {0, 5, 2}}
    ]

    for {type, shape} <- @cases do
      test "#{inspect(type)} #{inspect(shape)}", %{conn: conn} do
        type = unquote(Macro.escape(type))
        shape = unquote(Macro.escape(shape))
        {_, bits} = type
        count = shape |> Tuple.to_list() |> Enum.product()
        data = :crypto.strong_rand_bytes(count * div(bits, 8))

        assert {:ok, %Tensor{type: ^type, shape: ^shape} = t} =
                 Mure.upload(conn, data, type, shape)

        assert is_integer(t.id) and t.id > 0
        assert t.node == Mure.info(conn).node
        assert Mure.download(t) == {:ok, data}
        assert Mure.free(t) == :ok
      end
    end

    test "a large tensor (8 MiB) round trips", %{conn: conn} do
      data = :crypto.strong_rand_bytes(8 * 1024 * 1024)
      t = Mure.upload!(conn, data, {:u, 8}, {8, 1024, 1024})
      assert Mure.download!(t, timeout: 30_000) == data
      Mure.free!(t)
    end

    test "a tensor is usable by another process of the same BEAM", %{conn: conn} do
      t = Mure.upload!(conn, <<1, 2, 3>>, {:u, 8}, {3})
      assert Task.async(fn -> Mure.download(t) end) |> Task.await() == {:ok, <<1, 2, 3>>}
    end

    test "inspect shows the type and shape only", %{conn: conn} do
      t = Mure.upload!(conn, <<0::32, 0::32>>, {:f, 32}, {1, 2})
      assert inspect(t) == "#Mure.Tensor<f32[1][2]>"
      assert inspect(Mure.upload!(conn, <<0::64>>, {:s, 64}, {})) == "#Mure.Tensor<s64>"
    end
  end

  describe "free" do
    test "a freed tensor is an unknown handle", %{conn: conn} do
      t = Mure.upload!(conn, <<1, 2>>, {:u, 8}, {2})
      assert :ok = Mure.free(t)
      assert {:error, %Error{kind: :unknown_handle, message: msg}} = Mure.download(t)
      assert is_binary(msg) and msg != ""
      assert {:error, %Error{kind: :unknown_handle}} = Mure.free(t)
      assert_raise Error, ~r/unknown_handle/, fn -> Mure.free!(t) end
    end

    test "an unknown handle is reported", %{conn: conn} do
      fake = %Tensor{
        conn: conn,
        node: Mure.info(conn).node,
        id: 987_654_321,
        type: {:u, 8},
        shape: {1}
      }

      assert {:error, %Error{kind: :unknown_handle}} = Mure.download(fake)
      # Unknown handles are reported for compute ops too.
      a = Mure.upload!(conn, pack([1.0], 32), {:f, 32}, {1, 1})

      assert {:error, %Error{kind: :unknown_handle}} =
               Mure.matmul(a, %{fake | type: {:f, 32}, shape: {1, 1}})
    end

    test "freeing returns the memory", %{conn: conn} do
      before = Mure.stats!(conn)
      t = Mure.upload!(conn, :binary.copy(<<0>>, 4096), {:u, 8}, {4096})
      during = Mure.stats!(conn)
      assert during.connection_tensors == before.connection_tensors + 1
      assert during.memory_used_bytes >= before.memory_used_bytes + 4096
      Mure.free!(t)
      after_free = Mure.stats!(conn)
      assert after_free.connection_tensors == before.connection_tensors
    end
  end

  describe "matmul on BLIS" do
    for {type, bits, rtol} <- [{{:f, 32}, 32, 1.0e-4}, {{:f, 64}, 64, 1.0e-10}],
        {m, k, n} <- [{1, 1, 1}, {3, 4, 2}, {7, 5, 3}, {33, 17, 9}, {64, 64, 64}] do
      test "#{inspect(type)} #{m}x#{k} * #{k}x#{n}", %{conn: conn} do
        {m, k, n, bits, rtol} = {unquote(m), unquote(k), unquote(n), unquote(bits), unquote(rtol)}
        type = {:f, bits}
        a = random_floats(m * k, bits)
        b = random_floats(k * n, bits)

        ta = Mure.upload!(conn, pack(a, bits), type, {m, k})
        tb = Mure.upload!(conn, pack(b, bits), type, {k, n})
        assert {:ok, %Tensor{type: ^type, shape: {^m, ^n}} = tc} = Mure.matmul(ta, tb)
        assert_close(unpack(Mure.download!(tc), bits), matmul_ref(a, b, m, k, n), rtol)
      end
    end

    test "a non-square product is not transposed", %{conn: conn} do
      # [[1, 2, 3], [4, 5, 6]] * [[1], [0], [2]] = [[7], [16]]
      ta = Mure.upload!(conn, pack([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 64), {:f, 64}, {2, 3})
      tb = Mure.upload!(conn, pack([1.0, 0.0, 2.0], 64), {:f, 64}, {3, 1})
      assert unpack(Mure.download!(Mure.matmul!(ta, tb)), 64) == [7.0, 16.0]
    end

    test "empty operands", %{conn: conn} do
      # k = 0: the product of a 2x0 and a 0x3 matrix is a 2x3 matrix of zeros.
      ta = Mure.upload!(conn, <<>>, {:f, 32}, {2, 0})
      tb = Mure.upload!(conn, <<>>, {:f, 32}, {0, 3})
      tc = Mure.matmul!(ta, tb)
      assert tc.shape == {2, 3}
      assert unpack(Mure.download!(tc), 32) == List.duplicate(0.0, 6)

      # m = 0: an empty result.
      te = Mure.upload!(conn, <<>>, {:f, 32}, {0, 3})
      tf = Mure.upload!(conn, pack([1.0, 2.0, 3.0], 32), {:f, 32}, {3, 1})
      tg = Mure.matmul!(te, tf)
      assert tg.shape == {0, 1}
      assert Mure.download!(tg) == <<>>
    end

    test "the result is resident: it can feed another op", %{conn: conn} do
      id = pack([1.0, 0.0, 0.0, 1.0], 32)
      x = pack([1.5, -2.0, 3.25, 4.0], 32)
      ti = Mure.upload!(conn, id, {:f, 32}, {2, 2})
      tx = Mure.upload!(conn, x, {:f, 32}, {2, 2})
      assert Mure.download!(Mure.matmul!(Mure.matmul!(ti, tx), ti)) == x
    end
  end

  describe "elementwise ops on OpenCL" do
    setup %{conn: conn} do
      devices = Mure.devices!(conn)

      unless Enum.any?(devices, &(&1.id == :opencl)) do
        flunk(
          "the node reports no :opencl device (#{inspect(Enum.map(devices, & &1.id))}); " <>
            "PoCL is installed here and in CI, so this is a failure, not a skip"
        )
      end

      :ok
    end

    for {op, fun} <- [add: quote(do: &+/2), multiply: quote(do: &*/2)],
        count <- [1, 5, 1000, 65_537] do
      test "#{op} of #{count} f32 elements", %{conn: conn} do
        {op, fun, count} = {unquote(op), unquote(fun), unquote(count)}
        a = random_floats(count, 32)
        b = random_floats(count, 32)
        ta = Mure.upload!(conn, pack(a, 32), {:f, 32}, {count})
        tb = Mure.upload!(conn, pack(b, 32), {:f, 32}, {count})
        assert {:ok, %Tensor{type: {:f, 32}, shape: {^count}} = tc} = apply(Mure, op, [ta, tb])
        # f32 add and multiply are correctly rounded in OpenCL C: compare with the
        # reference rounded to f32, allowing one ulp.
        expected =
          a |> Enum.zip(b) |> Enum.map(fn {x, y} -> fun.(x, y) end) |> pack(32) |> unpack(32)

        assert_close(unpack(Mure.download!(tc), 32), expected, 1.2e-7, 1.0e-30)
      end
    end

    test "multi-dimensional and empty tensors", %{conn: conn} do
      a = random_floats(24, 32)
      b = random_floats(24, 32)
      ta = Mure.upload!(conn, pack(a, 32), {:f, 32}, {2, 3, 4})
      tb = Mure.upload!(conn, pack(b, 32), {:f, 32}, {2, 3, 4})
      tc = Mure.multiply!(ta, tb)
      assert tc.shape == {2, 3, 4}
      expected = a |> Enum.zip(b) |> Enum.map(fn {x, y} -> x * y end) |> pack(32) |> unpack(32)
      assert_close(unpack(Mure.download!(tc), 32), expected, 1.2e-7, 1.0e-30)

      te = Mure.upload!(conn, <<>>, {:f, 32}, {0, 4})
      assert Mure.download!(Mure.add!(te, te)) == <<>>
    end

    test "add and multiply broadcast and take any type, as binary/4", %{conn: conn} do
      m = [1, -2, 3, 40_000, 5, -6]
      v = [7, 8, -9]

      tm =
        Mure.upload!(conn, for(x <- m, into: <<>>, do: <<x::32-signed-native>>), {:s, 32}, {2, 3})

      tv = Mure.upload!(conn, for(x <- v, into: <<>>, do: <<x::16-signed-native>>), {:s, 16}, {3})
      expected_add = for {x, i} <- Enum.with_index(m), do: x + Enum.at(v, rem(i, 3))
      expected_mul = for {x, i} <- Enum.with_index(m), do: x * Enum.at(v, rem(i, 3))

      for {op, expected} <- [add: expected_add, multiply: expected_mul],
          device <- [:cpu, :opencl] do
        t = apply(Mure, :"#{op}!", [tm, tv, [device: device]])
        assert {t.type, t.shape} == {{:s, 32}, {2, 3}}

        assert for(<<x::32-signed-native <- Mure.download!(t)>>, do: x) == expected,
               "#{op} on #{device}"
      end
    end

    test "special values", %{conn: conn} do
      a = Mure.upload!(conn, pack([0.0, -0.0, 1.0e30, 3.0], 32), {:f, 32}, {4})
      b = Mure.upload!(conn, pack([0.0, 0.0, 1.0e30, -3.0], 32), {:f, 32}, {4})
      assert unpack(Mure.download!(Mure.add!(a, b)), 32) == [0.0, 0.0, 2.0e30 |> f32(), 0.0]
    end
  end

  defp f32(x), do: x |> List.wrap() |> pack(32) |> unpack(32) |> hd()
end
