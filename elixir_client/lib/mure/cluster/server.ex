defmodule Mure.Cluster.Server do
  @moduledoc false
  # Mure.Cluster's process: members (Mure.Cluster.Membership), shared tensors and their owners,
  # job reports (Mure.Cluster.Accounting), health checks and the status map.

  use GenServer

  require Logger

  alias Mure.ConnectionError
  alias Mure.Cluster.{Accounting, Member, Membership}

  @impl true
  def init(opts) do
    if Node.alive?() do
      Process.flag(:trap_exit, true)
      :ok = :net_kernel.monitor_nodes(true, node_type: :hidden)

      state = %{
        opts: opts,
        hosts: Enum.map(opts[:hosts], &to_string/1),
        host_status: %{},
        members: %{},
        departed: %{},
        refused: %{},
        epmd_ports: %{},
        shared: %{},
        owners: %{},
        discovering: nil,
        checking: MapSet.new(),
        jobs: %{done: 0, failed: 0, pieces_rerun: 0}
      }

      send(self(), :discover)
      {:ok, state}
    else
      {:stop,
       %ConnectionError{
         reason: :not_alive,
         details: ConnectionError.not_alive_hint()
       }}
    end
  end

  @impl true
  def handle_call(:members, _from, state) do
    ready =
      for {node, %{state: :ready} = m} <- state.members do
        %{
          node: node,
          member: m.pid,
          conn: m.conn,
          speeds: m.speeds,
          learned: Map.new(m.learned, fn {key, {spr, _weight, _at}} -> {key, spr} end),
          devices: devices(m.hello)
        }
      end

    {:reply, Enum.sort_by(ready, & &1.node), state}
  end

  def handle_call(:joining?, _from, state),
    do: {:reply, Enum.any?(state.members, fn {_, m} -> m.state == :joining end), state}

  def handle_call(:default_timeout, _from, state), do: {:reply, state.opts[:timeout], state}

  def handle_call({:register_shared, id, owner}, _from, state) do
    {mon, owners} =
      case state.owners do
        %{^owner => {mon, ids}} ->
          {mon, Map.put(state.owners, owner, {mon, [id | ids]})}

        _ ->
          mon = Process.monitor(owner)
          {mon, Map.put(state.owners, owner, {mon, [id]})}
      end

    _ = mon
    {:reply, self(), %{state | shared: Map.put(state.shared, id, owner), owners: owners}}
  end

  def handle_call({:unshare, id}, _from, state), do: {:reply, :ok, unshare_ids(state, [id])}

  def handle_call({:unknown_shared, ids}, _from, state),
    do: {:reply, Enum.reject(ids, &Map.has_key?(state.shared, &1)), state}

  def handle_call(:status, _from, state), do: {:reply, status_map(state), state}

  @impl true
  def handle_cast({:job_report, report}, state) do
    jobs =
      if report.ok,
        do: %{state.jobs | done: state.jobs.done + 1},
        else: %{state.jobs | failed: state.jobs.failed + 1}

    jobs = %{jobs | pieces_rerun: jobs.pieces_rerun + report.rerun}

    members =
      Enum.reduce(report.members, state.members, fn {node, r}, acc ->
        case acc do
          %{^node => %{pid: pid} = m} when pid == r.pid ->
            Map.put(acc, node, Accounting.account(m, r, report))

          _ ->
            acc
        end
      end)

    {:noreply, %{state | jobs: jobs, members: members}}
  end

  # Counted when it happens (and logged then by the job), not at the job's end: the member
  # may have left by then, and the count must agree with the log.
  def handle_cast({:piece_failed, node, pid, reason}, state) do
    why = "job piece: #{reason}"

    state =
      case state do
        %{members: %{^node => %{pid: ^pid} = m}} ->
          put_in(state.members[node], %{m | failures: m.failures + 1, last_failure: why})

        %{departed: %{^node => d}} ->
          put_in(state.departed[node], %{d | failures: d.failures + 1})

        _ ->
          state
      end

    {:noreply, state}
  end

  def handle_cast({:suspect, node, pid, reason}, state) do
    case state.members do
      %{^node => %{pid: ^pid, state: :ready, conn: conn}} ->
        if MapSet.member?(state.checking, node) do
          {:noreply, state}
        else
          cluster = self()
          timeout = state.opts[:health_timeout]

          spawn(fn ->
            ok? = match?({:ok, _}, Mure.hello(conn, timeout: timeout))
            send(cluster, {:health, node, pid, ok?, reason})
          end)

          {:noreply, %{state | checking: MapSet.put(state.checking, node)}}
        end

      _ ->
        {:noreply, state}
    end
  end

  @impl true
  def handle_info(:discover, state) do
    Process.send_after(self(), :discover, state.opts[:discover_interval])

    if state.discovering do
      {:noreply, state}
    else
      hosts = state.hosts
      task = Task.async(fn -> Membership.discover(hosts) end)
      {:noreply, %{state | discovering: task.ref}}
    end
  end

  def handle_info({ref, found}, %{discovering: ref} = state) do
    Process.demonitor(ref, [:flush])
    prefix = state.opts[:name_prefix]

    listed =
      for {host, {:ok, names}} <- found,
          {name, port} <- names,
          String.starts_with?(name, prefix),
          into: %{},
          do: {:"#{name}@#{host}", port}

    now = System.monotonic_time(:millisecond)

    candidates =
      (Map.keys(listed) ++ state.opts[:nodes] ++ Membership.dialled_in(state))
      |> Enum.uniq()
      |> Enum.reject(
        &(&1 == node() or Membership.refused_now?(state.refused, &1, listed[&1], now))
      )

    state = %{
      state
      | discovering: nil,
        host_status: Membership.host_status(found),
        epmd_ports: listed
    }

    {:noreply, Enum.reduce(candidates, state, &Membership.join/2)}
  end

  def handle_info({:DOWN, ref, :process, _, reason}, %{discovering: ref} = state) do
    Logger.warning("mure cluster: discovery failed: #{inspect(reason, limit: 5)}")
    {:noreply, %{state | discovering: nil}}
  end

  def handle_info({:member_ready, pid, node, conn, hello, speeds}, state) do
    case state.members do
      %{^node => %{pid: ^pid} = m} ->
        Logger.info("mure cluster: #{node} joined#{speeds_line(speeds)}")

        m = %{
          m
          | state: :ready,
            conn: conn,
            hello: hello,
            speeds: speeds,
            joined_at: DateTime.utc_now()
        }

        members = Map.put(state.members, node, m)
        {:noreply, %{state | members: members, refused: Map.delete(state.refused, node)}}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:health, node, pid, ok?, reason}, state) do
    state = %{state | checking: MapSet.delete(state.checking, node)}

    if not ok? and match?(%{^node => %{pid: ^pid}}, state.members) do
      Logger.warning("mure cluster: #{node} does not answer (after #{reason}); disconnecting it")
      :erlang.disconnect_node(node)
      Process.exit(pid, {:shutdown, :unreachable})
    end

    {:noreply, state}
  end

  def handle_info({:nodeup, node, _info}, state) do
    # A hidden node that came up elsewhere in this BEAM (another connection to it, or a node
    # that dialled in: mure_node --connect): join it if it is one of ours.
    {:noreply, if(Membership.ours?(state, node), do: Membership.join(node, state), else: state)}
  end

  def handle_info({:nodedown, node, _info}, state) do
    case state.members do
      %{^node => %{pid: pid}} -> Process.exit(pid, {:shutdown, :nodedown})
      _ -> :ok
    end

    {:noreply, state}
  end

  def handle_info({:EXIT, pid, reason}, state) do
    case Enum.find(state.members, fn {_, m} -> m.pid == pid end) do
      {node, m} ->
        {:noreply, Membership.leave(state, node, m, reason)}

      nil ->
        if reason in [:normal, :shutdown], do: {:noreply, state}, else: {:stop, reason, state}
    end
  end

  def handle_info({:DOWN, _ref, :process, owner, _reason}, state) do
    case Map.pop(state.owners, owner) do
      {{_mon, ids}, owners} -> {:noreply, unshare_ids(%{state | owners: owners}, ids)}
      {nil, _} -> {:noreply, state}
    end
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    for {_, m} <- state.members, do: Process.exit(m.pid, :shutdown)
    :ok
  end

  defp unshare_ids(state, ids) do
    for {_, m} <- state.members, id <- ids, do: Member.free(m.pid, id)
    shared = Map.drop(state.shared, ids)

    owners =
      state.owners
      |> Enum.map(fn {owner, {mon, owned}} -> {owner, {mon, owned -- ids}} end)
      |> Enum.reject(fn {_owner, {mon, owned}} -> owned == [] and Process.demonitor(mon) end)
      |> Map.new()

    %{state | shared: shared, owners: owners}
  end

  ## Status

  defp status_map(state) do
    members =
      for {node, m} <- Enum.sort_by(state.members, &elem(&1, 0)) do
        %{
          node: node,
          state: m.state,
          devices: devices(m.hello),
          speeds: m.speeds,
          programs_learned: map_size(m.learned),
          work: m.work,
          failures: m.failures,
          last_failure: m.last_failure,
          joined_at: m.joined_at
        }
      end

    departed =
      for {node, d} <- Enum.sort_by(state.departed, &elem(&1, 0)),
          not Map.has_key?(state.members, node),
          do: Map.put(d, :node, node)

    hosts =
      for host <- state.hosts do
        Map.merge(%{host: host, reachable: nil}, Map.get(state.host_status, host, %{}))
      end

    refused =
      for {node, r} <- Enum.sort_by(state.refused, &elem(&1, 0)),
          not Map.has_key?(state.members, node),
          do: %{node: node, reason: r.reason, attempts: r.attempts, since: r.since}

    %{members: members, departed: departed, refused: refused, hosts: hosts, jobs: state.jobs}
  end

  defp devices(%{devices: devices}) when is_list(devices),
    do: Enum.map(devices, fn d -> if is_map(d), do: d[:id], else: d end)

  defp devices(_), do: []

  defp speeds_line(nil), do: ""

  defp speeds_line(s),
    do:
      " (rtt #{Float.round(s.rtt_ms, 2)} ms, up #{mb(s.upload_bytes_s)} MB/s, down " <>
        "#{mb(s.download_bytes_s)} MB/s, sgemm #{Float.round(s.gemm_flops_s / 1.0e9, 1)} GFLOP/s, " <>
        "elementwise #{Float.round(s.elementwise_bytes_s / 1.0e9, 2)} GB/s)"

  defp mb(bytes_s), do: Float.round(bytes_s / 1.0e6, 1)
end
