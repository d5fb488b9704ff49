Code.require_file("../examples/digits.exs", __DIR__)

defmodule Mure.DigitsTest do
  # A real model, trained on a node: the 64-64-10 MLP of examples/digits.exs (plain defn,
  # Nx.Defn.grad, SGD), jitted with compiler: Mure (one program per training step) on the
  # 1,797 8x8 handwritten digits that Debian's python3-sklearn ships, tested on a held-out split.
  use ExUnit.Case, async: true
  alias Mure.Examples.Digits

  @moduletag :capture_log
  @moduletag timeout: 300_000

  @batch 64
  @epochs 20

  test "an MLP trained with compiler: Mure reaches >= 95 % on held-out digits" do
    conn = start_supervised!({Mure, []})

    {{train_x, train_labels}, {test_x, test_labels}} =
      case Digits.load() do
        {:ok, data} -> data
        {:error, message} -> flunk(message)
      end

    assert length(train_labels) == 1437 and length(test_labels) == 360

    # The training set, on the node once, in batches (the last, short one is dropped).
    on_host = Digits.batches(train_x, Digits.one_hot(train_labels), @batch)
    batches = Digits.to_node(on_host, conn)

    step = Nx.Defn.jit(&Digits.train_step/4, compiler: Mure, connection: conn)
    lr = Nx.tensor(0.5, type: {:f, 32})

    # The loss a step returns is the batch's loss, as Nx.BinaryBackend computes it (a node once
    # fused the mean's sum onto the fused row sums and answered -0.0).
    {x0, y0} = hd(on_host)
    want = Digits.loss(Digits.init_params(), x0, y0) |> Nx.to_number()

    {node_x0, node_y0} = hd(batches)
    {first, loss} = step.(Digits.to_node(Digits.init_params(), conn), node_x0, node_y0, lr)
    got = Nx.to_number(loss)
    Digits.free([first, loss])

    assert abs(got - want) <= 1.0e-5 * abs(want),
           "first step's loss #{got}, Nx.BinaryBackend's #{want}"

    {{micros, {params, last_loss}}, programs} =
      Digits.programs(conn, fn ->
        :timer.tc(fn ->
          Enum.reduce(1..@epochs, {Digits.to_node(Digits.init_params(), conn), nil}, fn _, acc ->
            Digits.epoch(step, elem(acc, 0), batches, lr)
          end)
        end)
      end)

    steps = @epochs * length(batches)

    {accuracy, correct} =
      Nx.Defn.jit(&Digits.classify/2, compiler: Mure, connection: conn).(
        params,
        Digits.to_node(test_x, conn)
      )
      |> Digits.accuracy(test_labels)

    IO.puts(
      "digits: test accuracy #{Float.round(accuracy, 1)} % (#{correct} of #{length(test_labels)}; " <>
        "#{@epochs} epochs, #{steps} steps of #{@batch} in #{Float.round(micros / 1.0e6, 1)} s, " <>
        "#{Float.round(micros / steps / 1000, 2)} ms/step, #{programs / steps} round trips " <>
        "per step, final batch loss #{:erlang.float_to_binary(abs(Nx.to_number(last_loss)) * 1.0, scientific: 2)})"
    )

    assert programs == steps
    assert accuracy >= 95.0
  end
end
