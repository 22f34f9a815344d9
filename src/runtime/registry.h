// The functions the daemon serves, by name: the Dispatcher that the HTTP layer calls.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/dispatcher.h"
#include "runtime/instance_pool.h"

namespace unifn::runtime {

class Registry : public Dispatcher {
 public:
  // Makes the set of functions exactly configs: pools whose fingerprint is unchanged keep
  // serving, new and changed functions get new pools (snapshotted and warmed before they
  // replace the old), removed ones drain. A function that fails to boot is reported through
  // errors and left out; the others serve.
  void load(std::vector<PoolConfig> configs, std::vector<std::string>& errors);
  void invoke(Invocation call, Completion done) override;
  std::vector<FunctionStatus> functions() const override;
  std::optional<FunctionStatus> function(std::string_view name) const override;
  void shutdown(std::chrono::milliseconds grace);
  // The snapshot keys of the functions served now: what the state directory must keep.
  std::set<std::string> snapshot_keys() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<InstancePool>, std::less<>> pools_;
  bool stopping_ = false;
};

}  // namespace unifn::runtime
