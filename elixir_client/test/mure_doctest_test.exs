defmodule Mure.DoctestTest do
  # Only the examples that need no node are doctested; the others are illustrative.
  use ExUnit.Case, async: true

  doctest Mure.Error
  doctest Mure.ConnectionError
  doctest Mure.Tensor, only: [size: 1, byte_size: 1]
end
