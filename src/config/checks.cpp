// The value rules of the configuration: names, ranges, backends, environment, images, listen
// address.
#include "src/config/checks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <set>

#include "src/config/config.h"
#include "src/http/callback_policy.h"
#include "src/log/log.h"
#include "vmm/snapshot/snapshot_store.h"
#include "vmm/x86/layout.h"

namespace unifn::config {

namespace {

bool is_ip(const std::string& host, int family) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(family, host.c_str(), buf) == 1;
}

std::optional<ListenAddress> parse_listen_text(std::string_view text, std::string& why) {
  const std::string shown(text);
  const auto example = "for example 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080";
  ListenAddress a;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      why = fmt::format("'{}' is not HOST:PORT ({})", shown, example);
      return std::nullopt;
    }
    a.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    if (!is_ip(a.host, AF_INET6)) {
      why = fmt::format("'{}': '{}' is not an IPv6 address", shown, a.host);
      return std::nullopt;
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      why = fmt::format("'{}' is not HOST:PORT ({})", shown, example);
      return std::nullopt;
    }
    a.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (a.host.find(':') != std::string::npos) {
      why = fmt::format("'{}': an IPv6 address goes in brackets, as in [::1]:8080", shown);
      return std::nullopt;
    }
    if (!is_ip(a.host, AF_INET)) {
      // The listener binds addresses; resolving names would make the bound interface depend on DNS.
      why = fmt::format("'{}': '{}' is not an IP address ({})", shown, a.host, example);
      return std::nullopt;
    }
  }
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || v > 65535) {
    why = fmt::format("'{}': the port must be a number from 0 to 65535", shown);
    return std::nullopt;
  }
  a.port = static_cast<std::uint16_t>(v);
  return a;
}

}  // namespace

std::optional<ListenAddress> parse_listen(std::string_view text) {
  std::string why;
  return parse_listen_text(text, why);
}

std::optional<std::string> state_dir_problem(const std::string& dir) {
  if (dir.empty())
    return std::string(
        "no state directory: $STATE_DIRECTORY is unset, /var/lib/unifn is not writable, and "
        "neither "
        "$XDG_STATE_HOME, $HOME nor the password database gives a home (a default under /tmp is "
        "never "
        "taken); set state_dir in the daemon file or pass --state-dir");
  return vmm::SnapshotStore::directory_problem(dir);
}

namespace checks {

std::optional<std::string> range(std::uint64_t v, Range r) {
  if (v >= r.lo && v <= r.hi) return std::nullopt;
  return fmt::format("{} is out of range ({} to {})", v, r.lo, r.hi);
}

std::optional<std::string> function_name(const std::string& name) {
  auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  auto ok = [&](char c) { return ok_first(c) || c == '-' || c == '_'; };
  if (!name.empty() && name.size() <= 63 && ok_first(name[0]) &&
      std::all_of(name.begin(), name.end(), ok))
    return std::nullopt;
  return fmt::format(
      "'{}' is not a valid function name (1 to 63 characters of a-z, 0-9, '-' and '_', "
      "starting with a letter or digit)",
      name);
}

std::optional<std::string> isolation(const std::string& mode) {
  if (mode == "per-request" || mode == "reuse") return std::nullopt;
  return fmt::format("'{}' is not an isolation mode (per-request or reuse)", mode);
}

std::optional<std::string> log_level(const std::string& level) {
  if (log::parse_level(level)) return std::nullopt;
  return fmt::format("'{}' is not a log level (debug, info, warning or error)", level);
}

std::optional<std::string> platform(const std::string& name) {
  if (std::find(kKnownPlatforms.begin(), kKnownPlatforms.end(), name) != kKnownPlatforms.end())
    return std::nullopt;
  return fmt::format("'{}' is not a platform (auto, kvm or sandbox)", name);
}

std::optional<std::string> backend(const std::string& name) {
  if (std::find(kKnownBackends.begin(), kKnownBackends.end(), name) != kKnownBackends.end())
    return std::nullopt;
  return fmt::format("'{}' is not an accelerator backend ({})", name,
                     fmt::join(kKnownBackends, " or "));
}

std::optional<std::string> backend_list(const std::vector<std::string>& names) {
  if (names.empty())
    return fmt::format("must name at least one backend ({})", fmt::join(kKnownBackends, ", "));
  std::set<std::string> seen;
  for (const auto& n : names) {
    if (auto bad = backend(n)) return bad;
    if (!seen.insert(n).second) return fmt::format("'{}' is listed twice", n);
  }
  return std::nullopt;
}

std::optional<std::string> env_name(const std::string& name) {
  auto ok_first = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  auto ok = [&](char c) { return ok_first(c) || (c >= '0' && c <= '9'); };
  if (!name.empty() && ok_first(name[0]) && std::all_of(name.begin(), name.end(), ok))
    return std::nullopt;
  return "is not a valid environment variable name (letters, digits and '_', not starting with a "
         "digit)";
}

std::optional<std::string> env_value(const std::string& value) {
  // The guest receives "K=V\0K=V\0\0": a NUL would cut the value short.
  if (value.find('\0') == std::string::npos) return std::nullopt;
  return "must not contain a NUL character";
}

std::optional<std::string> env_size(const std::vector<std::pair<std::string, std::string>>& env) {
  std::uint64_t size = 1;
  for (const auto& [k, v] : env) size += k.size() + v.size() + 2;
  if (size <= vmm::layout::kEnvMax) return std::nullopt;
  return fmt::format("takes {} bytes in the guest, more than the {} a function may have", size,
                     vmm::layout::kEnvMax);
}

std::optional<std::string> cmdline(const std::string& text) {
  if (text.find('\0') != std::string::npos) return "must not contain a NUL character";
  // The VMM would cut a longer one short without a word.
  if (text.size() < vmm::layout::kCmdlineMax) return std::nullopt;
  return fmt::format("is {} bytes, more than the {} a function may have", text.size(),
                     vmm::layout::kCmdlineMax - 1);
}

std::optional<std::string> image_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return fmt::format("{} does not exist", path);
    return fmt::format("{} cannot be reached ({})", path, std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return fmt::format("{} is a directory, not an image file", path);
  if (!S_ISREG(st.st_mode)) return fmt::format("{} is not a regular file", path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fmt::format("{} cannot be read ({})", path, std::strerror(errno));
  char magic[4] = {};
  const auto got = ::read(fd, magic, sizeof magic);
  ::close(fd);
  if (got != static_cast<ssize_t>(sizeof magic) || std::memcmp(magic,
                                                               "\x7f"
                                                               "ELF",
                                                               4) != 0)
    return fmt::format("{} is not an ELF image", path);
  return std::nullopt;
}

std::optional<std::string> callback_allow(const std::string& entry) {
  return http::CallbackPolicy::entry_problem(entry);
}

std::optional<std::string> listen(const std::string& text) {
  std::string why;
  if (parse_listen_text(text, why)) return std::nullopt;
  return why;
}

std::vector<std::pair<std::string, std::string>> limits_consistency(const Limits& l) {
  std::vector<std::pair<std::string, std::string>> out;
  if (l.max_connections != 0 && l.max_connections_per_client > l.max_connections)
    out.emplace_back("max_connections_per_client",
                     fmt::format("{} is more than max_connections ({})",
                                 l.max_connections_per_client, l.max_connections));
  if (l.async_results_max_bytes < l.max_body_bytes)
    out.emplace_back(
        "async_results_max_bytes",
        fmt::format("{} is less than max_body_bytes ({}): the largest result could never be kept",
                    l.async_results_max_bytes, l.max_body_bytes));
  if (l.max_queue_bytes < l.max_body_bytes)
    out.emplace_back(
        "max_queue_bytes",
        fmt::format(
            "{} is less than max_body_bytes ({}): the largest request body could never wait "
            "in a queue",
            l.max_queue_bytes, l.max_body_bytes));
  return out;
}

}  // namespace checks
}  // namespace unifn::config
