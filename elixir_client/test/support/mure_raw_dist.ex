defmodule Mure.RawDist do
  @moduledoc false
  # A tiny Erlang distribution client that speaks to mure_node over its own TCP socket,
  # so that tests can send bytes the BEAM would never send (send/2 always encodes terms
  # correctly) and can play hostile peers: wrong cookies, half-finished handshakes,
  # corrupted frames, peers that vanish mid-request.
  #
  # It implements the initiating side of the version-6 handshake (OTP 23+):
  #   -> 'N' Flags:64 Creation:32 NLen:16 Name
  #   <- 's' "ok"
  #   <- 'N' Flags:64 Challenge:32 Creation:32 NLen:16 Name
  #   -> 'r' MyChallenge:32 Digest:16     Digest = MD5(Cookie ++ integer_to_list(Challenge))
  #   <- 'a' Digest:16                    MD5(Cookie ++ integer_to_list(MyChallenge))
  # each message with a 2-byte length (4 inside TLS, as OTP's inet_tls_dist frames it); then
  # frames <<Len:32, ?p, Control, Message>>. With `tls: ssl_options` it speaks TLS distribution.

  import Bitwise

  defstruct [:sock, :name, :node, :pid, :creation, :node_flags]

  @type t :: %__MODULE__{}

  # DFLAG_EXTENDED_REFERENCES, DIST_MONITOR, FUN_TAGS, DIST_MONITOR_NAME, NEW_FUN_TAGS,
  # EXTENDED_PIDS_PORTS, EXPORT_PTR_TAG, BIT_BINARIES, NEW_FLOATS, UTF8_ATOMS, MAP_TAG,
  # BIG_CREATION, HANDSHAKE_23, UNLINK_ID, MANDATORY_25_DIGEST. Not PUBLISHED: a hidden node.
  @flags 0x4 ||| 0x8 ||| 0x10 ||| 0x20 ||| 0x80 ||| 0x100 ||| 0x200 ||| 0x400 ||| 0x800 |||
           0x10000 ||| 0x20000 ||| 0x40000 ||| 0x1000000 ||| 0x2000000 ||| 0x4000000

  @doc "The distribution port of `node` (asks the local epmd)."
  def port_of(node) do
    [alive, host] = node |> Atom.to_string() |> String.split("@")

    case :erl_epmd.port_please(String.to_charlist(alive), String.to_charlist(host)) do
      {:port, port, _version} -> {:ok, port}
      other -> {:error, {:epmd, other}}
    end
  end

  @doc "A fresh node name for a raw client."
  def unique_name(prefix \\ "rawdist"),
    do: "#{prefix}_#{System.unique_integer([:positive])}@127.0.0.1"

  @doc "Opens a TCP connection to the node's distribution port; no handshake."
  def open(node, timeout \\ 5_000, ip \\ nil) do
    # `ip`: the local address to connect from (127.0.0.x all route to lo), as another host would.
    bind = if ip, do: [ip: ip], else: []

    with {:ok, port} <- port_of(node) do
      :gen_tcp.connect(
        ~c"127.0.0.1",
        port,
        [:binary, active: false, packet: :raw, nodelay: true] ++ bind,
        timeout
      )
    end
  end

  @doc """
  Connects and completes the handshake. Options: `:cookie` (default: this BEAM's),
  `:name` (the raw client's node name), `:timeout`, `:ip` (the local address to connect
  from), `:wrong_digest` (send a digest made from a wrong cookie). Returns `{:ok, t}` or `{:error, reason}`; a refused handshake is
  `{:error, :refused}` (the node closed the socket) or `{:error, {:status, status}}`.
  """
  def connect(node, opts \\ []) do
    timeout = Keyword.get(opts, :timeout, 5_000)

    with {:ok, sock} <- open(node, timeout, Keyword.get(opts, :ip)),
         {:ok, sock} <- tls(sock, Keyword.get(opts, :tls), timeout) do
      case handshake(sock, node, opts) do
        {:ok, raw} ->
          {:ok, raw}

        error ->
          xclose(sock)
          error
      end
    end
  end

  # `tls`: nil (plain TCP) or the ssl client options (certfile, keyfile, cacertfile, verify, ...).
  defp tls(sock, nil, _timeout), do: {:ok, sock}

  defp tls(sock, ssl_opts, timeout) do
    {:ok, _} = Application.ensure_all_started(:ssl)

    case :ssl.connect(
           sock,
           [:binary, active: false, packet: :raw, server_name_indication: :disable] ++ ssl_opts,
           timeout
         ) do
      {:ok, ssl} ->
        {:ok, ssl}

      {:error, reason} ->
        :gen_tcp.close(sock)
        {:error, {:tls, reason}}
    end
  end

  # The socket's own calls: a port (TCP) or an ssl socket.
  defp xsend(sock, data) when is_port(sock), do: :gen_tcp.send(sock, data)
  defp xsend(sock, data), do: :ssl.send(sock, data)
  defp xrecv(sock, n, timeout) when is_port(sock), do: :gen_tcp.recv(sock, n, timeout)
  defp xrecv(sock, n, timeout), do: :ssl.recv(sock, n, timeout)
  defp xclose(sock) when is_port(sock), do: :gen_tcp.close(sock)
  defp xclose(sock), do: :ssl.close(sock)
  # Bits of a handshake message's length.
  defp hs_bits(sock) when is_port(sock), do: 16
  defp hs_bits(_ssl), do: 32

  @doc "Runs the initiator's handshake on an open socket."
  def handshake(sock, _node, opts \\ []) do
    timeout = Keyword.get(opts, :timeout, 5_000)
    name = Keyword.get(opts, :name, unique_name())
    cookie = opts |> Keyword.get(:cookie, Node.get_cookie()) |> to_string()
    creation = Keyword.get(opts, :creation, 4 + :rand.uniform(0xFFFFFF))
    flags = Keyword.get(opts, :flags, @flags)

    send_name = <<?N, flags::64, creation::32, byte_size(name)::16, name::binary>>

    with :ok <- send_msg(sock, send_name),
         {:ok, "sok"} <- recv_msg(sock, timeout) |> status(),
         {:ok,
          <<?N, node_flags::64, challenge::32, _node_creation::32, nlen::16,
            node_name::binary-size(nlen)>>} <-
           recv_msg(sock, timeout),
         my_challenge = :rand.uniform(0xFFFFFFFF),
         digest =
           if(Keyword.get(opts, :wrong_digest, false),
             do: digest("not-the-cookie-#{cookie}", challenge),
             else: digest(cookie, challenge)
           ),
         :ok <- send_msg(sock, <<?r, my_challenge::32, digest::binary>>),
         {:ok, <<?a, ack::binary-size(16)>>} <- recv_msg(sock, timeout) |> refused() do
      if ack != digest(cookie, my_challenge) do
        {:error, :bad_ack_digest}
      else
        raw = %__MODULE__{
          sock: sock,
          name: name,
          node: node_name,
          creation: creation,
          node_flags: node_flags
        }

        {:ok, %{raw | pid: pid(raw, 1)}}
      end
    else
      {:ok, other} -> {:error, {:unexpected, other}}
      {:error, _} = error -> error
    end
  end

  defp status({:ok, "s" <> status}) when status != "ok", do: {:error, {:status, status}}
  defp status(other), do: other

  defp refused({:error, :closed}), do: {:error, :refused}
  defp refused(other), do: other

  @doc "MD5(Cookie ++ integer_to_list(Challenge)), the handshake digest."
  def digest(cookie, challenge),
    do: :erlang.md5([to_string(cookie), Integer.to_string(challenge)])

  defp send_msg(sock, body) do
    bits = hs_bits(sock)
    xsend(sock, <<byte_size(body)::size(bits), body::binary>>)
  end

  defp recv_msg(sock, timeout) do
    bits = hs_bits(sock)

    with {:ok, <<len::size(bits)>>} <- xrecv(sock, div(bits, 8), timeout) do
      if len == 0, do: {:ok, <<>>}, else: xrecv(sock, len, timeout)
    end
  end

  ## Terms that live on the raw client's "node"

  @doc "A pid of the raw client's node (any valid pid term with that node name)."
  def pid(%__MODULE__{name: name, creation: creation}, id) do
    :erlang.binary_to_term(
      <<131, 88, 119, byte_size(name), name::binary, id::32, 0::32, creation::32>>
    )
  end

  ## Frames

  @doc "A frame's bytes: length, pass-through byte, control, message (already encoded)."
  def frame(control_bin, message_bin \\ <<>>) do
    payload = [?p, control_bin, message_bin]
    [<<IO.iodata_length(payload)::32>> | payload]
  end

  @doc "The REG_SEND control message {6, FromPid, '', ToName}, encoded."
  def reg_send_control(raw, to \\ :mure),
    do: :erlang.term_to_binary({6, raw.pid, :"", to})

  @doc "An envelope for `request` from this raw client, with a fresh ref."
  def envelope(raw, request, ref \\ make_ref()),
    do: {:"$mure", 1, raw.pid, ref, raw.pid, request}

  @doc "Sends bytes as they are."
  def send_bytes(%__MODULE__{sock: sock}, bytes), do: xsend(sock, bytes)

  @doc "Sends `message_bin` (an encoded message, possibly corrupt) to the name `mure`."
  def send_message(raw, message_bin, to \\ :mure),
    do: send_bytes(raw, frame(reg_send_control(raw, to), message_bin))

  @doc "Sends a request in a well-formed envelope; returns its ref."
  def send_request(raw, request) do
    ref = make_ref()
    :ok = send_message(raw, :erlang.term_to_binary(envelope(raw, request, ref)))
    ref
  end

  @doc "Sends a request and waits for its reply: the result, or {:error, :closed | :timeout}."
  def call(raw, request, timeout \\ 5_000) do
    ref = send_request(raw, request)

    case await_reply(raw, ref, timeout) do
      {:ok, result, _others} -> result
      {:error, reason, _others} -> {:transport_error, reason}
    end
  end

  @doc """
  Reads frames until the reply to `ref` arrives. Returns `{:ok, result, others}` or
  `{:error, :closed | :timeout, others}`, where `others` are the other replies seen
  (`{ref, result}`), oldest first. Ticks are answered; monitors are skipped.
  """
  def await_reply(raw, ref, timeout \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    await_reply(raw, ref, deadline, [])
  end

  defp await_reply(raw, ref, deadline, others) do
    case recv_frame(raw, max(deadline - System.monotonic_time(:millisecond), 0)) do
      {:reply, ^ref, result} ->
        {:ok, result, Enum.reverse(others)}

      {:reply, other_ref, result} ->
        await_reply(raw, ref, deadline, [{other_ref, result} | others])

      {:other, _control, _message} ->
        await_reply(raw, ref, deadline, others)

      {:undecodable, bytes} ->
        await_reply(raw, ref, deadline, [{:undecodable, bytes} | others])

      :tick ->
        await_reply(raw, ref, deadline, others)

      {:error, reason} ->
        {:error, reason, Enum.reverse(others)}
    end
  end

  @doc """
  Reads one frame: `{:reply, ref, result}` for a mure reply, `{:other, control, message}`
  for anything else (e.g. a MONITOR_P), `{:undecodable, bytes}` for a frame the BEAM
  cannot decode, `:tick`, or `{:error, :closed | :timeout}`.
  """
  def recv_frame(%__MODULE__{sock: sock} = raw, timeout) do
    case xrecv(sock, 4, timeout) do
      {:ok, <<0::32>>} ->
        xsend(sock, <<0::32>>)
        :tick

      {:ok, <<len::32>>} ->
        case xrecv(sock, len, max(timeout, 5_000)) do
          {:ok, <<?p, rest::binary>>} -> decode(raw, rest)
          {:ok, other} -> {:error, {:bad_frame, other}}
          {:error, reason} -> {:error, reason}
        end

      {:error, reason} ->
        {:error, reason}
    end
  end

  # A frame the BEAM itself could not decode (a real BEAM drops the connection on one) is
  # returned as {:undecodable, bytes}: the node echoes the reply pid and ref bytes it was
  # given, so a client that sends a malformed pid or ref gets them back.
  defp decode(_raw, bin) do
    {control, used} = :erlang.binary_to_term(bin, [:used])
    rest = binary_part(bin, used, byte_size(bin) - used)
    message = if rest == <<>>, do: nil, else: :erlang.binary_to_term(rest)

    case {control, message} do
      {{2, _, _to}, {:"$mure_reply", ref, result}} -> {:reply, ref, result}
      _ -> {:other, control, message}
    end
  rescue
    ArgumentError -> {:undecodable, bin}
  end

  @doc "Drains whatever frames arrive within `timeout` ms; returns the replies seen."
  def drain(raw, timeout \\ 100) do
    case recv_frame(raw, timeout) do
      {:reply, ref, result} -> [{ref, result} | drain(raw, timeout)]
      {:other, _, _} -> drain(raw, timeout)
      {:undecodable, bytes} -> [{:undecodable, bytes} | drain(raw, timeout)]
      :tick -> drain(raw, timeout)
      {:error, _} -> []
    end
  end

  @doc "Whether the node has closed this connection (waits up to `timeout` ms)."
  def closed?(%__MODULE__{sock: sock}, timeout \\ 0), do: socket_closed?(sock, timeout)

  @doc "Whether the peer closed a plain socket (waits up to `timeout` ms; data is discarded)."
  def socket_closed?(sock, timeout \\ 0) do
    case xrecv(sock, 0, timeout) do
      {:error, :timeout} -> false
      {:error, _} -> true
      {:ok, _data} -> socket_closed?(sock, timeout)
    end
  end

  def close(%__MODULE__{sock: sock}), do: xclose(sock)
end
