#include "mure/status.h"

namespace mure {

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kBadArg: return "badarg";
    case ErrorKind::kUnknownOp: return "unknown_op";
    case ErrorKind::kBadVersion: return "bad_version";
    case ErrorKind::kBadType: return "bad_type";
    case ErrorKind::kBadShape: return "bad_shape";
    case ErrorKind::kSizeMismatch: return "size_mismatch";
    case ErrorKind::kShapeMismatch: return "shape_mismatch";
    case ErrorKind::kTypeMismatch: return "type_mismatch";
    case ErrorKind::kUnknownHandle: return "unknown_handle";
    case ErrorKind::kOutOfRange: return "out_of_range";
    case ErrorKind::kOutOfMemory: return "out_of_memory";
    case ErrorKind::kMessageTooLarge: return "message_too_large";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kOverloaded: return "overloaded";
    case ErrorKind::kInternal: return "internal";
  }
  return "internal";
}

std::string Status::ToString() const {
  if (ok_) return "ok";
  return std::string(ErrorKindName(kind_)) + ": " + message_;
}

}  // namespace mure
