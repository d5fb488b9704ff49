# The digits model: a 64-64-10 MLP in plain defn, trained with value_and_grad and SGD on the
# 1,797 8x8 handwritten digits that Debian's python3-sklearn ships. One module for the test
# (test/digits_test.exs), the bench (bench/defn.exs) and the demo (scripts/demo.exs), loaded
# with `Code.require_file/1`: an example, not part of the :mure library (lib/ does not hold it).
defmodule Mure.Examples.Digits do
  @moduledoc false
  import Nx.Defn

  @data "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
  @hidden 64
  @train_rows 1437

  @doc "The CSV the data comes from."
  def data_path, do: @data

  @doc "Units of the hidden layer."
  def hidden, do: @hidden

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

  # One SGD step: the new parameters and the loss of the batch before the step.
  defn train_step(params, x, y, lr) do
    {loss, {gw1, gb1, gw2, gb2}} = value_and_grad(params, &loss(&1, x, y))
    {w1, b1, w2, b2} = params
    {{w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2}, loss}
  end

  defn(classify(params, x), do: Nx.argmax(predict(params, x), axis: 1))

  @doc """
  The rows of the CSV (64 pixels 0..16, then the label), split 80/20 with a fixed seed:
  `{:ok, {{train_x, train_labels}, {test_x, test_labels}}}` (x: f32 pixels / 16 on
  Nx.BinaryBackend, labels: lists), or `{:error, message}` when the data is missing.
  """
  def load do
    if File.regular?(@data) do
      rows =
        @data
        |> File.read!()
        |> :zlib.gunzip()
        |> String.split("\n", trim: true)
        |> Enum.map(fn line -> line |> String.split(",") |> Enum.map(&String.to_integer/1) end)

      if length(rows) == 1797 do
        :rand.seed(:exsss, {14, 2026, 7})
        {train, test} = rows |> Enum.shuffle() |> Enum.split(@train_rows)
        {:ok, {tensors(train), tensors(test)}}
      else
        {:error, "#{@data}: #{length(rows)} rows, expected 1797"}
      end
    else
      {:error, "#{@data} not found: install python3-sklearn (scripts/bootstrap does)"}
    end
  end

  @doc "`load/0`, raising on missing data."
  def load! do
    case load() do
      {:ok, data} -> data
      {:error, message} -> raise message
    end
  end

  defp tensors(rows) do
    x =
      rows |> Enum.map(&Enum.take(&1, 64)) |> Nx.tensor(type: {:f, 32}, backend: Nx.BinaryBackend)

    {Nx.divide(x, 16.0), Enum.map(rows, &List.last/1)}
  end

  @doc "Labels as one-hot f32 rows (Nx.BinaryBackend)."
  def one_hot(labels) do
    labels
    |> Nx.tensor(type: {:s, 64}, backend: Nx.BinaryBackend)
    |> Nx.new_axis(1)
    |> Nx.equal(Nx.iota({1, 10}, backend: Nx.BinaryBackend))
    |> Nx.as_type({:f, 32})
  end

  @doc "He-normal weights from a fixed key, zero biases: `{w1, b1, w2, b2}` on Nx.BinaryBackend."
  def init_params do
    Nx.with_default_backend(Nx.BinaryBackend, fn ->
      key = Nx.Random.key(42)
      {w1, key} = Nx.Random.normal(key, 0.0, :math.sqrt(2 / 64), shape: {64, @hidden})
      {w2, _key} = Nx.Random.normal(key, 0.0, :math.sqrt(2 / @hidden), shape: {@hidden, 10})
      {w1, Nx.broadcast(0.0, {@hidden}), w2, Nx.broadcast(0.0, {10})}
    end)
  end

  @doc "`{x, y}` batches of `size` rows (the last, short one is dropped), on Nx.BinaryBackend."
  def batches(x, y, size) do
    rows = elem(Nx.shape(x), 0)

    for i <- 0..(div(rows, size) - 1) do
      {Nx.slice(x, [i * size, 0], [size, 64]), Nx.slice(y, [i * size, 0], [size, 10])}
    end
  end

  @doc "Every tensor of `container` (or of a list of them) moved to the node of `conn`."
  def to_node(list, conn) when is_list(list), do: Enum.map(list, &to_node(&1, conn))

  def to_node(container, conn) do
    Nx.Defn.Composite.traverse(
      container,
      &Nx.backend_transfer(&1, {Mure.Backend, connection: conn})
    )
  end

  @doc """
  One epoch of `step` (a jitted `train_step/4`) over `batches` from `params`:
  `{params, last_loss}`. Each step's old parameters are freed.
  """
  def epoch(step, params, batches, lr) do
    Enum.reduce(batches, {params, nil}, fn {x, y}, {params, _} ->
      {new, loss} = step.(params, x, y, lr)
      free(params)
      {new, loss}
    end)
  end

  @doc "Every Mure.Backend tensor of `container` (or of a list of them) freed on its node."
  def free(list) when is_list(list), do: Enum.each(list, &free/1)

  def free(container) do
    container
    |> List.wrap()
    |> Nx.Defn.Composite.flatten_list()
    |> Enum.each(fn
      %Nx.Tensor{data: %Mure.Backend{}} = t -> Nx.backend_deallocate(t)
      _ -> :ok
    end)
  end

  @doc "Percent of `predicted` (a tensor of classes) equal to `labels`, and the count."
  def accuracy(predicted, labels) do
    correct =
      predicted |> Nx.to_flat_list() |> Enum.zip(labels) |> Enum.count(fn {p, l} -> p == l end)

    {100 * correct / length(labels), correct}
  end

  @doc """
  `{result, programs}`: `fun.()` and the number of programs (round trips) compiled functions
  sent on `conn` meanwhile (`Mure.Compiler.programs_sent/2`).
  """
  def programs(conn, fun), do: Mure.Compiler.programs_sent(conn, fun)
end
