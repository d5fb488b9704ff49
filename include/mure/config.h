// mure — the node's configuration: defaults, the config file, then command-line flags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mure/status.h"

namespace mure {

/// Log severities, most verbose first.
enum class LogLevel { kDebug, kInfo, kWarn, kError };

/// Everything the node can be told. Defaults here equal config/mure.conf.
struct Config {
  std::string name;                         ///< node name, e.g. "mure@127.0.0.1" (required)
  std::string listen = "127.0.0.1";         ///< listen address; anything else is logged as a warning
  uint16_t port = 0;                        ///< listen port; 0 = any free port (epmd tells clients)
  std::string cookie_file;                  ///< cookie file; empty = $MURE_COOKIE, then ~/.erlang.cookie
  bool port_mode = false;                   ///< launched as an Erlang Port: cookie on stdin, exit on EOF
  uint64_t memory_limit = 4ull << 30;       ///< bytes of resident tensors the node may hold
  uint64_t buffer_cache = 1ull << 30;       ///< bytes of freed large tensor buffers kept for reuse
  uint64_t max_message = 1ull << 30;        ///< largest request frame accepted, in bytes
  uint32_t queue_depth = 1024;              ///< requests waiting per executor before :overloaded
  uint64_t max_loop_iterations = 10'000'000;  ///< most iterations one program while node may run
  uint32_t blis_threads = 0;                ///< gemm threads; 0 = one per CPU the node may run on
  std::string blis_parallel = "split";      ///< split (the node's threads, one BLIS call each) | blis (BLIS's own)
  std::string blis_arch = "auto";           ///< BLIS kernel set: auto (calibrate) | skx | zen3 | haswell | generic
  bool use_blis = true;                     ///< devices: BLIS executor enabled
  bool use_opencl = true;                   ///< devices: OpenCL executor enabled
  std::string opencl_device;                ///< substring of the OpenCL device name to pick; empty = first
  uint32_t handshake_timeout_ms = 5000;     ///< deadline of each distribution handshake
  std::string connect;                      ///< dial out to this coordinator (alive@host) and keep the connection; empty = no
  uint32_t connect_backoff_max_ms = 30000;  ///< longest wait between two dial-out attempts (exponential, with jitter)
  std::string tls_cert;                     ///< TLS distribution: this node's certificate (PEM); with tls_key and tls_ca
  std::string tls_key;                      ///< TLS distribution: this node's private key (PEM)
  std::string tls_ca;                       ///< TLS distribution: the CA peers' certificates must chain to (PEM)
  bool tls_verify_peer = true;              ///< TLS: refuse a peer without a certificate the CA signed
  std::string tls_min_version = "1.2";      ///< TLS: oldest version accepted, 1.2 or 1.3
  uint32_t peer_timeout_s = 300;            ///< close a connection silent for this long (ticks count)
  uint32_t max_pending_handshakes = 256;    ///< handshakes in progress, all source addresses together
  uint32_t max_pending_handshakes_per_source = 16;  ///< handshakes in progress from one source address
  uint32_t max_failed_handshakes = 50;      ///< failed handshakes per source per minute before a back-off; 0 = off
  uint32_t handshake_backoff_s = 60;        ///< how long a source past max_failed_handshakes is refused at accept
  uint64_t receive_buffer_limit = 2ull << 30;  ///< bytes of frame receive buffers, all connections together
  uint64_t max_queued_replies = 16ull << 20;   ///< queued reply bytes per connection before it stops reading
  uint32_t reply_stall_timeout_s = 120;     ///< close a connection over max_queued_replies that reads nothing this long
  uint32_t inline_max_us = 20;              ///< a CPU op estimated at most this long runs on its connection's thread; 0 = never
  uint32_t spin_us = 0;                     ///< a connection or worker thread polls this long after work before it sleeps; 0 = off
  bool test_ops = false;                    ///< enable test-only ops ({:busy, ms})
  std::string kernel_cache_dir = "~/.cache/mure/kernels";  ///< compiled JIT kernels on disk; "none" = off
  LogLevel log_level = LogLevel::kInfo;     ///< stderr log level
  std::string config_path;                  ///< the file that was read, if any (for logs)
};

/// Parse "4G", "512M", "1024", "64K" into bytes (binary units).
Result<uint64_t> ParseBytes(const std::string& text);

/// Apply one `key = value` setting (shared by the file and the flags). Errors name the setting as
/// `shown` (the flag as typed on a command line), else as `key`.
Status ApplySetting(Config& cfg, const std::string& key, const std::string& value, const std::string& shown = {});

/// Read a config file: `key = value` lines, `#` comments, blank lines. Unknown keys are errors.
Status LoadConfigFile(Config& cfg, const std::string& path);

/// Build the configuration from argv: --config (or $MURE_CONFIG, or ../config/mure.conf beside
/// the executable) first, then every flag over it. Fails on unknown flags, on a cookie given
/// on the command line, and on missing --name.
Result<Config> ConfigFromArgs(int argc, char** argv);

/// Usage text for --help: every setting, from one table.
std::string UsageText();

/// --version: the node's version and what it was built with.
std::string VersionText();

}  // namespace mure
