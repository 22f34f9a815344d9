// Backend registry: probes the compiled-in backends and picks one per function, saying why it fell
// back.
#include "accel/registry.h"

#include <fmt/format.h>

#include "accel/cpu/cpu_loader.h"
#ifdef UNIFN_HAVE_CUDA
#include "accel/cuda/cuda_backend.h"
#include "accel/cuda/onnx/model_run.h"
#endif

namespace unifn::accel {

bool cuda_compiled() {
#ifdef UNIFN_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

BackendRegistry::BackendRegistry() {
  std::shared_ptr<Backend> cpu = make_lazy_cpu_backend();
#ifdef UNIFN_HAVE_CUDA
  // The CPU module parses the models the GPU runs: it alone links the ONNX library.
  backends_.push_back(make_cuda_backend({}, {cpu, run_model_on_cuda}));
#endif
  backends_.push_back(std::move(cpu));
}

BackendRegistry::BackendRegistry(std::vector<std::shared_ptr<Backend>> backends)
    : backends_(std::move(backends)) {}

const BackendRegistry& BackendRegistry::global() {
  static const BackendRegistry registry;
  return registry;
}

std::shared_ptr<Backend> BackendRegistry::get(std::string_view name) const {
  for (const auto& b : backends_)
    if (b->name() == name) return b;
  return nullptr;
}

std::vector<BackendInfo> BackendRegistry::list() const {
  std::vector<BackendInfo> out;
  for (const auto& b : backends_)
    out.push_back({std::string(b->name()), b->available(), b->unavailable_reason()});
  return out;
}

Selection BackendRegistry::select(std::span<const std::string> allowed) const {
  Selection s;
  if (allowed.empty()) {
    s.error = "the function allows no accelerator backend";
    return s;
  }
  s.preferred = allowed.front();
  std::vector<std::string> skipped;
  for (const auto& name : allowed) {
    auto b = get(name);
    if (!b) {
      skipped.push_back(fmt::format("{} is not built into this unifnd", name));
    } else if (!b->available()) {
      skipped.push_back(fmt::format("{} is unavailable ({})", name, b->unavailable_reason()));
    } else {
      s.backend = std::move(b);
      if (!skipped.empty())
        s.fallback = fmt::format("{}; using {}", fmt::join(skipped, "; "), name);
      return s;
    }
  }
  s.error = fmt::format("none of the allowed accelerator backends can run here: {}",
                        fmt::join(skipped, "; "));
  return s;
}

}  // namespace unifn::accel
