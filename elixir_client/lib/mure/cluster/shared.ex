defmodule Mure.Cluster.Shared do
  @moduledoc """
  A tensor shared by every member of a `Mure.Cluster`: made by `Mure.Cluster.share/3`.

  The cluster keeps the data on the client and uploads it to a member the first time a job
  needs it there, once; it then stays resident on that member for every later job. A member
  that joins (or rejoins) later gets it on first use. It is freed on every member by
  `Mure.Cluster.unshare/2`, or when the process that shared it exits.

  The data is never shown by `inspect/1`.
  """

  @enforce_keys [:cluster, :id, :type, :shape, :data]
  defstruct [:cluster, :id, :type, :shape, :data]

  @type t :: %__MODULE__{
          cluster: pid(),
          id: pos_integer(),
          type: Mure.type(),
          shape: Mure.shape(),
          data: binary()
        }

  defimpl Inspect do
    def inspect(%{id: id, type: type, shape: shape}, _opts) do
      "#Mure.Cluster.Shared<#{id} #{Mure.Types.type_to_string(type)}#{Mure.Types.shape_to_string(shape)}>"
    end
  end
end
