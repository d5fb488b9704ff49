#include "proto/term.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace mure::proto {

namespace tag {
constexpr uint8_t kVersion = 131;
constexpr uint8_t kNewFloat = 70, kBitBinary = 77, kCompressed = 80, kNewPid = 88, kNewPort = 89,
                  kNewerRef = 90, kSmallInt = 97, kInt = 98, kFloat = 99, kAtom = 100, kRef = 101,
                  kPort = 102, kPid = 103, kSmallTuple = 104, kLargeTuple = 105, kNil = 106, kString = 107,
                  kList = 108, kBinary = 109, kSmallBig = 110, kLargeBig = 111, kNewFun = 112, kExport = 113,
                  kNewRef = 114, kSmallAtom = 115, kMap = 116, kAtomUtf8 = 118, kSmallAtomUtf8 = 119,
                  kV4Port = 120;
}  // namespace tag

class TermParser {
 public:
  TermParser(std::string_view buf, size_t pos, TermTree& tree, const Limits& limits)
      : p_(reinterpret_cast<const uint8_t*>(buf.data())), n_(buf.size()), pos_(pos), tree_(tree), limits_(limits) {}

  Status Term(uint32_t depth);
  size_t pos() const { return pos_; }

 private:
  Status Fail(const std::string& what) const {
    return Status::BadArg("malformed term at byte " + std::to_string(pos_) + ": " + what);
  }
  bool Has(uint64_t k) const { return pos_ <= n_ && k <= n_ - pos_; }
  uint8_t U8() { return p_[pos_++]; }
  uint16_t U16() { uint16_t v = static_cast<uint16_t>(p_[pos_] << 8 | p_[pos_ + 1]); pos_ += 2; return v; }
  uint32_t U32() {
    uint32_t v = static_cast<uint32_t>(p_[pos_]) << 24 | static_cast<uint32_t>(p_[pos_ + 1]) << 16 |
                 static_cast<uint32_t>(p_[pos_ + 2]) << 8 | p_[pos_ + 3];
    pos_ += 4;
    return v;
  }
  std::string_view Bytes(size_t k) {
    std::string_view v(reinterpret_cast<const char*>(p_ + pos_), k);
    pos_ += k;
    return v;
  }
  /// An atom encoding (used for node names inside pids, refs and ports too).
  Status AtomName(std::string_view& name);
  Status Children(uint32_t index, uint64_t count, uint32_t depth);

  const uint8_t* p_;
  size_t n_;
  size_t pos_;
  TermTree& tree_;
  const Limits& limits_;
};

Status TermParser::AtomName(std::string_view& name) {
  if (!Has(1)) return Fail("truncated atom");
  uint8_t t = U8();
  size_t len = 0;
  if (t == tag::kSmallAtomUtf8 || t == tag::kSmallAtom) {
    if (!Has(1)) return Fail("truncated atom length");
    len = U8();
  } else if (t == tag::kAtomUtf8 || t == tag::kAtom) {
    if (!Has(2)) return Fail("truncated atom length");
    len = U16();
    if (len > 255 * 4) return Fail("atom longer than 255 characters");
  } else {
    return Fail("expected an atom, found tag " + std::to_string(t));
  }
  if (!Has(len)) return Fail("atom length " + std::to_string(len) + " past the end");
  name = Bytes(len);
  return Status::Ok();
}

Status TermParser::Children(uint32_t index, uint64_t count, uint32_t depth) {
  // Each child takes at least one byte: a count the remaining bytes cannot hold is a lie.
  if (!Has(count)) return Fail("count " + std::to_string(count) + " exceeds the remaining bytes");
  for (uint64_t i = 0; i < count; ++i) MURE_RETURN_IF_ERROR(Term(depth + 1));
  tree_.nodes_[index].count = static_cast<uint32_t>(count);
  return Status::Ok();
}

Status TermParser::Term(uint32_t depth) {
  if (depth > limits_.max_depth) return Fail("nesting deeper than " + std::to_string(limits_.max_depth));
  if (tree_.nodes_.size() >= limits_.max_terms) return Fail("more than " + std::to_string(limits_.max_terms) + " terms");
  if (!Has(1)) return Fail("truncated: expected a term");
  const size_t start = pos_;
  const uint32_t index = static_cast<uint32_t>(tree_.nodes_.size());
  tree_.nodes_.emplace_back();
  auto node = [&]() -> mure::proto::Term& { return tree_.nodes_[index]; };
  const uint8_t t = U8();
  switch (t) {
    case tag::kSmallInt:
      if (!Has(1)) return Fail("truncated integer");
      node().kind = TermKind::kInteger;
      node().integer = U8();
      break;
    case tag::kInt:
      if (!Has(4)) return Fail("truncated integer");
      node().kind = TermKind::kInteger;
      node().integer = static_cast<int32_t>(U32());
      break;
    case tag::kSmallBig:
    case tag::kLargeBig: {
      uint64_t len = 0;
      if (t == tag::kSmallBig) {
        if (!Has(2)) return Fail("truncated big integer");
        len = U8();
      } else {
        if (!Has(5)) return Fail("truncated big integer");
        len = U32();
      }
      uint8_t sign = U8();
      if (!Has(len)) return Fail("big integer of " + std::to_string(len) + " bytes past the end");
      std::string_view digits = Bytes(len);
      uint64_t mag = 0;
      bool fits = true;
      for (size_t i = 0; i < digits.size(); ++i) {
        uint8_t d = static_cast<uint8_t>(digits[i]);
        if (d == 0) continue;
        if (i >= 8) { fits = false; break; }
        mag |= static_cast<uint64_t>(d) << (8 * i);
      }
      if (fits && sign == 0 && mag <= static_cast<uint64_t>(INT64_MAX)) {
        node().kind = TermKind::kInteger;
        node().integer = static_cast<int64_t>(mag);
      } else if (fits && sign != 0 && mag <= static_cast<uint64_t>(INT64_MAX) + 1) {
        node().kind = TermKind::kInteger;
        node().integer = static_cast<int64_t>(0 - mag);
      } else {
        node().kind = TermKind::kBigInteger;
      }
      break;
    }
    case tag::kNewFloat: {
      if (!Has(8)) return Fail("truncated float");
      uint64_t bits = static_cast<uint64_t>(U32()) << 32;
      bits |= U32();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      node().kind = TermKind::kFloat;
      node().real = d;
      break;
    }
    case tag::kFloat: {
      if (!Has(31)) return Fail("truncated float");
      char text[32];
      std::memcpy(text, p_ + pos_, 31);
      text[31] = '\0';
      pos_ += 31;
      node().kind = TermKind::kFloat;
      node().real = std::strtod(text, nullptr);
      break;
    }
    case tag::kAtom:
    case tag::kSmallAtom:
    case tag::kAtomUtf8:
    case tag::kSmallAtomUtf8: {
      pos_ = start;
      std::string_view name;
      MURE_RETURN_IF_ERROR(AtomName(name));
      node().kind = TermKind::kAtom;
      node().data = name;
      break;
    }
    case tag::kSmallTuple:
    case tag::kLargeTuple: {
      uint64_t arity;
      if (t == tag::kSmallTuple) {
        if (!Has(1)) return Fail("truncated tuple");
        arity = U8();
      } else {
        if (!Has(4)) return Fail("truncated tuple");
        arity = U32();
      }
      node().kind = TermKind::kTuple;
      MURE_RETURN_IF_ERROR(Children(index, arity, depth));
      break;
    }
    case tag::kNil:
      node().kind = TermKind::kNil;
      break;
    case tag::kString: {
      if (!Has(2)) return Fail("truncated string");
      uint16_t len = U16();
      if (!Has(len)) return Fail("string of " + std::to_string(len) + " bytes past the end");
      node().kind = TermKind::kString;
      node().data = Bytes(len);
      node().count = len;
      break;
    }
    case tag::kList: {
      if (!Has(4)) return Fail("truncated list");
      uint64_t len = U32();
      node().kind = TermKind::kList;
      MURE_RETURN_IF_ERROR(Children(index, len + 1, depth));  // the elements, then the tail
      uint32_t last = index + 1;
      for (uint64_t i = 0; i < len; ++i) last = tree_.nodes_[last].end;
      if (tree_.nodes_[last].kind == TermKind::kNil) {
        tree_.nodes_.pop_back();  // a proper list: its children are exactly its elements
        node().count = static_cast<uint32_t>(len);
      } else {
        node().improper = true;
      }
      break;
    }
    case tag::kBinary: {
      if (!Has(4)) return Fail("truncated binary");
      uint32_t len = U32();
      if (!Has(len)) return Fail("binary of " + std::to_string(len) + " bytes past the end");
      node().kind = TermKind::kBinary;
      node().data = Bytes(len);
      break;
    }
    case tag::kBitBinary: {
      if (!Has(5)) return Fail("truncated bitstring");
      uint32_t len = U32();
      U8();
      if (!Has(len)) return Fail("bitstring of " + std::to_string(len) + " bytes past the end");
      node().kind = TermKind::kBitBinary;
      node().data = Bytes(len);
      break;
    }
    case tag::kNewPid:
    case tag::kPid: {
      std::string_view name;
      MURE_RETURN_IF_ERROR(AtomName(name));
      size_t rest = t == tag::kNewPid ? 12 : 9;
      if (!Has(rest)) return Fail("truncated pid");
      pos_ += rest;
      node().kind = TermKind::kPid;
      node().node = name;
      break;
    }
    case tag::kNewPort:
    case tag::kPort:
    case tag::kV4Port: {
      std::string_view name;
      MURE_RETURN_IF_ERROR(AtomName(name));
      size_t rest = t == tag::kNewPort ? 8 : t == tag::kPort ? 5 : 12;
      if (!Has(rest)) return Fail("truncated port");
      pos_ += rest;
      node().kind = TermKind::kPort;
      node().node = name;
      break;
    }
    case tag::kNewerRef:
    case tag::kNewRef: {
      if (!Has(2)) return Fail("truncated reference");
      uint16_t words = U16();
      if (words == 0 || words > 5) return Fail("reference with " + std::to_string(words) + " words");
      std::string_view name;
      MURE_RETURN_IF_ERROR(AtomName(name));
      size_t rest = (t == tag::kNewerRef ? 4 : 1) + 4u * words;
      if (!Has(rest)) return Fail("truncated reference");
      pos_ += rest;
      node().kind = TermKind::kRef;
      node().node = name;
      break;
    }
    case tag::kRef: {
      std::string_view name;
      MURE_RETURN_IF_ERROR(AtomName(name));
      if (!Has(5)) return Fail("truncated reference");
      pos_ += 5;
      node().kind = TermKind::kRef;
      node().node = name;
      break;
    }
    case tag::kMap: {
      if (!Has(4)) return Fail("truncated map");
      uint64_t pairs = U32();
      node().kind = TermKind::kMap;
      MURE_RETURN_IF_ERROR(Children(index, pairs * 2, depth));
      break;
    }
    case tag::kNewFun: {
      if (!Has(4)) return Fail("truncated fun");
      uint32_t size = U32();
      if (size < 4 || !Has(size - 4)) return Fail("fun of " + std::to_string(size) + " bytes past the end");
      pos_ += size - 4;
      node().kind = TermKind::kFun;
      break;
    }
    case tag::kExport: {
      node().kind = TermKind::kExport;
      MURE_RETURN_IF_ERROR(Children(index, 3, depth));
      break;
    }
    case tag::kCompressed:
      return Fail("compressed terms are refused");
    default:
      return Fail("unsupported tag " + std::to_string(t));
  }
  node().end = static_cast<uint32_t>(tree_.nodes_.size());
  node().raw = std::string_view(reinterpret_cast<const char*>(p_ + start), pos_ - start);
  return Status::Ok();
}

uint32_t TermTree::Child(uint32_t n, uint32_t i) const {
  uint32_t c = n + 1;
  while (i-- > 0) c = nodes_[c].end;
  return c;
}

bool TermTree::IsAtom(uint32_t n, std::string_view name) const {
  return n < nodes_.size() && nodes_[n].kind == TermKind::kAtom && nodes_[n].data == name;
}

Result<size_t> ParseTerm(std::string_view buf, size_t offset, TermTree& tree, const Limits& limits) {
  TermParser parser(buf, offset, tree, limits);
  Status s = parser.Term(0);
  if (!s.ok()) return s;
  return parser.pos();
}

Result<size_t> ParseExternal(std::string_view buf, size_t offset, TermTree& tree, const Limits& limits) {
  if (offset >= buf.size() || static_cast<uint8_t>(buf[offset]) != tag::kVersion) {
    return Status::BadArg("malformed term at byte " + std::to_string(offset) + ": missing version byte 131");
  }
  return ParseTerm(buf, offset + 1, tree, limits);
}

// ---- writer -------------------------------------------------------------------------------

void TermWriter::U16(uint16_t v) {
  U8(static_cast<uint8_t>(v >> 8));
  U8(static_cast<uint8_t>(v));
}
void TermWriter::U32(uint32_t v) {
  U8(static_cast<uint8_t>(v >> 24));
  U8(static_cast<uint8_t>(v >> 16));
  U8(static_cast<uint8_t>(v >> 8));
  U8(static_cast<uint8_t>(v));
}
TermWriter& TermWriter::Version() { U8(tag::kVersion); return *this; }
TermWriter& TermWriter::Tuple(uint32_t arity) {
  if (arity < 256) { U8(tag::kSmallTuple); U8(static_cast<uint8_t>(arity)); }
  else { U8(tag::kLargeTuple); U32(arity); }
  return *this;
}
TermWriter& TermWriter::List(uint32_t n) { U8(tag::kList); U32(n); return *this; }
TermWriter& TermWriter::Nil() { U8(tag::kNil); return *this; }
TermWriter& TermWriter::Map(uint32_t pairs) { U8(tag::kMap); U32(pairs); return *this; }
MapWriter::MapWriter(TermWriter& w) : w_(w), header_(w.out_.size()) { w_.Map(0); }
MapWriter::~MapWriter() {
  for (int i = 0; i < 4; ++i) w_.out_[header_ + 1 + i] = static_cast<char>(pairs_ >> (24 - 8 * i));
}
TermWriter& TermWriter::Atom(std::string_view name) {
  if (name.size() < 256) { U8(tag::kSmallAtomUtf8); U8(static_cast<uint8_t>(name.size())); }
  else { U8(tag::kAtomUtf8); U16(static_cast<uint16_t>(name.size())); }
  out_.append(name);
  return *this;
}
TermWriter& TermWriter::Int(int64_t v) {
  if (v >= 0 && v < 256) { U8(tag::kSmallInt); U8(static_cast<uint8_t>(v)); return *this; }
  if (v >= INT32_MIN && v <= INT32_MAX) { U8(tag::kInt); U32(static_cast<uint32_t>(static_cast<int32_t>(v))); return *this; }
  uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  U8(tag::kSmallBig);
  size_t pos = out_.size();
  U8(0);
  U8(v < 0 ? 1 : 0);
  uint8_t n = 0;
  while (mag) { U8(static_cast<uint8_t>(mag & 0xff)); mag >>= 8; ++n; }
  out_[pos] = static_cast<char>(n);
  return *this;
}
TermWriter& TermWriter::UInt(uint64_t v) {
  if (v <= static_cast<uint64_t>(INT64_MAX)) return Int(static_cast<int64_t>(v));
  U8(tag::kSmallBig); U8(8); U8(0);
  for (int i = 0; i < 8; ++i) { U8(static_cast<uint8_t>(v & 0xff)); v >>= 8; }
  return *this;
}
TermWriter& TermWriter::Double(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  U8(tag::kNewFloat);
  U32(static_cast<uint32_t>(bits >> 32));
  U32(static_cast<uint32_t>(bits));
  return *this;
}
TermWriter& TermWriter::Binary(std::string_view bytes) {
  BinaryHeader(bytes.size());
  out_.append(bytes);
  return *this;
}
TermWriter& TermWriter::BinaryHeader(uint64_t len) { U8(tag::kBinary); U32(static_cast<uint32_t>(len)); return *this; }
TermWriter& TermWriter::Raw(std::string_view encoded) { out_.append(encoded); return *this; }

}  // namespace mure::proto
