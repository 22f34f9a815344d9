// virtio-mmio v2 transport: identity registers, feature negotiation, queue setup checks, reset,
// snapshot round trip.
#include <catch2/catch.hpp>

#include <functional>

#include "test/support/ring_harness.h"

using namespace unifn;
using namespace unifn::test;
namespace reg = vmm::virtio::reg;
namespace st = vmm::virtio::status;

TEST_CASE("the transport identifies itself as a virtio-mmio version 2 accel device") {
  Harness h;
  CHECK(h.rd(reg::kMagic) == 0x74726976);
  CHECK(h.rd(reg::kVersion) == 2);
  CHECK(h.rd(reg::kDeviceId) == UNIFN_VIRTIO_ID_ACCEL);
  CHECK(h.rd(reg::kVendorId) != 0);
  h.wr(reg::kDeviceFeaturesSel, 0);
  CHECK(h.rd(reg::kDeviceFeatures) == 0);
  h.wr(reg::kDeviceFeaturesSel, 1);
  CHECK(h.rd(reg::kDeviceFeatures) == 1);  // VIRTIO_F_VERSION_1
  h.wr(reg::kQueueSel, 0);
  CHECK(h.rd(reg::kQueueNumMax) == UNIFN_ACCEL_QUEUE_SIZE);
  h.wr(reg::kQueueSel, 1);
  CHECK(h.rd(reg::kQueueNumMax) == 0);  // one queue only
  CHECK(h.rd(reg::kShmLenLow) == 0xffffffffu);
}

TEST_CASE("the config space names the ABI, the ops served and the backend") {
  Harness h;
  unifn_accel_config c{};
  for (std::size_t i = 0; i < sizeof c / 4; ++i) {
    const std::uint32_t word = h.rd(reg::kConfig + 4 * i);
    std::memcpy(reinterpret_cast<std::uint8_t*>(&c) + 4 * i, &word,
                4);  // Safe: filling a POD struct byte-wise.
  }
  CHECK(c.abi_version == UNIFN_ACCEL_ABI_VERSION);
  CHECK(c.ops == ((1u << UNIFN_ACCEL_OP_NOOP) | (1u << UNIFN_ACCEL_OP_BLAS_SGEMM) |
                  (1u << UNIFN_ACCEL_OP_MINMAX) | (1u << UNIFN_ACCEL_OP_OPENCV)));
  CHECK(std::string(c.backend) == "reference");
  // Config reads of any width, and past its end they read zero.
  std::uint8_t one[1];
  h.dev.mmio(h.mem, reg::kConfig + 16, false, one);
  CHECK(one[0] == 'r');
  std::uint8_t eight[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  h.dev.mmio(h.mem, reg::kConfig + sizeof c, false, eight);
  CHECK(eight[0] == 0);
}

TEST_CASE("FEATURES_OK sticks only for a subset of the offer that includes VERSION_1") {
  Harness h;
  h.wr(reg::kStatus, st::kAcknowledge | st::kDriver);
  h.wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);  // VERSION_1 not accepted
  CHECK((h.rd(reg::kStatus) & st::kFeaturesOk) == 0);
  h.wr(reg::kStatus, 0);
  h.wr(reg::kDriverFeaturesSel, 1);
  h.wr(reg::kDriverFeatures, 1 | 2);  // a bit the device does not offer
  h.wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  CHECK((h.rd(reg::kStatus) & st::kFeaturesOk) == 0);
  h.wr(reg::kDriverFeatures, 1);
  h.wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  CHECK((h.rd(reg::kStatus) & st::kFeaturesOk) != 0);
  CHECK(h.dev.driver_features() == (1ull << 32));
}

TEST_CASE("QueueReady is refused for rings that are misplaced, misaligned or oddly sized") {
  struct Case {
    std::uint32_t num;
    std::uint64_t desc, avail, used;
    const char* why;
  };
  constexpr std::uint64_t d = Harness::kDesc, av = Harness::kAvail, u = Harness::kUsed;
  for (auto c :
       {Case{0, d, av, u, "power of two"}, Case{48, d, av, u, "power of two"},
        Case{128, d, av, u, "power of two"}, Case{64, d + 8, av, u, "descriptor table"},
        Case{64, 0xFFFF0, av, u, "descriptor table"}, Case{64, d, av + 1, u, "available ring"},
        Case{64, d, av, u + 2, "used ring"}, Case{64, d, av, 0x7FFFFFFF000, "used ring"},
        // Below the guest's user memory (the VMM's own pages): each ring is refused there.
        Case{64, 0x1000, av, u,
             "descriptor table at 0x1000 (1024 bytes) is misaligned or outside the guest's user "
             "memory (0x10000-"},
        Case{64, d, 0x2000, u, "available ring at 0x2000"},
        Case{64, d, av, 0x3000, "used ring at 0x3000"}}) {
    Harness h;
    h.wr(reg::kQueueSel, 0);
    h.wr(reg::kQueueNum, c.num);
    h.wr(reg::kQueueDescLow, static_cast<std::uint32_t>(c.desc));
    h.wr(reg::kQueueDescHigh, static_cast<std::uint32_t>(c.desc >> 32));
    h.wr(reg::kQueueDriverLow, static_cast<std::uint32_t>(c.avail));
    h.wr(reg::kQueueDeviceLow, static_cast<std::uint32_t>(c.used));
    h.wr(reg::kQueueDeviceHigh, static_cast<std::uint32_t>(c.used >> 32));
    h.wr(reg::kQueueReady, 1);
    CHECK(h.rd(reg::kQueueReady) == 0);
    CHECK_THAT(h.dev.transport_error(), Catch::Contains(c.why));
  }
}

TEST_CASE(
    "notifications are ignored until DRIVER_OK, and queue registers freeze while the queue is "
    "live") {
  Harness g;
  g.wr(reg::kStatus, st::kAcknowledge | st::kDriver);
  g.wr(reg::kDriverFeaturesSel, 1);
  g.wr(reg::kDriverFeatures, 1);
  g.wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  g.wr(reg::kQueueNum, Harness::kQueue);
  g.wr(reg::kQueueDescLow, Harness::kDesc);
  g.wr(reg::kQueueDriverLow, Harness::kAvail);
  g.wr(reg::kQueueDeviceLow, Harness::kUsed);
  g.wr(reg::kQueueReady, 1);
  CHECK_THROWS_WITH(g.request(UNIFN_ACCEL_CMD_NOOP, 0, 0), Catch::Contains("did not answer"));
  g.wr(reg::kQueueDescLow, 0x5000);  // ignored: the queue is live
  CHECK(g.dev.queue_state(0).desc == Harness::kDesc);
  g.wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  CHECK(g.request(UNIFN_ACCEL_CMD_NOOP, 0, 0).status == UNIFN_ACCEL_OK);
}

TEST_CASE("odd-sized or misaligned register accesses read zero and change nothing") {
  Harness h;
  std::uint8_t two[2] = {0xFF, 0xFF};
  h.dev.mmio(h.mem, reg::kMagic, false, two);
  CHECK(two[0] == 0);
  std::uint8_t four[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  h.dev.mmio(h.mem, reg::kStatus + 1, true, four);
  CHECK(h.rd(reg::kStatus) == 0);
}

TEST_CASE("a corrupt available index marks the device NEEDS_RESET, a reset brings it back") {
  Harness h;
  h.init_driver();
  h.mem.write_obj<std::uint16_t>(vmm::GuestAddr(Harness::kAvail + 2),
                                 500);  // 500 entries ahead of a 64-entry queue
  h.wr(reg::kQueueNotify, 0);
  CHECK((h.rd(reg::kStatus) & st::kNeedsReset) != 0);
  CHECK_THAT(h.dev.transport_error(), Catch::Contains("ahead of the device"));
  h.mem.fill(vmm::GuestAddr(Harness::kAvail), 0, 0x1000);
  h.mem.fill(vmm::GuestAddr(Harness::kUsed), 0, 0x1000);
  h.init_driver();
  CHECK((h.rd(reg::kStatus) & st::kNeedsReset) == 0);
  CHECK(h.request(UNIFN_ACCEL_CMD_NOOP, 0, 0).status == UNIFN_ACCEL_OK);
}

TEST_CASE("writing 0 to Status resets queues and drops sessions") {
  Harness h;
  h.init_driver();
  h.open_session();
  REQUIRE(h.dev.sessions().size() == 1);
  h.wr(reg::kStatus, 0);
  CHECK(h.dev.sessions().empty());
  CHECK(h.dev.queue_state(0) == vmm::virtio::QueueState{});
  CHECK(h.rd(reg::kStatus) == 0);
}

TEST_CASE("save and restore round-trip the transport and the sessions") {
  Harness h;
  h.init_driver();
  const auto s1 = h.open_session(3);
  const auto s2 = h.open_session(5);
  REQUIRE(h.request(UNIFN_ACCEL_CMD_DESTROY_SESSION, s1, 0).status == UNIFN_ACCEL_OK);
  for (int i = 0; i < 70; ++i)
    REQUIRE(h.request(UNIFN_ACCEL_CMD_NOOP, 0, 0).status ==
            UNIFN_ACCEL_OK);  // indices wrap the ring
  const auto state = h.dev.save();

  accel::AccelDevice copy(accel::reference::make_backend());
  copy.restore(state);
  CHECK(copy.save() == state);
  CHECK(copy.queue_state(0) == h.dev.queue_state(0));
  CHECK(copy.status() == h.dev.status());
  CHECK(copy.driver_features() == h.dev.driver_features());
  CHECK(copy.sessions() == h.dev.sessions());
  CHECK(copy.sessions().count(s2) == 1);
  CHECK(copy.sessions().at(s2) == 5);

  // The restored device carries on with the same guest memory: same rings, same session ids.
  Harness& g = h;
  const auto status = g.alloc(1, 0xAA);
  unifn_accel_req req{1, s2, UNIFN_ACCEL_CMD_DO_OP, UNIFN_ACCEL_OP_NOOP, 0, 0, 0};
  const auto hdr = g.put(req);
  const std::uint16_t slot = 3;
  g.write_desc(slot, hdr, sizeof req, vmm::virtio::kDescNext, slot + 1);
  g.write_desc(slot + 1, status, 1, vmm::virtio::kDescWrite, 0);
  g.mem.write_obj<std::uint16_t>(
      vmm::GuestAddr(Harness::kAvail + 4 + 2ull * (g.avail_idx % Harness::kQueue)), slot);
  g.mem.write_obj<std::uint16_t>(vmm::GuestAddr(Harness::kAvail + 2), ++g.avail_idx);
  copy.write32(g.mem, reg::kQueueNotify, 0);
  CHECK(g.get<std::uint8_t>(status) == UNIFN_ACCEL_OK);
  CHECK(copy.queue_state(0).used_idx == h.dev.queue_state(0).used_idx + 1);

  // A new session on the copy gets an id never handed out before.
  auto fresh = copy.save();
  CHECK(fresh != state);
}

TEST_CASE(
    "a queue size above QueueNumMax is ignored, so every reachable state saves and restores") {
  Harness h;
  h.wr(reg::kQueueSel, 0);
  h.wr(reg::kQueueNum, 32);
  h.wr(reg::kQueueNum, 65535);
  CHECK(h.dev.queue_state(0).num == 32);
  accel::AccelDevice copy(accel::reference::make_backend());
  copy.restore(h.dev.save());
  CHECK(copy.queue_state(0).num == 32);
}

TEST_CASE("restore refuses damaged state and leaves the device as it was") {
  Harness h;
  h.init_driver();
  h.open_session();
  const auto good = h.dev.save();
  accel::AccelDevice dev(accel::reference::make_backend());
  const auto before = dev.save();
  auto bad = good;
  bad[0] ^= 1;
  CHECK_THROWS_WITH(dev.restore(bad), Catch::Contains("magic"));
  CHECK_THROWS(dev.restore(std::span(good).first(good.size() - 3)));
  auto trailing = good;
  trailing.push_back(0);
  CHECK_THROWS_WITH(dev.restore(trailing), Catch::Contains("trailing"));
  CHECK(dev.save() == before);
}

TEST_CASE(
    "check() names what restore() would refuse, device part included, and passes what restores",
    "[snapshot]") {
  Harness h;
  h.init_driver();
  h.open_session(7);
  const auto good = h.dev.save();
  accel::AccelDevice dev(accel::reference::make_backend());
  const auto before = dev.save();
  CHECK(dev.check(good) == std::nullopt);
  CHECK(dev.check(before) == std::nullopt);

  // The transport's typed state, rewritten: each change is refused by check() and by restore()
  // alike.
  auto refused = [&](const std::function<void(vmm::virtio::TransportState&)>& edit,
                     const std::string& why) {
    auto s = vmm::decode<vmm::virtio::TransportState>(good, "virtio-mmio state");
    edit(s);
    const auto bytes = vmm::encode(s);
    const auto problem = dev.check(bytes);
    REQUIRE(problem.has_value());
    CHECK_THAT(*problem, Catch::Contains(why));
    CHECK_THROWS_WITH(dev.restore(bytes), Catch::Contains(why));
    CHECK(dev.save() == before);
  };
  refused([](auto& s) { s.device_id = 9; }, "virtio-mmio state is for device id 9");
  refused([](auto& s) { s.queues.push_back({}); }, "virtio-mmio state has 2 queues, the device 1");
  refused([](auto& s) { s.queues[0].num = 4096; }, "queue size 4096 is above the maximum");
  refused([](auto& s) { s.device.resize(s.device.size() - 1); }, "truncated");
  refused([](auto& s) { s.device[0] = 7; }, "virtio-accel state: format version 7");
  refused(
      [](auto& s) {
        accel::AccelState a = vmm::decode<accel::AccelState>(s.device, "virtio-accel state");
        for (std::uint32_t id = 100; id < 300; ++id) a.sessions[id] = 0;
        s.device = vmm::encode(a);
      },
      "sessions, more than the 64 allowed");
  CHECK_THAT(dev.check(std::span(good).first(10)).value_or(""), Catch::Contains("truncated"));

  dev.restore(good);
  CHECK(dev.save() == good);
}
