// FunctionDeployment -> drop-in YAML: the field mapping of the provider API.
#include "src/http/provider/deployment.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace unifn::http::provider {

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The field's object of strings, or the sentence saying it is not one.
// numbers: limits and requests may give a count as a number ("nvidia.com/gpu": 1).
std::variant<Pairs, std::string> string_map(const Json& body, const char* field,
                                            bool numbers = false) {
  Pairs out;
  if (!body.contains(field) || body[field].is_null()) return out;
  const auto& v = body[field];
  if (!v.is_object()) return fmt::format("{} must be an object of strings", field);
  for (const auto& [k, value] : v.items()) {
    if (numbers && value.is_number()) {
      out.emplace_back(k, value.dump());
      continue;
    }
    if (!value.is_string())
      return fmt::format("{}.{} must be a string, not {}", field, k, value.type_name());
    out.emplace_back(k, value.get<std::string>());
  }
  return out;
}

std::optional<std::string> find(const Pairs& p, std::string_view key) {
  for (const auto& [k, v] : p)
    if (k == key) return v;
  return std::nullopt;
}

// "cuda, cpu" -> [cuda, cpu]
std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    auto end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    auto item = text.substr(at, end - at);
    const auto b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    out.push_back(b == std::string::npos ? "" : item.substr(b, e - b + 1));
    at = end + 1;
  }
  return out;
}

// A value as a file would hold it: always a double-quoted string, which the drop-in's readers
// take for numbers too, so a bad value is reported with the file's own sentence.
void pair_map(YAML::Emitter& y, const char* key, const Pairs& p) {
  if (p.empty()) return;
  y << YAML::Key << key << YAML::Value << YAML::BeginMap;
  for (const auto& [k, v] : p) y << YAML::Key << YAML::DoubleQuoted << k << YAML::Value << v;
  y << YAML::EndMap;
}

}  // namespace

std::optional<std::string> dns_label_problem(const std::string& name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  bool ok = !name.empty() && name.size() <= 63 && alnum(name.front()) && alnum(name.back());
  for (char c : name) ok = ok && (alnum(c) || c == '-');
  if (ok) return std::nullopt;
  return fmt::format(
      "service '{}' is not a DNS label (1 to 63 of a-z, 0-9 and '-', starting and ending with a "
      "letter or digit)",
      name);
}

std::optional<std::string> image_name_problem(const std::string& name) {
  if (name.empty()) return std::string("the image name is empty");
  if (name.find('/') != std::string::npos || name == "." || name == ".." ||
      name.find("..") != std::string::npos || name.find('\0') != std::string::npos)
    return fmt::format(
        "image '{}' must be a file name in the images directory, without '/' or '..'", name);
  return std::nullopt;
}

std::optional<std::uint64_t> quantity_mib(const std::string& text) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  const std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  struct Unit {
    std::string_view name;
    std::uint64_t bytes;
  };
  static constexpr Unit units[] = {{"", 1},
                                   {"k", 1000},
                                   {"K", 1000},
                                   {"M", 1000000},
                                   {"G", 1000000000},
                                   {"Ki", 1ull << 10},
                                   {"Mi", 1ull << 20},
                                   {"Gi", 1ull << 30},
                                   {"T", 1000000000000ull},
                                   {"Ti", 1ull << 40}};
  for (const auto& u : units)
    if (suffix == u.name) {
      if (n > (~0ull) / u.bytes) return std::nullopt;
      const auto bytes = n * u.bytes;
      return (bytes + (1ull << 20) - 1) >> 20;
    }
  return std::nullopt;
}

std::variant<Deployment, std::string> read_deployment(const Json& body,
                                                      const std::string& images_dir) {
  if (!body.is_object()) return std::string("the body must be a FunctionDeployment JSON object");
  auto text = [&](const char* field, bool required) -> std::variant<std::string, std::string> {
    if (!body.contains(field) || body[field].is_null()) {
      if (required)
        return std::variant<std::string, std::string>(std::in_place_index<1>,
                                                      fmt::format("{} is required", field));
      return std::variant<std::string, std::string>(std::in_place_index<0>, "");
    }
    if (!body[field].is_string())
      return std::variant<std::string, std::string>(
          std::in_place_index<1>,
          fmt::format("{} must be a string, not {}", field, body[field].type_name()));
    return std::variant<std::string, std::string>(std::in_place_index<0>,
                                                  body[field].get<std::string>());
  };
  Deployment d;
  for (auto [field, out, required] :
       {std::tuple<const char*, std::string*, bool>{"service", &d.name, true},
        {"image", &d.image, true},
        {"namespace", &d.nspace, false}}) {
    auto v = text(field, required);
    if (v.index() == 1) return std::get<1>(v);
    *out = std::get<0>(v);
  }
  if (auto bad = dns_label_problem(d.name)) return *bad;
  if (auto bad = image_name_problem(d.image)) return *bad;
  // Accepted and not used: their types are still checked, so a typo'd shape is not silent.
  if (auto v = text("envProcess", false); v.index() == 1) return std::get<1>(v);
  for (const char* field : {"constraints", "secrets"})
    if (body.contains(field) && !body[field].is_null()) {
      if (!body[field].is_array()) return fmt::format("{} must be an array of strings", field);
      for (const auto& item : body[field])
        if (!item.is_string()) return fmt::format("{} must be an array of strings", field);
    }
  if (body.contains("readOnlyRootFilesystem") && !body["readOnlyRootFilesystem"].is_boolean() &&
      !body["readOnlyRootFilesystem"].is_null())
    return std::string("readOnlyRootFilesystem must be true or false");

  auto env = string_map(body, "envVars");
  if (env.index() == 1) return std::get<1>(env);
  auto labels = string_map(body, "labels");
  if (labels.index() == 1) return std::get<1>(labels);
  auto annotations = string_map(body, "annotations");
  if (annotations.index() == 1) return std::get<1>(annotations);
  auto limits = string_map(body, "limits", true);
  if (limits.index() == 1) return std::get<1>(limits);
  if (auto requests = string_map(body, "requests", true); requests.index() == 1)
    return std::get<1>(requests);
  const auto& l = std::get<0>(labels);
  const auto& a = std::get<0>(annotations);
  const auto& lim = std::get<0>(limits);

  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Comment(
      "Written by unifnd's provider API (POST/PUT /system/functions); "
      "changed by the API only");
  y << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << d.name;
  y << YAML::Key << "image" << YAML::Value << YAML::DoubleQuoted
    << (std::filesystem::path(images_dir) / d.image).string();
  if (auto m = find(lim, "memory")) {
    auto mib = quantity_mib(*m);
    if (!mib) return fmt::format("limits.memory '{}' is not a Kubernetes quantity (as 64Mi)", *m);
    y << YAML::Key << "memory_mb" << YAML::Value << YAML::DoubleQuoted << std::to_string(*mib);
  }
  if (auto v = find(l, "com.openfaas.scale.min"))
    y << YAML::Key << "min_warm" << YAML::Value << YAML::DoubleQuoted << *v;
  if (auto v = find(l, "com.openfaas.scale.max"))
    y << YAML::Key << "max_instances" << YAML::Value << YAML::DoubleQuoted << *v;
  if (auto v = find(a, "unifn.isolation"))
    y << YAML::Key << "isolation" << YAML::Value << YAML::DoubleQuoted << *v;
  if (auto v = find(a, "unifn.timeout_ms"))
    y << YAML::Key << "timeout_ms" << YAML::Value << YAML::DoubleQuoted << *v;
  std::optional<std::vector<std::string>> accel;
  for (const auto& [k, v] : lim)
    if (k.find("gpu") != std::string::npos) accel = std::vector<std::string>{"cuda", "cpu"};
  if (auto v = find(a, "unifn.accel")) accel = comma_list(*v);
  if (accel) {
    y << YAML::Key << "accel" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& b : *accel) y << YAML::DoubleQuoted << b;
    y << YAML::EndSeq;
  }
  pair_map(y, "env", std::get<0>(env));
  pair_map(y, "labels", l);
  pair_map(y, "annotations", a);
  y << YAML::EndMap;
  if (!y.good())
    return fmt::format("the deployment cannot be written as YAML: {}", y.GetLastError());
  d.yaml = std::string(y.c_str()) + "\n";
  return d;
}

}  // namespace unifn::http::provider
