defmodule Mure.DoctestTest do
  # The examples that need no node, and Mure's tour of the op set (which launches its own
  # node), are doctested; the per-function examples assume a `conn` and are illustrative.
  use ExUnit.Case, async: true

  doctest Mure, only: [:moduledoc]
  doctest Mure.Error
  doctest Mure.ConnectionError
  doctest Mure.Tensor, only: [size: 1, byte_size: 1]
  doctest Mure.ClusterError
  doctest Mure.Cluster, only: [start_link: 1]
end
