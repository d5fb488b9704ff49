// The crash reporter: a fatal signal prints one line naming the signal and the thread, and the
// process still dies of that signal; a stack overflow on a thread with an AltSignalStack too.
#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "common/signals.h"

using namespace mure;

namespace {

__attribute__((noinline)) int Recurse(int depth) {
  volatile char pad[4096];
  pad[0] = static_cast<char>(depth);
  return Recurse(depth + 1) + pad[0];  // not a tail call: every level keeps its frame
}

/// Runs `body` in a forked child whose stderr goes to a pipe: {wait status, stderr}.
template <typename F>
std::pair<int, std::string> InChild(F body) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    body();
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return {status, err};
}

// Whether this test binary is built with AddressSanitizer, from the compiler: the reference that
// CrashReporterEnabled() is checked against, so that neither build can take the other's branch.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kBuiltWithAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kBuiltWithAsan = true;
#else
constexpr bool kBuiltWithAsan = false;
#endif
#else
constexpr bool kBuiltWithAsan = false;
#endif

/// In a child, after RestoreFatalSignals(): exits with 3 (a test failure the parent sees) unless
/// `sig`'s action is what this build promises: the reporter, or under a sanitizer plain SIG_DFL.
void RequireFatalAction(int sig) {
  struct sigaction cur {};
  if (sigaction(sig, nullptr, &cur) != 0) _exit(3);
  const bool dfl = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
  const bool reporter = FatalSignalIsFatal(sig) && (cur.sa_flags & SA_SIGINFO);
  if (CrashReporterEnabled() ? !reporter : !dfl) _exit(3);
}

/// The child died of `sig`, and stderr holds exactly `line` (the reporter), or, in a sanitizer
/// build where the reporter is deliberately left out, no reporter line at all.
void CheckDiedOf(int status, const std::string& err, int sig, const std::string& line) {
  INFO("signal " << sig << ", wait status " << status << ", stderr: " << err);
  REQUIRE_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 3));  // the action was not the promised one
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == sig);
  if (CrashReporterEnabled()) {
    CHECK(err == line);
  } else {
    CHECK(err.find("mure_node: fatal signal") == std::string::npos);
  }
}

}  // namespace

// Both builds run every case below: with the reporter, its one line; under AddressSanitizer
// (CrashReporterEnabled() false, RestoreFatalSignals() installs SIG_DFL), no line, same death.
TEST_CASE("the crash reporter is on exactly when the build has no sanitizer", "[signals]") {
  INFO("built with AddressSanitizer: " << kBuiltWithAsan);
  CHECK(CrashReporterEnabled() == !kBuiltWithAsan);
}

TEST_CASE("a fatal signal is reported in one line and stays fatal", "[signals]") {
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) {
    auto [status, err] = InChild([sig] {
      RestoreFatalSignals();
      RequireFatalAction(sig);
      std::thread t([sig] {
        pthread_setname_np(pthread_self(), "mure-conn");
        raise(sig);
      });
      t.join();
    });
    const char* names[] = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"};
    const char* name = sig == SIGSEGV ? names[0] : sig == SIGBUS ? names[1] : sig == SIGILL ? names[2]
                                                  : sig == SIGFPE ? names[3] : names[4];
    CheckDiedOf(status, err, sig,
                "mure_node: fatal signal " + std::to_string(sig) + " (" + name + ") in thread mure-conn\n");
  }
}

TEST_CASE("another library's handler is replaced by RestoreFatalSignals", "[signals]") {
  auto [status, err] = InChild([] {
    signal(SIGSEGV, [](int) {});  // like PoCL's: returns, and the process would live on
    RestoreFatalSignals();
    RequireFatalAction(SIGSEGV);
    raise(SIGSEGV);
  });
  CheckDiedOf(status, err, SIGSEGV, "mure_node: fatal signal 11 (SIGSEGV) in thread mure_tests\n");
}

TEST_CASE("a stack overflow on a thread with an AltSignalStack is reported", "[signals]") {
  auto [status, err] = InChild([] {
    RestoreFatalSignals();
    RequireFatalAction(SIGSEGV);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t th;
    pthread_create(
        &th, &attr,
        [](void*) -> void* {
          pthread_setname_np(pthread_self(), "mure-overflow");
          AltSignalStack alt;
          std::exit(Recurse(0));
        },
        nullptr);
    pthread_join(th, nullptr);
  });
  CheckDiedOf(status, err, SIGSEGV, "mure_node: fatal signal 11 (SIGSEGV) in thread mure-overflow\n");
}

TEST_CASE("FatalSignalIsFatal tells a foreign handler from the default action and the reporter", "[signals]") {
  signal(SIGBUS, [](int) {});
  CHECK_FALSE(FatalSignalIsFatal(SIGBUS));
  RestoreFatalSignals();
  CHECK(FatalSignalIsFatal(SIGBUS));
}
