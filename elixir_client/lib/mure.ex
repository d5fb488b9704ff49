defmodule Mure do
  @moduledoc """
  Elixir client of mure, a compute node that keeps tensors resident and runs ops on
  them (matrix multiply on BLIS, elementwise ops on OpenCL).

  The node (`mure_node`) is a hidden Erlang C-node. A connection is a process that
  either launches a node itself (port mode, `start_link/1`) or attaches to a node that
  runs elsewhere (`connect/2`). The local BEAM must be distributed: start it with
  `elixir --name client@127.0.0.1 ...` or call `Node.start/2` first.

      {:ok, conn} = Mure.start_link([])
      {:ok, a} = Mure.upload(conn, a_bin, {:f, 32}, {512, 512})
      {:ok, b} = Mure.upload(conn, b_bin, {:f, 32}, {512, 512})
      {:ok, c} = Mure.matmul(a, b)
      {:ok, c_bin} = Mure.download(c)

  ## A tour of the op set (run as a doctest)

  Every family of ops, on a node launched for the occasion. `f/1` reads an `{:f, 32}`
  tensor back as a list.

      iex> {:ok, conn} = Mure.start_link([])
      iex> f = fn t -> for <<x::float-32-native <- Mure.download!(t)>>, do: x end
      iex> x = Mure.iota!(conn, {2, 3}, type: {:f, 32})
      iex> f.(x)
      [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
      iex> f.(Mure.unary!(:sqrt, Mure.full!(conn, 4.0, {2})))
      [2.0, 2.0]
      iex> f.(Mure.binary!(:multiply, x, Mure.full!(conn, 2.0, {3})))
      [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
      iex> Mure.reduce!(:sum, x, axes: [1]) |> f.()
      [3.0, 12.0]
      iex> Mure.reduce!(:argmax, x, axes: [1]).type
      {:s, 64}
      iex> f.(Mure.transpose!(x))
      [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
      iex> f.(Mure.slice!(x, [0, 1], [2, 2]))
      [1.0, 2.0, 4.0, 5.0]
      iex> f.(Mure.slice!(x, [0, 0], [2, 3], strides: [1, 2]))
      [0.0, 2.0, 3.0, 5.0]
      iex> f.(Mure.dot!(x, Mure.transpose!(x)))
      [5.0, 14.0, 14.0, 50.0]
      iex> f.(Mure.sort!(Mure.reverse!(x), axis: 1))
      [3.0, 4.0, 5.0, 0.0, 1.0, 2.0]
      iex> Mure.as_type!(x, {:u, 8}).type
      {:u, 8}
      iex> Mure.slice(x, [0, 2], [2, 2])
      ** (ArgumentError) slice: slice of dimension 1 (size 3) from 2 with length 2 runs past its end
      iex> Mure.stop(conn)
      :ok

  ## Types and shapes

  Types are Nx's tuples: `{:u, 8 | 16 | 32 | 64}`, `{:s, 8 | 16 | 32 | 64}`,
  `{:f, 16 | 32 | 64}` and `{:bf, 16}`. Shapes are tuples of non-negative integers
  (`{}` is a scalar, at most 16 dimensions). Data is native little-endian, row-major:
  `<<x::float-32-native>>` per element for `{:f, 32}`.

  Arguments are checked eagerly, like Nx does: a wrong type, shape or size raises
  `ArgumentError` before anything is sent.

  ## Errors and timeouts

  A well-formed call returns `{:ok, value}` or `{:error, exception}` (a mistake in the call
  itself raises, as above):

    * `Mure.Error` - the node refused the request (`kind` says why: `:out_of_memory`,
      `:unknown_handle`, `:overloaded`, ...)
    * `Mure.ConnectionError` - the transport failed (`reason`: `:timeout`,
      `:node_down`, `:node_exited`, `:disconnected`, `:closed`, ...)

  The `!` variants return the value or raise the exception.

  Every call accepts `timeout:` (milliseconds or `:infinity`); the default is the
  connection's `:timeout` option (5000 ms). A call that times out returns
  `{:error, %Mure.ConnectionError{reason: :timeout}}` and its late reply is dropped,
  never delivered to the caller's mailbox.

  ## Programs, the JIT and requests in flight

  A function of tensors written with `Mure.Expr`'s ops runs as one program per call,
  traced once per argument signature and cached (`jit/2`, `run/3`):

      predict = Mure.jit(fn x, w, b ->
        x |> Mure.Expr.dot(w) |> Mure.Expr.add(b) |> Mure.Expr.sigmoid()
      end)
      {:ok, y} = Mure.run(predict, [x, w, {b_bin, {:f, 32}, {128}}])

  `async_run/3`, `async_upload/5` and `async_download/2` return at once; `await/2` and
  `await_many/2` collect the results, so that transfers overlap computation. Tensors
  larger than the connection's `:chunk_size` move in pieces, several in flight.

  ## Ownership

  A tensor is owned by the process that created it: when that process exits the node
  frees its tensors. All tensors of a connection are freed when the connection to the
  node closes; using such a tensor afterwards gives an `:unknown_handle` error.
  """

  alias Mure.{ConnectionError, Error, Request, Tensor}

  @typedoc "A connection: its pid or registered name."
  @type conn :: GenServer.server()

  @typedoc "An Nx-style element type."
  @type type ::
          {:u, 8 | 16 | 32 | 64}
          | {:s, 8 | 16 | 32 | 64}
          | {:f, 16 | 32 | 64}
          | {:bf, 16}

  @typedoc "A tuple of non-negative integers; `{}` is a scalar."
  @type shape :: tuple()

  @typedoc "What a failed call returns."
  @type error :: Error.t() | ConnectionError.t()

  @typedoc """
  Options of every call: `timeout:` in milliseconds or `:infinity`. Compute ops also take
  `device: :cpu | :opencl | :auto` (default `:auto`: the node's choice).
  """
  @type call_opts :: [
          timeout: timeout(),
          device: :cpu | :opencl | :auto,
          shared_memory: boolean()
        ]

  # The documented functions, grouped by what they do; each group's docs, specs and
  # implementation live in its own module.
  use Mure.Api.Lifecycle
  use Mure.Api.Transfers
  use Mure.Api.Ops
  use Mure.Api.Shapes
  use Mure.Api.Programs

  ## Bang variants

  # Every `name!` is `name` returning its value or raising its error. One entry per
  # variant: the arguments with their types (a default as in `name`), the type of the
  # value, and how the doc names the value (nil: the function returns :ok).
  @bang_variants [
    {:hello, quote(do: [conn :: conn(), opts :: call_opts() \\ []]), quote(do: map()), "the map"},
    {:devices, quote(do: [conn :: conn(), opts :: call_opts() \\ []]), quote(do: [map()]),
     "the list"},
    {:stats, quote(do: [conn :: conn(), opts :: call_opts() \\ []]), quote(do: map()), "the map"},
    {:busy, quote(do: [conn :: conn(), ms :: non_neg_integer(), opts :: call_opts() \\ []]),
     quote(do: non_neg_integer()), "`ms`"},
    {:upload,
     quote(
       do: [
         conn :: conn(),
         data :: binary(),
         type :: type(),
         shape :: shape(),
         opts :: call_opts() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:download, quote(do: [tensor :: Tensor.t(), opts :: call_opts() \\ []]), quote(do: binary()),
     "the binary"},
    {:free, quote(do: [tensor :: Tensor.t(), opts :: call_opts() \\ []]), quote(do: :ok), nil},
    {:give, quote(do: [tensor :: Tensor.t(), pid :: pid(), opts :: call_opts() \\ []]),
     quote(do: :ok), nil},
    {:matmul, quote(do: [a :: Tensor.t(), b :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:add, quote(do: [a :: Tensor.t(), b :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:multiply, quote(do: [a :: Tensor.t(), b :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:unary, quote(do: [op :: atom(), t :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:binary,
     quote(do: [op :: atom(), a :: Tensor.t(), b :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:reduce, quote(do: [op :: atom(), t :: Tensor.t(), opts :: keyword() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:as_type, quote(do: [t :: Tensor.t(), type :: type(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:bitcast, quote(do: [t :: Tensor.t(), type :: type(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:reshape, quote(do: [t :: Tensor.t(), shape :: shape(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:transpose, quote(do: [t :: Tensor.t(), opts :: keyword() \\ []]), quote(do: Tensor.t()),
     "the tensor"},
    {:slice,
     quote(
       do: [
         t :: Tensor.t(),
         starts :: [integer()],
         lengths :: [integer()],
         opts :: keyword() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:take, quote(do: [t :: Tensor.t(), indices :: Tensor.t(), opts :: keyword() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:iota, quote(do: [conn :: conn(), shape :: shape(), opts :: keyword() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:eye, quote(do: [conn :: conn(), shape :: shape(), opts :: keyword() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:full,
     quote(
       do: [
         conn :: conn(),
         value :: number() | :infinity | :neg_infinity | :nan,
         shape :: shape(),
         opts :: keyword() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:random_uniform, quote(do: [conn :: conn(), shape :: shape(), opts :: keyword()]),
     quote(do: Tensor.t()), "the tensor"},
    {:random_normal, quote(do: [conn :: conn(), shape :: shape(), opts :: keyword()]),
     quote(do: Tensor.t()), "the tensor"},
    {:select,
     quote(
       do: [
         pred :: Tensor.t(),
         on_true :: Tensor.t(),
         on_false :: Tensor.t(),
         opts :: call_opts() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:clip,
     quote(
       do: [t :: Tensor.t(), min :: Tensor.t(), max :: Tensor.t(), opts :: call_opts() \\ []]
     ), quote(do: Tensor.t()), "the tensor"},
    {:broadcast, quote(do: [t :: Tensor.t(), shape :: shape(), opts :: keyword() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:reverse, quote(do: [t :: Tensor.t(), opts :: keyword() \\ []]), quote(do: Tensor.t()),
     "the tensor"},
    {:pad,
     quote(
       do: [
         t :: Tensor.t(),
         value :: number(),
         config :: [{integer(), integer(), non_neg_integer()}],
         opts :: call_opts() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:concatenate, quote(do: [tensors :: [Tensor.t()], opts :: keyword() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:stack, quote(do: [tensors :: [Tensor.t()], opts :: keyword() \\ []]), quote(do: Tensor.t()),
     "the tensor"},
    {:put_slice,
     quote(
       do: [
         t :: Tensor.t(),
         starts :: [integer()],
         update :: Tensor.t(),
         opts :: call_opts() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:gather, quote(do: [t :: Tensor.t(), indices :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:sort, quote(do: [t :: Tensor.t(), opts :: keyword() \\ []]), quote(do: Tensor.t()),
     "the tensor"},
    {:argsort, quote(do: [t :: Tensor.t(), opts :: keyword() \\ []]), quote(do: Tensor.t()),
     "the tensor"},
    {:squeeze, quote(do: [t :: Tensor.t(), opts :: keyword() \\ []]), quote(do: Tensor.t()),
     "the tensor"},
    {:new_axis, quote(do: [t :: Tensor.t(), axis :: integer(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:dot, quote(do: [a :: Tensor.t(), b :: Tensor.t()]), quote(do: Tensor.t()), "the tensor"},
    {:dot,
     quote(
       do: [
         a :: Tensor.t(),
         contract_a :: [integer()],
         batch_a :: [integer()],
         b :: Tensor.t(),
         contract_b :: [integer()],
         batch_b :: [integer()],
         opts :: call_opts() \\ []
       ]
     ), quote(do: Tensor.t()), "the tensor"},
    {:outer, quote(do: [a :: Tensor.t(), b :: Tensor.t(), opts :: call_opts() \\ []]),
     quote(do: Tensor.t()), "the tensor"},
    {:run,
     quote(
       do: [
         jit :: Mure.Jit.t(),
         args :: [Tensor.t() | {binary(), type(), shape()}],
         opts :: keyword() \\ []
       ]
     ), quote(do: term()), "the results"},
    {:await, quote(do: [request :: Request.t(), timeout :: timeout() | nil \\ nil]),
     quote(do: term()), "the value"}
  ]

  for {name, args, value, noun} <- @bang_variants do
    # `var :: type \\ default` gives the argument `var \\ default` and the type `type`.
    {params, types, vars} =
      args
      |> Enum.map(fn
        {:\\, meta, [{:"::", _, [var, type]}, default]} ->
          {{:\\, meta, [var, default]}, type, var}

        {:"::", _, [var, type]} ->
          {var, type, var}
      end)
      |> :lists.unzip3()

    bang = :"#{name}!"
    what = if noun, do: "returns #{noun} or raises", else: "raises on error"
    @doc "Like `#{name}/#{length(args)}`, but #{what}."
    @spec unquote(bang)(unquote_splicing(types)) :: unquote(value)
    def unquote(bang)(unquote_splicing(params)),
      do: Mure.Call.unwrap!(unquote(name)(unquote_splicing(vars)))
  end

  # `compiler: Mure` in Nx.Defn options: Mure.Compiler's callbacks.
  @doc false
  defdelegate __jit__(key, vars, fun, args_list, opts), to: Mure.Compiler
  @doc false
  defdelegate __compile__(key, vars, fun, opts), to: Mure.Compiler
  @doc false
  defdelegate __stream__(key, input, acc, vars, fun, args_list, opts), to: Mure.Compiler
  @doc false
  defdelegate __partitions_options__(opts), to: Mure.Compiler
  @doc false
  defdelegate __to_backend__(opts), to: Mure.Compiler
end
