// Helpers shared by the C++ tests of the distribution handshake (handshake_test, dialout_test):
// big-endian fields, 2-byte-length handshake messages over a socket, a socket pair, and the
// node's command line parsed from a list of arguments (also types_config_test).
#pragma once

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mure/config.h"

namespace mure::testing {

inline void PutBe(std::string& s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}

inline uint64_t Be(const std::string& s, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<uint8_t>(s[off + static_cast<size_t>(i)]);
  return v;
}

/// Reads exactly `n` bytes; the test fails at end of stream.
inline void ReadN(int fd, void* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, static_cast<char*>(p) + got, n - got);
    REQUIRE(r > 0);
    got += static_cast<size_t>(r);
  }
}

/// A handshake message: 2-byte big-endian length, then `body`.
inline void SendMsg(int fd, const std::string& body) {
  std::string out;
  PutBe(out, body.size(), 2);
  out += body;
  REQUIRE(::write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size()));
}

inline std::string RecvMsg(int fd) {
  uint8_t len[2];
  ReadN(fd, len, 2);
  std::string body(static_cast<size_t>(len[0] << 8 | len[1]), '\0');
  ReadN(fd, body.data(), body.size());
  return body;
}

/// A connected AF_UNIX stream pair: the node's end and its peer's.
struct Pair {
  int node = -1, peer = -1;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    node = fds[0];
    peer = fds[1];
  }
  ~Pair() {
    ::close(node);
    ::close(peer);
  }
};

/// The node's configuration from `mure_node ARGS...`.
inline Result<Config> Args(std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "mure_node";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return ConfigFromArgs(static_cast<int>(argv.size()), argv.data());
}

}  // namespace mure::testing
