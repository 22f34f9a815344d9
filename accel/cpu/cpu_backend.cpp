// CPU backend: cblas_sgemm from OpenBLAS and OpenCV's imgproc, run on cv::Mat headers over guest
// memory (no copies); ONNX models parsed once (ModelCache) and run on oneDNN.
#include "accel/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "accel/cpu/model_cache.h"
#include "accel/onnx/run.h"

namespace unifn::accel {

namespace {

// A Mat header over a guest buffer. OpenCV's constructor takes a non-const pointer even for inputs.
cv::Mat input_mat(std::uint32_t w, std::uint32_t h, std::uint32_t c,
                  std::span<const std::uint8_t> px) {
  // Safe: the Mat is only ever read (it is passed as an InputArray), so dropping const writes
  // nothing.
  return cv::Mat(static_cast<int>(h), static_cast<int>(w), CV_8UC(static_cast<int>(c)),
                 const_cast<std::uint8_t*>(px.data()));
}

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  bool available() const override { return true; }

  Result sgemm(const SgemmArgs& a) override {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(a.m),
                static_cast<int>(a.n), static_cast<int>(a.k), a.alpha, a.a.data(),
                static_cast<int>(a.lda), a.b.data(), static_cast<int>(a.ldb), a.beta, a.c.data(),
                static_cast<int>(a.ldc));
    return Result::success();
  }

  Result minmax(const MinmaxArgs& a) override {
    const int n = static_cast<int>(a.in.size());
    // Safe: a 1 x n header over the guest's input, read only.
    const cv::Mat in(1, n, CV_64F, const_cast<double*>(a.in.data()));
    cv::Mat out(1, n, CV_64F, a.out.data());
    double mn = 0, mx = 0;
    cv::minMaxIdx(in, &mn, &mx);
    const double scale = mx > mn ? (double(a.high) - a.low) / (mx - mn) : 0.0;
    in.convertTo(out, CV_64F, scale, a.low - mn * scale);
    *a.min = mn;
    *a.max = mx;
    return Result::success();
  }

  Result image(const ImageArgs& a) override {
    try {
      const cv::Mat src = input_mat(a.width, a.height, a.channels, a.src);
      cv::Mat dst(static_cast<int>(a.out_height), static_cast<int>(a.out_width),
                  CV_8UC(static_cast<int>(a.out_channels)), a.dst.data());
      std::uint8_t* const where = dst.data;
      switch (a.op) {
        case ImageOp::Grayscale:
          cv::cvtColor(src, dst, a.channels == 4 ? cv::COLOR_RGBA2GRAY : cv::COLOR_RGB2GRAY);
          break;
        case ImageOp::GaussianBlur: {
          const int k = static_cast<int>(a.ksize);
          cv::GaussianBlur(src, dst, cv::Size(k, k), a.sigma, a.sigma, cv::BORDER_REPLICATE);
          break;
        }
        case ImageOp::Sobel: {
          // In bands of rows, so the 16-bit temporaries stay small whatever the image; a band (an
          // ROI) filters with its neighbours' pixels, so the result is the whole image's.
          const int rows = std::max(1, (1 << 22) / src.cols);
          cv::Mat dx, dy, sum;
          for (int y = 0; y < src.rows; y += rows) {
            const cv::Range band(y, std::min(src.rows, y + rows));
            cv::Mat out = dst.rowRange(band);
            cv::Sobel(src.rowRange(band), dx, CV_16S, 1, 0, 3, 1, 0, cv::BORDER_REPLICATE);
            cv::Sobel(src.rowRange(band), dy, CV_16S, 0, 1, 3, 1, 0, cv::BORDER_REPLICATE);
            cv::add(cv::abs(dx), cv::abs(dy), sum, cv::noArray(), CV_16S);
            std::uint8_t* const at = out.data;
            sum.convertTo(out, CV_8U);  // saturates at 255
            if (out.data != at)
              return Result::fail(Status::Error, "OpenCV sobel produced a band of another shape");
          }
          break;
        }
        case ImageOp::Resize:
          cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
          break;
      }
      // OpenCV reallocates an output whose shape it disagrees with; that would leave the guest's
      // buffer unwritten.
      if (dst.data != where)
        return Result::fail(Status::Error, "OpenCV " + std::string(to_string(a.op)) +
                                               " produced an image of another shape");
      return Result::success();
    } catch (const cv::Exception& e) {
      return Result::fail(Status::Error,
                          "OpenCV " + std::string(to_string(a.op)) + " failed: " + e.what());
    }
  }

  bool runs_models() const override { return true; }
  Result load_model(std::span<const std::uint8_t> bytes, LoadedModel& out) override {
    return models_.load(bytes, out);
  }
  std::shared_ptr<const onnx_model::Graph> find_model(const ModelDigest& digest) override {
    return models_.find(digest);
  }
  Result run_model(const ModelRunArgs& a) override {
    auto r = onnx_model::run(*a.graph, a.inputs);
    if (!r) return Result::fail(Status::Error, "the model failed: " + r.error());
    *a.outputs = std::move(r.value());
    return Result::success();
  }

 private:
  ModelCache models_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace unifn::accel
