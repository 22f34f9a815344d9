// Loading the embedded CPU backend module: written to a sealed memfd once and dlopen()ed from it.
#include "accel/cpu/cpu_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <mutex>

extern "C" {
extern const unsigned char unifn_accel_cpu_module_start[];
extern const unsigned long long unifn_accel_cpu_module_size;
}

namespace unifn::accel {

namespace {

class LazyCpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  bool available() const override { return load() != nullptr; }
  std::string unavailable_reason() const override {
    load();
    return error_;
  }
  std::string detail() const override { return load() ? real_->detail() : std::string(); }
  Result noop() override { return real()->noop(); }
  Result sgemm(const SgemmArgs& a) override { return real()->sgemm(a); }
  Result minmax(const MinmaxArgs& a) override { return real()->minmax(a); }
  Result image(const ImageArgs& a) override { return real()->image(a); }
  bool runs_models() const override { return true; }  // what the module's backend says
  Result load_model(std::span<const std::uint8_t> bytes, LoadedModel& out) override {
    return real()->load_model(bytes, out);
  }
  std::shared_ptr<const onnx_model::Graph> find_model(const ModelDigest& digest) override {
    return real()->find_model(digest);
  }
  Result run_model(const ModelRunArgs& a) override { return real()->run_model(a); }

 private:
  Backend* real() const {
    if (Backend* b = load()) return b;
    throw std::runtime_error(
        fmt::format("the cpu accelerator backend cannot be loaded: {}", error_));
  }
  Backend* load() const {
    std::call_once(once_, [this] {
      try {
        real_.reset(open_module());
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    });
    return real_.get();
  }
  static Backend* open_module() {
    int fd = memfd_create("unifn-accel-cpu", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) throw std::runtime_error(fmt::format("memfd_create: {}", std::strerror(errno)));
    for (unsigned long long done = 0; done < unifn_accel_cpu_module_size;) {
      ssize_t n =
          write(fd, unifn_accel_cpu_module_start + done, unifn_accel_cpu_module_size - done);
      if (n <= 0) {
        close(fd);
        throw std::runtime_error(fmt::format("writing the module: {}", std::strerror(errno)));
      }
      done += static_cast<unsigned long long>(n);
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    // The module and the libraries it needs stay loaded for the life of the process.
    void* lib = dlopen(fmt::format("/proc/self/fd/{}", fd).c_str(), RTLD_NOW | RTLD_LOCAL);
    close(fd);
    if (!lib) throw std::runtime_error(dlerror());
    using Create = Backend* (*)();
    // Safe: the symbol is the module's extern "C" factory of exactly this type.
    auto create = reinterpret_cast<Create>(dlsym(lib, "unifn_accel_cpu_create"));
    if (!create) throw std::runtime_error("the module has no unifn_accel_cpu_create");
    return create();
  }

  mutable std::once_flag once_;
  mutable std::unique_ptr<Backend> real_;
  mutable std::string error_;
};

}  // namespace

std::unique_ptr<Backend> make_lazy_cpu_backend() { return std::make_unique<LazyCpuBackend>(); }

}  // namespace unifn::accel
