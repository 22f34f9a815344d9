// Reference implementations of the accelerator ops: simple loops, no libraries, no GPU.
#include "accel/reference/reference.h"

#include <algorithm>
#include <cmath>

namespace unifn::accel {

namespace reference {

namespace {

std::uint8_t saturate_u8(double v) {
  const long r = std::lrint(v);
  return static_cast<std::uint8_t>(std::clamp<long>(r, 0, 255));
}

int clampi(int v, int lo, int hi) { return std::min(std::max(v, lo), hi); }

void grayscale(const ImageArgs& a) {
  const std::size_t px = std::size_t{a.width} * a.height;
  for (std::size_t i = 0; i < px; ++i) {
    const std::uint8_t* p = a.src.data() + i * a.channels;
    // OpenCV's RGB2GRAY for 8-bit: BT.601 weights in 15-bit fixed point, rounded.
    a.dst[i] =
        static_cast<std::uint8_t>((p[0] * 9798u + p[1] * 19235u + p[2] * 3735u + (1u << 14)) >> 15);
  }
}

void blur(const ImageArgs& a) {
  const auto k = gaussian_kernel(static_cast<int>(a.ksize), a.sigma);
  const int r = static_cast<int>(a.ksize) / 2, w = static_cast<int>(a.width),
            h = static_cast<int>(a.height);
  const int c = static_cast<int>(a.channels);
  std::vector<double> tmp(std::size_t(w) * h * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < c; ++ch) {
        double s = 0;
        for (int i = -r; i <= r; ++i)
          s += k[i + r] * a.src[(std::size_t(y) * w + clampi(x + i, 0, w - 1)) * c + ch];
        tmp[(std::size_t(y) * w + x) * c + ch] = s;
      }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < c; ++ch) {
        double s = 0;
        for (int i = -r; i <= r; ++i)
          s += k[i + r] * tmp[(std::size_t(clampi(y + i, 0, h - 1)) * w + x) * c + ch];
        a.dst[(std::size_t(y) * w + x) * c + ch] = saturate_u8(s);
      }
}

void sobel(const ImageArgs& a) {
  const int w = static_cast<int>(a.width), h = static_cast<int>(a.height);
  auto at = [&](int x, int y) -> int {
    return a.src[std::size_t(clampi(y, 0, h - 1)) * w + clampi(x, 0, w - 1)];
  };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int gx = (at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1)) -
                     (at(x - 1, y - 1) + 2 * at(x - 1, y) + at(x - 1, y + 1));
      const int gy = (at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1)) -
                     (at(x - 1, y - 1) + 2 * at(x, y - 1) + at(x + 1, y - 1));
      a.dst[std::size_t(y) * w + x] =
          static_cast<std::uint8_t>(std::min(255, std::abs(gx) + std::abs(gy)));
    }
}

// Source coordinate and weight of the next pixel for output index d (OpenCV's half-pixel mapping).
void map_linear(int d, double scale, int size, int& s0, double& f) {
  double fs = (d + 0.5) * scale - 0.5;
  int s = static_cast<int>(std::floor(fs));
  f = fs - s;
  if (s < 0) {
    s = 0;
    f = 0;
  }
  if (s >= size - 1) {
    s = size - 1;
    f = 0;
  }
  s0 = s;
}

void resize(const ImageArgs& a) {
  const int w = static_cast<int>(a.width), h = static_cast<int>(a.height),
            c = static_cast<int>(a.channels);
  const int ow = static_cast<int>(a.out_width), oh = static_cast<int>(a.out_height);
  const double sx = double(w) / ow, sy = double(h) / oh;
  for (int y = 0; y < oh; ++y) {
    int y0;
    double fy;
    map_linear(y, sy, h, y0, fy);
    const int y1 = std::min(y0 + 1, h - 1);
    for (int x = 0; x < ow; ++x) {
      int x0;
      double fx;
      map_linear(x, sx, w, x0, fx);
      const int x1 = std::min(x0 + 1, w - 1);
      for (int ch = 0; ch < c; ++ch) {
        auto p = [&](int xx, int yy) -> double {
          return a.src[(std::size_t(yy) * w + xx) * c + ch];
        };
        const double top = (1 - fx) * p(x0, y0) + fx * p(x1, y0);
        const double bottom = (1 - fx) * p(x0, y1) + fx * p(x1, y1);
        a.dst[(std::size_t(y) * ow + x) * c + ch] = saturate_u8((1 - fy) * top + fy * bottom);
      }
    }
  }
}

class ReferenceBackend final : public Backend {
 public:
  std::string_view name() const override { return "reference"; }
  bool available() const override { return true; }
  Result sgemm(const SgemmArgs& a) override {
    reference::sgemm(a);
    return Result::success();
  }
  Result minmax(const MinmaxArgs& a) override {
    reference::minmax(a);
    return Result::success();
  }
  Result image(const ImageArgs& a) override {
    reference::image(a);
    return Result::success();
  }
};

}  // namespace

std::vector<float> gaussian_kernel(int ksize, double sigma) {
  static const float small[4][7] = {
      {1.f},
      {0.25f, 0.5f, 0.25f},
      {0.0625f, 0.25f, 0.375f, 0.25f, 0.0625f},
      {0.03125f, 0.109375f, 0.21875f, 0.28125f, 0.21875f, 0.109375f, 0.03125f}};
  std::vector<float> k(static_cast<std::size_t>(ksize));
  if (ksize % 2 == 1 && ksize <= 7 && sigma <= 0) {
    std::copy_n(small[ksize / 2], ksize, k.begin());
    return k;
  }
  const double s = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
  const double scale2 = -0.5 / (s * s);
  std::vector<double> d(static_cast<std::size_t>(ksize));
  double sum = 0;
  for (int i = 0; i < ksize; ++i) {
    const double x = i - (ksize - 1) * 0.5;
    d[i] = std::exp(scale2 * x * x);
    sum += d[i];
  }
  for (int i = 0; i < ksize; ++i) k[i] = static_cast<float>(d[i] / sum);
  return k;
}

void sgemm(const SgemmArgs& a) {
  for (std::int64_t i = 0; i < a.m; ++i)
    for (std::int64_t j = 0; j < a.n; ++j) {
      double s = 0;
      for (std::int64_t p = 0; p < a.k; ++p) s += double(a.a[i * a.lda + p]) * a.b[p * a.ldb + j];
      float& c = a.c[i * a.ldc + j];
      c = static_cast<float>(a.alpha * s + (a.beta != 0.0f ? double(a.beta) * c : 0.0));
    }
}

void minmax(const MinmaxArgs& a) {
  double mn = a.in[0], mx = a.in[0];
  for (double v : a.in) {
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const double scale = mx > mn ? (double(a.high) - a.low) / (mx - mn) : 0.0;
  const double shift = a.low - mn * scale;
  for (std::size_t i = 0; i < a.in.size(); ++i) a.out[i] = a.in[i] * scale + shift;
  *a.min = mn;
  *a.max = mx;
}

void image(const ImageArgs& a) {
  switch (a.op) {
    case ImageOp::Grayscale:
      return grayscale(a);
    case ImageOp::GaussianBlur:
      return blur(a);
    case ImageOp::Sobel:
      return sobel(a);
    case ImageOp::Resize:
      return resize(a);
  }
}

std::unique_ptr<Backend> make_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace reference
}  // namespace unifn::accel
