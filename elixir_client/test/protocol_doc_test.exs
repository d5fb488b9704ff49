defmodule Mure.ProtocolDocTest do
  # docs/protocol.md is written for someone with a plain `erl` shell and no client. This runs
  # its Erlang examples the way such a reader would: in a plain Erlang peer node (OTP's code
  # path only: neither this client nor Elixir is loadable there), scanned, parsed and
  # evaluated there with erl_scan/erl_parse/erl_eval, against a real node. Every reply is
  # matched against the pattern the doc gives after it, and the doc's op headings are
  # compared with the ops the node's :hello lists.
  #
  # The doc's format (its "Using the node from erl" section says the same to readers):
  #   * every ```erlang block is a run of shell expressions, each ending in a line that ends
  #     with "."; the first block is the prelude (it binds Node, Call, Up, Values), the
  #     others run after it, in order, in one session: bindings carry from block to block,
  #     as in one shell;
  #   * a line "% => Pattern" after an expression is its reply, as an Erlang pattern (lines
  #     "%    ..." continue it): the value must match it, and the pattern's variables are
  #     bound for what follows; other "%" lines are comments;
  #   * under "## Ops", each "### `op`" heading (several ops: "### `a` / `b`") documents
  #     those ops, with an example that calls each.
  use ExUnit.Case, async: true

  import Mure.TestSupport

  @doc_path Path.expand("../../docs/protocol.md", __DIR__)
  @external_resource @doc_path

  # The node name the doc's prelude uses; the test puts its own node's name in its place.
  @doc_node "'mure@127.0.0.1'"

  # The evaluator: one long-lived process on the peer (it owns the tensors the examples make,
  # as a reader's shell process would). Erlang source, evaluated on the peer.
  @evaluator ~S"""
  spawn(fun() ->
    Eval = fun(Text, Bs) ->
      case erl_scan:string(Text) of
        {ok, Toks, _} ->
          case erl_parse:parse_exprs(Toks) of
            {ok, Exprs} ->
              try erl_eval:exprs(Exprs, Bs) of
                {value, V, Bs1} -> {ok, V, Bs1}
              catch C:R -> {error, {C, R}}
              end;
            {error, E} -> {error, {parse, E}}
          end;
        {error, E, _} -> {error, {scan, E}}
      end
    end,
    Step = fun(Expr, none, Bs) ->
                 case Eval(Expr, Bs) of
                   {ok, V, Bs1} -> {ok, V, Bs1};
                   {error, E} -> {failed, E, Bs}
                 end;
              (Expr, Pat, Bs) ->
                 case Eval(Expr, Bs) of
                   {ok, V, Bs1} ->
                     case Eval(Pat ++ " = MureDocValue__.",
                               erl_eval:add_binding('MureDocValue__', V, Bs1)) of
                       {ok, _, Bs2} -> {ok, V, erl_eval:del_binding('MureDocValue__', Bs2)};
                       {error, {error, {badmatch, _}}} -> {mismatch, V, Bs1};
                       {error, E} -> {bad_pattern, E, Bs1}
                     end;
                   {error, E} -> {failed, E, Bs}
                 end
           end,
    Loop = fun Loop(Bs) ->
      receive
        {step, From, Expr, Pat} ->
          {Result, Value, Bs1} = Step(Expr, Pat, Bs),
          From ! {self(), Result, Value, lists:flatten(io_lib:format("~p", [Value]))},
          Loop(Bs1)
      end
    end,
    Loop(erl_eval:new_bindings())
  end).
  """

  setup_all do
    conn = start_supervised!({Mure, test_ops: true})
    node = Mure.info(conn).node

    # A plain Erlang node: no -pa of this client, no Elixir; the cookie the node accepts.
    {:ok, peer, peer_node} =
      :peer.start(%{
        name: :"protocol_doc_#{System.unique_integer([:positive])}_#{System.pid()}",
        host: ~c"127.0.0.1",
        longnames: true,
        connection: :standard_io,
        args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie())],
        wait_boot: 30_000
      })

    on_exit(fn -> stop_peer(peer) end)

    {:ok, toks, _} = :peer.call(peer, :erl_scan, :string, [String.to_charlist(@evaluator)])
    {:ok, [expr]} = :peer.call(peer, :erl_parse, :parse_exprs, [toks])
    {:value, evaluator, _} = :peer.call(peer, :erl_eval, :expr, [expr, []])
    assert node(evaluator) == peer_node

    %{node: node, peer: peer, evaluator: evaluator}
  end

  ## The doc, parsed

  defp doc, do: File.read!(@doc_path)

  # [{heading, block_text}] for every ```erlang block, with the nearest "### " (or "## ")
  # heading above it.
  defp erlang_blocks(text) do
    text
    |> String.split("\n")
    |> Enum.reduce({nil, nil, []}, fn line, {heading, block, acc} ->
      cond do
        block != nil and line == "```" -> {heading, nil, [{heading, block} | acc]}
        block != nil -> {heading, block <> line <> "\n", acc}
        line == "```erlang" -> {heading, "", acc}
        String.starts_with?(line, "#") -> {String.trim(line), nil, acc}
        true -> {heading, nil, acc}
      end
    end)
    |> elem(2)
    |> Enum.reverse()
  end

  # A block's steps: [{expression, pattern | :none}].
  defp steps(block) do
    {steps, pending, _in_pattern?} =
      block
      |> String.split("\n")
      |> Enum.reduce({[], "", false}, fn line, {steps, expr, in_pattern?} ->
        cond do
          String.starts_with?(line, "% => ") ->
            assert expr == "", "a reply pattern in the middle of an expression: #{line}"
            assert [{e, :none} | rest] = steps, "a reply pattern with no expression: #{line}"
            {[{e, String.trim_leading(line, "% => ")} | rest], expr, true}

          in_pattern? and String.starts_with?(line, "%    ") ->
            [{e, pat} | rest] = steps
            {[{e, pat <> "\n" <> String.trim_leading(line, "%")} | rest], expr, true}

          String.starts_with?(line, "%") or (expr == "" and String.trim(line) == "") ->
            {steps, expr, false}

          String.ends_with?(String.trim_trailing(line), ".") ->
            {[{expr <> line, :none} | steps], "", false}

          true ->
            {steps, expr <> line <> "\n", false}
        end
      end)

    assert pending == "", "an expression without its final \".\": #{pending}"
    Enum.reverse(steps)
  end

  # The ops documented under "## Ops": %{op => section text}.
  defp op_sections(text) do
    [_, ops] = String.split(text, "\n## Ops\n", parts: 2)
    ops = ops |> String.split("\n## ", parts: 2) |> hd()

    for section <- String.split(ops, "\n### ") |> tl(),
        [heading | _] = String.split(section, "\n", parts: 2),
        [_, name] <- Regex.scan(~r/`([a-z_]+)`/, heading),
        into: %{},
        do: {String.to_atom(name), section}
  end

  ## Running

  defp run_step(evaluator, expr, pattern) do
    pat = if pattern == :none, do: :none, else: String.to_charlist(pattern)
    send(evaluator, {:step, self(), String.to_charlist(expr), pat})

    receive do
      {^evaluator, result, value, printed} -> {result, value, List.to_string(printed)}
    after
      30_000 -> flunk("the peer's evaluator did not answer for: #{expr}")
    end
  end

  defp run_blocks(evaluator, blocks) do
    for {heading, block} <- blocks, {expr, pattern} <- steps(block) do
      case run_step(evaluator, expr, pattern) do
        {:ok, _value, _} ->
          []

        {:mismatch, _value, printed} ->
          ["#{heading}:\n  #{expr}\n  documented: #{pattern}\n  the node:   #{printed}"]

        {kind, _error, printed} ->
          ["#{heading}:\n  #{expr}\n  #{kind}: #{printed}"]
      end
    end
    |> List.flatten()
  end

  ## Tests

  test "every Erlang example of docs/protocol.md gives its documented reply", ctx do
    # The peer is a plain Erlang node: the client and Elixir are not on its code path.
    assert :peer.call(ctx.peer, :code, :which, [Mure]) == :non_existing
    assert :peer.call(ctx.peer, :code, :which, [Kernel]) == :non_existing

    text = String.replace(doc(), @doc_node, "'#{ctx.node}'")
    blocks = erlang_blocks(text)
    assert length(blocks) > 1, "docs/protocol.md has no Erlang examples"

    patterns =
      blocks |> Enum.flat_map(fn {_, b} -> steps(b) end) |> Enum.count(&(elem(&1, 1) != :none))

    assert patterns >= length(Map.keys(op_sections(text))), "fewer reply patterns than ops"

    failures = run_blocks(ctx.evaluator, blocks)

    assert failures == [],
           "#{length(failures)} example(s) of docs/protocol.md differ from the node:\n\n" <>
             Enum.join(failures, "\n\n")
  end

  test "docs/protocol.md has a section, with an example, for every op the node's hello lists",
       ctx do
    assert {:ok, %{ops: ops}} = raw_call(ctx.node, :hello)
    sections = op_sections(doc())
    documented = Map.keys(sections)

    assert Enum.sort(documented) == Enum.sort(ops),
           "the node lists, undocumented: #{inspect(ops -- documented)}; " <>
             "documented, not listed by the node: #{inspect(documented -- ops)}"

    for {op, section} <- sections do
      blocks = section |> erlang_blocks() |> Enum.map(&elem(&1, 1)) |> Enum.join()

      assert blocks =~ "Call({#{op}," or blocks =~ "Call(#{op})",
             "the section of #{op} has no example that calls it"
    end
  end

  test "a reply that differs from the documented one is reported (the check can fail)", ctx do
    {:ok, _, _} = run_step(ctx.evaluator, "MureDocX = {ok, 1}.", :none)
    assert {:ok, _, _} = run_step(ctx.evaluator, "MureDocX.", "{ok, _}")
    assert {:mismatch, {:ok, 1}, _} = run_step(ctx.evaluator, "MureDocX.", "{ok, 2}")
    assert {:mismatch, {:ok, 1}, _} = run_step(ctx.evaluator, "MureDocX.", "{error, _}")
    assert {:failed, _, _} = run_step(ctx.evaluator, "{error, _} = MureDocX.", :none)

    # And a changed reply of the node itself: hello's protocol is 1, not 2.
    node = "'#{ctx.node}'"

    call =
      "(fun() -> R = make_ref(), {mure, #{node}} ! {'$mure', 1, self(), R, self(), hello}, " <>
        "receive {'$mure_reply', R, Reply} -> Reply after 5000 -> timeout end end)()."

    assert {:ok, _, _} = run_step(ctx.evaluator, call, "{ok, \#{protocol := 1}}")
    assert {:mismatch, {:ok, _}, _} = run_step(ctx.evaluator, call, "{ok, \#{protocol := 2}}")

    # The step parser: patterns attach to the expression before them, continued over lines.
    assert steps("A = 1.\n% => 1\nB = [1,\n  2].\n% => [1,\n%    2]\n") ==
             [{"A = 1.", "1"}, {"B = [1,\n  2].", "[1,\n    2]"}]
  end
end
