# bench/tls.exs — issue 16's figures: mure and BEAM-to-BEAM over TLS distribution against the same
# over clear TCP, measured in the same run. Run by scripts/bench (after its other passes); standalone:
#   cd elixir_client && MIX_ENV=bench elixir --name b_$$@127.0.0.1 -S mix run --no-compile ../bench/tls.exs -- [--quick] [--out FILE]
#
# The measuring happens in :peer BEAMs: two with `-proto_dist inet_tls -ssl_dist_optfile F`
# (certificates from scripts/tls_certs in a temporary directory) and two with clear distribution.
# In each kind, one BEAM launches its own mure_node in Port mode (with tls_cert/tls_key/tls_ca for
# the TLS kind) and times `Mure.stats/1` and upload + download through the client (shared memory
# off: the bytes go over the distribution connection), and the other times the same bytes pushed
# to and pulled from the first with GenServer-style calls (OTP's own inet_tls_dist: the anchor).
# Prints a markdown section and appends it to FILE when given. Exits non-zero when a measurement
# breaks; never because a goal is not met.

{opts, _, _} = OptionParser.parse(System.argv() -- ["--"], strict: [quick: :boolean, out: :string])
quick = Keyword.get(opts, :quick, false)
root = Path.expand("..", __DIR__)
mib = 1024 * 1024
sizes = if quick, do: [16 * mib], else: [16 * mib, 256 * mib]
reps = if quick, do: 3, else: 5
calls = if quick, do: 500, else: 2000

# What the peers run: compiled here, its object code loaded into each peer.
{:module, worker, worker_bin, _} =
  defmodule Bench.TlsWorker do
    @moduledoc false
    defp median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))
    defp secs(f), do: (fn {us, _} -> us / 1.0e6 end).(:timer.tc(f))

    # Runs on a peer: launch a node with `start_opts`, time round trips and transfers.
    def mure(start_opts, sizes, reps, calls) do
      Process.flag(:trap_exit, true)
      {:ok, conn} = Mure.start_link(start_opts)
      for _ <- 1..100, do: Mure.stats!(conn)
      rt = for _ <- 1..calls, do: secs(fn -> Mure.stats!(conn) end)

      xfer =
        for bytes <- sizes, into: %{} do
          data = :binary.copy(<<1, 2, 3, 4, 5, 6, 7, 8>>, div(bytes, 8))
          # Once untimed: the node's buffers and this BEAM's allocator warm.
          t = Mure.upload!(conn, data, {:u, 8}, {bytes}, shared_memory: false)
          ^data = Mure.download!(t, shared_memory: false)
          Mure.free(t)

          times =
            for _ <- 1..reps do
              {up, t} = :timer.tc(fn -> Mure.upload!(conn, data, {:u, 8}, {bytes}, shared_memory: false) end)
              {down, back} = :timer.tc(fn -> Mure.download!(t, shared_memory: false) end)
              if byte_size(back) != bytes, do: raise("download of #{bytes} bytes returned #{byte_size(back)}")
              Mure.free(t)
              {up / 1.0e6, down / 1.0e6}
            end

          {bytes, times}
        end

      %{rt_us: median(rt) * 1.0e6, xfer: xfer, hello: Mure.hello!(conn)}
    end

    # Runs on a peer: a process that keeps the last binary pushed and returns it when pulled.
    def serve do
      parent = self()

      spawn(fn ->
        Process.register(self(), :bench_tls_store)
        send(parent, :registered)
        loop(<<>>)
      end)

      receive do
        :registered -> :ok
      end
    end

    defp loop(kept) do
      receive do
        {:push, from, ref, bin} ->
          send(from, {ref, byte_size(bin)})
          loop(bin)

        {:pull, from, ref} ->
          send(from, {ref, kept})
          loop(kept)
      end
    end

    defp call(node, msg_fun) do
      ref = make_ref()
      send({:bench_tls_store, node}, msg_fun.(ref))

      receive do
        {^ref, reply} -> reply
      after
        120_000 -> raise "no reply from #{node}"
      end
    end

    # Runs on a peer: push and pull each size to `node`'s store, `reps` times.
    def beam(node, sizes, reps) do
      true = Node.connect(node)
      :pong = Node.ping(node)

      for bytes <- sizes, into: %{} do
        data = :binary.copy(<<1, 2, 3, 4, 5, 6, 7, 8>>, div(bytes, 8))
        ^bytes = call(node, &{:push, self(), &1, data})

        times =
          for _ <- 1..reps do
            {up, ^bytes} = :timer.tc(fn -> call(node, &{:push, self(), &1, data}) end)
            {down, back} = :timer.tc(fn -> call(node, &{:pull, self(), &1}) end)
            if byte_size(back) != bytes, do: raise("pull of #{bytes} bytes returned #{byte_size(back)}")
            {up / 1.0e6, down / 1.0e6}
          end

        {bytes, times}
      end
    end
  end

dir = Path.join(System.tmp_dir!(), "mure_bench_tls_#{System.unique_integer([:positive])}")
File.mkdir_p!(dir)
{_, 0} = System.cmd(Path.join(root, "scripts/tls_certs"), [dir, "node", "beam"], stderr_to_stdout: true)
conf = Path.join(dir, "beam.ssl_dist.conf")
node_tls = ["--tls-cert", Path.join(dir, "node.pem"), "--tls-key", Path.join(dir, "node.key"), "--tls-ca", Path.join(dir, "ca.pem")]

paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

start_peer = fn prefix, tls? ->
  args = paths ++ if(tls?, do: [~c"-proto_dist", ~c"inet_tls", ~c"-ssl_dist_optfile", String.to_charlist(conf)], else: [])
  name = :"#{prefix}_#{System.unique_integer([:positive])}"

  {:ok, peer, node} =
    :peer.start(%{name: name, host: ~c"127.0.0.1", longnames: true, connection: :standard_io, args: args, wait_boot: 60_000})

  {:module, _} = :peer.call(peer, :code, :load_binary, [worker, ~c"bench/tls.exs", worker_bin], 30_000)
  {peer, node}
end

measure = fn tls? ->
  kind = if tls?, do: "tls", else: "clear"
  {a, a_node} = start_peer.("bench_#{kind}_a", tls?)
  {b, _} = start_peer.("bench_#{kind}_b", tls?)
  start_opts = [log_level: :warn, memory_limit: 2 * 1024 * mib, max_message: 1024 * mib, extra_args: if(tls?, do: node_tls, else: [])]
  m = :peer.call(a, worker, :mure, [start_opts, sizes, reps, calls], 600_000)
  :ok = :peer.call(a, worker, :serve, [], 30_000)
  beam = :peer.call(b, worker, :beam, [a_node, sizes, reps], 600_000)
  :peer.stop(a)
  :peer.stop(b)
  Map.put(m, :beam, beam)
end

clear = measure.(false)
tls = measure.(true)
File.rm_rf!(dir)

median = fn xs -> Enum.sort(xs) |> Enum.at(div(length(xs), 2)) end
fmt = fn x, d -> :erlang.float_to_binary(x * 1.0, decimals: d) end
met = fn ok -> if ok, do: "met", else: "**not met**" end
# Up + down of `bytes` in GB/s: the median over reps of (2 × bytes) / (up + down).
gbs = fn times, bytes -> median.(Enum.map(times, fn {u, d} -> 2 * bytes / (u + d) / 1.0e9 end)) end

rows =
  for bytes <- sizes do
    mc = gbs.(clear.xfer[bytes], bytes)
    mt = gbs.(tls.xfer[bytes], bytes)
    bc = gbs.(clear.beam[bytes], bytes)
    bt = gbs.(tls.beam[bytes], bytes)
    size = "#{div(bytes, mib)} MiB"

    [
      "| mure up + down #{size}, client (GB/s) | #{fmt.(mc, 2)} | #{fmt.(mt, 2)} | #{fmt.(mt / mc, 2)} | ≥ 0.8: #{met.(mt / mc >= 0.8)} |",
      "| BEAM→BEAM push + pull #{size} (GB/s; OTP's inet_tls_dist) | #{fmt.(bc, 2)} | #{fmt.(bt, 2)} | #{fmt.(bt / bc, 2)} | (the anchor) |"
    ]
  end
  |> List.flatten()

{version, _} = System.cmd("openssl", ["version"], stderr_to_stdout: true)

lines =
  [
    "## 11. TLS distribution (issue 16)",
    "",
    "The same work over clear TCP and over TLS distribution, same run: peers started with `-proto_dist inet_tls` and " <>
      "certificates from scripts/tls_certs, each launching its own node in Port mode (TLS: `--tls-cert/--tls-key/--tls-ca`); " <>
      "transfers with shared memory off. TLS negotiated by OTP 25's inet_tls_dist defaults (TLS 1.2, ECDHE-ECDSA-AES256-GCM); " <>
      "#{String.trim(version)} on the node. Medians of #{reps} (round trips: of #{calls} calls).",
    "",
    "| figure | clear | TLS | TLS / clear | goal |",
    "|---|---|---|---|---|",
    "| mure tiny round trip, `Mure.stats/1` (µs) | #{fmt.(clear.rt_us, 1)} | #{fmt.(tls.rt_us, 1)} | #{fmt.(tls.rt_us / clear.rt_us, 2)} | — |"
  ] ++ rows ++ [""]

text = Enum.join(lines, "\n") <> "\n"
IO.puts(text)
if opts[:out], do: File.write!(opts[:out], text, [:append])
