// The shared budget: a compare-and-swap on what is used, so that two takers never both pass the
// limit.
#include "src/runtime/budget.h"

namespace unifn::runtime {

bool Budget::try_take(std::uint64_t n) noexcept {
  std::uint64_t used = used_.load();
  do {
    if (used > limit_ || n > limit_ - used) return false;
  } while (!used_.compare_exchange_weak(used, used + n));
  return true;
}

std::uint64_t Budget::left() const noexcept {
  const std::uint64_t used = used_.load();
  return used >= limit_ ? 0 : limit_ - used;
}

}  // namespace unifn::runtime
