// Result<T>: the outcome of an operation that yields a value.
//
// Expected failures are never exceptions in libportd: an operation returns a
// portd::Status, or a Result carrying a Status and, on success, a value. A few
// failures come with a value too (a receive refused with MACH_RCV_TOO_LARGE
// reports the size the message needs), so has_value() and ok() are separate
// questions. detail() is a human explanation when there is one: the errno text
// of a failed connect, or the name of the quota that refused a request.
//
// Reading the value of a Result that has none is a bug in the caller, not an
// expected failure: it throws std::bad_optional_access (as
// std::optional::value does) rather than reading garbage.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

#include "portd/status.h"

namespace portd {

template <typename T>
class [[nodiscard]] Result {
 public:
  // Success with a value.
  Result(T value) : value_(std::move(value)) {}
  // Failure without a value.
  Result(Status status, std::string detail = {}) : status_(status), detail_(std::move(detail)) {
    assert(status != Status::kSuccess);
  }
  // A status that comes with a value (e.g. MACH_RCV_TOO_LARGE and the size).
  static Result with_value(Status status, T value) {
    Result r(std::move(value));
    r.status_ = status;
    return r;
  }

  bool ok() const noexcept { return status_ == Status::kSuccess; }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return status_; }
  const std::string& detail() const noexcept { return detail_; }

  bool has_value() const noexcept { return value_.has_value(); }
  T& value() & { return value_.value(); }
  const T& value() const& { return value_.value(); }
  T&& value() && { return std::move(value_.value()); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  Status status_ = Status::kSuccess;
  std::optional<T> value_;
  std::string detail_;
};

}  // namespace portd
