defmodule Mure.Tensor do
  @moduledoc """
  A tensor resident on a mure node.

  The struct knows the connection it was created through (`conn`), the node that holds
  it (`node`), its opaque handle (`id`), its `type` (an Nx type tuple such as `{:f, 32}`)
  and its `shape` (a tuple such as `{512, 512}`; `{}` is a scalar).

  The data stays on the node until `Mure.download/2`. The tensor is freed by
  `Mure.free/2`, when the process that created it exits, or when the connection to the
  node is lost. After a reconnection old tensors are reported as `:unknown_handle`
  by the client, so a handle can never name another tensor created later.

  ## Examples

      iex> {:ok, t} = Mure.upload(conn, <<1.0::float-32-native, 2.0::float-32-native>>, {:f, 32}, {2})
      iex> t
      #Mure.Tensor<f32[2]>

  """

  @enforce_keys [:conn, :node, :id, :type, :shape]
  defstruct [:conn, :node, :id, :type, :shape, :session]

  @type t :: %__MODULE__{
          conn: GenServer.server(),
          node: node(),
          id: pos_integer(),
          type: Mure.type(),
          shape: Mure.shape(),
          session: reference() | nil
        }

  @doc """
  The number of elements of the tensor.

  ## Examples

      iex> Mure.Tensor.size(%Mure.Tensor{conn: nil, node: nil, id: 1, type: {:f, 32}, shape: {2, 3}})
      6

  """
  @spec size(t()) :: non_neg_integer()
  def size(%__MODULE__{shape: shape}), do: Mure.Types.size(shape)

  @doc """
  The size of the tensor's data in bytes.

  ## Examples

      iex> Mure.Tensor.byte_size(%Mure.Tensor{conn: nil, node: nil, id: 1, type: {:f, 64}, shape: {2, 3}})
      48

  """
  @spec byte_size(t()) :: non_neg_integer()
  def byte_size(%__MODULE__{type: type, shape: shape}),
    do: Mure.Types.size(shape) * Mure.Types.itemsize(type)

  @doc false
  # The one place a reply of the node becomes a tensor. `value` is what the node answered
  # to a request that makes a tensor: a bare handle (uploads and allocations; `expected`
  # gives its type and shape) or `{handle, type, shape}` (ops; when `expected` is given,
  # the type and shape must be those). Anything else is `:error`.
  @spec from_reply(
          GenServer.server(),
          term(),
          node(),
          reference() | nil,
          {Mure.type(), Mure.shape()} | nil
        ) :: {:ok, t()} | :error
  def from_reply(conn, value, node, session, expected \\ nil)

  def from_reply(conn, handle, node, session, {type, shape})
      when is_integer(handle) and handle > 0,
      do: {:ok, new(conn, node, handle, type, shape, session)}

  def from_reply(conn, {handle, type, shape}, node, session, expected)
      when is_integer(handle) and handle > 0 and is_tuple(type) and is_tuple(shape) and
             (expected == nil or expected == {type, shape}),
      do: {:ok, new(conn, node, handle, type, shape, session)}

  def from_reply(_conn, _value, _node, _session, _expected), do: :error

  defp new(conn, node, id, type, shape, session),
    do: %__MODULE__{conn: conn, node: node, id: id, type: type, shape: shape, session: session}

  defimpl Inspect do
    def inspect(%Mure.Tensor{type: type, shape: shape}, _opts) do
      "#Mure.Tensor<" <>
        Mure.Types.type_to_string(type) <> Mure.Types.shape_to_string(shape) <> ">"
    end
  end
end
