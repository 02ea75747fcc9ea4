#pragma once
// `uq export MODEL --format gguf`: the GGUF part of the export command.
#include <string>

namespace uq::cli {

// Loads MODEL (any layout load_model reads), writes it to `output` with the
// ggml type recipe `type` and prints what went where.
void export_gguf_command(const std::string& model, const std::string& type,
                         const std::string& output);

}  // namespace uq::cli
