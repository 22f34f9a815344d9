// Reading YAML maps key by key with errors that say file:line: key: what is wrong.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace unifn::config {

class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string file, std::string prefix = "");
  // Throws ConfigError for a key that no get() asked for.
  void reject_unknown() const;
  bool has(const std::string& key) const { return static_cast<bool>(node_[key]); }

  std::string str(const std::string& key, std::string fallback, bool required = false);
  std::uint64_t num(const std::string& key, std::uint64_t fallback, std::uint64_t lo, std::uint64_t hi);
  std::vector<std::string> list(const std::string& key, std::vector<std::string> fallback);
  std::vector<std::pair<std::string, std::string>> string_map(const std::string& key);
  MapReader sub(const std::string& key);
  [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& what) const;

 private:
  YAML::Node node_;
  std::string file_, prefix_;
  std::set<std::string> asked_;
};

// Loads a file whose top level must be a map; throws ConfigError naming the file.
YAML::Node load_map_file(const std::string& file);

}  // namespace unifn::config
