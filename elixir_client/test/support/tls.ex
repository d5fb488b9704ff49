defmodule Mure.Test.Tls do
  @moduledoc false
  # TLS distribution in the tests: certificates made by scripts/tls_certs, peer BEAMs started
  # with inet_tls_dist, a recording TCP proxy, and what a peer does over TLS (the functions
  # marked "runs on a peer" are called there through :peer; this module is compiled, so the
  # peer has it).

  @script Path.expand("../../../scripts/tls_certs", __DIR__)

  @doc "A CA with `node` and `client` certificates, an expired `old` one and a `stranger` of another CA, in `dir`."
  def certs!(dir) do
    for args <- [
          [dir, "node", "client"],
          ["--expired", dir, "old"],
          ["--ca", "other", dir, "stranger"]
        ] do
      {out, status} = System.cmd(@script, args, stderr_to_stdout: true)

      if status != 0,
        do: raise("scripts/tls_certs #{Enum.join(args, " ")} failed (#{status}): #{out}")
    end

    %{
      dir: dir,
      ca: Path.join(dir, "ca.pem"),
      conf: fn name -> Path.join(dir, "#{name}.ssl_dist.conf") end,
      node_args: [
        "--tls-cert",
        Path.join(dir, "node.pem"),
        "--tls-key",
        Path.join(dir, "node.key"),
        "--tls-ca",
        Path.join(dir, "ca.pem")
      ]
    }
  end

  @doc "A :peer BEAM whose distribution is inet_tls with `optfile` (nil: no options at all)."
  def start_peer(prefix, optfile, extra \\ []) do
    tls =
      [~c"-proto_dist", ~c"inet_tls"] ++
        if(optfile, do: [~c"-ssl_dist_optfile", String.to_charlist(optfile)], else: [])

    Mure.TestSupport.start_peer(prefix, args: tls ++ extra)
  end

  @doc """
  Runs on a peer: connects to `node` (or launches one in Port mode with `start_opts`), uploads,
  adds, runs a program, downloads; returns what came back, or `{:error, reason}`.
  """
  def exercise({:connect, node}),
    do: with({:ok, conn} <- Mure.connect(node, connect_timeout: 5_000), do: work(conn))

  def exercise({:start, start_opts}) do
    Process.flag(:trap_exit, true)
    with {:ok, conn} <- Mure.start_link(start_opts), do: work(conn)
  end

  defp work(conn) do
    n = 300_000
    a = for i <- 1..n, into: <<>>, do: <<rem(i, 97) * 1.0::float-32-native>>
    b = for i <- 1..n, into: <<>>, do: <<rem(i, 13) * 1.0::float-32-native>>

    with {:ok, hello} <- Mure.hello(conn),
         {:ok, ta} <- Mure.upload(conn, a, {:f, 32}, {n}, shared_memory: false),
         {:ok, tb} <- Mure.upload(conn, b, {:f, 32}, {n}, shared_memory: false),
         {:ok, sum} <- Mure.add(ta, tb),
         {:ok, prod} <- Mure.multiply(sum, tb),
         {:ok, sum_bytes} <- Mure.download(sum, shared_memory: false),
         {:ok, prod_bytes} <- Mure.download(prod, shared_memory: false),
         {:ok, stats} <- Mure.stats(conn) do
      %{hello: hello, a: a, b: b, sum: sum_bytes, prod: prod_bytes, stats: stats}
    end
  end

  @doc "Runs on a peer: `Node.connect/1` to `node` and whether it succeeded."
  def connect(node), do: Node.connect(node)

  ## A TCP proxy that records both directions

  @doc """
  Listens on 127.0.0.1 and forwards one connection at a time to `port`, recording every byte in
  each direction; `recorded/1` returns them.
  """
  def start_proxy(port) do
    {:ok, listen} =
      :gen_tcp.listen(0, [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}])

    {:ok, own} = :inet.port(listen)
    {:ok, rec} = Agent.start_link(fn -> [] end)
    spawn_link(fn -> accept_loop(listen, port, rec) end)
    %{port: own, recorder: rec}
  end

  def recorded(%{recorder: rec}),
    do: rec |> Agent.get(& &1) |> Enum.reverse() |> IO.iodata_to_binary()

  defp accept_loop(listen, port, rec) do
    case :gen_tcp.accept(listen) do
      {:ok, client} ->
        {:ok, server} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false])
        spawn(fn -> pump(client, server, rec) end)
        spawn(fn -> pump(server, client, rec) end)
        accept_loop(listen, port, rec)

      {:error, _} ->
        :ok
    end
  end

  defp pump(from, to, rec) do
    case :gen_tcp.recv(from, 0) do
      {:ok, data} ->
        Agent.update(rec, &[data | &1])
        :ok = :gen_tcp.send(to, data)
        pump(from, to, rec)

      {:error, _} ->
        :gen_tcp.close(to)
    end
  end
end

defmodule Mure.Test.ProxyEpmd do
  @moduledoc false
  # An epmd module for a peer BEAM (`-epmd_module Elixir.Mure.Test.ProxyEpmd`): the same as
  # erl_epmd, except that the node named by `-mure_proxy NAME PORT` is found at PORT, a proxy.

  def start_link, do: :erl_epmd.start_link()
  def register_node(name, port), do: :erl_epmd.register_node(name, port)
  def register_node(name, port, family), do: :erl_epmd.register_node(name, port, family)
  def names(host), do: :erl_epmd.names(host)
  def address_please(name, host, family), do: :erl_epmd.address_please(name, host, family)
  def listen_port_please(name, host), do: :erl_epmd.listen_port_please(name, host)

  def port_please(name, ip), do: port_please(name, ip, :infinity)

  def port_please(name, ip, timeout) do
    case :init.get_argument(:mure_proxy) do
      {:ok, [[proxied, port]]} ->
        if to_charlist(name) == proxied,
          do: {:port, List.to_integer(port), 6},
          else: :erl_epmd.port_please(name, ip, timeout)

      _ ->
        :erl_epmd.port_please(name, ip, timeout)
    end
  end
end
