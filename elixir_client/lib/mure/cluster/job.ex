defmodule Mure.Cluster.Job do
  @moduledoc false
  # One data-parallel job of a Mure.Cluster, driven from the caller's process.
  #
  # The rows (axis 0) of the split arguments are cut into pieces (Mure.Cluster.Job.Plan).
  # Each ready member gets a contiguous share proportional to its measured speed for this
  # job (compute and link: see `Plan.row_time/2`), in pieces of about Plan's
  # @target_piece_ms each, with @depth pieces in flight so that a piece's transfer overlaps
  # the previous piece's compute (Mure.Cluster.Job.Piece). A member that runs out of its own
  # pieces takes the pieces of members that failed, then (balance: :speed) the last piece of
  # the member furthest behind, when it would finish it sooner. A piece whose member fails
  # (node down, link cut, piece deadline passed) goes back to the pool and that member gets
  # no more work in this job. Results are kept by piece and assembled in row order (or, for
  # reductions, combined on the client).

  require Logger

  alias Mure.{ClusterError, ConnectionError}
  alias Mure.Cluster.Job.{Piece, Plan}

  @depth 2
  @refresh_ms 500
  # When every member has failed: how often a member that only missed deadlines gets another
  # chance (with four times the slack each time), and how long to wait for joining members.
  @max_revives 3
  @join_wait_ms 30_000

  @type spec :: %{kind: :gemm | :map, flops_per_row: non_neg_integer() | nil}

  @spec run(GenServer.server(), Mure.Jit.t(), list(), spec(), keyword()) ::
          {:ok, binary()} | {:error, Exception.t()}
  def run(cluster, jit, args, spec, opts) do
    plan = Plan.plan!(jit, args, spec, opts)
    deadline = deadline(opts[:timeout])

    case members(cluster) do
      [] ->
        {:error, %ClusterError{reason: :no_members, details: "the cluster has no ready member"}}

      members ->
        state = start(cluster, plan, members, opts, deadline)
        drive(state)
    end
  end

  @doc false
  # Seconds per row of `plan` on a member of these speeds (Mure.Cluster.Accounting's too).
  defdelegate row_time(speeds, plan), to: Plan

  @doc false
  # Splits `total` in proportion to `weights` (largest remainders).
  defdelegate apportion(total, weights), to: Plan

  defp deadline(:infinity), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  ## Shares and pieces

  defp start(cluster, plan, members, opts, deadline) do
    members = Map.new(members, &{&1.node, Plan.new_member(&1, plan)})
    ref = make_ref()

    state = %{
      cluster: cluster,
      ref: ref,
      plan: plan,
      opts: opts,
      deadline: deadline,
      members: members,
      pending: %{},
      inflight: %{},
      results: %{},
      attempts: %{},
      failures: [],
      revives: 0,
      join_wait_until: nil,
      done_rows: 0,
      timer: Process.send_after(self(), {:mure_job_refresh, ref}, @refresh_ms)
    }

    pieces = Plan.pieces(plan, Map.values(members))
    %{state | pending: Map.new(pieces, &{&1.id, &1})}
  end

  ## Driving

  defp drive(state) do
    state = dispatch(state)

    cond do
      map_size(state.pending) == 0 and map_size(state.inflight) == 0 ->
        finish(state)

      map_size(state.inflight) == 0 and usable(state) == [] ->
        case revive(state) do
          {:ok, state} -> drive(state)
          {:error, error} -> fail(state, error)
        end

      true ->
        wait(state)
    end
  end

  defp wait(%{ref: ref, inflight: inflight} = state) do
    timeout =
      case state.deadline do
        :infinity -> :infinity
        d -> max(d - System.monotonic_time(:millisecond), 0)
      end

    receive do
      {:mure_piece, ^ref, pid, result, times} ->
        case Map.pop(state.inflight, pid) do
          {nil, _} ->
            drive(state)

          {{mon, piece, node, member}, inflight} ->
            Process.demonitor(mon, [:flush])
            state = %{state | inflight: inflight}
            state = update_member(state, node, member, &%{&1 | inflight: &1.inflight - 1})
            piece_done(state, piece, {node, member}, result, times)
        end

      {:DOWN, _mon, :process, pid, reason} when is_map_key(inflight, pid) ->
        {{_mon, piece, node, member}, inflight} = Map.pop(state.inflight, pid)
        state = %{state | inflight: inflight}
        state = update_member(state, node, member, &%{&1 | inflight: &1.inflight - 1})

        error = %ConnectionError{
          reason: :closed,
          details: "piece worker exited: #{inspect(reason, limit: 5)}"
        }

        piece_done(state, piece, {node, member}, {:error, error}, nil)

      {:mure_job_refresh, ^ref} ->
        timer = Process.send_after(self(), {:mure_job_refresh, ref}, @refresh_ms)
        drive(refresh(%{state | timer: timer}))
    after
      timeout ->
        fail(state, %ClusterError{
          reason: :timeout,
          details:
            "#{map_size(state.results)} of #{map_size(state.results) + map_size(state.pending) + map_size(state.inflight)} pieces done"
        })
    end
  end

  defp piece_done(state, piece, {node, member}, {:ok, data}, {t0, t1}) when is_binary(data) do
    state =
      update_member(state, node, member, fn m ->
        m = %{
          m
          | pieces: m.pieces + 1,
            rows: m.rows + piece.rows,
            intervals: [{t0, t1} | m.intervals]
        }

        %{m | row_time: observed_row_time(m)}
      end)

    state = %{
      state
      | results: Map.put(state.results, piece.id, data),
        done_rows: state.done_rows + piece.rows
    }

    progress(state, node, piece)
    drive(state)
  end

  defp piece_done(state, piece, {node, member}, {:error, error}, _times) do
    attempts = Map.get(state.attempts, piece.id, 0) + 1

    cond do
      not Piece.retryable?(error) ->
        fail(state, error)

      attempts > map_size(state.members) + 3 ->
        # Every member had its chances with this piece: the error is the answer.
        fail(state, error)

      true ->
        reason = Piece.short_reason(error)

        state = %{
          state
          | pending: Map.put(state.pending, piece.id, %{piece | owner: nil}),
            attempts: Map.put(state.attempts, piece.id, attempts),
            failures: [{node, reason} | state.failures]
        }

        if Piece.busy?(error) do
          # A full queue or memory, perhaps only for the moment (other jobs): the member
          # stays, after a pause; the piece may go to another one meanwhile.
          until = System.monotonic_time(:millisecond) + 200 * attempts
          drive(update_member(state, node, member, &%{&1 | cooldown_until: until}))
        else
          # Once per member and job (its other pieces in flight fail the same way), in the log
          # and in the member's failure count alike.
          if match?(%{pid: ^member, excluded: nil}, state.members[node]) do
            Logger.warning(
              "mure cluster: #{node} failed a piece (#{reason}); its share goes to others"
            )

            GenServer.cast(state.cluster, {:piece_failed, node, member, reason})
          end

          if match?(%ConnectionError{reason: :timeout}, error),
            do: GenServer.cast(state.cluster, {:suspect, node, member, reason})

          drive(update_member(state, node, member, &%{&1 | excluded: error}))
        end
    end
  end

  defp piece_done(state, piece, who, other, _times) do
    error = %ConnectionError{
      reason: :closed,
      details: "unexpected piece result: #{inspect(other, limit: 5)}"
    }

    piece_done(state, piece, who, {:error, error}, nil)
  end

  # Once a member has done two pieces of this job and been busy long enough to measure, its
  # pace in this job is what it did, not what was expected of it before: a member that
  # turned out faster takes pieces from slower ones, and one that turned out slower is
  # relieved of its last pieces (see steal/3).
  @measure_us 20_000
  defp observed_row_time(%{pieces: pieces, rows: rows, intervals: intervals} = m)
       when pieces >= 2 and rows > 0 do
    case busy(intervals) do
      us when us >= @measure_us -> max(us / 1.0e6 / rows, 1.0e-9)
      _ -> m.row_time
    end
  end

  defp observed_row_time(m), do: m.row_time

  defp progress(%{opts: opts, plan: plan} = state, node, piece) do
    case opts[:progress] do
      nil ->
        :ok

      pid ->
        send(
          pid,
          {:mure_cluster_progress,
           %{
             node: node,
             start: piece.start,
             rows: piece.rows,
             done: state.done_rows,
             total: plan.rows
           }}
        )
    end
  end

  defp update_member(state, node, fun),
    do: %{state | members: Map.update!(state.members, node, fun)}

  # Only while `node` is still served by member process `pid`: a piece of a member that left
  # and rejoined (a new process) under the same node name counts for neither.
  defp update_member(state, node, pid, fun) do
    case state.members do
      %{^node => %{pid: ^pid}} -> update_member(state, node, fun)
      _ -> state
    end
  end

  defp usable(state), do: for({_, m} <- state.members, m.excluded == nil, do: m)

  # Every member of the job failed: take members that joined (or rejoined) since, or give
  # a member that only missed a deadline (and that the cluster still lists) another chance
  # with a longer deadline.
  defp revive(state) do
    state = refresh(state)

    cond do
      usable(state) != [] ->
        {:ok, state}

      true ->
        listed = members(state.cluster) |> Map.new(&{&1.node, &1.member})

        slow =
          for {node, m} <- state.members,
              match?(%ConnectionError{reason: :timeout}, m.excluded),
              listed[node] == m.pid,
              do: node

        now = System.monotonic_time(:millisecond)
        join_wait_until = state.join_wait_until || now + @join_wait_ms

        cond do
          slow != [] and state.revives < @max_revives ->
            members =
              Enum.reduce(slow, state.members, fn node, acc ->
                Map.update!(acc, node, &%{&1 | excluded: nil, slack: &1.slack * 4})
              end)

            {:ok, %{state | members: members, revives: state.revives + 1}}

          now < join_wait_until and joining?(state.cluster) ->
            # Members still joining (connecting, being measured): wait for them a while.
            Process.sleep(@refresh_ms)

            if expired?(state),
              do: {:error, timeout_error(state)},
              else: revive(%{state | join_wait_until: join_wait_until})

          true ->
            details =
              state.failures
              |> Enum.reverse()
              |> Enum.uniq_by(&elem(&1, 0))
              |> Enum.map_join("; ", fn {node, reason} -> "#{node}: #{reason}" end)

            {:error,
             %ClusterError{
               reason: :no_members,
               details: "every member failed during the job (#{details})"
             }}
        end
    end
  end

  # The cluster's members; none when the cluster process is gone (the job then fails with
  # :no_members instead of exiting its caller).
  defp members(cluster) do
    Mure.Cluster.members(cluster)
  catch
    :exit, _ -> []
  end

  defp joining?(cluster) do
    Mure.Cluster.joining?(cluster)
  catch
    :exit, _ -> false
  end

  defp expired?(%{deadline: :infinity}), do: false
  defp expired?(%{deadline: d}), do: System.monotonic_time(:millisecond) >= d

  defp timeout_error(state),
    do: %ClusterError{reason: :timeout, details: "#{map_size(state.results)} pieces done"}

  # Members that became ready since the job started (or rejoined under a new process).
  defp refresh(state) do
    Enum.reduce(members(state.cluster), state, fn m, acc ->
      case acc.members[m.node] do
        %{pid: pid} when pid == m.member -> acc
        _ -> %{acc | members: Map.put(acc.members, m.node, Plan.new_member(m, acc.plan))}
      end
    end)
  end

  defp dispatch(state) do
    now = System.monotonic_time(:millisecond)

    candidates =
      state
      |> usable()
      |> Enum.filter(
        &(&1.inflight < @depth and (&1.cooldown_until == nil or &1.cooldown_until <= now))
      )
      |> Enum.sort_by(& &1.inflight)

    Enum.reduce(candidates, state, fn m, acc -> fill(acc, m.node) end)
  end

  defp fill(state, node) do
    m = state.members[node]

    if m.excluded == nil and m.inflight < @depth do
      case pick(state, m) do
        nil -> state
        piece -> state |> launch(m, piece) |> fill(node)
      end
    else
      state
    end
  end

  # The member's next piece: its own, then any whose owner failed, then (balance: :speed)
  # the last piece of the member furthest behind, when this member would finish it sooner.
  defp pick(state, m) do
    pending = state.pending |> Map.values() |> Enum.sort_by(& &1.id)
    usable_owner? = fn p -> match?(%{excluded: nil}, state.members[p.owner]) end

    Enum.find(pending, &(&1.owner == m.node)) ||
      Enum.find(pending, &(not usable_owner?.(&1))) ||
      if(state.plan.balance == :speed, do: steal(state, m, pending))
  end

  # Times are counted from now: the owner's in-flight and pending rows at its pace, against
  # the stealer's in-flight rows and the piece at its own. Leaving out what is in flight would
  # let a member with a piece still running take one it finishes later than its owner would,
  # and leave a member idle whose in-flight pieces hide how far behind the others are.
  defp steal(state, m, pending) do
    inflight_rows =
      Enum.reduce(state.inflight, %{}, fn {_pid, {_mon, piece, node, _member}}, acc ->
        Map.update(acc, node, piece.rows, &(&1 + piece.rows))
      end)

    behind =
      pending
      |> Enum.group_by(& &1.owner)
      |> Enum.reject(fn {owner, _} -> owner == m.node end)
      |> Enum.map(fn {owner, ps} ->
        v = state.members[owner]
        rows = Enum.sum(Enum.map(ps, & &1.rows)) + Map.get(inflight_rows, owner, 0)
        {rows * v.row_time, List.last(ps)}
      end)
      |> Enum.max_by(&elem(&1, 0), fn -> nil end)

    mine = Map.get(inflight_rows, m.node, 0)

    case behind do
      {left, piece} when (mine + piece.rows) * m.row_time < left -> piece
      _ -> nil
    end
  end

  defp launch(state, m, piece) do
    plan = state.plan
    driver = self()
    ref = state.ref
    timeout = Piece.timeout(m, piece)
    args = Piece.args(plan, piece)

    {pid, mon} =
      spawn_monitor(fn ->
        # Mure's requests give up when this monitor fires: a piece never outlives its job's
        # caller.
        Process.put(:"$mure_job_owner_mon", Process.monitor(driver))
        {result, times} = Piece.run(m, plan, args, timeout)
        send(driver, {:mure_piece, ref, self(), result, times})
      end)

    state = %{state | pending: Map.delete(state.pending, piece.id)}
    state = %{state | inflight: Map.put(state.inflight, pid, {mon, piece, m.node, m.pid})}
    update_member(state, m.node, &%{&1 | inflight: &1.inflight + 1})
  end

  ## Ending

  # Stops the pieces still running and waits until each is gone, so that no late result
  # (nor the refresh timer) reaches the caller's mailbox after the job.
  defp fail(state, error) do
    for {pid, _} <- state.inflight, do: Process.exit(pid, :kill)

    for {_pid, {mon, _, _, _}} <- state.inflight do
      receive do
        {:DOWN, ^mon, :process, _, _} -> :ok
      end
    end

    Process.cancel_timer(state.timer)
    flush(state.ref)
    report(state, false)
    {:error, error}
  end

  defp flush(ref) do
    receive do
      {:mure_piece, ^ref, _, _, _} -> flush(ref)
      {:mure_job_refresh, ^ref} -> flush(ref)
    after
      0 -> :ok
    end
  end

  defp finish(state) do
    Process.cancel_timer(state.timer)
    flush(state.ref)
    plan = state.plan
    parts = state.results |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))

    result =
      case plan.combine do
        :concat -> IO.iodata_to_binary(parts)
        op -> Mure.Cluster.Combine.combine(op, plan.out_type, parts)
      end

    report(state, true)
    {:ok, result}
  end

  # What each member did, for the cluster's status and its re-measurement of speeds.
  defp report(state, ok?) do
    plan = state.plan

    members =
      for {node, m} <- state.members, m.pieces > 0 or m.excluded != nil, into: %{} do
        {node,
         %{
           pid: m.pid,
           pieces: m.pieces,
           rows: m.rows,
           in_bytes: m.rows * plan.in_row,
           out_bytes: m.rows * plan.out_row,
           work: m.rows * plan.work_row,
           busy_us: busy(m.intervals)
         }}
      end

    GenServer.cast(
      state.cluster,
      {:job_report,
       %{
         kind: plan.kind,
         ok: ok?,
         members: members,
         rerun: length(state.failures),
         plan: Map.take(plan, [:key, :in_row, :out_row, :work_row, :kind])
       }}
    )
  end

  # The time covered by a member's pieces (the union of their intervals, in microseconds).
  defp busy(intervals) do
    intervals
    |> Enum.sort()
    |> Enum.reduce({0, nil}, fn
      {a, b}, {sum, nil} -> {sum, {a, b}}
      {a, b}, {sum, {s, e}} when a <= e -> {sum, {s, max(b, e)}}
      {a, b}, {sum, {s, e}} -> {sum + (e - s), {a, b}}
    end)
    |> then(fn
      {sum, nil} -> sum
      {sum, {s, e}} -> sum + (e - s)
    end)
  end
end
