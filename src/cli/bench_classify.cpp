// The classify benchmark: a 28x28 PNG classified through the classify guest (restored from its
// snapshot, reset after each call, as per-request isolation runs it) and, in the same run, by the
// same preparation code (functions/runtime/image_prep.c, built for the host) and the same model on
// the same backend, called directly.
#include "src/cli/bench_classify.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <unifn/image_prep.h>

#include "accel/device.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"
#include "vmm/guest/function_vm.h"

namespace unifn::cli {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::string beside_unifnd(const std::vector<std::string>& candidates) {
  std::error_code ec;
  const auto dir = fs::canonical("/proc/self/exe", ec).parent_path();
  for (const auto& c : candidates)
    if (fs::is_regular_file(dir / c, ec)) return (dir / c).lexically_normal().string();
  return {};
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

void append(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data),
                                         static_cast<std::size_t>(size));
}

// A 28x28 gray PNG: a light, trouser-like shape on a dark background, as Fashion-MNIST draws items.
std::string test_png() {
  std::vector<std::uint8_t> px(28 * 28, 0);
  for (int y = 2; y < 27; ++y)
    for (int x = 8; x < 20; ++x)
      if (y < 10 || x < 13 || x > 14) px[static_cast<std::size_t>(y) * 28 + x] = 200;
  std::string png;
  if (!unifn_image_write_png(append, &png, 28, 28, 1, px.data(), 28))
    throw std::runtime_error("the benchmark's test PNG could not be encoded");
  return png;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read the classify model " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The host's half: the loaded model and its preparation, as the guest has them.
struct HostClassifier {
  accel::Backend& backend;
  accel::LoadedModel model;
  unifn_image_spec spec{};

  HostClassifier(accel::Backend& b, const std::string& bytes) : backend(b) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());  // Safe: chars as bytes.
    if (auto r = backend.load_model(std::span(p, bytes.size()), model); !r.ok())
      throw std::runtime_error("the host could not load the classify model: " + r.message);
    std::string lines;  // the metadata as the device hands it to the guest
    for (const auto& [k, v] : model.graph->metadata) lines += k + "=" + v + "\n";
    char err[200] = "";
    if (unifn_image_spec_parse(lines.c_str(), &spec, err, sizeof err) != 0)
      throw std::runtime_error(std::string("the classify model's metadata: ") + err);
  }

  int classify(const std::string& png) {
    onnx_model::Tensor in;
    in.type = onnx_model::DType::Float;
    in.dims = {1, spec.channels, spec.height, spec.width};
    in.f.resize(unifn_image_spec_floats(&spec));
    char err[200] = "";
    if (unifn_image_prepare(png.data(), png.size(), &spec, in.f.data(), in.f.size(), err,
                            sizeof err) != 0)
      throw std::runtime_error(std::string("the host could not prepare the image: ") + err);
    std::vector<onnx_model::Tensor> out;
    accel::ModelRunArgs args;
    args.graph = model.graph.get();
    args.inputs = std::span(&in, 1);
    args.outputs = &out;
    if (auto r = backend.run_model(args); !r.ok())
      throw std::runtime_error("the host could not run the classify model: " + r.message);
    if (out.empty() || out[0].f.empty())
      throw std::runtime_error("the classify model answered no scores");
    return static_cast<int>(std::max_element(out[0].f.begin(), out[0].f.end()) - out[0].f.begin());
  }
};

int class_of(const vmm::Outcome& o) {
  std::smatch m;
  if (!o.ok() || o.status != 200 ||
      !std::regex_search(o.body, m, std::regex("\"class\": ([0-9]+)")))
    throw std::runtime_error(fmt::format("the classify guest failed: {} (status {}, {})",
                                         o.stop.message, o.status, o.body));
  return std::stoi(m[1]);
}

}  // namespace

std::string find_classify_image() {
  return beside_unifnd({"functions/classify.elf", "../lib/unifn/functions/classify.elf"});
}

std::string find_classify_model() {
  return beside_unifnd({"models/fashion_cnn.onnx", "../lib/unifn/models/fashion_cnn.onnx"});
}

void bench_classify(const ClassifyBenchOptions& opts, std::ostream& out) {
  const std::string png = test_png();
  HostClassifier host(*opts.backend, read_file(opts.model));

  vmm::FunctionVmConfig cfg;
  cfg.memory_bytes = 128ull << 20;
  cfg.devices = {accel::device_factory(opts.backend)};
  cfg.device_key = "accel:" + std::string(opts.backend->name());
  cfg.platform = opts.platform;
  auto image = vmm::FunctionImage::load(opts.image);
  auto quiet = [](std::string_view) {};
  auto booted = vmm::FunctionVm::boot(image, cfg, quiet);
  const int fd = memfd_create("unifn-bench-classify", MFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
  auto snap = std::shared_ptr<const vmm::Snapshot>(booted->snapshot(vmm::Fd(fd)));
  booted.reset();
  auto vm = vmm::FunctionVm::restore(snap, image, cfg, quiet);
  const auto body = std::span(reinterpret_cast<const std::uint8_t*>(png.data()),
                              png.size());  // Safe: chars as bytes.
  std::vector<double> resets;               // the reset's part of each guest call
  auto guest_call = [&] {
    auto o = vm->invoke(body, "image/png", Clock::now() + std::chrono::seconds(30));
    const int c = class_of(o);
    const auto t0 = Clock::now();
    vm->reset();
    resets.push_back(us_since(t0));
    return c;
  };

  // Warm-up (pages mapped, caches filled), then guest and host alternating in short rounds so
  // that both see the same machine load.
  const int guest_class = guest_call(), host_class = host.classify(png);
  for (int i = 0; i < 5; ++i) guest_call(), host.classify(png);
  const int rounds = opts.quick ? 4 : 20, per_round = opts.quick ? 10 : 25;
  resets.clear();
  std::vector<double> guest, direct;
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < per_round; ++i) {
      auto t0 = Clock::now();
      guest_call();
      guest.push_back(us_since(t0));
    }
    for (int i = 0; i < per_round; ++i) {
      auto t0 = Clock::now();
      host.classify(png);
      direct.push_back(us_since(t0));
    }
  }
  const double g = median(guest), h = median(direct);
  out << fmt::format("classify_us_p50={:.1f}\n", g);
  out << fmt::format("classify_reset_us_p50={:.1f}\n", median(resets));
  out << fmt::format("classify_host_us_p50={:.1f}\n", h);
  out << fmt::format("classify_guest_over_host={:.3f}\n", g > 0 ? h / g : 0.0);
  out << fmt::format("classify_results_match={}\n", guest_class == host_class ? 1 : 0);
  out.flush();
}

}  // namespace unifn::cli
