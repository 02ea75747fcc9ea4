#pragma once
// RAII owner of an instantiated CUDA graph captured from a stream: many small launches
// replayed as one (a decode step of the decoder is hundreds of kernels).
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_check.hpp"

namespace uq::cuda {

class CapturedGraph {
 public:
  CapturedGraph() = default;
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  ~CapturedGraph() { reset(); }

  bool ready() const { return exec_ != nullptr; }
  // Captures what `enqueue()` puts on `stream` (nothing runs) and instantiates it.
  template <class Enqueue>
  void capture(cudaStream_t stream, Enqueue&& enqueue) {
    reset();
    UQ_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream, &broken);  // leave the stream usable; the error propagates
      if (broken != nullptr) cudaGraphDestroy(broken);
      throw;
    }
    UQ_CUDA_CHECK(cudaStreamEndCapture(stream, &graph_));
    UQ_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  }
  // Edges that let a kernel start while the one before it drains (captured launches with
  // programmatic dependent launch, pdl_launch.hpp); 0 when every kernel waits for the last.
  std::size_t programmatic_edges() const {
    std::size_t count = 0;
    UQ_CUDA_CHECK(cudaGraphGetEdges(graph_, nullptr, nullptr, nullptr, &count));
    std::vector<cudaGraphNode_t> from(count), to(count);
    std::vector<cudaGraphEdgeData> edges(count);
    UQ_CUDA_CHECK(cudaGraphGetEdges(graph_, from.data(), to.data(), edges.data(), &count));
    return static_cast<std::size_t>(std::count_if(edges.begin(), edges.end(), [](const auto& e) {
      return e.type == cudaGraphDependencyTypeProgrammatic;
    }));
  }
  void launch(cudaStream_t stream) const { UQ_CUDA_CHECK(cudaGraphLaunch(exec_, stream)); }
  void reset() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
    if (graph_ != nullptr) cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
  }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace uq::cuda
