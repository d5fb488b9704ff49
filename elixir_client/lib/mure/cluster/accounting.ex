defmodule Mure.Cluster.Accounting do
  @moduledoc false
  # What a job's report does to a member: work done, and the speeds the next jobs are split by
  # (re-measured for matrix products, learned per program otherwise).

  alias Mure.Cluster.Job

  @doc false
  def account(m, r, report) do
    work = m.work

    work = %{
      work
      | jobs: work.jobs + 1,
        pieces: work.pieces + r.pieces,
        rows: work.rows + r.rows,
        flop: work.flop + if(report.kind == :gemm, do: r.work, else: 0),
        bytes_in: work.bytes_in + r.in_bytes,
        bytes_out: work.bytes_out + r.out_bytes,
        busy_us: work.busy_us + r.busy_us
    }

    m = %{m | work: work}

    %{
      m
      | speeds: remeasure(m.speeds, r, report),
        learned: learn(m.learned, r, report, m.speeds)
    }
  end

  # Seconds per row of this job's program on this member, from the job's real time (while
  # the member had work), merged with what earlier jobs of the same program took, each
  # weighted by how long it was measured (up to @learn_weight_us in all, so that later jobs
  # still move the figure). A job whose pieces were too small to measure rows teaches
  # nothing (see measurable?/3).
  @max_learned 128
  @learn_weight_us 10_000_000
  defp learn(learned, r, report, speeds) do
    key = report.plan.key
    old = Map.get(learned, key)
    prior = if old, do: elem(old, 0), else: Job.row_time(speeds, report.plan)

    if report.ok and r.pieces >= 2 and r.busy_us >= 20_000 and measurable?(r, prior) do
      spr = r.busy_us / 1.0e6 / r.rows

      entry =
        case old do
          {old_spr, weight, _at} ->
            total = weight + r.busy_us

            {(old_spr * weight + spr * r.busy_us) / total, min(total, @learn_weight_us),
             System.monotonic_time()}

          nil ->
            {spr, min(r.busy_us, @learn_weight_us), System.monotonic_time()}
        end

      learned = Map.put(learned, key, entry)

      if map_size(learned) > @max_learned,
        do:
          learned
          |> Enum.sort_by(fn {_, {_, _, at}} -> -at end)
          |> Enum.take(@max_learned)
          |> Map.new(),
        else: learned
    else
      learned
    end
  end

  # Whether a job's time says anything about its rows: its pieces were expected (at `spr`
  # seconds per row) to take at least @min_piece_work_s each. Below that a piece's time is
  # its fixed costs - the round trip, a CPU quota's throttling, a wake-up - and a member
  # timed on one-row pieces would look a hundred times slower than it is.
  @min_piece_work_s 0.005
  defp measurable?(r, spr), do: r.rows > 0 and r.rows / r.pieces * spr >= @min_piece_work_s

  # After a matrix product (whose work the model knows exactly: 2mkn flops), corrects the
  # figure that set the member's pace (its sgemm rate, or its link) by how far the job's real
  # time was from the estimate; halfway, so that one noisy job does not throw the estimate
  # off. Other programs' real times are kept per program (learn/3) instead: how much
  # arithmetic an element takes is not known to the model.
  defp remeasure(nil, _r, _report), do: nil

  defp remeasure(speeds, r, report) do
    plan = report.plan

    row_time = Job.row_time(speeds, plan)

    if plan.kind == :gemm and r.pieces >= 2 and r.busy_us >= 50_000 and measurable?(r, row_time) and
         report.ok do
      predicted = r.rows * row_time + r.pieces * speeds.rtt_ms / 1000
      factor = (r.busy_us / 1.0e6 / predicted) |> max(0.1) |> min(10.0)
      scale = (1 + 1 / factor) / 2

      link = plan.in_row / speeds.upload_bytes_s + plan.out_row / speeds.download_bytes_s
      rate_key = if plan.kind == :gemm, do: :gemm_flops_s, else: :elementwise_bytes_s
      compute = plan.work_row / Map.fetch!(speeds, rate_key)

      speeds =
        if compute >= link,
          do: Map.update!(speeds, rate_key, &(&1 * scale)),
          else: %{
            speeds
            | upload_bytes_s: speeds.upload_bytes_s * scale,
              download_bytes_s: speeds.download_bytes_s * scale
          }

      %{speeds | source: :work, measured_at: DateTime.utc_now()}
    else
      speeds
    end
  end
end
