defmodule Mure.Transfer do
  @moduledoc false
  # Tensors larger than the connection's chunk size move in pieces (docs/protocol.md, "Large
  # tensors in pieces"): an upload is {:alloc, type, shape} then {:write, h, offset, piece}
  # requests, a download {:read, h, offset, length} requests, with @window pieces in flight.
  # Each piece is one message of at most `piece` bytes of data, so no message nears the 2 GiB
  # distribution limit, and requests of other processes interleave between the pieces instead
  # of waiting behind one huge message.
  #
  # These functions run in the caller (synchronous calls) or in a job's helper process
  # (Mure.Request.job/3); the tensors they create belong to `owner` either way.

  alias Mure.{ConnectionError, Error, Request, Tensor}

  @window 4

  # Room for the envelope and the control message around a piece of data.
  @headroom 4096

  @doc false
  @spec window() :: pos_integer()
  def window, do: @window

  @doc false
  # The connection's chunk size and the largest piece of data one message may carry (the
  # chunk size, less when the node's max_message_bytes is smaller).
  @spec limits(GenServer.server()) ::
          {:ok, %{chunk_size: pos_integer(), piece: pos_integer(), default_timeout: timeout()}}
          | {:error, ConnectionError.t()}
  def limits(conn) do
    info = :gen_statem.call(conn, :info)
    chunk = Map.fetch!(info, :chunk_size)

    piece =
      case info[:max_message] do
        max when is_integer(max) -> min(chunk, max(max - @headroom, 1024))
        _ -> chunk
      end

    {:ok, %{chunk_size: chunk, piece: piece, default_timeout: Map.fetch!(info, :default_timeout)}}
  catch
    :exit, reason ->
      {:error,
       %ConnectionError{reason: :closed, details: "connection process: #{inspect(reason)}"}}
  end

  @doc false
  # Uploads `data` in pieces. On any failure the allocated tensor is freed and the first
  # error returned.
  @spec upload(
          GenServer.server(),
          binary(),
          Mure.type(),
          Mure.shape(),
          pid(),
          term(),
          map()
        ) ::
          {:ok, Tensor.t()} | {:error, Exception.t()}
  def upload(conn, data, type, shape, owner, budget, limits) do
    case alloc(conn, type, shape, owner, budget, limits.default_timeout) do
      {:ok, %Tensor{id: h, session: session} = t} ->
        Request.track(t)
        size = byte_size(data)
        piece = limits.piece

        writes =
          for off <- 0..(size - 1)//piece,
              do: {:write, h, off, binary_part(data, off, min(piece, size - off))}

        check = fn i, written ->
          expected = min(piece, size - i * piece)

          if written == expected,
            do: {:ok, :written},
            else:
              {:error, unexpected(:write, "#{inspect(written)} bytes written, #{expected} sent")}
        end

        result =
          if expired?(budget),
            do: {:error, %ConnectionError{reason: :timeout}},
            else: Request.pipeline(conn, writes, [session], owner, budget, @window, check)

        case result do
          {:ok, _} ->
            {:ok, t}

          {:error, error} ->
            Request.free_async(t)
            Request.untrack(t)
            {:error, error}
        end

      {:error, error} ->
        {:error, error}
    end
  end

  # The allocation is awaited even past the call's deadline (up to the connection's own
  # timer), and even when the job is cancelled meanwhile: a tensor allocated after the
  # caller gave up would stay resident until its owner exits. A deadline that passed during
  # the allocation frees the tensor and fails the call with :timeout.
  #
  # docs/protocol.md says {:ok, handle}; the node answers {:ok, {handle, type, shape}} like
  # every op that makes a tensor. Both are taken.
  defp alloc(conn, type, shape, owner, budget, default_timeout) do
    send_timeout =
      case budget do
        :default -> nil
        :infinity -> :infinity
        {:deadline, t} -> max(t - System.monotonic_time(:millisecond), default_timeout)
      end

    result =
      with {:ok, _pid, alias} <-
             Request.send_call(conn, {:alloc, type, shape}, [], owner, send_timeout) do
        Request.receive_call(alias, :infinity, nil, false)
      end

    case result do
      {:ok, reply, node, session} ->
        with :error <- Tensor.from_reply(conn, reply, node, session, {type, shape}),
             do: {:error, unexpected(:alloc, inspect(reply, limit: 10))}

      {:error, error} ->
        {:error, error}
    end
  end

  defp expired?({:deadline, t}), do: System.monotonic_time(:millisecond) >= t
  defp expired?(_), do: false

  @doc false
  # Downloads a tensor in pieces and joins them, in order, into one binary.
  @spec download(Tensor.t(), term(), map()) :: {:ok, binary()} | {:error, Exception.t()}
  def download(%Tensor{} = t, budget, limits) do
    size = Tensor.byte_size(t)
    piece = limits.piece
    reads = for off <- 0..(size - 1)//piece, do: {:read, t.id, off, min(piece, size - off)}

    check = fn i, bin ->
      expected = min(piece, size - i * piece)

      if is_binary(bin) and byte_size(bin) == expected,
        do: {:ok, bin},
        else: {:error, unexpected(:read, "#{inspect(bin, limit: 3)} for #{expected} bytes")}
    end

    with {:ok, pieces} <-
           Request.pipeline(t.conn, reads, [t.session], self(), budget, @window, check) do
      {:ok, IO.iodata_to_binary(pieces)}
    end
  end

  defp unexpected(op, what),
    do: %Error{kind: :internal, message: "#{op}: unexpected reply from the node: #{what}"}
end
