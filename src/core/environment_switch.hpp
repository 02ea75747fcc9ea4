#pragma once
// A process-wide on/off setting whose first value comes from an environment variable and which
// tests and benchmarks may change at run time (lock-free reads and writes).
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace uq {

class EnvironmentSwitch {
 public:
  // default_on: on unless `variable` is "0"; otherwise off unless it is "1".
  EnvironmentSwitch(const char* variable, bool default_on)
      : on_(initial_value(variable, default_on)) {}
  EnvironmentSwitch(const EnvironmentSwitch&) = delete;
  EnvironmentSwitch& operator=(const EnvironmentSwitch&) = delete;

  bool on() const { return on_.load(std::memory_order_relaxed); }
  void set(bool on) { on_.store(on, std::memory_order_relaxed); }

 private:
  static bool initial_value(const char* variable, bool default_on) {
    const char* value = std::getenv(variable);
    if (value == nullptr) return default_on;
    return default_on ? std::strcmp(value, "0") != 0 : std::strcmp(value, "1") == 0;
  }

  std::atomic<bool> on_;
};

}  // namespace uq
