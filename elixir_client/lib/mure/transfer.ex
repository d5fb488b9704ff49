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
  #
  # Same host (docs/protocol.md, "shm_alloc"): tensors of @shm_threshold bytes and more move
  # through a shared segment the node makes: the client reads the segment's tag back through
  # the path the node replies and compares it before it writes or trusts a byte. A node out of
  # reach (another host or user) fails that check: the transfer goes through the network and
  # the connection stops trying (its :info then says shared_memory: false).
  #
  # Reuse: fresh pages cost more than the copy itself (a page fault per 4 KiB on both sides), so
  # a process keeps one reusable segment per connection ({:shm_alloc, bytes, :reuse}, a power of
  # two from 1 MiB to @shm_reuse_max bytes) in its process dictionary and moves every transfer
  # that fits through it: the node copies an upload out of it into the tensor, and a download
  # into it, before replying (a reusable segment is never sealed, so no tensor maps it). The
  # segment belongs to the process: the node frees it when the process exits or the connection
  # closes. Larger tensors, or a failure with a reusable segment, take a one-shot segment.

  import Bitwise

  alias Mure.{ConnectionError, Error, Request, Tensor}

  @window 4

  # Room for the envelope and the control message around a piece of data.
  @headroom 4096

  # Same-host transfers: the smallest tensor that goes through shared memory, the bytes before
  # its data in a segment, and the tag's length.
  @shm_threshold 1024 * 1024
  @shm_header 4096
  @shm_tag 16
  @shm_reuse_max 64 * 1024 * 1024

  @doc false
  # Whether `bytes` go through shared memory on a connection with these limits.
  @spec shm?(map(), non_neg_integer()) :: boolean()
  def shm?(limits, bytes), do: Map.get(limits, :shm, false) and bytes >= @shm_threshold

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

    {:ok,
     %{
       chunk_size: chunk,
       piece: piece,
       default_timeout: Map.fetch!(info, :default_timeout),
       shm: Map.get(info, :shared_memory, false) == true
     }}
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
    with true <- shm?(limits, byte_size(data)),
         result when result != :unreachable <-
           shm_upload(conn, data, type, shape, owner, budget, limits) do
      result
    else
      _ -> upload_pieces(conn, data, type, shape, owner, budget, limits)
    end
  end

  defp upload_pieces(conn, data, type, shape, owner, budget, limits) do
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
  # Through shared memory where it can; the pieces where the node is elsewhere, or where its
  # memory cannot hold the segment's copy of the tensor (the pieces are read from the tensor
  # itself).
  def download(%Tensor{} = t, budget, limits) do
    with true <- shm?(limits, Tensor.byte_size(t)),
         result when result != :unreachable <- shm_download(t, budget, limits),
         false <- match?({:error, %Error{kind: :out_of_memory}}, result) do
      result
    else
      _ -> download_pieces(t, budget, limits)
    end
  end

  defp download_pieces(t, budget, limits) do
    if Tensor.byte_size(t) > limits.piece,
      do: apart(fn -> read_pieces(t, budget, limits) end),
      else: read_pieces(t, budget, limits)
  end

  defp read_pieces(t, budget, limits) do
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

  # Runs `fun` (a download's pieces: received, checked, joined) in a process of its own and
  # returns its result; the caller receives the one joined binary. The pieces are freed when the
  # helper exits instead of at the caller's next garbage collection, so their memory goes back
  # to the BEAM's allocator while it still holds it warm: a fresh page costs ~11 us on these VMs
  # (bench, limits section), and 256 MiB downloads in a loop took 0.9-1.1 s (65,537 page faults
  # each: the result alone) against 1.1-2.3 s (65,537-114,713) with the pieces in the caller.
  # A job's cancellation and its owner's exit end the helper as they would end the caller's wait.
  defp apart(fun) do
    caller = self()
    cancel = Process.get(:"$mure_job_cancel", :none)
    owner_mon = Process.get(:"$mure_job_owner_mon", :none)

    {pid, ref} =
      spawn_monitor(fn ->
        # The caller's exit ends the helper's wait for a piece (Request.receive_call/4).
        Process.put(:"$mure_job_owner_mon", Process.monitor(caller))
        send(caller, {self(), fun.()})
      end)

    receive do
      {^pid, result} ->
        Process.demonitor(ref, [:flush])
        result

      {:DOWN, ^ref, :process, ^pid, reason} ->
        {:error, %Error{kind: :internal, message: "download failed: #{inspect(reason)}"}}

      {:"$mure_cancel", ^cancel} ->
        Process.exit(pid, :kill)
        throw(:"$mure_cancelled")

      {:DOWN, ^owner_mon, _, _, _} ->
        Process.exit(pid, :kill)
        exit(:normal)
    end
  end

  # {:shm_alloc, n}, the bytes written into the segment, {:shm_upload, ...}. :unreachable
  # when the segment's path does not lead to it (the node runs elsewhere).
  defp shm_upload(conn, data, type, shape, owner, budget, limits) do
    with :retry <- reuse_upload(conn, data, type, shape, owner, budget, limits),
         do: shm_upload_once(conn, data, type, shape, owner, budget, limits)
  end

  defp shm_upload_once(conn, data, type, shape, owner, budget, limits) do
    with {:ok, {seg, path, tag}, session} <-
           shm_call(conn, {:shm_alloc, byte_size(data)}, [], owner, budget, limits),
         :ok <- shm_reached(conn, seg, session, owner, shm_write(path, tag, data)) do
      # A tensor made past the deadline is freed again.
      undo = fn reply, node, session ->
        with {:ok, t} <- Tensor.from_reply(conn, reply, node, session, {type, shape}),
             do: Request.free_async(t)
      end

      case call(conn, {:shm_upload, seg, type, shape}, [session], owner, budget, limits, undo) do
        {:ok, reply, node, session} ->
          with :error <- Tensor.from_reply(conn, reply, node, session, {type, shape}),
               do: {:error, unexpected(:shm_upload, inspect(reply, limit: 10))}

        {:error, error} ->
          # Not adopted (a shape of another size, a timeout): the segment goes now.
          shm_free(conn, seg, session, owner)
          {:error, error}
      end
    end
  end

  # {:shm_download, h}, the bytes read from the segment, {:shm_free, segment} (not awaited).
  defp shm_download(%Tensor{} = t, budget, limits) do
    with :retry <- reuse_download(t, budget, limits), do: shm_download_once(t, budget, limits)
  end

  defp shm_download_once(%Tensor{} = t, budget, limits) do
    size = Tensor.byte_size(t)

    with {:ok, {seg, path, tag}, session} <-
           shm_call(t.conn, {:shm_download, t.id}, [t.session], self(), budget, limits) do
      read = shm_read(path, tag, size)
      shm_free(t.conn, seg, session, self())

      case read do
        {:ok, bin} -> {:ok, bin}
        :unreachable -> shm_unreachable(t.conn)
        {:error, reason} -> {:error, shm_error(:shm_download, path, reason)}
      end
    end
  end

  # Through the process's reusable segment: the result, or :retry (the one-shot path) when
  # none can be had or it failed for any reason but the connection's.
  # (The node copies as many bytes as the type and shape take: data of another size goes the
  # one-shot way, whose segment's size the node checks.)
  defp reuse_upload(conn, data, type, shape, owner, budget, limits) do
    with true <- fills?(data, type, shape),
         {:ok, {seg, path, tag, _, session} = cached} <-
           checkout(conn, byte_size(data), budget, limits) do
      undo = fn reply, node, session ->
        with {:ok, t} <- Tensor.from_reply(conn, reply, node, session, {type, shape}),
             do: Request.free_async(t)
      end

      with :ok <- shm_write(path, tag, data),
           {:ok, reply, node, session} <-
             call(conn, {:shm_upload, seg, type, shape}, [session], owner, budget, limits, undo),
           {:ok, t} <- Tensor.from_reply(conn, reply, node, session, {type, shape}) do
        checkin(conn, cached)
        {:ok, t}
      else
        failed -> reuse_failed(conn, cached, failed)
      end
    end
  end

  defp fills?(data, {_, bits}, shape) when is_integer(bits) and is_tuple(shape) do
    if Enum.all?(Tuple.to_list(shape), &(is_integer(&1) and &1 >= 0)) and
         byte_size(data) ==
           Mure.Types.size(shape) * div(bits, 8),
       do: true,
       else: :retry
  end

  defp fills?(_, _, _), do: :retry

  defp reuse_download(%Tensor{} = t, budget, limits) do
    size = Tensor.byte_size(t)

    with {:ok, {seg, path, tag, _, session} = cached} <- checkout(t.conn, size, budget, limits) do
      with {:ok, {^seg, ^path, ^tag}, _session} <-
             shm_call(
               t.conn,
               {:shm_download, t.id, seg},
               [t.session, session],
               self(),
               budget,
               limits,
               false
             ),
           {:ok, bin} <- shm_read(path, tag, size) do
        checkin(t.conn, cached)
        {:ok, bin}
      else
        failed -> reuse_failed(t.conn, cached, failed)
      end
    end
  end

  # The process's reusable segment on `conn` holding `size` bytes, taken out of the process
  # dictionary while in use: {:ok, {seg, path, tag, bytes, session}}, or :retry. A smaller one
  # is freed and a larger one made.
  defp checkout(conn, size, budget, limits) do
    case size <= @shm_reuse_max && Process.delete({__MODULE__, conn}) do
      false ->
        :retry

      {_, _, _, bytes, _} = cached when bytes >= size ->
        {:ok, cached}

      old ->
        if old, do: shm_free(conn, elem(old, 0), elem(old, 4), self())
        bytes = max(@shm_threshold, 1 <<< ceil_log2(size))

        case shm_call(conn, {:shm_alloc, bytes, :reuse}, [], self(), budget, limits) do
          {:ok, {seg, path, tag}, session} -> {:ok, {seg, path, tag, bytes, session}}
          _ -> :retry
        end
    end
  end

  defp checkin(conn, cached), do: Process.put({__MODULE__, conn}, cached)

  @doc false
  # Frees the calling process's reusable segment on `conn` now (awaited), if it holds one: its
  # memory leaves the node's count at once instead of when the process exits.
  @spec drop_reusable(GenServer.server()) :: :ok
  def drop_reusable(conn) do
    case Process.delete({__MODULE__, conn}) do
      {seg, _, _, _, session} ->
        _ = Request.call(conn, {:shm_free, seg}, [session], self(), Request.budget(nil))
        :ok

      nil ->
        :ok
    end
  end

  defp ceil_log2(n), do: ceil_log2(n - 1, 0)
  defp ceil_log2(0, k), do: k
  defp ceil_log2(n, k), do: ceil_log2(n >>> 1, k + 1)

  # A failure through the reusable segment frees it; the connection's own errors (closed, timed
  # out) are the call's, any other sends the transfer through a one-shot segment, whose
  # request reports what is wrong with the tensor or the request itself.
  defp reuse_failed(conn, {seg, _, _, _, session}, failed) do
    shm_free(conn, seg, session, self())

    case failed do
      {:error, %ConnectionError{} = error} -> {:error, error}
      :unreachable -> shm_unreachable(conn)
      _ -> :retry
    end
  end

  # A request that makes a segment: {:ok, {segment, path, tag}, session}. One made past the
  # deadline is freed again.
  # (`undo?` false: a reusable segment's download, which made nothing.)
  defp shm_call(conn, request, sessions, owner, budget, limits, undo? \\ true) do
    undo = fn
      {seg, _path, _tag}, _node, session when is_integer(seg) and undo? ->
        shm_free(conn, seg, session, owner)

      _, _, _ ->
        :ok
    end

    case call(conn, request, sessions, owner, budget, limits, undo) do
      {:ok, {seg, path, tag}, _node, session}
      when is_integer(seg) and is_binary(path) and byte_size(tag) == @shm_tag ->
        {:ok, {seg, path, tag}, session}

      {:ok, other, _node, _session} ->
        {:error, unexpected(elem(request, 0), inspect(other, limit: 10))}

      {:error, error} ->
        {:error, error}
    end
  end

  # A request that makes something on the node: like alloc/6, its reply is awaited even past
  # the call's deadline (up to the connection's own timer), so that what it made can be undone
  # (`undo.(value, node, session)`) and the call fail with :timeout.
  defp call(conn, request, sessions, owner, budget, limits, undo) do
    send_timeout =
      case budget do
        :default -> nil
        :infinity -> :infinity
        {:deadline, t} -> max(t - System.monotonic_time(:millisecond), limits.default_timeout)
      end

    result =
      with {:ok, _pid, alias} <- Request.send_call(conn, request, sessions, owner, send_timeout) do
        Request.receive_call(alias, :infinity, nil, false)
      end

    case result do
      {:ok, value, node, session} ->
        if expired?(budget) do
          undo.(value, node, session)
          {:error, %ConnectionError{reason: :timeout}}
        else
          result
        end

      {:error, error} ->
        {:error, error}
    end
  end

  # After writing: :ok, or the segment freed and :unreachable / the error.
  defp shm_reached(_conn, _seg, _session, _owner, :ok), do: :ok

  defp shm_reached(conn, seg, session, owner, failed) do
    shm_free(conn, seg, session, owner)

    case failed do
      :unreachable -> shm_unreachable(conn)
      {:error, path, reason} -> {:error, shm_error(:shm_upload, path, reason)}
    end
  end

  defp shm_unreachable(conn) do
    :gen_statem.cast(conn, :shm_unreachable)
    :unreachable
  end

  defp shm_error(op, path, reason),
    do: %Error{kind: :internal, message: "#{op}: the shared segment #{path}: #{inspect(reason)}"}

  # Opens the segment, checks its tag, runs `fun` on it. :unreachable when it cannot be
  # opened or holds another tag.
  defp with_segment(path, modes, tag, fun) do
    case :file.open(path, [:raw, :binary | modes]) do
      {:ok, fd} ->
        try do
          case :file.pread(fd, 0, @shm_tag) do
            {:ok, ^tag} -> fun.(fd)
            _ -> :unreachable
          end
        after
          :file.close(fd)
        end

      {:error, _} ->
        :unreachable
    end
  end

  defp shm_write(path, tag, data) do
    with_segment(path, [:read, :write], tag, fn fd ->
      case :file.pwrite(fd, @shm_header, data) do
        :ok -> :ok
        {:error, reason} -> {:error, path, reason}
      end
    end)
  end

  defp shm_read(path, tag, size) do
    with_segment(path, [:read], tag, fn fd ->
      case :file.pread(fd, @shm_header, size) do
        {:ok, bin} when byte_size(bin) == size -> {:ok, bin}
        {:ok, bin} -> {:error, "#{byte_size(bin)} bytes for #{size}"}
        other -> {:error, other}
      end
    end)
  end

  # Frees a segment without waiting for the reply (it goes to a dead alias).
  defp shm_free(conn, seg, session, owner) do
    with {:ok, _pid, alias} <- Request.send_call(conn, {:shm_free, seg}, [session], owner, nil) do
      Request.drop(alias)
    end

    :ok
  end

  defp unexpected(op, what),
    do: %Error{kind: :internal, message: "#{op}: unexpected reply from the node: #{what}"}
end
