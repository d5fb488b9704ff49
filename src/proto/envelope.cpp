// mure — the envelope of a request: who asked and how to answer (docs/protocol.md).
#include "proto/request.h"

namespace mure::proto {

std::optional<Envelope> ReadEnvelope(const TermTree& t, uint32_t root) {
  if (root >= t.size() || t[root].kind != TermKind::kTuple || t[root].count != 6) return std::nullopt;
  if (!t.IsAtom(t.Child(root, 0), "$mure")) return std::nullopt;
  uint32_t reply_to = t.Child(root, 2), ref = t.Child(root, 3);
  if (t[reply_to].kind != TermKind::kPid || t[ref].kind != TermKind::kRef) return std::nullopt;
  Envelope env;
  env.reply_to.assign(t[reply_to].raw);
  env.ref.assign(t[ref].raw);
  uint32_t version = t.Child(root, 1);
  env.version = t[version].kind == TermKind::kInteger ? t[version].integer : -1;
  uint32_t owner = t.Child(root, 4);
  if (t[owner].kind == TermKind::kPid) {
    env.owner.assign(t[owner].raw);
    env.owner_node.assign(t[owner].node);
  }
  env.request = t.Child(root, 5);
  return env;
}

std::string PidKey(std::string_view raw, std::string_view node) {
  size_t words = !raw.empty() && static_cast<uint8_t>(raw[0]) == 88 ? 12 : 9;  // NEW_PID_EXT : PID_EXT
  std::string key(node);
  key.push_back('/');
  if (raw.size() >= words) key.append(raw.substr(raw.size() - words));
  return key;
}

std::optional<Envelope> PeekEnvelope(std::string_view buf, size_t offset) {
  // 131, then SMALL_TUPLE_EXT of arity 6.
  if (buf.size() < offset + 3 || static_cast<uint8_t>(buf[offset]) != 131 ||
      static_cast<uint8_t>(buf[offset + 1]) != 104 || static_cast<uint8_t>(buf[offset + 2]) != 6) {
    return std::nullopt;
  }
  TermTree tree;
  Limits limits;
  limits.max_depth = 4;
  limits.max_terms = 64;
  uint32_t roots[5];
  size_t pos = offset + 3;
  for (int i = 0; i < 5; ++i) {
    roots[i] = tree.size();
    auto next = ParseTerm(buf, pos, tree, limits);
    if (!next.ok()) return std::nullopt;
    pos = *next;
  }
  if (!tree.IsAtom(roots[0], "$mure") || tree[roots[2]].kind != TermKind::kPid ||
      tree[roots[3]].kind != TermKind::kRef) {
    return std::nullopt;
  }
  Envelope env;
  env.version = tree[roots[1]].kind == TermKind::kInteger ? tree[roots[1]].integer : -1;
  env.reply_to.assign(tree[roots[2]].raw);
  env.ref.assign(tree[roots[3]].raw);
  if (tree[roots[4]].kind == TermKind::kPid) {
    env.owner.assign(tree[roots[4]].raw);
    env.owner_node.assign(tree[roots[4]].node);
  }
  return env;
}

Status CheckEnvelope(const TermTree&, uint32_t, const Envelope& env, std::string_view peer_node) {
  if (env.version != kProtocolVersion) {
    return Status(ErrorKind::kBadVersion, "this node speaks protocol version " + std::to_string(kProtocolVersion) +
                                              "; the request says " + std::to_string(env.version));
  }
  if (env.owner.empty()) return Status::BadArg("the owner (5th element of the envelope) must be a pid");
  if (env.owner_node != peer_node) {
    return Status::BadArg("the owner pid must live on the requesting node " + std::string(peer_node) + ", not " +
                          env.owner_node);
  }
  return Status::Ok();
}

}  // namespace mure::proto
