import Config

# Mure.Backend names the node in `inspect` output (Mure.Backend<node>), except in the test
# environment, where Nx's doctests compare its output with Nx.BinaryBackend's (as EXLA does).
config :mure, :add_backend_on_inspect, config_env() != :test
