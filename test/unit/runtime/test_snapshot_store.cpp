// Snapshot files: reused when valid; corrupted, truncated, foreign, stale or lying ones (fields
// outside the layout plan) set aside and rebuilt; temporary files that never open what is there;
// state directories that are ours alone.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <fmt/format.h>
#include <functional>
#include <unifn/abi.h>

#include "accel/device.h"
#include "test/unit/runtime/guest_helpers.h"
#include "test/support/temp_dir.h"
#include "accel/registry.h"
#include "vmm/snapshot/snapshot_store.h"
#include "vmm/x86/layout.h"

using namespace unifn;
using namespace unifn::test;
namespace fs = std::filesystem;

namespace {

std::string answer(vmm::SnapshotStore::Result& got, std::shared_ptr<const vmm::FunctionImage> image,
                   const std::string& body, const vmm::FunctionVmConfig& cfg = {}) {
  auto vm = vmm::FunctionVm::restore(got.snapshot, image, cfg, quiet);
  auto out = call(*vm, body);
  REQUIRE(out.ok());
  return out.body;
}

void poke(const fs::path& file, std::uint64_t offset, char byte) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(byte);
}

// Rewrites key's state file with fields changed by edit: magic, format, key and checksums all
// valid, the content a lie. The RAM file stays as it is (save() renames a second name of it onto
// itself, which leaves both).
void craft(vmm::SnapshotStore& store, const std::string& key,
           const std::function<void(vmm::Snapshot&)>& edit, const vmm::FunctionVmConfig& cfg = {}) {
  auto snap = store.load(key, cfg);
  edit(*snap);
  const fs::path twin = store.ram_path(key).string() + ".craft";
  fs::remove(twin);
  fs::create_hard_link(store.ram_path(key), twin);
  snap->ram = vmm::Fd(::open(store.ram_path(key).c_str(), O_RDONLY | O_CLOEXEC));
  store.save(key, *snap, twin);
  fs::remove(twin);
}

// Edits the payload of a state file and puts the header's checksum right (FNV-1a, as the store sums
// it).
void rewrite_payload(const fs::path& state, const std::string& key,
                     const std::function<void(std::vector<std::uint8_t>&)>& edit) {
  std::ifstream in(state, std::ios::binary);
  std::vector<std::uint8_t> file((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
  in.close();
  const std::size_t header = 8 + 4 + 8 + key.size() + 16;  // magic, format, key, length, checksum
  REQUIRE(file.size() > header);
  std::vector<std::uint8_t> payload(file.begin() + static_cast<std::ptrdiff_t>(header), file.end());
  edit(payload);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto c : payload) h = (h ^ c) * 0x100000001b3ull;
  std::memcpy(file.data() + header - 8, &h, sizeof h);
  std::copy(payload.begin(), payload.end(), file.begin() + static_cast<std::ptrdiff_t>(header));
  std::ofstream(state, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(file.data()),  // Safe: bytes as chars.
             static_cast<std::streamsize>(file.size()));
}

std::size_t set_aside(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    n += e.path().filename().string().find(".bad-") != std::string::npos;
  return n;
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("a snapshot is written once and restored from disk afterwards") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  auto first = store.get_or_build(image, cfg, quiet);
  CHECK_FALSE(first.from_disk);
  auto second = store.get_or_build(image, cfg, quiet);
  CHECK(second.from_disk);
  CHECK(second.warning.empty());
  CHECK(answer(second, image, "disk") == "Hello, disk!\n");
  // The RAM file holds only non-zero pages: far less on disk than the VM's RAM.
  auto key = vmm::SnapshotStore::key(*image, cfg);
  CHECK(fs::file_size(store.ram_path(key)) == second.snapshot->layout.ram);
  CHECK(fs::exists(store.state_path(key)));
  CHECK_FALSE(fs::exists(store.state_path(key).string() + ".tmp"));
}

TEST_CASE("damaged snapshot files are detected, set aside and rebuilt") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  store.get_or_build(image, cfg, quiet);
  auto key = vmm::SnapshotStore::key(*image, cfg);
  auto state = store.state_path(key), ram = store.ram_path(key);

  SECTION("a flipped byte in the state file") {
    poke(state, fs::file_size(state) - 20, 'X');
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains("checksum mismatch"));
    CHECK(answer(got, image, "again") == "Hello, again!\n");
  }
  SECTION("a truncated state file") {
    fs::resize_file(state, 40);
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains("truncated"));
  }
  SECTION("a changed page in the RAM file") {
    poke(ram, 0x100000 + 64, 0x5A);  // inside the image's first page
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains(".ram") && Catch::Contains("checksum mismatch"));
    CHECK(answer(got, image, "ram") == "Hello, ram!\n");
  }
  SECTION("another function's snapshot under this key") {
    auto other = vmm::FunctionImage::load(example("echo"));
    store.get_or_build(other, cfg, quiet);
    auto other_key = vmm::SnapshotStore::key(*other, cfg);
    fs::copy_file(store.state_path(other_key), state, fs::copy_options::overwrite_existing);
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains("another image"));
  }
  SECTION("a state file of an older format") {
    const std::uint32_t old_format = vmm::kSnapshotFormat - 1;
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);  // after the magic
    f.write(reinterpret_cast<const char*>(&old_format),
            sizeof old_format);  // Safe: an integer as bytes.
    f.close();
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning,
               Catch::Contains(fmt::format("snapshot format {} (this unifnd reads format {})",
                                           old_format, vmm::kSnapshotFormat)));
    CHECK(answer(got, image, "format") == "Hello, format!\n");
  }
  SECTION("sections out of order, with valid checksums") {
    rewrite_payload(state, key, [](std::vector<std::uint8_t>& p) {
      p[0] = 2;
    });  // the first tag: heap, not layout
    CHECK_THROWS_WITH(
        store.load(key, cfg),
        Catch::Contains("the layout section is missing (found section 2 (heap) in its place)"));
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains("the layout section is missing"));
  }
  SECTION("a piece's state of another version, with valid checksums") {
    rewrite_payload(state, key, [](std::vector<std::uint8_t>& p) {
      p[12] = 9;
    });  // the layout's version, after tag and length
    CHECK_THROWS_WITH(store.load(key, cfg), Catch::Contains("guest layout: format version 9"));
    CHECK_FALSE(store.get_or_build(image, cfg, quiet).from_disk);
  }
  SECTION("not a snapshot at all") {
    std::ofstream(state, std::ios::trunc) << "garbage garbage garbage garbage garbage garbage";
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains("bad magic"));
  }
  CHECK(store.get_or_build(image, cfg, quiet).from_disk);  // the rebuilt one is trusted next time
}

TEST_CASE("an image changed on disk gets a new snapshot") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  vmm::FunctionVmConfig cfg;
  auto copy = dir.path() / "fn.elf";
  fs::copy_file(example("hello"), copy);
  auto before = vmm::FunctionImage::load(copy.string());
  CHECK_FALSE(store.get_or_build(before, cfg, quiet).from_disk);
  std::ofstream(copy, std::ios::app) << "trailing bytes change the image";
  auto after = vmm::FunctionImage::load(copy.string());
  CHECK(vmm::SnapshotStore::key(*before, cfg) != vmm::SnapshotStore::key(*after, cfg));
  CHECK_FALSE(store.get_or_build(after, cfg, quiet).from_disk);
  cfg.memory_bytes = 32 << 20;  // settings that shape the VM are part of the key too
  CHECK(vmm::SnapshotStore::key(*after, cfg) !=
        vmm::SnapshotStore::key(*before, vmm::FunctionVmConfig{}));
}

TEST_CASE("a function moved to another accelerator backend gets its own snapshot") {
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cpu, cuda;
  cpu.device_key = "accel:cpu";
  cuda.device_key = "accel:cuda";
  CHECK(vmm::SnapshotStore::key(*image, cpu) != vmm::SnapshotStore::key(*image, cuda));
  CHECK(vmm::SnapshotStore::key(*image, cpu) !=
        vmm::SnapshotStore::key(*image, vmm::FunctionVmConfig{}));
  // The key and the command line are kept apart: moving bytes between them changes the key.
  vmm::FunctionVmConfig a, b;
  a.device_key = "accel:cpu x";
  b.device_key = "accel:cpu";
  b.cmdline = " x";
  CHECK(vmm::SnapshotStore::key(*image, a) != vmm::SnapshotStore::key(*image, b));
}

TEST_CASE(
    "vCPU state survives a round trip through a restored machine, and another platform's is "
    "refused") {
  auto image = vmm::FunctionImage::load(example("echo"));
  vmm::FunctionVmConfig cfg;
  auto vm = vmm::FunctionVm::boot(image, cfg, quiet);
  auto snap = vm->snapshot(memfd());
  CHECK(snap->cpu.platform == cfg.platform_or_default().kind());
  auto restored = vmm::FunctionVm::restore(snap, image, cfg, quiet);
  CHECK(restored->machine().capture().bytes == snap->cpu.bytes);
  CHECK(restored->machine().regs().rip == vm->machine().regs().rip);
  vmm::CpuState other{snap->cpu.platform == vmm::PlatformKind::Kvm ? vmm::PlatformKind::Sandbox
                                                                   : vmm::PlatformKind::Kvm,
                      snap->cpu.bytes};
  CHECK_THROWS_WITH(restored->machine().apply(other), Catch::Contains("cannot be applied"));
  vmm::CpuState truncated{snap->cpu.platform, std::vector<std::uint8_t>(snap->cpu.bytes.begin(),
                                                                        snap->cpu.bytes.end() - 1)};
  CHECK_THROWS(restored->machine().apply(truncated));
  CHECK(restored->machine().capture().bytes == snap->cpu.bytes);  // refused whole: nothing applied
}

TEST_CASE(
    "the snapshot's own state structs round-trip through their bytes, and damaged bytes are "
    "refused",
    "[snapshot]") {
  const vmm::GuestLayout l{64 << 20, 2 << 20, 40 << 20, 60 << 20, 63 << 20, 1 << 20};
  const auto lb = vmm::encode(l);
  CHECK(vmm::decode<vmm::GuestLayout>(lb, "guest layout") == l);
  CHECK(vmm::encode(vmm::decode<vmm::GuestLayout>(lb, "guest layout")) == lb);
  CHECK_THROWS_WITH(
      vmm::decode<vmm::GuestLayout>(std::span(lb).first(lb.size() - 1), "guest layout"),
      Catch::Contains("truncated"));
  auto lv = lb;
  lv[0] = 2;
  CHECK_THROWS_WITH(vmm::decode<vmm::GuestLayout>(lv, "guest layout"),
                    Catch::Contains("guest layout: format version 2"));

  const vmm::CpuState c{vmm::PlatformKind::Sandbox, {1, 2, 3, 4}};
  const auto cb = vmm::encode(c);
  CHECK(vmm::decode<vmm::CpuState>(cb, "vCPU state") == c);
  auto cp = cb;
  cp[4] = 7;  // the platform, after the version
  CHECK_THROWS_WITH(vmm::decode<vmm::CpuState>(cp, "vCPU state"),
                    Catch::Contains("names an unknown platform 7"));
  auto ct = cb;
  ct.push_back(0);
  CHECK_THROWS_WITH(vmm::decode<vmm::CpuState>(ct, "vCPU state"),
                    Catch::Contains("vCPU state: trailing bytes"));
}

TEST_CASE(
    "stale snapshots are collected, while the ones in use, set-aside files and other files stay") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  vmm::FunctionVmConfig cfg;
  auto hello = vmm::FunctionImage::load(example("hello"));
  auto echo = vmm::FunctionImage::load(example("echo"));
  auto kept = store.get_or_build(echo, cfg, quiet);
  store.get_or_build(hello, cfg, quiet);
  const auto keep = vmm::SnapshotStore::key(*echo, cfg),
             stale = vmm::SnapshotStore::key(*hello, cfg);
  std::ofstream(dir.path() / "notes.txt") << "not ours";
  std::ofstream(dir.path() / (stale + ".state.bad-123")) << "set aside";
  std::ofstream(dir.path() / (stale + ".ram.tmp99")) << "a crashed build";
  std::ofstream(dir.path() / (keep + ".ram.tmp98")) << "a build under way";
  fs::last_write_time(dir.path() / (stale + ".ram.tmp99"),
                      fs::file_time_type::clock::now() - std::chrono::hours(2));

  auto c = store.collect_garbage({keep});
  CHECK(c.files == 3);  // hello's .ram and .state, the old temporary file
  CHECK(c.bytes > 0);
  CHECK_FALSE(fs::exists(store.state_path(stale)));
  CHECK_FALSE(fs::exists(store.ram_path(stale)));
  CHECK_FALSE(fs::exists(dir.path() / (stale + ".ram.tmp99")));
  CHECK(fs::exists(store.state_path(keep)));
  CHECK(fs::exists(store.ram_path(keep)));
  CHECK(fs::exists(dir.path() / "notes.txt"));
  CHECK(fs::exists(dir.path() / (stale + ".state.bad-123")));
  CHECK(fs::exists(dir.path() / (keep + ".ram.tmp98")));
  CHECK(answer(kept, echo, "still") ==
        "still");  // a removed file's mapping lives on; this one is kept
  CHECK(store.get_or_build(echo, cfg, quiet).from_disk);
  CHECK(store.collect_garbage({keep}).files == 0);
}

TEST_CASE(
    "a state file whose fields leave the layout plan is set aside and rebuilt, never restored") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  store.get_or_build(image, cfg, quiet);
  const auto key = vmm::SnapshotStore::key(*image, cfg);
  const auto good = store.load(key, cfg, image.get());  // what the plan gave
  const auto& l = good->layout;
  const std::uint64_t page = 4096;

  auto expect_set_aside = [&](const std::function<void(vmm::Snapshot&)>& edit,
                              const std::string& why) {
    craft(store, key, edit);
    CHECK_THROWS_WITH(store.load(key, cfg, image.get()), Catch::Contains(why));
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::StartsWith("snapshot set aside and rebuilt: " +
                                              store.state_path(key).string() + ": ") &&
                                Catch::Contains(why));
    CHECK(set_aside(dir.path()) == 2);  // the state file and its RAM file, kept for inspection
    CHECK(answer(got, image, "plan") == "Hello, plan!\n");
    CHECK(store.get_or_build(image, cfg, quiet).from_disk);  // the rebuilt one is trusted next time
  };

  SECTION("a heap end past RAM") {
    expect_set_aside([&](vmm::Snapshot& s) { s.heap.end = l.ram + (1u << 20); }, "heap: [");
  }
  SECTION("a heap end past RAM in the layout too") {
    expect_set_aside([&](vmm::Snapshot& s) { s.heap.end = s.layout.heap_end = l.ram + (1u << 20); },
                     "layout: the heap [");
  }
  SECTION("a break past the lowest mapping") {
    expect_set_aside([&](vmm::Snapshot& s) { s.heap.brk = s.heap.mmap_low + page; },
                     "heap: the break");
  }
  SECTION("a lowest mapping past the heap's end") {
    expect_set_aside([&](vmm::Snapshot& s) { s.heap.mmap_low = s.heap.end + page; },
                     "heap: the break");
  }
  SECTION("a free range past the heap") {
    expect_set_aside([&](vmm::Snapshot& s) { s.heap.free[s.heap.end] = page; },
                     "heap: the free range at");
  }
  SECTION("free ranges that overlap") {
    expect_set_aside(
        [&](vmm::Snapshot& s) {
          s.heap.mmap_low = s.heap.end - 8 * page;
          s.heap.free = {{s.heap.end - 6 * page, 3 * page}, {s.heap.end - 4 * page, page}};
        },
        "heap: the free range at");
  }
  SECTION("parked_at past RAM") {
    expect_set_aside([&](vmm::Snapshot& s) { s.parked_at = l.ram; }, "parked_at: ");
  }
  SECTION("parked_at without room for its struct") {
    expect_set_aside([&](vmm::Snapshot& s) { s.parked_at = l.ram - sizeof(unifn_hc_next) + 8; },
                     "parked_at: ");
  }
  SECTION("parked_at in the VMM's own pages") {
    expect_set_aside([&](vmm::Snapshot& s) { s.parked_at = vmm::layout::kGdt; }, "parked_at: ");
  }
  SECTION("an I/O buffer that is not the end of RAM") {
    expect_set_aside([&](vmm::Snapshot& s) { s.layout.io_buf -= page; }, "layout: the I/O buffer");
  }
  SECTION("a stack top above the I/O buffer") {
    expect_set_aside([&](vmm::Snapshot& s) { s.layout.stack_top = s.layout.io_buf + page; },
                     "layout: the stack top");
  }
  SECTION("a heap that starts inside the image") {
    expect_set_aside(
        [&](vmm::Snapshot& s) { s.layout.heap_start = s.heap.start = s.heap.brk = 1u << 20; },
        "layout: the image's segment");
  }
  SECTION("a heap in the VMM's pages") {
    expect_set_aside(
        [&](vmm::Snapshot& s) { s.layout.heap_start = s.heap.start = s.heap.brk = page; },
        "layout: the heap [");
  }
  SECTION("a vCPU state of another platform") {
    expect_set_aside([&](vmm::Snapshot& s) { s.cpu.platform = vmm::PlatformKind::Fake; }, "fake");
  }
  SECTION("a vCPU state cut short") {
    expect_set_aside([&](vmm::Snapshot& s) { s.cpu.bytes.resize(s.cpu.bytes.size() / 2); },
                     "state");
  }
}

TEST_CASE(
    "a state file reads back and writes again to the same bytes, and one whose device state does "
    "not restore is set aside and rebuilt",
    "[snapshot]") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  cfg.devices.push_back(accel::device_factory(accel::BackendRegistry::global().get("cpu")));
  cfg.device_key = "accel:cpu";
  store.get_or_build(image, cfg, quiet);
  const auto key = vmm::SnapshotStore::key(*image, cfg);
  REQUIRE(store.load(key, cfg, image.get())->devices.size() == 1);
  // Every section, the device's included, reads back and writes again to the same bytes.
  auto read = [&] {
    std::ifstream in(store.state_path(key), std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  };
  const auto first = read();
  craft(
      store, key, [](vmm::Snapshot&) {}, cfg);
  CHECK(read() == first);

  craft(
      store, key, [](vmm::Snapshot& s) { s.devices[0].resize(s.devices[0].size() / 2); }, cfg);

  CHECK_THROWS_WITH(store.load(key, cfg, image.get()),
                    Catch::Contains("the state of device 0 does not restore"));
  auto got = store.get_or_build(image, cfg, quiet);
  CHECK_FALSE(got.from_disk);
  CHECK_THAT(got.warning, Catch::Contains("the state of device 0 does not restore"));
  CHECK(answer(got, image, "device", cfg) == "Hello, device!\n");
}

TEST_CASE(
    "what the load checks stop: a parked address outside the plan makes the first call fail") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  store.get_or_build(image, cfg, quiet);
  const auto key = vmm::SnapshotStore::key(*image, cfg);
  std::shared_ptr<vmm::Snapshot> lying = store.load(key, cfg);
  lying->parked_at = lying->layout.ram;
  CHECK(vmm::SnapshotStore::state_problem(*lying));
  // Unchecked, it restores, and the first invocation fails (invoke checks the parked address too).
  auto vm = vmm::FunctionVm::restore(lying, image, cfg, quiet);
  auto out = call(*vm, "boom");
  CHECK(out.stop.kind == vmm::StopKind::Fault);
  CHECK_THAT(out.stop.message, Catch::Contains("the VM cannot take a request") &&
                                   Catch::Contains("outside guest RAM"));
  CHECK(vmm::SnapshotStore::state_problem(*store.load(key, cfg), image.get()) == std::nullopt);
}

TEST_CASE("FunctionVm::restore checks the heap, vCPU and device states before it restores any",
          "[snapshot]") {
  unifn::test::TempDir dir;
  vmm::SnapshotStore store(dir.path());
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  cfg.devices.push_back(accel::device_factory(accel::BackendRegistry::global().get("cpu")));
  cfg.device_key = "accel:cpu";
  store.get_or_build(image, cfg, quiet);
  const auto key = vmm::SnapshotStore::key(*image, cfg);
  auto refused = [&](const std::function<void(vmm::Snapshot&)>& edit, const std::string& why) {
    std::shared_ptr<vmm::Snapshot> lying = store.load(key, cfg);
    edit(*lying);
    CHECK_THROWS_WITH(vmm::FunctionVm::restore(lying, image, cfg, quiet),
                      Catch::Contains("the snapshot does not restore: ") && Catch::Contains(why));
  };
  refused([](vmm::Snapshot& s) { s.heap.brk = s.heap.end + 4096; }, "heap: the break");
  refused([](vmm::Snapshot& s) { s.cpu.bytes.pop_back(); }, "state");
  refused([](vmm::Snapshot& s) { s.devices[0].pop_back(); }, "device 0: ");
}

TEST_CASE(
    "temporary files are new files of the store's own: a name already taken is never opened") {
  unifn::test::TempDir dir;
  const auto victim = dir.path() / "victim";
  std::ofstream(victim) << "keep me";

  // The primitive: O_CREAT|O_EXCL|O_NOFOLLOW.
  const auto plain = dir.path() / "plain";
  std::ofstream(plain) << "already here";
  CHECK_THROWS_WITH(vmm::SnapshotStore::create_new(plain),
                    Catch::Contains("something already has that name"));
  auto text_of = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  CHECK(text_of(plain) == "already here");
  fs::create_symlink(victim, dir.path() / "link");
  CHECK_THROWS_WITH(vmm::SnapshotStore::create_new(dir.path() / "link"),
                    Catch::Contains("something already has that name"));
  fs::create_symlink(dir.path() / "nowhere", dir.path() / "dangling");
  CHECK_THROWS(vmm::SnapshotStore::create_new(dir.path() / "dangling"));
  CHECK_FALSE(
      fs::exists(dir.path() / "nowhere"));  // a dangling link is not followed into a new file
  auto fd = vmm::SnapshotStore::create_new(dir.path() / "fresh");
  CHECK(fd);
  CHECK(mode_of(dir.path() / "fresh") == 0600);

  // The store: links planted at every temporary name it could take (the names of the code before,
  // which opened them with O_TRUNC and wrote through, and this code's) are never written through.
  vmm::SnapshotStore store(dir.path() / "state");
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cfg;
  const auto key = vmm::SnapshotStore::key(*image, cfg);
  fs::create_symlink(victim, store.state_path(key).string() + ".tmp");
  fs::create_symlink(victim, store.ram_path(key).string() + fmt::format(".tmp{}", ::getpid()));
  // This process's counter has handed out a few names only (two per build).
  for (int n = 0; n < 20000; ++n)
    fs::create_symlink(victim,
                       store.ram_path(key).string() + fmt::format(".tmp{}.{}", ::getpid(), n));
  CHECK_THROWS_WITH(store.get_or_build(image, cfg, quiet),
                    Catch::Contains("something already has that name"));
  // With at most 16 names in a row taken, the store passes over them to a free one.
  for (int n = 16; n < 20000; n += 17)
    fs::remove(store.ram_path(key).string() + fmt::format(".tmp{}.{}", ::getpid(), n));
  auto got = store.get_or_build(image, cfg, quiet);
  CHECK_FALSE(got.from_disk);
  CHECK(answer(got, image, "tmp") == "Hello, tmp!\n");
  CHECK(store.get_or_build(image, cfg, quiet).from_disk);
  CHECK(text_of(victim) == "keep me");
  CHECK(mode_of(store.ram_path(key)) == 0600);
  CHECK(mode_of(store.state_path(key)) == 0600);
}

TEST_CASE(
    "the state directory is created 0700, and one that is not ours alone is refused with a "
    "sentence") {
  unifn::test::TempDir dir;
  const auto made = dir.path() / "a/b/state";
  vmm::SnapshotStore store(made);
  CHECK(mode_of(made) == 0700);

  const auto open = dir.path() / "open";
  fs::create_directories(open);
  fs::permissions(open, fs::perms::all);
  CHECK_THROWS_WITH(
      vmm::SnapshotStore(open),
      "refusing the state directory " + open.string() +
          ": its mode 0777 lets group and others write to it (owner " +
          (::geteuid() == 0 ? std::string("uid 0 (root)") : fmt::format("uid {}", ::geteuid())) +
          "); chmod 700 " + open.string());
  // A new one inside a directory others may write (and not sticky) is refused before it is made.
  CHECK_THROWS_WITH(vmm::SnapshotStore(open / "inner"),
                    Catch::Contains("it lies in " + open.string()));
  CHECK_FALSE(fs::exists(open / "inner"));
  if (::geteuid() != 0) {
    WARN("not root: a directory another user owns needs chown, skipped");
    return;
  }
  const auto theirs = dir.path() / "theirs";
  fs::create_directories(theirs);
  fs::permissions(theirs, fs::perms::owner_all);
  REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
  CHECK_THROWS_WITH(vmm::SnapshotStore(theirs),
                    Catch::StartsWith("refusing the state directory " + theirs.string() +
                                      ": it is owned by uid 65534"));
}
