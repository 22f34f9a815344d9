// Snapshots on disk: one RAM file and one state file per (image, settings), checked before use.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "guest/function_vm.h"
#include "snapshot/snapshot.h"

namespace unifn::vmm {

// The bytes of the state file's header; the format version moves independently of the product.
inline constexpr char kSnapshotMagic[8] = {'U', 'N', 'I', 'F', 'N', 'S', 'N', 'P'};
inline constexpr std::uint32_t kSnapshotFormat = 2;  // 2: the platform of the vCPU state
inline constexpr std::uint64_t kMaxStateBytes = 16ull << 20;

class SnapshotStore {
 public:
  // dir is created if missing; throws with a sentence if it cannot be.
  explicit SnapshotStore(std::filesystem::path dir);

  struct Result {
    std::shared_ptr<const Snapshot> snapshot;
    bool from_disk = false;  // true: restored from a valid file; false: booted cold and saved
    std::string warning;     // why a file on disk was set aside, if one was
    // When booted cold: the VM the snapshot was taken of, parked at its first NEXT_REQUEST and
    // ready to serve (the first call of a pool that keeps no instance warm can use it).
    std::unique_ptr<FunctionVm> booted;
    std::string key;  // its name in the directory (see key())
  };
  // The snapshot of image under cfg: loaded from disk when a valid one exists, otherwise booted
  // cold, captured and written (temporary name, fsync, rename).
  Result get_or_build(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg, Console::Sink console);

  // The file names' stem for (image, cfg): a hash of the image bytes, the VM settings and the ABI.
  static std::string key(const FunctionImage& image, const FunctionVmConfig& cfg);
  std::filesystem::path ram_path(const std::string& key) const { return dir_ / (key + ".ram"); }
  std::filesystem::path state_path(const std::string& key) const { return dir_ / (key + ".state"); }

  // Loads and checks a snapshot; throws std::runtime_error saying what is wrong.
  std::shared_ptr<Snapshot> load(const std::string& key, std::size_t device_count) const;
  void save(const std::string& key, Snapshot& snap, const std::filesystem::path& ram_tmp) const;

  struct Collected {
    std::size_t files = 0;
    std::uintmax_t bytes = 0;  // disk space given back (the RAM files are sparse)
  };
  // Removes the snapshots whose keys are not in keep, and temporary files older than an hour (a
  // crashed build's). The daemon owns its state directory, so what its functions do not use is
  // stale: images changed, functions removed. Set-aside `*.bad-*` files (kept for inspection) and
  // files of any other name are left alone. Instances of a removed snapshot keep their mapping.
  Collected collect_garbage(const std::set<std::string>& keep) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace unifn::vmm
