/* The sandbox helper: the freestanding program (no libc) that the sandbox supervisor execs as the
 * guest process.
 *
 * It maps guest RAM at the guest addresses, sets up the one page that may make system calls,
 * tightens the process (limits, user, no_new_privs, seccomp) and stops at an int3 for the
 * supervisor, which PTRACE_SEIZEd it before the exec and replaces every register there.
 *
 * Built as a static PIE (it loads far above guest RAM) and embedded into unifn_vmm as bytes. It
 * must carry no dynamic relocations: nothing here relocates it, so initialised data holds no
 * pointers (the build checks this with readelf). x86-64 Linux only. */
#include <stdint.h>

#include "../sandbox_abi.h"

/* ---- Linux x86-64 constants (defined here: no libc, and userfaultfd's are newer than the build
 * host's headers) ---- */

#define NR_read 0
#define NR_close 3
#define NR_mmap 9
#define NR_ioctl 16
#define NR_madvise 28
#define NR_setuid 105
#define NR_setgid 106
#define NR_setgroups 116
#define NR_capset 126
#define NR_prctl 157
#define NR_setrlimit 160
#define NR_exit_group 231
#define NR_seccomp 317
#define NR_userfaultfd 323
#define NR_close_range 436

#define EINTR 4
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define O_NONBLOCK 04000
#define O_CLOEXEC 02000000
#define RLIMIT_FSIZE 1
#define RLIMIT_CORE 4
#define RLIMIT_NOFILE 7
#define RLIMIT_AS 9
#define PR_SET_NO_NEW_PRIVS 38
#define PR_SET_DUMPABLE 4
#define PR_CAPBSET_DROP 24
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define MADV_DONTNEED 4
#define PAGE_SIZE 4096ull

/* userfaultfd (linux/userfaultfd.h; WP_ASYNC is Linux 6.7+) */
#define UFFD_USER_MODE_ONLY 1
#define UFFD_API 0xAAull
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1ull << 12)
#define UFFD_FEATURE_WP_ASYNC (1ull << 15)
#define UFFDIO_REGISTER_MODE_WP (1ull << 1)
#define IOWR(type, nr, size) ((3ul << 30) | ((unsigned long)(size) << 16) | ((type) << 8) | (nr))
struct uffdio_api {
  uint64_t api, features, ioctls;
};
struct uffdio_range {
  uint64_t start, len;
};
struct uffdio_register {
  struct uffdio_range range;
  uint64_t mode, ioctls;
};
#define UFFDIO_API IOWR(0xAA, 0x3F, sizeof(struct uffdio_api))
#define UFFDIO_REGISTER IOWR(0xAA, 0x00, sizeof(struct uffdio_register))

/* seccomp (linux/seccomp.h, linux/filter.h, linux/audit.h) */
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_RET_KILL_PROCESS 0x80000000u
#define SECCOMP_RET_ALLOW 0x7fff0000u
#define AUDIT_ARCH_X86_64 0xC000003Eu
#define BPF_LD_W_ABS 0x20 /* BPF_LD | BPF_W | BPF_ABS */
#define BPF_JEQ_K 0x15    /* BPF_JMP | BPF_JEQ | BPF_K */
#define BPF_RET_K 0x06    /* BPF_RET | BPF_K */
struct sock_filter {
  uint16_t code;
  uint8_t jt, jf;
  uint32_t k;
};
struct sock_fprog {
  unsigned short len;
  const struct sock_filter* filter;
};
/* struct seccomp_data: nr at 0, arch at 4, instruction_pointer at 8, args[i] at 16 + 8 * i */
#define SD_NR 0
#define SD_ARCH 4
#define SD_IP_LO 8
#define SD_IP_HI 12
#define SD_ARG2_LO 32
#define SD_ARG2_HI 36

struct rlimit {
  uint64_t cur, max;
};

/* ---- raw system calls ---- */

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
static inline long sys3(long nr, long a, long b, long c) { return sys6(nr, a, b, c, 0, 0, 0); }

static __attribute__((noreturn)) void die(int code) {
  for (;;) sys3(NR_exit_group, code, 0, 0);
}

/* gcc may emit calls to these even in freestanding code (struct copies and initialisers). */
__attribute__((visibility("hidden"))) void* memset(void* dst, int c, __SIZE_TYPE__ n) {
  unsigned char* d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
__attribute__((visibility("hidden"))) void* memcpy(void* dst, const void* src, __SIZE_TYPE__ n) {
  unsigned char* d = dst;
  const unsigned char* s = src;
  while (n--) *d++ = *s++;
  return dst;
}

/* ---- the steps ---- */

static void read_spec(struct unifn_sandbox_spec* spec) {
  unsigned char* p = (unsigned char*)spec;
  unsigned long got = 0;
  while (got < sizeof *spec) {
    long n = sys3(NR_read, UNIFN_SANDBOX_SPEC_FD, (long)(p + got), (long)(sizeof *spec - got));
    if (n == -EINTR) continue;
    if (n <= 0) die(UNIFN_SANDBOX_EXIT_SPEC);
    got += (unsigned long)n;
  }
  if (spec->magic != UNIFN_SANDBOX_MAGIC || spec->region_count > UNIFN_SANDBOX_MAX_REGIONS)
    die(UNIFN_SANDBOX_EXIT_SPEC);
}

static void map_regions(const struct unifn_sandbox_spec* spec) {
  for (uint32_t i = 0; i < spec->region_count; ++i) {
    const struct unifn_sandbox_region* r = &spec->regions[i];
    long got = sys6(NR_mmap, (long)r->gpa, (long)r->size, (long)r->prot,
                    MAP_SHARED | MAP_FIXED_NOREPLACE, UNIFN_SANDBOX_RAM_FD, (long)r->gpa);
    if ((uint64_t)got != r->gpa) die(UNIFN_SANDBOX_EXIT_MAP);
  }
}

static void map_helper_page(const struct unifn_sandbox_spec* spec) {
  /* `syscall; int3` and int3 everywhere else, written by the supervisor into the memfd. */
  long got =
      sys6(NR_mmap, (long)UNIFN_SANDBOX_HELPER_PAGE, (long)PAGE_SIZE, PROT_READ | PROT_EXEC,
           MAP_SHARED | MAP_FIXED_NOREPLACE, UNIFN_SANDBOX_RAM_FD, (long)spec->helper_offset);
  if ((uint64_t)got != UNIFN_SANDBOX_HELPER_PAGE) die(UNIFN_SANDBOX_EXIT_HELPER_PAGE);
}

static void close_all_fds(void) {
  if (sys3(NR_close_range, 0, ~0l, 0) == 0) return;
  for (long fd = 0; fd < 1024; ++fd) sys3(NR_close, fd, 0, 0); /* kernels before 5.9 */
}

/* Returns the userfaultfd with write-protection tracking on every region with track=1, or -1. */
static long start_tracking(const struct unifn_sandbox_spec* spec) {
  long uffd = sys3(NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0, 0);
  if (uffd < 0) return -1;
  const uint64_t wanted = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  struct uffdio_api api = {UFFD_API, wanted, 0};
  if (sys3(NR_ioctl, uffd, (long)UFFDIO_API, (long)&api) != 0 || (api.features & wanted) != wanted)
    goto fail;
  for (uint32_t i = 0; i < spec->region_count; ++i) {
    const struct unifn_sandbox_region* r = &spec->regions[i];
    if (!r->track) continue;
    struct uffdio_register reg = {{r->gpa, r->size}, UFFDIO_REGISTER_MODE_WP, 0};
    if (sys3(NR_ioctl, uffd, (long)UFFDIO_REGISTER, (long)&reg) != 0) goto fail;
    /* No UFFDIO_WRITEPROTECT here: on shmem it would fill every page table of the range with
     * markers, and each PAGEMAP_SCAN would walk them all (26 us for 64 MiB against 1.3 us for
     * 1 MiB here). A page the guest has not touched has no PTE; once touched it shows as written
     * until the supervisor's first scan write-protects it, so nothing is missed. */
  }
  return uffd; /* stays open for the process's life: closing it would drop the registrations */
fail:
  sys3(NR_close, uffd, 0, 0);
  return -1;
}

static void set_limit(int resource, uint64_t value) {
  struct rlimit lim = {value, value};
  if (sys3(NR_setrlimit, resource, (long)&lim, 0) != 0) die(UNIFN_SANDBOX_EXIT_LIMITS);
}

static void set_limits(const struct unifn_sandbox_spec* spec) {
  /* No PR_SET_DUMPABLE: the supervisor keeps reading /proc/PID/pagemap. */
  set_limit(RLIMIT_CORE, 0);
  set_limit(RLIMIT_FSIZE, 0);
  set_limit(RLIMIT_NOFILE, 8);
  if (spec->rlimit_as != 0) set_limit(RLIMIT_AS, spec->rlimit_as);
}

static void drop_uid(const struct unifn_sandbox_spec* spec) {
  if (sys3(NR_setgroups, 0, 0, 0) != 0 || sys3(NR_setgid, spec->gid, 0, 0) != 0 ||
      sys3(NR_setuid, spec->uid, 0, 0) != 0)
    die(UNIFN_SANDBOX_EXIT_UID);
  /* A change of uid makes the process non-dumpable; the supervisor must keep reading its pagemap
   * (cores stay off: RLIMIT_CORE is 0). */
  if (sys6(NR_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0, 0) != 0) die(UNIFN_SANDBOX_EXIT_UID);
}

/* Only system calls from the helper page (rip after its 2-byte `syscall` == page + 2) survive, and
 * of those only exit_group and madvise(..., MADV_DONTNEED); everything else kills the process. */
static void install_seccomp(void) {
  const uint64_t ip = UNIFN_SANDBOX_HELPER_PAGE + 2;
  /* Indexes: 13 is ALLOW, 14 is KILL; jt/jf count from the next instruction. */
  const struct sock_filter filter[] = {
      /* 0 */ {BPF_LD_W_ABS, 0, 0, SD_ARCH},
      /* 1 */ {BPF_JEQ_K, 0, 12, AUDIT_ARCH_X86_64},
      /* 2 */ {BPF_LD_W_ABS, 0, 0, SD_IP_LO},
      /* 3 */ {BPF_JEQ_K, 0, 10, (uint32_t)ip},
      /* 4 */ {BPF_LD_W_ABS, 0, 0, SD_IP_HI},
      /* 5 */ {BPF_JEQ_K, 0, 8, (uint32_t)(ip >> 32)},
      /* 6 */ {BPF_LD_W_ABS, 0, 0, SD_NR},
      /* 7 */ {BPF_JEQ_K, 5, 0, NR_exit_group},
      /* 8 */ {BPF_JEQ_K, 0, 5, NR_madvise},
      /* 9 */ {BPF_LD_W_ABS, 0, 0, SD_ARG2_LO},
      /* 10 */ {BPF_JEQ_K, 0, 3, MADV_DONTNEED},
      /* 11 */ {BPF_LD_W_ABS, 0, 0, SD_ARG2_HI},
      /* 12 */ {BPF_JEQ_K, 0, 1, 0},
      /* 13 */ {BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW},
      /* 14 */ {BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS},
  };
  const struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (sys3(NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)&prog) != 0)
    die(UNIFN_SANDBOX_EXIT_SECCOMP);
}

/* In its own user namespace the process holds every capability there: give them all up, so that
 * nothing that got past ptrace and seccomp could use one. */
static void drop_caps(void) {
  /* EINVAL past the kernel's last capability: the rest are dropped by then. */
  for (long cap = 0; cap < 64; ++cap) sys6(NR_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0, 0);
  sys6(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0);
  struct {
    uint32_t version;
    int pid;
  } header = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
  uint32_t data[6] = {0, 0, 0, 0, 0, 0}; /* effective, permitted, inheritable: empty, both halves */
  if (sys3(NR_capset, (long)&header, (long)data, 0) != 0) die(UNIFN_SANDBOX_EXIT_CAPS);
}

__attribute__((noreturn, visibility("hidden"), used)) void helper_main(void) {
  struct unifn_sandbox_spec spec;
  read_spec(&spec);                                                                   /* a */
  map_regions(&spec);                                                                 /* b */
  map_helper_page(&spec);                                                             /* c */
  close_all_fds();                                                                    /* d */
  long uffd = (spec.flags & UNIFN_SANDBOX_TRACK_WRITES) ? start_tracking(&spec) : -1; /* e */
  set_limits(&spec);                                                                  /* f */
  if (spec.flags & UNIFN_SANDBOX_DROP_UID) drop_uid(&spec);                           /* g */
  drop_caps();
  if (sys6(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0) != 0)
    die(UNIFN_SANDBOX_EXIT_NO_NEW_PRIVS); /* h */
  install_seccomp();                      /* i */

  /* j: report in rax (bits) and rdi (the userfaultfd or -1), then stop for the supervisor for good.
   */
  const unsigned long report = uffd >= 0 ? UNIFN_SANDBOX_HAVE_TRACKING : 0;
  __asm__ volatile("1: int3\n\tjmp 1b" : : "a"(report), "D"(uffd) : "memory");
  __builtin_unreachable();
}

/* The entry point: the kernel starts us with rsp at argc; align the stack as a call expects. */
__asm__(
    ".text\n"
    ".globl _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  and $-16, %rsp\n"
    "  call helper_main\n"
    "  ud2\n"
    ".size _start, .-_start\n");
