defmodule Mure.Jit do
  @moduledoc """
  A jit'ed function: made by `Mure.jit/2`, run by `Mure.run/3` and `Mure.async_run/3`.

  The struct holds the function and its default options; traced programs live in a cache
  shared by the whole BEAM (see `Mure.jit/2`).
  """

  alias Mure.{Error, Expr, Program, Request, Tensor, Transfer, Types}

  @enforce_keys [:fun, :arity, :opts]
  defstruct [:fun, :arity, :opts]

  @type t :: %__MODULE__{fun: function(), arity: non_neg_integer(), opts: keyword()}

  @opts [outputs: :keep, device: nil, timeout: nil, conn: nil]

  # Data arguments and returned outputs up to this size never need the connection's chunk
  # size: they always go in the program's own message.
  @small 32 * 1024

  @doc false
  @spec new(function(), keyword()) :: t()
  def new(fun, opts) when is_function(fun) do
    {:arity, arity} = Function.info(fun, :arity)
    %__MODULE__{fun: fun, arity: arity, opts: validate_opts!(opts, @opts)}
  end

  def new(other, _opts),
    do: raise(ArgumentError, "jit: expected a function, got: #{inspect(other, limit: 5)}")

  defp validate_opts!(opts, defaults) do
    unless Keyword.keyword?(opts),
      do: raise(ArgumentError, "jit: expected options as a keyword list, got: #{inspect(opts)}")

    opts = Keyword.validate!(opts, defaults)

    case opts[:outputs] do
      mode when mode in [:keep, :return] ->
        :ok

      list when is_list(list) ->
        unless Enum.all?(list, &(&1 in [:keep, :return])),
          do: raise(ArgumentError, "jit: :outputs must be :keep, :return or a list of them")

      other ->
        raise ArgumentError,
              "jit: :outputs must be :keep, :return or a list of them, got: #{inspect(other)}"
    end

    unless opts[:device] in [nil, :auto, :cpu, :opencl],
      do: raise(ArgumentError, "jit: :device must be :auto, :cpu or :opencl")

    unless Request.valid_timeout?(opts[:timeout]),
      do:
        raise(
          ArgumentError,
          "jit: expected :timeout to be a non-negative integer or :infinity, got: #{inspect(opts[:timeout])}"
        )

    opts
  end

  ## Tracing

  @doc false
  # The program for these arguments (or `{type, shape}` pairs): from the cache, or traced.
  @spec program(t(), list()) :: Program.t()
  def program(%__MODULE__{} = jit, args) when is_list(args) do
    check_arity!(jit, args)
    signature = args |> Enum.with_index(1) |> Enum.map(&signature!/1)
    key = {jit.fun, signature}

    case Mure.Jit.Cache.get(key) do
      {:ok, program} ->
        program

      :error ->
        program = trace(jit.fun, signature)
        Mure.Jit.Cache.put(key, program)
        program
    end
  end

  defp trace(fun, signature) do
    trace = make_ref()

    params =
      signature
      |> Enum.with_index()
      |> Enum.map(fn {{type, shape}, i} -> Expr.parameter(i, type, shape, trace) end)

    fun |> apply(params) |> Program.build(signature, trace)
  end

  # Arguments are counted from 1 in messages, as in the errors of the traced ops.
  defp check_arity!(jit, args) do
    got = length(args)

    which =
      cond do
        got == jit.arity -> nil
        got == jit.arity + 1 -> "argument #{got} is one too many"
        got > jit.arity -> "arguments #{jit.arity + 1} to #{got} are too many"
        got == jit.arity - 1 -> "argument #{jit.arity} is missing"
        true -> "arguments #{got + 1} to #{jit.arity} are missing"
      end

    if which do
      raise ArgumentError, "jit: the function takes #{jit.arity} arguments, got #{got}: #{which}"
    end
  end

  defp signature!({%Tensor{type: type, shape: shape}, _i}), do: {type, shape}

  defp signature!({{data, type, shape}, i}) when is_binary(data),
    do: checked_signature!(type, shape, i)

  defp signature!({{type, shape}, i}) when is_tuple(type) and is_tuple(shape),
    do: checked_signature!(type, shape, i)

  defp signature!({other, i}) do
    raise ArgumentError,
          "jit: argument #{i} must be a %Mure.Tensor{} or a {binary, type, shape} tuple, " <>
            "got: #{inspect(other, limit: 5)}"
  end

  defp checked_signature!(type, shape, i) do
    Types.check_type!(type, "jit: argument #{i}")
    Types.check_shape!(shape, "jit: argument #{i}")
    {type, shape}
  end

  ## Running

  @doc false
  @spec run(t(), list(), keyword()) :: {:ok, term()} | {:error, Exception.t()}
  def run(jit, args, opts) do
    plan = plan!(jit, args, opts)

    case plan.mode do
      :single ->
        # A reply that slips in as the call times out: its kept outputs are freed.
        late = fn value, node, session ->
          with {:ok, result} <- plan.finish.(value, node, session), do: Request.free_all(result)
        end

        {send_timeout, wait} =
          case plan.timeout do
            nil -> {nil, :infinity}
            timeout -> {timeout, timeout}
          end

        with {:ok, _pid, alias} <-
               Request.send_call(plan.conn, plan.request, plan.sessions, self(), send_timeout),
             {:ok, value, node, session} <- Request.receive_call(alias, wait, late) do
          plan.finish.(value, node, session)
        end

      :staged ->
        staged(plan, self(), Request.budget(plan.timeout))
    end
  end

  @doc false
  @spec async_run(t(), list(), keyword()) :: Request.t()
  def async_run(jit, args, opts) do
    plan = plan!(jit, args, opts)

    case plan.mode do
      :single ->
        Request.submit(plan.conn, plan.request, plan.sessions, plan.timeout, plan.finish, "run")

      :staged ->
        owner = self()
        Request.job(plan.timeout, &staged(plan, owner, &1), "run")
    end
  end

  # Everything a run needs, checked before anything is sent.
  defp plan!(jit, args, opts) do
    opts = validate_opts!(Keyword.merge(jit.opts, opts), @opts)
    program = program(jit, args)
    args = Enum.with_index(args, 1) |> Enum.map(&check_arg!/1)
    conn = conn!(args, opts[:conn])
    modes = modes!(opts[:outputs], program)
    used = Enum.map(program.params, fn {i, _, _} -> Enum.at(args, i) end)

    data_bytes = for {:data, bin, _, _} <- used, reduce: 0, do: (acc -> acc + byte_size(bin))

    big_return? =
      Enum.zip(program.outputs, modes)
      |> Enum.any?(fn {{_, type, shape}, mode} ->
        mode == :return and bytes(type, shape) > @small
      end)

    plan = %{
      conn: conn,
      program: program,
      used: used,
      modes: modes,
      device: opts[:device],
      timeout: opts[:timeout],
      sessions: for({:tensor, t} <- used, uniq: true, do: t.session),
      mode: :single,
      request: nil,
      finish: nil
    }

    if data_bytes <= @small and not big_return? do
      inputs = Enum.map(used, &input/1)
      finish = &finish(plan, modes, &1, &2, &3)
      %{plan | request: request(plan, inputs, modes), finish: finish}
    else
      %{plan | mode: :staged}
    end
  end

  defp check_arg!({%Tensor{} = t, _i}), do: {:tensor, t}

  defp check_arg!({{data, type, shape}, i}) when is_binary(data) do
    expected = bytes(type, shape)

    if byte_size(data) != expected do
      raise ArgumentError,
            "run: argument #{i} needs #{expected} bytes for a " <>
              "#{Types.type_to_string(type)}#{Types.shape_to_string(shape)} tensor, got #{byte_size(data)} bytes"
    end

    {:data, data, type, shape}
  end

  defp check_arg!({other, i}) do
    raise ArgumentError,
          "run: argument #{i} must be a %Mure.Tensor{} or a {binary, type, shape} tuple " <>
            "(a {type, shape} signature is for Mure.trace/2), got: #{inspect(other, limit: 5)}"
  end

  defp bytes(type, shape), do: Types.size(shape) * Types.itemsize(type)

  defp conn!(args, conn) do
    tensors = for {{:tensor, t}, i} <- Enum.with_index(args, 1), do: {t, i}

    case {tensors, conn} do
      {[], nil} ->
        raise ArgumentError,
              "run: no argument is a resident tensor, so pass the connection as conn: conn"

      {[], conn} ->
        conn

      {[{first, i} | _], _} ->
        for {t, j} <- tensors, t.conn != first.conn or t.node != first.node do
          raise ArgumentError,
                "run: the tensors belong to different connections (argument #{i} to " <>
                  "#{inspect(first.conn)} on #{first.node}, argument #{j} to #{inspect(t.conn)} on #{t.node})"
        end

        if conn != nil and GenServer.whereis(conn) != GenServer.whereis(first.conn) do
          raise ArgumentError,
                "run: conn: #{inspect(conn)} is not the connection of the tensor arguments " <>
                  "(argument #{i}'s is #{inspect(first.conn)})"
        end

        first.conn
    end
  end

  defp modes!(mode, program) when is_atom(mode), do: Enum.map(program.outputs, fn _ -> mode end)

  defp modes!(modes, program) when is_list(modes) do
    unless length(modes) == length(program.outputs) do
      raise ArgumentError,
            "run: :outputs lists #{length(modes)} modes for #{length(program.outputs)} outputs"
    end

    modes
  end

  defp input({:tensor, t}), do: {:handle, t.id}
  defp input({:data, bin, type, shape}), do: {:data, type, shape, bin}

  defp request(plan, inputs, modes) do
    outputs = Enum.zip_with(plan.program.outputs, modes, fn {vid, _, _}, mode -> {vid, mode} end)

    if plan.device,
      do: {:program, inputs, plan.program.nodes, outputs, %{device: plan.device}},
      else: {:program, inputs, plan.program.nodes, outputs}
  end

  # Turns the node's reply into the list of results, in output order; checks every output
  # against the type and shape the trace predicted (a mismatch is a bug of the client's or
  # the node's rules: the kept tensors of the reply are freed and an :internal error
  # returned).
  defp decode(plan, modes, value, node, session) do
    outputs = plan.program.outputs

    results =
      if is_list(value) and length(value) == length(outputs) do
        Enum.zip([value, outputs, modes])
        |> Enum.with_index(1)
        |> Enum.map(fn
          {{{_, _, _} = got, {_, type, shape}, :keep}, i} ->
            case Tensor.from_reply(plan.conn, got, node, session, {type, shape}) do
              {:ok, t} ->
                Request.track(t)
                {:ok, t}

              :error ->
                mismatch(i, :keep, type, shape, got)
            end

          {{{type, shape, bin}, {_, type, shape}, :return}, i} when is_binary(bin) ->
            if byte_size(bin) == bytes(type, shape),
              do: {:ok, bin},
              else: {:error, "output #{i}: #{byte_size(bin)} bytes for #{inspect({type, shape})}"}

          {{got, {_, type, shape}, mode}, i} ->
            mismatch(i, mode, type, shape, got)
        end)
      else
        [{:error, "expected #{length(outputs)} results, got #{inspect(value, limit: 4)}"}]
      end

    case for({:error, msg} <- results, do: msg) do
      [] ->
        {:ok, Enum.map(results, fn {:ok, r} -> r end)}

      [msg | _] ->
        for {:ok, %Tensor{} = t} <- results, do: Request.free_async(t)
        {:error, %Error{kind: :internal, message: "program: #{msg}"}}
    end
  end

  defp mismatch(i, mode, type, shape, got) do
    {:error,
     "output #{i} (#{mode}): expected #{Types.type_to_string(type)}#{Types.shape_to_string(shape)}, " <>
       "the node returned #{inspect(got, limit: 4, printable_limit: 32)}"}
  end

  defp finish(plan, modes, value, node, session) do
    with {:ok, list} <- decode(plan, modes, value, node, session),
         do: {:ok, Program.rebuild(plan.program.result, List.to_tuple(list))}
  end

  # A run with more than one message: large data arguments are uploaded first (in pieces
  # when larger than the chunk size), large returned outputs are kept and downloaded in
  # pieces; every temporary tensor is freed at the end. Where the node shares the host, data
  # arguments and returned outputs that Mure.Transfer moves through shared memory go that way
  # (uploaded first, downloaded after) instead of inside the program's messages.
  defp staged(plan, owner, budget) do
    with {:ok, limits} <- Transfer.limits(plan.conn),
         {:ok, inputs, temps} <- stage_inputs(plan, owner, budget, limits) do
      modes =
        Enum.zip_with(plan.program.outputs, plan.modes, fn {_, type, shape}, mode ->
          if mode == :return and apart?(bytes(type, shape), limits),
            do: :download,
            else: mode
        end)

      wire_modes = Enum.map(modes, &if(&1 == :download, do: :keep, else: &1))
      sessions = Enum.uniq(plan.sessions ++ Enum.map(temps, & &1.session))

      result =
        case Request.call(plan.conn, request(plan, inputs, wire_modes), sessions, owner, budget) do
          {:ok, value, node, session} -> decode(plan, wire_modes, value, node, session)
          {:error, error} -> {:error, error}
        end

      Enum.each(temps, &free_temp/1)

      with {:ok, list} <- result,
           {:ok, list} <- downloads(list, modes, budget, limits) do
        {:ok, Program.rebuild(plan.program.result, List.to_tuple(list))}
      end
    end
  end

  defp free_temp(t) do
    Request.free_async(t)
    Request.untrack(t)
  end

  # Whether bytes of this size move apart from the program's own messages: above the chunk
  # size, or through shared memory.
  defp apart?(size, limits), do: size > limits.chunk_size or Transfer.shm?(limits, size)

  # Data arguments go with the program while their total stays within one piece (those for
  # shared memory aside); the largest others are uploaded first.
  defp stage_inputs(plan, owner, budget, limits) do
    total =
      for {:data, bin, _, _} <- plan.used,
          not Transfer.shm?(limits, byte_size(bin)),
          reduce: 0,
          do: (acc -> acc + byte_size(bin))

    {upload_set, _} =
      plan.used
      |> Enum.with_index()
      |> Enum.filter(&match?({{:data, _, _, _}, _}, &1))
      |> Enum.sort_by(fn {{:data, bin, _, _}, _} -> -byte_size(bin) end)
      |> Enum.reduce({MapSet.new(), total}, fn {{:data, bin, _, _}, i}, {set, left} ->
        cond do
          Transfer.shm?(limits, byte_size(bin)) -> {MapSet.put(set, i), left}
          left > limits.piece -> {MapSet.put(set, i), left - byte_size(bin)}
          true -> {set, left}
        end
      end)

    plan.used
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, [], []}, fn {arg, i}, {:ok, inputs, temps} ->
      if MapSet.member?(upload_set, i) do
        {:data, bin, type, shape} = arg

        case upload(plan.conn, bin, type, shape, owner, budget, limits) do
          {:ok, t} -> {:cont, {:ok, [{:handle, t.id} | inputs], [t | temps]}}
          {:error, error} -> {:halt, {:error, error, temps}}
        end
      else
        {:cont, {:ok, [input(arg) | inputs], temps}}
      end
    end)
    |> case do
      {:ok, inputs, temps} ->
        {:ok, Enum.reverse(inputs), temps}

      {:error, error, temps} ->
        Enum.each(temps, &free_temp/1)
        {:error, error}
    end
  end

  defp upload(conn, bin, type, shape, owner, budget, limits) do
    if apart?(byte_size(bin), limits) do
      Transfer.upload(conn, bin, type, shape, owner, budget, limits)
    else
      case Request.call(conn, {:upload, type, shape, bin}, [], owner, budget) do
        {:ok, h, node, session} when is_integer(h) ->
          case Tensor.from_reply(conn, h, node, session, {type, shape}) do
            {:ok, t} ->
              Request.track(t)
              {:ok, t}

            :error ->
              {:error, unexpected_upload(h)}
          end

        {:ok, other, _, _} ->
          {:error, unexpected_upload(other)}

        {:error, error} ->
          {:error, error}
      end
    end
  end

  defp unexpected_upload(reply),
    do: %Error{kind: :internal, message: "upload: unexpected reply #{inspect(reply)}"}

  defp downloads(list, modes, budget, limits) do
    Enum.zip(list, modes)
    |> Enum.reduce_while({:ok, []}, fn
      {t, :download}, {:ok, acc} ->
        result = Transfer.download(t, budget, limits)
        free_temp(t)

        case result do
          {:ok, bin} -> {:cont, {:ok, [bin | acc]}}
          {:error, error} -> {:halt, {:error, error, acc}}
        end

      {r, _}, {:ok, acc} ->
        {:cont, {:ok, [r | acc]}}
    end)
    |> case do
      {:ok, acc} ->
        {:ok, Enum.reverse(acc)}

      {:error, error, acc} ->
        # The outputs not yet downloaded are freed too: the call failed as a whole.
        Request.free_all(acc)

        Enum.zip(list, modes)
        |> Enum.drop(length(acc) + 1)
        |> Enum.each(fn {r, _} -> Request.free_all(r) end)

        {:error, error}
    end
  end
end

defmodule Mure.Jit.Cache do
  @moduledoc false
  # Traced programs, shared by every process of this BEAM: a public ETS table keyed by
  # {function, signature}. Functions compare equal when they are the same code with the same
  # captured values, so calling Mure.jit/2 again on the same function (in a loop, in another
  # process) reuses its traces. The table is owned by a small registered process started on
  # first use (the client has no application supervisor); if it is ever gone, the next
  # call starts a fresh one and traces again. At @max_entries the table is cleared: a bound
  # for programs made of functions created on the fly with ever-new captured values.

  @table __MODULE__
  @max_entries 4096

  @spec get(term()) :: {:ok, Mure.Program.t()} | :error
  def get(key) do
    case :ets.lookup(table(), key) do
      [{^key, program}] -> {:ok, program}
      [] -> :error
    end
  rescue
    ArgumentError -> :error
  end

  @spec put(term(), Mure.Program.t()) :: :ok
  def put(key, program) do
    t = table()
    if :ets.info(t, :size) >= @max_entries, do: :ets.delete_all_objects(t)
    :ets.insert(t, {key, program})
    :ok
  rescue
    ArgumentError -> :ok
  end

  @spec clear() :: :ok
  def clear do
    if :ets.whereis(@table) != :undefined, do: :ets.delete_all_objects(@table)
    :ok
  rescue
    ArgumentError -> :ok
  end

  @spec size() :: non_neg_integer()
  def size do
    case :ets.whereis(@table) do
      :undefined -> 0
      t -> :ets.info(t, :size)
    end
  end

  defp table do
    case :ets.whereis(@table) do
      :undefined ->
        start_keeper()
        @table

      t ->
        t
    end
  end

  defp start_keeper do
    parent = self()
    ref = make_ref()

    {_pid, mon} =
      spawn_monitor(fn ->
        try do
          Process.register(self(), @table)
          :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
          send(parent, {ref, :ok})
        rescue
          # Another process won the race: its table serves.
          ArgumentError -> exit(:normal)
        end

        Process.sleep(:infinity)
      end)

    receive do
      {^ref, :ok} -> Process.demonitor(mon, [:flush])
      {:DOWN, ^mon, _, _, _} -> :ok
    end

    :ok
  end
end
