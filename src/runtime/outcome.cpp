// Names of start kinds, as the X-Unifn-Start header and the metrics spell them.
#include "runtime/dispatcher.h"

namespace unifn::runtime {

std::string_view to_string(StartKind kind) {
  switch (kind) {
    case StartKind::Warm: return "warm";
    case StartKind::Restored: return "restored";
    case StartKind::Cold: return "cold";
  }
  return "warm";
}

}  // namespace unifn::runtime
