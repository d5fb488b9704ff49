// mure — both sides of the Erlang distribution handshake (version 6, OTP 23+): accepting, and
// initiating (a node that dials its coordinator, `connect`).
//
// The node does its own handshake, on the new connection's thread, under a deadline: a peer that
// connects and says nothing delays no one else and is dropped when the deadline passes. Doing it
// here also lets the node advertise the capabilities it really has, among them
// DFLAG_DIST_MONITOR_NAME, without which the BEAM never delivers the MONITOR_P_EXIT that tells
// the node an owner process died (erl_interface's own handshake leaves it out).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "dist/transport.h"
#include "mure/status.h"

namespace mure {

/// Capability flags of the distribution protocol that matter here.
namespace dflag {
constexpr uint64_t kPublished = 0x1, kExtendedReferences = 0x4, kDistMonitor = 0x8, kFunTags = 0x10,
                   kDistMonitorName = 0x20, kNewFunTags = 0x80, kExtendedPidsPorts = 0x100, kExportPtrTag = 0x200,
                   kBitBinaries = 0x400, kNewFloats = 0x800, kSmallAtomTags = 0x4000, kUtf8Atoms = 0x10000,
                   kMapTag = 0x20000, kBigCreation = 0x40000, kHandshake23 = 0x1000000, kUnlinkId = 0x2000000,
                   kMandatory25Digest = 0x4000000, kV4Nc = 0x400000000ull;
/// What this node offers: a hidden node (no kPublished) that reads every term format its reader
/// knows and supports monitors. Fragments and atom caches are not offered, so every message
/// arrives whole, without a distribution header.
constexpr uint64_t kOffered = kExtendedReferences | kDistMonitor | kFunTags | kDistMonitorName | kNewFunTags |
                              kExtendedPidsPorts | kExportPtrTag | kBitBinaries | kNewFloats | kSmallAtomTags |
                              kUtf8Atoms | kMapTag | kBigCreation | kHandshake23 | kUnlinkId | kMandatory25Digest |
                              kV4Nc;
/// What a peer must offer (OTP 25's mandatory set).
constexpr uint64_t kRequired = kExtendedReferences | kFunTags | kNewFunTags | kExtendedPidsPorts | kExportPtrTag |
                               kBitBinaries | kNewFloats | kUtf8Atoms | kMapTag | kBigCreation | kHandshake23;
}  // namespace dflag

struct HandshakeParams {
  std::string node_name;  ///< our full node name
  uint32_t creation = 0;  ///< our creation
  std::string cookie;     ///< the shared secret
};

struct HandshakeResult {
  std::string peer;       ///< the peer's node name
  uint64_t peer_flags = 0;
};

/// Run the accepting side of the handshake over `transport` (the socket `fd` itself, or a TLS
/// session over it whose own handshake is done), until `deadline`. ErrorKind::kBadArg with a
/// reason on any failure; the caller closes the socket.
Result<HandshakeResult> AcceptHandshake(Transport& transport, int fd, const HandshakeParams& params,
                                        std::chrono::steady_clock::time_point deadline);
/// The same on the plain socket `fd`, within `timeout`.
Result<HandshakeResult> AcceptHandshake(int fd, const HandshakeParams& params, std::chrono::milliseconds timeout);

/// Run the initiating side (this node dials `expected_peer`, a BEAM) over `transport` until
/// `deadline`: send_name with this node's flags, recv_status, the peer's challenge, our challenge
/// reply, the peer's ack (its digest of our challenge, checked: a peer without the cookie is
/// refused too). ErrorKind::kBadArg with a reason on any failure (the peer's status, such as
/// "not_allowed", is named); the caller closes the socket.
Result<HandshakeResult> InitiateHandshake(Transport& transport, int fd, const HandshakeParams& params,
                                          const std::string& expected_peer,
                                          std::chrono::steady_clock::time_point deadline);
/// The same on the plain socket `fd`, within `timeout`.
Result<HandshakeResult> InitiateHandshake(int fd, const HandshakeParams& params, const std::string& expected_peer,
                                          std::chrono::milliseconds timeout);

/// The digest of the handshake: MD5(cookie ++ decimal(challenge)).
std::string ChallengeDigest(const std::string& cookie, uint32_t challenge);

}  // namespace mure
