// One function drop-in: its keys read, checked, and the image path made absolute.
#include <fmt/format.h>

#include "src/config/checks.h"
#include "src/config/config.h"
#include "src/config/yaml_reader.h"

namespace unifn::config {

namespace fs = std::filesystem;

FunctionConfig load_function(const fs::path& file) {
  const std::string name = file.string();
  const auto root = load_map_file(name);
  std::vector<std::string> errors;
  MapReader r(root, name, errors);
  FunctionConfig f;
  f.source = name;

  if (auto v = r.str("name", true)) {
    if (auto bad = checks::function_name(*v))
      r.error("name", *bad);
    else
      f.name = *v;
  }
  if (auto v = r.str("image", true)) {
    if (v->empty()) {
      r.error("image", "must not be empty");
    } else if (fs::path(*v).is_absolute()) {
      f.vm.image = fs::path(*v).lexically_normal().string();
    } else {
      // Relative to the drop-in, so one file serves a build tree and an installed system alike.
      std::error_code ec;
      auto dir = fs::absolute(file, ec).parent_path();
      if (ec) dir = file.parent_path();
      f.vm.image = (dir / *v).lexically_normal().string();
    }
  }
  auto number = [&](const std::string& key, checks::Range range, std::uint64_t& out) {
    auto v = r.num(key, range.lo, range.hi);
    if (v) out = *v;
    return v.has_value();
  };
  number("memory_mb", checks::kMemoryMb, f.vm.memory_mb);
  number("timeout_ms", checks::kTimeoutMs, f.pool.timeout_ms);
  // A bad max_instances is reported on its own; comparing min_warm with it would add noise.
  const bool max_ok = number("max_instances", checks::kMaxInstances, f.pool.max_instances) ||
                      !r.has("max_instances");
  if (number("min_warm", checks::kMinWarm, f.pool.min_warm) && max_ok &&
      f.pool.min_warm > f.pool.max_instances)
    r.error("min_warm", fmt::format("{} is more than max_instances ({})", f.pool.min_warm,
                                    f.pool.max_instances));
  if (auto v = r.str("isolation")) {
    if (auto bad = checks::isolation(*v))
      r.error("isolation", *bad);
    else
      f.pool.isolation = *v;
  }
  std::vector<int> lines;
  if (auto v = r.list("accel", &lines)) {
    bool ok = true;
    for (std::size_t i = 0; i < v->size(); ++i)
      if (auto bad = checks::backend((*v)[i])) r.error("accel", *bad, lines[i]), ok = false;
    if (ok) {
      if (auto bad = checks::backend_list(*v))
        r.error("accel", *bad);
      else
        f.vm.accel = *v;
    }
  }
  lines.clear();
  if (auto v = r.string_map("env", &lines)) {
    bool ok = true;
    for (std::size_t i = 0; i < v->size(); ++i) {
      const auto& [k, value] = (*v)[i];
      if (auto bad = checks::env_name(k)) r.error("env." + k, *bad, lines[i]), ok = false;
      if (auto bad = checks::env_value(value)) r.error("env." + k, *bad, lines[i]), ok = false;
    }
    if (ok) {
      if (auto bad = checks::env_size(*v))
        r.error("env", *bad);
      else
        f.vm.env = *v;
    }
  }
  // Any names and strings: they are shown back, never used.
  if (auto v = r.string_map("labels")) f.meta.labels = *v;
  if (auto v = r.string_map("annotations")) f.meta.annotations = *v;
  if (auto v = r.str("cmdline")) {
    if (auto bad = checks::cmdline(*v))
      r.error("cmdline", *bad);
    else
      f.vm.cmdline = *v;
  }
  r.finish();
  if (!errors.empty()) {
    sort_by_line(errors, name);
    throw ConfigError(std::move(errors));
  }
  for (const auto& kv : root)
    if (kv.first.IsScalar()) f.lines.emplace(kv.first.Scalar(), r.line(kv.first.Scalar()));
  return f;
}

}  // namespace unifn::config
