defmodule Mure.Compiler do
  @moduledoc """
  An `Nx.Defn.Compiler`: `defn` functions run on a mure node, each call as one program.

      {:ok, conn} = Mure.start_link([])
      Nx.default_backend({Mure.Backend, connection: conn})

      fun = Nx.Defn.jit(&MyModel.predict/2, compiler: Mure, connection: conn)
      fun.(params, batch)       # one {:program, ...} request; results stay on the node

  (`compiler: Mure` and `compiler: Mure.Compiler` are the same.) The function is traced
  once per argument signature (types, shapes, names) and the hooks given; the plan made
  from the trace is cached (in `Mure.jit`'s cache) and reused for every later call with
  that signature. The results are `Mure.Backend` tensors, resident on the node and owned
  as eager `Mure.Backend` results are (see "Lifetime" in `Mure.Backend`).

  ## Options

    * `:connection` - the `Mure.Connection` to run on; default: that of the first
      `Mure.Backend` argument, else of the default backend if it is `Mure.Backend`, else
      `config :mure, Mure.Backend, connection: name`
    * `:device` - `:cpu`, `:opencl` or `:auto` (default: the node's choice)
    * `:timeout` - for each program the function runs, in ms (default 60 000: the first
      run of a program may build its fused kernels), or `:infinity`
    * `:hooks` - `%{name => fun}`, as for `Nx.Defn.Evaluator`: functions that run on the
      client with the hooked value (downloaded) as the function runs
    * `:max_iterations` - the most iterations a `while` run on the node may take (default
      10 000 000, the node's default `max_loop_iterations`; the smaller of the two applies);
      a loop still going at the bound raises `Mure.Error`

  ## How a function becomes programs

  Every op is lowered by `Mure.Backend`'s own callback (the same Nx-op-to-node-op mapping as
  eager ops), as an expression of one program instead of a request; arguments are the
  program's inputs (by handle when they are `Mure.Backend` tensors of the connection, their
  bytes in the program otherwise), constants and captured tensors are inlined, tuples and
  maps are containers, `optional` ops use the node's op when `Mure.Backend` has one and
  their fallback expression otherwise. A straight-line function is **one request**.

  `while` and `cond` run on the node when they are straight-line: the condition and the body
  of a `while` (each branch of a `cond`) lowered on their own make no client step (no hook,
  no op the node lacks, no client loop inside). A `while` then becomes one `{:while, ...}`
  node of the program (docs/protocol.md, "while / if"): the node runs every iteration, and
  the tensors the loop captures are its invariants; a `cond` becomes nested `{:if, ...}`
  nodes (one per clause; its predicates are computed before the first). Loops nest. A
  training loop of 100 steps is then one request, not 100. The loop's bound is the option
  `:max_iterations` (and the node's `max_loop_iterations`); a loop still running at the
  bound raises `Mure.Error` (`:out_of_range`).

  What one program cannot hold splits the function there: the values needed are computed
  by the program so far and stay on the node; then

    * an op the node lacks (see "Ops the node does not have yet" in `Mure.Backend`) runs as
      the eager `Mure.Backend` op;
    * a `while` that is not straight-line runs on the client: the condition is tested once
      on the initial state, then each iteration is one program (the body and the test of
      the condition on the new state, whose result comes back in the reply): one round
      trip per iteration;
    * a `cond` with a branch that is not straight-line tests its clauses in order (a
      program each, the predicate in the reply) and runs the chosen branch;
    * hooks get their values downloaded and run on the client;

  and the function goes on with a new program.

  ## Examples

      iex> {:ok, conn} = Mure.start_link([])
      iex> fun = Nx.Defn.jit(fn x -> Nx.sum(Nx.exp(x)) end, compiler: Mure, connection: conn)
      iex> fun.(Nx.tensor([0.0, 0.0, 0.0])) |> Nx.to_number()
      3.0
      iex> Mure.stop(conn)
      :ok

  """

  @behaviour Nx.Defn.Compiler

  # The default bound of a `while` run on the node: the node's own default cap
  # (max_loop_iterations in config/mure.conf); the smaller of the two applies.
  @max_iterations 10_000_000

  alias Mure.Compiler.{Lower, Run}
  alias Mure.Request

  @impl true
  def __jit__(key, vars, fun, args_list, opts),
    do: __compile__(key, vars, fun, opts).(args_list)

  @impl true
  def __compile__(key, vars, fun, opts) do
    opts = validate!(opts)
    # The arguments as Nx passes them at call time: flat, one per tensor of `vars`.
    flat = Nx.Defn.Composite.flatten_list(vars)
    # The signature: the arguments' structure (containers, map keys) with their tensors'
    # types, shapes, names and vectorized axes.
    signature = Enum.map(vars, &Nx.Defn.Composite.traverse(&1, fn t -> %{t | data: nil} end))
    cache_key = {__MODULE__, key, signature, opts[:hooks], opts[:max_iterations]}

    plan =
      case Mure.Jit.Cache.get(cache_key) do
        {:ok, plan} ->
          plan

        :error ->
          plan = Lower.plan(fun.(vars), flat, opts[:hooks], opts[:max_iterations])
          Mure.Jit.Cache.put(cache_key, plan)
          plan
      end

    fn args_list ->
      Enum.map(args_list, fn args ->
        args = Enum.map(args, & &1.())
        {conn, device} = target(args, opts)
        Run.run(plan, args, conn, device, opts[:timeout])
      end)
    end
  end

  @impl true
  def __stream__(_key, _input, _acc, _vars, _fun, _args_list, _opts) do
    raise ArgumentError,
          "Mure.Compiler does not support Nx.Defn.stream/3 yet: call the function with " <>
            "Nx.Defn.jit/2 once per element of the stream, or stream with " <>
            "compiler: Nx.Defn.Evaluator and Mure.Backend tensors"
  end

  @impl true
  def __partitions_options__(opts), do: [opts]

  @impl true
  def __to_backend__(opts) do
    opts = validate!(opts)

    {Mure.Backend,
     Keyword.take(opts, [:connection, :device]) |> Enum.reject(&is_nil(elem(&1, 1)))}
  end

  defp validate!(opts) do
    opts =
      Keyword.validate!(opts, [
        :connection,
        :device,
        hooks: %{},
        timeout: 60_000,
        max_iterations: @max_iterations
      ])

    unless is_integer(opts[:max_iterations]) and opts[:max_iterations] >= 1 do
      raise ArgumentError,
            "Mure.Compiler: expected :max_iterations to be a positive integer, got: " <>
              inspect(opts[:max_iterations])
    end

    unless opts[:device] in [nil, :cpu, :opencl, :auto] do
      raise ArgumentError,
            "Mure.Compiler: expected :device to be :cpu, :opencl or :auto, got: " <>
              inspect(opts[:device])
    end

    unless is_map(opts[:hooks]) do
      raise ArgumentError,
            "Mure.Compiler: expected :hooks to be a map of names to functions, got: " <>
              inspect(opts[:hooks])
    end

    Request.budget(opts[:timeout])
    opts
  end

  # The connection and device of a call: the options', else the first Mure.Backend
  # argument's, else the default backend's (when it is Mure.Backend), else the config.
  defp target(args, opts) do
    from_arg =
      Enum.find_value(args, fn
        %Nx.Tensor{data: %Mure.Backend{ref: ref, device: device}} -> {ref.conn, device}
        _ -> nil
      end)

    from_default =
      case Nx.default_backend() do
        {Mure.Backend, bopts} -> {bopts[:connection], bopts[:device]}
        _ -> {nil, nil}
      end

    config = Application.get_env(:mure, Mure.Backend, [])[:connection]
    {arg_conn, arg_device} = from_arg || {nil, nil}
    conn = opts[:connection] || arg_conn || elem(from_default, 0) || config

    unless conn do
      raise ArgumentError,
            "Mure.Compiler needs a connection: Nx.Defn.jit(fun, compiler: Mure, connection: " <>
              "conn), a Mure.Backend argument, Nx.default_backend({Mure.Backend, connection: " <>
              "conn}), or config :mure, Mure.Backend, connection: name"
    end

    {conn, opts[:device] || arg_device || elem(from_default, 1) || :auto}
  end
end
