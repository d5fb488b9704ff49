# Writes the TLS fuzzer's seed corpus (corpus/tls/) from the wire target's (corpus/wire/, made by
# make_corpus.exs) and from real ClientHellos: OTP's ssl (what a BEAM with inet_tls_dist sends)
# and `openssl s_client`, recorded on a local socket that answers nothing.
#
#   elixir tests/fuzz/make_tls_corpus.exs        (from the repository root, after make_corpus.exs)
#
# The first byte is fuzz_tls.cpp's mode: bit 1 = raw bytes on the socket (no TLS from the
# harness), bit 0 = after a correct distribution handshake, bit 2 = the client capped at TLS 1.2.
# corpus/tls/NAME        wire's handshake seeds with 4-byte lengths (inside TLS) and its streams
# corpus/tls/tls12_NAME  a few streams over TLS 1.2
# corpus/tls/raw_NAME    wire's handshake seeds in the clear, ClientHellos, stray records
{:ok, _} = Application.ensure_all_started(:ssl)

defmodule TlsCorpus do
  @wire "tests/fuzz/corpus/wire"
  @out "tests/fuzz/corpus/tls"

  # <<len::16, body>>... -> <<len::32, body>>... (a truncated tail is kept as it is)
  def reframe(<<n::16, body::binary-size(n), rest::binary>>),
    do: <<n::32, body::binary>> <> reframe(rest)

  def reframe(rest), do: rest

  # What a client sends first (its ClientHello), recorded on a socket that never answers.
  def client_hello(connect) do
    {:ok, l} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    {:ok, port} = :inet.port(l)
    client = Task.async(fn -> connect.(port) end)
    {:ok, s} = :gen_tcp.accept(l, 10_000)
    {:ok, <<22, _::16, len::16>> = head} = :gen_tcp.recv(s, 5, 10_000)
    {:ok, body} = :gen_tcp.recv(s, len, 10_000)
    :gen_tcp.close(s)
    :gen_tcp.close(l)
    Task.shutdown(client, :brutal_kill)
    head <> body
  end

  def otp(versions),
    do: fn port ->
      :ssl.connect(~c"127.0.0.1", port, [verify: :verify_none, versions: versions], 5_000)
    end

  def openssl(args),
    do: fn port ->
      System.cmd("sh", [
        "-c",
        "openssl s_client -connect 127.0.0.1:#{port} #{args} </dev/null >/dev/null 2>&1"
      ])
    end

  def write(name, bytes), do: File.write!(Path.join(@out, name), bytes)

  def run do
    File.mkdir_p!(@out)

    for path <- Path.wildcard(Path.join(@wire, "*")) do
      name = Path.basename(path)
      <<mode, rest::binary>> = File.read!(path)

      if Bitwise.band(mode, 1) == 1 do
        write(name, <<1, rest::binary>>)

        if name in ~w(hello matmul_f32 upload_download_free oversized chunked),
          do: write("tls12_" <> name, <<5, rest::binary>>)
      else
        write(name, <<0, reframe(rest)::binary>>)
        write("raw_" <> name, <<2, rest::binary>>)
      end
    end

    hello13 = client_hello(openssl("-tls1_3"))
    write("raw_client_hello_13", <<2, hello13::binary>>)
    write("raw_client_hello_12", <<2, client_hello(openssl("-tls1_2"))::binary>>)
    write("raw_client_hello_otp", <<2, client_hello(otp([:"tlsv1.3", :"tlsv1.2"]))::binary>>)
    write("raw_client_hello_otp12", <<2, client_hello(otp([:"tlsv1.2"]))::binary>>)
    # A ClientHello, then an alert and application data before any handshake answer.
    write(
      "raw_client_hello_then_records",
      <<2, hello13::binary, 21, 3, 3, 0, 2, 2, 40, 23, 3, 3, 0, 16, 0::128>>
    )

    write("raw_alert", <<2, 21, 3, 1, 0, 2, 2, 40>>)
    write("raw_huge_record", <<2, 22, 3, 1, 0x40, 0xFF, 1, 0::512>>)
  end
end

TlsCorpus.run()
