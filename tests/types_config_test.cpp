// Checked sizes, the config file and flags, and where a cookie may (not) come from.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/cookie.h"
#include "dist_util.h"
#include "ir/ops.h"
#include "mure/config.h"
#include "mure/types.h"

using namespace mure;
using mure::testing::Args;

TEST_CASE("byte sizes are checked products", "[types][security]") {
  CHECK(*ByteSize(DType::kF32, {2, 3}) == 24);
  CHECK(*ByteSize(DType::kBF16, {}) == 2);
  CHECK(*ByteSize(DType::kF64, {0, 1ull << 59}) == 0);  // empty tensors are legal
  CHECK(*ByteSize(DType::kU8, {1ull << 40, 0}) == 0);
  CHECK(ByteSize(DType::kU8, {1ull << 32, 1ull << 32}).status().kind() == ErrorKind::kBadShape);
  CHECK(ByteSize(DType::kF64, {1ull << 62}).status().kind() == ErrorKind::kBadShape);
  CHECK(ByteSize(DType::kU8, Shape(17, 1)).status().kind() == ErrorKind::kBadShape);
}

TEST_CASE("a shape's dims must multiply without overflow even when one of them is 0", "[types][security]") {
  // Issue 11: {0, 2^40, 2^40} has 0 elements, but rows = 2^40 * 2^40 wraps in every kernel.
  CHECK(*ElementCount({0, 1ull << 40, 1ull << 20}) == 0);
  CHECK(ElementCount({0, 1ull << 40, 1ull << 40}).status().kind() == ErrorKind::kBadShape);
  CHECK(ElementCount({1ull << 32, 0, 1ull << 31}).status().kind() == ErrorKind::kBadShape);  // 2^63: not below it
  CHECK(*ElementCount({1ull << 31, 0, (1ull << 32) - 1}) == 0);
  // In bytes too: an f64 {0, 2^62} would have byte strides of 2^65.
  CHECK(ByteSize(DType::kF64, {0, 1ull << 62}).status().kind() == ErrorKind::kBadShape);
  CHECK(*ByteSize(DType::kU8, {0, 1ull << 62}) == 0);
}

TEST_CASE("shape rules compute with checked arithmetic", "[ir][security]") {
  using namespace mure::ir;
  SECTION("pad: (d - 1) * interior is bounded, not only each factor") {
    // 65,537 elements with interior 2^48: 2^64 + 65,537 wrapped to {65537} on 67c2630.
    auto huge = PadShape({65537}, {PadDim{0, 0, int64_t{1} << 48}});
    CHECK(huge.status().kind() == ErrorKind::kBadShape);
    CHECK(PadShape({1u << 14, 3}, {PadDim{0, 0, int64_t{1} << 48}, PadDim{}}).status().kind() == ErrorKind::kBadShape);
    CHECK(*PadShape({3}, {PadDim{1, 2, 2}}) == Shape{10});                       // 1 + 3 + 2 * 2 + 2
    CHECK(*PadShape({1}, {PadDim{0, 0, int64_t{1} << 48}}) == Shape{1});         // one element: no interior
    CHECK(*PadShape({0}, {PadDim{2, 3, int64_t{1} << 48}}) == Shape{5});
  }
  SECTION("dot: m * n of an empty product is checked") {
    // {2^40, 0} . {0, 2^40}: k = 0, every operand empty, but the result is 2^80 elements.
    auto p = PlanDot({1ull << 40, 0}, {1}, {}, {0, 1ull << 40}, {0}, {});
    CHECK(p.status().kind() == ErrorKind::kBadShape);
    auto ok = PlanDot({1ull << 20, 0}, {1}, {}, {0, 8}, {0}, {});
    REQUIRE(ok.ok());
    CHECK(ok->out_shape == Shape{1ull << 20, 8});
    CHECK(ok->k == 0);
  }
  SECTION("take, broadcast and broadcast_to results pass the rule") {
    CHECK(TakeShape({0, 1ull << 62}, DType::kS64, {0, 1024}, 0).status().kind() == ErrorKind::kBadShape);
    CHECK(BroadcastShapes({0, 1ull << 40, 1}, {1, 1, 1ull << 40}).status().kind() == ErrorKind::kBadShape);
    CHECK(CheckBroadcastTo({1}, {0, 1ull << 40, 1ull << 40}, {2}).kind() == ErrorKind::kBadShape);
  }
  SECTION("concatenate's joined axis") {
    CHECK(ConcatShape({{0, 1ull << 62}, {0, 1ull << 62}}, 1).status().kind() == ErrorKind::kBadShape);
    CHECK(ConcatShape({{0, ~0ull}, {0, 1}}, 1).status().kind() == ErrorKind::kBadShape);
  }
}

TEST_CASE("Nx type tuples map to dtypes and back", "[types]") {
  for (auto [cls, bits] : std::vector<std::pair<std::string, int>>{
           {"u", 8}, {"u", 64}, {"s", 16}, {"f", 16}, {"f", 32}, {"f", 64}, {"bf", 16}}) {
    auto t = DTypeFromNx(cls, bits);
    REQUIRE(t);
    CHECK(DTypeClass(*t) == cls);
    CHECK(DTypeBits(*t) == static_cast<unsigned>(bits));
  }
  CHECK_FALSE(DTypeFromNx("f", 8));
  CHECK_FALSE(DTypeFromNx("bf", 32));
  CHECK_FALSE(DTypeFromNx("c", 32));
  CHECK(DTypeFromNx("c", 128) == DType::kC128);
}

TEST_CASE("sizes with suffixes", "[config]") {
  CHECK(*ParseBytes("4G") == (4ull << 30));
  CHECK(*ParseBytes("512m") == (512ull << 20));
  CHECK(*ParseBytes("1024") == 1024);
  CHECK_FALSE(ParseBytes("lots").ok());
  CHECK_FALSE(ParseBytes("-1").ok());
  CHECK_FALSE(ParseBytes("99999999999999999999T").ok());
}

TEST_CASE("the shipped config file parses and equals the built-in defaults", "[config]") {
  Config defaults;
  Config cfg;
  REQUIRE(LoadConfigFile(cfg, MURE_SOURCE_DIR "/config/mure.conf").ok());
  CHECK(cfg.listen == defaults.listen);
  CHECK(cfg.memory_limit == defaults.memory_limit);
  CHECK(cfg.max_message == defaults.max_message);
  CHECK(cfg.buffer_cache == defaults.buffer_cache);
  CHECK(cfg.kernel_cache_dir == defaults.kernel_cache_dir);
  CHECK(cfg.queue_depth == defaults.queue_depth);
  CHECK(cfg.blis_arch == defaults.blis_arch);
  CHECK(cfg.blis_parallel == defaults.blis_parallel);
  CHECK(cfg.blis_threads == defaults.blis_threads);
  CHECK(cfg.use_blis == defaults.use_blis);
  CHECK(cfg.use_opencl == defaults.use_opencl);
  CHECK(cfg.test_ops == defaults.test_ops);
  CHECK(cfg.peer_timeout_s == defaults.peer_timeout_s);
  CHECK(cfg.max_pending_handshakes == defaults.max_pending_handshakes);
  CHECK(cfg.max_pending_handshakes_per_source == defaults.max_pending_handshakes_per_source);
  CHECK(cfg.max_failed_handshakes == defaults.max_failed_handshakes);
  CHECK(cfg.handshake_backoff_s == defaults.handshake_backoff_s);
  CHECK(cfg.receive_buffer_limit == defaults.receive_buffer_limit);
  CHECK(cfg.max_queued_replies == defaults.max_queued_replies);
  CHECK(cfg.reply_stall_timeout_s == defaults.reply_stall_timeout_s);
  CHECK(cfg.tls_cert == defaults.tls_cert);
  CHECK(cfg.tls_key == defaults.tls_key);
  CHECK(cfg.tls_ca == defaults.tls_ca);
  CHECK(cfg.tls_verify_peer == defaults.tls_verify_peer);
  CHECK(cfg.tls_min_version == defaults.tls_min_version);
  CHECK(cfg.inline_max_us == defaults.inline_max_us);
  CHECK(cfg.spin_us == defaults.spin_us);
}

TEST_CASE("flags override the file; bad flags and cookies on argv are refused", "[config][security]") {
  auto cfg = Args({"--config", MURE_SOURCE_DIR "/config/mure.conf", "--name", "m@127.0.0.1", "--memory-limit", "1G",
                   "--devices=blis", "--test-ops", "--listen", "0.0.0.0"});
  REQUIRE(cfg.ok());
  CHECK(cfg->memory_limit == (1ull << 30));
  CHECK(cfg->use_blis);
  CHECK_FALSE(cfg->use_opencl);
  CHECK(cfg->test_ops);
  CHECK(cfg->listen == "0.0.0.0");
  auto fast = Args({"--name", "m@h", "--inline-max-us", "0", "--spin-us=100"});
  REQUIRE(fast.ok());
  CHECK(fast->inline_max_us == 0);
  CHECK(fast->spin_us == 100);
  CHECK_FALSE(Args({"--name", "m@h", "--spin-us", "5000"}).ok());  // a spin is bounded (1 ms)
  CHECK_THAT(Args({"--name", "m@h", "--cookie", "secret"}).status().message(), Catch::Contains("refused"));
  CHECK_THAT(Args({"--name", "m@h", "--setcookie=secret"}).status().message(), Catch::Contains("refused"));
  CHECK_FALSE(Args({"--name", "m@h", "--frobnicate", "1"}).ok());
  CHECK_THAT(Args({"--name", "m@h", "--no-such-flag"}).status().message(), Catch::Contains("unknown flag"));
  CHECK_FALSE(Args({"--memory-limit", "1G"}).ok());  // no name
  CHECK_FALSE(Args({"--name", "nohost"}).ok());
  CHECK_FALSE(Args({"--name", "m@h", "--max-message", "3G"}).ok());
  CHECK_FALSE(Args({"--name", "m@h", "--queue-depth", "0"}).ok());
  CHECK(Args({"--name", "m@h", "--blis-parallel", "blis"})->blis_parallel == "blis");
  CHECK(Args({"--name", "m@h", "--blis-parallel=split"})->blis_parallel == "split");
  CHECK_THAT(Args({"--name", "m@h", "--blis-parallel", "openmp"}).status().message(),
             Catch::Contains("expected split or blis"));
}

namespace {
/// The flags --help lists, in order.
std::vector<std::string> HelpFlags() {
  std::vector<std::string> flags;
  std::istringstream in(UsageText());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("  --", 0) != 0) continue;
    flags.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  return flags;
}
}  // namespace

TEST_CASE("--help lists every setting the node takes, each parsed, errors naming the flag as typed", "[config]") {
  const auto flags = HelpFlags();
  REQUIRE(flags.size() >= 28);
  for (const std::string& flag : flags) {
    INFO(flag);
    if (flag == "--help" || flag == "--version" || flag == "--config") continue;
    // A value no setting takes: each flag is either a free-form string (accepted) or refused by
    // its own parser under the name it was given, never an unknown setting.
    auto cfg = Args({"--name", "m@127.0.0.1", flag + "=%bogus%"});
    if (!cfg.ok()) {
      CHECK_THAT(cfg.status().message(), Catch::StartsWith(flag));
      CHECK_THAT(cfg.status().message(), !Catch::Contains("unknown setting"));
    }
  }
  CHECK_THAT(Args({"--name", "m@h", "--memory-limit", "lots"}).status().message(),
             Catch::StartsWith("--memory-limit: "));
  CHECK_THAT(Args({"--name", "m@h", "--queue-depth=0"}).status().message(), Catch::StartsWith("--queue-depth must"));
  CHECK_THAT(Args({"--name", "m@h", "--blis-threads"}).status().message(), Catch::Contains("needs a value (N)"));
  // In a file, the key.
  Config cfg;
  CHECK_THAT(ApplySetting(cfg, "memory_limit", "lots").message(), Catch::StartsWith("memory_limit: "));
}

TEST_CASE("the README's usage block shows every flag --help lists", "[config][docs]") {
  std::ifstream in(MURE_SOURCE_DIR "/README.md");
  REQUIRE(in);
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string text = readme.str();
  const size_t start = text.find("```\nmure_node --name NAME");
  REQUIRE(start != std::string::npos);
  const std::string block = text.substr(start, text.find("```", start + 3) - start);
  for (const std::string& flag : HelpFlags()) {
    INFO(flag);
    CHECK(block.find(flag) != std::string::npos);
  }
}

TEST_CASE("a config file cannot carry a cookie", "[config][security]") {
  char path[] = "/tmp/mure_conf_XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "# comment\nname = a@b\ncookie = secret\n";
  Config cfg;
  Status s = LoadConfigFile(cfg, path);
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains(":3:"));
  unlink(path);
}

TEST_CASE("cookies: validated, read from a file or the environment, refused when absent", "[cookie][security]") {
  CHECK(ValidateCookie("ABCDEF", "x").ok());
  CHECK_FALSE(ValidateCookie("", "x").ok());
  CHECK_FALSE(ValidateCookie("has space", "x").ok());
  CHECK_FALSE(ValidateCookie(std::string(300, 'a'), "x").ok());

  char path[] = "/tmp/mure_cookie_XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "FILECOOKIE\n", 11) == 11);
  close(fd);
  chmod(path, 0600);
  Config cfg;
  cfg.cookie_file = path;
  CHECK(*LoadCookie(cfg) == "FILECOOKIE");
  unlink(path);

  Config env_cfg;
  setenv("MURE_COOKIE", "ENVCOOKIE", 1);
  CHECK(*LoadCookie(env_cfg) == "ENVCOOKIE");
  unsetenv("MURE_COOKIE");

  const char* home = getenv("HOME");
  std::string saved = home ? home : "";
  setenv("HOME", "/nonexistent-mure-home", 1);
  auto none = LoadCookie(env_cfg);
  CHECK_FALSE(none.ok());
  CHECK_THAT(none.status().message(), Catch::Contains("refusing to start"));
  if (home) setenv("HOME", saved.c_str(), 1);
}

TEST_CASE("the stdin cookie line reader stops at the newline", "[cookie]") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  REQUIRE(write(fds[1], "PORTCOOKIE\nrest", 15) == 15);
  close(fds[1]);
  CHECK(*ReadLineFromFd(fds[0], 1024) == "PORTCOOKIE");
  char rest[8] = {};
  CHECK(read(fds[0], rest, sizeof rest) == 4);
  close(fds[0]);
}
