#include "mure/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mure {
namespace {

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

Result<uint64_t> ParseUint(const std::string& key, const std::string& text, uint64_t max) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    return Status::BadArg(key + ": expected a non-negative integer, got \"" + text + "\"");
  }
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v > max) {
    return Status::BadArg(key + ": \"" + text + "\" is not an integer in 0.." + std::to_string(max));
  }
  return static_cast<uint64_t>(v);
}

Result<bool> ParseBool(const std::string& key, const std::string& text) {
  if (text == "true" || text == "yes" || text == "on" || text == "1") return true;
  if (text == "false" || text == "no" || text == "off" || text == "0") return false;
  return Status::BadArg(key + ": expected true or false, got \"" + text + "\"");
}

std::string ExecutableDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string{} : path.substr(0, slash);
}

/// Every setting, once: its key (the config file's name; the flag is the same with dashes), the
/// placeholder of its value on a command line ("" for a switch) and its line in --help.
struct SettingInfo {
  const char* key;
  const char* arg;
  const char* help;
};

constexpr SettingInfo kSettings[] = {
    {"name", "NAME", "node name, e.g. mure@127.0.0.1"},
    {"config", "FILE", "config file (default: $MURE_CONFIG, else ../config/mure.conf beside the binary)"},
    {"listen", "ADDR", "listen address (default 127.0.0.1; anything else logs a warning; none: with --connect only)"},
    {"port", "N", "listen port (default 0 = any)"},
    {"cookie_file", "FILE", "cookie file (else $MURE_COOKIE, else ~/.erlang.cookie)"},
    {"port_mode", "", "launched as an Erlang Port: the cookie is stdin's first line; exit on stdin EOF"},
    {"memory_limit", "BYTES", "resident tensor memory limit (e.g. 4G)"},
    {"buffer_cache", "BYTES", "freed large buffers kept faulted in for reuse (e.g. 1G; 0 = none)"},
    {"max_message", "BYTES", "largest request frame (e.g. 1G)"},
    {"queue_depth", "N", "queued requests per executor before {:error, :overloaded}"},
    {"max_loop_iterations", "N", "most iterations of one while node of a program (default 10000000)"},
    {"blis_threads", "N", "gemm threads (0 = one per CPU the node may run on)"},
    {"blis_parallel", "P", "split | blis (how a gemm uses its threads; see config/mure.conf)"},
    {"blis_arch", "A", "auto | skx | zen3 | haswell | generic | cortexa57 | ... (auto: the fastest, measured at start-up)"},
    {"devices", "LIST", "blis,opencl (or one of them)"},
    {"opencl_device", "S", "pick the OpenCL device whose name contains S"},
    {"kernel_cache_dir", "DIR", "where compiled JIT kernels are kept (none = nowhere)"},
    {"handshake_timeout_ms", "N", "a connection's handshake must finish within this (default 5000)"},
    {"connect", "NODE@HOST", "dial out: open and keep the connection to this coordinator BEAM (nodes behind NAT)"},
    {"connect_backoff_max_ms", "N", "longest wait between two dial-out attempts (default 30000)"},
    {"tls_cert", "FILE", "TLS distribution: this node's certificate, PEM (with --tls-key and --tls-ca)"},
    {"tls_key", "FILE", "TLS distribution: this node's private key, PEM"},
    {"tls_ca", "FILE", "TLS distribution: the CA that signs peers' certificates, PEM"},
    {"tls_verify_peer", "BOOL", "TLS: refuse peers without a certificate the CA signed (default true)"},
    {"tls_min_version", "V", "TLS: oldest version accepted, 1.2 or 1.3 (default 1.2)"},
    {"peer_timeout_s", "N", "close a connection silent this long, ticks included (default 300)"},
    {"max_pending_handshakes", "N", "handshakes in progress, all addresses (default 256)"},
    {"max_pending_handshakes_per_source", "N", "handshakes in progress from one address (default 16)"},
    {"max_failed_handshakes", "N", "failures per address per minute before it is refused (default 50; 0 = off)"},
    {"handshake_backoff_s", "N", "seconds such an address is refused (default 60)"},
    {"receive_buffer_limit", "BYTES", "frame receive buffers, all connections together (default 2G)"},
    {"max_queued_replies", "BYTES", "queued replies per connection before it stops reading (default 16M)"},
    {"reply_stall_timeout_s", "N", "close a connection whose peer reads none of them this long (default 120)"},
    {"inline_max_us", "N", "a CPU op estimated this short runs on its connection's thread (default 20; 0 = never)"},
    {"spin_us", "N", "microseconds a connection or worker polls after work before it sleeps (default 0 = off)"},
    {"test_ops", "", "enable test-only ops ({:busy, ms})"},
    {"log_level", "L", "debug | info | warn | error"},
};

const SettingInfo* FindSetting(const std::string& key) {
  for (const SettingInfo& st : kSettings) {
    if (key == st.key) return &st;
  }
  return nullptr;
}

std::string FlagOf(const char* key) {
  std::string flag = std::string("--") + key;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

}  // namespace

Result<uint64_t> ParseBytes(const std::string& text) {
  std::string t = Trim(text);
  uint64_t mult = 1;
  if (!t.empty()) {
    char last = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
    if (last == 'K') mult = 1ull << 10;
    if (last == 'M') mult = 1ull << 20;
    if (last == 'G') mult = 1ull << 30;
    if (last == 'T') mult = 1ull << 40;
    if (mult != 1) t.pop_back();
  }
  auto v = ParseUint("size", t, UINT64_MAX);
  if (!v.ok()) return Status::BadArg("\"" + text + "\" is not a size (e.g. 4G, 512M, 65536)");
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(*v, mult, &bytes)) return Status::BadArg("\"" + text + "\" is too large");
  return bytes;
}

Status ApplySetting(Config& cfg, const std::string& key, const std::string& raw, const std::string& shown) {
  const std::string value = Trim(raw);
  // Messages name the setting as its user wrote it: the key in a file, the flag on a command line.
  const std::string& name = shown.empty() ? key : shown;
  auto set_u32 = [&](uint32_t& field, uint64_t max) -> Status {
    auto v = ParseUint(name, value, max);
    if (!v.ok()) return v.status();
    field = static_cast<uint32_t>(*v);
    return Status::Ok();
  };
  auto set_bytes = [&](uint64_t& field) -> Status {
    auto v = ParseBytes(value);
    if (!v.ok()) return Status::BadArg(name + ": " + v.status().message());
    field = *v;
    return Status::Ok();
  };
  auto set_bool = [&](bool& field) -> Status {
    auto v = ParseBool(name, value);
    if (!v.ok()) return v.status();
    field = *v;
    return Status::Ok();
  };

  if (key == "cookie") {
    return Status::BadArg("a cookie is never taken from the command line or the config file; use cookie_file, "
                          "$MURE_COOKIE, or stdin in Port mode");
  }
  if (key == "name") { cfg.name = value; return Status::Ok(); }
  if (key == "listen") { cfg.listen = value; return Status::Ok(); }
  if (key == "port") {
    auto v = ParseUint(name, value, 65535);
    if (!v.ok()) return v.status();
    cfg.port = static_cast<uint16_t>(*v);
    return Status::Ok();
  }
  if (key == "cookie_file") { cfg.cookie_file = value; return Status::Ok(); }
  if (key == "connect") {
    const auto at = value.find('@');
    if (!value.empty() && (at == 0 || at == std::string::npos || at + 1 == value.size() ||
                           value.find('@', at + 1) != std::string::npos)) {
      return Status::BadArg(name + " must be the coordinator's node name, alive@host (e.g. app@10.0.0.1); got \"" +
                            value + "\"");
    }
    cfg.connect = value;
    return Status::Ok();
  }
  if (key == "connect_backoff_max_ms") {
    MURE_RETURN_IF_ERROR(set_u32(cfg.connect_backoff_max_ms, 3600000));
    if (cfg.connect_backoff_max_ms < 100) return Status::BadArg(name + " must be at least 100");
    return Status::Ok();
  }
  if (key == "tls_cert") { cfg.tls_cert = value; return Status::Ok(); }
  if (key == "tls_key") { cfg.tls_key = value; return Status::Ok(); }
  if (key == "tls_ca") { cfg.tls_ca = value; return Status::Ok(); }
  if (key == "tls_verify_peer") return set_bool(cfg.tls_verify_peer);
  if (key == "tls_min_version") {
    if (value != "1.2" && value != "1.3") return Status::BadArg(name + ": expected 1.2 or 1.3, got \"" + value + "\"");
    cfg.tls_min_version = value;
    return Status::Ok();
  }
  if (key == "port_mode") return set_bool(cfg.port_mode);
  if (key == "memory_limit") return set_bytes(cfg.memory_limit);
  if (key == "buffer_cache") return set_bytes(cfg.buffer_cache);
  if (key == "max_message") {
    MURE_RETURN_IF_ERROR(set_bytes(cfg.max_message));
    // The BEAM aborts when it encodes a distribution message of 2 GiB or more.
    if (cfg.max_message < 1024 || cfg.max_message >= (2ull << 30)) {
      return Status::BadArg(name + " must be between 1K and 2G-1 (the BEAM cannot send 2 GiB messages)");
    }
    return Status::Ok();
  }
  if (key == "max_loop_iterations") {
    auto v = ParseUint(name, value, uint64_t{1} << 62);
    if (!v.ok()) return v.status();
    if (*v == 0) return Status::BadArg(name + " must be at least 1");
    cfg.max_loop_iterations = *v;
    return Status::Ok();
  }
  if (key == "queue_depth") {
    MURE_RETURN_IF_ERROR(set_u32(cfg.queue_depth, 1u << 20));
    if (cfg.queue_depth == 0) return Status::BadArg(name + " must be at least 1");
    return Status::Ok();
  }
  if (key == "inline_max_us") return set_u32(cfg.inline_max_us, 1000000);
  if (key == "spin_us") return set_u32(cfg.spin_us, 1000);
  if (key == "blis_threads") return set_u32(cfg.blis_threads, 1024);
  if (key == "blis_parallel") {
    if (value != "split" && value != "blis") {
      return Status::BadArg(name + ": expected split or blis, got \"" + value + "\"");
    }
    cfg.blis_parallel = value;
    return Status::Ok();
  }
  if (key == "blis_arch") {
    static const char* const kSets[] = {"auto",      "skx",       "zen3",      "haswell", "generic",
                                        "cortexa57", "cortexa53", "thunderx2", "firestorm", "armsve"};
    if (std::none_of(std::begin(kSets), std::end(kSets), [&](const char* s) { return value == s; })) {
      return Status::BadArg(name + ": expected auto, skx, zen3, haswell, generic (x86-64) or cortexa57, cortexa53, " +
                            "thunderx2, firestorm, armsve (aarch64), got \"" + value + "\"");
    }
    cfg.blis_arch = value;
    return Status::Ok();
  }
  if (key == "devices") {
    cfg.use_blis = cfg.use_opencl = false;
    std::stringstream ss(value);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = Trim(item);
      if (item == "blis") cfg.use_blis = true;
      else if (item == "opencl") cfg.use_opencl = true;
      else if (!item.empty()) return Status::BadArg(name + ": unknown device \"" + item + "\" (blis, opencl)");
    }
    return Status::Ok();
  }
  if (key == "opencl_device") { cfg.opencl_device = value; return Status::Ok(); }
  if (key == "kernel_cache_dir") { cfg.kernel_cache_dir = value; return Status::Ok(); }
  if (key == "handshake_timeout_ms") return set_u32(cfg.handshake_timeout_ms, 600000);
  if (key == "peer_timeout_s") return set_u32(cfg.peer_timeout_s, 86400);
  if (key == "max_pending_handshakes") {
    MURE_RETURN_IF_ERROR(set_u32(cfg.max_pending_handshakes, 65536));
    if (cfg.max_pending_handshakes == 0) return Status::BadArg(name + " must be at least 1");
    return Status::Ok();
  }
  if (key == "max_pending_handshakes_per_source") {
    MURE_RETURN_IF_ERROR(set_u32(cfg.max_pending_handshakes_per_source, 65536));
    if (cfg.max_pending_handshakes_per_source == 0) {
      return Status::BadArg(name + " must be at least 1");
    }
    return Status::Ok();
  }
  if (key == "max_failed_handshakes") return set_u32(cfg.max_failed_handshakes, 1u << 20);
  if (key == "handshake_backoff_s") return set_u32(cfg.handshake_backoff_s, 86400);
  if (key == "receive_buffer_limit") return set_bytes(cfg.receive_buffer_limit);
  if (key == "max_queued_replies") {
    MURE_RETURN_IF_ERROR(set_bytes(cfg.max_queued_replies));
    if (cfg.max_queued_replies < 1024) return Status::BadArg(name + " must be at least 1K");
    return Status::Ok();
  }
  if (key == "reply_stall_timeout_s") {
    MURE_RETURN_IF_ERROR(set_u32(cfg.reply_stall_timeout_s, 86400));
    if (cfg.reply_stall_timeout_s == 0) return Status::BadArg(name + " must be at least 1");
    return Status::Ok();
  }
  if (key == "test_ops") return set_bool(cfg.test_ops);
  if (key == "log_level") {
    if (value == "debug") cfg.log_level = LogLevel::kDebug;
    else if (value == "info") cfg.log_level = LogLevel::kInfo;
    else if (value == "warn") cfg.log_level = LogLevel::kWarn;
    else if (value == "error") cfg.log_level = LogLevel::kError;
    else return Status::BadArg(name + ": expected debug, info, warn or error, got \"" + value + "\"");
    return Status::Ok();
  }
  return Status::BadArg("unknown setting \"" + key + "\"");
}

Status LoadConfigFile(Config& cfg, const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::BadArg("cannot read config file " + path);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    line = Trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return Status::BadArg(path + ":" + std::to_string(lineno) + ": expected `key = value`");
    }
    Status s = ApplySetting(cfg, Trim(line.substr(0, eq)), line.substr(eq + 1));
    if (!s.ok()) return Status::BadArg(path + ":" + std::to_string(lineno) + ": " + s.message());
  }
  cfg.config_path = path;
  return Status::Ok();
}

std::string UsageText() {
  std::string out = "usage: mure_node --name NAME [options]\n";
  for (const SettingInfo& st : kSettings) {
    std::string flag = "  " + FlagOf(st.key) + (*st.arg ? std::string(" ") + st.arg : std::string());
    if (flag.size() < 30) flag.resize(30, ' ');
    else flag += ' ';
    out += flag + st.help + "\n";
  }
  out += "  --help                      this text\n"
         "  --version                   the version and the compiler (libraries and devices: the start-up log)\n"
         "Every setting but --config can also be given in the config file, as `key = value` with the\n"
         "flag's name in underscores (--memory-limit 4G is memory_limit = 4G). The cookie is never\n"
         "accepted on the command line.\n";
  return out;
}

std::string VersionText() {
  return std::string("mure_node ") + MURE_VERSION + " (C++" + std::to_string(__cplusplus / 100 % 100) +
         ", " +
#if defined(__clang__)
         "clang " + __clang_version__ +
#else
         "GCC " + __VERSION__ +
#endif
         "); the libraries and devices in use are in the log at start-up and in :hello / :devices\n";
}

Result<Config> ConfigFromArgs(int argc, char** argv) {
  Config cfg;
  struct Given {
    std::string key, value, flag;
  };
  std::vector<Given> settings;
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return Status::BadArg("unexpected argument \"" + arg + "\"");
    std::string key = arg.substr(2);
    std::string value;
    auto eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    for (auto& c : key) if (c == '-') c = '_';
    if (key == "cookie" || key == "setcookie") {
      return Status::BadArg("--" + key + " is refused: a cookie on the command line is visible to every user "
                            "(ps). Use --cookie-file, $MURE_COOKIE, or stdin with --port-mode");
    }
    const SettingInfo* info = FindSetting(key);
    if (info == nullptr) return Status::BadArg("unknown flag \"" + arg + "\" (see --help)");
    const std::string flag = eq == std::string::npos ? arg : arg.substr(0, eq + 2);
    if (*info->arg == '\0') {
      if (eq == std::string::npos) value = "true";
    } else if (eq == std::string::npos) {
      if (i + 1 >= argc) return Status::BadArg(flag + " needs a value (" + info->arg + ")");
      value = argv[++i];
    }
    if (key == "config") {
      config_path = value;
    } else {
      settings.push_back({key, value, flag});
    }
  }
  if (config_path.empty()) {
    if (const char* env = std::getenv("MURE_CONFIG"); env && *env) {
      config_path = env;
    } else {
      std::string beside = ExecutableDir() + "/../config/mure.conf";
      if (::access(beside.c_str(), R_OK) == 0) config_path = beside;
    }
  }
  if (!config_path.empty()) MURE_RETURN_IF_ERROR(LoadConfigFile(cfg, config_path));
  for (const Given& g : settings) MURE_RETURN_IF_ERROR(ApplySetting(cfg, g.key, g.value, g.flag));
  // A frame is received whole into a buffer drawn from receive_buffer_limit: a largest frame
  // that the budget could never hold would wait forever.
  if (cfg.receive_buffer_limit < cfg.max_message) {
    return Status::BadArg("receive_buffer_limit (" + std::to_string(cfg.receive_buffer_limit) +
                          ") must be at least max_message (" + std::to_string(cfg.max_message) + ")");
  }
  if (cfg.listen == "none" && cfg.connect.empty()) {
    return Status::BadArg("listen = none leaves no way in: it needs connect (a node that dials its coordinator)");
  }
  if (cfg.name.empty()) return Status::BadArg("--name is required (e.g. --name mure@127.0.0.1)");
  if (cfg.name.find('@') == std::string::npos) {
    return Status::BadArg("--name must be alive@host, e.g. mure@127.0.0.1; got \"" + cfg.name + "\"");
  }
  return cfg;
}

}  // namespace mure
