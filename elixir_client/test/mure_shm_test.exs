defmodule Mure.ShmTest do
  # Same-host transfers through shared segments (docs/protocol.md, `shm_alloc`): round trips
  # byte for byte through the client, the requests they take, and the safety claims: a peer
  # names segments by id only (paths, other connections' ids and a download's segment are
  # refused), segments count against the memory limit, and nothing is left behind when the
  # owner, the client BEAM or the node dies.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  alias Mure.Tensor

  @mib 1024 * 1024

  defp payload(bytes), do: :crypto.strong_rand_bytes(bytes)

  defp node_of(conn), do: Mure.info(conn).node

  # The memfds the node holds open (their links read "/memfd:mure-shm (deleted)").
  defp node_segments(os_pid) do
    for fd <- File.ls!("/proc/#{os_pid}/fd"),
        {:ok, link} <- [File.read_link("/proc/#{os_pid}/fd/#{fd}")],
        String.contains?(link, "memfd:mure-shm"),
        do: fd
  end

  test "uploads and downloads of 1 MiB and more go through shared memory, byte for byte" do
    conn = start_supervised!({Mure, memory_limit: 512 * @mib})
    assert Mure.info(conn).shared_memory == true

    for bytes <- [@mib, 16 * @mib + 3, 40 * @mib, 3 * @mib] do
      data = payload(bytes)
      before = Mure.stats!(conn).requests
      t = Mure.upload!(conn, data, {:u, 8}, {bytes})
      # At most shm_free (a smaller reusable segment) + shm_alloc + shm_upload (+ this stats
      # call): no pieces.
      assert Mure.stats!(conn).requests - before <= 4
      assert %Tensor{shape: {^bytes}} = t
      before = Mure.stats!(conn).requests
      assert Mure.download!(t) == data
      # shm_download into the process's reusable segment + this stats call.
      assert Mure.stats!(conn).requests - before == 2
      # This process's one reusable segment stays (the smaller ones were freed).
      assert wait_until(fn -> Mure.stats!(conn).shm_segments == 1 end)
      Mure.free!(t)
    end

    # Past the reusable sizes (64 MiB): a one-shot segment each way, freed after.
    bytes = 64 * @mib + 1
    data = payload(bytes)
    t = Mure.upload!(conn, data, {:u, 8}, {bytes})
    assert Mure.download!(t) == data
    assert wait_until(fn -> Mure.stats!(conn).shm_segments == 1 end)
    Mure.free!(t)

    # A multi-byte type, through the asynchronous calls, both in flight at once.
    floats = payload(4 * @mib)
    f = Mure.upload!(conn, floats, {:f, 32}, {@mib})
    up = Mure.async_upload(conn, floats, {:f, 32}, {@mib})
    down = Mure.async_download(f)
    assert {:ok, ^floats} = Mure.await(down)
    assert {:ok, f2} = Mure.await(up)
    assert Mure.download!(f2) == floats

    # The tensor computes like any other.
    sum = Mure.add!(f, f2) |> Mure.download!()

    assert sum ==
             Mure.add!(Mure.upload!(conn, floats, {:f, 32}, {@mib}, shared_memory: false), f)
             |> Mure.download!()

    # Below 1 MiB, and with shared_memory: false, one message as before.
    before = Mure.stats!(conn).requests
    small = payload(@mib - 1)
    assert Mure.download!(Mure.upload!(conn, small, {:u, 8}, {@mib - 1})) == small
    big = payload(2 * @mib)
    t = Mure.upload!(conn, big, {:u, 8}, {2 * @mib}, shared_memory: false)
    assert Mure.download!(t, shared_memory: false) == big
    assert Mure.stats!(conn).requests - before == 5
    assert Mure.stats!(conn).shm_segments == 1

    assert_raise ArgumentError, ~r/:shared_memory/, fn ->
      Mure.upload(conn, big, {:u, 8}, {2 * @mib}, shared_memory: :yes)
    end
  end

  test "a reusable segment: reused across transfers, each caller gets its own bytes, gone with its process" do
    conn = start_supervised!({Mure, memory_limit: 256 * @mib})
    os_pid = Mure.info(conn).os_pid
    base = Mure.stats!(conn)
    parent = self()

    worker =
      spawn(fn ->
        big = payload(16 * @mib)
        small = payload(2 * @mib)
        a = Mure.upload!(conn, big, {:u, 8}, {16 * @mib})
        before = Mure.stats!(conn).requests
        b = Mure.upload!(conn, small, {:u, 8}, {2 * @mib})
        # The 16 MiB segment carries the 2 MiB upload too: shm_upload (+ this stats call).
        reused = Mure.stats!(conn).requests - before
        # A small tensor's download after a large one's (same segment) gives its bytes alone.
        ok =
          Mure.download!(b) == small and Mure.download!(a) == big and Mure.download!(b) == small

        send(parent, {:done, reused, ok, Mure.stats!(conn)})
        receive do: (:exit -> :ok)
      end)

    assert_receive {:done, 2, true, stats}, 60_000
    assert stats.shm_segments == base.shm_segments + 1
    # The segment (16 MiB and its header page) counts, besides the two tensors.
    assert stats.memory_used_bytes >= base.memory_used_bytes + 16 * @mib + 4096 + 18 * @mib
    assert length(node_segments(os_pid)) == 1

    # Another process does not see the worker's segment: it makes its own.
    data = payload(@mib)
    mine = Mure.upload!(conn, data, {:u, 8}, {@mib})
    assert Mure.download!(mine) == data
    assert Mure.stats!(conn).shm_segments == base.shm_segments + 2
    Mure.free!(mine)
    {seg, _, _, _, _} = Process.delete({Mure.Transfer, conn})
    assert {:ok, :freed} = raw_call(node_of(conn), {:shm_free, seg})

    send(worker, :exit)

    assert wait_until(fn ->
             s = Mure.stats!(conn)
             s.shm_segments == 0 and s.memory_used_bytes == base.memory_used_bytes
           end)

    assert node_segments(os_pid) == []
  end

  test "a failed or timed-out shared upload frees its segment and its tensor" do
    conn = start_supervised!({Mure, memory_limit: 256 * @mib})
    before = Mure.stats!(conn)
    data = payload(2 * @mib)
    {:ok, limits} = Mure.Transfer.limits(conn)
    assert limits.shm

    # White box: a shape of another size than the data.
    assert {:error, %Mure.Error{kind: :size_mismatch}} =
             Mure.Transfer.upload(
               conn,
               data,
               {:u, 8},
               {@mib},
               self(),
               Mure.Request.budget(10_000),
               limits
             )

    big = payload(64 * @mib)

    for timeout <- [0, 1, 5] do
      assert {:error, %Mure.ConnectionError{reason: :timeout}} =
               Mure.upload(conn, big, {:u, 8}, {byte_size(big)}, timeout: timeout)
    end

    assert wait_until(fn ->
             s = Mure.stats!(conn)

             s.shm_segments == 0 and s.connection_tensors == before.connection_tensors and
               s.memory_used_bytes == before.memory_used_bytes
           end)

    # A download of a tensor freed meanwhile fails with the node's error.
    t = Mure.upload!(conn, data, {:u, 8}, {byte_size(data)})
    :ok = Mure.free(t)
    assert {:error, %Mure.Error{kind: :unknown_handle}} = Mure.download(t)
  end

  # Bytes this BEAM sent and received on its distribution connection to `node` so far.
  defp dist_octets(node) do
    {_, port} = List.keyfind(:erlang.system_info(:dist_ctrl), node, 0)
    {:ok, [send_oct: sent, recv_oct: received]} = :inet.getstat(port, [:send_oct, :recv_oct])
    sent + received
  end

  test "Mure.run moves large data arguments and returned outputs through shared memory" do
    n = 1024 * 1024
    a = for i <- 0..(n - 1), into: <<>>, do: <<rem(i * 7, 1000)::signed-32-native>>
    b = for i <- 0..(n - 1), into: <<>>, do: <<rem(i * 13, 777) - 300::signed-32-native>>

    sum =
      for i <- 0..(n - 1),
          into: <<>>,
          do: <<rem(i * 7, 1000) + rem(i * 13, 777) - 300::signed-32-native>>

    jit = Mure.jit(fn x, y -> Mure.Expr.add(x, y) end, outputs: :return)
    args = [{a, {:s, 32}, {n}}, {b, {:s, 32}, {n}}]

    # 12 MiB in all (two 4 MiB arguments, a 4 MiB result): on the same host none of it crosses
    # the distribution connection; with shared memory off all of it does.
    for {shm, check} <- [{true, &(&1 < 256 * 1024)}, {false, &(&1 > 12 * @mib)}] do
      conn = start_supervised!({Mure, shared_memory: shm}, id: {:run, shm})
      node = node_of(conn)
      assert Mure.run!(jit, args, conn: conn) == sum
      before = dist_octets(node)
      assert Mure.run!(jit, args, conn: conn) == sum
      moved = dist_octets(node) - before
      assert check.(moved), "shared_memory: #{shm}: #{moved} bytes over distribution"
      # The temporary tensors went: only this process's reusable segment stays (shared memory).
      assert wait_until(fn -> Mure.stats!(conn).connection_tensors == 0 end)
    end
  end

  test "the connection option turns it off" do
    conn = start_supervised!({Mure, shared_memory: false})
    assert Mure.info(conn).shared_memory == false
    data = payload(2 * @mib)
    before = Mure.stats!(conn).requests
    assert Mure.download!(Mure.upload!(conn, data, {:u, 8}, {2 * @mib})) == data
    assert Mure.stats!(conn).requests - before == 3

    assert_raise ArgumentError, ~r/shared_memory/, fn ->
      Mure.start_link(shared_memory: 1)
    end
  end

  test "segments are named by id only: paths, foreign ids and a download's segment are refused" do
    conn = start_supervised!({Mure, memory_limit: 64 * @mib})
    node = node_of(conn)

    assert {:error, {:badarg, _}} = raw_call(node, {:shm_upload, "/etc/passwd", {:u, 8}, {4}})
    assert {:error, {:badarg, _}} = raw_call(node, {:shm_free, ~c"/dev/shm/x"})
    assert {:error, {:badarg, _}} = raw_call(node, {:shm_alloc, "/dev/shm/x"})
    assert {:error, {:unknown_handle, _}} = raw_call(node, {:shm_upload, 987_654, {:u, 8}, {4}})
    assert {:error, {:unknown_handle, _}} = raw_call(node, {:shm_download, 987_654})
    assert {:error, {:out_of_range, _}} = raw_call(node, {:shm_alloc, -5})

    # Another BEAM's segment is another connection's: unknown here, and left alone.
    {peer, _peer_node} = start_peer("shm")

    try do
      # A process on the peer that lives on owns the peer's segment.
      keeper = :peer.call(peer, :erlang, :spawn, [:timer, :sleep, [:infinity]])

      as_peer = fn request ->
        :peer.call(peer, Mure.TestSupport, :raw_call_as, [node, keeper, request])
      end

      {:ok, {seg, _path, _tag}} = as_peer.({:shm_alloc, 64})

      assert {:error, {:unknown_handle, _}} = raw_call(node, {:shm_upload, seg, {:u, 8}, {64}})
      assert {:error, {:unknown_handle, _}} = raw_call(node, {:shm_free, seg})

      assert {:ok, {_, {:u, 8}, {64}}} = as_peer.({:shm_upload, seg, {:u, 8}, {64}})
    after
      stop_peer(peer)
    end

    # A download's segment never becomes a tensor, and is read-only.
    t = Mure.upload!(conn, payload(16), {:u, 8}, {16})
    {:ok, {seg, path, tag}} = raw_call(node, {:shm_download, t.id})
    assert {:error, {:badarg, _}} = raw_call(node, {:shm_upload, seg, {:u, 8}, {16}})
    {:ok, fd} = :file.open(path, [:raw, :binary, :read, :write])
    assert {:ok, ^tag} = :file.pread(fd, 0, 16)
    assert {:error, _} = :file.pwrite(fd, 4096, <<0>>)
    :file.close(fd)
    assert {:ok, :freed} = raw_call(node, {:shm_free, seg})
  end

  test "segments count against the memory limit and show in stats" do
    conn = start_supervised!({Mure, memory_limit: 32 * @mib})
    node = node_of(conn)
    base = Mure.stats!(conn).memory_used_bytes

    {:ok, {seg, _, _}} = raw_call(node, {:shm_alloc, 10 * @mib})
    stats = Mure.stats!(conn)
    assert stats.memory_used_bytes == base + 10 * @mib + 4096
    assert stats.shm_segments == 1

    assert {:error, {:out_of_memory, _}} = raw_call(node, {:shm_alloc, 30 * @mib})
    # An upload through the client that does not fit fails the same way, without a fallback.
    assert {:error, %Mure.Error{kind: :out_of_memory}} =
             Mure.upload(conn, payload(24 * @mib), {:u, 8}, {24 * @mib})

    {:ok, {t, {:u, 8}, {_}}} = raw_call(node, {:shm_upload, seg, {:u, 8}, {10 * @mib}})
    stats = Mure.stats!(conn)
    # The tensor holds the bytes now (and 256 bytes of bookkeeping); the header page is gone.
    assert stats.memory_used_bytes == base + 10 * @mib + 256
    assert stats.shm_segments == 0
    assert {:ok, :freed} = raw_call(node, {:free, t})
    assert Mure.stats!(conn).memory_used_bytes == base
  end

  test "an owner killed mid-transfer leaves nothing: its segments go, on the node and in /proc" do
    conn = start_supervised!({Mure, memory_limit: 64 * @mib})
    node = node_of(conn)
    os_pid = Mure.info(conn).os_pid
    base = Mure.stats!(conn).memory_used_bytes
    shm_before = File.ls!("/dev/shm") |> Enum.sort()
    parent = self()

    owner =
      spawn(fn ->
        {:ok, {_seg, path, _}} = raw_call(node, {:shm_alloc, 8 * @mib})
        {:ok, fd} = :file.open(path, [:raw, :binary, :read, :write])
        :ok = :file.pwrite(fd, 4096, :binary.copy(<<1>>, @mib))
        send(parent, {:written, path})
        # Killed here: half written, never adopted, never freed, its file still open.
        Process.sleep(:infinity)
      end)

    assert_receive {:written, path}, 5_000
    assert length(node_segments(os_pid)) == 1
    assert Mure.stats!(conn).shm_segments == 1
    Process.exit(owner, :kill)

    assert wait_until(fn -> Mure.stats!(conn).shm_segments == 0 end)
    assert Mure.stats!(conn).memory_used_bytes == base
    assert node_segments(os_pid) == []
    refute match?({:ok, "/memfd:mure-shm" <> _}, File.read_link(path))
    assert File.ls!("/dev/shm") |> Enum.sort() == shm_before
  end

  test "a client BEAM that dies leaves nothing on the node" do
    conn = start_supervised!({Mure, memory_limit: 64 * @mib})
    node = node_of(conn)
    os_pid = Mure.info(conn).os_pid
    base = Mure.stats!(conn).memory_used_bytes
    {peer, _} = start_peer("shmdie")
    keeper = :peer.call(peer, :erlang, :spawn, [:timer, :sleep, [:infinity]])

    {:ok, {_seg, _, _}} =
      :peer.call(peer, Mure.TestSupport, :raw_call_as, [node, keeper, {:shm_alloc, 4 * @mib}])

    {:ok, {_seg, _, _}} =
      :peer.call(peer, Mure.TestSupport, :raw_call_as, [
        node,
        keeper,
        {:shm_alloc, 4 * @mib, :reuse}
      ])

    assert Mure.stats!(conn).shm_segments == 2
    # The peer's distribution goes down with it: its connection closes on the node.
    stop_peer(peer)
    assert wait_until(fn -> Mure.stats!(conn).shm_segments == 0 end)
    assert Mure.stats!(conn).memory_used_bytes == base
    assert node_segments(os_pid) == []
  end

  test "a node killed with segments held leaves nothing behind" do
    shm_before = File.ls!("/dev/shm") |> Enum.sort()
    {:ok, conn} = Mure.start_link(memory_limit: 64 * @mib)
    Process.unlink(conn)
    ref = Process.monitor(conn)
    node = node_of(conn)
    os_pid = Mure.info(conn).os_pid
    {:ok, {_, path, tag}} = raw_call(node, {:shm_alloc, 4 * @mib})
    {:ok, {_, _, _}} = raw_call(node, {:shm_alloc, 2 * @mib})
    {:ok, {_, _, _}} = raw_call(node, {:shm_alloc, 2 * @mib, :reuse})
    {:ok, fd} = :file.open(path, [:raw, :binary, :read])
    assert {:ok, ^tag} = :file.pread(fd, 0, 16)
    :file.close(fd)

    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
    assert wait_until(fn -> not os_alive?(os_pid) end, 5_000)
    # The segments had no name anywhere: nothing on tmpfs, the paths lead nowhere.
    assert File.ls!("/dev/shm") |> Enum.sort() == shm_before
    assert {:error, _} = File.read_link(path)
    # The connection stops with its node.
    assert_receive {:DOWN, ^ref, _, _, _}, 5_000
  end
end
