defmodule Mix.Tasks.Mure.Cluster do
  @shortdoc "Finds the mure nodes on some hosts, measures them and prints the cluster's status"

  @moduledoc """
  Finds the mure nodes registered with epmd on the given hosts, measures each (link and
  compute, as `Mure.Cluster` does when a member joins) and prints the cluster's status as a
  table.

      mix mure.cluster 10.0.0.11 10.0.0.12 10.0.0.13
      mix mure.cluster --node mure@10.0.0.21 --prefix mure --wait 5000

  ## Options

    * `--node NODE` - a node to join as well (repeatable)
    * `--prefix P` - the epmd names to join (default `mure`)
    * `--wait MS` - how long to wait for members to join and be measured (default 10000)
    * `--expect N` - stop waiting once N members are ready
    * `--name NAME` - this BEAM's node name when it is not distributed yet (default
      `status_of_mure_<os pid>@127.0.0.1`: not under the default prefix, so that no cluster
      takes it for a member)
    * `--cookie-file F` - read the cookie from this file (default: the BEAM's own,
      `~/.erlang.cookie`); the cookie is never taken on the command line

  Nodes that epmd lists but that could not be joined are printed with the reason (most
  often a different cookie: give the nodes' cookie with `--cookie-file`).
  Exits with status 1 when no member joined.
  """

  use Mix.Task

  @switches [
    node: :keep,
    prefix: :string,
    wait: :integer,
    expect: :integer,
    name: :string,
    cookie_file: :string
  ]

  @impl true
  def run(argv) do
    {opts, hosts, invalid} = OptionParser.parse(argv, strict: @switches)

    if invalid != [],
      do:
        Mix.raise("mure.cluster: unknown options #{inspect(invalid)} (see mix help mure.cluster)")

    nodes = opts |> Keyword.get_values(:node) |> Enum.map(&String.to_atom/1)

    if hosts == [] and nodes == [],
      do: Mix.raise("mure.cluster: give at least one host or --node (see mix help mure.cluster)")

    Mix.Task.run("app.start")
    start_distribution!(opts)

    {:ok, cluster} =
      Mure.Cluster.start_link(
        hosts: hosts,
        nodes: nodes,
        name_prefix: opts[:prefix] || "mure",
        discover_interval: 500
      )

    wait = opts[:wait] || 10_000

    case opts[:expect] do
      nil -> Process.sleep(wait)
      n -> Mure.Cluster.await_members(cluster, n, wait)
    end

    # Members still joining are shown as such; give a started probe a moment to finish.
    status = Mure.Cluster.status(cluster)
    Mix.shell().info(Mure.Cluster.format_status(status))
    Mure.Cluster.stop(cluster)

    if Enum.all?(status.members, &(&1.state != :ready)),
      do: exit({:shutdown, 1})
  end

  defp start_distribution!(opts) do
    unless Node.alive?() do
      {_, 0} = System.cmd("epmd", ["-daemon"])
      name = opts[:name] || "status_of_mure_#{System.pid()}@127.0.0.1"

      case Node.start(String.to_atom(name), :longnames) do
        {:ok, _} ->
          :ok

        {:error, reason} ->
          Mix.raise("mure.cluster: could not start distribution as #{name}: #{inspect(reason)}")
      end
    end

    if file = opts[:cookie_file] do
      case File.read(file) do
        {:ok, cookie} ->
          Node.set_cookie(cookie |> String.trim() |> String.to_atom())

        {:error, reason} ->
          Mix.raise("mure.cluster: cannot read #{file}: #{:file.format_error(reason)}")
      end
    end
  end
end
