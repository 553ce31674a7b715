// Status: how the core answers bad input from users (files, options, arrays from JS).
// An empty message means success. The core never throws, prints or exits; callers decide what to show.
#pragma once
#include <string>
#include <utility>

namespace ll {

class Status {
 public:
  Status() = default;
  static Status ok_status() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = message.empty() ? std::string("unknown error") : std::move(message);
    return s;
  }
  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }
  // Prefix context ("train-images-idx3-ubyte: ") onto an error; a success stays a success.
  Status with_context(const std::string& prefix) const {
    return ok() ? *this : error(prefix + message_);
  }

 private:
  std::string message_;
};

}  // namespace ll
