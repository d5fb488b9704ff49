defmodule Mure.Cluster.Job.Piece do
  @moduledoc false
  # One piece of a Mure.Cluster.Job: its rows of the split arguments, its deadline, its run
  # on a member (in a process of its own), and what its failure means for the job.

  alias Mure.{ClusterError, ConnectionError, Error}
  alias Mure.Cluster.{Member, Shared}

  # A piece may take this many times its expected time (plus @deadline_floor_ms) before its
  # member counts as failed for the job.
  @deadline_factor 6
  @deadline_floor_ms 3_000

  # The piece's deadline on member `m`: its rows at the member's pace, plus a round trip.
  def timeout(m, piece) do
    expected_ms = piece.rows * m.row_time * 1000 + (m.speeds[:rtt_ms] || 1)
    trunc(@deadline_floor_ms + @deadline_factor * expected_ms * m.slack)
  end

  def args(plan, piece) do
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
  def run(m, plan, args, timeout) do
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

  # Errors that another member (or the same one, later) may not have: the transport, a full
  # queue, memory, a handle lost with a connection.
  def retryable?(%ConnectionError{}), do: true
  def retryable?(%Error{kind: kind}), do: kind in [:overloaded, :out_of_memory, :unknown_handle]
  def retryable?(_), do: false

  def busy?(%Error{kind: kind}), do: kind in [:overloaded, :out_of_memory]
  def busy?(_), do: false

  def short_reason(%ConnectionError{reason: r}), do: r
  def short_reason(%Error{kind: k}), do: k
  def short_reason(e), do: inspect(e, limit: 3)
end
