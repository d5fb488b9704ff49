defmodule Mure.Backend do
  @moduledoc """
  An `Nx.Backend` whose tensors live on a mure node: existing Nx code runs there unchanged.

      {:ok, conn} = Mure.start_link([])
      Nx.default_backend({Mure.Backend, connection: conn})

      Nx.tensor([1.0, 2.0, 3.0]) |> Nx.exp() |> Nx.sum()   # computed on the node

  Options (`Nx.default_backend/1`, `Nx.backend_transfer/2`, `backend: {Mure.Backend, opts}`):

    * `:connection` - the `Mure.Connection` (pid or registered name) whose node holds the
      tensors; default: `config :mure, Mure.Backend, connection: name`
    * `:device` - `:cpu`, `:opencl` or `:auto` (default: the node's choice), where the
      node runs the ops on these tensors

  Every eager op runs on the node and its result stays resident there; only
  `Nx.to_binary/2`, `Nx.to_number/1`, `inspect` and transfers to another backend read
  data back. `Nx.backend_transfer/2` and `Nx.backend_copy/2` move tensors to and from
  `Nx.BinaryBackend` (or any backend) and between connections (nodes). In `inspect` the
  node is named (`Mure.Backend<node>`), except in the test environment (as EXLA does),
  so that doctests compare Nx's own output.

  ## Lifetime: the rule

  Nx tensors are values: they are passed between processes and dropped without being
  freed. The node frees a tensor when the process it was made for exits. So:

    1. **A tensor lives as long as the process it was made for**: the process that called
       the op, or, inside a `Task` (any process with `$callers`), the process that started
       the Task (the first caller). Any process of the same BEAM node may use it meanwhile:
       a tensor passed to a `Task` works there, and a tensor a Task returns works in its
       caller.
    2. **A long-running process frees as it goes with `scope/2`**: a `GenServer` doing eager
       Nx ops in a loop runs each step as `Mure.Backend.scope(state, fn state -> ... end)`,
       which frees every tensor made in the step and every tensor of the old state, except
       those in the step's result (`scope/1`: no input). Without it a process that never
       exits keeps every intermediate and every old state until it does.
    3. **`Nx.backend_deallocate/1` frees a tensor at once.**

  A tensor used after it was freed (its owner exited, its scope ended without returning
  it, or it was deallocated) raises an `ArgumentError` that says so and what to do: make
  it in a process that outlives its use, return it from the scope, or copy it out with
  `Nx.backend_copy(tensor, Nx.BinaryBackend)`. Tensors a Task makes inside a scope of the
  Task are freed by that scope; results a Task returns belong to its caller and are not
  known to a scope of the caller: free them with `Nx.backend_deallocate/1`, or let the
  caller's exit free them.

  ## Linear algebra

  `Nx.LinAlg`'s `lu`, `triangular_solve`, `qr`, `cholesky`, `eigh`, `svd`, `solve` and
  `determinant` run on the node through LAPACK, each one node op (batched), in double
  whatever the type (an `{:f, 32}` result is rounded once). Where a factorisation leaves a
  choice, LAPACK's is not Nx.BinaryBackend's: `lu` pivots by partial pivoting, `eigh` gives
  eigenvalues in ascending order, and the signs of eigen and singular vectors may differ
  (the products `p.l.u`, `v.diag(w).vt`, `u.s.vt` are the input either way). A singular
  system raises Nx's `ArgumentError`; `:eps` and `:max_iter` do not apply.

  ## What does not run on the node

  The callbacks the node's op set serves run there, some composed from its ops in one
  program (`conv` as im2col and one dot, `take_along_axis` as a gather); the window ops,
  `window_scatter_max/min`, `indexed_add/put` and `cumulative_*` are node ops of their own
  (`Mure.Expr.Window`); `map`, `reduce` and `window_reduce` functions are traced into node
  ops (never sent); FFTs and linear algebra are node ops too (FFTW, LAPACK); `all_close`
  and `top_k` are one program each (Nx would compose them of several eager ops). Every
  callback of `Nx.Backend` has its node op; what still runs on `Nx.BinaryBackend`
  (download, compute, upload) goes through one place, `Mure.Backend.Fallback`, which counts
  it (`fallbacks/0`) and logs why at debug level:

    * on `{:c, 64}` and `{:c, 128}`: the ops Nx defines on complex that the node's complex
      table lacks (the node has data movement, as_type, `+ - * /`, `pow`, `equal`,
      `not_equal`, `sum`, `product`, `dot`, `conjugate`, `real`, `imag`, `abs`, `exp`,
      `log`, `sqrt`, the trigonometric and hyperbolic functions; `fft` and `ifft` run there
      through FFTW, on the node's CPU whatever `:device` says), and the linear algebra of
      complex matrices (the node's LAPACK ops are real);
    * `map`, `reduce` and `window_reduce` with a function the trace cannot translate
      (reduce, window_reduce: only add, multiply, max or min of the element and the
      accumulator); `gather` over some of the axes; `conv` with a kernel
      of more than 256 elements per channel; any variant of an op the node's rules refuse.

  Where the node differs from `Nx.BinaryBackend` in these ops: `window_scatter_max/min`
  never select a padding position (Nx.BinaryBackend pads with the init value and maps the
  padded position onto the unpadded output, which shifts it); `indexed_add/put` with an
  update window smaller than the target's other axes write it from coordinate 0 of those
  axes (as EXLA's scatter does; Nx.BinaryBackend writes it contiguously); float
  `cumulative_*` accumulate in double and round once per element. Out-of-range indices
  raise, as in Nx.BinaryBackend.
  """

  @behaviour Nx.Backend

  alias Mure.Backend.{Fallback, Node}
  alias Mure.{Expr, Rules, Tensor}

  @enforce_keys [:ref]
  defstruct [:ref, device: :auto]

  @typedoc "The data of an `Nx.Tensor` on a mure node: the resident tensor and the device."
  @type t :: %__MODULE__{ref: Tensor.t(), device: :cpu | :opencl | :auto}

  @add_backend_on_inspect Application.compile_env(:mure, :add_backend_on_inspect, true)

  @unary_ops Rules.unary_ops()
  @binary_ops Rules.binary_ops()

  ## Public API

  @doc """
  Runs `fun` and frees every Mure.Backend tensor made in it by this process, except those
  found in its result (in tuples, lists, maps and structs); those belong to the enclosing
  scope, if any. On an exception everything made in it is freed. See "Lifetime" above.
  """
  @spec scope((() -> result)) :: result when result: term()
  def scope(fun) when is_function(fun, 0), do: Node.scope(nil, fn nil -> fun.() end)

  @doc """
  Runs `fun.(input)` as `scope/1` does, and also frees the tensors of `input` that its
  result does not contain: `input` is consumed. This is the step of a long-running process
  whose state holds tensors: the old state is freed as the new one is made.

      def handle_call({:step, batch}, _from, state) do
        {loss, state} = Mure.Backend.scope(state, fn state -> train_step(state, batch) end)
        {:reply, loss, state}
      end

  Only tensors this process holds alone belong in `input`: one also sent to another
  process is freed for it too.
  """
  @spec scope(term(), (term() -> result)) :: result when result: term()
  def scope(input, fun) when is_function(fun, 1), do: Node.scope(input, fun)

  @doc """
  How many times each callback ran on `Nx.BinaryBackend` instead of the node since the
  BEAM started: `%{callback => count}` (callbacks that never fell back are absent).
  """
  @spec fallbacks() :: %{atom() => non_neg_integer()}
  def fallbacks, do: Fallback.counts()

  ## Creation and transfers

  @impl true
  def init(opts) do
    opts =
      Keyword.validate!(opts,
        connection: Application.get_env(:mure, __MODULE__, [])[:connection],
        device: :auto
      )

    unless opts[:connection] do
      raise ArgumentError,
            "Mure.Backend needs a connection: {Mure.Backend, connection: conn} (a Mure " <>
              "connection's pid or name), or config :mure, Mure.Backend, connection: name"
    end

    unless opts[:device] in [:cpu, :opencl, :auto] do
      raise ArgumentError,
            "Mure.Backend: expected :device to be :cpu, :opencl or :auto, got: #{inspect(opts[:device])}"
    end

    Fallback.init_counters(Keyword.keys(Nx.Backend.behaviour_info(:callbacks)))
    opts
  end

  @impl true
  def constant(out, number, opts) do
    if node_type?(out.type) do
      create(out, opts, :constant, fn -> Expr.full(number, out.shape, type: out.type) end)
    else
      Fallback.run(:constant, [out, number, []], opts[:connection], opts[:device], "type")
    end
  end

  @impl true
  def eye(out, opts),
    do: create(out, opts, :eye, fn -> Expr.eye(out.shape, type: out.type) end)

  @impl true
  def iota(out, axis, opts) do
    iota_opts = if axis, do: [type: out.type, axis: axis], else: [type: out.type]
    create(out, opts, :iota, fn -> Expr.iota(out.shape, iota_opts) end)
  end

  defp create(out, opts, name, build) do
    conn = opts[:connection]

    if node_type?(out.type) do
      device = cpu_for_complex(opts[:device], [out], name)

      case Node.run(conn, name, [], fn [] -> build.() end, {out.type, out.shape}, device) do
        {:ok, t} ->
          wrap(out, t, opts[:device])

        {:unsupported, why} ->
          Fallback.run(name, fallback_args(name, out), conn, opts[:device], why)
      end
    else
      Fallback.run(name, fallback_args(name, out), conn, opts[:device], "type")
    end
  end

  defp fallback_args(:eye, out), do: [out, []]
  defp fallback_args(:iota, out), do: [out, nil, []]

  @impl true
  def from_binary(out, binary, opts) do
    opts = init(opts)
    upload(out, IO.iodata_to_binary(binary), opts[:connection], opts[:device])
  end

  @doc false
  # Puts `bin` (Nx's bytes of `out`) on the node; complex types too, in Nx's layout (real
  # part, then imaginary part, per element).
  @spec upload(Nx.Tensor.t(), binary(), GenServer.server(), atom()) :: Nx.Tensor.t()
  def upload(out, bin, conn, device),
    do: wrap(out, Node.upload(conn, bin, out.type, out.shape), device)

  @doc false
  @spec download(Nx.Tensor.t(), String.t()) :: binary()
  def download(%Nx.Tensor{data: %__MODULE__{ref: ref}}, what), do: Node.download(ref, what)

  @impl true
  def to_binary(%Nx.Tensor{type: {_, bits}, data: %__MODULE__{ref: ref}}, limit),
    do: Node.read(ref, limit * div(bits, 8), "to_binary")

  @impl true
  def backend_deallocate(%Nx.Tensor{data: %__MODULE__{ref: ref}}), do: Node.free(ref)

  @impl true
  def backend_copy(t, backend, opts), do: copy(t, backend, opts)

  @impl true
  def backend_transfer(%Nx.Tensor{data: %__MODULE__{ref: ref} = data} = t, backend, opts) do
    if backend == __MODULE__ and same_connection?(ref, opts) do
      %{t | data: %{data | device: init(opts)[:device]}}
    else
      result = copy(t, backend, opts)
      Node.free(ref)
      result
    end
  end

  defp same_connection?(ref, opts) do
    conn = init(opts)[:connection]
    conn == ref.conn or GenServer.whereis(conn) == GenServer.whereis(ref.conn)
  end

  defp copy(t, backend, opts) do
    bin = download(t, "backend_copy")
    backend.from_binary(%{t | data: nil}, bin, opts)
  end

  @impl true
  def inspect(%Nx.Tensor{data: %__MODULE__{ref: ref}} = t, inspect_opts) do
    limit = inspect_opts.limit
    bin = if limit == :infinity, do: to_binary(t, Nx.size(t)), else: to_binary(t, limit + 1)
    doc = Nx.Backend.inspect(t, bin, inspect_opts)

    if @add_backend_on_inspect,
      do: Inspect.Algebra.concat(["Mure.Backend<#{ref.node}>", Inspect.Algebra.line(), doc]),
      else: doc
  end

  @impl true
  def to_batched(out, t, opts) do
    if node_type?(t.type) do
      batches_on_node(out, t, opts)
    else
      fallback(:to_batched, [out, t, opts], "complex")
    end
  end

  # A lazy stream, as Nx.BinaryBackend's (Nx.to_batched/3 returns it as is): each batch is
  # sliced on the node when it is taken, by the process taking it.
  defp batches_on_node(out, t, opts) do
    b = elem(out.shape, 0)
    n = elem(t.shape, 0)
    full = div(n, b)
    rest = rem(n, b)
    zeros = List.duplicate(0, tuple_size(t.shape) - 1)
    tail = t.shape |> Tuple.delete_at(0) |> Tuple.to_list()
    last = if rest != 0 and opts[:leftover] == :repeat, do: full, else: full - 1

    slice = fn x, start, len -> Expr.slice(x, [start | zeros], [len | tail]) end

    Stream.map(0..last//1, fn
      ^full ->
        serve(:to_batched, out, [t], [out, t, opts], fn [x] ->
          Expr.concatenate([slice.(x, full * b, rest), slice.(x, 0, b - rest)], axis: 0)
        end)

      i ->
        serve(:to_batched, out, [t], [out, t, opts], fn [x] -> slice.(x, i * b, b) end)
    end)
  end

  ## Types and shapes

  @impl true
  def as_type(out, t),
    do: serve(:as_type, out, [t], [out, t], fn [x] -> Expr.as_type(x, out.type) end)

  @impl true
  def bitcast(out, t),
    do: serve(:bitcast, out, [t], [out, t], fn [x] -> Expr.bitcast(x, out.type) end)

  @impl true
  def reshape(out, t),
    do: serve(:reshape, out, [t], [out, t], fn [x] -> Expr.reshape(x, out.shape) end)

  @impl true
  def squeeze(out, t, axes),
    do: serve(:squeeze, out, [t], [out, t, axes], fn [x] -> Expr.squeeze(x, axes: axes) end)

  @impl true
  def broadcast(out, t, shape, axes) do
    serve(:broadcast, out, [t], [out, t, shape, axes], fn [x] ->
      Expr.broadcast(x, shape, axes: axes)
    end)
  end

  @impl true
  def transpose(out, t, axes),
    do: serve(:transpose, out, [t], [out, t, axes], fn [x] -> Expr.transpose(x, axes: axes) end)

  @impl true
  def pad(out, t, pad_value, config) do
    value = Nx.to_number(pad_value)

    serve(:pad, out, [t], [out, t, pad_value, config], fn [x] ->
      Expr.pad(cast(x, out.type), value, config)
    end)
  end

  @impl true
  def reverse(out, t, axes),
    do: serve(:reverse, out, [t], [out, t, axes], fn [x] -> Expr.reverse(x, axes: axes) end)

  # Starts on the node or computed by a defn function are not read: dynamic_slice (Slice).
  @impl true
  defdelegate slice(out, t, starts, lengths, strides), to: Mure.Backend.Slice
  @impl true
  defdelegate put_slice(out, t, starts, update), to: Mure.Backend.Slice

  @impl true
  def concatenate(out, tensors, axis) do
    serve(:concatenate, out, tensors, [out, tensors, axis], fn xs ->
      Expr.concatenate(Enum.map(xs, &cast(&1, out.type)), axis: axis)
    end)
  end

  @impl true
  def take(out, t, indices, axis),
    do:
      serve(:take, out, [t, indices], [out, t, indices, axis], fn [x, i] ->
        Expr.take(x, i, axis: axis)
      end)

  @impl true
  def gather(out, t, indices, opts) do
    if opts[:axes] == Enum.to_list(0..(tuple_size(t.shape) - 1)//1) do
      serve(:gather, out, [t, indices], [out, t, indices, opts], fn [x, i] ->
        Expr.gather(x, i)
      end)
    else
      fallback(
        :gather,
        [out, t, indices, opts],
        "gather over some of the axes (axes: #{inspect(opts[:axes])})"
      )
    end
  end

  @impl true
  def select(out, pred, on_true, on_false) do
    serve(:select, out, [pred, on_true, on_false], [out, pred, on_true, on_false], fn [p, a, b] ->
      Expr.select(p, cast(a, out.type), cast(b, out.type))
    end)
  end

  @impl true
  def clip(out, t, min, max) do
    serve(:clip, out, [t, min, max], [out, t, min, max], fn [x, lo, hi] ->
      Expr.clip(cast(x, out.type), cast(lo, out.type), cast(hi, out.type))
    end)
  end

  @impl true
  def dot(out, a, ca, ba, b, cb, bb) do
    serve(:dot, out, [a, b], [out, a, ca, ba, b, cb, bb], fn [x, y] ->
      Expr.dot(cast(x, out.type), ca, ba, cast(y, out.type), cb, bb)
    end)
  end

  ## Elementwise

  for op <- @unary_ops do
    @impl true
    def unquote(op)(out, t),
      do: serve(unquote(op), out, [t], [out, t], fn [x] -> Expr.unary(unquote(op), x) end)
  end

  # fft/ifft: the node transforms the last axis (FFTW); another axis is moved there and back.
  # Parts of magnitude <= opts[:eps] become 0, as Nx.BinaryBackend does.
  for kind <- [:fft, :ifft] do
    @impl true
    def unquote(kind)(out, t, opts) do
      serve(unquote(kind), out, [t], [out, t, opts], fn [x] ->
        Mure.Backend.Compose.fft(unquote(kind), x, opts[:axis], opts[:length], opts[:eps])
      end)
    end
  end

  for op <- @binary_ops do
    @impl true
    def unquote(op)(out, a, b),
      do:
        serve(unquote(op), out, [a, b], [out, a, b], fn [x, y] ->
          Expr.binary(unquote(op), x, y)
        end)
  end

  ## Reductions and sorting

  for op <- [:sum, :product, :reduce_max, :reduce_min, :all, :any] do
    @impl true
    def unquote(op)(out, t, opts) do
      ro = if opts[:axes], do: [axes: opts[:axes]], else: []
      ro = [keep_axes: opts[:keep_axes] || false] ++ ro
      serve(unquote(op), out, [t], [out, t, opts], fn [x] -> Expr.reduce(unquote(op), x, ro) end)
    end
  end

  # Composed from node ops, or traced (Mure.Backend.Composite).
  @impl true
  defdelegate argmax(out, t, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate argmin(out, t, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate take_along_axis(out, t, indices, axis), to: Mure.Backend.Composite
  @impl true
  defdelegate all_close(out, a, b, opts), to: Mure.Backend.Optional
  @impl true
  defdelegate top_k(out, t, opts), to: Mure.Backend.Optional
  @impl true
  defdelegate window_sum(out, t, window, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate window_reduce(out, t, acc, window, opts, fun), to: Mure.Backend.Composite
  @impl true
  defdelegate window_scatter_max(out, t, source, init, window, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate window_scatter_min(out, t, source, init, window, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate indexed_add(out, t, indices, updates, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate indexed_put(out, t, indices, updates, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate cumulative_sum(out, t, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate cumulative_product(out, t, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate cumulative_max(out, t, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate cumulative_min(out, t, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate window_product(out, t, window, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate window_max(out, t, window, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate window_min(out, t, window, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate conv(out, t, k, opts), to: Mure.Backend.Composite
  @impl true
  defdelegate map(out, t, opts, fun), to: Mure.Backend.Composite
  @impl true
  defdelegate reduce(out, t, acc, opts, fun), to: Mure.Backend.Composite

  @impl true
  def sort(out, t, opts) do
    so = [axis: opts[:axis], direction: opts[:direction]]
    serve(:sort, out, [t], [out, t, opts], fn [x] -> Expr.sort(x, so) end)
  end

  @impl true
  def argsort(out, t, opts) do
    so = [axis: opts[:axis], direction: opts[:direction]]
    serve(:argsort, out, [t], [out, t, opts], fn [x] -> Expr.argsort(x, so) end)
  end

  # Nx.LinAlg through LAPACK on the node (Mure.Backend.Linalg).
  for {name, arity} <-
        [lu: 3, triangular_solve: 4, qr: 3, cholesky: 2, eigh: 3, svd: 3] ++
          [solve: 3, determinant: 2] do
    args = Macro.generate_arguments(arity, __MODULE__)
    @impl true
    defdelegate unquote(name)(unquote_splicing(args)), to: Mure.Backend.Linalg
  end

  defp tensors_in(args) when is_list(args), do: Enum.map(args, &tensors_in/1)
  defp tensors_in(%Nx.Tensor{} = t), do: [t]
  defp tensors_in(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> tensors_in()
  defp tensors_in(_), do: []

  ## Helpers

  # Runs `build` on the node with `inputs` (Nx tensors, moved to the node of the first
  # Mure.Backend one) and wraps the result as `out`; falls back when a type is complex or
  # the node's rules refuse the op.
  @doc false
  @spec serve(atom(), Nx.Tensor.t(), [Nx.Tensor.t()], list(), ([Expr.t()] -> Expr.t())) :: term()
  def serve(name, out, [%Nx.Tensor{data: %Mure.Compiler.Sym{}} | _] = ins, args, build),
    do: Mure.Compiler.Sym.serve(name, out, ins, args, build)

  def serve(name, out, inputs, args, build) do
    if Enum.all?([out | inputs], &node_type?(&1.type)) do
      {conn, device} = home(args)
      refs = Enum.map(inputs, &to_node(&1, conn))
      device = cpu_for_complex(device, [out | inputs], name)

      case Node.run(conn, name, refs, build, {out.type, out.shape}, device) do
        {:ok, ref} -> wrap(out, ref, device)
        {:unsupported, why} -> Fallback.run(name, args, conn, device, why)
      end
    else
      fallback(name, args, "type")
    end
  end

  # Complex types and FFTs run on the node's CPU executor only: `device: :opencl` sends them
  # there (:auto does already).
  defp cpu_for_complex(:opencl, tensors, name) do
    if name in [:fft, :ifft] or Enum.any?(tensors, &match?({:c, _}, &1.type)),
      do: :cpu,
      else: :opencl
  end

  defp cpu_for_complex(device, _tensors, _name), do: device

  @doc false
  # `serve` for an op with several results: `outs` (Nx's templates, in order) and `build`
  # giving one expression per out; the result is the tuple of Nx tensors.
  @spec serve_many(atom(), [Nx.Tensor.t()], [Nx.Tensor.t()], list(), ([Expr.t()] -> [Expr.t()])) ::
          tuple()
  # Several results (lu, qr, eigh, svd, top_k): while Mure.Compiler lowers a defn function
  # the op becomes a client step between programs (the compiler's lowering makes one result).
  def serve_many(name, _outs, [%Nx.Tensor{data: %Mure.Compiler.Sym{}} | _], _args, _build),
    do: Mure.Compiler.Sym.refuse(name, "an op of several results runs as its own request")

  def serve_many(name, outs, inputs, args, build) do
    if Enum.all?(outs ++ inputs, &node_type?(&1.type)) do
      {conn, device} = home(args)
      refs = Enum.map(inputs, &to_node(&1, conn))
      shapes = Enum.map(outs, &{&1.type, &1.shape})

      case Node.run_many(conn, name, refs, build, shapes, device) do
        {:ok, made} ->
          outs
          |> Enum.zip(made)
          |> Enum.map(fn {o, r} -> wrap(o, r, device) end)
          |> List.to_tuple()

        {:unsupported, why} ->
          Fallback.run(name, args, conn, device, why)
      end
    else
      fallback(name, args, "complex")
    end
  end

  @doc false
  @spec fallback(atom(), list(), String.t()) :: term()
  def fallback(name, args, why) do
    if Mure.Compiler.Sym.lowering?(), do: Mure.Compiler.Sym.refuse(name, why)
    {conn, device} = home(args)
    Fallback.run(name, args, conn, device, why)
  end

  # Where a callback's result goes: the node of its first Mure.Backend tensor (Nx chose
  # this backend because one of its tensors is here: an operand, or a start index or a
  # pad value of an operand of another backend), else the default backend's.
  defp home(args) do
    case args |> tensors_in() |> List.flatten() |> Enum.find(&mure?/1) do
      %Nx.Tensor{data: %{ref: ref, device: device}} ->
        {ref.conn, device}

      nil ->
        {__MODULE__, opts} = Nx.default_backend()
        opts = init(opts)
        {opts[:connection], opts[:device]}
    end
  end

  defp mure?(%Nx.Tensor{data: %__MODULE__{}}), do: true
  defp mure?(_), do: false

  defp to_node(%Nx.Tensor{data: %__MODULE__{ref: %{conn: conn} = ref}}, conn), do: ref

  defp to_node(%Nx.Tensor{} = t, conn) do
    bin = Nx.to_binary(t)
    Node.upload(conn, bin, t.type, t.shape)
  end

  defp wrap(out, %Tensor{} = ref, device),
    do: %{out | data: %__MODULE__{ref: ref, device: device}}

  @doc false
  @spec node_type?(Nx.Type.t()) :: boolean()
  def node_type?(type), do: Mure.Types.valid_type?(type)

  @doc false
  @spec cast(Expr.t(), Nx.Type.t()) :: Expr.t()
  def cast(%Expr{type: type} = x, type), do: x
  def cast(x, type), do: Expr.as_type(x, type)
end
