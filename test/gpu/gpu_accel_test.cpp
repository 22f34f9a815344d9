// Standalone GPU check: every CUDA op against the reference ops (which test_accel ties to the CPU
// backend), the scratch cap and trim, turns between tenants, then throughput. Needs no KVM, Boost
// or Debian packages at run time. Exit: 0 all match, 1 a mismatch, 77 no usable GPU.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime_api.h>

#include "accel/cuda/cuda_backend.h"
#include "accel/reference/reference.h"

using namespace unifn::accel;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

std::vector<std::uint8_t> pattern(std::uint32_t w, std::uint32_t h, std::uint32_t c,
                                  unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> px(std::size_t(w) * h * c);
  for (std::uint32_t y = 0; y < h; ++y)
    for (std::uint32_t x = 0; x < w; ++x)
      for (std::uint32_t ch = 0; ch < c; ++ch) {
        int v = static_cast<int>((x * 5 + y * 3 + ch * 70) % 256);
        if ((x / 16 + y / 16) % 2) v = 255 - v;
        px[(std::size_t(y) * w + x) * c + ch] =
            static_cast<std::uint8_t>(std::clamp(v + int(rng() % 11) - 5, 0, 255));
      }
  return px;
}

ImageArgs args(ImageOp op, std::uint32_t w, std::uint32_t h, std::uint32_t c,
               const std::vector<std::uint8_t>& src, std::vector<std::uint8_t>& dst,
               std::uint32_t ow = 0, std::uint32_t oh = 0) {
  ImageArgs a;
  a.op = op;
  a.width = w, a.height = h, a.channels = c;
  a.out_width = ow ? ow : w, a.out_height = oh ? oh : h,
  a.out_channels = op == ImageOp::Grayscale ? 1 : c;
  dst.assign(std::size_t(a.out_width) * a.out_height * a.out_channels, 0);
  a.src = src, a.dst = dst;
  return a;
}

int max_diff(const std::vector<std::uint8_t>& x, const std::vector<std::uint8_t>& y) {
  int d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(int(x[i]) - int(y[i])));
  return d;
}

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  auto gpu = make_cuda_backend();
  if (!gpu->available()) {
    std::printf("no GPU: %s\n", gpu->unavailable_reason().c_str());
    return 77;
  }
  std::printf("device: %s\n", gpu->detail().c_str());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);

  // SGEMM: within 1e-4 * (k + 1) of the double-precision reference (float accumulation order
  // differs).
  struct Mm {
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
  };
  for (auto c :
       {Mm{1, 1, 1, 1, 1, 1, 1, 0}, Mm{37, 53, 71, 71, 53, 53, 1, 0},
        Mm{128, 64, 256, 260, 70, 66, 0.5f, 1.5f}, Mm{512, 512, 512, 512, 512, 512, 1, 0}}) {
    std::vector<float> a(std::size_t(c.m - 1) * c.lda + c.k), b(std::size_t(c.k - 1) * c.ldb + c.n),
        c0(std::size_t(c.m - 1) * c.ldc + c.n);
    for (auto* v : {&a, &b, &c0})
      for (auto& x : *v) x = u(rng);
    auto c1 = c0, c2 = c0;
    SgemmArgs s{c.m, c.n, c.k, c.alpha, c.beta, a, c.lda, b, c.ldb, c1, c.ldc};
    auto r = gpu->sgemm(s);
    s.c = c2;
    reference::sgemm(s);
    double worst = 0;
    for (std::size_t i = 0; i < c1.size(); ++i)
      worst = std::max(worst, double(std::abs(c1[i] - c2[i])));
    check(r.ok() && worst <= 1e-4 * (c.k + 1),
          "sgemm " + std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) +
              " max error " + std::to_string(worst) + (r.ok() ? "" : " " + r.message));
  }

  // MinMax: exact.
  {
    std::vector<double> in(100000);
    std::uniform_real_distribution<double> d(-1e6, 1e6);
    for (auto& x : in) x = d(rng);
    std::vector<double> o1(in.size()), o2(in.size());
    double mn1, mx1, mn2, mx2;
    auto r = gpu->minmax({in, -3, 250, o1, &mn1, &mx1});
    reference::minmax({in, -3, 250, o2, &mn2, &mx2});
    check(r.ok() && mn1 == mn2 && mx1 == mx2 && o1 == o2, "minmax 100000 doubles");
  }

  // Image ops: grayscale and Sobel exact; blur and resize within 1 of the reference.
  std::vector<std::uint8_t> g, want;
  for (std::uint32_t c : {3u, 4u}) {
    auto src = pattern(641, 479, c, c);
    auto r = gpu->image(args(ImageOp::Grayscale, 641, 479, c, src, g));
    reference::image(args(ImageOp::Grayscale, 641, 479, c, src, want));
    check(r.ok() && max_diff(g, want) == 0, "grayscale 641x479x" + std::to_string(c));
  }
  {
    auto src = pattern(641, 479, 1, 9);
    auto r = gpu->image(args(ImageOp::Sobel, 641, 479, 1, src, g));
    reference::image(args(ImageOp::Sobel, 641, 479, 1, src, want));
    check(r.ok() && max_diff(g, want) == 0, "sobel 641x479");
  }
  for (auto [c, k, sigma] : {std::tuple{1u, 3u, 0.0f}, std::tuple{3u, 7u, 0.0f},
                             std::tuple{4u, 15u, 3.0f}, std::tuple{2u, 31u, 0.0f}}) {
    auto src = pattern(333, 222, c, k);
    auto a1 = args(ImageOp::GaussianBlur, 333, 222, c, src, g);
    a1.ksize = k, a1.sigma = sigma;
    auto r = gpu->image(a1);
    auto a2 = args(ImageOp::GaussianBlur, 333, 222, c, src, want);
    a2.ksize = k, a2.sigma = sigma;
    reference::image(a2);
    check(r.ok() && max_diff(g, want) <= 1, "gaussian blur 333x222x" + std::to_string(c) + " k" +
                                                std::to_string(k) + " max diff " +
                                                std::to_string(max_diff(g, want)));
  }
  for (auto [c, ow, oh] :
       {std::tuple{3u, 1280u, 720u}, std::tuple{1u, 100u, 57u}, std::tuple{4u, 641u, 1000u}}) {
    auto src = pattern(640, 480, c, ow);
    auto r = gpu->image(args(ImageOp::Resize, 640, 480, c, src, g, ow, oh));
    reference::image(args(ImageOp::Resize, 640, 480, c, src, want, ow, oh));
    check(r.ok() && max_diff(g, want) <= 1, "resize 640x480x" + std::to_string(c) + " to " +
                                                std::to_string(ow) + "x" + std::to_string(oh) +
                                                " max diff " + std::to_string(max_diff(g, want)));
  }

  // Scratch: capped per op (with the reason), and given back after an op bigger than what is kept.
  {
    auto small =
        make_cuda_backend(ScratchPool::Limits{.max_bytes = 64 << 20, .keep_bytes = 16 << 20});
    std::size_t free0 = 0, free1 = 0, total = 0;
    cudaMemGetInfo(&free0, &total);
    for (int n : {2048, 4096}) {  // 48 MiB of scratch, then 192
      std::vector<float> a(std::size_t(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
      auto r = small->sgemm(SgemmArgs{n, n, n, 1, 0, a, n, b, n, c, n});
      if (n == 2048)
        check(r.ok() && c[0] == 0.125f * n, "sgemm 2048 within a 64 MiB scratch cap");
      else
        check(!r.ok() &&
                  r.message.find("more than the 64.0 MiB one op may hold") != std::string::npos,
              "sgemm 4096 refused by a 64 MiB scratch cap: " + r.message);
    }
    cudaMemGetInfo(&free1, &total);
    check(free1 + (24 << 20) >= free0,
          "scratch trimmed to 16 MiB after the op: " +
              std::to_string((double(free0) - double(free1)) / (1 << 20)) +
              " MiB of GPU memory still held");
  }

  // Turns: a tenant that arrives while another has a long queue is served within a round or two.
  {
    const int n = 1024;
    std::vector<float> a(std::size_t(n) * n, 0.5f), b(a.size(), 0.25f);
    std::mutex mu;
    std::vector<int> done;  // tenant of each finished op, in order
    std::atomic<bool> started{false};
    auto worker = [&](Tenant tenant, int ops) {
      std::vector<float> c(a.size());
      for (int i = 0; i < ops; ++i) {
        SgemmArgs s{n, n, n, 1, 0, a, n, b, n, c, n};
        s.tenant = tenant;
        gpu->sgemm(s);
        std::lock_guard lock(mu);
        done.push_back(static_cast<int>(tenant));
        started = true;
      }
    };
    std::thread busy(worker, 1, 60);
    while (!started) std::this_thread::yield();
    std::thread late(worker, 2, 4);
    late.join();
    busy.join();
    const auto last_late = std::find(done.rbegin(), done.rend(), 2);
    const long at =
        static_cast<long>(done.rend() - last_late);  // ops finished up to the late tenant's last
    check(at <= 20, "a late tenant's 4 ops finished among the first " + std::to_string(at) +
                        " of 64 (one long queue ahead of it)");
  }

  // Throughput, host buffers in and out (what a guest call costs on this backend).
  for (int n : {1024, 2048, 4096}) {
    std::vector<float> a(std::size_t(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
    SgemmArgs s{n, n, n, 1, 0, a, n, b, n, c, n};
    gpu->sgemm(s);
    const int reps = n == 4096 ? 3 : 10;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) gpu->sgemm(s);
    const double t = seconds(t0);
    std::printf("sgemm_%d_gflops=%.1f\n", n, 2.0 * n * n * n * reps / t / 1e9);
  }
  {
    auto src = pattern(1920, 1080, 3, 1);
    std::vector<std::uint8_t> dst;
    for (auto op : {ImageOp::Grayscale, ImageOp::GaussianBlur, ImageOp::Resize}) {
      auto a = args(op, 1920, 1080, 3, src, dst, op == ImageOp::Resize ? 960 : 0,
                    op == ImageOp::Resize ? 540 : 0);
      a.ksize = 7;
      gpu->image(a);
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 50; ++i) gpu->image(a);
      std::printf("image_%s_1080p_per_s=%.0f\n", std::string(to_string(op)).c_str(),
                  50 / seconds(t0));
    }
  }
  std::printf("%s\n", failures ? "FAILED" : "all CUDA ops match the reference");
  return failures ? 1 : 0;
}
