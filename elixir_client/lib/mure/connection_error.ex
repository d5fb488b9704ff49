defmodule Mure.ConnectionError do
  @moduledoc """
  A transport error: the request may not have reached the node, or its reply was lost.

  `reason` is one of:

    * `:timeout` - no reply within the call's timeout (the late reply is dropped)
    * `:disconnected` - the connection is down and reconnecting; nothing was sent
    * `:node_down` - the distribution connection to the node dropped while the
      request was in flight
    * `:node_exited` - the node's OS process (launched by this connection) exited
      while the request was in flight
    * `:closed` - the connection process is not running
    * `:not_alive` - the local BEAM is not distributed (start it with `--name`)
    * `:executable_not_found` - the `mure_node` binary does not exist
    * `:ready_timeout` - the launched node did not report `MURE_READY` in time
    * `:connect_failed` - `Node.connect/1` to the node failed
    * `:handshake_failed` - the node did not answer the initial `:hello`

  `details` may carry more context (an exit status, a path, ...).

  ## Examples

      iex> Exception.message(%Mure.ConnectionError{reason: :timeout})
      "mure connection error: timeout (no reply within the call's timeout; a late reply is dropped)"

  """

  @type reason ::
          :timeout
          | :disconnected
          | :node_down
          | :node_exited
          | :closed
          | :not_alive
          | :executable_not_found
          | :ready_timeout
          | :connect_failed
          | :handshake_failed
          | atom()

  @type t :: %__MODULE__{reason: reason(), details: term()}

  defexception [:reason, details: nil]

  @doc false
  # What a :not_alive error says to do; carried in `details`.
  @spec not_alive_hint() :: String.t()
  def not_alive_hint,
    do:
      "start it with `elixir --name client@127.0.0.1 ...` (or `iex --name ...`), or call " <>
        "`Node.start(:\"client@127.0.0.1\", :longnames)` before starting mure"

  @impl true
  def message(%__MODULE__{reason: reason, details: details}) do
    base = "mure connection error: #{reason}" <> explain(reason)

    case details do
      nil -> base
      details when is_binary(details) -> base <> ": " <> details
      details -> base <> ": " <> inspect(details)
    end
  end

  defp explain(:timeout), do: " (no reply within the call's timeout; a late reply is dropped)"
  defp explain(:disconnected), do: " (the connection to the node is down; reconnecting)"
  defp explain(:node_down), do: " (the node went down while the request was in flight)"
  defp explain(:node_exited), do: " (the node's OS process exited)"
  defp explain(:closed), do: " (the connection process is not running)"

  defp explain(:not_alive), do: " (the local BEAM is not distributed)"

  defp explain(:executable_not_found),
    do: " (build the node or pass `executable:` / set MURE_NODE_BIN)"

  defp explain(:ready_timeout), do: " (the node did not print MURE_READY in time)"
  defp explain(:connect_failed), do: " (Node.connect/1 failed)"
  defp explain(:handshake_failed), do: " (the node did not answer :hello)"
  defp explain(_), do: ""
end
