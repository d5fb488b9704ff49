defmodule Mure.Test.Fallbacks do
  @moduledoc false
  # The Mure.Backend fallbacks of one process while a function runs. Mure.Backend.fallbacks/0
  # counts the whole BEAM's, and test modules running at the same time make fallbacks on
  # purpose; the telemetry event [:mure, :backend, :fallback] is executed in the process
  # that called the op, so this counts only the caller's.

  @doc false
  # {fun's result, %{callback => count}} of the calling process.
  @spec during((() -> result)) :: {result, %{atom() => pos_integer()}} when result: term()
  def during(fun) do
    me = self()
    id = {__MODULE__, make_ref()}
    :telemetry.attach(id, [:mure, :backend, :fallback], &__MODULE__.seen/4, {me, id})

    try do
      result = fun.()
      {result, collect(id, %{})}
    after
      :telemetry.detach(id)
      collect(id, %{})
    end
  end

  @doc false
  # Starts counting the calling process's fallbacks; `counts/1` reads them so far.
  @spec start() :: term()
  def start do
    id = {__MODULE__, make_ref()}
    :telemetry.attach(id, [:mure, :backend, :fallback], &__MODULE__.seen/4, {self(), id})
    ExUnit.Callbacks.on_exit(fn -> :telemetry.detach(id) end)
    {id, :counts}
  end

  @doc false
  @spec counts(term()) :: %{atom() => pos_integer()}
  def counts({id, key}) do
    total = collect(id, Process.get({id, key}, %{}))
    Process.put({id, key}, total)
    total
  end

  @doc false
  def seen(_event, _measurements, %{callback: name}, {pid, id}),
    do: if(self() == pid, do: send(pid, {id, name}))

  defp collect(id, acc) do
    receive do
      {^id, name} -> collect(id, Map.update(acc, name, 1, &(&1 + 1)))
    after
      0 -> acc
    end
  end
end
