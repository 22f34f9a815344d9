// Reading YAML maps key by key, collecting errors that say "<file>:<line>: <key>: <what is wrong>".
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace unifn::config {

// One map of a YAML file. Each getter marks its key as known and returns nullopt when the key is
// absent or wrong (the error is recorded); finish() then reports the keys nobody asked for.
class MapReader {
 public:
  MapReader(const YAML::Node& map, std::string file, std::vector<std::string>& errors,
            std::string prefix = "");

  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  // The line (1-based) where key is written, or the map's own line when it is absent.
  int line(const std::string& key) const;
  const std::string& file() const { return file_; }

  std::optional<std::string> str(const std::string& key, bool required = false);
  std::optional<std::uint64_t> num(const std::string& key, std::uint64_t lo, std::uint64_t hi);
  // A list of strings; item_lines receives the line of each item.
  std::optional<std::vector<std::string>> list(const std::string& key,
                                               std::vector<int>* item_lines = nullptr);
  // A map of strings to strings, in file order; key_lines receives the line of each entry.
  std::optional<std::vector<std::pair<std::string, std::string>>> string_map(
      const std::string& key, std::vector<int>* key_lines = nullptr);
  // A nested map; absent gives an empty one, so its keys take their defaults.
  std::optional<MapReader> sub(const std::string& key);

  // Records "<file>:<line>: <prefix><key>: <what>" at the key's line, or at `line` if given.
  void error(const std::string& key, const std::string& what, int line = 0);
  // Reports keys that no getter asked for; call once, after every getter.
  void finish();

 private:
  struct Entry {
    YAML::Node key, value;
  };
  const Entry* take(const std::string& key);
  bool scalar_or_error(const std::string& key, const Entry& e, const char* expected);

  YAML::Node map_;
  std::string file_, prefix_;
  std::vector<std::string>* errors_;
  std::map<std::string, Entry> entries_;  // the first of each key
  std::vector<std::string> order_;        // keys in file order
  std::set<std::string> asked_;
};

// Reads a file whose single YAML document must be a map. Throws ConfigError naming the file (and
// the line, for malformed YAML).
YAML::Node load_map_file(const std::string& file);

// Orders errors about `file` by their line: checks run in code order, a reader wants file order.
void sort_by_line(std::vector<std::string>& errors, const std::string& file);

// 1-based line of a node, 0 when yaml-cpp has no mark for it.
int line_of(const YAML::Node& node);

}  // namespace unifn::config
