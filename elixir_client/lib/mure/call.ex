defmodule Mure.Call do
  @moduledoc false
  # The synchronous calls behind Mure's functions, and the argument checks they share.
  #
  # The caller owns its timeout (Redix style): it monitors the connection process with an
  # alias, and on timeout demonitors it, which deactivates the alias so that the runtime
  # drops a late reply. The connection also times every request (with this timeout or its
  # default) so that its table of requests in flight stays bounded.

  alias Mure.{Connection, Error, Request, Tensor, Types}

  @doc false
  # Sends `request` (tagged with the sessions of the tensors it names) and waits for the
  # reply: {:ok, value, node, session} or {:error, exception}. `opts` takes `timeout:` only.
  @spec call(GenServer.server(), term(), list(), keyword()) ::
          {:ok, term(), node(), reference()} | {:error, Exception.t()}
  def call(conn, request, sessions, opts) do
    opts = Keyword.validate!(opts, [:timeout])
    timeout = opts[:timeout]
    check_timeout!(timeout)

    # Not cancellable: a cancellation meant for a job's transfer waits for the job's own wait.
    with {:ok, _pid, alias} <- Request.send_call(conn, request, sessions, self(), timeout) do
      Request.receive_call(alias, timeout || :infinity, nil, false)
    end
  end

  @doc false
  # A call whose reply is a plain value that `check` accepts.
  @spec value(GenServer.server(), term(), keyword(), (term() -> boolean())) ::
          {:ok, term()} | {:error, Exception.t()}
  def value(conn, request, opts, check) do
    case call(conn, request, [], opts) do
      {:ok, value, _node, _session} ->
        if check.(value), do: {:ok, value}, else: {:error, unexpected(request, value)}

      {:error, error} ->
        {:error, error}
    end
  end

  @doc false
  # A call that makes a tensor from `operands` (all on `conn`): the request, placed by
  # `device:`, and the tensor of its reply. With `expected` ({type, shape}) a reply of
  # another type or shape is an :internal error (and the tensor is freed).
  @spec tensor(GenServer.server(), tuple(), [Tensor.t()], keyword(), tuple() | nil) ::
          {:ok, Tensor.t()} | {:error, Exception.t()}
  def tensor(conn, request, operands, opts, expected \\ nil) do
    {placed, opts} = placed(request, opts)
    sessions = operands |> Enum.map(& &1.session) |> Enum.uniq()

    case call(conn, placed, sessions, opts) do
      {:ok, value, node, session} ->
        with :error <- Tensor.from_reply(conn, value, node, session, expected) do
          with {:ok, %Tensor{} = t} <- Tensor.from_reply(conn, value, node, session),
               do: Request.free_async(t)

          {:error, unexpected(elem(request, 0), value)}
        end

      {:error, error} ->
        {:error, error}
    end
  end

  # `device: :cpu | :opencl | :auto` places a compute op ({:on, device, request}).
  defp placed(request, opts) do
    case Keyword.pop(opts, :device) do
      {nil, opts} ->
        {request, opts}

      {device, opts} when device in [:cpu, :opencl, :auto] ->
        {{:on, device, request}, opts}

      {other, _} ->
        raise ArgumentError,
              "expected :device to be :cpu, :opencl or :auto, got: #{inspect(other)}"
    end
  end

  @doc false
  @spec unexpected(term(), term()) :: Error.t()
  def unexpected(op, value),
    do: %Error{
      kind: :internal,
      message: "#{op}: unexpected reply from the node: #{inspect(value, limit: 10)}"
    }

  @doc false
  @spec check_timeout!(term()) :: :ok
  def check_timeout!(timeout) do
    unless is_nil(timeout) or Connection.valid_timeout?(timeout) do
      raise ArgumentError,
            "expected :timeout to be a non-negative integer or :infinity, got: #{inspect(timeout)}"
    end

    :ok
  end

  @doc false
  @spec check_tensor!(term(), String.t()) :: :ok
  def check_tensor!(%Tensor{}, _what), do: :ok

  def check_tensor!(other, what),
    do:
      raise(ArgumentError, "#{what}: expected a %Mure.Tensor{}, got: #{inspect(other, limit: 5)}")

  @doc false
  # Every one a tensor, all of one connection.
  @spec check_tensors!([term()], String.t()) :: :ok
  def check_tensors!(tensors, what) do
    Enum.each(tensors, &check_tensor!(&1, what))

    case tensors do
      [a | rest] ->
        case Enum.find(rest, &(&1.conn != a.conn or &1.node != a.node)) do
          nil ->
            :ok

          b ->
            raise ArgumentError,
                  "#{what}: the tensors belong to different connections " <>
                    "(#{inspect(a.conn)} on #{a.node} and #{inspect(b.conn)} on #{b.node})"
        end

      [] ->
        :ok
    end
  end

  @doc false
  # The data of an upload: a binary of exactly the size of a `type` tensor of `shape`.
  @spec check_data!(term(), term(), term(), String.t()) :: :ok
  def check_data!(data, type, shape, what) do
    unless is_binary(data) do
      raise ArgumentError,
            "#{what}: expected the data to be a binary, got: #{inspect(data, limit: 5)}"
    end

    Types.check_type!(type, what)
    Types.check_shape!(shape, what)
    itemsize = Types.itemsize(type)
    count = Types.size(shape)

    if byte_size(data) != count * itemsize do
      raise ArgumentError,
            "#{what}: expected #{count * itemsize} bytes for a " <>
              "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} tensor " <>
              "(#{count} elements of #{itemsize} bytes), got #{byte_size(data)} bytes"
    end

    :ok
  end

  @doc false
  @spec describe(Tensor.t()) :: String.t()
  def describe(%Tensor{type: type, shape: shape}),
    do: Types.type_to_string(type) <> Types.shape_to_string(shape)

  @doc false
  # What the `!` variants return: the value, or the exception raised.
  @spec unwrap!(:ok | {:ok, term()} | {:error, Exception.t()}) :: term()
  def unwrap!(:ok), do: :ok
  def unwrap!({:ok, value}), do: value
  def unwrap!({:error, error}), do: raise(error)
end
