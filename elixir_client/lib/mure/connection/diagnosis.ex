defmodule Mure.Connection.Diagnosis do
  @moduledoc false
  # Why `Node.connect/1` to a node returned false, as far as it can be known from here.
  #
  # Distribution gives one bit; the causes differ in what the user must do. epmd on the
  # node's host tells two of them apart: no epmd answering (the host, or nothing runs
  # there), epmd without that name (a typo, or the node has not started or has exited).
  # When epmd lists the name and the connection still fails, the handshake was refused:
  # the cookies differ, or the two ends use different name kinds (short vs long), which is
  # visible from the names themselves.

  @epmd_timeout 2_000

  @doc false
  @spec explain(node()) :: String.t()
  def explain(node) do
    case String.split(Atom.to_string(node), "@") do
      [name, host] -> explain(node, name, host)
      _ -> "#{inspect(node)} is not a node name of the form name@host"
    end
  end

  defp explain(node, name, host) do
    case name_kind_mismatch(host) do
      nil -> ask_epmd(node, name, host)
      text -> text
    end
  end

  # A long-names BEAM cannot reach a short-named node and vice versa: Node.connect/1 just
  # returns false (the reason is only in the kernel's log).
  defp name_kind_mismatch(host) do
    local_host =
      case String.split(Atom.to_string(node()), "@") do
        [_, h] -> h
        _ -> nil
      end

    cond do
      is_nil(local_host) ->
        nil

      long_host?(local_host) and not long_host?(host) ->
        "this BEAM runs with long names (#{node()}) and #{host} is a short host name: " <>
          "give the node's full name (name@fully.qualified.host or name@127.0.0.1)"

      not long_host?(local_host) and long_host?(host) ->
        "this BEAM runs with short names (#{node()}) and the node has a long name: start " <>
          "this BEAM with --name instead of --sname"

      true ->
        nil
    end
  end

  defp long_host?(host), do: String.contains?(host, ".")

  defp ask_epmd(node, name, host) do
    case epmd_names(host) do
      {:ok, names} ->
        listed = for {n, port} <- names, into: %{}, do: {List.to_string(n), port}

        case Map.fetch(listed, name) do
          {:ok, port} ->
            "epmd on #{host} lists #{name} at port #{port}, but the distribution handshake " <>
              "failed: the cookie differs (give the node's cookie with the :cookie option or " <>
              "start this BEAM with it; the node logs \"wrong cookie\"), or the node refused " <>
              "the connection (see its log)"

          :error ->
            others = listed |> Map.keys() |> Enum.sort()

            "epmd on #{host} has no node named #{name} (it lists: " <>
              "#{if others == [], do: "none", else: Enum.join(others, ", ")}): check the name " <>
              "and that the node is running; #{inspect(node)} was asked"
        end

      {:error, reason} ->
        "no epmd answers on #{host} (#{inspect(reason)}): no node runs there, or the host " <>
          "name is wrong or unreachable"
    end
  end

  # epmd's names query has no timeout of its own (an unreachable host can hold it for the
  # TCP connect timeout): ask from a task and give up after a bound.
  defp epmd_names(host) do
    task = Task.async(fn -> :erl_epmd.names(String.to_charlist(host)) end)

    case Task.yield(task, @epmd_timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} -> result
      {:exit, reason} -> {:error, reason}
      nil -> {:error, :timeout}
    end
  end
end
