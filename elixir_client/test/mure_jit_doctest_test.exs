defmodule Mure.JitDoctestTest do
  # The examples of the symbolic ops and of traced programs need no node; `Mure.jit/2`'s
  # example launches its own.
  use ExUnit.Case, async: true

  doctest Mure.Expr
  doctest Mure.Program
  doctest Mure, only: [trace: 2, jit: 2]
end
