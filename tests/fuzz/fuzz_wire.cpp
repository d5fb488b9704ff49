// libFuzzer target: a real mure::Connection (dist/connection.cpp) over a socket pair.
//
// The first byte of the input picks what the rest is:
//   even: the bytes an initiator sends from the first byte of the handshake on
//         (dist/handshake.cpp AcceptHandshake: send_name, challenge reply, under a deadline);
//   odd:  the post-handshake stream (fuzz_common.h), sent after a correct OTP 25 handshake that
//         the harness performs itself, so the connection's own frame reader runs: the length
//         prefix against max_message, ticks, oversized frames read in part and discarded, the
//         control message, the dispatch, the store, the BLIS queue and the reply writer.
// The harness then half-closes its side, reads whatever the node writes until the node closes,
// and joins the connection's thread. Sanitizers, libFuzzer's malloc limit and its timeout catch
// what goes wrong; a connection that never ends is a hang (-timeout).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "dist/connection.h"
#include "fuzz_common.h"
#include "fuzz_dist.h"

using namespace mure;

namespace {

fuzz::ConnectionWorld& H() {
  static auto* h = new fuzz::ConnectionWorld;
  return *h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  fuzz::ConnectionWorld& h = H();
  const bool after_handshake = data[0] & 1;
  ++data;
  --size;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  h.ResetStore();
  {
    auto conn = std::make_shared<Connection>(fds[0], h.service, h.store, h.cfg, h.identity, h.params);
    conn->Start();
    const int peer = fds[1];
    bool ok = after_handshake ? fuzz::InitiatorHandshake(
                                    2, [&](const std::string& m) { return fuzz::WriteAll(peer, m.data(), m.size()); },
                                    [&](void* p, size_t n) { return fuzz::ReadAll(peer, p, n); })
                              : true;
    if (after_handshake && !ok) {
      std::fprintf(stderr, "fuzz: the node refused a correct handshake\n");
      std::abort();
    }
    fuzz::SendAndDrain(peer, *conn, data, size);
    fuzz::JoinFinished(*conn);
    conn.reset();  // queued jobs may hold it a little longer
  }
  ::close(fds[1]);
  h.Settle();
  return 0;
}
