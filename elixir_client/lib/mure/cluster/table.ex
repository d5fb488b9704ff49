defmodule Mure.Cluster.Table do
  @moduledoc false
  # Mure.Cluster.status/1 as text for a person: one line per member, then the members that
  # left and what each host's epmd said.

  @columns [
    {"node", :left},
    {"state", :left},
    {"devices", :left},
    {"rtt ms", :right},
    {"up MB/s", :right},
    {"down MB/s", :right},
    {"GFLOP/s", :right},
    {"GB/s", :right},
    {"measured", :left},
    {"learned", :right},
    {"jobs", :right},
    {"pieces", :right},
    {"GFLOP done", :right},
    {"MB moved", :right},
    {"failures", :right},
    {"last failure", :left}
  ]

  @spec format(map()) :: String.t()
  def format(%{members: members, departed: departed, hosts: hosts, jobs: jobs} = status) do
    rows = Enum.map(members, &member_row/1)

    member_table =
      if rows == [], do: "no members\n", else: table(Enum.map(@columns, &elem(&1, 0)), rows)

    departed_lines =
      for d <- departed do
        "  #{d.node}: left #{Calendar.strftime(d.left_at, "%H:%M:%S")} UTC (#{d.last_failure}), " <>
          "#{d.failures} failure(s)\n"
      end

    refused_lines =
      for r <- Map.get(status, :refused, []) do
        "  #{r.node}: #{r.reason} (#{r.attempts} attempt(s) since " <>
          "#{Calendar.strftime(r.since, "%H:%M:%S")} UTC)\n"
      end

    host_lines =
      for h <- hosts do
        case h do
          %{reachable: true, names: names} ->
            "  #{h.host}: epmd lists #{Enum.join(names, ", ")}\n"

          %{reachable: false, error: e} ->
            "  #{h.host}: epmd unreachable (#{inspect(e)})\n"

          _ ->
            "  #{h.host}: not asked yet\n"
        end
      end

    IO.iodata_to_binary([
      member_table,
      if(departed_lines == [], do: [], else: ["departed:\n" | departed_lines]),
      if(refused_lines == [], do: [], else: ["could not join:\n" | refused_lines]),
      if(host_lines == [], do: [], else: ["hosts:\n" | host_lines]),
      "jobs: #{jobs.done} done, #{jobs.failed} failed, #{jobs.pieces_rerun} pieces re-run\n"
    ])
  end

  defp member_row(m) do
    s = m.speeds
    w = m.work

    speed =
      if s,
        do: [
          num(s.rtt_ms, 2),
          num(s.upload_bytes_s / 1.0e6, 1),
          num(s.download_bytes_s / 1.0e6, 1),
          num(s.gemm_flops_s / 1.0e9, 1),
          num(s.elementwise_bytes_s / 1.0e9, 2),
          "#{s.source} #{Calendar.strftime(s.measured_at, "%H:%M:%S")}"
        ],
        else: List.duplicate("-", 6)

    [Atom.to_string(m.node), Atom.to_string(m.state), Enum.map_join(m.devices, ",", &to_string/1)] ++
      speed ++
      [
        Integer.to_string(m.programs_learned),
        Integer.to_string(w.jobs),
        Integer.to_string(w.pieces),
        num(w.flop / 1.0e9, 1),
        num((w.bytes_in + w.bytes_out) / 1.0e6, 1),
        Integer.to_string(m.failures),
        m.last_failure || "-"
      ]
  end

  defp num(x, digits), do: :erlang.float_to_binary(x * 1.0, decimals: digits)

  defp table(header, rows) do
    widths =
      [header | rows]
      |> Enum.zip_with(fn col -> col |> Enum.map(&String.length/1) |> Enum.max() end)

    aligns = Enum.map(@columns, &elem(&1, 1))

    line = fn cells ->
      [
        Enum.zip([cells, widths, aligns])
        |> Enum.map_join("  ", fn
          {c, w, :left} -> String.pad_trailing(c, w)
          {c, w, :right} -> String.pad_leading(c, w)
        end)
        |> String.trim_trailing(),
        "\n"
      ]
    end

    IO.iodata_to_binary([line.(header) | Enum.map(rows, line)])
  end
end
