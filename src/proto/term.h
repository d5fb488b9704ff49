// mure — a bounds-checked reader and a writer for Erlang's external term format.
//
// The reader never trusts a length: every count and size is checked against the bytes that
// remain before anything is read, depth and the number of terms are capped, and compressed terms
// are refused. It builds a flat, pre-order tree of views into the caller's buffer (no copies), so
// a binary payload can be used in place. No ei decoder ever sees client bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mure/status.h"

namespace mure::proto {

enum class TermKind : uint8_t {
  kInteger,   ///< fits in int64 (small, 32-bit or big integer that fits)
  kBigInteger,///< a big integer outside int64
  kFloat,
  kAtom,
  kTuple,
  kList,      ///< proper or improper (see Term::improper); `[]` is kNil
  kNil,
  kString,    ///< STRING_EXT: a list of bytes
  kBinary,
  kBitBinary,
  kPid,
  kRef,
  kPort,
  kMap,
  kFun,       ///< a fun's encoding, kept only as bytes; never called
  kExport,    ///< fun M:F/A; never called
};

/// One term of a parsed tree. Children follow their parent in pre-order.
struct Term {
  TermKind kind = TermKind::kNil;
  bool improper = false;  ///< list whose last child is a non-nil tail
  uint32_t count = 0;     ///< children: tuple arity, list elements (+ tail), 2 x map pairs
  uint32_t end = 0;       ///< index one past this term's subtree
  int64_t integer = 0;    ///< kInteger
  double real = 0;        ///< kFloat
  std::string_view data;  ///< atom name, binary or string bytes
  std::string_view node;  ///< pid/ref/port: the node name
  std::string_view raw;   ///< the whole encoding of this term, to echo it back unchanged
};

/// Caps the reader enforces besides the buffer's end.
struct Limits {
  uint32_t max_depth = 64;        ///< nesting of tuples/lists/maps
  uint32_t max_terms = 100000;  ///< terms in one tree
};

/// A parsed term (or several, side by side) with child navigation.
class TermTree {
 public:
  const Term& operator[](uint32_t i) const { return nodes_[i]; }
  uint32_t size() const { return static_cast<uint32_t>(nodes_.size()); }
  /// The i-th child (0-based) of node `n`; requires i < count.
  uint32_t Child(uint32_t n, uint32_t i) const;
  /// True when node `n` is the atom `name`.
  bool IsAtom(uint32_t n, std::string_view name) const;
  void Clear() { nodes_.clear(); }

 private:
  friend class TermParser;
  std::vector<Term> nodes_;
};

/// Parse one term (no version byte) at `offset`, appending it to `tree`. Returns the offset just
/// past it, or kBadArg naming the problem and the byte offset.
Result<size_t> ParseTerm(std::string_view buf, size_t offset, TermTree& tree, const Limits& limits = {});

/// Parse the version byte 131 and then one term, as ParseTerm.
Result<size_t> ParseExternal(std::string_view buf, size_t offset, TermTree& tree, const Limits& limits = {});

/// Appends external-format terms to a byte string. Only mure's own values go through it.
class TermWriter {
 public:
  explicit TermWriter(std::string& out) : out_(out) {}
  TermWriter& Version();
  TermWriter& Tuple(uint32_t arity);
  TermWriter& List(uint32_t n);  ///< followed by n elements and a tail (usually Nil())
  TermWriter& Nil();
  TermWriter& Map(uint32_t pairs);
  TermWriter& Atom(std::string_view name);
  TermWriter& Bool(bool b) { return Atom(b ? "true" : "false"); }
  TermWriter& Int(int64_t v);
  TermWriter& UInt(uint64_t v);
  TermWriter& Double(double v);
  TermWriter& Binary(std::string_view bytes);
  /// A binary's header only; the caller sends `len` payload bytes after it.
  TermWriter& BinaryHeader(uint64_t len);
  /// Bytes that already are one encoded term (a pid or ref read off the wire).
  TermWriter& Raw(std::string_view encoded);

 private:
  friend class MapWriter;
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  std::string& out_;
};

/// Writes a map whose pair count is the number of Key() calls: the header goes out with a
/// placeholder that the destructor fills in, so adding or removing a field cannot leave a wrong
/// arity. A nested map is another MapWriter on the same TermWriter, after its key.
class MapWriter {
 public:
  explicit MapWriter(TermWriter& w);
  MapWriter(const MapWriter&) = delete;
  MapWriter& operator=(const MapWriter&) = delete;
  ~MapWriter();
  /// The next pair's key, an atom; the caller writes the value next.
  TermWriter& Key(std::string_view atom) {
    ++pairs_;
    return w_.Atom(atom);
  }

 private:
  TermWriter& w_;
  size_t header_;
  uint32_t pairs_ = 0;
};

}  // namespace mure::proto
