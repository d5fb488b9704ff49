defmodule Mure.Reliability.TlsTest do
  # TLS distribution end to end: a node started with tls_cert/tls_key/tls_ca, BEAMs started with
  # `-proto_dist inet_tls` (OTP's own ssl on the client side), certificates from scripts/tls_certs.
  use ExUnit.Case, async: false

  @moduletag :capture_log
  @moduletag timeout: 300_000

  import Mure.TestSupport

  alias Mure.Reliability
  alias Mure.Test.Tls

  setup_all do
    dir = Path.join(System.tmp_dir!(), "mure_tls_#{System.unique_integer([:positive])}")
    certs = Tls.certs!(dir)
    node = Reliability.launch_logged(certs.node_args)

    on_exit(fn ->
      Reliability.stop_logged(node)
      File.rm_rf!(dir)
    end)

    %{certs: certs, node: node}
  end

  defp f32(bin), do: for(<<x::float-32-native <- bin>>, do: x)

  defp check_work!(%{a: a, b: b, sum: sum, prod: prod, hello: hello}) do
    assert %{protocol: 1} = hello
    want_sum = Enum.zip_with(f32(a), f32(b), &(&1 + &2))
    assert f32(sum) == want_sum
    assert f32(prod) == Enum.zip_with(want_sum, f32(b), &(&1 * &2))
  end

  defp node_port(node) do
    [alive, _] = node |> Atom.to_string() |> String.split("@")
    {:port, port, _} = :erl_epmd.port_please(String.to_charlist(alive), {127, 0, 0, 1})
    port
  end

  defp conf!(certs, name, client_opts) do
    path = Path.join(certs.dir, "#{name}.custom.conf")
    File.write!(path, :io_lib.format(~c"~p.~n", [[{:client, client_opts}]]))
    path
  end

  test "a BEAM with inet_tls_dist and a certificate the CA signed uploads, computes and downloads",
       ctx do
    {peer, _} = Tls.start_peer("tls_ok", ctx.certs.conf.("client"))
    on_exit(fn -> stop_peer(peer) end)
    result = :peer.call(peer, Tls, :exercise, [{:connect, ctx.node.node}], 120_000)
    check_work!(result)
    assert File.read!(ctx.node.stderr) =~ ~r/accepted over TLSv1\.[23]/
  end

  test "refused before the distribution handshake: no certificate, another CA's, an expired one, a plain-TCP BEAM; the node carries on",
       ctx do
    dir = ctx.certs.dir
    ca = String.to_charlist(ctx.certs.ca)
    key = fn name -> String.to_charlist(Path.join(dir, "#{name}.key")) end
    pem = fn name -> String.to_charlist(Path.join(dir, "#{name}.pem")) end
    # `name`'s certificate, trusting the node's CA.
    trusting = fn name ->
      conf!(ctx.certs, "#{name}_trusting",
        certfile: pem.(name),
        keyfile: key.(name),
        cacertfile: ca,
        verify: :verify_peer
      )
    end

    # Each of these trusts the node's certificate: the refusal is the node's.
    confs = [
      no_certificate: conf!(ctx.certs, "anonymous", cacertfile: ca, verify: :verify_peer),
      another_ca: trusting.("stranger"),
      expired: trusting.("old")
    ]

    {good, _} = Tls.start_peer("tls_good", ctx.certs.conf.("client"))
    on_exit(fn -> stop_peer(good) end)
    before = :peer.call(good, Tls, :exercise, [{:connect, ctx.node.node}], 120_000)
    check_work!(before)

    for {what, conf} <- confs do
      {peer, _} = Tls.start_peer("tls_#{what}", conf)
      refute :peer.call(peer, Tls, :connect, [ctx.node.node], 30_000), "#{what}: connected"
      stop_peer(peer)
    end

    # This BEAM speaks plain TCP distribution.
    refute Node.connect(ctx.node.node)
    after_ = :peer.call(good, Tls, :exercise, [{:connect, ctx.node.node}], 120_000)
    check_work!(after_)
    assert after_.stats.refused_handshakes - before.stats.refused_handshakes >= 4

    # The reasons are logged rate-limited (the first in full); tests/tls_test.cpp checks each one.
    assert File.read!(ctx.node.stderr) =~ "refused a connection: TLS handshake failed"
  end

  test "the wire carries none of the uploaded bytes or the request atoms in clear (and a plain-TCP capture does)",
       ctx do
    run = fn node, conf ->
      proxy = Tls.start_proxy(node_port(node))
      [alive, _] = node |> Atom.to_string() |> String.split("@")

      epmd = [
        ~c"-epmd_module",
        ~c"Elixir.Mure.Test.ProxyEpmd",
        ~c"-mure_proxy",
        String.to_charlist(alive),
        ~c"#{proxy.port}"
      ]

      {peer, _} =
        if conf,
          do: Tls.start_peer("tls_wire", conf, epmd),
          else: start_peer("plain_wire", args: epmd)

      result = :peer.call(peer, Tls, :exercise, [{:connect, node}], 120_000)
      stop_peer(peer)
      check_work!(result)
      {Tls.recorded(proxy), result}
    end

    in_clear? = fn wire, result ->
      chunk = binary_part(result.a, 400_000, 64)
      Enum.filter([chunk, "multiply", "hello", "stats"], &match?({_, _}, :binary.match(wire, &1)))
    end

    {wire, result} = run.(ctx.node.node, ctx.certs.conf.("client"))

    assert byte_size(wire) > 2 * byte_size(result.a),
           "the proxy saw #{byte_size(wire)} bytes only"

    assert in_clear?.(wire, result) == []

    # The control: the same through a plain-TCP node is readable on the wire.
    plain = Reliability.launch_logged([])
    on_exit(fn -> Reliability.stop_logged(plain) end)
    {wire, result} = run.(plain.node, nil)
    assert length(in_clear?.(wire, result)) == 4
  end

  test "Mure.start_link in a TLS BEAM launches a TLS node in Port mode and uses it", ctx do
    {peer, _} = Tls.start_peer("tls_port", ctx.certs.conf.("client"))
    on_exit(fn -> stop_peer(peer) end)

    result =
      :peer.call(peer, Tls, :exercise, [{:start, [extra_args: ctx.certs.node_args]}], 120_000)

    check_work!(result)
  end

  test "the node refuses to start with half a TLS configuration or a key that is not its certificate's",
       ctx do
    exe = Mure.Launcher.default_executable()
    dir = ctx.certs.dir

    for {args, why} <- [
          {["--tls-cert", Path.join(dir, "node.pem"), "--tls-ca", ctx.certs.ca],
           "half a TLS configuration"},
          {[
             "--tls-cert",
             Path.join(dir, "node.pem"),
             "--tls-key",
             Path.join(dir, "client.key"),
             "--tls-ca",
             ctx.certs.ca
           ], "does not match"}
        ] do
      name = "mure_half_tls_#{System.unique_integer([:positive])}@127.0.0.1"
      {out, status} = System.cmd(exe, ["--name", name | args], stderr_to_stdout: true)
      assert status != 0, "the node started with #{inspect(args)}"
      assert out =~ why
      assert {:error, _} = Mure.RawDist.port_of(String.to_atom(name)), "it registered with epmd"
    end
  end

  test "a peer that opens TLS and then stalls, or never starts it, is dropped at the handshake deadline",
       ctx do
    {:ok, _} = Application.ensure_all_started(:ssl)
    port = node_port(ctx.node.node)
    dir = ctx.certs.dir

    {:ok, tls} =
      :ssl.connect(~c"127.0.0.1", port,
        certfile: String.to_charlist(Path.join(dir, "client.pem")),
        keyfile: String.to_charlist(Path.join(dir, "client.key")),
        cacertfile: String.to_charlist(ctx.certs.ca),
        verify: :verify_peer,
        active: true
      )

    {:ok, tcp} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: true])
    # handshake_timeout_ms is 5000 by default: both are closed by the node by then (and not
    # long after: the margin is for a loaded machine).
    assert_receive {:ssl_closed, ^tls}, 15_000
    assert_receive {:tcp_closed, ^tcp}, 15_000
    assert File.read!(ctx.node.stderr) =~ "deadline passed"
  end
end
