// mure — keep fatal signals fatal.
#pragma once

namespace mure {

/// Put SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT back to their default action (the process
/// dies). Libraries may install handlers of their own: PoCL's LLVM installs one that, for a
/// signal sent from outside (kill -SEGV), unregisters itself and returns, so the node would live
/// on half-dead instead of crashing cleanly into a `nodedown`. Cheap; called after every point
/// where such a library may have run its set-up.
void RestoreFatalSignals();

}  // namespace mure
