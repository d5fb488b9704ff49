// mure — errors as values.
//
// A Status is what every fallible function returns at a subsystem boundary. Its kind maps one to
// one onto the `{:error, {kind, message}}` reply of protocol v1 (docs/protocol.md), so an error
// found deep in validation reaches the Elixir caller with its wording intact.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mure {

/// The error kinds of protocol v1; `name()` gives the atom sent on the wire.
enum class ErrorKind {
  kBadArg,
  kUnknownOp,
  kBadVersion,
  kBadType,
  kBadShape,
  kSizeMismatch,
  kShapeMismatch,
  kTypeMismatch,
  kUnknownHandle,
  kOutOfRange,
  kOutOfMemory,
  kMessageTooLarge,
  kUnsupported,
  kOverloaded,
  kInternal,
};

/// The atom name of an error kind (e.g. "out_of_memory").
std::string_view ErrorKindName(ErrorKind kind);

/// Success, or an error kind with a message a person can act on. Cheap to move.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorKind kind, std::string message) : ok_(false), kind_(kind), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status BadArg(std::string m) { return {ErrorKind::kBadArg, std::move(m)}; }
  static Status Internal(std::string m) { return {ErrorKind::kInternal, std::move(m)}; }

  bool ok() const { return ok_; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  /// "kind: message", for logs.
  std::string ToString() const;

 private:
  bool ok_ = true;
  ErrorKind kind_ = ErrorKind::kInternal;
  std::string message_;
};

/// A value or the Status explaining why there is none (an `expected`-like type).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: must not be ok
  bool ok() const { return std::holds_alternative<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const Status& status() const { return std::get<Status>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace mure

/// Evaluate a Status-returning expression and return it from the caller when it failed.
#define MURE_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::mure::Status mure_status_ = (expr);       \
    if (!mure_status_.ok()) return mure_status_; \
  } while (0)
