// Snapshot files: reused when valid; corrupted, truncated, foreign or stale ones set aside and rebuilt.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "guest_helpers.h"
#include "snapshot/snapshot_store.h"

using namespace unifn;
using namespace unifn::test;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("unifn-snap-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

std::string answer(vmm::SnapshotStore::Result& got, std::shared_ptr<const vmm::FunctionImage> image, const std::string& body) {
  vmm::FunctionVmConfig cfg;
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

}  // namespace

TEST_CASE("a snapshot is written once and restored from disk afterwards") {
  TempDir dir;
  vmm::SnapshotStore store(dir.path);
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
  TempDir dir;
  vmm::SnapshotStore store(dir.path);
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
  SECTION("not a snapshot at all") {
    std::ofstream(state, std::ios::trunc) << "garbage garbage garbage garbage garbage garbage";
    auto got = store.get_or_build(image, cfg, quiet);
    CHECK_FALSE(got.from_disk);
    CHECK_THAT(got.warning, Catch::Contains("bad magic"));
  }
  CHECK(store.get_or_build(image, cfg, quiet).from_disk);  // the rebuilt one is trusted next time
}

TEST_CASE("an image changed on disk gets a new snapshot") {
  TempDir dir;
  vmm::SnapshotStore store(dir.path);
  vmm::FunctionVmConfig cfg;
  auto copy = dir.path / "fn.elf";
  fs::copy_file(example("hello"), copy);
  auto before = vmm::FunctionImage::load(copy.string());
  CHECK_FALSE(store.get_or_build(before, cfg, quiet).from_disk);
  std::ofstream(copy, std::ios::app) << "trailing bytes change the image";
  auto after = vmm::FunctionImage::load(copy.string());
  CHECK(vmm::SnapshotStore::key(*before, cfg) != vmm::SnapshotStore::key(*after, cfg));
  CHECK_FALSE(store.get_or_build(after, cfg, quiet).from_disk);
  cfg.memory_bytes = 32 << 20;  // settings that shape the VM are part of the key too
  CHECK(vmm::SnapshotStore::key(*after, cfg) != vmm::SnapshotStore::key(*before, vmm::FunctionVmConfig{}));
}

TEST_CASE("a function moved to another accelerator backend gets its own snapshot") {
  auto image = vmm::FunctionImage::load(example("hello"));
  vmm::FunctionVmConfig cpu, cuda;
  cpu.device_key = "accel:cpu";
  cuda.device_key = "accel:cuda";
  CHECK(vmm::SnapshotStore::key(*image, cpu) != vmm::SnapshotStore::key(*image, cuda));
  CHECK(vmm::SnapshotStore::key(*image, cpu) != vmm::SnapshotStore::key(*image, vmm::FunctionVmConfig{}));
  // The key and the command line are kept apart: moving bytes between them changes the key.
  vmm::FunctionVmConfig a, b;
  a.device_key = "accel:cpu x";
  b.device_key = "accel:cpu";
  b.cmdline = " x";
  CHECK(vmm::SnapshotStore::key(*image, a) != vmm::SnapshotStore::key(*image, b));
}

TEST_CASE("vCPU state survives a round trip through a restored machine, and another platform's is refused") {
  auto image = vmm::FunctionImage::load(example("echo"));
  vmm::FunctionVmConfig cfg;
  auto vm = vmm::FunctionVm::boot(image, cfg, quiet);
  auto snap = vm->snapshot(memfd());
  CHECK(snap->cpu.platform == cfg.platform_or_default().kind());
  auto restored = vmm::FunctionVm::restore(snap, image, cfg, quiet);
  CHECK(restored->machine().capture().bytes == snap->cpu.bytes);
  CHECK(restored->machine().regs().rip == vm->machine().regs().rip);
  vmm::CpuState other{snap->cpu.platform == vmm::PlatformKind::Kvm ? vmm::PlatformKind::Sandbox : vmm::PlatformKind::Kvm,
                      snap->cpu.bytes};
  CHECK_THROWS_WITH(restored->machine().apply(other), Catch::Contains("cannot be applied"));
  vmm::CpuState truncated{snap->cpu.platform, std::vector<std::uint8_t>(snap->cpu.bytes.begin(), snap->cpu.bytes.end() - 1)};
  CHECK_THROWS(restored->machine().apply(truncated));
}

TEST_CASE("stale snapshots are collected; the ones in use, set-aside files and other files stay") {
  TempDir dir;
  vmm::SnapshotStore store(dir.path);
  vmm::FunctionVmConfig cfg;
  auto hello = vmm::FunctionImage::load(example("hello"));
  auto echo = vmm::FunctionImage::load(example("echo"));
  auto kept = store.get_or_build(echo, cfg, quiet);
  store.get_or_build(hello, cfg, quiet);
  const auto keep = vmm::SnapshotStore::key(*echo, cfg), stale = vmm::SnapshotStore::key(*hello, cfg);
  std::ofstream(dir.path / "notes.txt") << "not ours";
  std::ofstream(dir.path / (stale + ".state.bad-123")) << "set aside";
  std::ofstream(dir.path / (stale + ".ram.tmp99")) << "a crashed build";
  std::ofstream(dir.path / (keep + ".ram.tmp98")) << "a build under way";
  fs::last_write_time(dir.path / (stale + ".ram.tmp99"), fs::file_time_type::clock::now() - std::chrono::hours(2));

  auto c = store.collect_garbage({keep});
  CHECK(c.files == 3);  // hello's .ram and .state, the old temporary file
  CHECK(c.bytes > 0);
  CHECK_FALSE(fs::exists(store.state_path(stale)));
  CHECK_FALSE(fs::exists(store.ram_path(stale)));
  CHECK_FALSE(fs::exists(dir.path / (stale + ".ram.tmp99")));
  CHECK(fs::exists(store.state_path(keep)));
  CHECK(fs::exists(store.ram_path(keep)));
  CHECK(fs::exists(dir.path / "notes.txt"));
  CHECK(fs::exists(dir.path / (stale + ".state.bad-123")));
  CHECK(fs::exists(dir.path / (keep + ".ram.tmp98")));
  CHECK(answer(kept, echo, "still") == "still");  // a removed file's mapping lives on; this one is kept
  CHECK(store.get_or_build(echo, cfg, quiet).from_disk);
  CHECK(store.collect_garbage({keep}).files == 0);
}
