defmodule Mure.Test.ClusterPeer do
  @moduledoc false
  # Mure.Cluster run on a :peer BEAM (test/cluster/netns_tls_test.exs: a peer whose distribution
  # is inet_tls coordinates the TLS nodes of `scripts/cluster up --tls`). Every function here
  # runs on the peer, called through :peer.call; operands are made there from their seeds
  # (Mure.TestSupport.exact_matrix/3), and large results come back as a digest.

  import Mure.TestSupport, only: [exact_matrix: 3]

  @doc "Starts a Mure.Cluster over `hosts` that outlives the call; its pid once it has `count` members."
  def start(hosts, count) do
    {:ok, _} = Application.ensure_all_started(:mure)
    caller = self()

    holder =
      spawn(fn ->
        {:ok, cluster} =
          Mure.Cluster.start_link(
            hosts: hosts,
            discover_interval: 500,
            connect_opts: [shared_memory: false]
          )

        send(caller, {:cluster, cluster})
        Process.sleep(:infinity)
      end)

    receive do
      {:cluster, cluster} ->
        :ok = Mure.Cluster.await_members(cluster, count, 60_000)
        {cluster, holder}
    after
      60_000 -> raise "Mure.Cluster did not start"
    end
  end

  @doc "The members' node names."
  def members(cluster), do: Enum.map(Mure.Cluster.members(cluster), & &1.node)

  def status(cluster), do: Mure.Cluster.status(cluster)

  def await_members(cluster, count), do: Mure.Cluster.await_members(cluster, count, 60_000)

  @doc "The map job of the tests: |x * x - x|."
  def square_sub_abs(x),
    do: x |> Mure.Expr.multiply(x) |> Mure.Expr.subtract(x) |> Mure.Expr.abs()

  @doc "A split matmul and a split map job; their results (binaries)."
  def jobs(cluster, {m, k, n}, {rows, cols}) do
    a = {exact_matrix(m, k, 3), {:f, 32}, {m, k}}
    b = {exact_matrix(k, n, 5), {:f, 32}, {k, n}}
    x = {exact_matrix(rows, cols, 7), {:f, 32}, {rows, cols}}

    with {:ok, dot} <- Mure.Cluster.dot(cluster, a, b),
         {:ok, map} <- Mure.Cluster.run(cluster, Mure.jit(&__MODULE__.square_sub_abs/1), [x]) do
      {:ok, dot, map}
    end
  end

  @doc """
  The product of an `m` x `k` and a shared `k` x `k` matrix in pieces of 50 rows, `victim`
  killed with `scripts/cluster kill I` once it has returned a piece while the job is less than
  half done (Mure.TestSupport.dot_with_fault/6); the result's size and MD5, and the rows each
  member did in the warm-up that put the shared operand on all of them.
  """
  def dot_killing(cluster, {m, k}, script, victim, index) do
    {:ok, shared} = Mure.Cluster.share(cluster, {exact_matrix(k, k, 5), {:f, 32}, {k, k}})

    {:ok, _} =
      Mure.Cluster.dot(cluster, {exact_matrix(30, k, 1), {:f, 32}, {30, k}}, shared, piece_rows: 1)

    warm = Map.new(Mure.Cluster.status(cluster).members, &{&1.node, &1.work.rows})
    a = {exact_matrix(m, k, 3), {:f, 32}, {m, k}}

    kill = fn ->
      {out, 0} = System.cmd(script, ["kill", "#{index}"], stderr_to_stdout: true)
      out
    end

    case Mure.TestSupport.dot_with_fault(cluster, a, shared, victim, kill, 120_000) do
      {:ok, bin} -> {:ok, byte_size(bin), :erlang.md5(bin), warm}
      other -> other
    end
  end
end
