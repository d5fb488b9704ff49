defmodule Mure.Reliability.AccessTest do
  # Who may talk to the node: the cookie handshake refuses every wrong digest (and counts
  # and logs it without flooding), the cookie never comes from argv, the node refuses to
  # start without one and warns about a cookie file others can read, and it listens on
  # loopback unless told otherwise.
  use ExUnit.Case, async: false

  @moduletag :capture_log
  @moduletag timeout: 180_000

  import Mure.TestSupport

  alias Mure.{RawDist, Reliability}

  @attempts 1_000

  test "#{@attempts} wrong-cookie handshakes: all refused, counted, logged without flooding; the right cookie still works" do
    # 1,000 failures from one address, 100 at a time: this test is about refusing and logging
    # them, so the per-address limits (tested in dist_limits_test.exs) are out of its way.
    node =
      Reliability.launch_logged([
        "--max-failed-handshakes",
        "0",
        "--max-pending-handshakes-per-source",
        "256"
      ])

    on_exit(fn -> Reliability.stop_logged(node) end)
    {:ok, conn} = Mure.connect(node.node)
    refused_before = Mure.stats!(conn).refused_handshakes

    {ms, outcomes} =
      Reliability.timed(fn ->
        # 100 clients at a time: a refused handshake's socket is closed by the node's reaper,
        # up to a second later (see the report), so each attempt may wait that long.
        1..@attempts
        |> Enum.chunk_every(div(@attempts, 100))
        |> Enum.map(fn chunk ->
          Task.async(fn ->
            for _ <- chunk, do: RawDist.connect(node.node, wrong_digest: true, timeout: 5_000)
          end)
        end)
        |> Task.await_many(120_000)
        |> List.flatten()
      end)

    accepted = Enum.count(outcomes, &match?({:ok, _}, &1))
    refused = Enum.count(outcomes, &(&1 == {:error, :refused}))
    assert accepted == 0, "#{accepted} handshakes with a wrong cookie were accepted"

    assert refused == @attempts,
           "not refused cleanly: #{inspect(Enum.frequencies(outcomes) |> Map.drop([{:error, :refused}]))}"

    # The right cookie still works, over a raw client and over the BEAM's own connection.
    {:ok, raw} = RawDist.connect(node.node)
    assert {:ok, %{protocol: 1}} = RawDist.call(raw, :hello)
    RawDist.close(raw)
    assert {:ok, %{protocol: 1}} = Mure.hello(conn)

    assert Mure.stats!(conn).refused_handshakes - refused_before == @attempts

    # One more refusal after the rate limit's interval: its line reports the suppressed ones.
    Process.sleep(2_100)
    assert {:error, :refused} = RawDist.connect(node.node, wrong_digest: true)
    Process.sleep(200)

    log = File.read!(node.stderr)
    lines = String.split(log, "\n", trim: true)
    refusals = Enum.filter(lines, &(&1 =~ "refused a connection"))

    suppressed =
      refusals
      |> Enum.map(fn line ->
        case Regex.run(~r/\((\d+) more suppressed\)/, line) do
          [_, n] -> String.to_integer(n)
          nil -> 0
        end
      end)
      |> Enum.sum()

    # About one line per 2 s of refusals, each naming how many it stands for.
    max_lines = ceil(ms / 2_000) + 2
    assert length(refusals) >= 2

    assert length(refusals) <= max_lines,
           "#{length(refusals)} refusal lines for #{@attempts + 1} refusals in #{round(ms)} ms"

    assert length(refusals) + suppressed == @attempts + 1,
           "the log accounts for #{length(refusals) + suppressed} refusals"

    assert Enum.all?(refusals, &(&1 =~ "wrong cookie"))

    assert length(lines) < 40,
           "the node logged #{length(lines)} lines:\n#{Enum.take(lines, 20) |> Enum.join("\n")}"

    Mure.stop(conn)

    Reliability.record(
      :faults,
      @attempts + 1,
      "wrong-cookie handshakes (#{round(ms)} ms, #{length(refusals)} log lines)"
    )
  end

  test "the node will not start without a cookie (exit status 2)" do
    home = Reliability.tmp_dir("nohome")
    env = [{"HOME", home}, {"MURE_COOKIE", nil}]
    name = "mure_nocookie_#{System.unique_integer([:positive])}@127.0.0.1"

    {status, err} = Reliability.run_node(["--name", name], env)
    assert status == 2, "exit status #{status}: #{err}"
    assert err =~ "no cookie"
    refute short_name(String.to_atom(name)) in epmd_names()

    # An empty cookie file, a cookie with spaces, an empty stdin line in Port mode.
    empty = Path.join(home, "empty")
    File.write!(empty, "")
    File.chmod!(empty, 0o600)
    assert {2, _} = Reliability.run_node(["--name", name, "--cookie-file", empty], env)
    spaced = Path.join(home, "spaced")
    File.write!(spaced, "two words\n")
    File.chmod!(spaced, 0o600)
    assert {2, _} = Reliability.run_node(["--name", name, "--cookie-file", spaced], env)

    assert {2, _} =
             Reliability.run_node(
               ["--name", name, "--cookie-file", Path.join(home, "missing")],
               env
             )

    assert {2, _} = Reliability.run_node(["--name", name, "--port-mode"], env, "")
  end

  test "a cookie on the command line or in the config file is refused" do
    name = "mure_argv_#{System.unique_integer([:positive])}@127.0.0.1"
    secret = "argv-secret-#{System.unique_integer([:positive])}"

    for args <- [
          ["--name", name, "--cookie", secret],
          ["--name", name, "--cookie=#{secret}"],
          ["--name", name, "--setcookie", secret],
          ["--cookie", secret, "--name", name]
        ] do
      {status, err} = Reliability.run_node(args)
      assert status == 2, "#{inspect(args)}: exit status #{status}"
      assert err =~ "refused"
      refute err =~ secret, "the node echoed the cookie given on its command line"
    end

    config = Path.join(Reliability.tmp_dir("conf"), "mure.conf")
    File.write!(config, "cookie = #{secret}\n")
    {status, err} = Reliability.run_node(["--name", name, "--config", config])
    assert status == 2
    refute err =~ secret
    refute short_name(String.to_atom(name)) in epmd_names()
  end

  test "a cookie file others can read is warned about; mode 600 is not" do
    dir = Reliability.tmp_dir("cookiefile")
    cookie = Atom.to_string(Node.get_cookie())

    for {mode, warned} <- [{0o644, true}, {0o640, true}, {0o600, false}, {0o400, false}] do
      file = Path.join(dir, "cookie_#{Integer.to_string(mode, 8)}")
      File.write!(file, cookie <> "\n")
      File.chmod!(file, mode)
      name = "mure_cf_#{System.unique_integer([:positive])}@127.0.0.1"
      node = Reliability.launch_plain(["--name", name, "--cookie-file", file])
      stderr = File.read!(node.stderr)

      # It started, with this cookie: a client holding it gets in.
      assert {:ok, raw} = RawDist.connect(String.to_atom(name), cookie: cookie)
      RawDist.close(raw)
      Reliability.stop_plain(node)

      if warned do
        assert stderr =~ "can be read by other users",
               "no warning for a cookie file of mode #{Integer.to_string(mode, 8)}"
      else
        refute stderr =~ "can be read by other users"
      end

      refute stderr =~ cookie, "the node logged its cookie"
    end
  end

  test "the node listens on loopback unless told otherwise" do
    conn = start_supervised!({Mure, []})
    %{os_pid: os_pid, node: node} = Mure.info(conn)
    {:ok, port} = RawDist.port_of(node)
    assert Reliability.listening_sockets(os_pid) == [{"127.0.0.1", port}]

    wide = Reliability.launch_logged(["--listen", "0.0.0.0"])
    on_exit(fn -> Reliability.stop_logged(wide) end)
    {:ok, wide_port} = RawDist.port_of(wide.node)
    assert Reliability.listening_sockets(wide.os_pid) == [{"0.0.0.0", wide_port}]
    assert File.read!(wide.stderr) =~ "not loopback"
  end
end
