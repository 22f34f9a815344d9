// Work bounds of the virtio-accel device: per-request caps, the deadline budget, and stopping
// between chains.
#include <catch2/catch.hpp>

#include <functional>

#include "accel/budget.h"
#include "test/support/ring_harness.h"

using namespace unifn;
using namespace unifn::test;

namespace {

// The reference backend, counting the ops it ran; `during` runs inside each op (a client hanging
// up meanwhile, say).
struct Counting final : accel::Backend {
  std::shared_ptr<accel::Backend> real = accel::reference::make_backend();
  int ran = 0;
  std::function<void()> during;
  std::string_view name() const override { return "reference"; }
  bool available() const override { return true; }
  accel::Result sgemm(const accel::SgemmArgs& a) override {
    return count([&] { return real->sgemm(a); });
  }
  accel::Result minmax(const accel::MinmaxArgs& a) override {
    return count([&] { return real->minmax(a); });
  }
  accel::Result image(const accel::ImageArgs& a) override {
    return count([&] { return real->image(a); });
  }
  template <typename F>
  accel::Result count(F&& f) {
    ++ran;
    if (during) during();
    return f();
  }
};

struct Rig {
  std::shared_ptr<Counting> backend = std::make_shared<Counting>();
  std::vector<std::string> errors;
  int ops = 0;
  Harness h;
  std::uint32_t sess = 0;
  explicit Rig(accel::DeviceOptions opts = {}) : h(backend, with_hooks(std::move(opts))) {
    h.init_driver();
    sess = h.open_session();
  }
  accel::DeviceOptions with_hooks(accel::DeviceOptions o) {
    o.on_error = [this](std::string_view w) { errors.emplace_back(w); };
    o.on_op = [this](std::string_view, std::string_view) { ++ops; };
    return o;
  }
  A i64(std::int64_t v) { return A{h.put(v), 8, UNIFN_ACCEL_ARG_INT64}; }
  A f32(float v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_FLOAT32}; }
  // An m x n x k SGEMM chain; C starts as 0xCD bytes at c_at.
  std::vector<D> sgemm(std::int64_t m, std::int64_t n, std::int64_t k, std::uint64_t& c_at) {
    const auto fa = static_cast<std::uint32_t>(4 * m * k),
               fb = static_cast<std::uint32_t>(4 * k * n),
               fc = static_cast<std::uint32_t>(4 * m * n);
    c_at = h.alloc(fc, 0xCD);
    return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_BLAS_SGEMM,
                       {i64(m),
                        i64(n),
                        i64(k),
                        f32(1),
                        {h.alloc(fa), fa, 0},
                        i64(k),
                        {h.alloc(fb), fb, 0},
                        i64(n),
                        f32(0),
                        i64(n)},
                       {{c_at, fc, 0}});
  }
  // A MINMAX chain over {1, 2, 3}; its output starts as 0xCD bytes at out_at.
  std::vector<D> minmax(std::uint64_t& out_at) {
    const auto in = h.put_vec(std::vector<double>{1, 2, 3});
    out_at = h.alloc(24, 0xCD);
    return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_MINMAX,
                       {{in, 24, 0}, {h.put(3), 4, 0}, {h.put(0), 4, 0}, {h.put(10), 4, 0}},
                       {{out_at, 24, 0}, {h.alloc(8), 8, 0}, {h.alloc(8), 8, 0}});
  }
  bool untouched(std::uint64_t at, std::size_t n) const {
    for (auto b : h.get_vec<std::uint8_t>(at, n))
      if (b != 0xCD) return false;
    return true;
  }
};

auto now() { return std::chrono::steady_clock::now(); }

}  // namespace

TEST_CASE(
    "an image op over the per-request work cap is refused with its reason and nothing is written") {
  accel::DeviceOptions opts;
  opts.limits.max_taps = 200;
  Rig r(opts);
  auto image = [&](unifn_accel_image_params p, std::uint32_t in_len, std::uint32_t out_len,
                   std::uint64_t& dst) {
    dst = r.h.alloc(out_len, 0xCD);
    return r.h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_OPENCV,
                       {{r.h.put(p), sizeof p, UNIFN_ACCEL_ARG_STRUCT},
                        {r.h.alloc(in_len), in_len, UNIFN_ACCEL_ARG_UINT8}},
                       {{dst, out_len, UNIFN_ACCEL_ARG_UINT8}});
  };
  using P = unifn_accel_image_params;
  std::uint64_t dst = 0;
  // 4x3 pixels of 2 channels, a row and a column pass of 5 taps: 240 taps.
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 4, 3, 2, 4, 3, 2, 5, 0, 0}, 24, 24, dst).status ==
        UNIFN_ACCEL_ERR);
  CHECK_THAT(r.h.dev.last_error(),
             Catch::Contains("opencv gaussian-blur: 4x3x2 with ksize 5 is 240 taps, more than the "
                             "200 one request may ask for"));
  CHECK(r.errors.back() == r.h.dev.last_error());
  CHECK(r.untouched(dst, 24));
  CHECK(r.backend->ran == 0);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GRAYSCALE, 4, 3, 3, 4, 3, 1, 0, 0, 0}, 36, 12, dst).status ==
        UNIFN_ACCEL_OK);  // 144 taps
  CHECK(r.backend->ran == 1);
}

TEST_CASE(
    "an op that cannot finish before the call's deadline is refused before it runs, and smaller "
    "ones still run") {
  accel::DeviceOptions opts;
  opts.rates = std::make_shared<accel::WorkRates>(accel::reference::make_backend());
  opts.rates->set(accel::WorkKind::MultiplyAdds, 1e4);  // a slow backend: 128^3 would take 210 s
  Rig r(opts);
  r.h.dev.begin_run(now() + std::chrono::seconds(60));
  std::uint64_t c = 0;
  auto a = r.h.submit(r.sgemm(128, 128, 128, c));
  CHECK(a.status == UNIFN_ACCEL_ERR);
  CHECK_THAT(
      r.h.dev.last_error(),
      Catch::Contains("sgemm: 128x128x128: 2097152 multiply-adds would take about 209.7 s") &&
          Catch::Contains("the call has") && Catch::Contains("request"));
  CHECK(r.backend->ran == 0);
  CHECK(r.ops == 0);
  CHECK(r.untouched(c, 4 * 128 * 128));

  // Under the size that is budgeted at all, and so cheap that no backend takes long over it.
  CHECK(r.h.submit(r.sgemm(2, 3, 4, c)).status == UNIFN_ACCEL_OK);
  CHECK(r.backend->ran == 1);
  // A call without a deadline (max) is not budgeted.
  r.h.dev.begin_run(std::chrono::steady_clock::time_point::max());
  CHECK(r.h.submit(r.sgemm(128, 128, 128, c)).status == UNIFN_ACCEL_OK);
  CHECK(r.backend->ran == 2);
}

TEST_CASE(
    "work rates are measured on the backend itself, and the budget refuses what they say cannot "
    "fit") {
  accel::WorkRates rates(accel::reference::make_backend());
  const double madds = rates.per_second(accel::WorkKind::MultiplyAdds),
               taps = rates.per_second(accel::WorkKind::Taps);
  CHECK(madds > 0);
  CHECK(taps > 0);
  CHECK(rates.per_second(accel::WorkKind::MultiplyAdds) == madds);  // measured once
  const auto t = now();
  const accel::Work big{accel::WorkKind::MultiplyAdds, std::uint64_t{1} << 36},
      small{accel::WorkKind::Taps, 1000};
  auto why = accel::over_budget(big, madds, t, t + std::chrono::milliseconds(1));
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains("68719476736 multiply-adds would take about"));
  CHECK_FALSE(accel::over_budget(small, taps, t, t + std::chrono::hours(1)));
  CHECK_FALSE(accel::over_budget(big, 0.0, t,
                                 t + std::chrono::milliseconds(1)));  // no rate known: no budget
}

TEST_CASE(
    "past the call's deadline, every chain of a notification is answered with an error and none "
    "runs") {
  Rig r;
  std::uint64_t out[3];
  const std::vector<std::vector<D>> chains = {r.minmax(out[0]), r.minmax(out[1]), r.minmax(out[2])};
  const auto refused = r.h.dev.refused();
  r.h.dev.begin_run(now() - std::chrono::milliseconds(1));
  auto answers = r.h.submit_all(chains);
  REQUIRE(answers.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(answers[i].status == UNIFN_ACCEL_ERR);
    CHECK(answers[i].used_len == 1);
    CHECK(r.untouched(out[i], 24));
  }
  CHECK(r.backend->ran == 0);
  CHECK(r.h.dev.refused() == refused + 3);
  REQUIRE(r.errors.size() == 1);  // one line for the lot
  CHECK(r.errors[0] ==
        "the call's deadline passed: 3 more request(s) of this notification answered with an "
        "error, not run");
}

TEST_CASE(
    "a cancel between chains stops the rest of the notification, and the next call is served "
    "again") {
  Rig r;
  std::uint64_t out[4];
  const std::vector<std::vector<D>> chains = {r.minmax(out[0]), r.minmax(out[1]), r.minmax(out[2]),
                                              r.minmax(out[3])};
  r.h.dev.begin_run(now() + std::chrono::hours(1));
  r.backend->during = [&] { r.h.machine.cancel(); };  // the client hangs up while the first op runs
  auto answers = r.h.submit_all(chains);
  REQUIRE(answers.size() == 4);
  CHECK(answers[0].status == UNIFN_ACCEL_OK);
  CHECK(r.h.get_vec<double>(out[0], 3) == std::vector<double>{0, 5, 10});
  for (int i = 1; i < 4; ++i) {
    CHECK(answers[i].status == UNIFN_ACCEL_ERR);
    CHECK(r.untouched(out[i], 24));
  }
  CHECK(r.backend->ran == 1);
  CHECK(r.ops == 1);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] ==
        "the call was cancelled: 3 more request(s) of this notification answered with an error, "
        "not run");

  r.h.machine.clear_cancel();
  r.backend->during = {};
  std::uint64_t again = 0;
  CHECK(r.h.submit(r.minmax(again)).status == UNIFN_ACCEL_OK);
  CHECK(r.backend->ran == 2);
}
