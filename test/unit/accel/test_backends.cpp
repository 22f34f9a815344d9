// Backends: the CPU backend against the reference ops (exact or within the stated tolerance),
// selection, CUDA's probe.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "accel/cpu/cpu_backend.h"
#include "test/support/fake_backend.h"
#include "test/support/test_image.h"
#include "accel/reference/reference.h"
#include "accel/registry.h"
#ifdef UNIFN_HAVE_CUDA
#include "accel/cuda/cuda_backend.h"
#endif

using namespace unifn;
using namespace unifn::accel;

namespace {

ImageArgs image_args(ImageOp op, std::uint32_t w, std::uint32_t h, std::uint32_t c,
                     const std::vector<std::uint8_t>& src, std::vector<std::uint8_t>& dst,
                     std::uint32_t ow = 0, std::uint32_t oh = 0) {
  ImageArgs a;
  a.op = op;
  a.width = w, a.height = h, a.channels = c;
  a.out_width = ow ? ow : w, a.out_height = oh ? oh : h;
  a.out_channels = op == ImageOp::Grayscale ? 1 : c;
  dst.assign(std::size_t(a.out_width) * a.out_height * a.out_channels, 0xCD);
  a.src = src;
  a.dst = dst;
  return a;
}

int max_diff(const std::vector<std::uint8_t>& x, const std::vector<std::uint8_t>& y) {
  int d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(int(x[i]) - int(y[i])));
  return d;
}

using Fake = test::FakeBackend;

}  // namespace

TEST_CASE("CPU SGEMM matches the reference (relative 1e-5 of the row's magnitude)") {
  auto cpu = make_cpu_backend();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  struct Case {
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
  };
  for (auto c : {Case{1, 1, 1, 1, 1, 1, 1, 0}, Case{3, 4, 5, 5, 4, 4, 1, 0},
                 Case{17, 33, 65, 70, 40, 35, 0.5f, 2}, Case{128, 96, 200, 200, 96, 96, 1, 0},
                 Case{64, 1, 300, 300, 1, 1, -1, 0.25f}}) {
    std::vector<float> a(std::size_t(c.m - 1) * c.lda + c.k), b(std::size_t(c.k - 1) * c.ldb + c.n),
        c0(std::size_t(c.m - 1) * c.ldc + c.n);
    for (auto* v : {&a, &b, &c0})
      for (auto& x : *v) x = u(rng);
    auto c1 = c0, c2 = c0;
    SgemmArgs args{c.m, c.n, c.k, c.alpha, c.beta, a, c.lda, b, c.ldb, c1, c.ldc};
    REQUIRE(cpu->sgemm(args).ok());
    args.c = c2;
    reference::sgemm(args);
    for (std::size_t i = 0; i < c1.size(); ++i)
      REQUIRE(c1[i] == Approx(c2[i]).margin(1e-5 * (1 + c.k)));
  }
}

TEST_CASE("CPU MinMax matches the reference") {
  auto cpu = make_cpu_backend();
  std::vector<double> in = {4.5, -2, 10, 3.25, 10, -2};
  std::vector<double> o1(in.size()), o2(in.size());
  double mn1, mx1, mn2, mx2;
  REQUIRE(cpu->minmax({in, 0, 255, o1, &mn1, &mx1}).ok());
  reference::minmax({in, 0, 255, o2, &mn2, &mx2});
  CHECK(mn1 == -2);
  CHECK(mx1 == 10);
  CHECK(mn2 == mn1);
  CHECK(mx2 == mx1);
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(o1[i] == Approx(o2[i]).epsilon(1e-12));
  CHECK(o1[2] == 255);
  CHECK(o1[1] == 0);
  std::vector<double> flat = {3, 3}, of(2);
  REQUIRE(cpu->minmax({flat, -5, 5, of, &mn1, &mx1}).ok());
  CHECK(of == std::vector<double>{-5, -5});
}

TEST_CASE(
    "CPU image ops match the reference: grayscale and Sobel exactly, blur and resize within 1") {
  auto cpu = make_cpu_backend();
  std::vector<std::uint8_t> d1, d2;
  for (std::uint32_t c : {3u, 4u}) {
    auto src = test::test_image(61, 37, c, c);
    REQUIRE(cpu->image(image_args(ImageOp::Grayscale, 61, 37, c, src, d1)).ok());
    reference::image(image_args(ImageOp::Grayscale, 61, 37, c, src, d2));
    CHECK(max_diff(d1, d2) == 0);
  }
  auto gray = test::test_image(80, 45, 1, 3);
  REQUIRE(cpu->image(image_args(ImageOp::Sobel, 80, 45, 1, gray, d1)).ok());
  reference::image(image_args(ImageOp::Sobel, 80, 45, 1, gray, d2));
  CHECK(max_diff(d1, d2) == 0);
  CHECK(*std::max_element(d1.begin(), d1.end()) == 255);  // the box's edges saturate

  // Wide enough that the CPU backend works in bands of rows: the seams must not show.
  auto wide = test::test_image(4100, 2100, 1, 4);
  REQUIRE(cpu->image(image_args(ImageOp::Sobel, 4100, 2100, 1, wide, d1)).ok());
  reference::image(image_args(ImageOp::Sobel, 4100, 2100, 1, wide, d2));
  CHECK(max_diff(d1, d2) == 0);

  struct Blur {
    std::uint32_t c, k;
    float sigma;
  };
  for (auto b : {Blur{1, 1, 0}, Blur{1, 3, 0}, Blur{3, 5, 0}, Blur{4, 7, 0}, Blur{1, 5, 1.5f},
                 Blur{2, 9, 2.0f}, Blur{3, 15, 0}, Blur{1, 31, 6.0f}}) {
    INFO("channels " << b.c << " ksize " << b.k << " sigma " << b.sigma);
    auto src = test::test_image(53, 29, b.c, b.k);
    auto a1 = image_args(ImageOp::GaussianBlur, 53, 29, b.c, src, d1);
    a1.ksize = b.k, a1.sigma = b.sigma;
    REQUIRE(cpu->image(a1).ok());
    auto a2 = image_args(ImageOp::GaussianBlur, 53, 29, b.c, src, d2);
    a2.ksize = b.k, a2.sigma = b.sigma;
    reference::image(a2);
    CHECK(max_diff(d1, d2) <= 1);
  }
  struct Size {
    std::uint32_t c, w, h, ow, oh;
  };
  for (auto s : {Size{1, 40, 30, 80, 60}, Size{3, 40, 30, 20, 15}, Size{4, 64, 48, 37, 91},
                 Size{3, 7, 5, 100, 3}, Size{1, 1, 1, 5, 5}}) {
    INFO("resize " << s.w << "x" << s.h << "x" << s.c << " to " << s.ow << "x" << s.oh);
    auto src = test::test_image(s.w, s.h, s.c, s.ow);
    REQUIRE(cpu->image(image_args(ImageOp::Resize, s.w, s.h, s.c, src, d1, s.ow, s.oh)).ok());
    reference::image(image_args(ImageOp::Resize, s.w, s.h, s.c, src, d2, s.ow, s.oh));
    CHECK(max_diff(d1, d2) <= 1);
  }
}

TEST_CASE("selection takes the first available backend and says why it fell back") {
  BackendRegistry reg({std::make_shared<Fake>("cuda", false), std::make_shared<Fake>("cpu", true)});
  const std::vector<std::string> pref{"cuda", "cpu"}, only_cuda{"cuda"}, only_cpu{"cpu"}, none{},
      odd{"tpu", "cpu"};
  auto s = reg.select(pref);
  REQUIRE(s.backend);
  CHECK(s.backend->name() == "cpu");
  CHECK(s.preferred == "cuda");
  CHECK(s.fell_back());
  CHECK(s.fallback == "cuda is unavailable (no cuda hardware); using cpu");
  s = reg.select(only_cpu);
  CHECK(s.backend->name() == "cpu");
  CHECK_FALSE(s.fell_back());
  s = reg.select(only_cuda);
  CHECK_FALSE(s.backend);
  CHECK(s.error ==
        "none of the allowed accelerator backends can run here: cuda is unavailable (no cuda "
        "hardware)");
  CHECK_FALSE(reg.select(none).backend);
  s = reg.select(odd);
  CHECK(s.backend->name() == "cpu");
  CHECK_THAT(s.fallback, Catch::Contains("tpu is not built into this unifnd"));
  CHECK(reg.list().size() == 2);
}

TEST_CASE("the process registry has the CPU backend, and CUDA when the toolkit was found") {
  const auto& reg = BackendRegistry::global();
  REQUIRE(reg.get("cpu"));
  CHECK(reg.get("cpu")->available());
#ifdef UNIFN_HAVE_CUDA
  CHECK(cuda_compiled());
  REQUIRE(reg.get("cuda"));
  CHECK(reg.list().front().name == "cuda");
#else
  CHECK_FALSE(cuda_compiled());
  CHECK_FALSE(reg.get("cuda"));
#endif
}

#ifdef UNIFN_HAVE_CUDA
TEST_CASE(
    "the CUDA backend is linked, probes for a GPU, and without one reports itself unavailable") {
  auto cuda = make_cuda_backend();
  CHECK(cuda->name() == "cuda");
  if (!std::filesystem::exists("/dev/nvidiactl") && !std::filesystem::exists("/dev/nvidia0")) {
    CHECK_FALSE(cuda->available());
    CHECK_FALSE(cuda->unavailable_reason().empty());
    INFO(cuda->unavailable_reason());
    // Its ops answer an error instead of touching anything.
    std::vector<double> in{1}, out{0};
    double mn, mx;
    auto r = cuda->minmax({in, 0, 1, out, &mn, &mx});
    CHECK(r.status == Status::Error);
    CHECK_THAT(r.message, Catch::Contains("unavailable"));
    const std::vector<std::string> pref{"cuda", "cpu"};
    auto s = BackendRegistry::global().select(pref);
    REQUIRE(s.backend);
    CHECK(s.backend->name() == "cpu");
    CHECK_THAT(s.fallback, Catch::StartsWith("cuda is unavailable ("));
  } else {
    WARN("a GPU is present: " << (cuda->available() ? cuda->detail() : cuda->unavailable_reason()));
  }
}
#endif
