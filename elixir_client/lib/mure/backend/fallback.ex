defmodule Mure.Backend.Fallback do
  @moduledoc false
  # The one place where Mure.Backend runs a callback on Nx.BinaryBackend instead of the
  # node: the callbacks whose op the node lacks (window ops, LU, ...), the ops Nx defines on
  # complex types that the node's complex table lacks, and the variants of an op that
  # Mure.Expr's rules refuse (for example argmax with tie_break: :high). The tensors are downloaded,
  # the callback runs here, and its results are uploaded to the node again. Every fallback
  # is counted per callback (`Mure.Backend.fallbacks/0`), logged at debug level and sent as
  # the telemetry event [:mure, :backend, :fallback] (measurements %{count: 1}, metadata
  # %{callback: atom, reason: String.t()}), so that the ops the node should gain are the
  # ones counted here.

  require Logger

  @key {__MODULE__, :counters}

  @doc false
  @spec run(atom(), list(), GenServer.server(), atom(), String.t()) :: term()
  def run(name, args, conn, device, reason) do
    count(name)
    Logger.debug("Mure.Backend: #{name} falls back to Nx.BinaryBackend (#{reason})")

    :telemetry.execute([:mure, :backend, :fallback], %{count: 1}, %{
      callback: name,
      reason: reason
    })

    args = Enum.map(args, &to_binary_backend/1)
    # Nx.BinaryBackend's callbacks build tensors of their own (conv's vectorised helpers,
    # the scalars a reduce or map function gets and makes): those stay here, on
    # Nx.BinaryBackend, while it runs.
    previous = Nx.default_backend(Nx.BinaryBackend)

    result =
      try do
        if function_exported?(Nx.BinaryBackend, name, length(args)),
          do: apply(Nx.BinaryBackend, name, args),
          # an optional callback Nx.BinaryBackend leaves to Nx's own composition
          else: Mure.Backend.Linalg.compose(name, args)
      after
        Nx.default_backend(previous)
      end

    to_node(result, conn, device)
  end

  @doc false
  # The counts since the BEAM started: %{callback => count}.
  @spec counts() :: %{atom() => non_neg_integer()}
  def counts do
    case :persistent_term.get(@key, nil) do
      nil -> %{}
      {names, ref} -> names |> Enum.map(fn {n, i} -> {n, :counters.get(ref, i)} end) |> Map.new()
    end
    |> Map.reject(fn {_, c} -> c == 0 end)
  end

  @doc false
  @spec init_counters([atom()]) :: :ok
  def init_counters(names) do
    if :persistent_term.get(@key, nil) == nil do
      indexed = names |> Enum.uniq() |> Enum.with_index(1) |> Map.new()

      :persistent_term.put(
        @key,
        {indexed, :counters.new(map_size(indexed), [:write_concurrency])}
      )
    end

    :ok
  end

  # Tensors made with a `backend:` option never pass through Mure.Backend.init/1, so the
  # counters are also made here, on the first fallback.
  defp count(name) do
    if :persistent_term.get(@key, nil) == nil,
      do: init_counters(Keyword.keys(Nx.Backend.behaviour_info(:callbacks)))

    case :persistent_term.get(@key) do
      {names, ref} when is_map_key(names, name) -> :counters.add(ref, Map.fetch!(names, name), 1)
      _ -> :ok
    end
  end

  # Mure.Backend tensors (anywhere in the arguments: lists of tensors, tuples of outputs)
  # become Nx.BinaryBackend tensors; everything else (out templates, options, functions)
  # passes unchanged.
  defp to_binary_backend(%Nx.Tensor{data: %Mure.Backend{}} = t) do
    bin = Mure.Backend.download(t, "fallback")
    Nx.BinaryBackend.from_binary(%{t | data: nil}, bin, [])
  end

  defp to_binary_backend(list) when is_list(list), do: Enum.map(list, &to_binary_backend/1)

  defp to_binary_backend(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&to_binary_backend/1) |> List.to_tuple()

  defp to_binary_backend(other), do: other

  defp to_node(%Nx.Tensor{data: %Nx.BinaryBackend{}} = t, conn, device) do
    bin = Nx.BinaryBackend.to_binary(t, Nx.size(t))
    Mure.Backend.upload(t, bin, conn, device)
  end

  defp to_node(tuple, conn, device) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&to_node(&1, conn, device)) |> List.to_tuple()

  defp to_node(list, conn, device) when is_list(list),
    do: Enum.map(list, &to_node(&1, conn, device))

  defp to_node(%Stream{} = stream, conn, device),
    do: Stream.map(stream, &to_node(&1, conn, device))

  defp to_node(other, _conn, _device), do: other
end
