#include "common/signals.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>

#if defined(__SANITIZE_ADDRESS__)
#define MURE_HAS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MURE_HAS_ASAN 1
#endif
#endif

namespace mure {
namespace {

constexpr int kFatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
// 64 KiB: the handler needs little, but glibc's MINSIGSTKSZ grows with the CPU's vector state
// (AVX-512); never touched unless a signal arrives, so it costs address space, not memory.
constexpr size_t kAltStackSize = 64 * 1024;

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    default: return "?";
  }
}

/// Appends `s` to out[*len..cap): no allocation, no locale, async-signal-safe.
void Put(char* out, size_t* len, size_t cap, const char* s) {
  while (*s && *len < cap) out[(*len)++] = *s++;
}

void PutInt(char* out, size_t* len, size_t cap, int v) {
  char digits[12];
  int n = 0;
  unsigned u = v < 0 ? 0u : static_cast<unsigned>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u && n < 11);
  while (n > 0 && *len < cap) out[(*len)++] = digits[--n];
}

// Only write(2), prctl(2), sigaction(2) and raise(3): all async-signal-safe (prctl in practice).
extern "C" void CrashHandler(int sig, siginfo_t*, void*) {
  const int saved_errno = errno;
  char line[160];
  size_t len = 0;
  char thread[17] = {};
  if (::prctl(PR_GET_NAME, thread, 0, 0, 0) != 0) thread[0] = '\0';
  Put(line, &len, sizeof line - 1, "mure_node: fatal signal ");
  PutInt(line, &len, sizeof line - 1, sig);
  Put(line, &len, sizeof line - 1, " (");
  Put(line, &len, sizeof line - 1, SignalName(sig));
  Put(line, &len, sizeof line - 1, ") in thread ");
  Put(line, &len, sizeof line - 1, thread[0] ? thread : "?");
  line[len++] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line, len);
  (void)ignored;
  // SA_RESETHAND has put the default action back already; say so again in case a library raced
  // us, then re-raise: the signal is blocked in here, so it is delivered as the handler returns
  // and the process dies of it. (A fault re-executes the faulting instruction anyway.)
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
  errno = saved_errno;
}

}  // namespace

bool CrashReporterEnabled() {
#ifdef MURE_HAS_ASAN
  return false;
#else
  return true;
#endif
}

bool FatalSignalIsFatal(int sig) {
  struct sigaction cur {};
  if (sigaction(sig, nullptr, &cur) != 0) return false;
  if (cur.sa_flags & SA_SIGINFO) return cur.sa_sigaction == CrashHandler;
  return cur.sa_handler == SIG_DFL;
}

void RestoreFatalSignals() {
  for (int sig : kFatal) {
    struct sigaction cur {};
    if (sigaction(sig, nullptr, &cur) != 0) continue;
    struct sigaction want {};
    sigemptyset(&want.sa_mask);
    if (CrashReporterEnabled()) {
      if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == CrashHandler) continue;
      want.sa_sigaction = CrashHandler;
      want.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    } else {
      if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL) continue;
      want.sa_handler = SIG_DFL;
    }
    sigaction(sig, &want, nullptr);
  }
}

AltSignalStack::AltSignalStack() {
  if (!CrashReporterEnabled()) return;  // the sanitizer manages its own alternate stacks
  void* mem = ::mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return;  // no alternate stack: everything but a stack overflow is still reported
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kAltStackSize;
  if (::sigaltstack(&ss, nullptr) != 0) {
    ::munmap(mem, kAltStackSize);
    return;
  }
  mem_ = mem;
}

AltSignalStack::~AltSignalStack() {
  if (!mem_) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
  ::munmap(mem_, kAltStackSize);
}

}  // namespace mure
