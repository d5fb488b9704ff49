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

}  // namespace

TEST_CASE("a fatal signal is reported in one line and stays fatal", "[signals]") {
  if (!CrashReporterEnabled()) SUCCEED("sanitizer build: the sanitizer reports crashes");
  if (!CrashReporterEnabled()) return;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) {
    auto [status, err] = InChild([sig] {
      RestoreFatalSignals();
      std::thread t([sig] {
        pthread_setname_np(pthread_self(), "mure-conn");
        raise(sig);
      });
      t.join();
    });
    INFO("signal " << sig << ", stderr: " << err);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    CHECK(err.find("mure_node: fatal signal " + std::to_string(sig) + " (") == 0);
    CHECK(err.find(") in thread mure-conn\n") != std::string::npos);
    CHECK(err.find('\n') == err.size() - 1);  // one line
  }
}

TEST_CASE("another library's handler is replaced by RestoreFatalSignals", "[signals]") {
  if (!CrashReporterEnabled()) return;
  auto [status, err] = InChild([] {
    signal(SIGSEGV, [](int) {});  // like PoCL's: returns, and the process would live on
    RestoreFatalSignals();
    raise(SIGSEGV);
  });
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
  CHECK(err.find("(SIGSEGV)") != std::string::npos);
}

TEST_CASE("a stack overflow on a thread with an AltSignalStack is reported", "[signals]") {
  if (!CrashReporterEnabled()) return;
  auto [status, err] = InChild([] {
    RestoreFatalSignals();
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
  INFO("stderr: " << err);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
  CHECK(err == "mure_node: fatal signal 11 (SIGSEGV) in thread mure-overflow\n");
}

TEST_CASE("FatalSignalIsFatal tells a foreign handler from the default action and the reporter", "[signals]") {
  signal(SIGBUS, [](int) {});
  CHECK_FALSE(FatalSignalIsFatal(SIGBUS));
  RestoreFatalSignals();
  CHECK(FatalSignalIsFatal(SIGBUS));
}
