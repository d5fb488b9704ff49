// mure — MD5 (RFC 1321), used only for the distribution handshake's challenge digests.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace mure {

/// The 16-byte MD5 digest of `data`.
std::array<uint8_t, 16> Md5(std::string_view data);

}  // namespace mure
