#pragma once
// Writing a whole output directory so that it appears complete or not at all:
// files go into "<dir>.tmp-<pid>" next to it, and commit() swaps it in (an
// existing directory of that name is replaced only once the new one is whole).
// Staging directories of processes that died meanwhile are removed on the way.
#include <filesystem>

namespace uq {

class StagedDirectory {
 public:
  // Creates the staging directory; throws uq::Error naming `final_path`.
  explicit StagedDirectory(std::filesystem::path final_path);
  // Removes the staging directory unless commit() succeeded.
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // Where to write the files.
  const std::filesystem::path& path() const { return staging_; }
  const std::filesystem::path& final_path() const { return final_; }
  void commit();

 private:
  std::filesystem::path final_;
  std::filesystem::path staging_;
  bool committed_ = false;
};

}  // namespace uq
