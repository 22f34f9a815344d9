/* Sandbox platform: the contract between the supervisor and the helper it execs as the guest
 * process. Freestanding C. */
#ifndef UNIFN_SANDBOX_ABI_H
#define UNIFN_SANDBOX_ABI_H

#include <stdint.h>

#define UNIFN_SANDBOX_MAGIC 0x58424e53464e4955ull /* "UINFSNBX" read as a little-endian u64 */
#define UNIFN_SANDBOX_MAX_REGIONS 64
/* one R-X page: `syscall; int3`, the only place syscalls are allowed */
#define UNIFN_SANDBOX_HELPER_PAGE 0xCFFFF000ull
#define UNIFN_SANDBOX_SPEC_FD 3 /* pipe: the spec below */
/* memfd holding guest RAM; file offset == guest-physical address */
#define UNIFN_SANDBOX_RAM_FD 4

/* spec flags */
/* register userfaultfd write-protect (async) on regions with track=1 */
#define UNIFN_SANDBOX_TRACK_WRITES 1u
/* setgroups(0), setgid(gid), setuid(uid): to nobody, directly (root daemon without a user
 * namespace) or as the user namespace's 0, which the supervisor mapped to nobody */
#define UNIFN_SANDBOX_DROP_UID 2u

/* bits the helper reports in rax at its final int3 (rdi holds the userfaultfd, or -1) */
#define UNIFN_SANDBOX_HAVE_TRACKING 1u

struct unifn_sandbox_region {
  uint64_t gpa, size;
  uint32_t prot; /* PROT_READ=1|PROT_WRITE=2|PROT_EXEC=4 */
  uint32_t track;
};

struct unifn_sandbox_spec {
  uint64_t magic;
  uint32_t region_count;
  uint32_t flags;
  uint32_t uid, gid;
  uint64_t rlimit_as; /* RLIMIT_AS in bytes, 0: leave as is */
  /* Offset in the RAM memfd of the page the supervisor filled with the helper page's bytes; it is
   * mapped read-execute from there, so no page is ever writable and executable, not even while the
   * helper sets up (systemd's MemoryDenyWriteExecute refuses mprotect to PROT_EXEC). */
  uint64_t helper_offset;
  struct unifn_sandbox_region regions[UNIFN_SANDBOX_MAX_REGIONS];
};

/* The helper page's bytes: `syscall; int3`, then int3 to the end of the page. */
static inline void unifn_sandbox_fill_helper_page(unsigned char page[4096]) {
  for (int i = 0; i < 4096; ++i) page[i] = 0xCC;
  page[0] = 0x0F;
  page[1] = 0x05;
}

#ifdef __cplusplus
static_assert(sizeof(struct unifn_sandbox_region) == 24, "no padding in the spec");
static_assert(sizeof(struct unifn_sandbox_spec) == 40 + 24 * UNIFN_SANDBOX_MAX_REGIONS,
              "no padding in the spec");
#else
_Static_assert(sizeof(struct unifn_sandbox_region) == 24, "no padding in the spec");
_Static_assert(sizeof(struct unifn_sandbox_spec) == 40 + 24 * UNIFN_SANDBOX_MAX_REGIONS,
               "no padding in the spec");
#endif

/* Exit codes of the helper when a step fails (the supervisor turns them into sentences) */
enum unifn_sandbox_exit {
  UNIFN_SANDBOX_EXIT_SPEC = 70,
  UNIFN_SANDBOX_EXIT_MAP = 71,
  UNIFN_SANDBOX_EXIT_HELPER_PAGE = 72,
  UNIFN_SANDBOX_EXIT_LIMITS = 73,
  UNIFN_SANDBOX_EXIT_UID = 74,
  UNIFN_SANDBOX_EXIT_NO_NEW_PRIVS = 75,
  UNIFN_SANDBOX_EXIT_SECCOMP = 76,
  UNIFN_SANDBOX_EXIT_CAPS = 77
};

#ifdef __cplusplus
extern "C" {
#endif

/* A sentence for an exit code of the helper. */
static inline const char* unifn_sandbox_exit_reason(int code) {
  switch (code) {
    case UNIFN_SANDBOX_EXIT_SPEC:
      return "the sandbox helper read no valid spec from its supervisor (short read, bad magic or "
             "too many regions)";
    case UNIFN_SANDBOX_EXIT_MAP:
      return "the sandbox helper could not map guest RAM at its addresses";
    case UNIFN_SANDBOX_EXIT_HELPER_PAGE:
      return "the sandbox helper could not set up its system call page";
    case UNIFN_SANDBOX_EXIT_LIMITS:
      return "the sandbox helper could not set its resource limits";
    case UNIFN_SANDBOX_EXIT_UID:
      return "the sandbox helper could not drop to the unprivileged user and group";
    case UNIFN_SANDBOX_EXIT_NO_NEW_PRIVS:
      return "the sandbox helper could not set no_new_privs";
    case UNIFN_SANDBOX_EXIT_SECCOMP:
      return "the sandbox helper could not install its seccomp filter";
    case UNIFN_SANDBOX_EXIT_CAPS:
      return "the sandbox helper could not give up its capabilities";
    default:
      return "the sandbox helper exited with an unexpected status";
  }
}

#ifdef __cplusplus
}
#endif

#endif /* UNIFN_SANDBOX_ABI_H */
