#include "kernels/cuda/stage_clock.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {
namespace {

// External: inside a stream capture the record becomes an event record node of the graph
// (a plain record there only orders the captured work and cannot be waited on afterwards).
void record(Event& event, cudaStream_t stream) {
  UQ_CUDA_CHECK(cudaEventRecordWithFlags(event.get(), stream, cudaEventRecordExternal));
}

}  // namespace

Event& StageClock::event(std::size_t index) {
  while (events_.size() <= index) events_.push_back(std::make_unique<Event>());
  return *events_[index];
}

void StageClock::start(cudaStream_t stream) {
  recorded_ = 0;
  stages_.clear();
  record(event(recorded_++), stream);
}

void StageClock::mark(const std::string& stage, cudaStream_t stream) {
  if (recorded_ == 0) fail("stage clock: mark('", stage, "') before start()");
  record(event(recorded_++), stream);
  stages_.push_back(stage);
}

void StageClock::accumulate() {
  std::vector<StageTime> run;
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const double us = 1000.0 * event(i + 1).elapsed_ms_since(event(i));
    auto found = std::find_if(totals_.begin(), totals_.end(),
                              [&](const StageTime& t) { return t.stage == stages_[i]; });
    if (found == totals_.end()) {
      totals_.push_back({stages_[i], 0, 0.0});
      found = totals_.end() - 1;
    }
    if (runs_ == 0) ++found->calls;
    found->microseconds += us;
  }
  ++runs_;
}

std::vector<StageTime> StageClock::totals() const {
  std::vector<StageTime> result = totals_;
  for (auto& t : result) t.microseconds /= std::max(runs_, 1);
  return result;
}

}  // namespace uq::cuda
