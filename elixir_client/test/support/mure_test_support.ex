defmodule Mure.TestSupport do
  @moduledoc false
  # Helpers for the test suite. This is a compiled module (test/support is in
  # elixirc_paths for :test) so that :peer nodes, which get the test BEAM's code path,
  # can run the functions marked "runs on a peer".

  import ExUnit.Assertions

  ## Peers

  @doc "Starts a :peer BEAM over stdio (it does not connect its distribution to us)."
  def start_peer(prefix, opts \\ []) do
    name = :"#{prefix}_#{System.unique_integer([:positive])}_#{System.pid()}"
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    extra = Keyword.get(opts, :args, [])

    peer_opts = %{connection: :standard_io, args: paths ++ extra, wait_boot: 30_000}

    # Without :name (and :host) the peer is not distributed.
    peer_opts =
      if Keyword.get(opts, :distributed, true),
        do: Map.merge(peer_opts, %{name: name, host: ~c"127.0.0.1", longnames: true}),
        else: peer_opts

    {:ok, peer, node} = :peer.start(peer_opts)
    {:ok, _} = :peer.call(peer, :application, :ensure_all_started, [:logger], 30_000)
    {peer, node}
  end

  @doc "Stops a peer started with start_peer/2, tolerating one that is already gone."
  def stop_peer(peer) do
    if Process.alive?(peer), do: :peer.stop(peer)
    :ok
  catch
    :exit, _ -> :ok
  end

  ## Cluster data and references

  @doc """
  An f32 `rows` x `cols` matrix (native binary) of small integers, -3..3: its products and
  sums stay exact in f32, so results computed in any order compare bit for bit.
  """
  def exact_matrix(rows, cols, seed) do
    pattern = for i <- 0..96, into: <<>>, do: <<rem(i * seed, 7) - 3.0::float-32-native>>
    :binary.part(:binary.copy(pattern, div(rows * cols, 97) + 1), 0, rows * cols * 4)
  end

  @doc """
  What one node (launched once per test, supervised by it) returns for `jit` on `args`: the
  reference a cluster's result is compared with. Call it from the test process.
  """
  def reference_result(jit, args, timeout) do
    conn =
      Process.get(:reference_conn) ||
        tap(
          ExUnit.Callbacks.start_supervised!({Mure, []}, id: :reference),
          &Process.put(:reference_conn, &1)
        )

    Mure.run!(jit, args, outputs: :return, conn: conn, timeout: timeout)
  end

  @doc """
  Runs `Mure.Cluster.dot(cluster, a, b, piece_rows: 50)` and calls `fault` as soon as
  `victim` (a member's node name, or `:any`) has returned a piece while the job is less than
  half done, so that the victim still has pieces in flight and more to come; returns the
  job's result, awaited for at most `timeout` ms. Fails the test when the victim returned no
  piece before the job was half done.
  """
  def dot_with_fault(cluster, a, b, victim, fault, timeout) do
    me = self()
    job = Task.async(fn -> Mure.Cluster.dot(cluster, a, b, piece_rows: 50, progress: me) end)
    await_victim_piece(victim, timeout)
    fault.()
    Task.await(job, timeout)
  end

  defp await_victim_piece(victim, timeout) do
    receive do
      {:mure_cluster_progress, %{node: node, done: done, total: total}} ->
        cond do
          done >= total / 2 ->
            ExUnit.Assertions.flunk(
              "#{victim} returned no piece before the job was half done (#{done} of #{total} rows)"
            )

          victim == :any or node == victim ->
            :ok

          true ->
            await_victim_piece(victim, timeout)
        end
    after
      timeout -> ExUnit.Assertions.flunk("no piece from #{victim} within #{timeout} ms")
    end
  end

  ## Polling

  @doc "Polls `fun` every 20 ms until it returns a truthy value or `timeout` ms pass."
  def wait_until(fun, timeout \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_wait_until(fun, deadline)
  end

  defp do_wait_until(fun, deadline) do
    case fun.() do
      falsy when falsy in [nil, false] ->
        if System.monotonic_time(:millisecond) > deadline do
          false
        else
          Process.sleep(20)
          do_wait_until(fun, deadline)
        end

      value ->
        value
    end
  end

  @doc "Whether an OS process is running (a zombie counts as gone)."
  def os_alive?(os_pid), do: Mure.Launcher.os_process_alive?(os_pid)

  @doc "The names registered with the local epmd, as strings."
  def epmd_names do
    {:ok, names} = :erl_epmd.names(~c"127.0.0.1")
    Enum.map(names, fn {name, _port} -> List.to_string(name) end)
  end

  @doc "The short part of a node name: :\"a@b\" -> \"a\"."
  def short_name(node), do: node |> Atom.to_string() |> String.split("@") |> hd()

  ## Raw protocol (bypasses the client)

  @doc """
  Sends a raw envelope to the node and waits for its reply. Options: `:version` (1),
  `:timeout` (5000 ms), `:owner` (a pid of this node owning what the request makes; default
  the caller).
  """
  def raw_call(node, request, opts \\ []) do
    ref = make_ref()
    version = Keyword.get(opts, :version, 1)
    timeout = Keyword.get(opts, :timeout, 5_000)
    owner = Keyword.get(opts, :owner, self())
    send({:mure, node}, {:"$mure", version, self(), ref, owner, request})

    receive do
      {:"$mure_reply", ^ref, result} -> result
    after
      timeout ->
        flunk("no reply from #{node} to #{inspect(request, limit: 8)} within #{timeout} ms")
    end
  end

  @doc "raw_call/3 with `owner` owning what the request makes."
  def raw_call_as(node, owner, request, timeout \\ 5_000),
    do: raw_call(node, request, owner: owner, timeout: timeout)

  ## Data and references

  @doc "A list of random floats exactly representable in the given float type."
  def random_floats(count, bits) do
    for _ <- 1..count//1 do
      x = :rand.uniform() * 2.0 - 1.0
      <<y::float-size(bits)-native>> = <<x::float-size(bits)-native>>
      y
    end
  end

  def pack(floats, bits), do: for(x <- floats, into: <<>>, do: <<x::float-size(bits)-native>>)

  def unpack(bin, bits), do: for(<<x::float-size(bits)-native <- bin>>, do: x)

  @doc "Row-major m x k times k x n, in f64."
  def matmul_ref(a, b, m, k, n) do
    a_rows = rows(a, m, k)
    b_t = b |> rows(k, n) |> transpose(n)

    for row <- a_rows, col <- b_t do
      row |> Enum.zip(col) |> Enum.reduce(0.0, fn {x, y}, acc -> acc + x * y end)
    end
  end

  defp rows(_list, 0, _cols), do: []
  defp rows(_list, rows, 0), do: List.duplicate([], rows)
  defp rows(list, _rows, cols), do: Enum.chunk_every(list, cols)

  defp transpose([], cols), do: List.duplicate([], cols)
  defp transpose(rows, _cols), do: rows |> Enum.zip() |> Enum.map(&Tuple.to_list/1)

  @doc "Asserts that two float lists agree within a relative/absolute tolerance."
  def assert_close(actual, expected, rtol, atol \\ 1.0e-6) do
    assert length(actual) == length(expected),
           "length mismatch: got #{length(actual)} values, expected #{length(expected)}"

    actual
    |> Enum.zip(expected)
    |> Enum.with_index()
    |> Enum.each(fn {{x, y}, i} ->
      assert abs(x - y) <= atol + rtol * abs(y),
             "value #{i} differs: got #{x}, expected #{y} (rtol #{rtol}, atol #{atol})"
    end)
  end

  ## Runs on a peer

  @doc """
  Runs on a peer: connects to `node` and does `rounds` upload/matmul/download/free
  cycles, checking every result. Returns {:ok, rounds_done} or {:error, details}.
  """
  def peer_workload(node, rounds) do
    {:ok, conn} = Mure.connect(node, timeout: 30_000)

    try do
      Enum.reduce_while(1..rounds, {:ok, 0}, fn round, {:ok, done} ->
        {m, k, n} = {3 + rem(round, 5), 4 + rem(round, 3), 2 + rem(round, 4)}
        a = random_floats(m * k, 32)
        b = random_floats(k * n, 32)

        with {:ok, ta} <- Mure.upload(conn, pack(a, 32), {:f, 32}, {m, k}),
             {:ok, tb} <- Mure.upload(conn, pack(b, 32), {:f, 32}, {k, n}),
             {:ok, tc} <- Mure.matmul(ta, tb),
             {:ok, bin} <- Mure.download(tc),
             :ok <- Mure.free(ta),
             :ok <- Mure.free(tb),
             :ok <- Mure.free(tc) do
          expected = matmul_ref(a, b, m, k, n)
          got = unpack(bin, 32)

          if Enum.zip(got, expected)
             |> Enum.all?(fn {x, y} -> abs(x - y) <= 1.0e-4 + 1.0e-4 * abs(y) end) do
            {:cont, {:ok, done + 1}}
          else
            {:halt, {:error, {:wrong_result, round, got, expected}}}
          end
        else
          error -> {:halt, {:error, {round, error}}}
        end
      end)
    after
      Mure.stop(conn)
    end
  end

  @doc """
  Runs on a peer: connects to `node`, monitors it, runs {:busy, ms} with `timeout`, and
  reports the result, any nodedown seen, and the peer's net_ticktime.
  """
  def peer_busy_watch(node, ms, timeout) do
    {:ok, conn} = Mure.connect(node, timeout: timeout)
    Node.monitor(node, true)
    started = System.monotonic_time(:millisecond)
    result = Mure.busy(conn, ms, timeout: timeout)
    elapsed = System.monotonic_time(:millisecond) - started

    downs =
      receive do
        {:nodedown, ^node} -> [:nodedown]
      after
        0 -> []
      end

    info = Mure.info(conn)
    Mure.stop(conn)

    %{
      result: result,
      elapsed_ms: elapsed,
      nodedowns: downs,
      net_ticktime: :net_kernel.get_net_ticktime(),
      connection_state: info.state
    }
  end

  @doc """
  Runs on a peer: starts a port-mode connection held by a long-lived process (so that
  it outlives the :peer.call) and returns the node's name and OS pid.
  """
  def peer_launch(opts) do
    parent = self()

    spawn(fn ->
      result =
        case Mure.start_link(opts) do
          {:ok, conn} ->
            info = Mure.info(conn)
            {:ok, info.node, info.os_pid}

          error ->
            error
        end

      send(parent, {:launched, result})
      Process.sleep(:infinity)
    end)

    receive do
      {:launched, result} -> result
    after
      30_000 -> {:error, :launch_timeout}
    end
  end

  @doc "Runs on a (non-distributed) peer: what start_link says there."
  def peer_start_link(opts) do
    Process.flag(:trap_exit, true)
    Mure.start_link(opts)
  end
end
