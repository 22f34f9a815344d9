// The encodings of the snapshot's own state structs: the guest layout and the vCPU state's frame.
#include "vmm/snapshot/snapshot.h"

#include <fmt/format.h>

#include "vmm/snapshot/persist.h"

namespace unifn::vmm {

void GuestLayout::write(ByteWriter& w) const {
  w.pod(kVersion);
  for (auto v : {ram, heap_start, heap_end, stack_top, io_buf, io_size}) w.u64(v);
}

GuestLayout GuestLayout::read(ByteReader& r) {
  read_version(r, kVersion, "guest layout");
  GuestLayout l;
  for (auto* v : {&l.ram, &l.heap_start, &l.heap_end, &l.stack_top, &l.io_buf, &l.io_size})
    *v = r.u64();
  return l;
}

void CpuState::write(ByteWriter& w) const {
  w.pod(kVersion);
  w.pod(static_cast<std::uint32_t>(platform));
  w.blob(bytes);
}

CpuState CpuState::read(ByteReader& r) {
  read_version(r, kVersion, "vCPU state");
  CpuState s;
  const auto platform = r.pod<std::uint32_t>();
  if (platform > static_cast<std::uint32_t>(PlatformKind::Fake))
    throw std::runtime_error(fmt::format("vCPU state: names an unknown platform {}", platform));
  s.platform = static_cast<PlatformKind>(platform);
  s.bytes = r.blob(kMaxBytes);
  return s;
}

}  // namespace unifn::vmm
