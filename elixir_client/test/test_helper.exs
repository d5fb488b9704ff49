# The suite runs against the real mure_node binary, a real epmd and real BEAM nodes.

exe = Mure.Launcher.default_executable()

unless File.regular?(exe) do
  raise """

  mure_node not found at #{exe}

  The Elixir client's tests run against the real node binary. Build it first:

      cmake -S .. -B ../build && cmake --build ../build -j

  or point MURE_NODE_BIN at a built mure_node.
  """
end

case System.cmd("epmd", ["-daemon"], stderr_to_stdout: true) do
  {_, 0} -> :ok
  {out, status} -> raise "could not start epmd (exit status #{status}): #{out}"
end

unless Node.alive?() do
  name = :"mure_test_#{System.unique_integer([:positive])}_#{System.pid()}@127.0.0.1"

  case Node.start(name, :longnames) do
    {:ok, _} ->
      :ok

    {:error, reason} ->
      raise "could not make the test BEAM a distributed node #{name}: #{inspect(reason)}"
  end
end

# Nodes launched by the suite log warnings and errors only (to stderr).
Application.put_env(:mure, :node_log_level, :warn)

# The multi-host cluster tests (test/cluster/) build network namespaces with scripts/cluster,
# which needs root and iproute2: where that cannot be done they are excluded, loudly.
cluster_script = Path.expand("../../scripts/cluster", __DIR__)

netns_exclude =
  case System.cmd(cluster_script, ["check"], stderr_to_stdout: true) do
    {_, 0} ->
      []

    {out, _} ->
      IO.puts("""

      ##########################################################################################
      NOTE: the multi-host cluster tests (test/cluster/, tag :netns) are SKIPPED in this run:
      scripts/cluster cannot build network namespaces on this machine:
        #{String.trim(out)}
      They need root, iproute2 (ip, tc) and a kernel with network namespaces, veth and tbf.
      ##########################################################################################
      """)

      [:netns]
  end

# The aarch64 node (test/cluster/aarch64_test.exs) runs under qemu-aarch64: it needs the node
# that scripts/cross_aarch64 builds (scripts/test runs it) and Debian's qemu-user.
aarch64_node =
  Path.join(
    System.get_env("MURE_AARCH64_DIR") || Path.expand("../../build-aarch64", __DIR__),
    "mure_node"
  )

aarch64_exclude =
  case {File.regular?(aarch64_node), System.find_executable("qemu-aarch64")} do
    {true, qemu} when is_binary(qemu) ->
      []

    {built, _} ->
      IO.puts("""

      ##########################################################################################
      NOTE: the aarch64 node tests (test/cluster/aarch64_test.exs, tag :aarch64) are SKIPPED in
      this run: #{if built, do: "qemu-aarch64 is not installed (Debian's qemu-user)", else: "#{aarch64_node} is not built"}.
      scripts/cross_aarch64 installs the cross compiler and qemu-user and builds it.
      ##########################################################################################
      """)

      [:aarch64]
  end

ExUnit.start(timeout: 120_000, exclude: netns_exclude ++ aarch64_exclude)

unless System.get_env("MURE_LARGE_TESTS") do
  IO.puts(:stderr, """
  NOTE: the 2 GiB transfer test (test/mure_transfer_test.exs) is SKIPPED in this run: it needs
  ~5 GiB of memory and ~30 s. Run it with MURE_LARGE_TESTS=1 (scripts/test sets it).
  """)
end
