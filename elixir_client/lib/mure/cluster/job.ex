defmodule Mure.Cluster.Job do
  @moduledoc false
  # One data-parallel job of a Mure.Cluster, driven from the caller's process.
  #
  # The rows (axis 0) of the split arguments are cut into pieces. Each ready member gets a
  # contiguous share proportional to its measured speed for this job (compute and link:
  # see `row_time/3`), in pieces of about @target_piece_ms each, with @depth pieces in flight
  # so that a piece's transfer overlaps the previous piece's compute. A member that runs out
  # of its own pieces takes the pieces of members that failed, then (balance: :speed) the
  # last piece of the member furthest behind, when it would finish it sooner. A piece whose
  # member fails (node down, link cut, piece deadline passed) goes back to the pool and that
  # member gets no more work in this job. Results are kept by piece and assembled in row
  # order (or, for reductions, combined on the client).

  require Logger

  alias Mure.{ClusterError, ConnectionError, Error, Types}
  alias Mure.Cluster.{Member, Shared}

  @depth 2
  @target_piece_ms 150
  @max_piece_bytes 4 * 1024 * 1024
  @refresh_ms 500
  # A piece may take this many times its expected time (plus @deadline_floor_ms) before its
  # member counts as failed for the job.
  @deadline_factor 6
  @deadline_floor_ms 3_000
  # When every member has failed: how often a member that only missed deadlines gets another
  # chance (with four times the slack each time), and how long to wait for joining members.
  @max_revives 3
  @join_wait_ms 30_000
  @combinable [:sum, :product, :max, :min]

  @type spec :: %{kind: :gemm | :map, flops_per_row: non_neg_integer() | nil}

  @spec run(GenServer.server(), Mure.Jit.t(), list(), spec(), keyword()) ::
          {:ok, binary()} | {:error, Exception.t()}
  def run(cluster, jit, args, spec, opts) do
    plan = plan!(jit, args, spec, opts)
    deadline = deadline(opts[:timeout])

    case members(cluster) do
      [] ->
        {:error, %ClusterError{reason: :no_members, details: "the cluster has no ready member"}}

      members ->
        state = start(cluster, plan, members, opts, deadline)
        drive(state)
    end
  end

  defp deadline(:infinity), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  ## Planning (in the caller, before anything is sent)

  defp plan!(jit, args, spec, opts) do
    {split, rows} = split_args!(args)

    sig = fn r ->
      Enum.map(args, fn
        {_bin, type, shape} -> {type, put_elem(shape, 0, r)}
        %Shared{type: type, shape: shape} -> {type, shape}
      end)
    end

    p1 = Mure.trace(jit, sig.(1))
    p2 = Mure.trace(jit, sig.(2))

    case {p1.outputs, p2.outputs, p1.result} do
      {[{_, type, shape1}], [{_, _, shape2}], {:"$mure_output", _}} ->
        combine = combine!(opts[:combine], jit, args, shape1, shape2)

        out_row =
          if combine == :concat,
            do: div(Types.size(shape1) * Types.itemsize(type), 1),
            else: 0

        in_row = split |> Enum.map(fn {_i, row_bytes} -> row_bytes end) |> Enum.sum()

        %{
          # Jobs of the same program on rows of the same shape share what members learn.
          key: :erlang.phash2({spec.kind, jit.fun, sig.(1)}),
          jit: jit,
          args: args,
          split: Map.new(split),
          rows: rows,
          combine: combine,
          out_type: type,
          out_shape: shape1,
          in_row: in_row,
          out_row: out_row,
          kind: spec.kind,
          work_row:
            if(spec.kind == :gemm, do: spec.flops_per_row, else: in_row + max(out_row, 0)),
          device: opts[:device],
          balance: opts[:balance],
          piece_rows: opts[:piece_rows]
        }

      _ ->
        raise ArgumentError,
              "Mure.Cluster.run: the function must return a single tensor expression " <>
                "(got #{length(p1.outputs)} outputs)"
    end
  end

  defp split_args!(args) do
    indexed =
      args
      |> Enum.with_index()
      |> Enum.map(fn
        {{bin, type, shape}, i} when is_binary(bin) ->
          Types.check_type!(type, "Mure.Cluster.run")
          Types.check_shape!(shape, "Mure.Cluster.run")

          if tuple_size(shape) == 0,
            do:
              raise(
                ArgumentError,
                "Mure.Cluster.run: argument #{i} is a scalar: data arguments are split along " <>
                  "axis 0; share a scalar with Mure.Cluster.share/3"
              )

          expected = Types.size(shape) * Types.itemsize(type)

          if byte_size(bin) != expected,
            do:
              raise(
                ArgumentError,
                "Mure.Cluster.run: argument #{i} has #{byte_size(bin)} bytes, " <>
                  "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} needs #{expected}"
              )

          {:split, i, elem(shape, 0),
           if(elem(shape, 0) == 0, do: 0, else: div(expected, elem(shape, 0)))}

        {%Shared{}, _i} ->
          :shared

        {%Mure.Tensor{}, i} ->
          raise ArgumentError,
                "Mure.Cluster.run: argument #{i} is a tensor resident on one node; a cluster " <>
                  "job takes {binary, type, shape} data (split by rows) or Mure.Cluster.Shared " <>
                  "tensors (see Mure.Cluster.share/3)"

        {other, i} ->
          raise ArgumentError,
                "Mure.Cluster.run: argument #{i}: expected {binary, type, shape} or a " <>
                  "Mure.Cluster.Shared, got: #{inspect(other, limit: 5)}"
      end)

    splits = for {:split, i, rows, row_bytes} <- indexed, do: {i, rows, row_bytes}

    case Enum.uniq_by(splits, &elem(&1, 1)) do
      [] ->
        raise ArgumentError,
              "Mure.Cluster.run: no argument to split: give at least one {binary, type, shape}"

      [{_, 0, _}] ->
        raise ArgumentError, "Mure.Cluster.run: the split arguments have no rows (axis 0 is 0)"

      [{_, rows, _}] ->
        {Enum.map(splits, fn {i, _, rb} -> {i, rb} end), rows}

      _ ->
        raise ArgumentError,
              "Mure.Cluster.run: the split arguments differ in axis 0: " <>
                inspect(Enum.map(splits, &elem(&1, 1)))
    end
  end

  # How partial results come together: :concat (rows in order) or an elementwise op. :auto
  # reads it off the program (Mure.Cluster.Split), and refuses what pieces cannot compute;
  # an explicit choice is the caller's word that the program keeps rows apart.
  defp combine!(:auto, jit, args, _shape1, _shape2) do
    case Mure.Cluster.Split.combine(jit, args) do
      {:ok, combine} ->
        combine

      {:error, why} ->
        raise ArgumentError,
              "Mure.Cluster.run: cannot split this function across members: #{why}; " <>
                "give combine: :concat | :sum | :product | :max | :min if its pieces do combine"
    end
  end

  defp combine!(:concat, _jit, _args, shape1, shape2) do
    if tuple_size(shape1) > 0 and elem(shape1, 0) == 1 and elem(shape2, 0) == 2 and
         Tuple.delete_at(shape1, 0) == Tuple.delete_at(shape2, 0),
       do: :concat,
       else:
         raise(
           ArgumentError,
           "Mure.Cluster.run: combine: :concat needs an output with one row per input row"
         )
  end

  defp combine!(op, _jit, _args, shape1, shape2) when op in @combinable do
    if shape1 == shape2,
      do: op,
      else:
        raise(
          ArgumentError,
          "Mure.Cluster.run: combine: #{inspect(op)} needs an output whose shape does not " <>
            "depend on the rows (a reduction over axis 0)"
        )
  end

  ## Shares and pieces

  defp start(cluster, plan, members, opts, deadline) do
    members = Map.new(members, &{&1.node, new_member(&1, plan)})
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

    pieces = pieces(plan, Map.values(members))
    %{state | pending: Map.new(pieces, &{&1.id, &1})}
  end

  # A member's time per row: what earlier jobs of this program took on it, else the estimate
  # from its measured speeds.
  defp new_member(%{node: node, member: pid, conn: conn, speeds: speeds} = member, plan) do
    learned = get_in(member, [:learned, plan.key])

    %{
      node: node,
      pid: pid,
      conn: conn,
      speeds: speeds,
      row_time: learned || row_time(speeds, plan),
      excluded: nil,
      cooldown_until: nil,
      inflight: 0,
      slack: 1,
      pieces: 0,
      rows: 0,
      intervals: []
    }
  end

  # Seconds per row on this member: the link (in and out) and the compute overlap, so the
  # slower of the two sets the pace.
  @doc false
  def row_time(nil, _plan), do: 1.0e-3

  def row_time(speeds, plan) do
    link = plan.in_row / speeds.upload_bytes_s + plan.out_row / speeds.download_bytes_s

    compute =
      case plan.kind do
        :gemm -> plan.work_row / speeds.gemm_flops_s
        :map -> plan.work_row / speeds.elementwise_bytes_s
      end

    max(max(link, compute), 1.0e-9)
  end

  defp pieces(plan, members) do
    members = Enum.sort_by(members, & &1.node)

    weights =
      case plan.balance do
        :equal -> Enum.map(members, fn _ -> 1.0 end)
        :speed -> Enum.map(members, &(1.0 / &1.row_time))
      end

    shares = apportion(plan.rows, weights)

    {pieces, _start} =
      members
      |> Enum.zip(shares)
      |> Enum.flat_map_reduce(0, fn {m, share}, start ->
        size = piece_rows(plan, m, share)

        ps =
          Stream.unfold({start, share}, fn
            {_, 0} -> nil
            {s, left} -> {{s, min(size, left)}, {s + min(size, left), left - min(size, left)}}
          end)
          |> Enum.map(fn {s, n} -> %{start: s, rows: n, owner: m.node} end)

        {ps, start + share}
      end)

    pieces |> Enum.with_index() |> Enum.map(fn {p, i} -> Map.put(p, :id, i) end)
  end

  defp piece_rows(_plan, _m, 0), do: 1

  defp piece_rows(plan, m, share) do
    by_time = trunc(@target_piece_ms / 1000 / m.row_time)
    by_bytes = if plan.in_row > 0, do: div(@max_piece_bytes, plan.in_row), else: share
    two = div(share + 1, 2)
    (plan.piece_rows || Enum.min([by_time, by_bytes, two])) |> max(1) |> min(share)
  end

  # Splits `total` in proportion to `weights` (largest remainders).
  @doc false
  def apportion(total, weights) do
    sum = Enum.sum(weights)
    exact = Enum.map(weights, &(total * &1 / sum))
    floors = Enum.map(exact, &trunc/1)
    left = total - Enum.sum(floors)

    extra =
      exact
      |> Enum.with_index()
      |> Enum.sort_by(fn {x, i} -> {-(x - trunc(x)), i} end)
      |> Enum.take(left)
      |> MapSet.new(fn {_, i} -> i end)

    floors |> Enum.with_index() |> Enum.map(fn {f, i} -> if i in extra, do: f + 1, else: f end)
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
      not retryable?(error) ->
        fail(state, error)

      attempts > map_size(state.members) + 3 ->
        # Every member had its chances with this piece: the error is the answer.
        fail(state, error)

      true ->
        reason = short_reason(error)

        state = %{
          state
          | pending: Map.put(state.pending, piece.id, %{piece | owner: nil}),
            attempts: Map.put(state.attempts, piece.id, attempts),
            failures: [{node, reason} | state.failures]
        }

        if busy?(error) do
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

  # Errors that another member (or the same one, later) may not have: the transport, a full
  # queue, memory, a handle lost with a connection.
  defp retryable?(%ConnectionError{}), do: true
  defp retryable?(%Error{kind: kind}), do: kind in [:overloaded, :out_of_memory, :unknown_handle]
  defp retryable?(_), do: false

  defp busy?(%Error{kind: kind}), do: kind in [:overloaded, :out_of_memory]
  defp busy?(_), do: false

  defp short_reason(%ConnectionError{reason: r}), do: r
  defp short_reason(%Error{kind: k}), do: k
  defp short_reason(e), do: inspect(e, limit: 3)

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
        _ -> %{acc | members: Map.put(acc.members, m.node, new_member(m, acc.plan))}
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
    expected_ms = piece.rows * m.row_time * 1000 + (m.speeds[:rtt_ms] || 1)
    timeout = trunc(@deadline_floor_ms + @deadline_factor * expected_ms * m.slack)
    args = piece_args(plan, piece)

    {pid, mon} =
      spawn_monitor(fn ->
        # Mure's requests give up when this monitor fires: a piece never outlives its job's
        # caller.
        Process.put(:"$mure_job_owner_mon", Process.monitor(driver))
        {result, times} = run_piece(m, plan, args, timeout)
        send(driver, {:mure_piece, ref, self(), result, times})
      end)

    state = %{state | pending: Map.delete(state.pending, piece.id)}
    state = %{state | inflight: Map.put(state.inflight, pid, {mon, piece, m.node, m.pid})}
    update_member(state, m.node, &%{&1 | inflight: &1.inflight + 1})
  end

  defp piece_args(plan, piece) do
    plan.args
    |> Enum.with_index()
    |> Enum.map(fn
      {{bin, type, shape}, i} ->
        row_bytes = Map.fetch!(plan.split, i)

        {binary_part(bin, piece.start * row_bytes, piece.rows * row_bytes), type,
         put_elem(shape, 0, piece.rows)}

      {%Shared{} = s, _i} ->
        s
    end)
  end

  # In the piece's own process: the member's copies of the shared tensors (uploaded on
  # first use, outside the piece's deadline), then the program with the piece's rows.
  defp run_piece(m, plan, args, timeout) do
    resolved =
      Enum.reduce_while(args, {:ok, []}, fn
        %Shared{} = s, {:ok, acc} ->
          case Member.tensor(m.pid, s, shared_timeout(m, s)) do
            {:ok, t} -> {:cont, {:ok, [t | acc]}}
            {:error, _} = e -> {:halt, e}
          end

        data, {:ok, acc} ->
          {:cont, {:ok, [data | acc]}}
      end)

    with {:ok, args} <- resolved do
      t0 = System.monotonic_time(:microsecond)

      opts = [outputs: :return, conn: m.conn, timeout: timeout]
      opts = if plan.device, do: Keyword.put(opts, :device, plan.device), else: opts
      result = Mure.run(plan.jit, Enum.reverse(args), opts)
      {result, {t0, System.monotonic_time(:microsecond)}}
    else
      error -> {error, nil}
    end
  catch
    # The member's process went away under us: the transport's failure, worth a retry.
    :exit, reason ->
      {{:error, %ConnectionError{reason: :closed, details: Exception.format_exit(reason)}}, nil}

    # A bug, not a member's failure: the job stops with it.
    kind, reason ->
      {{:error,
        %ClusterError{
          reason: :piece_crashed,
          details: Exception.format_banner(kind, reason, __STACKTRACE__)
        }}, nil}
  end

  # A member uploads a shared tensor on its first piece that needs it, outside the piece's
  # deadline but under one of its own: many times what the member's link should take.
  defp shared_timeout(m, %Shared{data: data}) do
    seconds =
      case m.speeds do
        %{upload_bytes_s: up} when up > 0 -> byte_size(data) / up
        _ -> byte_size(data) / 1.0e6
      end

    trunc(@deadline_floor_ms + 10_000 + @deadline_factor * seconds * 1000)
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
