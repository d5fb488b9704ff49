defmodule Mure.Request do
  @moduledoc """
  A request in flight: made by `Mure.async_run/3`, `Mure.async_upload/5` and
  `Mure.async_download/2`, finished by `Mure.await/2` or `Mure.await_many/2`.

  A request belongs to the process that made it: only that process can await it (as with
  `Task`). Every request gets exactly one result: its value, the node's error, or a
  `Mure.ConnectionError` (`:timeout` when it takes longer than its timeout, `:node_down`,
  `:closed`, ...). A reply that arrives after the request gave up is dropped by the runtime,
  never delivered to the mailbox.

  A request is one message to the node and one reply, or, when it moves data in pieces
  (a tensor larger than the connection's `:chunk_size`, see `Mure.start_link/1`), a *job*: a
  helper process that sends the pieces, several in flight, on behalf of the caller (the
  caller owns every tensor it creates). A job that is abandoned (its await timed out) is
  cancelled and frees what it created.

      r1 = Mure.async_run(predict, [x1, w, b])
      r2 = Mure.async_upload(conn, next_batch, {:f, 32}, {256, 784})   # moves while r1 computes
      {:ok, y1} = Mure.await(r1)
      {:ok, x2} = Mure.await(r2)

  The struct's fields are internal.
  """

  alias Mure.{Connection, ConnectionError, Error, Tensor}

  defstruct [:kind, :ref, :pid, :owner, :finish, :budget, :result, label: nil]

  @typedoc "A request in flight (its fields are internal)."
  @type t :: %__MODULE__{}

  # How long a job may run past its own deadline before its awaiting caller gives up on it
  # (the job enforces the deadline itself and normally answers well within this).
  @job_grace_ms 2_000

  ## Budgets
  #
  # A call's `timeout:` becomes a budget:
  #   :default        - no timeout given: each message to the node gets the connection's
  #                     default timeout (so a transfer in pieces is timed per piece)
  #   :infinity       - no timeout at all
  #   {:deadline, t}  - the whole call (all its pieces) ends by monotonic time t (ms)

  @doc false
  @spec budget(timeout() | nil) :: :default | :infinity | {:deadline, integer()}
  def budget(nil), do: :default
  def budget(:infinity), do: :infinity

  def budget(ms) when is_integer(ms) and ms >= 0,
    do: {:deadline, System.monotonic_time(:millisecond) + ms}

  def budget(other) do
    raise ArgumentError,
          "expected :timeout to be a non-negative integer or :infinity, got: #{inspect(other)}"
  end

  # {timeout sent to the connection, timeout of the local receive}
  defp remaining(:default), do: {nil, :infinity}
  defp remaining(:infinity), do: {:infinity, :infinity}

  defp remaining({:deadline, t}) do
    left = max(t - System.monotonic_time(:millisecond), 0)
    {left, left}
  end

  ## Single messages

  @doc false
  # Sends `request` through the connection; the reply goes to an alias that monitors the
  # connection process. Returns the alias, or {:error, exception} when there is no
  # connection process.
  @spec send_call(GenServer.server(), tuple() | atom(), list(), pid(), timeout() | nil) ::
          {:ok, pid(), reference()} | {:error, ConnectionError.t()}
  def send_call(conn, request, sessions, owner, timeout) do
    case GenServer.whereis(conn) do
      pid when is_pid(pid) ->
        alias = :erlang.monitor(:process, pid, alias: :demonitor)
        send(pid, {:"$mure_call", alias, owner, request, sessions, timeout})
        {:ok, pid, alias}

      _ ->
        {:error,
         %ConnectionError{reason: :closed, details: "no connection process #{inspect(conn)}"}}
    end
  end

  @doc false
  # Waits for the reply to `alias` (see send_call/5) for at most `timeout` ms. On timeout
  # the alias is deactivated, so a late reply is dropped. Inside a job, a cancellation
  # from the job's owner throws :"$mure_cancelled".
  #
  # `late.(value, node, session)` runs on a successful reply that slipped in just as the
  # wait ended (to free what it created).
  # With `cancellable` false, a cancellation waits in the mailbox for the next wait.
  @spec receive_call(reference(), timeout(), fun() | nil, boolean()) ::
          {:ok, term(), node(), reference()} | {:error, Exception.t()}
  def receive_call(alias, timeout, late \\ nil, cancellable \\ true) do
    cancel = if cancellable, do: Process.get(:"$mure_job_cancel", :none), else: :none
    owner_mon = Process.get(:"$mure_job_owner_mon", :none)

    receive do
      {^alias, {:ok, value}, node, session} ->
        Process.demonitor(alias, [:flush])
        {:ok, value, node, session}

      {^alias, {:error, %struct{} = error}, _node, _session}
      when struct in [Error, ConnectionError] ->
        Process.demonitor(alias, [:flush])
        {:error, error}

      {^alias, {:error, reason}, _node, _session} ->
        Process.demonitor(alias, [:flush])
        {:error, Error.from_reason(reason)}

      {:DOWN, ^alias, _, _, reason} ->
        {:error,
         %ConnectionError{
           reason: down_reason(reason),
           details: "connection process exited: #{inspect(reason)}"
         }}

      {:"$mure_cancel", ^cancel} ->
        throw(:"$mure_cancelled")

      {:DOWN, ^owner_mon, _, _, _} ->
        # The job's owner is gone: the node frees the owner's tensors itself.
        exit(:normal)
    after
      timeout ->
        drop(alias, late)
        {:error, %ConnectionError{reason: :timeout}}
    end
  end

  # Deactivates an alias (the runtime drops later replies) and handles a reply that
  # slipped in just before.
  @doc false
  @spec drop(reference(), fun() | nil) :: :ok
  def drop(alias, late \\ nil) do
    Process.demonitor(alias, [:flush])

    receive do
      {^alias, {:ok, value}, node, session} when late != nil ->
        late.(value, node, session)
        :ok

      {^alias, _result, _node, _session} ->
        :ok
    after
      0 -> :ok
    end
  end

  defp down_reason({:shutdown, {:node_exited, _}}), do: :node_exited
  defp down_reason(_), do: :closed

  @doc false
  # A synchronous call within a budget: send_call + receive_call.
  @spec call(GenServer.server(), term(), list(), pid(), term()) ::
          {:ok, term(), node(), reference()} | {:error, Exception.t()}
  def call(conn, request, sessions, owner, budget) do
    {send_timeout, wait} = remaining(budget)

    with {:ok, _pid, alias} <- send_call(conn, request, sessions, owner, send_timeout) do
      receive_call(alias, wait)
    end
  end

  @doc false
  # Sends several requests with at most `window` in flight, in order. `requests` is a list;
  # `check.(index, value)` returns {:ok, acc_item} or {:error, exception}. Returns
  # {:ok, [acc_item]} in order, or the first error (requests still in flight are dropped).
  @spec pipeline(GenServer.server(), [term()], list(), pid(), term(), pos_integer(), fun()) ::
          {:ok, [term()]} | {:error, Exception.t()}
  def pipeline(conn, requests, sessions, owner, budget, window, check) do
    do_pipeline(
      conn,
      Enum.with_index(requests),
      :queue.new(),
      [],
      sessions,
      owner,
      budget,
      window,
      check
    )
  end

  defp do_pipeline(conn, pending, inflight, acc, sessions, owner, budget, window, check) do
    cond do
      pending != [] and :queue.len(inflight) < window ->
        [{request, i} | rest] = pending
        {send_timeout, _} = remaining(budget)

        case send_call(conn, request, sessions, owner, send_timeout) do
          {:ok, _pid, alias} ->
            do_pipeline(
              conn,
              rest,
              :queue.in({alias, i}, inflight),
              acc,
              sessions,
              owner,
              budget,
              window,
              check
            )

          {:error, error} ->
            abandon(inflight)
            {:error, error}
        end

      :queue.is_empty(inflight) ->
        {:ok, Enum.reverse(acc)}

      true ->
        {{:value, {alias, i}}, inflight} = :queue.out(inflight)
        {_, wait} = remaining(budget)

        with {:ok, value, _node, _session} <- receive_call(alias, wait),
             {:ok, item} <- check.(i, value) do
          do_pipeline(
            conn,
            pending,
            inflight,
            [item | acc],
            sessions,
            owner,
            budget,
            window,
            check
          )
        else
          {:error, error} ->
            abandon(inflight)
            {:error, error}
        end
    end
  end

  defp abandon(inflight), do: inflight |> :queue.to_list() |> Enum.each(fn {a, _} -> drop(a) end)

  @doc false
  # Frees a tensor without waiting for the reply (the reply goes to a dead alias).
  @spec free_async(Tensor.t()) :: :ok
  def free_async(%Tensor{conn: conn, id: id, session: session}) do
    alias = :erlang.alias()
    :erlang.unalias(alias)

    case GenServer.whereis(conn) do
      pid when is_pid(pid) ->
        send(pid, {:"$mure_call", alias, self(), {:free, id}, [session], nil})

      _ ->
        :ok
    end

    :ok
  end

  ## Requests

  @doc false
  # A request of one message. `finish.(value, node, session)` turns the reply's value into
  # {:ok, result} or {:error, exception}.
  @spec submit(GenServer.server(), term(), list(), timeout() | nil, fun(), term()) :: t()
  def submit(conn, request, sessions, timeout, finish, label \\ nil) do
    budget = budget(timeout)
    {send_timeout, _} = remaining(budget)

    case send_call(conn, request, sessions, self(), send_timeout) do
      {:ok, pid, alias} ->
        %__MODULE__{
          kind: :call,
          ref: alias,
          pid: pid,
          owner: self(),
          finish: finish,
          budget: budget,
          label: label
        }

      {:error, error} ->
        done({:error, error})
    end
  end

  @doc false
  # A request whose result is already known.
  @spec done({:ok, term()} | {:error, Exception.t()}) :: t()
  def done(result), do: %__MODULE__{kind: :done, owner: self(), result: result}

  @doc false
  # A job: `fun.(budget)` runs in a helper process and returns {:ok, result} or
  # {:error, exception}. Tensors it creates belong to the caller (pass `owner` on to
  # send_call/5) and must be registered with track/1 (untrack/1 when freed): a cancelled
  # job frees them.
  @spec job(timeout() | nil, fun(), term()) :: t()
  def job(timeout, fun, label \\ nil) do
    budget = budget(timeout)
    owner = self()

    {pid, ref} =
      :erlang.spawn_opt(
        fn ->
          owner_mon = Process.monitor(owner)

          receive do
            {:"$mure_go", reply_to, cancel} ->
              Process.put(:"$mure_job_cancel", cancel)
              Process.put(:"$mure_job_owner_mon", owner_mon)
              Process.put(:"$mure_job_tracked", %{})
              run_job(fun, budget, reply_to)

            {:DOWN, ^owner_mon, _, _, _} ->
              exit(:normal)
          end
        end,
        [{:monitor, [{:alias, :demonitor}]}]
      )

    cancel = make_ref()
    send(pid, {:"$mure_go", ref, cancel})

    %__MODULE__{
      kind: :job,
      ref: ref,
      pid: pid,
      owner: owner,
      finish: cancel,
      budget: budget,
      label: label
    }
  end

  defp run_job(fun, budget, reply_to) do
    result =
      try do
        fun.(budget)
      catch
        :throw, :"$mure_cancelled" ->
          cleanup_job()
          exit(:normal)

        kind, reason ->
          cleanup_job()

          {:error,
           %Error{
             kind: :internal,
             message: "job failed: " <> Exception.format(kind, reason, __STACKTRACE__)
           }}
      end

    send(reply_to, {reply_to, {:"$mure_job", result}})
  end

  defp cleanup_job do
    :"$mure_job_tracked" |> Process.get(%{}) |> Map.values() |> Enum.each(&free_async/1)
  end

  @doc false
  # Registers a tensor created by the current job (no-op outside jobs).
  @spec track(Tensor.t()) :: :ok
  def track(%Tensor{} = t) do
    case Process.get(:"$mure_job_tracked") do
      nil -> :ok
      map -> Process.put(:"$mure_job_tracked", Map.put(map, {t.session, t.id}, t))
    end

    :ok
  end

  @doc false
  @spec untrack(Tensor.t()) :: :ok
  def untrack(%Tensor{} = t) do
    case Process.get(:"$mure_job_tracked") do
      nil -> :ok
      map -> Process.put(:"$mure_job_tracked", Map.delete(map, {t.session, t.id}))
    end

    :ok
  end

  ## Awaiting

  @doc false
  @spec await(t(), timeout() | nil) :: {:ok, term()} | {:error, Exception.t()}
  def await(%__MODULE__{owner: owner} = req, timeout) do
    if owner != self() do
      raise ArgumentError,
            "await: the request belongs to #{inspect(owner)}; only that process can await it"
    end

    wait =
      case timeout do
        nil -> own_wait(req)
        :infinity -> :infinity
        ms when is_integer(ms) and ms >= 0 -> ms
        other -> raise ArgumentError, "await: expected a timeout, got: #{inspect(other)}"
      end

    do_await(req, wait)
  end

  defp own_wait(%__MODULE__{kind: :call, budget: budget}), do: elem(remaining(budget), 1)

  defp own_wait(%__MODULE__{kind: :job, budget: {:deadline, _} = budget}),
    do: elem(remaining(budget), 1) + @job_grace_ms

  defp own_wait(%__MODULE__{}), do: :infinity

  defp do_await(%__MODULE__{kind: :done, result: result}, _wait), do: result

  defp do_await(%__MODULE__{kind: :call, ref: alias, finish: finish}, wait) do
    late = fn value, node, session ->
      with {:ok, result} <- finish.(value, node, session), do: free_all(result)
    end

    case receive_call(alias, wait, late) do
      {:ok, value, node, session} -> finish.(value, node, session)
      {:error, error} -> {:error, error}
    end
  end

  defp do_await(%__MODULE__{kind: :job, ref: ref} = req, wait) do
    receive do
      {^ref, {:"$mure_job", result}} ->
        Process.demonitor(ref, [:flush])
        result

      {:DOWN, ^ref, _, _, reason} ->
        {:error, %Error{kind: :internal, message: "job exited: #{inspect(reason)}"}}
    after
      wait ->
        cancel(req)
        {:error, %ConnectionError{reason: :timeout}}
    end
  end

  # Cancels a job: it frees what it created and exits. A result that it sent before it saw
  # the cancellation is freed here.
  defp cancel(%__MODULE__{ref: ref, pid: pid, finish: cancel}) do
    send(pid, {:"$mure_cancel", cancel})

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    after
      5_000 ->
        Process.exit(pid, :kill)

        receive do
          {:DOWN, ^ref, _, _, _} -> :ok
        end
    end

    receive do
      {^ref, {:"$mure_job", {:ok, result}}} -> free_all(result)
      {^ref, {:"$mure_job", _}} -> :ok
    after
      0 -> :ok
    end
  end

  @doc false
  # Frees every resident tensor in a result (a tensor, or tuples/lists/maps holding them).
  @spec free_all(term()) :: :ok
  def free_all(%Tensor{} = t), do: free_async(t)
  def free_all(t) when is_tuple(t), do: t |> Tuple.to_list() |> free_all()
  def free_all(l) when is_list(l), do: Enum.each(l, &free_all/1)
  def free_all(_), do: :ok

  @doc false
  @spec await_many([t()], timeout() | nil) :: [{:ok, term()} | {:error, Exception.t()}]
  def await_many(requests, timeout) when is_list(requests) do
    deadline =
      case timeout do
        nil -> nil
        :infinity -> :infinity
        ms when is_integer(ms) and ms >= 0 -> System.monotonic_time(:millisecond) + ms
        other -> raise ArgumentError, "await_many: expected a timeout, got: #{inspect(other)}"
      end

    Enum.map(requests, fn req ->
      t =
        case deadline do
          nil -> nil
          :infinity -> :infinity
          d -> max(d - System.monotonic_time(:millisecond), 0)
        end

      await(req, t)
    end)
  end

  @doc false
  # Used by Connection-agnostic callers: the default timeout check of the call API.
  @spec valid_timeout?(term()) :: boolean()
  def valid_timeout?(nil), do: true
  def valid_timeout?(t), do: Connection.valid_timeout?(t)

  defimpl Inspect do
    def inspect(%Mure.Request{kind: kind, label: label}, _opts) do
      "#Mure.Request<" <> Atom.to_string(kind) <> if(label, do: " #{label}", else: "") <> ">"
    end
  end
end
