// Snapshots on disk: one RAM file and one state file per (image, settings), checked before use.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "vmm/guest/function_vm.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/snapshot/vm_identity.h"

namespace unifn::vmm {

// The bytes of the state file's header; the format version moves independently of the product.
inline constexpr char kSnapshotMagic[8] = {'U', 'N', 'I', 'F', 'N', 'S', 'N', 'P'};
// 2: the platform of the vCPU state; 3: supervisor-only VMM pages, more MSRs; 4: tagged sections,
// each piece's state in its own versioned encoding (snapshot/persist.h).
inline constexpr std::uint32_t kSnapshotFormat = 4;
inline constexpr std::uint64_t kMaxStateBytes = 16ull << 20;

class SnapshotStore {
 public:
  // dir is created if missing (mode 0700, its parents as the umask says); throws with a sentence
  // if it cannot be, or if directory_problem() refuses it.
  explicit SnapshotStore(std::filesystem::path dir);

  // Why dir must not hold snapshots (they are mapped into guests and trusted once they pass their
  // checks, so nobody else may be able to write or swap them), as a sentence naming the directory
  // and the owner or mode at fault; nullopt when it may. Refused: a directory owned by another
  // user or writable by group or others; a symbolic link on the way owned by another user (root
  // aside); a directory on the way that another user owns (root aside) or that others may write
  // and is not sticky. An explicit /tmp/x of ours with mode 0700 passes (/tmp is sticky). A dir
  // that does not exist yet is judged by the directories it would be created in.
  static std::optional<std::string> directory_problem(const std::filesystem::path& dir);

  // A new file of our own at path: O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600. Never opens what is
  // already there, a symbolic link included (a dangling one is not followed either); throws
  // std::system_error naming the path.
  static Fd create_new(const std::filesystem::path& path);

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
  Result get_or_build(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg,
                      Console::Sink console);

  // The file names' stem for a VM: a hash of its identity (vm_identity.h), the ABI and the format.
  static std::string key(const VmIdentity& id);
  static std::string key(const FunctionImage& image,
                         const FunctionVmConfig& cfg);  // of VmIdentity::of
  std::filesystem::path ram_path(const std::string& key) const { return dir_ / (key + ".ram"); }
  std::filesystem::path state_path(const std::string& key) const { return dir_ / (key + ".state"); }

  // Loads and checks a snapshot; throws std::runtime_error saying what is wrong. The layout, the
  // heap state and the parked address are checked against the guest layout's plan (state_problem),
  // so none of them can send a restored VM's first call outside guest RAM or into the VMM's pages;
  // with image given, also that the image lies below the heap. The vCPU state is checked by cfg's
  // platform (Platform::cpu_state_problem) and each device's state by a new device of cfg's
  // (MmioDevice::check), so that what loads also restores.
  std::shared_ptr<Snapshot> load(const std::string& key, const FunctionVmConfig& cfg,
                                 const FunctionImage* image = nullptr) const;
  // Writes the state file (a new temporary file, fsync, rename) after renaming ram_tmp into place.
  void save(const std::string& key, Snapshot& snap, const std::filesystem::path& ram_tmp) const;

  // What is wrong with the guest state of a snapshot whose RAM is layout.ram bytes, nullopt if
  // nothing: the layout ordered and inside RAM (VMM pages, heap, stack, I/O buffer, in that order,
  // page-aligned, at least 1 MiB of heap), the heap state inside the layout's heap (start and end
  // as the VMM sets them, start <= brk <= mmap_low <= end, free ranges page-aligned, inside
  // [mmap_low, end) and apart), and parked_at inside guest user memory with room for its
  // unifn_hc_next. With image, every segment of the image ends at or below the heap's start.
  static std::optional<std::string> state_problem(const Snapshot& snap,
                                                  const FunctionImage* image = nullptr);

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
