// The fuzzers run guests on memory-only platforms only: platform.cpp (private_ram, the choice of a
// platform) is compiled in, and the real KVM and sandbox platforms it names are these stand-ins, so
// that a fuzzer links neither (nor the sandbox helper they embed). A FunctionVmConfig with no
// platform would end up here and fail loudly.
#include <optional>
#include <stdexcept>
#include <string>

#include "vmm/platform/platform.h"

namespace unifn::vmm {

Platform& kvm_platform() { throw std::logic_error("the fuzzers have no KVM platform"); }
Platform& sandbox_platform() { throw std::logic_error("the fuzzers have no sandbox platform"); }
const std::optional<std::string>& kvm_unavailable_reason() {
  static const std::optional<std::string> why = "the fuzzers have no KVM platform";
  return why;
}

}  // namespace unifn::vmm
