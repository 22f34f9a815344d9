// Checked reads of YAML scalars, lists and maps; every error names the file, the line and the key.
#include "src/config/yaml_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/config/config.h"

namespace unifn::config {

namespace {

// Configuration files are small; the cap keeps a mistaken --config /dev/zero from eating memory.
constexpr std::size_t kMaxFileBytes = 1 << 20;

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", n.Scalar());
    default:
      return "empty";
  }
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string line_text(const std::string& text, int line) {
  std::size_t begin = 0;
  for (int i = 0; i < line; ++i) {
    begin = text.find('\n', begin);
    if (begin == std::string::npos) return "";
    ++begin;
  }
  return text.substr(begin, text.find('\n', begin) - begin);
}

}  // namespace

int line_of(const YAML::Node& node) { return node.Mark().line >= 0 ? node.Mark().line + 1 : 0; }

void sort_by_line(std::vector<std::string>& errors, const std::string& file) {
  auto line = [&](const std::string& e) {
    if (e.compare(0, file.size(), file) != 0 || e.size() <= file.size() || e[file.size()] != ':')
      return 0;
    return std::atoi(e.c_str() + file.size() + 1);
  };
  std::stable_sort(errors.begin(), errors.end(),
                   [&](const auto& a, const auto& b) { return line(a) < line(b); });
}

MapReader::MapReader(const YAML::Node& map, std::string file, std::vector<std::string>& errors,
                     std::string prefix)
    : map_(map), file_(std::move(file)), prefix_(std::move(prefix)), errors_(&errors) {
  if (!map_.IsMap()) return;
  for (const auto& kv : map_) {
    if (!kv.first.IsScalar()) {
      errors_->push_back(fmt::format(
          "{}:{}: {}keys must be plain names, not {}", file_, line_of(kv.first),
          prefix_.empty() ? "" : prefix_.substr(0, prefix_.size() - 1) + ": ", describe(kv.first)));
      continue;
    }
    const auto& name = kv.first.Scalar();
    if (auto it = entries_.find(name); it != entries_.end()) {
      error(name, fmt::format("is given twice (first on line {})", line_of(it->second.key)),
            line_of(kv.first));
      continue;
    }
    entries_.emplace(name, Entry{kv.first, kv.second});
    order_.push_back(name);
  }
}

int MapReader::line(const std::string& key) const {
  if (auto it = entries_.find(key); it != entries_.end() && line_of(it->second.key) > 0)
    return line_of(it->second.key);
  return std::max(1, line_of(map_));
}

void MapReader::error(const std::string& key, const std::string& what, int at) {
  errors_->push_back(
      fmt::format("{}:{}: {}{}: {}", file_, at > 0 ? at : line(key), prefix_, key, what));
}

const MapReader::Entry* MapReader::take(const std::string& key) {
  asked_.insert(key);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

bool MapReader::scalar_or_error(const std::string& key, const Entry& e, const char* expected) {
  if (e.value.IsNull()) {
    error(key, "has no value (leave the key out for the default)");
    return false;
  }
  if (!e.value.IsScalar()) {
    error(key, fmt::format("must be {}, not {}", expected, describe(e.value)));
    return false;
  }
  return true;
}

std::optional<std::string> MapReader::str(const std::string& key, bool required) {
  const Entry* e = take(key);
  if (!e) {
    if (required) error(key, "is required");
    return std::nullopt;
  }
  if (!scalar_or_error(key, *e, "a string")) return std::nullopt;
  return e->value.Scalar();
}

std::optional<std::uint64_t> MapReader::num(const std::string& key, std::uint64_t lo,
                                            std::uint64_t hi) {
  const Entry* e = take(key);
  if (!e || !scalar_or_error(key, *e, "a whole number")) return std::nullopt;
  const std::string& text = e->value.Scalar();
  const auto range = fmt::format("{} to {}", lo, hi);
  std::string_view digits = text;
  if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
  const bool negative = !digits.empty() && digits[0] == '-';
  if (negative) digits.remove_prefix(1);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || end != digits.data() + digits.size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    error(key, fmt::format("'{}' is not a whole number ({})", text, range));
    return std::nullopt;
  }
  if (negative && (v != 0 || ec != std::errc())) {
    error(key, fmt::format("{} is negative; it must be {}", text, range));
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || v < lo || v > hi) {
    error(key, fmt::format("{} is out of range ({})", text, range));
    return std::nullopt;
  }
  return v;
}

std::optional<std::vector<std::string>> MapReader::list(const std::string& key,
                                                        std::vector<int>* item_lines) {
  const Entry* e = take(key);
  if (!e) return std::nullopt;
  if (e->value.IsNull()) {
    error(key, "has no value (leave the key out for the default)");
    return std::nullopt;
  }
  if (!e->value.IsSequence()) {
    error(key, fmt::format("must be a list such as [a, b], not {}", describe(e->value)));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const auto& item : e->value) {
    const int at = line_of(item) > 0 ? line_of(item) : line(key);
    if (!item.IsScalar()) {
      error(key, fmt::format("each item must be a string, not {}", describe(item)), at);
      ok = false;
      continue;
    }
    out.push_back(item.Scalar());
    if (item_lines) item_lines->push_back(at);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> MapReader::string_map(
    const std::string& key, std::vector<int>* key_lines) {
  const Entry* e = take(key);
  if (!e) return std::nullopt;
  if (e->value.IsNull()) {
    error(key, "has no value (leave the key out, or write {})");
    return std::nullopt;
  }
  if (!e->value.IsMap()) {
    error(key, fmt::format("must be a map of names to strings, not {}", describe(e->value)));
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> out;
  std::map<std::string, int> seen;
  bool ok = true;
  for (const auto& kv : e->value) {
    const int at = line_of(kv.first) > 0 ? line_of(kv.first) : line(key);
    if (!kv.first.IsScalar()) {
      error(key, fmt::format("names must be plain strings, not {}", describe(kv.first)), at);
      ok = false;
      continue;
    }
    const std::string full = key + "." + kv.first.Scalar();
    if (auto [it, fresh] = seen.emplace(kv.first.Scalar(), at); !fresh) {
      error(full, fmt::format("is given twice (first on line {})", it->second), at);
      ok = false;
      continue;
    }
    if (kv.second.IsNull()) {
      error(full, "has no value (write '' for an empty string)", at);
      ok = false;
      continue;
    }
    if (!kv.second.IsScalar()) {
      error(full, fmt::format("must be a string, not {}", describe(kv.second)), at);
      ok = false;
      continue;
    }
    out.emplace_back(kv.first.Scalar(), kv.second.Scalar());
    if (key_lines) key_lines->push_back(at);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<MapReader> MapReader::sub(const std::string& key) {
  const Entry* e = take(key);
  // An absent or empty map (every sub-key commented out) gives every sub-key its default.
  if (!e || e->value.IsNull())
    return MapReader(YAML::Node(YAML::NodeType::Map), file_, *errors_, prefix_ + key + ".");
  if (!e->value.IsMap()) {
    error(key, fmt::format("must be a map of keys, not {}", describe(e->value)));
    return std::nullopt;
  }
  return MapReader(e->value, file_, *errors_, prefix_ + key + ".");
}

void MapReader::finish() {
  for (const auto& key : order_) {
    if (asked_.count(key)) continue;
    // Suggest a near miss (memroy_mb) or a key cut short (memory, max_body).
    std::string best;
    std::size_t best_score = 3;
    for (const auto& known : asked_) {
      std::size_t score = edit_distance(key, known);
      if (score >= key.size()) continue;
      if (key.size() >= 3 && known.starts_with(key)) score = std::min<std::size_t>(score, 2);
      if (score < best_score) best = known, best_score = score;
    }
    error(key,
          best.empty() ? "unknown key" : fmt::format("unknown key (did you mean '{}'?)", best));
  }
}

YAML::Node load_map_file(const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw ConfigError(fmt::format("{}: is a directory, not a YAML file", file));
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw ConfigError(
        fmt::format("{}: cannot be read ({})", file, std::strerror(errno ? errno : EIO)));
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad())
    throw ConfigError(
        fmt::format("{}: cannot be read ({})", file, std::strerror(errno ? errno : EIO)));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes)
    throw ConfigError(fmt::format("{}: is larger than {} bytes, too large for a configuration file",
                                  file, kMaxFileBytes));

  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0) {
      // The likeliest cause by far: an unquoted IPv6 listen address, which YAML reads as a list.
      const auto bad = line_text(text, e.mark.line);
      const bool v6 = bad.find(": [") != std::string::npos && bad.find("]:") != std::string::npos;
      throw ConfigError(fmt::format(
          "{}:{}: malformed YAML: {}{}", file, e.mark.line + 1, e.msg,
          v6 ? " (quote a value that starts with '[', as in listen: '[::1]:8080')" : ""));
    }
    throw ConfigError(fmt::format("{}: malformed YAML: {}", file, e.msg));
  }
  if (docs.empty() || docs[0].IsNull())
    throw ConfigError(
        fmt::format("{}: is empty; a map of keys such as 'name: hello' is expected", file));
  if (docs.size() > 1)
    throw ConfigError(
        fmt::format("{}:{}: a second YAML document starts here; one map of keys is expected", file,
                    std::max(1, line_of(docs[1]))));
  if (!docs[0].IsMap())
    throw ConfigError(fmt::format("{}:{}: the file must be a map of keys, not {}", file,
                                  std::max(1, line_of(docs[0])), describe(docs[0])));
  return docs[0];
}

}  // namespace unifn::config
