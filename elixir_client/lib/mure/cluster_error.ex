defmodule Mure.ClusterError do
  @moduledoc """
  A job of `Mure.Cluster` could not finish on any member.

  `reason` is one of:

    * `:no_members` - the cluster has no member ready to take work (none found on the
      hosts, or every one of them left or failed during the job); `details` lists what
      happened to each
    * `:timeout` - the job did not finish within its `timeout:`
    * `:unshared` - a `Mure.Cluster.Shared` argument was unshared (or its owner exited)
      while the job ran
    * `:piece_crashed` - running a piece raised on the client (`details` has the exception)

  A member that fails mid-job is not an error by itself: its unfinished share is re-run on
  the others. Errors of the request itself (a wrong program, out of range indices...) come
  back as the `Mure.Error` the member gave.

  ## Examples

      iex> Exception.message(%Mure.ClusterError{reason: :no_members, details: "no host answered"})
      "mure cluster error: no_members (no member is ready to take work; start mure nodes on the cluster's hosts or list them with nodes:): no host answered"

  """

  @type t :: %__MODULE__{
          reason: :no_members | :timeout | :unshared | :piece_crashed | atom(),
          details: String.t() | nil
        }

  defexception [:reason, details: nil]

  @impl true
  def message(%__MODULE__{reason: reason, details: details}) do
    base = "mure cluster error: #{reason}#{explain(reason)}"
    if details in [nil, ""], do: base, else: base <> ": " <> details
  end

  defp explain(:no_members),
    do:
      " (no member is ready to take work; start mure nodes on the cluster's hosts or list them with nodes:)"

  defp explain(:timeout), do: " (the job did not finish within its timeout)"

  defp explain(:unshared),
    do: " (a shared tensor the job uses was unshared, or its owner exited, during the job)"

  defp explain(:piece_crashed),
    do: " (running a piece raised on the client; a bug, not a member's failure)"

  defp explain(_), do: ""
end
