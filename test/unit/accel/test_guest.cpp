// Each accelerator op through a real guest on the CPU backend, the example functions, and sessions
// across snapshots.
#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <cstring>
#include <random>

#include <stb_image.h>
#include <stb_image_write.h>

#include <unifn/accel_probe.h>
#include "accel/cpu/cpu_backend.h"
#include "accel/device.h"
#include "vmm/guest/function_vm.h"
#include "accel/reference/reference.h"
#include "test/support/test_image.h"

using namespace unifn;

namespace {

std::string example(const std::string& name) {
  return std::string(UNIFN_FUNCTIONS_DIR) + "/" + name + ".elf";
}

std::shared_ptr<accel::Backend> cpu() {
  static std::shared_ptr<accel::Backend> b = accel::make_cpu_backend();
  return b;
}

struct Fn {
  std::shared_ptr<const vmm::FunctionImage> image;
  vmm::FunctionVmConfig cfg;
  explicit Fn(const std::string& path, bool with_device = true)
      : image(vmm::FunctionImage::load(path)) {
    if (with_device) cfg.devices = {accel::device_factory(cpu())};
  }
  std::unique_ptr<vmm::FunctionVm> boot() const {
    return vmm::FunctionVm::boot(image, cfg, [](std::string_view) {});
  }
};

using Bytes = std::vector<std::uint8_t>;

vmm::Outcome invoke(vmm::FunctionVm& vm, const Bytes& body) {
  return vm.invoke(body, "application/octet-stream",
                   std::chrono::steady_clock::now() + std::chrono::seconds(20));
}

// resize + memcpy rather than insert: GCC 12 warns wrongly about insert into an empty vector.
void append_bytes(Bytes& b, const void* p, std::size_t n) {
  const std::size_t at = b.size();
  b.resize(at + n);
  if (n) std::memcpy(b.data() + at, p, n);
}
template <typename T>
void append(Bytes& b, const T& v) {
  append_bytes(b, &v, sizeof(T));
}
template <typename T>
void append(Bytes& b, const std::vector<T>& v) {
  append_bytes(b, v.data(), v.size() * sizeof(T));
}
template <typename T>
std::vector<T> as(const std::string& s) {
  std::vector<T> v(s.size() / sizeof(T));
  std::memcpy(v.data(), s.data(), v.size() * sizeof(T));
  return v;
}

Bytes probe(std::uint32_t cmd, std::uint32_t a = 0, std::uint32_t b = 0, std::uint32_t c = 0,
            std::uint32_t d = 0) {
  Bytes body;
  append(body, probe_cmd{cmd, a, b, c, d});
  return body;
}

int max_diff(const std::vector<std::uint8_t>& x, const std::vector<std::uint8_t>& y) {
  REQUIRE(x.size() == y.size());
  int d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(int(x[i]) - int(y[i])));
  return d;
}

Bytes sgemm_body(std::uint32_t m, std::uint32_t n, std::uint32_t k, const std::vector<float>& a,
                 const std::vector<float>& b) {
  Bytes body;
  append(body, m), append(body, n), append(body, k);
  append(body, a), append(body, b);
  return body;
}

}  // namespace

TEST_CASE(
    "the sgemm example multiplies through the accelerator and answers 400 to malformed sizes") {
  Fn fn(example("sgemm"));
  auto vm = fn.boot();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  struct Size {
    std::uint32_t m, n, k;
  };
  for (auto s : {Size{1, 1, 1}, Size{3, 4, 5}, Size{64, 48, 33}, Size{256, 256, 256}}) {
    std::vector<float> a(std::size_t(s.m) * s.k), b(std::size_t(s.k) * s.n),
        want(std::size_t(s.m) * s.n);
    for (auto& x : a) x = u(rng);
    for (auto& x : b) x = u(rng);
    accel::reference::sgemm({s.m, s.n, s.k, 1, 0, a, s.k, b, s.n, want, s.n});
    auto out = invoke(*vm, sgemm_body(s.m, s.n, s.k, a, b));
    REQUIRE(out.ok());
    REQUIRE(out.status == 200);
    CHECK(out.content_type == "application/octet-stream");
    auto c = as<float>(out.body);
    REQUIRE(c.size() == want.size());
    for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(c[i] == Approx(want[i]).margin(1e-5 * s.k));
  }
  std::vector<float> a(6, 1), b(6, 1);
  for (const auto& body :
       {Bytes{1, 2, 3, 4, 5}, sgemm_body(0, 2, 3, {}, {}), sgemm_body(2, 3, 3, a, b),
        sgemm_body(2, 2, 3, a, std::vector<float>(5, 1)), sgemm_body(70000, 1, 1, {}, {})}) {
    auto out = invoke(*vm, body);
    REQUIRE(out.ok());
    CHECK(out.status == 400);
  }
  auto ok = invoke(*vm, sgemm_body(2, 2, 3, a, b));
  REQUIRE(ok.status == 200);
  CHECK(as<float>(ok.body) == std::vector<float>{3, 3, 3, 3});
}

TEST_CASE("the sgemm example without a device answers 503") {
  Fn fn(example("sgemm"), false);
  auto vm = fn.boot();
  std::vector<float> a(1, 2), b(1, 3);
  auto out = invoke(*vm, sgemm_body(1, 1, 1, a, b));
  REQUIRE(out.ok());
  CHECK(out.status == 503);
  CHECK_THAT(out.body, Catch::Contains("no accelerator session"));
}

TEST_CASE(
    "the edges example answers a PNG of the Sobel edges of a PNG or JPEG, decoded in the guest") {
  Fn fn(example("edges"));
  auto vm = fn.boot();
  const int w = 96, h = 64;
  for (int channels : {3, 4, 1}) {
    for (bool jpeg : {false, true}) {
      INFO("channels " << channels << (jpeg ? " JPEG" : " PNG"));
      auto px = test::test_image(w, h, static_cast<std::uint32_t>(channels), 5);
      Bytes file;
      auto sink = [](void* ctx, void* data, int size) {
        auto* f = static_cast<Bytes*>(ctx);
        const auto* p = static_cast<const std::uint8_t*>(data);
        f->insert(f->end(), p, p + size);
      };
      if (jpeg)
        REQUIRE(stbi_write_jpg_to_func(sink, &file, w, h, channels, px.data(), 90));
      else
        REQUIRE(stbi_write_png_to_func(sink, &file, w, h, channels, px.data(), w * channels));
      // What the guest decodes (same stb_image), then grayscale and Sobel by the reference.
      int dw, dh, dn;
      const int want_c = channels <= 2 ? 1 : channels;
      stbi_uc* decoded =
          stbi_load_from_memory(file.data(), static_cast<int>(file.size()), &dw, &dh, &dn, want_c);
      REQUIRE(decoded);
      std::vector<std::uint8_t> rgb(decoded, decoded + std::size_t(w) * h * want_c),
          gray(std::size_t(w) * h), edges(gray.size());
      stbi_image_free(decoded);
      if (want_c == 1)
        gray = rgb;
      else {
        accel::ImageArgs g;
        g.op = accel::ImageOp::Grayscale;
        g.width = g.out_width = w, g.height = g.out_height = h,
        g.channels = static_cast<std::uint32_t>(want_c), g.out_channels = 1;
        g.src = rgb, g.dst = gray;
        accel::reference::image(g);
      }
      accel::ImageArgs s;
      s.op = accel::ImageOp::Sobel;
      s.width = s.out_width = w, s.height = s.out_height = h, s.channels = s.out_channels = 1;
      s.src = gray, s.dst = edges;
      accel::reference::image(s);

      auto out = invoke(*vm, file);
      REQUIRE(out.ok());
      REQUIRE(out.status == 200);
      CHECK(out.content_type == "image/png");
      int ow, oh, on;
      const auto* body =
          reinterpret_cast<const stbi_uc*>(out.body.data());  // Safe: the body's chars as bytes.
      stbi_uc* png =
          stbi_load_from_memory(body, static_cast<int>(out.body.size()), &ow, &oh, &on, 0);
      REQUIRE(png);
      CHECK(ow == w);
      CHECK(oh == h);
      CHECK(on == 1);
      std::vector<std::uint8_t> got(png, png + std::size_t(w) * h);
      stbi_image_free(png);
      CHECK(max_diff(got, edges) == 0);
    }
  }
  auto bad = invoke(*vm, Bytes{'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  REQUIRE(bad.ok());
  CHECK(bad.status == 400);
}

TEST_CASE("NOOP, MinMax and every image op through the guest match the reference") {
  Fn fn(UNIFN_ACCEL_PROBE);
  auto vm = fn.boot();
  auto noop = invoke(*vm, probe(PROBE_NOOP_TIMES, 10));
  REQUIRE(noop.ok());
  CHECK(noop.status == 200);
  CHECK(noop.body.size() == 40);

  std::vector<double> in = {3, -7.5, 12, 0.25, 12, 4};
  Bytes body = probe(PROBE_MINMAX, static_cast<std::uint32_t>(in.size()), 10, 20);
  append(body, in);
  auto mm = invoke(*vm, body);
  REQUIRE(mm.status == 200);
  auto got = as<double>(mm.body);
  std::vector<double> want(in.size());
  double mn, mx;
  accel::reference::minmax({in, 10, 20, want, &mn, &mx});
  REQUIRE(got.size() == in.size() + 2);
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-12));
  CHECK(got[in.size()] == -7.5);
  CHECK(got[in.size() + 1] == 12);

  struct Op {
    unifn_accel_image_params p;
    int tolerance;
  };
  using P = unifn_accel_image_params;
  for (auto op : {Op{P{UNIFN_ACCEL_IMAGE_GRAYSCALE, 50, 30, 3, 50, 30, 1, 0, 0, 0}, 0},
                  Op{P{UNIFN_ACCEL_IMAGE_GRAYSCALE, 50, 30, 4, 50, 30, 1, 0, 0, 0}, 0},
                  Op{P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 50, 30, 3, 50, 30, 3, 5, 0, 0}, 1},
                  Op{P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 50, 30, 1, 50, 30, 1, 9, 2.5f, 0}, 1},
                  Op{P{UNIFN_ACCEL_IMAGE_SOBEL, 50, 30, 1, 50, 30, 1, 0, 0, 0}, 0},
                  Op{P{UNIFN_ACCEL_IMAGE_RESIZE, 50, 30, 3, 120, 70, 3, 0, 0, 0}, 1},
                  Op{P{UNIFN_ACCEL_IMAGE_RESIZE, 50, 30, 4, 17, 9, 4, 0, 0, 0}, 1}}) {
    const auto& p = op.p;
    INFO("image op " << p.op << " channels " << p.channels);
    auto px = test::test_image(p.width, p.height, p.channels, p.op);
    Bytes req = probe(PROBE_IMAGE);
    append(req, p);
    append(req, px);
    auto out = invoke(*vm, req);
    REQUIRE(out.ok());
    REQUIRE(out.status == 200);
    std::vector<std::uint8_t> want_px(std::size_t(p.out_width) * p.out_height * p.out_channels);
    accel::ImageArgs a;
    a.op = static_cast<accel::ImageOp>(p.op);
    a.width = p.width, a.height = p.height, a.channels = p.channels;
    a.out_width = p.out_width, a.out_height = p.out_height, a.out_channels = p.out_channels;
    a.ksize = p.ksize, a.sigma = p.sigma;
    a.src = px, a.dst = want_px;
    accel::reference::image(a);
    CHECK(max_diff(as<std::uint8_t>(out.body), want_px) <= op.tolerance);
  }
}

TEST_CASE(
    "a call whose SGEMM cannot finish before its deadline answers 500 from the guest, and the "
    "SGEMM never runs") {
  Fn fn(UNIFN_ACCEL_PROBE, false);
  accel::DeviceOptions opts;
  opts.rates = std::make_shared<accel::WorkRates>(cpu());
  opts.rates->set(accel::WorkKind::MultiplyAdds,
                  1e4);  // as if the backend were slow: 128^3 takes 210 s, the call has 20
  int sgemms = 0;
  std::vector<std::string> errors;
  opts.on_op = [&](std::string_view, std::string_view op) { sgemms += op == "sgemm"; };
  opts.on_error = [&](std::string_view why) { errors.emplace_back(why); };
  fn.cfg.devices = {accel::device_factory(cpu(), opts)};
  auto vm = fn.boot();
  REQUIRE(invoke(*vm, probe(PROBE_SGEMM_SETUP, 128, 128, 128, 5)).status == 200);
  auto refused = invoke(*vm, probe(PROBE_SGEMM_RUN, 3));
  REQUIRE(refused.ok());
  CHECK(refused.status == 500);
  CHECK(sgemms == 0);
  REQUIRE(errors.size() == 1);  // the probe gives up at the first error
  CHECK_THAT(errors[0],
             Catch::Contains("128x128x128: 2097152 multiply-adds would take about 209.7 s"));

  opts.rates->set(accel::WorkKind::MultiplyAdds, 1e12);  // the same devices, now a fast backend
  auto served = invoke(*vm, probe(PROBE_SGEMM_RUN, 3));
  REQUIRE(served.ok());
  CHECK(served.status == 200);
  CHECK(sgemms == 3);
}

TEST_CASE("malformed requests from a guest get their statuses while the guest goes on") {
  Fn fn(UNIFN_ACCEL_PROBE);
  auto vm = fn.boot();
  auto out = invoke(*vm, probe(PROBE_BAD_REQUESTS));
  REQUIRE(out.ok());
  REQUIRE(out.status == 200);
  CHECK(out.body ==
        "unknown_op=3 unknown_session=4 unknown_command=3 outside_ram=2 short_arg=2 overlap=2 "
        "good=0 max=4");
  auto again = invoke(*vm, probe(PROBE_SESSION));
  REQUIRE(again.ok());
  CHECK_THAT(again.body, Catch::Contains("noop=0 status=0"));
}

TEST_CASE("vaccel_genop runs ops in vAccel's generic form") {
  Fn fn(UNIFN_ACCEL_PROBE);
  auto vm = fn.boot();
  auto out = invoke(*vm, probe(PROBE_GENOP));
  REQUIRE(out.ok());
  CHECK(out.body == "minmax=0 min=2 max=8 out=0,6,3 noop=0 bad=22");
}

TEST_CASE(
    "sessions opened during init survive snapshot, restore and reset, later ones go with the "
    "reset") {
  Fn fn(UNIFN_ACCEL_PROBE);
  auto booted = fn.boot();
  auto first = invoke(*booted, probe(PROBE_SESSION));
  REQUIRE(first.status == 200);
  CHECK(first.body == "session=1 hint=7 init=0 noop=0 status=0 backend=cpu");

  auto fresh = fn.boot();  // snapshot a VM that has served nothing yet
  std::shared_ptr<const vmm::Snapshot> snap =
      fresh->snapshot(vmm::Fd(memfd_create("accel-test", MFD_CLOEXEC)));
  auto restore = [&] {
    return vmm::FunctionVm::restore(snap, fn.image, fn.cfg, [](std::string_view) {});
  };
  auto a = restore(), b = restore();
  for (auto* vm : {a.get(), b.get()}) {
    auto out = invoke(*vm, probe(PROBE_SESSION));
    REQUIRE(out.ok());
    CHECK(out.body == "session=1 hint=7 init=0 noop=0 status=0 backend=cpu");
  }
  // A session opened while serving a request exists until the reset...
  auto opened = invoke(*a, probe(PROBE_OPEN_SESSION));
  REQUIRE(opened.status == 200);
  CHECK(opened.body == "rc=0 session=2");
  CHECK(invoke(*a, probe(PROBE_USE_SESSION, 2)).body == "rc=0 status=0");
  a->reset();
  // ...and not after it, while the init session still works.
  CHECK(invoke(*a, probe(PROBE_USE_SESSION, 2)).body == "rc=22 status=4");
  a->reset();
  CHECK(invoke(*a, probe(PROBE_USE_SESSION, 1)).body == "rc=0 status=0");
  a->reset();
  // Freeing the init session in one request is undone by the reset too.
  CHECK(invoke(*a, probe(PROBE_FREE_SESSION, 1)).body == "rc=0 status=0");
  CHECK(invoke(*a, probe(PROBE_USE_SESSION, 1)).body == "rc=22 status=4");
  a->reset();
  CHECK(invoke(*a, probe(PROBE_SESSION)).body ==
        "session=1 hint=7 init=0 noop=0 status=0 backend=cpu");
  // The other instance was never affected.
  CHECK(invoke(*b, probe(PROBE_USE_SESSION, 1)).body == "rc=0 status=0");
}
