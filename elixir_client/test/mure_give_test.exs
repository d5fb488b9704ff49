defmodule Mure.GiveTest do
  # Handing a tensor to another owner ({:give, handle, pid}): its lifetime follows the new
  # owner from then on, on the real node, with the node's own DOWN handling. No sleeps: a
  # tensor the same process did not give is the witness that the node saw the exit.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  alias Mure.Error

  setup do
    %{conn: start_supervised!({Mure, blis_threads: 1})}
  end

  defp gone?(t), do: match?({:error, %Error{kind: :unknown_handle}}, Mure.download(t))

  test "a tensor a Task made and gave to its caller outlives the Task", %{conn: conn} do
    caller = self()

    {given, witness} =
      Task.async(fn ->
        given = Mure.upload!(conn, <<1, 2, 3>>, {:u, 8}, {3})
        witness = Mure.upload!(conn, <<4>>, {:u, 8}, {1})
        assert :ok = Mure.give(given, caller)
        {given, witness}
      end)
      |> Task.await()

    # The witness stayed the Task's: once it is freed, the node has handled the Task's exit.
    assert wait_until(fn -> gone?(witness) end, 5_000)
    assert Mure.download!(given) == <<1, 2, 3>>
    assert Mure.stats!(conn).connection_tensors == 1
  end

  test "a tensor given to a process is freed when that process exits", %{conn: conn} do
    keeper = spawn(fn -> receive(do: (:stop -> :ok)) end)
    t = Mure.upload!(conn, <<9, 9>>, {:u, 8}, {2})
    assert :ok = Mure.give!(t, keeper)
    # Still ours to use while the keeper lives.
    assert {:ok, %{shape: {2}}} = Mure.reshape(t, {2})
    send(keeper, :stop)
    assert wait_until(fn -> gone?(t) end, 5_000)
  end

  test "giving to a process that has already exited frees the tensor", %{conn: conn} do
    dead = spawn(fn -> :ok end)
    ref = Process.monitor(dead)
    assert_receive {:DOWN, ^ref, :process, ^dead, _}
    t = Mure.upload!(conn, <<1>>, {:u, 8}, {1})
    assert :ok = Mure.give(t, dead)
    assert wait_until(fn -> gone?(t) end, 5_000)
  end

  test "the new owner must be a local pid; a freed tensor cannot be given", %{conn: conn} do
    t = Mure.upload!(conn, <<1>>, {:u, 8}, {1})

    assert_raise ArgumentError, ~r/give: the new owner must be a pid of this BEAM/, fn ->
      Mure.give(t, :not_a_pid)
    end

    :ok = Mure.free(t)
    assert {:error, %Error{kind: :unknown_handle}} = Mure.give(t, self())
  end
end
