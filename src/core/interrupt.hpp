#pragma once
// Ctrl-C and SIGTERM during a long write: the first signal only raises a flag,
// and the work loops call throw_if_interrupted() so that uq::Error unwinds
// through the destructors that remove half-written output (staged
// directories, temporary files). A second signal ends the process at once.
namespace uq {

// Installs the SIGINT/SIGTERM handlers (the `uq` command does, once).
void install_interrupt_handlers();
// Throws uq::Error "interrupted by SIGINT" (or SIGTERM) once a signal came.
void throw_if_interrupted();

}  // namespace uq
