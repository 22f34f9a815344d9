// The daemon's accelerated functions end to end: sgemm and edges over HTTP, backend choice, 503s,
// metrics, bench-accel.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <stb_image.h>
#include <stb_image_write.h>

#include "accel/backend.h"
#include "test/e2e/daemon_fixture.h"
#include "accel/reference/reference.h"

using namespace unifn::test;

namespace {

std::string temp_file(const std::string& tag) {
  return "/tmp/unifn-e2e-" + tag + "-" + std::to_string(getpid());
}

void write_file(const std::string& path, const void* data, std::size_t n) {
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// POSTs the file at `in` and leaves the answer's body at `out`; returns the status code.
std::string post_file(const Daemon& d, const std::string& fn, const std::string& in,
                      const std::string& out) {
  return curl("-o " + out + " -w '%{http_code}' -X POST --data-binary @" + in + " " +
              d.url("/function/" + fn));
}

bool cuda_available(const Daemon& d) {
  return curl(d.url("/metrics")).find("unifn_accel_backend_available{backend=\"cuda\"} 1") !=
         std::string::npos;
}

// Drop-ins for the test: each function's image from the build tree, with the given accel list.
struct Functions {
  TempDir dir;
  void add(const std::string& name, const std::string& image, const std::string& accel) {
    std::ofstream(dir.str() + "/" + name + ".yaml")
        << "name: " << name << "\nimage: " << UNIFN_FUNCTIONS_DIR << "/" << image
        << ".elf\nmemory_mb: 128\nmax_instances: 2\naccel: " << accel << "\n";
  }
};

}  // namespace

TEST_CASE("sgemm over HTTP multiplies on the chosen backend and answers 400 to malformed sizes") {
  Daemon d;
  const std::uint32_t m = 33, n = 17, k = 70;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> a(m * k), b(k * n);
  for (auto& x : a) x = u(rng);
  for (auto& x : b) x = u(rng);
  std::string body(12 + (a.size() + b.size()) * 4, '\0');
  const std::uint32_t dims[3] = {m, n, k};
  std::memcpy(body.data(), dims, 12);
  std::memcpy(body.data() + 12, a.data(), a.size() * 4);
  std::memcpy(body.data() + 12 + a.size() * 4, b.data(), b.size() * 4);
  const auto in = temp_file("sgemm-in"), out = temp_file("sgemm-out");
  write_file(in, body.data(), body.size());
  REQUIRE(post_file(d, "sgemm", in, out) == "200");
  auto answer = read_file(out);
  REQUIRE(answer.size() == m * n * 4);
  std::vector<float> c(m * n);
  std::memcpy(c.data(), answer.data(), answer.size());
  double worst = 0;
  for (std::uint32_t i = 0; i < m; ++i)
    for (std::uint32_t j = 0; j < n; ++j) {
      double want = 0;
      for (std::uint32_t p = 0; p < k; ++p) want += double(a[i * k + p]) * b[p * n + j];
      worst = std::max(worst, std::abs(want - c[i * n + j]));
    }
  CHECK(worst < 1e-4);

  const std::uint32_t zero[3] = {0, 4, 4};
  write_file(in, zero, sizeof zero);
  CHECK(post_file(d, "sgemm", in, out) == "400");
  CHECK_THAT(read_file(out), Catch::Contains("m=0"));
  write_file(in, dims, sizeof dims);  // sizes without the matrices
  CHECK(post_file(d, "sgemm", in, out) == "400");
  unlink(in.c_str());
  unlink(out.c_str());

  const std::string backend = cuda_available(d) ? "cuda" : "cpu";
  CHECK_THAT(curl(d.url("/system/function/sgemm")),
             Catch::Contains("\"unifn.accel.backend\":\"" + backend + "\""));
  CHECK_THAT(curl(d.url("/metrics")),
             Catch::Contains("unifn_accel_ops_total{backend=\"" + backend + "\",op=\"sgemm\"} 1"));
}

TEST_CASE(
    "edges over HTTP answers the PNG of the Sobel edges, and 400 to a body that is not an image") {
  Daemon d;
  const int w = 40, h = 30;
  std::vector<std::uint8_t> rgb(std::size_t(w) * h * 3, 20);
  for (int y = 8; y < 22; ++y)
    for (int x = 10; x < 30; ++x)
      for (int c = 0; c < 3; ++c)
        rgb[(std::size_t(y) * w + x) * 3 + c] = static_cast<std::uint8_t>(200 + c * 20);
  std::string png;
  auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size);
  };
  REQUIRE(stbi_write_png_to_func(sink, &png, w, h, 3, rgb.data(), w * 3));
  const auto in = temp_file("edges-in"), out = temp_file("edges-out");
  write_file(in, png.data(), png.size());
  REQUIRE(post_file(d, "edges", in, out) == "200");
  auto answer = read_file(out);
  int ow = 0, oh = 0, on = 0;
  const auto* bytes =
      reinterpret_cast<const stbi_uc*>(answer.data());  // Safe: the body's chars as bytes.
  stbi_uc* got = stbi_load_from_memory(bytes, static_cast<int>(answer.size()), &ow, &oh, &on, 0);
  REQUIRE(got);
  std::vector<std::uint8_t> edges(got, got + std::size_t(w) * h);
  stbi_image_free(got);
  CHECK((ow == w && oh == h && on == 1));

  // The same two steps by the reference implementation.
  using unifn::accel::ImageArgs, unifn::accel::ImageOp;
  std::vector<std::uint8_t> gray(std::size_t(w) * h), want(gray.size());
  ImageArgs g;
  g.op = ImageOp::Grayscale;
  g.width = g.out_width = w, g.height = g.out_height = h, g.channels = 3, g.out_channels = 1;
  g.src = rgb, g.dst = gray;
  unifn::accel::reference::image(g);
  ImageArgs s;
  s.op = ImageOp::Sobel;
  s.width = s.out_width = w, s.height = s.out_height = h, s.channels = s.out_channels = 1;
  s.src = gray, s.dst = want;
  unifn::accel::reference::image(s);
  CHECK(edges == want);
  CHECK(edges[std::size_t(8) * w + 20] > 100);  // the square's top edge
  CHECK(edges[std::size_t(15) * w + 20] == 0);  // inside it, nothing

  // Each op of the call counted under its own name (the device caches one counter per name).
  CHECK(post_file(d, "edges", in, out) == "200");
  const std::string backend = cuda_available(d) ? "cuda" : "cpu";
  auto metrics = curl(d.url("/metrics"));
  CHECK_THAT(metrics, Catch::Contains("unifn_accel_ops_total{backend=\"" + backend +
                                      "\",op=\"image-grayscale\"} 2"));
  CHECK_THAT(metrics, Catch::Contains("unifn_accel_ops_total{backend=\"" + backend +
                                      "\",op=\"image-sobel\"} 2"));

  write_file(in, "not an image", 12);
  CHECK(post_file(d, "edges", in, out) == "400");
  CHECK_THAT(read_file(out), Catch::Contains("not a PNG or JPEG"));
  unlink(in.c_str());
  unlink(out.c_str());
}

TEST_CASE(
    "a function that allows only cuda answers 503 with the reason where no GPU serves, [cuda, cpu] "
    "falls back") {
  Functions fns;
  fns.add("gpu-only", "sgemm", "[cuda]");
  fns.add("gpu-first", "sgemm", "[cuda, cpu]");
  Daemon d("--functions-dir " + fns.dir.str());
  const std::uint32_t one[5] = {1, 1, 1, 0x40000000u, 0x40400000u};  // 1x1 times 1x1: 2 * 3
  const auto in = temp_file("gpu-in"), out = temp_file("gpu-out");
  write_file(in, one, sizeof one);
  CHECK(post_file(d, "gpu-first", in, out) == "200");
  CHECK(read_file(out) == std::string("\0\0\xc0\x40", 4));  // 6.0f
  auto metrics = curl(d.url("/metrics"));
  if (cuda_available(d)) {
    CHECK(post_file(d, "gpu-only", in, out) == "200");
    CHECK_THAT(metrics, !Catch::Contains("unifn_accel_fallbacks_total{"));
  } else {
    CHECK(post_file(d, "gpu-only", in, out) == "503");
    CHECK_THAT(read_file(out), Catch::Contains("function gpu-only cannot run on this machine") &&
                                   Catch::Contains("cuda"));
    CHECK_THAT(curl(d.url("/system/function/gpu-only")), Catch::Contains("\"unifn.unavailable\":"));
    CHECK_THAT(d.log(), Catch::Contains("gpu-only[-]: [unifn] cannot run on this machine"));
    // The fallback is logged once and counted once, not per call.
    CHECK(post_file(d, "gpu-first", in, out) == "200");
    metrics = curl(d.url("/metrics"));
    CHECK_THAT(
        metrics,
        Catch::Contains(
            "unifn_accel_fallbacks_total{from=\"cuda\",function=\"gpu-first\",to=\"cpu\"} 1"));
    auto log = d.log();
    auto first = log.find("gpu-first[-]: [unifn] accelerator: cuda is");
    REQUIRE(first != std::string::npos);
    CHECK(log.find("gpu-first[-]: [unifn] accelerator:", first + 1) == std::string::npos);
    CHECK_THAT(metrics, Catch::Contains("unifn_accel_backend_available{backend=\"cpu\"} 1"));
  }
  unlink(in.c_str());
  unlink(out.c_str());
}

TEST_CASE("the daemon's accel.backends limits what functions may use") {
  Functions fns;
  fns.add("gpu-only", "sgemm", "[cuda]");
  fns.add("any", "sgemm", "[cuda, cpu]");
  const auto cfg = temp_file("accel-cfg") + ".yaml";
  std::ofstream(cfg) << "listen: 127.0.0.1:0\nfunctions_dirs: [" << fns.dir.str()
                     << "]\naccel: {backends: [cpu]}\n";
  Daemon d("--config " + cfg);
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST " + d.url("/function/gpu-only")) == "503");
  CHECK_THAT(curl("-X POST " + d.url("/function/gpu-only")),
             Catch::Contains(
                 "allows only cuda and the daemon's accel.backends (cpu) allows none of them"));
  CHECK_THAT(curl(d.url("/system/function/any")),
             Catch::Contains("\"unifn.accel.backend\":\"cpu\""));
  unlink(cfg.c_str());
}

TEST_CASE(
    "unifnd bench-accel prints its figures, it and unifnd bench refuse a backend or probe they "
    "cannot use") {
  auto r = sh(std::string(UNIFN_BUILD_DIR) + "/unifnd bench-accel --quick 2>&1");
  CHECK(r.status == 0);
  for (const char* key : {"backend=cpu\n", "noop_roundtrip_us_p50=", "sgemm_256_guest_over_host=",
                          "sgemm_1024_guest_over_host=", "classify_us_p50=",
                          "classify_guest_over_host=", "classify_results_match=1\n"})
    CHECK_THAT(r.out, Catch::Contains(key));
  // Refused as the command line is read, by the rule a drop-in's accel is read with: exit 2.
  auto bad = sh(std::string(UNIFN_BUILD_DIR) + "/unifnd bench-accel --backend tpu 2>&1");
  CHECK(bad.status == 2);
  CHECK_THAT(bad.out,
             Catch::Contains("--backend: 'tpu' is not an accelerator backend (cuda or cpu)"));
  auto no_probe =
      sh(std::string(UNIFN_BUILD_DIR) + "/unifnd bench-accel --probe /nonexistent/probe.elf 2>&1");
  CHECK(no_probe.status == 2);
  CHECK_THAT(no_probe.out, Catch::Contains("--probe") && Catch::Contains("/nonexistent/probe.elf"));
  auto bench = sh(std::string(UNIFN_BUILD_DIR) + "/unifnd bench " + UNIFN_FUNCTIONS_DIR +
                  "/echo.elf --accel tpu 2>&1");
  CHECK(bench.status == 2);
  CHECK_THAT(bench.out,
             Catch::Contains("--accel") && Catch::Contains("'tpu' is not an accelerator backend"));
}
