// Checked reads of YAML scalars, lists and maps, each error with file, line and key.
#include "config/yaml_reader.h"

#include <fmt/format.h>

namespace unifn::config {

MapReader::MapReader(const YAML::Node& node, std::string file, std::string prefix)
    : node_(node), file_(std::move(file)), prefix_(std::move(prefix)) {}

void MapReader::fail(const YAML::Node& at, const std::string& key, const std::string& what) const {
  int line = at.Mark().line >= 0 ? at.Mark().line + 1 : node_.Mark().line + 1;
  throw ConfigError(fmt::format("{}:{}: {}{}: {}", file_, line, prefix_, key, what));
}

void MapReader::reject_unknown() const {
  for (const auto& kv : node_) {
    auto key = kv.first.as<std::string>();
    if (!asked_.count(key)) fail(kv.first, key, "unknown key");
  }
}

std::string MapReader::str(const std::string& key, std::string fallback, bool required) {
  asked_.insert(key);
  auto n = node_[key];
  if (!n) {
    if (required) fail(node_, key, "is required");
    return fallback;
  }
  if (!n.IsScalar()) fail(n, key, "must be a string");
  return n.as<std::string>();
}

std::uint64_t MapReader::num(const std::string& key, std::uint64_t fallback, std::uint64_t lo, std::uint64_t hi) {
  asked_.insert(key);
  auto n = node_[key];
  if (!n) return fallback;
  if (!n.IsScalar()) fail(n, key, "must be a number");
  const auto text = n.Scalar();
  std::uint64_t v = 0;
  std::size_t used = 0;
  try {
    if (!text.empty() && text[0] == '-') throw std::invalid_argument("negative");
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) fail(n, key, fmt::format("'{}' is not a whole number", text));
  if (v < lo || v > hi) fail(n, key, fmt::format("{} is out of range ({} to {})", v, lo, hi));
  return v;
}

std::vector<std::string> MapReader::list(const std::string& key, std::vector<std::string> fallback) {
  asked_.insert(key);
  auto n = node_[key];
  if (!n) return fallback;
  if (!n.IsSequence()) fail(n, key, "must be a list");
  std::vector<std::string> out;
  for (const auto& item : n) {
    if (!item.IsScalar()) fail(item, key, "must be a list of strings");
    out.push_back(item.as<std::string>());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> MapReader::string_map(const std::string& key) {
  asked_.insert(key);
  auto n = node_[key];
  std::vector<std::pair<std::string, std::string>> out;
  if (!n) return out;
  if (!n.IsMap()) fail(n, key, "must be a map of strings");
  for (const auto& kv : n) {
    if (!kv.second.IsScalar()) fail(kv.second, key + "." + kv.first.as<std::string>(), "must be a string");
    out.emplace_back(kv.first.as<std::string>(), kv.second.as<std::string>());
  }
  return out;
}

MapReader MapReader::sub(const std::string& key) {
  asked_.insert(key);
  auto n = node_[key];
  if (n && !n.IsMap()) fail(n, key, "must be a map");
  return MapReader(n ? n : YAML::Node(YAML::NodeType::Map), file_, prefix_ + key + ".");
}

YAML::Node load_map_file(const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::BadFile&) {
    throw ConfigError(fmt::format("{}: cannot be read", file));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: malformed YAML: {}", file, e.mark.line + 1, e.msg));
  }
  if (!root || root.IsNull()) throw ConfigError(fmt::format("{}: is empty", file));
  if (!root.IsMap()) throw ConfigError(fmt::format("{}:{}: the top level must be a map of keys", file, root.Mark().line + 1));
  return root;
}

}  // namespace unifn::config
