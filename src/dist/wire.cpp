#include "dist/wire.h"

#include "proto/term.h"

namespace mure {

std::string NodeIdentity::MakeRef() {
  uint64_t n = counter_.fetch_add(1);
  std::string out;
  out.push_back(static_cast<char>(90));  // NEWER_REFERENCE_EXT
  out.push_back(0);
  out.push_back(3);                      // three id words
  proto::TermWriter w(out);
  w.Atom(node_);
  auto u32 = [&](uint32_t v) {
    out.push_back(static_cast<char>(v >> 24));
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v));
  };
  u32(creation_);
  u32(static_cast<uint32_t>(n & 0x3ffff));
  u32(static_cast<uint32_t>(n >> 18));
  u32(static_cast<uint32_t>(n >> 50));
  return out;
}

}  // namespace mure
