defmodule Mure.Api.Programs do
  @moduledoc false
  # Mure's programs (jit, run, trace) and its requests in flight (async_run, await,
  # await_many): `use Mure.Api.Programs` puts the documented functions into Mure. They are
  # thin wrappers over Mure.Jit and Mure.Request.

  alias Mure.{Request, Tensor}

  @doc false
  defmacro __using__(_opts) do
    quote location: :keep do
      ## Programs and the JIT

      @doc """
      Makes a function of tensors run on the node as one program per call.

      `fun` is written with `Mure.Expr`'s ops (the names and argument conventions of this
      module's eager functions). `run/3` calls it once per distinct *signature* — the types and
      shapes of the arguments — with one symbolic `%Mure.Expr{}` per argument; the expressions it
      returns (one, or a tuple or list of them) and everything they depend on make a program
      (docs/protocol.md, "Programs"), which the node validates as a whole and runs in one
      message, freeing intermediates after their last use. Nodes no output depends on are not
      sent. Types and shapes are checked while tracing, with the node's rules: a mistake raises
      `ArgumentError` naming the op, before anything is sent.

      Traced programs are cached per `{fun, signature}` in an ETS table shared by the whole
      BEAM: a second call with the same types and shapes (and new data) sends the cached
      program without calling `fun`; calling `jit/2` again on the same function (the same code
      with the same captured values) reuses its traces. Two processes that trace the same new
      signature at the same moment may both trace it.

      ## Options (defaults for every call; `run/3` takes them too, to override)

        * `:outputs` - `:keep` (default): results stay on the node as `%Mure.Tensor{}`s owned
          by the caller; `:return`: results come back as binaries; or a list with one of
          them per output
        * `:device` - `:auto`, `:cpu` or `:opencl`: where the node runs the program (default:
          the node's choice)
        * `:timeout` - milliseconds or `:infinity` for the whole call (default: the
          connection's)
        * `:conn` - the connection, needed when no argument is a resident tensor

      ## Examples

          iex> {:ok, conn} = Mure.start_link([])
          iex> predict = Mure.jit(fn x, w, b ->
          ...>   x |> Mure.Expr.dot(w) |> Mure.Expr.add(b) |> Mure.Expr.sigmoid()
          ...> end, outputs: :return)
          iex> f32 = fn list -> for v <- list, into: <<>>, do: <<v::float-32-native>> end
          iex> w = Mure.upload!(conn, f32.([1.0, 0.0, 0.0, 1.0]), {:f, 32}, {2, 2})
          iex> {:ok, y} = Mure.run(predict, [{f32.([0.0, 0.0]), {:f, 32}, {1, 2}}, w, {f32.([0.0, 0.0]), {:f, 32}, {2}}])
          iex> for <<v::float-32-native <- y>>, do: v
          [0.5, 0.5]
          iex> Mure.run(predict, [{f32.([0.0, 0.0, 0.0]), {:f, 32}, {1, 3}}, w, {f32.([0.0]), {:f, 32}, {1}}])
          ** (ArgumentError) dot: contraction axis 1 of {1, 3} and axis 0 of {2, 2} differ (operands: argument 1 {1, 3} of type {:f, 32}, argument 2 {2, 2} of type {:f, 32})
          iex> Mure.stop(conn)
          :ok

      """
      @spec jit(function(), keyword()) :: Mure.Jit.t()
      def jit(fun, opts \\ []), do: Mure.Jit.new(fun, opts)

      @doc """
      Runs a jit'ed function (see `jit/2`) on `args` and returns its results, in the structure
      `fun` returned them: `%Mure.Tensor{}`s for kept outputs, binaries for returned ones.

      Each argument is a resident `%Mure.Tensor{}` (sent as its handle) or data as a
      `{binary, type, shape}` tuple (sent with the program; data larger than the connection's
      `:chunk_size` is uploaded in pieces first and freed after). All tensors must belong to one
      connection. Returned outputs larger than the chunk size come back in pieces. Where the
      node shares the host (`:shared_memory`, see `start_link/1`), data and returned outputs of
      1 MiB and more go through a shared segment instead, as `upload/5` and `download/2` do.
      `opts` override the jit's (see `jit/2`).

      ## Examples

          iex> {:ok, y} = Mure.run(predict, [x, w, b])
          iex> {:ok, {loss, grads}} = Mure.run(step, [x, w], outputs: [:return, :keep])

      """
      @spec run(Mure.Jit.t(), [Tensor.t() | {binary(), type(), shape()}], keyword()) ::
              {:ok, term()} | {:error, error()}
      def run(%Mure.Jit{} = jit, args, opts \\ []) when is_list(args),
        do: Mure.Jit.run(jit, args, opts)

      @doc """
      The program a jit'ed function makes for these arguments (tensors, `{binary, type, shape}`
      data, or `{type, shape}` pairs): from the cache, or traced now. Sends nothing.

      ## Examples

          iex> jit = Mure.jit(fn x -> Mure.Expr.exp(x) end)
          iex> Mure.trace(jit, [{{:f, 32}, {3}}]).nodes
          [{:unary, :exp, 1}]

      """
      @spec trace(Mure.Jit.t(), list()) :: Mure.Program.t()
      def trace(%Mure.Jit{} = jit, args) when is_list(args), do: Mure.Jit.program(jit, args)

      ## Asynchronous requests

      @doc """
      Like `run/3`, but returns at once with a `Mure.Request` to await (`await/2`).

      Several requests may be in flight at once, and awaited in any order: the node works on
      one program while the next one's data is on its way.

      ## Examples

          iex> r1 = Mure.async_run(predict, [x1, w, b])
          iex> r2 = Mure.async_run(predict, [x2, w, b])
          iex> [{:ok, y1}, {:ok, y2}] = Mure.await_many([r1, r2])

      """
      @spec async_run(Mure.Jit.t(), [Tensor.t() | {binary(), type(), shape()}], keyword()) ::
              Request.t()
      def async_run(%Mure.Jit{} = jit, args, opts \\ []) when is_list(args),
        do: Mure.Jit.async_run(jit, args, opts)

      @doc """
      Waits for a request made by `async_run/3`, `async_upload/5` or `async_download/2` and
      returns its result: `{:ok, value}` or `{:error, exception}`.

      Only the process that made the request can await it, once. `timeout` (milliseconds or
      `:infinity`) defaults to the request's own timeout (`timeout:` when it was made, else
      the connection's default). When it runs out, the result is
      `{:error, %Mure.ConnectionError{reason: :timeout}}` and the request is abandoned: a late
      reply is dropped, a transfer in pieces is cancelled and frees its tensor.

      ## Examples

          iex> {:ok, y} = Mure.await(Mure.async_run(predict, [x, w, b]))
          iex> Mure.await(Mure.async_run(slow, [x]), 10)
          {:error, %Mure.ConnectionError{reason: :timeout}}

      """
      @spec await(Request.t(), timeout() | nil) :: {:ok, term()} | {:error, error()}
      def await(%Request{} = request, timeout \\ nil), do: Request.await(request, timeout)

      @doc """
      Awaits several requests (in any order of completion) and returns their results in the
      order given. `timeout` bounds the whole wait; by default each request waits for its own.

      ## Examples

          iex> [{:ok, a}, {:ok, b}] = Mure.await_many([Mure.async_upload(conn, d1, t, s), Mure.async_upload(conn, d2, t, s)])

      """
      @spec await_many([Request.t()], timeout() | nil) :: [{:ok, term()} | {:error, error()}]
      def await_many(requests, timeout \\ nil) when is_list(requests),
        do: Request.await_many(requests, timeout)
    end
  end
end
