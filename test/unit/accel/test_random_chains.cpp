// Random descriptor chains and headers (fixed seeds): the device answers every one and writes only
// where it may.
#include <catch2/catch.hpp>

#include <random>

#include "test/support/ring_harness.h"

using namespace unifn;
using namespace unifn::test;

namespace {

// A well-formed request for a random op with random small sizes.
std::vector<D> valid_request(Harness& h, std::mt19937& rng, std::uint32_t sess) {
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  auto i64 = [&](std::int64_t v) { return A{h.put(v), 8, UNIFN_ACCEL_ARG_INT64}; };
  auto f32 = [&](float v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_FLOAT32}; };
  auto i32 = [&](std::int32_t v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_INT32}; };
  auto buf = [&](std::uint64_t bytes, std::uint32_t type) {
    return A{h.alloc(bytes, static_cast<std::uint8_t>(rng())), static_cast<std::uint32_t>(bytes),
             type};
  };
  switch (pick(4)) {
    case 0:
      return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_NOOP, {}, {});
    case 1: {
      const std::int64_t m = 1 + pick(20), n = 1 + pick(20), k = 1 + pick(20);
      return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_BLAS_SGEMM,
                         {i64(m), i64(n), i64(k), f32(1), buf(4 * m * k, UNIFN_ACCEL_ARG_FLOAT32),
                          i64(k), buf(4 * k * n, UNIFN_ACCEL_ARG_FLOAT32), i64(n), f32(0), i64(n)},
                         {buf(4 * m * n, UNIFN_ACCEL_ARG_FLOAT32)});
    }
    case 2: {
      const std::int32_t n = 1 + static_cast<std::int32_t>(pick(50));
      return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_MINMAX,
                         {buf(8ull * n, UNIFN_ACCEL_ARG_FLOAT64), i32(n), i32(0), i32(10)},
                         {buf(8ull * n, UNIFN_ACCEL_ARG_FLOAT64), buf(8, UNIFN_ACCEL_ARG_FLOAT64),
                          buf(8, UNIFN_ACCEL_ARG_FLOAT64)});
    }
    default: {
      unifn_accel_image_params p{
          1 + pick(4), 1 + pick(24), 1 + pick(24), 1 + pick(4), 0, 0, 0, 1 + 2 * pick(4), 0, 0};
      if (p.op == UNIFN_ACCEL_IMAGE_GRAYSCALE) p.channels = 3 + pick(2);
      if (p.op == UNIFN_ACCEL_IMAGE_SOBEL) p.channels = 1;
      p.out_width = p.op == UNIFN_ACCEL_IMAGE_RESIZE ? 1 + pick(30) : p.width;
      p.out_height = p.op == UNIFN_ACCEL_IMAGE_RESIZE ? 1 + pick(30) : p.height;
      p.out_channels = p.op == UNIFN_ACCEL_IMAGE_GRAYSCALE ? 1 : p.channels;
      return h.chain_for(
          UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_OPENCV,
          {A{h.put(p), sizeof p, UNIFN_ACCEL_ARG_STRUCT},
           buf(std::uint64_t{p.width} * p.height * p.channels, UNIFN_ACCEL_ARG_UINT8)},
          {buf(std::uint64_t{p.out_width} * p.out_height * p.out_channels, UNIFN_ACCEL_ARG_UINT8)});
    }
  }
}

// A chain made of random pieces: mostly wrong in one or more ways.
std::vector<D> random_request(Harness& h, std::mt19937& rng, std::uint32_t sess) {
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  const std::uint32_t ops[] = {UNIFN_ACCEL_OP_NOOP,           UNIFN_ACCEL_OP_BLAS_SGEMM,
                               UNIFN_ACCEL_OP_MINMAX,         UNIFN_ACCEL_OP_OPENCV,
                               UNIFN_ACCEL_OP_IMAGE_CLASSIFY, 4000};
  const std::uint32_t nr = pick(12), nw = pick(5);
  std::vector<A> reads, writes;
  auto arg = [&]() {
    const std::uint32_t kinds = pick(6);
    A a;
    a.len = kinds == 0   ? 8
            : kinds == 1 ? 4
            : kinds == 2 ? sizeof(unifn_accel_image_params)
                         : pick(4096);
    a.type = pick(9);
    a.addr = pick(10) == 0 ? (std::uint64_t{1} << 20) - pick(64)
                           : h.alloc(a.len, static_cast<std::uint8_t>(rng()), 1u << pick(5));
    const bool fits = a.addr + a.len <= (1u << 20);
    if (kinds == 0 && fits)
      h.mem.write_obj(vmm::GuestAddr(a.addr),
                      static_cast<std::int64_t>(pick(40)));  // small dimensions
    if (kinds == 1 && fits) h.mem.write_obj(vmm::GuestAddr(a.addr), pick(50));
    if (kinds == 2 && fits)
      h.mem.write_obj(
          vmm::GuestAddr(a.addr),
          unifn_accel_image_params{pick(6), pick(30), pick(30), pick(6), pick(30), pick(30),
                                   pick(6), pick(12), 1.0f, pick(3) == 0 ? 1u : 0u});
    return a;
  };
  for (std::uint32_t i = 0; i < nr; ++i) reads.push_back(arg());
  for (std::uint32_t i = 0; i < nw; ++i) writes.push_back(arg());
  // No DESTROY_SESSION of the session the test keeps using.
  const std::uint32_t cmd = pick(6);
  const std::uint32_t s = pick(4) ? sess : 100 + pick(5);
  return h.chain_for(cmd == UNIFN_ACCEL_CMD_DESTROY_SESSION && s == sess
                         ? std::uint32_t{UNIFN_ACCEL_CMD_DO_OP}
                         : cmd,
                     s, ops[pick(6)], reads, writes);
}

std::vector<D> random_chain(Harness& h, std::mt19937& rng, std::uint32_t sess) {
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  auto c = pick(2) ? valid_request(h, rng, sess) : random_request(h, rng, sess);
  // Then damage it, maybe.
  switch (pick(10)) {
    case 0:
      c.erase(c.begin() + pick(static_cast<std::uint32_t>(c.size())));
      break;
    case 1:
      c[pick(static_cast<std::uint32_t>(c.size()))].write ^= true;
      break;
    case 2:
      c[pick(static_cast<std::uint32_t>(c.size()))].len = static_cast<std::uint32_t>(rng());
      break;
    case 3:
      c[pick(static_cast<std::uint32_t>(c.size()))].addr = (std::uint64_t{rng()} << 32) | rng();
      break;
    case 4:
      c.insert(c.begin() + pick(static_cast<std::uint32_t>(c.size())),
               D{h.alloc(8), 8, pick(2) == 0});
      break;
    case 5: {  // two buffers of the chain made to alias
      const auto i = pick(static_cast<std::uint32_t>(c.size())),
                 j = pick(static_cast<std::uint32_t>(c.size()));
      c[i].addr = c[j].addr + pick(8);
      break;
    }
    default:
      break;
  }
  return c;
}

}  // namespace

TEST_CASE(
    "thousands of random chains: every one answered, the used ring in step, nothing written "
    "outside the chains") {
  for (unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    Harness h;
    h.init_driver();
    const std::uint32_t sess = h.open_session();
    // Canary pages no chain ever names (between the rings and the data area): the device must never
    // write them.
    const std::uint64_t canary = Harness::kUsed + 0x1000, canary_len = Harness::kData - canary;
    h.mem.fill(vmm::GuestAddr(canary), 0x5A, canary_len);
    int ok = 0;
    for (int i = 0; i < 1500; ++i) {
      h.next_free = Harness::kData;  // reuse the data area: each request is laid out afresh
      auto c = random_chain(h, rng, sess);
      if (c.empty()) continue;
      const std::uint16_t first = static_cast<std::uint16_t>(rng() % Harness::kQueue);
      std::vector<int> links;
      if (rng() % 16 == 0) {  // random links: loops, stray indices
        for (std::size_t j = 0; j < c.size(); ++j)
          links.push_back(static_cast<int>(rng() % (Harness::kQueue + 8)) - 4);
      }
      const std::uint16_t before = h.dev.queue_state(0).used_idx;
      Answer a;
      REQUIRE_NOTHROW(a = h.submit(c, first, links));
      REQUIRE(h.dev.queue_state(0).used_idx == static_cast<std::uint16_t>(before + 1));
      REQUIRE((h.rd(vmm::virtio::reg::kStatus) & vmm::virtio::status::kNeedsReset) == 0);
      // With random links the chain's real end is not where the harness looks for the status byte.
      if (a.used_len > 0 && links.empty()) REQUIRE(a.status <= UNIFN_ACCEL_INVSESS);
      ok += a.status == UNIFN_ACCEL_OK;
    }
    for (auto b : h.get_vec<std::uint8_t>(canary, canary_len)) REQUIRE(b == 0x5A);
    INFO("seed " << seed << ": " << ok << " of 1500 requests were well-formed");
    CHECK(ok > 200);
    CHECK(h.request(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_NOOP).status == UNIFN_ACCEL_OK);
  }
}
