// Work rates measured on the backend itself, and the budget sentence the device answers with.
#include "accel/budget.h"

#include <algorithm>
#include <fmt/format.h>
#include <vector>

namespace unifn::accel {

namespace {

constexpr auto kMinRun =
    std::chrono::milliseconds(2);  // long enough that launch and set-up costs fade
constexpr std::uint32_t kMaxSgemmSide = 2048, kMaxImageSide = 4096;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The faster of two runs of `op`, in seconds (the first may pay for threads, kernels, buffers).
template <typename Op>
std::optional<double> best_of_two(Op&& op) {
  double best = 1e30;
  for (int i = 0; i < 2; ++i) {
    const auto t0 = Clock::now();
    if (!op().ok()) return std::nullopt;
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

std::string duration_text(double s) {
  if (s >= 1) return fmt::format("{:.1f} s", s);
  return fmt::format("{:.1f} ms", s * 1e3);
}

}  // namespace

WorkRates::WorkRates(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {
  for (auto& r : rate_) r.store(-1.0);
}

double WorkRates::per_second(WorkKind kind) {
  auto& r = rate_[static_cast<std::size_t>(kind)];
  if (const double v = r.load(std::memory_order_acquire); v >= 0) return v;
  std::lock_guard lock(measuring_);
  if (r.load() < 0) r.store(measure(kind), std::memory_order_release);
  return r.load();
}

void WorkRates::set(WorkKind kind, double per_second) {
  rate_[static_cast<std::size_t>(kind)].store(per_second);
}

double WorkRates::measure(WorkKind kind) {
  try {
    for (std::uint32_t n = 64;; n *= 2) {
      std::optional<double> t;
      std::uint64_t units = 0;
      if (kind == WorkKind::MultiplyAdds) {
        std::vector<float> a(std::size_t{n} * n, 0.5f), b(a.size(), 0.25f), c(a.size());
        SgemmArgs s;
        s.m = s.n = s.k = s.lda = s.ldb = s.ldc = n;
        s.a = a, s.b = b, s.c = c;
        units = work_of(s).units;
        t = best_of_two([&] { return backend_->sgemm(s); });
        if (t && (*t >= std::chrono::duration<double>(kMinRun).count() || n >= kMaxSgemmSide))
          return units / std::max(*t, 1e-9);
      } else {
        std::vector<std::uint8_t> src(std::size_t{n} * n * 3, 128), dst(src.size());
        ImageArgs im;
        im.op = ImageOp::GaussianBlur;
        im.width = im.height = im.out_width = im.out_height = n;
        im.channels = im.out_channels = 3;
        im.ksize = 15;
        im.src = src, im.dst = dst;
        units = work_of(im).units;
        t = best_of_two([&] { return backend_->image(im); });
        if (t && (*t >= std::chrono::duration<double>(kMinRun).count() || n >= kMaxImageSide))
          return units / std::max(*t, 1e-9);
      }
      if (!t) return 0;
    }
  } catch (const std::exception&) {
    return 0;  // the op itself will say what is wrong with the backend
  }
}

std::optional<std::string> over_budget(const Work& work, double per_second, Clock::time_point now,
                                       Clock::time_point deadline) {
  if (!(per_second > 0) || deadline == Clock::time_point::max()) return std::nullopt;
  const double need = static_cast<double>(work.units) / per_second;
  const double left = std::chrono::duration<double>(deadline - now).count();
  if (need <= left) return std::nullopt;
  return fmt::format(
      "{} {} would take about {} on this backend (measured at {:.3g} a second), and the call has "
      "{} left",
      work.units, unit_name(work.kind), duration_text(need), per_second,
      duration_text(std::max(left, 0.0)));
}

}  // namespace unifn::accel
