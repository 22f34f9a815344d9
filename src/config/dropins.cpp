// Function drop-ins under systemd's rules, and the checks a whole set must pass before it serves.
#include <sys/stat.h>

#include <fmt/format.h>

#include <map>
#include <string_view>

#include "src/config/checks.h"
#include "src/config/config.h"

namespace unifn::config {

namespace fs = std::filesystem;

namespace {

bool ignored_name(std::string_view name) {
  // Dotfiles include editors' swap files (.x.yaml.swp); backups (x.yaml~, x.yaml.bak) and every
  // other extension fail the suffix test.
  return name.empty() || name[0] == '.' || !name.ends_with(".yaml") || name == ".yaml";
}

// systemd's mask: the entry resolves to /dev/null (std::filesystem::equivalent refuses devices).
bool masks(const fs::path& p) {
  struct stat st {
  }, null{};
  return ::stat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && ::stat("/dev/null", &null) == 0 &&
         st.st_rdev == null.st_rdev;
}

// "file:line" for a key of a loaded function; just the file when the line is unknown.
std::string where(const FunctionConfig& f, const std::string& key) {
  auto it = f.lines.find(key);
  if (it == f.lines.end()) it = f.lines.find("name");
  if (it == f.lines.end()) return f.source;
  return fmt::format("{}:{}", f.source, it->second);
}

void check_function(const FunctionConfig& f, std::vector<std::string>& errors) {
  auto report = [&](const std::string& key, const std::optional<std::string>& bad) {
    if (bad) errors.push_back(fmt::format("{}: {}: {}", where(f, key), key, *bad));
  };
  // What the parser already guarantees for a loaded drop-in; a set built in code gets it here.
  report("name", checks::function_name(f.name));
  report("memory_mb", checks::range(f.vm.memory_mb, checks::kMemoryMb));
  report("timeout_ms", checks::range(f.pool.timeout_ms, checks::kTimeoutMs));
  report("max_instances", checks::range(f.pool.max_instances, checks::kMaxInstances));
  report("min_warm", checks::range(f.pool.min_warm, checks::kMinWarm));
  if (f.pool.min_warm > f.pool.max_instances)
    report("min_warm", fmt::format("{} is more than max_instances ({})", f.pool.min_warm,
                                   f.pool.max_instances));
  report("isolation", checks::isolation(f.pool.isolation));
  report("accel", checks::backend_list(f.vm.accel));
  for (const auto& [k, v] : f.vm.env) {
    report("env." + k, checks::env_name(k));
    report("env." + k, checks::env_value(v));
  }
  report("env", checks::env_size(f.vm.env));
  report("cmdline", checks::cmdline(f.vm.cmdline));
  // What only the machine can tell: the image must be there, readable, and an ELF file.
  if (f.vm.image.empty())
    report("image", std::string("must not be empty"));
  else if (!fs::path(f.vm.image).is_absolute())
    report("image", fmt::format("{} is not an absolute path", f.vm.image));
  else
    report("image", checks::image_file(f.vm.image));
}

}  // namespace

DropinSet load_dropins(const std::vector<fs::path>& dirs) {
  DropinSet set;
  std::map<std::string, fs::path>
      chosen;  // file name -> path; std::string's order is strcmp's, like systemd's
  for (const auto& dir : dirs) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    if (ec) {
      if (ec != std::errc::no_such_file_or_directory)
        set.errors.push_back(fmt::format("{}: the drop-in directory cannot be read ({})",
                                         dir.string(), ec.message()));
      continue;
    }
    for (; !ec && it != end; it.increment(ec)) {
      const auto& p = it->path();
      const auto name = p.filename().string();
      if (ignored_name(name)) continue;
      if (masks(p)) {
        chosen.erase(name);  // a later directory's link to /dev/null hides the earlier file
        continue;
      }
      std::error_code sec;
      const auto type = fs::status(p, sec).type();
      if (type == fs::file_type::directory) continue;
      // A dangling link is kept so that loading reports it; sockets and FIFOs are not files to
      // read.
      if (type != fs::file_type::regular && type != fs::file_type::not_found) continue;
      chosen[name] = p;
    }
    if (ec)
      set.errors.push_back(
          fmt::format("{}: the drop-in directory cannot be read ({})", dir.string(), ec.message()));
  }

  std::map<std::string, std::string> defined;  // function name -> the file that defined it first
  for (const auto& [name, path] : chosen) {
    FunctionConfig f;
    try {
      f = load_function(path);
    } catch (const ConfigError& e) {
      set.errors.insert(set.errors.end(), e.errors().begin(), e.errors().end());
      continue;
    }
    if (auto it = defined.find(f.name); it != defined.end()) {
      set.errors.push_back(
          fmt::format("{}: name: function '{}' is already defined in {}; this file is skipped",
                      where(f, "name"), f.name, it->second));
      continue;
    }
    defined.emplace(f.name, f.source);
    set.functions.push_back(std::move(f));
  }
  return set;
}

DropinSet load_dropins(const std::vector<std::string>& dirs) {
  return load_dropins(std::vector<fs::path>(dirs.begin(), dirs.end()));
}

FullConfig load_full(const DaemonConfig& daemon) {
  return FullConfig{daemon, load_dropins(daemon.functions_dirs)};
}

FullConfig load_full(const std::optional<fs::path>& cli_path, const fs::path& exe_dir) {
  return load_full(resolve_config(cli_path, exe_dir));
}

namespace {

// The drop-in half of validate_strict(): each function's checks, then names defined twice.
std::vector<std::string> dropin_errors(const DropinSet& set) {
  std::vector<std::string> errors = set.errors;
  std::map<std::string, std::string> defined;
  for (const auto& f : set.functions) {
    check_function(f, errors);
    if (auto [it, fresh] = defined.emplace(f.name, f.source); !fresh)
      errors.push_back(fmt::format("{}: name: function '{}' is also defined in {}",
                                   where(f, "name"), f.name, it->second));
  }
  return errors;
}

}  // namespace

std::vector<std::string> validate_strict(const FullConfig& full) {
  const auto& d = full.daemon;
  std::vector<std::string> errors;
  auto report = [&](const std::string& key, const std::optional<std::string>& bad) {
    if (bad) errors.push_back(fmt::format("{}: {}: {}", d.source, key, *bad));
  };
  // A loaded file was checked key by key already; this covers a configuration changed in code.
  report("listen", checks::listen(d.listen()));
  report("state_dir", state_dir_problem(d.state_dir));
  for (const auto& entry : d.callbacks.allow)
    report("callbacks.allow", checks::callback_allow(entry));
  report("callbacks.resolve_timeout_ms",
         checks::range(d.callbacks.resolve_timeout_ms, checks::kResolveTimeoutMs));
  report("accel.backends", checks::backend_list(d.accel_backends));
  report("log_level", checks::log_level(d.log_level));
  report("io_threads", checks::range(d.io_threads, checks::kIoThreads));
  report("platform", checks::platform(d.platform));
  for (const auto& [key, bad] : checks::limits_consistency(d.limits)) report("limits." + key, bad);
  auto set_errors = dropin_errors(full.dropins);
  errors.insert(errors.end(), set_errors.begin(), set_errors.end());
  return errors;
}

}  // namespace unifn::config
