// A well-behaved guest for the fuzz platform: at boot it parks in NEXT_REQUEST (a real struct on
// its stack, the request area as its buffer), and answers every request with "ok" and parks again.
// The file fuzzer boots loaded images with it, and the seed generator takes real snapshots of it.
#pragma once

#include <cstring>
#include <memory>

#include <unifn/abi.h>

#include "accel/device.h"
#include "test/fuzz/fuzz_machine.h"
#include "vmm/guest/function_vm.h"
#include "accel/reference/reference.h"
#include "vmm/x86/layout.h"

namespace unifn::fuzz {

// The file fuzzer's VMs (and the snapshots its seeds hold): 16 MiB, 64 KiB bodies, and with
// accel a virtio-accel device on the reference backend.
inline constexpr char kSnapshotKey[] = "00112233445566778899aabbccddeeff";

inline std::shared_ptr<accel::Backend> reference_backend() {
  static const std::shared_ptr<accel::Backend> b = accel::reference::make_backend();
  return b;
}

inline accel::DeviceOptions device_options() {
  accel::DeviceOptions o;
  o.max_sessions = 4;
  o.limits.max_sgemm_madds = std::uint64_t{1} << 22;
  return o;
}

inline vmm::FunctionVmConfig files_config(vmm::Platform& platform, bool accel) {
  vmm::FunctionVmConfig cfg;
  cfg.memory_bytes = 16u << 20;
  cfg.max_body_bytes = 64u << 10;
  cfg.init_timeout = std::chrono::milliseconds(1000);
  cfg.platform = &platform;
  if (accel) {
    cfg.devices.push_back(accel::device_factory(reference_backend(), device_options()));
    cfg.device_key = "accel:reference";
  }
  return cfg;
}

inline vmm::Stop polite_guest(FuzzMachine& m) {
  auto& mem = m.memory();
  const auto bi = mem.read_obj<unifn_boot_info>(vmm::GuestAddr(vmm::layout::kBootInfo));
  const std::uint64_t next_at = bi.stack_top - 4096, respond_at = next_at - 512,
                      text_at = respond_at - 256;
  unifn_hc_next next{};
  next.buf = bi.io_buf;
  next.buf_cap = bi.io_buf_size / 2;
  // Parked already (a request is being served): answer it; else this is the boot.
  const auto parked = mem.read_obj<unifn_hc_next>(vmm::GuestAddr(next_at));
  std::uint16_t nr = UNIFN_HC_NEXT_REQUEST;
  std::uint64_t arg = next_at;
  if (parked.buf == next.buf && parked.request_id != 0) {
    static const char kType[] = "text/plain";
    m.guest_write(text_at, std::span(reinterpret_cast<const std::uint8_t*>(kType),
                                     sizeof kType - 1));  // Safe: chars as bytes.
    m.guest_write(bi.io_buf + next.buf_cap, std::span(reinterpret_cast<const std::uint8_t*>("ok"),
                                                      2));  // Safe: chars as bytes.
    const unifn_hc_respond r{200, sizeof kType - 1, text_at, bi.io_buf + next.buf_cap, 2,
                             0,   next_at};
    m.guest_write(respond_at, std::span(reinterpret_cast<const std::uint8_t*>(&r),
                                        sizeof r));  // Safe: POD as bytes.
    nr = UNIFN_HC_RESPOND;
    arg = respond_at;
  }
  m.guest_write(next_at, std::span(reinterpret_cast<const std::uint8_t*>(&next),
                                   sizeof next));  // Safe: POD as bytes.
  auto s = m.out32(static_cast<std::uint16_t>(UNIFN_HC_BASE + nr), static_cast<std::uint32_t>(arg));
  return s ? *s : vmm::Stop{vmm::StopKind::Fault, 0, "the polite guest did not park"};
}

}  // namespace unifn::fuzz
