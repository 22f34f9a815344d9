// CancelToken: the hook runs under the token's lock, so clear() is a barrier against it.
#include "src/runtime/cancel_token.h"

#include <utility>

namespace unifn::runtime {

void CancelToken::cancel() {
  flag_.store(true, std::memory_order_release);
  std::lock_guard lock(mu_);
  if (auto hook = std::exchange(hook_, nullptr)) hook();
}

void CancelToken::on_cancel(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  if (cancelled()) {
    hook();
    return;
  }
  hook_ = std::move(hook);
}

void CancelToken::clear() {
  std::lock_guard lock(mu_);
  hook_ = nullptr;
}

}  // namespace unifn::runtime
