// Typed configuration: the daemon file and one YAML drop-in per function, with checked values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace unifn::config {

// A configuration error; the message names the file, the line and the key.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Limits {
  std::uint64_t max_body_bytes = 6291456;
  std::uint64_t max_queue = 1024;
  std::uint64_t max_header_bytes = 16384;
  std::uint64_t read_timeout_ms = 30000;
  std::uint64_t idle_timeout_ms = 60000;
  std::uint64_t shutdown_grace_ms = 10000;
  std::uint64_t async_results_max = 1000;
  std::uint64_t async_results_ttl_s = 600;
  bool operator==(const Limits&) const = default;
};

struct DaemonConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::string state_dir;
  std::vector<std::string> functions_dirs;
  Limits limits;
  std::vector<std::string> accel_backends = {"cuda", "cpu"};
  std::string log_level = "info";
  std::uint64_t io_threads = 2;
  std::string source;  // the file it came from, or "(embedded default)"
};

struct FunctionConfig {
  std::string name;
  std::string image;  // absolute, or resolved against the drop-in's directory
  std::uint64_t memory_mb = 64;
  std::uint64_t timeout_ms = 5000;
  std::uint64_t min_warm = 1;
  std::uint64_t max_instances = 4;
  std::string isolation = "per-request";
  std::vector<std::string> accel = {"cpu"};
  std::vector<std::pair<std::string, std::string>> env;
  std::string cmdline;
  std::string source;  // the drop-in file
  // Equal when everything that shapes the function is equal (the source file may differ).
  bool same_function(const FunctionConfig& o) const;
};

// Parses and checks a daemon file; throws ConfigError naming file, line and key.
DaemonConfig load_daemon_config(const std::filesystem::path& file);
// The configuration unifnd runs on with no file at all.
DaemonConfig embedded_default(const std::filesystem::path& exe_dir);
// --config FILE if given (it must exist), else /etc/unifn/unifn.yaml if present, else the default.
DaemonConfig resolve(const std::optional<std::filesystem::path>& cli, const std::filesystem::path& exe_dir);

// One drop-in file; throws ConfigError.
FunctionConfig load_function(const std::filesystem::path& file);

struct DropinSet {
  std::vector<FunctionConfig> functions;
  std::vector<std::string> errors;  // each a sentence naming the file; those files were skipped
};
// systemd's drop-in rules: *.yaml files of every directory, a later directory's file replacing a
// same-named earlier one, processed in file-name order; a name defined twice is an error naming
// both files (the first stays). Missing directories are fine.
DropinSet load_dropins(const std::vector<std::string>& dirs);
// Everything else a set must satisfy before it may serve: images readable, backends known.
std::vector<std::string> check_set(const DropinSet& set);

}  // namespace unifn::config
