// Checkpoint directories: one model.safetensors, shards named by
// model.safetensors.index.json, or loose *.safetensors files.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kIndexName = "model.safetensors.index.json";
constexpr std::string_view kSingleName = "model.safetensors";

bool lies_within(const fs::path& path, const fs::path& root) {
  const auto [root_end, path_end] =
      std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

// Where a shard may really live: inside the checkpoint directory or, for a
// Hugging Face hub cache snapshot (<repo>/snapshots/<revision>, whose files are
// symlinks to ../../blobs/<hash>), inside that repository's blobs directory.
std::vector<fs::path> allowed_roots(const fs::path& directory) {
  std::error_code error;
  const fs::path real = fs::canonical(directory, error);
  if (error) fail(directory.string(), ": cannot resolve: ", error.message());
  std::vector<fs::path> roots{real};
  if (real.parent_path().filename() == "snapshots") {
    roots.push_back(real.parent_path().parent_path() / "blobs");
  }
  return roots;
}

// The path of a shard named by the index, refusing names that escape `directory`.
fs::path resolve_shard(const fs::path& directory, const std::vector<fs::path>& roots,
                       const fs::path& index_path, const std::string& shard) {
  const std::string where = index_path.string() + ": shard '" + shard + "'";
  const fs::path relative(shard);
  if (shard.empty()) fail(index_path.string(), ": empty shard file name");
  if (relative.is_absolute()) fail(where, " is an absolute path; shards must lie in the directory");
  for (const auto& part : relative) {
    if (part == "..") fail(where, " leaves the directory through '..'");
  }
  const fs::path full = directory / relative;
  std::error_code error;
  if (!fs::is_regular_file(full, error)) fail(where, " does not exist (or is not a file)");
  const fs::path real = fs::canonical(full, error);
  if (error) fail(where, ": cannot resolve: ", error.message());
  if (std::none_of(roots.begin(), roots.end(),
                   [&](const fs::path& root) { return lies_within(real, root); })) {
    fail(where, " resolves to ", real.string(), ", outside the checkpoint directory");
  }
  return full;
}

nlohmann::json read_index(const fs::path& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) fail(index_path.string(), ": cannot open");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) fail(index_path.string(), ": read failed");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    fail(index_path.string(), ": not valid JSON: ", error.what());
  }
  if (!index.is_object()) fail(index_path.string(), ": not a JSON object");
  const auto weight_map = index.find("weight_map");
  if (weight_map == index.end() || !weight_map->is_object()) {
    fail(index_path.string(), ": 'weight_map' is missing or not an object");
  }
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string()) {
      fail(index_path.string(), ": weight_map entry for tensor '", tensor, "' is not a string");
    }
  }
  return *weight_map;
}

std::vector<fs::path> loose_safetensors_files(const fs::path& directory) {
  std::vector<fs::path> files;
  std::error_code error;
  for (fs::directory_iterator item(directory, error), end; !error && item != end;
       item.increment(error)) {
    std::error_code type_error;
    if (item->path().extension() == ".safetensors" && item->is_regular_file(type_error)) {
      files.push_back(item->path());
    }
  }
  if (error) fail(directory.string(), ": cannot list: ", error.message());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) fail(path.string(), ": no such file or directory");
  Checkpoint checkpoint;
  checkpoint.path_ = path;
  const auto add = [&](std::shared_ptr<const SafetensorsFile> file) {
    const std::size_t slot = checkpoint.files_.size();
    for (const auto& name : file->names()) {
      const auto [existing, inserted] = checkpoint.file_index_.emplace(name, slot);
      if (!inserted) {
        fail(path.string(), ": tensor '", name, "' appears in both ",
             checkpoint.files_[existing->second]->path().filename().string(), " and ",
             file->path().filename().string());
      }
    }
    checkpoint.files_.push_back(std::move(file));
  };

  if (!fs::is_directory(status)) {
    add(SafetensorsFile::open(path));
    return checkpoint;
  }
  const fs::path index_path = path / kIndexName;
  if (fs::exists(index_path, error)) {
    const nlohmann::json weight_map = read_index(index_path);
    if (weight_map.empty()) fail(index_path.string(), ": weight_map lists no tensors");
    // Sorted shard names: model-00001-of-N comes first and gives metadata().
    std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
    for (const auto& [tensor, shard] : weight_map.items()) shards.emplace(shard, nullptr);
    const auto roots = allowed_roots(path);
    for (auto& [shard, file] : shards) {
      file = SafetensorsFile::open(resolve_shard(path, roots, index_path, shard));
      add(file);
    }
    for (const auto& [tensor, shard] : weight_map.items()) {
      if (!shards.at(shard)->contains(tensor)) {
        fail(index_path.string(), ": tensor '", tensor, "' is listed in shard '",
             shard.get<std::string>(), "' which does not contain it");
      }
    }
  } else if (fs::exists(path / kSingleName, error)) {
    add(SafetensorsFile::open(path / kSingleName));
  } else {
    const auto files = loose_safetensors_files(path);
    if (files.empty()) {
      fail(path.string(), ": no ", kSingleName, ", ", kIndexName, " or other .safetensors file");
    }
    for (const auto& file : files) add(SafetensorsFile::open(file));
  }
  return checkpoint;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> result;
  result.reserve(file_index_.size());
  for (const auto& [name, slot] : file_index_) result.push_back(name);
  return result;
}

bool Checkpoint::contains(std::string_view name) const {
  return file_index_.contains(name);
}

const SafetensorsFile& Checkpoint::file_of(std::string_view name) const {
  const auto found = file_index_.find(name);
  if (found == file_index_.end()) fail(path_.string(), ": no tensor '", name, "'");
  return *files_[found->second];
}

TensorView Checkpoint::tensor(std::string_view name) const {
  return file_of(name).tensor(name);
}

const std::map<std::string, std::string>& Checkpoint::metadata() const {
  return files_.front()->metadata();
}

std::size_t Checkpoint::total_bytes() const {
  std::size_t total = 0;
  for (const auto& file : files_) total += file->data_bytes();
  return total;
}

void write_safetensors_index(const fs::path& dir,
                             const std::map<std::string, std::string>& weight_map,
                             std::uint64_t total_size) {
  const fs::path index_path = dir / kIndexName;
  nlohmann::ordered_json index;
  index["metadata"]["total_size"] = total_size;
  index["weight_map"] = nlohmann::ordered_json::object();
  for (const auto& [tensor, shard] : weight_map) {
    if (shard.empty() || shard == "." || shard == ".." ||
        fs::path(shard).filename() != fs::path(shard)) {
      fail(index_path.string(), ": shard '", shard, "' of tensor '", tensor,
           "' is not a plain file name");
    }
    index["weight_map"][tensor] = shard;
  }
  write_file_atomic(index_path, index.dump(2) + "\n");
}

}  // namespace uq
