#include "core/interrupt.hpp"

#include <csignal>

#include "core/error.hpp"

namespace uq {
namespace {

volatile std::sig_atomic_t received_signal = 0;

extern "C" void remember_signal(int signal_number) {
  received_signal = signal_number;
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;  // the second signal takes the default action
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

void throw_if_interrupted() {
  const int signal_number = received_signal;
  if (signal_number != 0) {
    fail("interrupted by ", signal_number == SIGINT ? "SIGINT" : "SIGTERM",
         "; no output was written");
  }
}

}  // namespace uq
