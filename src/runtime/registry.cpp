// Name -> pool lookup and the function listing for /system/functions.
#include "src/runtime/registry.h"

#include <algorithm>

#include <fmt/format.h>

namespace unifn::runtime {

Registry::Registry(std::uint64_t guest_memory_bytes, std::uint64_t queue_bytes)
    : memory_(std::make_shared<Budget>(guest_memory_bytes)),
      queue_(std::make_shared<Budget>(queue_bytes)) {}

void Registry::load(std::vector<PoolConfig> configs, std::vector<std::string>& errors) {
  std::map<std::string, std::shared_ptr<InstancePool>, std::less<>> next;
  std::uint64_t planned = 0;  // the memory of the min_warm instances of the functions so far
  for (auto& cfg : configs) {
    std::string name = cfg.name;
    const std::uint64_t warm =
        cfg.unavailable.empty() ? std::min(cfg.settings.min_warm, cfg.settings.max_instances) : 0;
    const std::uint64_t need = warm * cfg.vm.memory_bytes;
    if (need > memory_->limit() - planned) {
      errors.push_back(
          fmt::format("function {}: min_warm {} instances of {} MiB need {} MiB of guest memory, "
                      "but limits.guest_memory_mb ({} "
                      "MiB) leaves {} MiB after the functions before it; skipped (lower its "
                      "min_warm or memory_mb, or raise the "
                      "limit)",
                      name, warm, cfg.vm.memory_bytes >> 20, need >> 20, memory_->limit() >> 20,
                      (memory_->limit() - planned) >> 20));
      continue;
    }
    cfg.memory_budget = memory_;
    cfg.queue_budget = queue_;
    std::shared_ptr<InstancePool> old;
    {
      std::lock_guard lock(mu_);
      if (auto it = pools_.find(name); it != pools_.end()) old = it->second;
    }
    // The same VM keeps its pool (and snapshot), with the new settings applied live.
    if (old && old->same_vm(cfg) && old->can_apply(cfg.settings)) {
      old->apply(cfg);
      next[name] = old;
      planned += need;
      continue;
    }
    try {
      next[name] = std::make_shared<InstancePool>(std::move(cfg));
      planned += need;  // a function that failed to boot leaves its share to the next
    } catch (const std::exception& e) {
      errors.push_back(fmt::format("function {}: {}", name, e.what()));
    }
  }
  std::vector<std::shared_ptr<InstancePool>> retired;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, pool] : pools_) {
      auto it = next.find(name);
      if (it == next.end() || it->second != pool) retired.push_back(pool);
    }
    pools_ = std::move(next);
  }
  for (auto& pool : retired) pool->drain(std::chrono::seconds(10));  // finishes what it holds
}

void Registry::invoke(Invocation call, Completion done) {
  std::shared_ptr<InstancePool> pool;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      done(failure(CallOutcome::Unavailable, "unifnd is shutting down"));
      return;
    }
    auto it = pools_.find(call.function);
    if (it != pools_.end()) pool = it->second;
  }
  if (!pool) {
    done(
        failure(CallOutcome::NoSuchFunction, fmt::format("no function named '{}'", call.function)));
    return;
  }
  pool->submit(std::move(call), std::move(done));
}

std::vector<FunctionStatus> Registry::functions() const {
  std::lock_guard lock(mu_);
  std::vector<FunctionStatus> out;
  for (const auto& [name, pool] : pools_) out.push_back(pool->status());
  return out;
}

std::set<std::string> Registry::snapshot_keys() const {
  std::lock_guard lock(mu_);
  std::set<std::string> keys;
  for (const auto& [name, pool] : pools_)
    if (!pool->snapshot_key().empty()) keys.insert(pool->snapshot_key());
  return keys;
}

std::optional<FunctionStatus> Registry::function(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = pools_.find(name);
  if (it == pools_.end()) return std::nullopt;
  return it->second->status();
}

void Registry::shutdown(std::chrono::milliseconds grace) {
  std::map<std::string, std::shared_ptr<InstancePool>, std::less<>> pools;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    pools.swap(pools_);
  }
  for (auto& [name, pool] : pools) pool->drain(grace);
}

}  // namespace unifn::runtime
