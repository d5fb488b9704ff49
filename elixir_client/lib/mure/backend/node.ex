defmodule Mure.Backend.Node do
  @moduledoc false
  # What Mure.Backend does on the node: every eager op is a one-output program of Mure.Expr
  # nodes (the op itself, and where Nx's result type or shape differs from the node's rules
  # an as_type or reshape after it), sent with the owner of Mure.Backend's lifetime rule;
  # uploads, downloads and frees; the scopes that free what they made; and the one place
  # where a node's error becomes the exception an Nx user sees.

  alias Mure.{ConnectionError, Error, Expr, Program, Request, Tensor, Transfer}

  @scopes :"$mure_backend_scopes"

  ## Ownership

  @doc false
  # The process a new tensor is made for: the caller, or inside a Task the process that
  # started the Task tree (the last of `$callers`), so that a Task can return its results.
  @spec owner() :: pid()
  def owner do
    case Process.get(:"$callers") do
      [_ | _] = callers -> callers |> List.last() |> pid_of()
      _ -> self()
    end
  end

  defp pid_of(pid) when is_pid(pid), do: pid
  defp pid_of(name), do: GenServer.whereis(name) || self()

  ## Scopes

  @doc false
  # Runs `fun.(input)`; then frees what it made in this process and the Mure.Backend
  # tensors of `input`, except those found in its result.
  @spec scope(term(), (term() -> result)) :: result when result: term()
  def scope(input, fun) when is_function(fun, 1) do
    outer = Process.get(@scopes, [])
    Process.put(@scopes, [[] | outer])

    try do
      fun.(input)
    rescue
      e ->
        close_scope(outer, input, nil)
        reraise e, __STACKTRACE__
    catch
      kind, reason ->
        close_scope(outer, input, nil)
        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      result ->
        close_scope(outer, input, result)
        result
    end
  end

  # Frees what the innermost scope made, and the tensors of its input, except the tensors
  # found in `result`; those it made move to the enclosing scope, if any.
  defp close_scope(outer, input, result) do
    [made | _] = Process.get(@scopes)
    kept = tensors(result, %{})

    {keep, free} = Enum.split_with(made, &Map.has_key?(kept, {&1.session, &1.id}))
    consumed = input |> tensors(%{}) |> Map.drop(Map.keys(kept)) |> Map.values()
    (free ++ consumed) |> Enum.uniq_by(&{&1.session, &1.id}) |> Enum.each(&Request.free_async/1)

    case outer do
      [] -> Process.delete(@scopes)
      [top | rest] -> Process.put(@scopes, [keep ++ top | rest])
    end

    :ok
  end

  # The Mure.Backend tensors in a term: %{{session, id} => Mure.Tensor}.
  defp tensors(%Nx.Tensor{data: %Mure.Backend{ref: t}}, acc),
    do: Map.put(acc, {t.session, t.id}, t)

  defp tensors(%Nx.Tensor{}, acc), do: acc

  defp tensors(%_{} = struct, acc),
    do: struct |> Map.from_struct() |> Map.values() |> tensors(acc)

  defp tensors(map, acc) when is_map(map), do: map |> Map.values() |> tensors(acc)
  defp tensors([head | tail], acc), do: tensors(tail, tensors(head, acc))
  defp tensors(tuple, acc) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> tensors(acc)
  defp tensors(_other, acc), do: acc

  defp made(%Tensor{} = t) do
    case Process.get(@scopes) do
      [top | rest] -> Process.put(@scopes, [[t | top] | rest])
      _ -> :ok
    end

    t
  end

  ## Transfers

  @doc false
  @spec upload(GenServer.server(), binary(), Mure.type(), Mure.shape()) :: Tensor.t()
  def upload(conn, data, type, shape) do
    owner = owner()

    result =
      with {:ok, limits} <- Transfer.limits(conn) do
        if byte_size(data) > limits.chunk_size do
          Transfer.upload(conn, data, type, shape, owner, Request.budget(nil), limits)
        else
          case Request.call(conn, {:upload, type, shape, data}, [], owner, Request.budget(nil)) do
            {:ok, value, node, session} ->
              with :error <- Tensor.from_reply(conn, value, node, session, {type, shape}),
                   do: {:error, unexpected(:upload, value)}

            {:error, error} ->
              {:error, error}
          end
        end
      end

    result |> unwrap!("from_binary", []) |> made()
  end

  @doc false
  @spec download(Tensor.t(), String.t()) :: binary()
  def download(%Tensor{} = t, what), do: t |> Mure.download() |> unwrap!(what, [t])

  @doc false
  # The first `bytes` bytes of a tensor: one {:read, ...} when that is less than all of it
  # and fits one message (what inspect and Nx.to_binary(t, limit: n) need), else download.
  @spec read(Tensor.t(), non_neg_integer(), String.t()) :: binary()
  def read(%Tensor{} = t, bytes, what) do
    with true <- bytes < Tensor.byte_size(t),
         {:ok, %{piece: piece}} when bytes <= piece <- Transfer.limits(t.conn) do
      case Request.call(t.conn, {:read, t.id, 0, bytes}, [t.session], self(), Request.budget(nil)) do
        {:ok, bin, _node, _session} when is_binary(bin) and byte_size(bin) == bytes -> bin
        {:ok, other, _node, _session} -> unwrap!({:error, unexpected(:read, other)}, what, [t])
        {:error, error} -> unwrap!({:error, error}, what, [t])
      end
    else
      _ -> t |> download(what) |> binary_part(0, min(bytes, Tensor.byte_size(t)))
    end
  end

  @doc false
  @spec free(Tensor.t()) :: :ok | :already_deallocated
  def free(%Tensor{} = t) do
    case Mure.free(t) do
      :ok -> :ok
      {:error, %Error{kind: :unknown_handle}} -> :already_deallocated
      {:error, error} -> raise error
    end
  end

  ## Ops

  @doc false
  # Runs `build` (one Mure.Expr parameter per tensor in, an expression out) as a program on
  # `conn`, then casts and reshapes to `{type, shape}` (Nx's out) where the node's rules
  # give another: {:ok, resident result}, or {:unsupported, why} when Mure.Expr refuses the op.
  @spec run(GenServer.server(), atom(), [Tensor.t()], ([Expr.t()] -> Expr.t()), tuple(), atom()) ::
          {:ok, Tensor.t()} | {:unsupported, String.t()}
  def run(conn, what, tensors, build, {type, shape}, device) do
    trace = make_ref()

    params =
      tensors
      |> Enum.with_index()
      |> Enum.map(fn {t, i} -> Expr.parameter(i, t.type, t.shape, trace) end)

    # Mure.Expr checks every op with the node's rules: what it refuses, the node cannot
    # serve (the caller falls back to Nx.BinaryBackend, saying why).
    try do
      expr = build.(params)
      expr = if expr.type != type, do: Expr.as_type(expr, type), else: expr
      if expr.shape != shape, do: Expr.reshape(expr, shape), else: expr
    rescue
      e in ArgumentError -> {:unsupported, Exception.message(e)}
    else
      expr -> {:ok, send_program(conn, what, tensors, expr, trace, {type, shape}, device)}
    end
  end

  # One result: the program of several with one output.
  defp send_program(conn, what, tensors, expr, trace, out, device) do
    [t] = send_many(conn, what, tensors, [expr], trace, [out], device)
    t
  end

  @doc false
  # `run` for an op with several results (Nx.LinAlg's lu, qr, eigh, svd): `build` returns a
  # list of expressions, one per `{type, shape}` of `outs`; one program returns them all.
  @spec run_many(
          GenServer.server(),
          atom(),
          [Tensor.t()],
          ([Expr.t()] -> [Expr.t()]),
          [tuple()],
          atom()
        ) ::
          {:ok, [Tensor.t()]} | {:unsupported, String.t()}
  def run_many(conn, what, tensors, build, outs, device) do
    trace = make_ref()

    params =
      tensors
      |> Enum.with_index()
      |> Enum.map(fn {t, i} -> Expr.parameter(i, t.type, t.shape, trace) end)

    try do
      params
      |> build.()
      |> Enum.zip(outs)
      |> Enum.map(fn {expr, {type, shape}} ->
        expr = if expr.type != type, do: Expr.as_type(expr, type), else: expr
        if expr.shape != shape, do: Expr.reshape(expr, shape), else: expr
      end)
    rescue
      e in ArgumentError -> {:unsupported, Exception.message(e)}
    else
      exprs -> {:ok, send_many(conn, what, tensors, exprs, trace, outs, device)}
    end
  end

  defp send_many(conn, what, tensors, exprs, trace, outs, device) do
    signature = Enum.map(tensors, &{&1.type, &1.shape})
    program = Program.build(exprs, signature, trace)
    by_index = tensors |> Enum.with_index() |> Map.new(fn {t, i} -> {i, t} end)
    inputs = Enum.map(program.params, fn {i, _, _} -> {:handle, Map.fetch!(by_index, i).id} end)
    outputs = Enum.map(program.outputs, fn {vid, _, _} -> {vid, :keep} end)

    request =
      if device in [nil, :auto],
        do: {:program, inputs, program.nodes, outputs},
        else: {:program, inputs, program.nodes, outputs, %{device: device}}

    sessions = tensors |> Enum.map(& &1.session) |> Enum.uniq()

    result =
      case Request.call(conn, request, sessions, owner(), Request.budget(nil)) do
        {:ok, replies, node, session} when is_list(replies) and length(replies) == length(outs) ->
          Enum.zip(replies, outs)
          |> Enum.reduce_while({:ok, []}, fn
            {{h, type, shape}, {type, shape}}, {:ok, acc} when is_integer(h) and h > 0 ->
              t = %Tensor{
                conn: conn,
                node: node,
                id: h,
                type: type,
                shape: shape,
                session: session
              }

              {:cont, {:ok, [t | acc]}}

            _, _ ->
              {:halt, {:error, unexpected(what, replies)}}
          end)
          |> case do
            {:ok, ts} -> {:ok, Enum.reverse(ts)}
            error -> error
          end

        {:ok, value, _node, _session} ->
          {:error, unexpected(what, value)}

        {:error, error} ->
          {:error, error}
      end

    result |> unwrap!(Atom.to_string(what), tensors) |> Enum.map(&made/1)
  end

  ## Errors

  defp unexpected(what, value),
    do: %Error{
      kind: :internal,
      message: "#{what}: unexpected reply from the node: #{inspect(value, limit: 10)}"
    }

  @doc false
  # A tensor of Nx's semantics has no error value: a node's error raises. A handle the node
  # no longer knows is explained by the lifetime rule.
  @spec unwrap!({:ok, term()} | {:error, Exception.t()}, String.t(), [Tensor.t()]) :: term()
  def unwrap!({:ok, value}, _what, _tensors), do: value

  def unwrap!({:error, %Error{kind: :unknown_handle} = e}, what, tensors) do
    # A tensor of a node that is gone (its OS process exited, the connection was lost and
    # made again) is not a matter of lifetime: the node and its tensors are lost.
    case Enum.find(tensors, &(&1.node not in Node.list([:hidden, :connected]))) do
      nil ->
        :ok

      t ->
        raise %ConnectionError{
          reason: :node_down,
          details:
            "Mure.Backend #{what}: the tensor #{describe([t])} was on #{t.node}, which is no " <>
              "longer connected (its OS process exited or the connection was lost): its " <>
              "tensors are gone; compute them again (new tensors go to the node the " <>
              "connection now has)"
        }
    end

    raise ArgumentError,
          "Mure.Backend #{what}: a tensor is no longer on its node (#{describe(tensors)}): " <>
            "it was deallocated (Nx.backend_deallocate/1), freed by the Mure.Backend.scope/1 " <>
            "that made it, or its owner process exited. A Mure.Backend tensor lives as long " <>
            "as the process it was made for (inside a Task: the Task's caller); to use it " <>
            "longer, make it in the process that outlives the use, return it from the scope, " <>
            "or copy it out with Nx.backend_copy(tensor, Nx.BinaryBackend). (node: #{e.message})"
  end

  def unwrap!({:error, %ConnectionError{} = e}, what, tensors) do
    node = Enum.find_value(tensors, & &1.node)

    raise %ConnectionError{
      e
      | details:
          "Mure.Backend #{what}#{if node, do: " on #{node}", else: ""}: " <>
            (e.details || "the connection failed")
    }
  end

  def unwrap!({:error, error}, _what, _tensors), do: raise(error)

  defp describe(tensors) do
    Enum.map_join(tensors, ", ", fn t ->
      "#{Mure.Types.type_to_string(t.type)}#{Mure.Types.shape_to_string(t.shape)} " <>
        "handle #{t.id} on #{t.node}"
    end)
  end
end
