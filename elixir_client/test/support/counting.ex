defmodule Mure.Test.Counting do
  @moduledoc false
  # The round trips of what a test runs on a connection: the programs Mure.Compiler sends
  # on it (its telemetry event [:mure, :compiler, :program]) and the requests the node
  # counts (its own `requests` counter, less the stats requests that read it).

  # {fun's result, the programs it sent on `conn`}.
  def programs(conn, fun), do: Mure.Compiler.programs_sent(conn, fun)

  # {fun's result, the requests the node received while it ran}.
  def requests(conn, fun) do
    # The stats request that reads the counter is counted too: measured, then left out.
    overhead = -count(conn) + count(conn)
    before = count(conn)
    result = fun.()
    {result, count(conn) - before - overhead}
  end

  # {fun's result, programs sent, requests received}.
  def round_trips(conn, fun) do
    {{result, programs}, requests} = requests(conn, fn -> programs(conn, fun) end)
    {result, programs, requests}
  end

  defp count(conn), do: Mure.stats!(conn).requests
end
