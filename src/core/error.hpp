#pragma once
// The one error type of the library. Its message names the culprit (file,
// tensor, option); the `uq` command prints it as "error: <message>".
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace uq {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// fail("tensor '", name, "' in ", path, ": shape mismatch") throws uq::Error.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream message;
  (message << ... << std::forward<Parts>(parts));
  throw Error(message.str());
}

}  // namespace uq
