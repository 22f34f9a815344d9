// virtio-accel device on crafted rings: well-formed requests, and every kind of malformed chain
// refused with its status.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "test/support/ring_harness.h"

using namespace unifn;
using namespace unifn::test;

namespace {

// A minmax request over n doubles, its buffers filled; write buffers start as 0xCD.
struct Minmax {
  std::uint64_t in, ndata, low, high, out, min, max;
  int n;
  std::vector<A> reads() const {
    return {{in, static_cast<std::uint32_t>(8 * n), UNIFN_ACCEL_ARG_FLOAT64},
            {ndata, 4, UNIFN_ACCEL_ARG_INT32},
            {low, 4, UNIFN_ACCEL_ARG_INT32},
            {high, 4, UNIFN_ACCEL_ARG_INT32}};
  }
  std::vector<A> writes() const {
    return {{out, static_cast<std::uint32_t>(8 * n), UNIFN_ACCEL_ARG_FLOAT64},
            {min, 8, UNIFN_ACCEL_ARG_FLOAT64},
            {max, 8, UNIFN_ACCEL_ARG_FLOAT64}};
  }
};

Minmax make_minmax(Harness& h, std::vector<double> v, int low = 0, int high = 100) {
  Minmax m{};
  m.n = static_cast<int>(v.size());
  m.in = h.put_vec(v);
  m.ndata = h.put(m.n);
  m.low = h.put(low);
  m.high = h.put(high);
  m.out = h.alloc(8 * v.size(), 0xCD);
  m.min = h.alloc(8, 0xCD);
  m.max = h.alloc(8, 0xCD);
  return m;
}

bool untouched(const Harness& h, std::uint64_t at, std::size_t n) {
  for (auto b : h.get_vec<std::uint8_t>(at, n))
    if (b != 0xCD) return false;
  return true;
}

struct Ready {
  Harness h;
  std::uint32_t sess;
  Ready() : sess((h.init_driver(), h.open_session())) {}
};

}  // namespace

TEST_CASE("NOOP, sessions and an op, well-formed") {
  Ready r;
  auto& h = r.h;
  CHECK(r.sess == 1);
  CHECK(h.dev.sessions().at(1) == 0);
  auto a = h.request(UNIFN_ACCEL_CMD_NOOP, 0, 0);
  CHECK(a.status == UNIFN_ACCEL_OK);
  CHECK(a.used_len == 1);
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_NOOP).status == UNIFN_ACCEL_OK);

  auto m = make_minmax(h, {3, -1, 7, 5});
  a = h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_MINMAX, m.reads(), m.writes());
  REQUIRE(a.status == UNIFN_ACCEL_OK);
  CHECK(a.used_len == 32 + 8 + 8 + 1);
  CHECK(h.get<double>(m.min) == -1);
  CHECK(h.get<double>(m.max) == 7);
  CHECK(h.get_vec<double>(m.out, 4) == std::vector<double>{50, 0, 100, 75});

  CHECK(h.open_session(9) == 2);
  CHECK(h.request(UNIFN_ACCEL_CMD_DESTROY_SESSION, 1, 0).status == UNIFN_ACCEL_OK);
  CHECK(h.request(UNIFN_ACCEL_CMD_DESTROY_SESSION, 1, 0).status == UNIFN_ACCEL_INVSESS);
  CHECK(h.open_session() == 3);  // ids are not reused
  CHECK(h.dev.served() == 7);
}

TEST_CASE(
    "malformed chains are refused with BADMSG, their outputs untouched, and the device goes on") {
  Ready r;
  auto& h = r.h;
  auto m = make_minmax(h, {1, 2, 3, 4});
  auto good = [&] {
    return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_MINMAX, m.reads(), m.writes());
  };
  // good(): [0] header, [1] arg headers, [2..5] reads, [6..8] writes, [9] status

  SECTION("too short: the header counts more arguments than the chain has") {
    auto c = good();
    c.erase(c.begin() + 5);  // drop high_threshold
    auto a = h.submit(c);
    CHECK(a.status == UNIFN_ACCEL_BADMSG);
    CHECK(a.used_len == 1);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("need 10"));
  }
  SECTION("too long: more descriptors than the header counts") {
    auto c = good();
    c.insert(c.begin() + 6, D{m.in, 8, false});
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
  }
  SECTION("an argument's descriptor and header disagree on its length") {
    auto c = good();
    c[2].len = 24;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(),
               Catch::Contains("24 bytes in its descriptor but 32 in its header"));
  }
  SECTION("overlapping: a written buffer overlaps a read one") {
    auto c = good();
    c[6].addr = m.in + 8;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("overlaps"));
  }
  SECTION("overlapping: two written buffers overlap") {
    auto c = good();
    c[7].addr = m.out + 8;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
  }
  SECTION(
      "outside user memory: a buffer past the end, one that wraps around, one straddling the end, "
      "one in the VMM's pages") {
    for (std::uint64_t addr : {std::uint64_t{0xC0000000}, ~std::uint64_t{0} - 15,
                               std::uint64_t{(1u << 20) - 8}, std::uint64_t{0x8000}}) {
      auto c = good();
      c[6].addr = addr;
      auto a = h.submit(c);
      CHECK(a.status == UNIFN_ACCEL_BADMSG);
      CHECK_THAT(h.dev.last_error(),
                 Catch::Contains("outside the guest's user memory (0x10000-0x100000)"));
    }
  }
  SECTION("wrong direction: a read argument in a device-writable descriptor") {
    auto c = good();
    for (int i = 2; i <= 5; ++i) c[i].write = true;  // all reads writable: the order stays legal
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(),
               Catch::Contains("read argument 0 is in a device-writable descriptor"));
  }
  SECTION("wrong direction: a write argument in a device-readable descriptor") {
    auto c = good();
    c[6].write = false;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
  }
  SECTION("wrong direction: a readable descriptor after a writable one") {
    auto c = good();
    c[3].write = true;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("follows a device-writable"));
  }
  SECTION("wrong direction: a writable header") {
    auto c = good();
    for (int i = 0; i < 6; ++i) c[i].write = true;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
  }
  SECTION("a status descriptor longer than one byte") {
    auto c = good();
    c.back().len = 4;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
  }
  SECTION("an argument of the wrong declared type") {
    auto v = m.reads();
    v[1].type = UNIFN_ACCEL_ARG_FLOAT32;
    CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_MINMAX, v, m.writes()).status ==
          UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("declared float32, int32 expected"));
  }
  SECTION("a misaligned float64 buffer") {
    auto v = m.reads();
    const auto odd = h.alloc(33, 0, 16) + 1;
    v[0].addr = odd;
    CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_MINMAX, v, m.writes()).status ==
          UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("aligned"));
  }
  SECTION("an indirect descriptor") {
    auto c = good();
    h.lay(c);  // then flag the header indirect
    h.write_desc(0, c[0].addr, c[0].len, vmm::virtio::kDescNext | vmm::virtio::kDescIndirect, 1);
    CHECK(h.publish(0, c.back().addr).status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("indirect"));
  }
  SECTION("more arguments than allowed") {
    std::vector<A> many(UNIFN_ACCEL_MAX_ARGS + 1, A{m.ndata, 4, UNIFN_ACCEL_ARG_INT32});
    CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_NOOP, many, {}).status ==
          UNIFN_ACCEL_BADMSG);
  }
  SECTION("a header with a non-zero reserved field, or of the wrong size") {
    auto c = good();
    auto req = h.get<unifn_accel_req>(c[0].addr);
    req._reserved = 1;
    h.mem.write_obj(vmm::GuestAddr(c[0].addr), req);
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
    c = good();
    c[0].len = 16;
    CHECK(h.submit(c).status == UNIFN_ACCEL_BADMSG);
  }
  CHECK(untouched(h, m.out, 32));
  CHECK(untouched(h, m.min, 8));
  CHECK(untouched(h, m.max, 8));
  CHECK(h.dev.refused() >= 1);
  // The device goes on: the same request, well-formed, works.
  auto a = h.submit(good());
  CHECK(a.status == UNIFN_ACCEL_OK);
  CHECK(h.get<double>(m.max) == 4);
}

TEST_CASE("chains whose end cannot be found come back with used length 0 and the device goes on") {
  Ready r;
  auto& h = r.h;
  const auto hdr = h.put(unifn_accel_req{1, 0, UNIFN_ACCEL_CMD_NOOP, 0, 0, 0, 0});
  const auto status = h.alloc(1, 0xAA);

  SECTION("a loop: descriptor 0 -> 1 -> 0") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}, {status, 1, true}}, 0, {1, 0});
    CHECK(a.used_len == 0);
    CHECK(a.status == 0xAA);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("loop"));
  }
  SECTION("a loop onto itself") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}}, 5, {5});
    CHECK(a.used_len == 0);
  }
  SECTION("a chain that links outside the queue") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}, {status, 1, true}}, 0, {200, -1});
    CHECK(a.used_len == 0);
    CHECK(h.get<std::uint8_t>(status) == 0xAA);
  }
  SECTION("an available ring entry outside the queue") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}, {status, 1, true}}, 0, {},
                      std::uint16_t{300});
    CHECK(a.used_len == 0);
    CHECK(a.used_id == 300);
  }
  SECTION("a device-readable status descriptor") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}, {status, 1, false}});
    CHECK(a.used_len == 0);
    CHECK(a.status == 0xAA);
  }
  SECTION("a status descriptor outside RAM") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}, {0xF0000000, 1, true}});
    CHECK(a.used_len == 0);
  }
  SECTION("only a header") {
    auto a = h.submit({{hdr, sizeof(unifn_accel_req), false}});
    CHECK(a.used_len == 0);
  }
  CHECK(h.request(UNIFN_ACCEL_CMD_NOOP, 0, 0).status == UNIFN_ACCEL_OK);
}

TEST_CASE("unknown op, unknown session and unknown command have their own statuses") {
  Ready r;
  auto& h = r.h;
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_IMAGE_CLASSIFY).status ==
        UNIFN_ACCEL_NOTSUPP);
  CHECK_THAT(h.dev.last_error(), Catch::Contains("image-classification"));
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, 9999).status == UNIFN_ACCEL_NOTSUPP);
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, 42, UNIFN_ACCEL_OP_NOOP).status == UNIFN_ACCEL_INVSESS);
  CHECK_THAT(h.dev.last_error(), Catch::Contains("session 42"));
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, 0, UNIFN_ACCEL_OP_NOOP).status == UNIFN_ACCEL_INVSESS);
  CHECK(h.request(77, r.sess, 0).status == UNIFN_ACCEL_NOTSUPP);
  CHECK(h.request(UNIFN_ACCEL_CMD_DESTROY_SESSION, 42, 0).status == UNIFN_ACCEL_INVSESS);
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_NOOP).status == UNIFN_ACCEL_OK);
}

TEST_CASE("op arguments are checked against the op before the backend runs") {
  Ready r;
  auto& h = r.h;
  auto i64 = [&](std::int64_t v) { return A{h.put(v), 8, UNIFN_ACCEL_ARG_INT64}; };
  auto f32 = [&](float v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_FLOAT32}; };
  auto sgemm = [&](std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t lda,
                   std::int64_t ldb, std::int64_t ldc, std::uint32_t alen, std::uint32_t blen,
                   std::uint32_t clen, std::uint64_t caddr = 0) {
    const A a{h.alloc(alen), alen, UNIFN_ACCEL_ARG_FLOAT32},
        b{h.alloc(blen), blen, UNIFN_ACCEL_ARG_FLOAT32};
    const A c{caddr ? caddr : h.alloc(clen, 0xCD), clen, UNIFN_ACCEL_ARG_FLOAT32};
    return h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_BLAS_SGEMM,
                     {i64(m), i64(n), i64(k), f32(1), a, i64(lda), b, i64(ldb), f32(0), i64(ldc)},
                     {c});
  };
  CHECK(sgemm(2, 3, 4, 4, 3, 3, 32, 48, 24).status == UNIFN_ACCEL_OK);
  CHECK(sgemm(2, 3, 4, 5, 3, 3, 36, 48, 24).status == UNIFN_ACCEL_OK);      // lda > k
  CHECK(sgemm(2, 3, 4, 4, 3, 3, 28, 48, 24).status == UNIFN_ACCEL_BADMSG);  // A too short
  CHECK(sgemm(2, 3, 4, 4, 3, 3, 32, 48, 28).status == UNIFN_ACCEL_BADMSG);  // C too long
  CHECK(sgemm(0, 3, 4, 4, 3, 3, 32, 48, 24).status == UNIFN_ACCEL_BADMSG);  // m = 0
  CHECK(sgemm(-1, 3, 4, 4, 3, 3, 32, 48, 24).status == UNIFN_ACCEL_BADMSG);
  CHECK(sgemm(2, 3, 4, 3, 3, 3, 32, 48, 24).status == UNIFN_ACCEL_BADMSG);  // lda < k
  CHECK(sgemm(70000, 1, 1, 1, 1, 1, 4, 4, 4).status == UNIFN_ACCEL_BADMSG);
  CHECK(sgemm(std::int64_t{1} << 40, 1, 1, 1, 1, 1, 4, 4, 4).status == UNIFN_ACCEL_BADMSG);
  const auto odd_c = h.alloc(32, 0xCD) + 2;
  CHECK(sgemm(2, 3, 4, 4, 3, 3, 32, 48, 24, odd_c).status == UNIFN_ACCEL_BADMSG);  // misaligned C

  auto image = [&](unifn_accel_image_params p, std::uint32_t in_len, std::uint32_t out_len) {
    const A params{h.put(p), sizeof p, UNIFN_ACCEL_ARG_STRUCT};
    return h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_OPENCV,
                     {params, {h.alloc(in_len), in_len, UNIFN_ACCEL_ARG_UINT8}},
                     {{h.alloc(out_len), out_len, UNIFN_ACCEL_ARG_UINT8}});
  };
  using P = unifn_accel_image_params;
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GRAYSCALE, 4, 3, 3, 4, 3, 1, 0, 0, 0}, 36, 12).status ==
        UNIFN_ACCEL_OK);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GRAYSCALE, 4, 3, 1, 4, 3, 1, 0, 0, 0}, 12, 12).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GRAYSCALE, 4, 3, 3, 4, 3, 3, 0, 0, 0}, 36, 36).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 4, 3, 2, 4, 3, 2, 3, 0, 0}, 24, 24).status ==
        UNIFN_ACCEL_OK);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 4, 3, 2, 4, 3, 2, 4, 0, 0}, 24, 24).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 4, 3, 2, 4, 3, 2, 3, -1.0f, 0}, 24, 24).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR, 4, 3, 2, 4, 3, 2, 3, NAN, 0}, 24, 24).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_SOBEL, 4, 3, 3, 4, 3, 1, 0, 0, 0}, 36, 12).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_SOBEL, 4, 3, 1, 5, 3, 1, 0, 0, 0}, 12, 15).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_RESIZE, 4, 3, 4, 8, 6, 4, 0, 0, 0}, 48, 192).status ==
        UNIFN_ACCEL_OK);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_RESIZE, 4, 3, 4, 0, 6, 4, 0, 0, 0}, 48, 0).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_RESIZE, 4, 3, 5, 8, 6, 5, 0, 0, 0}, 60, 240).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{99, 4, 3, 1, 4, 3, 1, 0, 0, 0}, 12, 12).status == UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_SOBEL, 20000, 1, 1, 20000, 1, 1, 0, 0, 0}, 20000, 20000).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(image(P{UNIFN_ACCEL_IMAGE_SOBEL, 4, 3, 1, 4, 3, 1, 0, 0, 7}, 12, 12).status ==
        UNIFN_ACCEL_BADMSG);  // reserved
  // NOOP takes no arguments.
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_NOOP, {i64(1)}, {}).status ==
        UNIFN_ACCEL_BADMSG);
  CHECK(h.request(UNIFN_ACCEL_CMD_NOOP, 0, 0, {i64(1)}, {}).status == UNIFN_ACCEL_BADMSG);
}

TEST_CASE("sessions are limited, and a failing backend answers ERR without stopping the device") {
  struct Throwing final : accel::Backend {
    std::string_view name() const override { return "throwing"; }
    bool available() const override { return true; }
    accel::Result sgemm(const accel::SgemmArgs&) override { throw std::runtime_error("boom"); }
    accel::Result minmax(const accel::MinmaxArgs&) override {
      return accel::Result::fail(accel::Status::Error, "the device is on fire");
    }
    accel::Result image(const accel::ImageArgs&) override { return accel::Result::success(); }
  };
  std::vector<std::string> errors, ops;
  accel::DeviceOptions opts;
  opts.max_sessions = 3;
  opts.on_error = [&](std::string_view w) { errors.emplace_back(w); };
  opts.on_op = [&](std::string_view b, std::string_view op) {
    ops.push_back(std::string(b) + "/" + std::string(op));
  };
  Harness h(std::make_shared<Throwing>(), opts);
  h.init_driver();
  const auto s = h.open_session();
  h.open_session();
  h.open_session();
  CHECK_THROWS_WITH(h.open_session(), Catch::Contains("CREATE_SESSION failed"));
  CHECK_THAT(h.dev.last_error(), Catch::Contains("all 3 sessions are open"));
  REQUIRE(h.request(UNIFN_ACCEL_CMD_DESTROY_SESSION, s, 0).status == UNIFN_ACCEL_OK);
  CHECK(h.open_session() == 4);

  auto m = make_minmax(h, {1, 2});
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, 4, UNIFN_ACCEL_OP_MINMAX, m.reads(), m.writes()).status ==
        UNIFN_ACCEL_ERR);
  CHECK_THAT(errors.back(), Catch::Contains("on fire"));
  auto i64 = [&](std::int64_t v) { return A{h.put(v), 8, UNIFN_ACCEL_ARG_INT64}; };
  auto f32 = [&](float v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_FLOAT32}; };
  const A one{h.alloc(4), 4, UNIFN_ACCEL_ARG_FLOAT32};
  auto a = h.request(
      UNIFN_ACCEL_CMD_DO_OP, 4, UNIFN_ACCEL_OP_BLAS_SGEMM,
      {i64(1), i64(1), i64(1), f32(1), one, i64(1), {h.alloc(4), 4, 0}, i64(1), f32(0), i64(1)},
      {{h.alloc(4), 4, 0}});
  CHECK(a.status == UNIFN_ACCEL_ERR);
  CHECK_THAT(errors.back(), Catch::Contains("boom"));
  CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, 4, UNIFN_ACCEL_OP_NOOP).status == UNIFN_ACCEL_OK);
  CHECK(ops == std::vector<std::string>{"throwing/noop"});
}

TEST_CASE("an SGEMM bigger than the per-request work limit is refused with ERR before it runs") {
  accel::DeviceOptions opts;
  opts.limits.max_sgemm_madds = 23;
  Harness h(accel::reference::make_backend(), opts);
  h.init_driver();
  const auto s = h.open_session();
  auto i64 = [&](std::int64_t v) { return A{h.put(v), 8, UNIFN_ACCEL_ARG_INT64}; };
  auto f32 = [&](float v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_FLOAT32}; };
  const A c{h.alloc(24, 0xCD), 24, UNIFN_ACCEL_ARG_FLOAT32};
  auto a = h.request(UNIFN_ACCEL_CMD_DO_OP, s, UNIFN_ACCEL_OP_BLAS_SGEMM,
                     {i64(2),
                      i64(3),
                      i64(4),
                      f32(1),
                      {h.alloc(32), 32, 0},
                      i64(4),
                      {h.alloc(48), 48, 0},
                      i64(3),
                      f32(0),
                      i64(3)},
                     {c});
  CHECK(a.status == UNIFN_ACCEL_ERR);
  CHECK_THAT(h.dev.last_error(), Catch::Contains("24 multiply-adds, more than the 23"));
  CHECK(untouched(h, c.addr, 24));
}

TEST_CASE("what the device writes into guest memory is tracked for reset") {
  Ready r;
  auto& h = r.h;
  auto m = make_minmax(h, {1, 2, 3});
  h.mem.track_host_writes(true);
  REQUIRE(h.request(UNIFN_ACCEL_CMD_DO_OP, r.sess, UNIFN_ACCEL_OP_MINMAX, m.reads(), m.writes())
              .status == UNIFN_ACCEL_OK);
  auto pages = h.mem.take_host_dirty();
  auto has = [&](std::uint64_t gpa) {
    return std::find(pages.begin(), pages.end(), gpa / 4096) != pages.end();
  };
  CHECK(has(m.out));
  CHECK(has(Harness::kUsed));
}
