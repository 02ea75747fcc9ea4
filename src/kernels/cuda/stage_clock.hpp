#pragma once
// Device timestamps between the named stages of a forward (`uq bench --profile-decode`): the
// forward calls mark(stage) after each stage's launches; the event recorded there ends that
// stage and starts the next. Recording works eagerly and inside a CUDA graph capture (event
// record nodes), so a captured step is timed without launch gaps. After each run, accumulate()
// adds every stage's elapsed time; totals() gives them per run, in first-seen order.
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/stream.hpp"

namespace uq::cuda {

struct StageTime {
  std::string stage;
  int calls = 0;              // marks of this stage per run (e.g. once per layer)
  double microseconds = 0.0;  // per run, all calls together
};

class StageClock {
 public:
  // Records the event that every later stage is measured from; call before the first stage.
  void start(cudaStream_t stream);
  void mark(const std::string& stage, cudaStream_t stream);
  // Adds the last run's elapsed times (its events must be complete: synchronize first).
  void accumulate();
  std::vector<StageTime> totals() const;

 private:
  Event& event(std::size_t index);
  std::vector<std::unique_ptr<Event>> events_;
  std::vector<std::string> stages_;  // stage ended by events_[i + 1]
  std::size_t recorded_ = 0;         // events recorded in the current run
  int runs_ = 0;
  std::vector<StageTime> totals_;
};

}  // namespace uq::cuda
