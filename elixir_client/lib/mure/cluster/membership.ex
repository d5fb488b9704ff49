defmodule Mure.Cluster.Membership do
  @moduledoc false
  # Who is in a Mure.Cluster: discovery through each host's epmd, joining (a Member process per
  # node), leaving, and the nodes that could not be joined (with a back-off before asking again).

  require Logger

  alias Mure.Cluster.Member

  @doc false
  def discover(hosts) do
    hosts
    |> Task.async_stream(
      fn host -> :erl_epmd.names(String.to_charlist(host)) end,
      timeout: 3_000,
      on_timeout: :kill_task,
      max_concurrency: 64
    )
    |> Enum.zip(hosts)
    |> Enum.map(fn
      {{:ok, {:ok, names}}, host} ->
        {host, {:ok, Enum.map(names, fn {n, p} -> {to_string(n), p} end)}}

      {{:ok, {:error, reason}}, host} ->
        {host, {:error, reason}}

      {{:exit, reason}, host} ->
        {host, {:error, reason}}
    end)
  end

  @doc false
  def host_status(found) do
    now = DateTime.utc_now()

    Map.new(found, fn
      {host, {:ok, names}} ->
        {host, %{reachable: true, names: Enum.map(names, &elem(&1, 0)), asked_at: now}}

      {host, {:error, reason}} ->
        {host, %{reachable: false, error: reason, asked_at: now}}
    end)
  end

  @doc false
  def ours?(state, node) do
    [name, host] = split(node)

    node in state.opts[:nodes] or
      (String.starts_with?(name, state.opts[:name_prefix]) and
         (host in state.hosts or (state.opts[:dial_in] and node in Node.list(:hidden))))
  end

  @doc false
  # The connected hidden nodes that may join by dialling in (mure_node --connect; see
  # Mure.Cluster's `:dial_in`): listed by no epmd this cluster asks, known only by their
  # connection, so any host will do.
  def dialled_in(state) do
    if state.opts[:dial_in],
      do:
        Enum.filter(
          Node.list(:hidden),
          &String.starts_with?(hd(split(&1)), state.opts[:name_prefix])
        ),
      else: []
  end

  defp split(node), do: node |> Atom.to_string() |> String.split("@", parts: 2) |> pad()

  defp pad([a]), do: [a, ""]
  defp pad(list), do: list

  @doc false
  def join(node, state) do
    if Map.has_key?(state.members, node) do
      state
    else
      {:ok, pid} =
        Member.start_link(%{
          cluster: self(),
          node: node,
          probe: state.opts[:probe],
          connect_opts: state.opts[:connect_opts]
        })

      m = %{
        pid: pid,
        state: :joining,
        conn: nil,
        hello: nil,
        speeds: nil,
        joined_at: nil,
        work: %{jobs: 0, pieces: 0, rows: 0, flop: 0, bytes_in: 0, bytes_out: 0, busy_us: 0},
        learned: %{},
        failures: get_in(state.departed, [node, :failures]) || 0,
        last_failure: get_in(state.departed, [node, :last_failure])
      }

      %{state | members: Map.put(state.members, node, m)}
    end
  end

  @doc false
  def leave(state, node, m, reason) do
    members = Map.delete(state.members, node)

    if m.state == :ready do
      why = exit_reason(reason)
      Logger.warning("mure cluster: #{node} left (#{why})")

      departed =
        Map.put(state.departed, node, %{
          failures: m.failures + 1,
          last_failure: why,
          left_at: DateTime.utc_now(),
          work: m.work
        })

      %{state | members: members, departed: departed}
    else
      refuse(%{state | members: members}, node, reason)
    end
  end

  # A node that could not be joined is not asked again at every discovery round (it would
  # sit in :joining for ever, each round), but after a back-off that doubles up to a minute,
  # or at once when its epmd registration changes (it was restarted). Logged once per
  # registration, with what can be known of the cause.
  @refuse_first_ms 5_000
  @refuse_max_ms 60_000
  defp refuse(state, node, reason) do
    port = state.epmd_ports[node]
    now = System.monotonic_time(:millisecond)
    why = refusal(node, port, reason)

    entry =
      case state.refused[node] do
        %{port: ^port, backoff_ms: b} = r ->
          b = min(2 * b, @refuse_max_ms)
          %{r | reason: why, attempts: r.attempts + 1, backoff_ms: b, retry_at: now + b}

        _ ->
          Logger.warning("mure cluster: could not join #{node}: #{why}")

          %{
            port: port,
            reason: why,
            attempts: 1,
            since: DateTime.utc_now(),
            backoff_ms: @refuse_first_ms,
            retry_at: now + @refuse_first_ms
          }
      end

    %{state | refused: Map.put(state.refused, node, entry)}
  end

  @doc false
  def refused_now?(refused, node, port, now) do
    case refused do
      %{^node => %{port: ^port, retry_at: at}} -> now < at
      _ -> false
    end
  end

  defp refusal(_node, port, {:shutdown, {:connect_failed, detail}}) when is_integer(port) do
    "epmd lists it, but it refused the connection: most likely a different cookie (the node " <>
      "logs the refused handshake), else it refuses this address or is not a mure node " <>
      "[#{detail}]"
  end

  defp refusal(_node, _port, {:shutdown, {:probe_failed, detail}}),
    do: "connected, but measuring it failed: #{detail}"

  defp refusal(_node, _port, reason), do: exit_reason(reason)

  @doc false
  def exit_reason({:shutdown, reason}), do: exit_reason(reason)
  def exit_reason(reason) when is_atom(reason), do: Atom.to_string(reason)
  def exit_reason({tag, detail}) when is_atom(tag), do: "#{tag}: #{inspect(detail, limit: 5)}"
  def exit_reason(other), do: inspect(other, limit: 5)
end
