defmodule Mure.DigitsTest do
  # A real model, trained on a node: a 64-64-10 MLP in plain defn, trained with
  # Nx.Defn.grad and compiler: Mure (one program per training step) on the 1,797 8x8
  # handwritten digits that Debian's python3-sklearn ships, tested on a held-out split.
  use ExUnit.Case, async: true
  import Nx.Defn

  @moduletag :capture_log
  @moduletag timeout: 300_000

  @data "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
  @batch 64
  @epochs 20
  @hidden 64

  defn predict({w1, b1, w2, b2}, x) do
    x
    |> Nx.dot(w1)
    |> Nx.add(b1)
    |> Nx.max(0)
    |> Nx.dot(w2)
    |> Nx.add(b2)
  end

  defn loss(params, x, y) do
    logits = predict(params, x)
    max = Nx.reduce_max(logits, axes: [1], keep_axes: true)
    shifted = logits - max
    log_softmax = shifted - Nx.log(Nx.sum(Nx.exp(shifted), axes: [1], keep_axes: true))
    -Nx.mean(Nx.sum(y * log_softmax, axes: [1]))
  end

  defn train_step(params, x, y, lr) do
    {loss, {gw1, gb1, gw2, gb2}} = value_and_grad(params, &loss(&1, x, y))
    {w1, b1, w2, b2} = params
    {{w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2}, loss}
  end

  defn(classify(params, x), do: Nx.argmax(predict(params, x), axis: 1))

  # The rows of the CSV (64 pixels 0..16, then the label), split 80/20 with a fixed seed.
  defp load do
    unless File.regular?(@data) do
      flunk("#{@data} not found: install python3-sklearn (scripts/bootstrap does)")
    end

    rows =
      @data
      |> File.read!()
      |> :zlib.gunzip()
      |> String.split("\n", trim: true)
      |> Enum.map(fn line -> line |> String.split(",") |> Enum.map(&String.to_integer/1) end)

    assert length(rows) == 1797
    :rand.seed(:exsss, {14, 2026, 7})
    {train, test} = rows |> Enum.shuffle() |> Enum.split(1437)
    {tensors(train), tensors(test)}
  end

  defp tensors(rows) do
    x =
      rows |> Enum.map(&Enum.take(&1, 64)) |> Nx.tensor(type: {:f, 32}, backend: Nx.BinaryBackend)

    labels = Enum.map(rows, &List.last/1)
    {Nx.divide(x, 16.0), labels}
  end

  defp one_hot(labels) do
    labels
    |> Nx.tensor(type: {:s, 64}, backend: Nx.BinaryBackend)
    |> Nx.new_axis(1)
    |> Nx.equal(Nx.iota({1, 10}, backend: Nx.BinaryBackend))
    |> Nx.as_type({:f, 32})
  end

  defp init_params(conn) do
    key = Nx.Random.key(42)
    {w1, key} = Nx.Random.normal(key, 0.0, :math.sqrt(2 / 64), shape: {64, @hidden})
    {w2, _key} = Nx.Random.normal(key, 0.0, :math.sqrt(2 / @hidden), shape: {@hidden, 10})
    b1 = Nx.broadcast(0.0, {@hidden})
    b2 = Nx.broadcast(0.0, {10})
    {w1, b1, w2, b2} |> Nx.Defn.Composite.traverse(&to_node(&1, conn))
  end

  defp to_node(t, conn), do: Nx.backend_transfer(t, {Mure.Backend, connection: conn})

  test "an MLP trained with compiler: Mure reaches >= 95 % on held-out digits" do
    conn = start_supervised!({Mure, []})
    {{train_x, train_labels}, {test_x, test_labels}} = load()

    # The training set, on the node once, in batches (the last, short one is dropped).
    n = div(length(train_labels), @batch) * @batch
    train_y = one_hot(train_labels)

    batches =
      for i <- 0..(div(n, @batch) - 1) do
        {to_node(Nx.slice(train_x, [i * @batch, 0], [@batch, 64]), conn),
         to_node(Nx.slice(train_y, [i * @batch, 0], [@batch, 10]), conn)}
      end

    step = Nx.Defn.jit(&train_step/4, compiler: Mure, connection: conn)
    lr = Nx.tensor(0.5, type: {:f, 32})
    parent = self()
    id = make_ref()

    :telemetry.attach(
      id,
      [:mure, :compiler, :program],
      fn _, _, %{conn: c}, _ ->
        if c == conn, do: send(parent, {id, :program})
      end,
      nil
    )

    {micros, {params, last_loss}} =
      :timer.tc(fn ->
        Enum.reduce(1..@epochs, {init_params(conn), nil}, fn _epoch, acc ->
          Enum.reduce(batches, acc, fn {x, y}, {params, _} ->
            {new, loss} = step.(params, x, y, lr)
            params |> Tuple.to_list() |> Enum.each(&Nx.backend_deallocate/1)
            {new, loss}
          end)
        end)
      end)

    :telemetry.detach(id)
    steps = @epochs * length(batches)
    programs = count(id, 0)

    predicted =
      Nx.Defn.jit(&classify/2, compiler: Mure, connection: conn).(params, to_node(test_x, conn))
      |> Nx.to_flat_list()

    correct = Enum.zip(predicted, test_labels) |> Enum.count(fn {p, l} -> p == l end)
    accuracy = 100 * correct / length(test_labels)

    IO.puts(
      "digits: test accuracy #{Float.round(accuracy, 1)} % (#{correct} of #{length(test_labels)}; " <>
        "#{@epochs} epochs, #{steps} steps of #{@batch} in #{Float.round(micros / 1.0e6, 1)} s, " <>
        "#{Float.round(micros / steps / 1000, 2)} ms/step, #{programs / steps} round trips " <>
        "per step, final batch loss #{:erlang.float_to_binary(abs(Nx.to_number(last_loss)) * 1.0, scientific: 2)})"
    )

    assert programs == steps
    assert accuracy >= 95.0
  end

  defp count(id, n) do
    receive do
      {^id, :program} -> count(id, n + 1)
    after
      0 -> n
    end
  end
end
