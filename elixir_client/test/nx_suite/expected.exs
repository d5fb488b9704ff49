# Nx's own tests (test/nx_suite_test.exs) that fail on Mure.Backend, each with its reason,
# and the ones not run. Keys are {file under Nx's test/, ExUnit's test name}.
f32 =
  "the node computes f32 ops in f32 (Nx.BinaryBackend in f64, rounded per op): the last " <>
    "digit of an exact comparison differs"

eigh =
  "Nx 0.7's eigh (and svd, pinv, least_squares on it) is an iterative approximation; " <>
    "with f32 ops in f32 on the node it converges to another approximation of the same " <>
    "quality (see test/nx_doctest_test.exs), whose rounded or printed digits differ"

nan_order =
  "NaN in argmax/argmin: the node's reduction takes NaN as the extreme (as XLA does); " <>
    "Nx.BinaryBackend's left-to-right scan never replaces its candidate by a NaN nor a " <>
    "NaN candidate by anything"

%{
  # Too slow for the time budget (~3 min for the whole run): Nx's iterative eigh/svd/qr
  # composed of hundreds of eager ops, each one a round trip to the node.
  not_run: %{
    {"nx/lin_alg_test.exs",
     "test eigh computes eigenvalues and eigenvectors for a Hermitian matrix case"} =>
      "eigh of a 10x10 complex matrix: > 60 s of eager ops (complex ops fall back)",
    {"nx/lin_alg_test.exs", "test svd works with batched matrices"} =>
      "svd of a batch: > 60 s of eager ops",
    {"nx/lin_alg_test.exs", "test qr property"} => "> 60 s of eager ops under load",
    {"nx/lin_alg_test.exs", "test cholesky property"} => "> 60 s of eager ops under load",
    {"nx/lin_alg_test.exs", "test eigh properties for matrices with different eigenvalues"} =>
      "> 60 s of eager ops under load"
  },
  failing: %{
    # nx_test.exs
    {"nx_test.exs", "test covariance/1 calculates the covariance of a tensor"} =>
      f32 <> " (1.5555557012557983 for 1.5555554628372192)",
    {"nx_test.exs", "test covariance/1 uses optional ddof"} => f32,
    {"nx_test.exs", "test covariance/1 with tensor batch"} => f32,
    {"nx_test.exs", "test argmax works with non finites"} => nan_order,
    {"nx_test.exs", "test argmin/2 works with non finites"} => nan_order,
    {"nx_test.exs", "test gather raises when out of bounds"} =>
      "an out-of-range index is refused by the node: Mure.Error (out_of_range: gather: " <>
        "coordinate 3 of entry 0 is outside axis 0 of size 2), not Nx.BinaryBackend's " <>
        "ArgumentError text (checking on the client would download the indices)",
    {"nx_test.exs", "test bitshift raises for negative numbers on the left"} =>
      "Nx.BinaryBackend raises for a negative shift (Erlang's bsl); the node computes it " <>
        "elementwise like C++ and XLA (no error)",
    {"nx_test.exs", "test bitshift raises for negative numbers on the right"} =>
      "Nx.BinaryBackend raises for a negative shift (Erlang's bsr); the node computes it " <>
        "elementwise like C++ and XLA (no error)",
    # nx/non_finite_test.exs
    {"nx/non_finite_test.exs", "test binary operations remainder"} =>
      "Nx.BinaryBackend raises ArgumentError for remainder(-inf, inf) (Erlang's " <>
        ":math.fmod refuses infinities); the node gives NaN, as IEEE fmod does",
    # nx/random_test.exs: Nx.Random's threefry bits are exact; the floats made from them
    # differ in the last place.
    {"nx/random_test.exs", "doctest Nx.Random.normal/4 (18)"} =>
      f32 <> " (1.369469404220581 for 1.3694695234298706)",
    {"nx/random_test.exs", "doctest Nx.Random.normal/4 (20)"} => f32,
    {"nx/random_test.exs", "doctest Nx.Random.multivariate_normal/4 (15)"} => f32,
    {"nx/random_test.exs", "doctest Nx.Random.multivariate_normal/4 (17)"} => f32,
    {"nx/random_test.exs", "test types normal"} => f32 <> " (complex c64 normal)",
    {"nx/random_test.exs", "test types multivariate_normal"} =>
      f32 <> " (0.37033140659332275 for 0.37033146619796753)",
    {"nx/random_test.exs", "test types uniform"} =>
      "Nx.BinaryBackend makes a bf16 by truncating the f32 (Nx.Shared: the f32's top two " <>
        "bytes); the node rounds to nearest even: 43.0 where it gives 42.75, one bf16 ulp",
    # nx/vectorize_test.exs
    {"nx/vectorize_test.exs", "test cond only executes selected branches"} =>
      "assert_received {^t, ...} pins a tensor: two Mure.Backend tensors are equal only " <>
        "as the same handle, and Nx.Defn.Evaluator deallocates the hook's tensor after its " <>
        "last use (a no-op on Nx.BinaryBackend)",
    # nx/lin_alg_test.exs (its doctests are `doctest Nx.LinAlg`: see test/nx_doctest_test.exs)
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.lu/2 (36)"} => f32,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.lu/2 (38)"} => f32,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.cholesky/1 (5)"} => f32,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.solve/2 (88)"} =>
      f32 <> " (about -1e-7 instead of +1e-7: -0.0 after Nx.round)",
    {"nx/lin_alg_test.exs", "test qr factors a square matrix"} =>
      f32 <> " (about -1e-7 instead of +1e-7: -0.0 after Nx.round)",
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.eigh/2 (21)"} => eigh,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.eigh/2 (22)"} => eigh,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.eigh/2 (23)"} => eigh,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.least_squares/2 (30)"} => eigh,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.least_squares/2 (31)"} => eigh,
    {"nx/lin_alg_test.exs", "doctest Nx.LinAlg.pinv/2 (75)"} => eigh,
    {"nx/lin_alg_test.exs", "test eigh computes eigenvalues and eigenvectors"} => eigh,
    {"nx/lin_alg_test.exs", "test svd finds the singular values of tall matrices"} => eigh,
    {"nx/lin_alg_test.exs", "test svd finds the singular values triangular matrices"} => eigh
  }
}
