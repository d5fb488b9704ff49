defmodule Mure.Error do
  @moduledoc """
  An error reported by the mure node (or refused on its behalf by the client).

  `kind` is one of the reason atoms of the protocol:

    * `:badarg` - a request of the wrong shape, arity or element type
    * `:unknown_op` - the op is not an op of this node
    * `:bad_version` - the envelope's protocol version is not 1
    * `:bad_type` - a type tuple that is not supported
    * `:bad_shape` - a shape that is not a tuple of non-negative integers,
      has too many dimensions, or whose byte size overflows
    * `:size_mismatch` - a binary whose size does not match its type and shape
    * `:shape_mismatch` - operands whose shapes do not fit the op
    * `:type_mismatch` - operands whose types differ or are not supported by the op
    * `:unknown_handle` - a tensor that is not (or no longer) resident for this connection
    * `:out_of_memory` - the node's memory limit would be exceeded; nothing was allocated
    * `:message_too_large` - the request is larger than the node accepts (the client
      refuses such uploads itself before sending them)
    * `:unsupported` - the op is not available on this node (e.g. no OpenCL device)
    * `:internal` - a device or library call failed
    * `:overloaded` - a bounded queue of the node was full; retry later

  Transport problems (node down, timeouts) are `Mure.ConnectionError`s instead.

  ## Examples

      iex> Exception.message(%Mure.Error{kind: :out_of_memory, message: "upload needs 4096 bytes"})
      "out_of_memory: upload needs 4096 bytes"

  """

  @type kind ::
          :badarg
          | :unknown_op
          | :bad_version
          | :bad_type
          | :bad_shape
          | :size_mismatch
          | :shape_mismatch
          | :type_mismatch
          | :unknown_handle
          | :out_of_memory
          | :message_too_large
          | :unsupported
          | :internal
          | :overloaded
          | atom()

  @type t :: %__MODULE__{kind: kind(), message: String.t()}

  defexception [:kind, message: ""]

  @impl true
  def message(%__MODULE__{kind: kind, message: ""}), do: "#{kind}"
  def message(%__MODULE__{kind: kind, message: message}), do: "#{kind}: #{message}"

  @doc false
  # Maps the `reason` of a node reply onto an exception.
  @spec from_reason(term()) :: t()
  def from_reason(:overloaded),
    do: %__MODULE__{kind: :overloaded, message: "the node's request queue is full; retry later"}

  def from_reason({kind, message}) when is_atom(kind) and is_binary(message),
    do: %__MODULE__{kind: kind, message: message}

  def from_reason({kind, message}) when is_atom(kind),
    do: %__MODULE__{kind: kind, message: inspect(message)}

  def from_reason(other),
    do: %__MODULE__{kind: :internal, message: "unexpected error reply: #{inspect(other)}"}
end
