defmodule Mure.Expr.Create do
  @moduledoc false
  # The bodies of Mure.Expr's creation ops (full, iota, eye, random_uniform, random_normal;
  # their docs are Mure.Expr's): expressions made from nothing but their arguments.

  import Mure.Expr.Build

  alias Mure.{Rules, Types}

  def full(value, shape, opts) do
    value = scalar_term(value)
    check_scalar!(value, "full")
    opts = Keyword.validate!(opts, type: default_type(value))
    Types.check_type!(opts[:type], "full")
    Types.check_shape!(shape, "full")
    new({:full, opts[:type], shape, value}, opts[:type], shape)
  end

  def iota(shape, opts) do
    opts = Keyword.validate!(opts, type: {:s, 32}, axis: nil)
    Types.check_type!(opts[:type], "iota")
    Types.check_shape!(shape, "iota")

    unless is_nil(opts[:axis]),
      do: ok!(Rules.axis(opts[:axis], tuple_size(shape), "iota axis"), :iota)

    new({:iota, opts[:type], shape, opts[:axis]}, opts[:type], shape)
  end

  def eye(shape, opts) do
    opts = Keyword.validate!(opts, type: {:s, 32})
    Types.check_type!(opts[:type], "eye")
    Types.check_shape!(shape, "eye")

    if tuple_size(shape) < 2,
      do: raise(ArgumentError, "eye: eye needs a shape of rank 2 or more, got #{inspect(shape)}")

    new({:eye, opts[:type], shape}, opts[:type], shape)
  end

  def random_uniform(shape, opts) do
    opts = Keyword.validate!(opts, [:seed, min: 0.0, max: 1.0, type: {:f, 32}])
    random(:random_uniform, shape, opts[:seed], opts[:min], opts[:max], opts[:type])
  end

  def random_normal(shape, opts) do
    opts = Keyword.validate!(opts, [:seed, mean: 0.0, std: 1.0, type: {:f, 32}])
    random(:random_normal, shape, opts[:seed], opts[:mean], opts[:std], opts[:type])
  end

  defp random(op, shape, seed, p1, p2, type) do
    unless is_integer(seed) and seed >= 0,
      do: raise(ArgumentError, "#{op}: :seed must be a non-negative integer")

    Types.check_type!(type, Atom.to_string(op))
    Types.check_shape!(shape, Atom.to_string(op))

    unless Rules.float?(type),
      do: raise(ArgumentError, "#{op}: makes floats, got #{inspect(type)}")

    unless is_number(p1) and is_number(p2) and
             if(op == :random_uniform, do: p2 >= p1, else: p2 >= 0) do
      raise ArgumentError,
            if(op == :random_uniform,
              do: "random_uniform: needs finite numbers min <= max",
              else: "random_normal: needs a finite mean and std >= 0"
            )
    end

    new({op, type, shape, seed, p1, p2}, type, shape)
  end
end
