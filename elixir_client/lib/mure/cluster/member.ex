defmodule Mure.Cluster.Member do
  @moduledoc false
  # One member of a Mure.Cluster: a process that owns the connection to one node, measures
  # the node and its link when it joins, and owns the shared tensors uploaded to it (a node
  # frees a tensor when its owner exits, so they must belong to a process that lives as long
  # as the membership). It exits when the node goes down or its connection ends; the
  # cluster, linked to it, then drops the member.

  use GenServer, restart: :temporary

  require Logger

  alias Mure.Cluster.Shared

  # Probes: each measurement repeats until it has run this long, so that a node under a CPU
  # quota (or a bursty link) is measured at its sustained speed.
  @probe_ms 300
  @op_ms 100
  @probe_timeout 120_000
  @upload_start 256 * 1024
  @upload_max 64 * 1024 * 1024

  @spec start_link(map()) :: GenServer.on_start()
  def start_link(args), do: GenServer.start_link(__MODULE__, args)

  @doc false
  # The member's copy of a shared tensor, uploaded on first use.
  @spec tensor(pid(), Shared.t(), timeout()) :: {:ok, Mure.Tensor.t()} | {:error, Exception.t()}
  def tensor(member, %Shared{} = shared, timeout) do
    GenServer.call(member, {:tensor, shared, timeout}, timeout)
  catch
    :exit, {:timeout, _} ->
      {:error, %Mure.ConnectionError{reason: :timeout, details: "uploading a shared tensor"}}

    :exit, reason ->
      {:error,
       %Mure.ConnectionError{
         reason: :closed,
         details: "member gone: #{inspect(reason, limit: 5)}"
       }}
  end

  @doc false
  @spec free(pid(), pos_integer()) :: :ok
  def free(member, id), do: GenServer.cast(member, {:free, id})

  @impl true
  def init(%{node: node} = args) do
    Process.flag(:trap_exit, true)
    Logger.metadata(mure_member: node)
    {:ok, Map.merge(args, %{conn: nil, shared: %{}}), {:continue, :join}}
  end

  @impl true
  def handle_continue(:join, %{node: node, cluster: cluster} = state) do
    opts = Keyword.merge([timeout: @probe_timeout, sync_connect: true], state.connect_opts)

    case Mure.connect(node, opts) do
      {:ok, conn} ->
        true = :erlang.monitor_node(node, true)
        state = %{state | conn: conn}

        case if(state.probe, do: probe(conn), else: {:ok, nil}) do
          {:ok, speeds} ->
            send(cluster, {:member_ready, self(), node, conn, Mure.info(conn).hello, speeds})
            {:noreply, state}

          {:error, reason} ->
            {:stop, {:shutdown, {:probe_failed, reason}}, state}
        end

      {:error, error} ->
        {:stop, {:shutdown, {:connect_failed, Exception.message(error)}}, state}
    end
  end

  @impl true
  def handle_call({:tensor, %Shared{id: id} = shared, timeout}, _from, state) do
    case state.shared do
      %{^id => tensor} ->
        {:reply, {:ok, tensor}, state}

      _ ->
        # Only while the cluster still shares it: a tensor unshared during a job is not
        # uploaded again (it would never be freed). An unshare after this check reaches this
        # process after the upload, and frees it.
        if registered?(state.cluster, id) do
          case Mure.upload(state.conn, shared.data, shared.type, shared.shape, timeout: timeout) do
            {:ok, tensor} ->
              {:reply, {:ok, tensor}, %{state | shared: Map.put(state.shared, id, tensor)}}

            {:error, _} = error ->
              {:reply, error, state}
          end
        else
          {:reply,
           {:error,
            %Mure.ClusterError{
              reason: :unshared,
              details: "#{inspect(shared)} is no longer shared with the cluster"
            }}, state}
        end
    end
  end

  defp registered?(cluster, id) do
    GenServer.call(cluster, {:unknown_shared, [id]}, 10_000) == []
  catch
    :exit, _ -> false
  end

  @impl true
  def handle_cast({:free, id}, state) do
    case Map.pop(state.shared, id) do
      {nil, _} ->
        {:noreply, state}

      {tensor, shared} ->
        _ = Mure.free(tensor, timeout: 5_000)
        {:noreply, %{state | shared: shared}}
    end
  end

  @impl true
  def handle_info({:nodedown, node}, %{node: node} = state),
    do: {:stop, {:shutdown, :nodedown}, state}

  def handle_info({:EXIT, conn, reason}, %{conn: conn} = state),
    do: {:stop, {:shutdown, {:connection_exited, reason}}, %{state | conn: nil}}

  def handle_info({:EXIT, _from, reason}, state), do: {:stop, reason, state}
  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{conn: conn}) when is_pid(conn) do
    Mure.stop(conn, :normal, 5_000)
  catch
    :exit, _ -> :ok
  end

  def terminate(_reason, _state), do: :ok

  ## Measuring a member

  # The member's speeds, measured from this client: round-trip time, upload and download
  # bandwidth of the link, sgemm GFLOP/s and elementwise GB/s of the node (data resident,
  # so the compute figures do not include the link).
  defp probe(conn) do
    with {:ok, rtt} <- rtt(conn),
         {:ok, up, down} <- link(conn, rtt),
         {:ok, gflops} <- gemm(conn, rtt),
         {:ok, ew} <- elementwise(conn, rtt) do
      {:ok,
       %{
         rtt_ms: rtt,
         upload_bytes_s: up,
         download_bytes_s: down,
         gemm_flops_s: gflops,
         elementwise_bytes_s: ew,
         source: :probe,
         measured_at: DateTime.utc_now()
       }}
    end
  end

  defp rtt(conn) do
    times =
      for _ <- 1..7 do
        {us, result} = :timer.tc(fn -> Mure.devices(conn, timeout: 10_000) end)
        {us, result}
      end

    case Enum.find(times, fn {_, r} -> not match?({:ok, _}, r) end) do
      nil ->
        ms = times |> Enum.map(&(elem(&1, 0) / 1000)) |> Enum.sort() |> Enum.at(3)
        {:ok, ms}

      {_, {:error, e}} ->
        {:error, Exception.message(e)}
    end
  end

  defp link(conn, rtt), do: link(conn, rtt, @upload_start)

  defp link(conn, rtt, size) do
    data = :binary.copy(<<0x3F800000::32-little>>, div(size, 4))

    with {up_us, {:ok, t}} <-
           :timer.tc(fn -> Mure.upload(conn, data, {:f, 32}, {div(size, 4)}) end),
         {down_us, {:ok, _}} <- :timer.tc(fn -> Mure.download(t) end) do
      _ = Mure.free(t)

      if up_us < @probe_ms * 1000 and size < @upload_max do
        link(conn, rtt, size * 2)
      else
        {:ok, rate(size, up_us, rtt), rate(size, down_us, rtt)}
      end
    else
      {_, {:error, e}} -> {:error, "link probe: " <> Exception.message(e)}
    end
  end

  # Compute probes grow their op until one op keeps the node busy for @op_ms: a node under
  # a CPU quota idles between short requests and would be measured at its burst speed, not
  # at the speed it keeps up through a job.
  defp gemm(conn, rtt) do
    sustained(conn, rtt, 256, 2048, fn n ->
      with {:ok, a} <- Mure.random_uniform(conn, {n, n}, seed: 7, type: {:f, 32}) do
        run = fn ->
          with {:ok, c} <- Mure.matmul(a, a, device: :cpu, timeout: @probe_timeout),
               do: Mure.free(c)
        end

        {:ok, run, fn -> Mure.free(a) end, 2 * n * n * n}
      end
    end)
    |> label("gemm probe")
  end

  defp elementwise(conn, rtt) do
    sustained(conn, rtt, 1024 * 1024, 64 * 1024 * 1024, fn n ->
      with {:ok, x} <- Mure.full(conn, 1.0, {n}, type: {:f, 32}) do
        run = fn -> with {:ok, y} <- Mure.add(x, x, timeout: @probe_timeout), do: Mure.free(y) end
        # An add reads two operands and writes one.
        {:ok, run, fn -> Mure.free(x) end, 3 * 4 * n}
      end
    end)
    |> label("elementwise probe")
  end

  # `setup.(size)` makes an op of that size: {:ok, run, cleanup, units}. The size doubles
  # (gemm: n doubles, 8x the work) until one op takes @op_ms; then ops repeat until
  # @probe_ms have passed. Units per second of the repeated ops.
  defp sustained(conn, rtt, size, max_size, setup) do
    with {:ok, run, cleanup, units} <- setup.(size) do
      {us, first} = :timer.tc(run)

      cond do
        first != :ok ->
          cleanup.()
          first

        us < @op_ms * 1000 and size * 2 <= max_size ->
          cleanup.()
          sustained(conn, rtt, size * 2, max_size, setup)

        true ->
          result = repeat(run)
          cleanup.()
          with {:ok, count, us} <- result, do: {:ok, rate(units * count, us, rtt * count)}
      end
    end
  end

  # Runs `fun` until @probe_ms have passed (at least twice): {:ok, count, microseconds}.
  defp repeat(fun) do
    start = System.monotonic_time(:microsecond)
    do_repeat(fun, start, 0)
  end

  defp do_repeat(fun, start, count) do
    case fun.() do
      :ok ->
        elapsed = System.monotonic_time(:microsecond) - start

        if elapsed >= @probe_ms * 1000 and count + 1 >= 2,
          do: {:ok, count + 1, elapsed},
          else: do_repeat(fun, start, count + 1)

      {:error, _} = error ->
        error
    end
  end

  # Units per second over `us` microseconds, less the round trips the requests spent on the
  # wire. Probes are sized so that one op or transfer takes @op_ms or more, so the wire is a
  # small part of it: at most a quarter is taken off (a round trip measured on a busy host,
  # taken off whole, once made a member's 25 GB/s read as 257).
  defp rate(units, us, rtt_ms) do
    seconds = max(us / 1.0e6 - rtt_ms / 1000, 0.75 * us / 1.0e6)
    units / max(seconds, 1.0e-6)
  end

  defp label({:error, %{__exception__: true} = e}, what),
    do: {:error, what <> ": " <> Exception.message(e)}

  defp label(other, _what), do: other
end
