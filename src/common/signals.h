// mure — keep fatal signals fatal, and say so on stderr.
#pragma once

namespace mure {

/// Install the crash reporter for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT: it writes one line
/// to stderr ("mure_node: fatal signal 11 (SIGSEGV) in thread mure-conn"), with write(2) only,
/// puts the default action back and re-raises, so the process dies of the same signal (same exit
/// status, same core dump) as without it. It runs on the thread's alternate signal stack where
/// there is one (see AltSignalStack), so a stack overflow is reported too.
///
/// Libraries may install handlers of their own: PoCL's LLVM installs one that, for a signal sent
/// from outside (kill -SEGV), unregisters itself and returns, so the node would live on half-dead
/// instead of crashing cleanly into a `nodedown`. RestoreFatalSignals() puts the reporter back
/// over any other handler; it is cheap and called after every point where such a library may
/// have run its set-up.
///
/// Built with AddressSanitizer the reporter is left out (CrashReporterEnabled() is false): the
/// sanitizer's own handlers print the report that matters, and RestoreFatalSignals() puts the
/// default action back as before.
void RestoreFatalSignals();
/// False in sanitizer builds, where RestoreFatalSignals() installs plain SIG_DFL.
bool CrashReporterEnabled();
/// True when `sig` kills the process: its action is the default, or the crash reporter (which
/// ends in the default). False when another handler (a library's) is installed.
bool FatalSignalIsFatal(int sig);

/// An alternate signal stack for the calling thread, for as long as this object lives (make it
/// the first local of a thread's function). Without one, a thread that overflows its stack dies
/// silently: the handler itself cannot run on the exhausted stack.
class AltSignalStack {
 public:
  AltSignalStack();
  ~AltSignalStack();
  AltSignalStack(const AltSignalStack&) = delete;
  AltSignalStack& operator=(const AltSignalStack&) = delete;

 private:
  void* mem_ = nullptr;
};

}  // namespace mure
