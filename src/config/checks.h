// The rules a configuration value must follow, shared by the parsers and validate_strict().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace unifn::config {
struct Limits;
}

namespace unifn::config::checks {

struct Range {
  std::uint64_t lo, hi;
};

// Function drop-in ranges.
inline constexpr Range kMemoryMb{8, 3072};
inline constexpr Range kTimeoutMs{1, 600000};
inline constexpr Range kMaxInstances{1, 256};
inline constexpr Range kMinWarm{0, 256};  // and at most max_instances

// Daemon ranges.
inline constexpr Range kMaxBodyBytes{1, 1ull << 30};
inline constexpr Range kMaxQueue{0, 1u << 20};
inline constexpr Range kMaxHeaderBytes{1024, 1u << 20};
inline constexpr Range kTimeoutMsLong{1, 3600000};
inline constexpr Range kShutdownGraceMs{0, 3600000};
inline constexpr Range kAsyncResultsMax{1, 1u << 20};
inline constexpr Range kAsyncResultsTtlS{1, 7 * 86400};
inline constexpr Range kIoThreads{1, 64};
inline constexpr Range kResolveTimeoutMs{1, 60000};
// 0 in the first four: derived at start (config::derive_limits).
inline constexpr Range kMaxConnections{0, 1u << 24};
inline constexpr Range kReservedDescriptors{0, 1u << 20};
inline constexpr Range kGuestMemoryMb{0, 1ull << 32};
inline constexpr Range kBudgetBytes{65536, 1ull << 40};  // async_results_max_bytes, max_queue_bytes

// Each returns what is wrong, as the tail of a "<file>:<line>: <key>: ..." sentence, or nullopt.
std::optional<std::string> range(std::uint64_t v, Range r);
std::optional<std::string> function_name(const std::string& name);
std::optional<std::string> isolation(const std::string& mode);
std::optional<std::string> log_level(const std::string& level);
std::optional<std::string> platform(const std::string& name);
// One backend name, then a whole list (empty, repeated names).
std::optional<std::string> backend(const std::string& name);
std::optional<std::string> backend_list(const std::vector<std::string>& names);
std::optional<std::string> env_name(const std::string& name);
std::optional<std::string> env_value(const std::string& value);
std::optional<std::string> env_size(const std::vector<std::pair<std::string, std::string>>& env);
std::optional<std::string> cmdline(const std::string& text);
// Why an image file cannot serve: missing, a directory, unreadable, not ELF.
std::optional<std::string> image_file(const std::string& path);
// One item of callbacks.allow: a CIDR range, an IP address or `public`.
std::optional<std::string> callback_allow(const std::string& entry);
// Why text is not HOST:PORT with an IP address host.
std::optional<std::string> listen(const std::string& text);
// The limits that must agree with each other, each as (key, what is wrong): a per-client cap
// over the total cap, byte budgets that could never hold the largest body.
std::vector<std::pair<std::string, std::string>> limits_consistency(const Limits& limits);

}  // namespace unifn::config::checks
