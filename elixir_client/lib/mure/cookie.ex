defmodule Mure.Cookie do
  @moduledoc false
  # Wraps the distribution cookie so that `inspect/2`, crash reports and
  # `:sys.get_state/1` never show it (DBConnection style).

  @derive {Inspect, only: []}
  defstruct [:value]

  @type t :: %__MODULE__{value: atom()}

  @spec wrap(t() | atom() | String.t() | nil) :: t() | nil
  def wrap(nil), do: nil
  def wrap(%__MODULE__{} = cookie), do: cookie

  def wrap(cookie) when is_atom(cookie), do: %__MODULE__{value: cookie}

  def wrap(cookie) when is_binary(cookie) do
    if cookie == "" or String.contains?(cookie, ["\n", "\r"]) do
      raise ArgumentError, "expected :cookie to be a non-empty string without newlines"
    end

    %__MODULE__{value: String.to_atom(cookie)}
  end

  def wrap(_other),
    do:
      raise(
        ArgumentError,
        "expected :cookie to be an atom or a string, got a value of another type"
      )

  @spec value(t()) :: atom()
  def value(%__MODULE__{value: value}), do: value
end
