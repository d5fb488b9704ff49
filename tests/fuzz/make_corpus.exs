# Writes the fuzzers' seed corpus: real requests encoded by the BEAM (:erlang.term_to_binary),
# wrapped as distribution frames exactly as a BEAM sends them to the node.
#
#   elixir tests/fuzz/make_corpus.exs            (from the repository root; no epmd needed)
#
# corpus/request/NAME  a post-handshake stream: <<len::32, ?p, control, message>>...
# corpus/wire/NAME     one mode byte, then: 1 = the same stream (after a correct handshake),
#                      0 = raw handshake bytes from the initiator
# Pids and references carry the node name the harness treats as its peer (fuzz@127.0.0.1).
import Bitwise

defmodule Corpus do
  @peer "fuzz@127.0.0.1"
  @node "mure_fuzz@127.0.0.1"

  def atom_ext(name), do: <<119, byte_size(name), name::binary>>

  def pid(id, node \\ @peer),
    do: :erlang.binary_to_term(<<131, 88, atom_ext(node)::binary, id::32, 0::32, 1::32>>)

  def ref(id, node \\ @peer),
    do: :erlang.binary_to_term(<<131, 90, 3::16, atom_ext(node)::binary, 1::32, id::32, 0::32, 0::32>>)

  def reply_pid, do: pid(1)
  def owner, do: pid(3)

  def envelope(req, id, version \\ 1), do: {:"$mure", version, reply_pid(), ref(id), owner(), req}

  def frame(control, message \\ nil) do
    msg = if message == nil, do: <<>>, else: message
    payload = <<?p, :erlang.term_to_binary(control)::binary, msg::binary>>
    <<byte_size(payload)::32, payload::binary>>
  end

  def reg_send(term, to \\ :mure),
    do: frame({6, reply_pid(), :"", to}, :erlang.term_to_binary(term))

  def send_to(term), do: frame({2, :"", pid(0, @node)}, :erlang.term_to_binary(term))

  def request(req, id), do: reg_send(envelope(req, id))

  def requests(reqs),
    do: reqs |> Enum.with_index(1) |> Enum.map_join(fn {req, id} -> request(req, id) end)

  def f32(values), do: for(x <- values, into: <<>>, do: <<x::float-32-native>>)
  def f64(values), do: for(x <- values, into: <<>>, do: <<x::float-64-native>>)

  def streams do
    a = f32([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = f32([0.5, -1.0, 2.0, 0.25, 1.5, -2.0])

    %{
      "hello" => request(:hello, 1),
      "devices" => request(:devices, 1),
      "stats" => request(:stats, 1),
      "stats_tuple" => request({:stats}, 1),
      "tick_then_hello" => <<0::32>> <> request(:hello, 2),
      "give" =>
        request({:upload, {:u, 8}, {2}, <<1, 2>>}, 1) <>
          request({:give, 1, pid(7)}, 2) <>
          request({:give, 1, pid(8, "elsewhere@127.0.0.1")}, 3) <>
          request({:give, 1, :not_a_pid}, 4) <> request({:download, 1}, 5),
      "upload_download_free" =>
        request({:upload, {:u, 8}, {4}, <<1, 2, 3, 4>>}, 1) <>
          request({:download, 1}, 2) <> request({:free, 1}, 3) <> request({:download, 1}, 4),
      "matmul_f32" =>
        request({:upload, {:f, 32}, {2, 3}, a}, 1) <>
          request({:upload, {:f, 32}, {3, 2}, b}, 2) <>
          request({:matmul, 1, 2}, 3) <>
          request({:download, 3}, 4) <>
          request({:free, 1}, 5) <> request({:free, 2}, 6) <> request(:stats, 7),
      "matmul_f64" =>
        request({:upload, {:f, 64}, {2, 2}, f64([1.0, 2.0, 3.0, 4.0])}, 1) <>
          request({:matmul, 1, 1}, 2) <> request({:download, 2}, 3),
      "matmul_zero_k" =>
        request({:upload, {:f, 32}, {3, 0}, <<>>}, 1) <>
          request({:upload, {:f, 32}, {0, 3}, <<>>}, 2) <>
          request({:matmul, 1, 2}, 3) <> request({:download, 3}, 4),
      "matmul_mismatch" =>
        request({:upload, {:f, 32}, {2, 3}, a}, 1) <> request({:matmul, 1, 1}, 2),
      "add_multiply" =>
        request({:upload, {:f, 32}, {2, 3}, a}, 1) <>
          request({:upload, {:f, 32}, {2, 3}, b}, 2) <>
          request({:add, 1, 2}, 3) <> request({:multiply, 1, 2}, 4),
      "upload_types" =>
        Enum.map_join(
          Enum.with_index([
            {{:u, 16}, {2}, <<1::16, 2::16>>},
            {{:s, 32}, {1, 1}, <<-1::32-signed>>},
            {{:s, 64}, {}, <<7::64>>},
            {{:f, 16}, {2}, <<0::32>>},
            {{:bf, 16}, {1, 2}, <<0::32>>},
            {{:u, 64}, {0, 5}, <<>>},
            {{:s, 8}, {1, 1, 1, 1}, <<5>>}
          ]),
          fn {{t, s, d}, i} -> request({:upload, t, s, d}, i + 1) end
        ),
      "bad_requests" =>
        request(:frobnicate, 1) <>
          request({:upload, {:f, 33}, {1}, <<0::32>>}, 2) <>
          request({:upload, {:u, 8}, {-1}, <<>>}, 3) <>
          request({:upload, {:u, 8}, {1 <<< 62}, <<>>}, 4) <>
          request({:upload, {:f, 64}, {1 <<< 61}, <<>>}, 5) <>
          request({:upload, {:u, 8}, {1 <<< 32, 1 <<< 32}, <<>>}, 6) <>
          request({:upload, {:u, 8}, {1 <<< 70}, <<>>}, 7) <>
          request({:download, 999}, 8) <>
          request({:download, -1}, 9) <>
          request({:free, "1"}, 10) <>
          request({:matmul, 1}, 11) <>
          request({:busy, 10}, 12) <> request([], 13),
      "bad_version" => reg_send(envelope(:hello, 1, 2)) <> reg_send(envelope(:hello, 2, :one)),
      "foreign_owner" =>
        reg_send({:"$mure", 1, reply_pid(), ref(1), pid(3, "other@127.0.0.1"), :hello}),
      "not_envelopes" =>
        reg_send(:junk) <>
          reg_send({:"$mure", 1, :not_a_pid, ref(1), owner(), :hello}) <>
          reg_send({:"$gen_call", {reply_pid(), ref(2)}, :junk}),
      "send_ops" =>
        send_to(envelope(:hello, 1)) <>
          frame({22, reply_pid(), pid(0, @node)}, :erlang.term_to_binary(envelope(:stats, 2))) <>
          frame({12, :"", pid(0, @node), :trace_token}, :erlang.term_to_binary(envelope(:hello, 3))) <>
          frame({16, reply_pid(), :"", :mure, :trace_token}, :erlang.term_to_binary(envelope(:hello, 4))),
      "net_kernel_is_auth" =>
        reg_send({:"$gen_call", {reply_pid(), [:alias | ref(5)]}, {:is_auth, :"fuzz@127.0.0.1"}}, :net_kernel) <>
          reg_send(:junk, :rex),
      "owner_exit" =>
        request({:upload, {:u, 8}, {2}, <<1, 2>>}, 1) <>
          frame({21, owner(), pid(0, @node), ref(9), :killed}) <>
          frame({28, owner(), pid(0, @node), ref(9)}, :erlang.term_to_binary(:normal)) <>
          request({:download, 1}, 2),
      "link_and_exit" =>
        frame({1, reply_pid(), pid(0, @node)}) <>
          frame({3, reply_pid(), pid(0, @node), :boom}) <> request(:hello, 1),
      "oversized" =>
        request({:upload, {:u, 8}, {5000}, :binary.copy(<<9>>, 5000)}, 1) <> request(:hello, 2),
      "deep" =>
        request(Enum.reduce(1..40, :hello, fn _, acc -> [acc] end), 1) <>
          request({:download, Enum.reduce(1..100, 1, fn _, acc -> {acc} end)}, 2),
      "big_terms" =>
        request({:upload, {:u, 8}, List.to_tuple(List.duplicate(1, 20)), <<1>>}, 1) <>
          request({:download, 1 <<< 64}, 2) <>
          request({:download, %{a: 1}}, 3) <>
          request({:download, 1.5}, 4) <> request({:download, <<1::3>>}, 5),
      "compressed" =>
        frame(
          {6, reply_pid(), :"", :mure},
          :erlang.term_to_binary(envelope({:upload, {:u, 8}, {64}, :binary.copy(<<0>>, 64)}, 1), [
            :compressed
          ])
        ),
      "truncated_message" =>
        (fn ->
           <<_::32, payload::binary>> = request({:upload, {:u, 8}, {8}, <<1, 2, 3, 4, 5, 6, 7, 8>>}, 1)
           cut = binary_part(payload, 0, byte_size(payload) - 3)
           <<byte_size(cut)::32, cut::binary>> <> request(:hello, 2)
         end).(),
      # The op set (handles count up from 1 in the order tensors are made on a fresh store).
      "op_set_elementwise" =>
        requests([
          {:upload, {:f, 32}, {2, 3}, a},
          {:upload, {:f, 32}, {2, 3}, b},
          {:unary, :exp, 1},
          {:binary, :add, 1, 2},
          {:binary, :less, 1, 2},
          {:reduce, :sum, 1, [1], false},
          {:reduce, :argmax, 2, :all, true},
          {:as_type, 1, {:s, 32}},
          {:bitcast, 1, {:u, 32}},
          {:upload, {:u, 8}, {2, 3}, <<1, 0, 1, 0, 1, 0>>},
          {:select, 10, 1, 2},
          {:clip, 1, 2, 2},
          {:download, 11}
        ]),
      "op_set_shapes" =>
        requests([
          {:upload, {:f, 32}, {2, 3}, a},
          {:reshape, 1, {3, 2}},
          {:transpose, 1, {1, 0}},
          {:slice, 1, {0, 1}, {2, 2}, {1, 1}},
          {:upload, {:s, 64}, {2}, <<1::64-signed-native, 0::64-signed-native>>},
          {:take, 1, 5, 0},
          {:upload, {:f, 32}, {3}, f32([1.0, 2.0, 3.0])},
          {:broadcast, 7, {2, 3}, {1}},
          {:reverse, 1, [0]},
          {:pad, 1, 0.0, [{1, 1, 0}, {0, 0, 1}]},
          {:concatenate, [1, 1], 0},
          {:stack, [1, 1], 0},
          {:put_slice, 1, {0, 1}, 4},
          {:gather, 1, 5},
          {:sort, 1, 1, :asc},
          {:argsort, 1, 1, :desc},
          {:dot, 1, [1], [], 2, [0], []},
          {:outer, 7, 7},
          {:slice, 1, {1, 0}, {0, 0}, {1, 1}},
          {:take, 1, 5, 7}
        ]),
      "op_set_complex_fft" =>
        requests([
          {:upload, {:c, 64}, {2, 3}, f32([1.0, 2.0, -0.5, 0.0, 3.0, 1.0, 0.0, -1.0, 2.0, 2.0, 1.0, 0.5])},
          {:upload, {:f, 32}, {2, 3}, a},
          {:fft, 1, 3},
          {:ifft, 2, 5},
          {:fft, 2, 0},
          {:ifft, 1, 1 <<< 40},
          {:binary, :multiply, 1, 2},
          {:unary, :conjugate, 2},
          {:unary, :real, 1},
          {:unary, :floor, 1},
          {:reduce, :sum, 1, [1], false},
          {:dot, 1, [1], [], 1, [1], []},
          {:full, {:c, 128}, {2}, {1.5, -2.0}},
          {:pad, 1, {0.0, 1.0}, [{1, 1, 0}, {0, 0, 1}]},
          {:as_type, 1, {:f, 64}},
          {:on, :opencl, {:fft, 1, 3}},
          {:download, 3}
        ]),
      # window, window_scatter, indexed and cumulative: one good request of each, then the
      # edges (a window larger than the axis, zero stride, an index out of range, huge padding).
      "op_set_window" =>
        requests([
          {:upload, {:f, 32}, {2, 3}, a},
          {:window, :sum, 1, [1, 2], [1, 1], [{0, 0}, {1, 0}], [1, 1]},
          {:window, :reduce_max, 1, [2, 2], [1, 1], [{1, 1}, {0, 0}], [1, 2], -1.5},
          {:upload, {:f, 32}, {1, 2}, f32([1.0, 2.0])},
          {:window_scatter, :max, 1, 4, 0.0, [2, 2], [1, 1], [{0, 0}, {0, 0}]},
          {:upload, {:s, 64}, {2, 1}, <<1::64-signed-native, 0::64-signed-native>>},
          {:indexed, :add, 1, 6, 4, [1]},
          {:indexed, :put, 1, 6, 4, []},
          {:cumulative, :product, 1, -1, true},
          {:window, :sum, 1, [3, 1], [1, 1], [{0, 0}, {0, 0}], [1, 1]},
          {:window, :sum, 1, [1, 1], [0, 1], [{0, 0}, {0, 0}], [1, 1]},
          {:window, :sum, 1, [1, 1], [1, 1], [{1 <<< 40, 1 <<< 40}, {0, 0}], [1, 1]},
          {:upload, {:s, 64}, {1, 1}, <<7::64-signed-native>>},
          {:indexed, :put, 1, 14, 4, [1]},
          {:cumulative, :argmax, 1, 0, false}
        ]),
      # LAPACK: one good request of each, ops of several results in a program read with elem,
      # then the edges (not square, rank 1, singular, an elem past the parts, a tuple output).
      "op_set_linalg" =>
        requests([
          {:upload, {:f, 32}, {2, 2}, f32([4.0, 2.0, 2.0, 5.0])},
          {:upload, {:f, 32}, {2, 3}, a},
          {:lu, 1},
          {:qr, 2, :reduced},
          {:qr, 2, :complete},
          {:cholesky, 1},
          {:eigh, 1},
          {:svd, 2, true},
          {:svd, 2, false},
          {:triangular_solve, 1, 1, true, true, :none},
          {:triangular_solve, 1, 2, false, false, :transpose},
          {:solve, 1, 1},
          {:determinant, 1},
          {:cholesky, 2},
          {:lu, 1 <<< 40},
          {:upload, {:f, 32}, {2}, f32([1.0, 2.0])},
          {:determinant, 15},
          {:solve, 2, 15},
          {:program, [{:handle, 1}], [{:svd, 1, true}, {:elem, 2, 1}, {:elem, 2, 7}], [{3, :return}]},
          {:program, [{:handle, 1}], [{:lu, 1}, {:elem, 2, 2}], [{2, :keep}, {3, :return}]},
          {:on, :opencl, {:eigh, 1}}
        ]),
      # dynamic_slice and dynamic_put_slice: starts of several integer types (clamped), then the
      # edges (a float start, a vector start, a missing handle, a length past the dim, a program).
      "op_set_dynamic_slice" =>
        requests([
          {:upload, {:f, 32}, {2, 3}, a},
          {:upload, {:s, 64}, {}, <<-5::64-signed-native>>},
          {:upload, {:u, 8}, {}, <<200>>},
          {:dynamic_slice, 1, [2, 3], [1, 2], [1, 1]},
          {:dynamic_slice, 1, [3, 2], [2, 3], [1, 2]},
          {:upload, {:f, 32}, {1, 2}, f32([9.0, 8.0])},
          {:dynamic_put_slice, 1, [2, 3], 6},
          {:dynamic_put_slice, 6, [2, 3], 1},
          {:dynamic_slice, 1, [1, 3], [1, 1], [1, 1]},
          {:upload, {:s, 32}, {2}, <<1::32-signed-native, 0::32-signed-native>>},
          {:dynamic_slice, 1, [10, 3], [1, 1], [1, 1]},
          {:dynamic_slice, 1, [2, 99], [1, 1], [1, 1]},
          {:dynamic_slice, 1, [2, 3], [3, 1 <<< 40], [1, 1]},
          {:dynamic_slice, 1, [2], [1, 1], [1, 1]},
          {:program, [{:handle, 1}, {:data, {:s, 32}, {}, <<1::32-signed-native>>}],
           [{:dynamic_slice, 1, [2, 2], [1, 2], [1, 1]}, {:dynamic_put_slice, 1, [2, 2], 3}],
           [{4, :return}]},
          {:download, 4}
        ]),
      "op_set_creation" =>
        requests([
          {:iota, {:s, 32}, {3, 2}, 0},
          {:iota, {:f, 32}, {4}, nil},
          {:eye, {:f, 32}, {3, 3}},
          {:full, {:f, 32}, {2, 2}, 1.5},
          {:full, {:s, 8}, {}, -3},
          {:random_uniform, {:f, 32}, {4}, 42, 0.0, 1.0},
          {:random_normal, {:f, 64}, {2, 2}, 7, 0.0, 1.0},
          {:download, 6}
        ]),
      "program" =>
        requests([
          {:upload, {:f, 32}, {2, 3}, a},
          {:program, [{:handle, 1}, {:data, {:f, 32}, {2, 3}, b}],
           [{:binary, :add, 1, 2}, {:unary, :exp, 3}, {:reduce, :sum, 4, :all, false}],
           [{5, :return}, {3, :keep}]},
          {:program, [{:handle, 1}], [{:binary, :multiply, 1, 1}], [{2, :return}], %{device: :cpu}},
          {:program, [{:handle, 99}], [{:binary, :add, 1, 5}], [{7, :keep}]}
        ]),
      # while and if nodes: a factorial loop, an if, then the edges (a loop past its bound, a
      # body output of another type, region ids out of range, while as a request, deep nesting).
      "program_control" =>
        requests([
          {:program, [{:data, {:s, 64}, {}, <<1::64-signed-native>>}, {:data, {:s, 64}, {}, <<5::64-signed-native>>}],
           [
             {:while, [1, 2], [], {[{:full, {:s, 64}, {}, 0}, {:binary, :greater, 2, 3}], 4},
              {[{:binary, :multiply, 1, 2}, {:full, {:s, 64}, {}, 1}, {:binary, :subtract, 2, 4}], [3, 5]}, 100},
             {:elem, 3, 0},
             {:if, 2, [1, 2], {[{:binary, :subtract, 1, 2}], [3]}, {[{:binary, :multiply, 1, 2}], [3]}},
             {:elem, 5, 0}
           ], [{4, :return}, {6, :keep}]},
          {:program, [{:data, {:s, 64}, {}, <<5::64-signed-native>>}],
           [{:while, [1], [], {[], 1}, {[{:full, {:s, 64}, {}, 1}, {:binary, :add, 1, 2}], [3]}, 7}],
           [{1, :return}]},
          {:program, [{:data, {:s, 64}, {}, <<5::64-signed-native>>}],
           [{:while, [1], [], {[], 1}, {[{:as_type, 1, {:f, 32}}], [2]}, 7}], [{1, :return}]},
          {:program, [{:data, {:s, 64}, {}, <<5::64-signed-native>>}],
           [{:while, [1, 9], [], {[], 99}, {[{:binary, :add, 1, 5}], [1 <<< 40]}, 0}], [{1, :return}]},
          {:while, [1], [], {[], 1}, {[], [1]}, 1},
          {:program, [{:data, {:s, 64}, {}, <<0::64-signed-native>>}],
           [Enum.reduce(1..10, {:binary, :add, 1, 1}, fn _, inner ->
              {:while, [1], [], {[inner], 2}, {[inner, {:elem, 2, 0}], [3]}, 2}
            end)], [{1, :return}]}
        ]),
      "chunked" =>
        requests([
          {:alloc, {:u, 8}, {16}},
          {:write, 1, 4, <<1, 2, 3>>},
          {:read, 1, 2, 6},
          {:write, 1, 15, <<9, 9>>},
          {:read, 1, 16, 1},
          {:alloc, {:f, 64}, {1 <<< 40}}
        ]),
      # Same-host segments (ids from 1 in a fresh store): a one-shot segment adopted, a
      # reusable one copied in and out, then hostile forms of all four requests.
      "shm" =>
        requests([
          {:shm_alloc, 8},
          {:shm_alloc, 4096, :reuse},
          {:upload, {:f, 32}, {2}, f32([1.0, 2.0])},
          {:shm_upload, 2, {:f, 32}, {2}},
          {:shm_download, 1, 2},
          {:shm_download, 1},
          {:shm_upload, 1, {:u, 8}, {8}},
          {:shm_free, 3},
          {:shm_free, 2},
          {:shm_free, 2},
          {:shm_alloc, 0},
          {:shm_alloc, -1},
          {:shm_alloc, 1 <<< 62},
          {:shm_alloc, 1 <<< 70},
          {:shm_alloc, 16, :nope},
          {:shm_alloc, 16, :reuse, 1},
          {:shm_alloc, 16, :reuse},
          {:shm_upload, 4, {:f, 32}, {1 <<< 40}},
          {:shm_upload, 4, {:f, 64}, {3}},
          {:shm_upload, 99, {:f, 32}, {2}},
          {:shm_upload, 4, {:f, 33}, {2}},
          {:shm_download, 1, 99},
          {:shm_download, 1, 3},
          {:shm_download, 1, -3},
          {:shm_download, 1, "4"},
          {:shm_download, 1, 4, 4},
          {:shm_download, :x},
          {:shm_free, :a},
          {:shm_free, 0},
          {:shm_free, 1 <<< 64}
        ]),
      "bad_control" => frame({:not_an_op}) <> request(:hello, 1),
      "no_pass_through" => <<3::32, 1, 2, 3>>
    }
  end

  def handshakes do
    name = @peer
    flags = 0x1 ||| 0x4 ||| 0x8 ||| 0x10 ||| 0x20 ||| 0x80 ||| 0x100 ||| 0x200 ||| 0x400 ||| 0x800 |||
              0x4000 ||| 0x10000 ||| 0x20000 ||| 0x40000 ||| 0x1000000 ||| 0x2000000 ||| 0x4000000
    send_name = <<?N, flags::64, 9::32, byte_size(name)::16, name::binary>>
    old_name = <<?n, 5::16, (flags &&& 0xFFFFFFFF)::32, name::binary>>
    reply = <<?r, 4242::32, :erlang.md5("WRONG")::binary>>
    complement = <<?c, (flags >>> 32)::32, 9::32>>
    msg = fn body -> <<byte_size(body)::16, body::binary>> end

    %{
      "hs_send_name" => msg.(send_name),
      "hs_wrong_cookie" => msg.(send_name) <> msg.(reply),
      "hs_old_style" => msg.(old_name) <> msg.(complement) <> msg.(reply),
      "hs_ancient_peer" => msg.(<<?N, 0x4::64, 1::32, 3::16, "x@y">>),
      "hs_http" => "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    }
  end

  def write(dir, name, bytes) do
    File.mkdir_p!(dir)
    File.write!(Path.join(dir, name), bytes)
  end
end

root = Path.expand("corpus", __DIR__)

for {name, stream} <- Corpus.streams() do
  Corpus.write(Path.join(root, "request"), name, stream)
  Corpus.write(Path.join(root, "wire"), name, <<1>> <> stream)
end

for {name, bytes} <- Corpus.handshakes() do
  Corpus.write(Path.join(root, "wire"), name, <<0>> <> bytes)
end

IO.puts("wrote #{map_size(Corpus.streams())} request seeds and #{map_size(Corpus.streams()) + map_size(Corpus.handshakes())} wire seeds under #{root}")
