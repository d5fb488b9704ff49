defmodule Mure.Api.Transfers do
  @moduledoc false
  # Mure's tensor transfers: upload, download and free, and the asynchronous upload and
  # download. `use Mure.Api.Transfers` puts the documented functions into Mure, which
  # delegate to the implementations below. A tensor larger than the connection's
  # :chunk_size moves in pieces (Mure.Transfer); a smaller one in one message.

  alias Mure.{Call, Connection, Error, Request, Tensor, Transfer}

  @doc false
  defmacro __using__(_opts) do
    quote location: :keep do
      ## Tensors

      @doc """
      Uploads `data` as a tensor of `type` and `shape` and returns the resident tensor.

      `byte_size(data)` must be `product(shape) * byte_size(type)`; otherwise, or for an
      invalid type or shape, `ArgumentError` is raised before anything is sent. Data larger
      than the node accepts (its `max_message_bytes`, and never 2 GiB or more, which would
      abort the BEAM) is refused with `{:error, %Mure.Error{kind: :message_too_large}}`
      without being sent.

      Data larger than the connection's `:chunk_size` (8 MiB by default, see `start_link/1`)
      goes in pieces: `{:alloc, type, shape}`, then `{:write, h, offset, piece}` messages with
      several in flight, so that requests of other processes interleave with it and no message
      nears the 2 GiB limit. `timeout:` then bounds the whole upload; without it each piece
      gets the connection's default timeout. A piece that fails fails the upload with its error
      and frees the tensor.

      When the node runs on this host as this user (a node the connection launched, or one
      started by hand), data of 1 MiB or more goes through shared memory instead: the node
      makes an anonymous segment, this process writes the bytes into it with `:file` and the
      node copies them into the tensor (docs/protocol.md, `shm_alloc`). Up to 64 MiB the
      segment is this process's reusable one (kept, with its pages, for its next transfers on
      the connection, and freed when the process exits); larger data takes a one-shot segment
      the node adopts as the tensor without a copy. The
      client first reads back a random tag through the segment's path, so a node elsewhere is
      never written to: its transfers fall back to the network. `shared_memory: false` turns
      it off for one call (the connection's `:shared_memory` option for all of them).

      The calling process owns the tensor: it is freed when that process exits.

      ## Examples

          iex> data = <<1.0::float-32-native, 2.0::float-32-native, 3.0::float-32-native, 4.0::float-32-native>>
          iex> {:ok, t} = Mure.upload(conn, data, {:f, 32}, {2, 2})
          iex> t
          #Mure.Tensor<f32[2][2]>
          iex> Mure.upload(conn, <<1, 2, 3>>, {:f, 32}, {1})
          ** (ArgumentError) upload: expected 4 bytes for a f32[1] tensor (1 elements of 4 bytes), got 3 bytes
          iex> Mure.upload(conn, <<>>, {:f, 33}, {0})
          ** (ArgumentError) upload: expected a type {:u, 8|16|32|64}, {:s, 8|16|32|64}, {:f, 16|32|64}, {:bf, 16} or {:c, 64|128}, got: {:f, 33}

      """
      @spec upload(conn(), binary(), type(), shape(), call_opts()) ::
              {:ok, Tensor.t()} | {:error, error()}
      defdelegate upload(conn, data, type, shape, opts \\ []), to: Mure.Api.Transfers

      @doc """
      Downloads a tensor's data as a binary (native little-endian, row-major).

      A tensor larger than the connection's `:chunk_size` comes in pieces
      (`{:read, h, offset, length}`, several in flight), received and joined in order into one
      binary by a short-lived helper process (the pieces are freed as it exits, not at the
      caller's next garbage collection); `timeout:` then bounds the whole download (without it,
      each piece gets the connection's default timeout). On the node's host a tensor of 1 MiB or
      more comes through shared memory instead (see `upload/5`; `shared_memory: false` turns it
      off for one call).

      A download makes a new binary; where the BEAM cannot take its memory from what it freed
      before, every 4 KiB page of it is faulted in afresh, which some VMs price at ~11 µs a page
      (0.37 GB/s). A BEAM that moves tensors of tens of MiB over the network keeps more freed
      segments for reuse with `+MMmcs 30` (the default keeps 10): 64 MiB downloads in a loop
      then ran at 23-33 ms instead of 226-433 ms in the benchmark's transfer section on such a
      VM (two runs, one with the flag; bench/README.md).

      ## Examples

          iex> {:ok, t} = Mure.upload(conn, <<7::32-native>>, {:s, 32}, {})
          iex> Mure.download(t)
          {:ok, <<7, 0, 0, 0>>}

      """
      @spec download(Tensor.t(), call_opts()) :: {:ok, binary()} | {:error, error()}
      defdelegate download(tensor, opts \\ []), to: Mure.Api.Transfers

      @doc """
      Frees a tensor on the node. Using it afterwards gives an `:unknown_handle` error.

      ## Examples

          iex> Mure.free(t)
          :ok
          iex> Mure.download(t)
          {:error, %Mure.Error{kind: :unknown_handle, message: "..."}}

      """
      @spec free(Tensor.t(), call_opts()) :: :ok | {:error, error()}
      defdelegate free(tensor, opts \\ []), to: Mure.Api.Transfers

      @doc """
      Hands a tensor to another process of this BEAM: from now on it lives as long as
      `pid` does, not as long as the process that made it (see "Tensors belong to the
      process that made them" in the moduledoc). The tensor itself is unchanged and any
      process may go on using it.

      The way to keep what a `Task` or a worker made after it exits: give it to the
      process that will hold it, before the maker exits. Giving it to a process that has
      already exited frees it. `pid` must be a local pid (an `ArgumentError` otherwise).

      ## Examples

          iex> task = Task.async(fn ->
          ...>   t = Mure.iota!(conn, {1024})
          ...>   :ok = Mure.give(t, caller)
          ...>   t
          ...> end)
          iex> t = Task.await(task)          # still resident after the task's exit
          iex> Mure.download!(t) |> byte_size()
          4096

      """
      @spec give(Tensor.t(), pid(), call_opts()) :: :ok | {:error, error()}
      defdelegate give(tensor, pid, opts \\ []), to: Mure.Api.Transfers

      @doc """
      Like `upload/5`, but returns at once with a `Mure.Request` to await (`await/2`). Data
      larger than the connection's `:chunk_size` moves in pieces from a helper process while
      the caller goes on; the tensor belongs to the caller.

      ## Examples

          iex> r = Mure.async_upload(conn, batch, {:f, 32}, {256, 784})
          iex> {:ok, x} = Mure.await(r)

      """
      @spec async_upload(conn(), binary(), type(), shape(), call_opts()) :: Request.t()
      defdelegate async_upload(conn, data, type, shape, opts \\ []), to: Mure.Api.Transfers

      @doc """
      Like `download/2`, but returns at once with a `Mure.Request` to await (`await/2`).

      ## Examples

          iex> r = Mure.async_download(y)
          iex> {:ok, bin} = Mure.await(r)

      """
      @spec async_download(Tensor.t(), call_opts()) :: Request.t()
      defdelegate async_download(tensor, opts \\ []), to: Mure.Api.Transfers
    end
  end

  @doc false
  @spec upload(GenServer.server(), binary(), Mure.type(), Mure.shape(), keyword()) ::
          {:ok, Tensor.t()} | {:error, Exception.t()}
  def upload(conn, data, type, shape, opts \\ []) do
    Call.check_data!(data, type, shape, "upload")

    case in_pieces(conn, byte_size(data), opts) do
      {:pieces, limits, timeout} ->
        Transfer.upload(conn, data, type, shape, self(), Request.budget(timeout), limits)

      :whole ->
        case Call.call(conn, {:upload, type, shape, data}, [], call_opts(opts)) do
          {:ok, value, node, session} -> uploaded(conn, type, shape, value, node, session)
          {:error, error} -> {:error, error}
        end
    end
  end

  @doc false
  @spec download(Tensor.t(), keyword()) :: {:ok, binary()} | {:error, Exception.t()}
  def download(tensor, opts \\ []) do
    Call.check_tensor!(tensor, "download")

    case in_pieces(tensor.conn, Tensor.byte_size(tensor), opts) do
      {:pieces, limits, timeout} ->
        Transfer.download(tensor, Request.budget(timeout), limits)

      :whole ->
        case Call.call(tensor.conn, {:download, tensor.id}, [tensor.session], call_opts(opts)) do
          {:ok, value, _node, _session} -> downloaded(tensor, value)
          {:error, error} -> {:error, error}
        end
    end
  end

  @doc false
  @spec free(Tensor.t(), keyword()) :: :ok | {:error, Exception.t()}
  def free(tensor, opts \\ []) do
    Call.check_tensor!(tensor, "free")

    case Call.call(tensor.conn, {:free, tensor.id}, [tensor.session], opts) do
      {:ok, :freed, _node, _session} -> :ok
      {:ok, other, _node, _session} -> {:error, Call.unexpected(:free, other)}
      {:error, error} -> {:error, error}
    end
  end

  @doc false
  @spec give(Tensor.t(), pid(), keyword()) :: :ok | {:error, Exception.t()}
  def give(tensor, pid, opts \\ []) do
    Call.check_tensor!(tensor, "give")

    unless is_pid(pid) and node(pid) == node() do
      raise ArgumentError,
            "give: the new owner must be a pid of this BEAM (#{node()}), got: #{inspect(pid)}"
    end

    case Call.call(tensor.conn, {:give, tensor.id, pid}, [tensor.session], opts) do
      {:ok, :given, _node, _session} -> :ok
      {:ok, other, _node, _session} -> {:error, Call.unexpected(:give, other)}
      {:error, error} -> {:error, error}
    end
  end

  @doc false
  @spec async_upload(GenServer.server(), binary(), Mure.type(), Mure.shape(), keyword()) ::
          Request.t()
  def async_upload(conn, data, type, shape, opts \\ []) do
    Call.check_data!(data, type, shape, "async_upload")

    case in_pieces(conn, byte_size(data), opts) do
      {:pieces, limits, timeout} ->
        owner = self()

        Request.job(
          timeout,
          &Transfer.upload(conn, data, type, shape, owner, &1, limits),
          "upload"
        )

      :whole ->
        finish = &uploaded(conn, type, shape, &1, &2, &3)
        Request.submit(conn, {:upload, type, shape, data}, [], timeout(opts), finish, "upload")
    end
  end

  @doc false
  @spec async_download(Tensor.t(), keyword()) :: Request.t()
  def async_download(tensor, opts \\ []) do
    Call.check_tensor!(tensor, "async_download")

    case in_pieces(tensor.conn, Tensor.byte_size(tensor), opts) do
      {:pieces, limits, timeout} ->
        Request.job(timeout, &Transfer.download(tensor, &1, limits), "download")

      :whole ->
        Request.submit(
          tensor.conn,
          {:download, tensor.id},
          [tensor.session],
          timeout(opts),
          fn value, _node, _session -> downloaded(tensor, value) end,
          "download"
        )
    end
  end

  # The reply to a whole upload: the new tensor's handle.
  defp uploaded(conn, type, shape, value, node, session) do
    with :error <- Tensor.from_reply(conn, value, node, session, {type, shape}),
         do: {:error, Call.unexpected(:upload, value)}
  end

  # The reply to a whole download: all of the tensor's bytes.
  defp downloaded(tensor, data) when is_binary(data) do
    expected = Tensor.byte_size(tensor)

    if byte_size(data) == expected do
      {:ok, data}
    else
      {:error,
       %Error{
         kind: :internal,
         message:
           "download: the node returned #{byte_size(data)} bytes for #{inspect(tensor)} (expected #{expected})"
       }}
    end
  end

  defp downloaded(_tensor, other), do: {:error, Call.unexpected(:download, other)}

  # Whether `bytes` move in pieces (see Mure.Transfer): {:pieces, limits, timeout} or
  # :whole. Pieces take `timeout:` only (it bounds the whole transfer).
  # With `shared_memory: false` (or on a connection without it) nothing goes through shared
  # memory; else a transfer of 1 MiB or more does when the node is on this host (Mure.Transfer).
  defp in_pieces(conn, bytes, opts) do
    opts = Keyword.validate!(opts, [:timeout, :shared_memory])
    Call.check_timeout!(opts[:timeout])
    shm = Keyword.get(opts, :shared_memory, true)

    unless is_boolean(shm),
      do: raise(ArgumentError, "expected :shared_memory to be a boolean, got: #{inspect(shm)}")

    with true <- bytes > Connection.min_chunk_size(),
         {:ok, %{chunk_size: chunk} = limits} <- Transfer.limits(conn),
         limits = %{limits | shm: limits.shm and shm},
         true <- bytes > chunk or Transfer.shm?(limits, bytes) do
      {:pieces, limits, opts[:timeout]}
    else
      _ -> :whole
    end
  end

  # The timeout of a whole transfer (in_pieces/3 has validated the options).
  defp timeout(opts), do: opts[:timeout]

  # The options a single message takes.
  defp call_opts(opts), do: Keyword.take(opts, [:timeout])
end
