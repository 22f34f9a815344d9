/* sandbox_escape: makes raw system calls that would reach outside a unikernel if the host ran them
 * (files, sockets, processes, signals, ptrace, executable memory), and answers with what each
 * returned, one "name=value" line per call. The request body is a path prefix under /tmp that the
 * calls try to create (PREFIX, PREFIX-open, PREFIX-exec); nothing may appear there.
 * "int80:PATH" makes one call only: creat(PATH) through the 32-bit ABI (int $0x80), which the
 * sandbox answers with ENOSYS and KVM (no gate for vector 0x80) ends with an exception. */
#include <stdint.h>
#include <string.h>

#include <unifn/function.h>

/* Linux x86-64 numbers, spelled out: the point is the raw call, not what musl makes of it. */
#define NR_open 2
#define NR_close 3
#define NR_mmap 9
#define NR_mprotect 10
#define NR_socket 41
#define NR_clone 56
#define NR_fork 57
#define NR_vfork 58
#define NR_execve 59
#define NR_kill 62
#define NR_creat 85
#define NR_ptrace 101
#define NR_mount 165
#define NR_unshare 272
#define NR_openat 257
#define NR_memfd_create 319
#define NR_userfaultfd 323
#define NR32_creat 8 /* the 32-bit ABI, through int $0x80 */

#define AT_FDCWD (-100)
#define O_WRONLY 01
#define O_CREAT 0100
#define PROT_RWX 7
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define AF_INET 2
#define SOCK_STREAM 1
#define SIGKILL 9
#define PTRACE_TRACEME 0
#define PTRACE_ATTACH 16
#define CLONE_NEWUSER 0x10000000

static long raw6(long nr, long a, long b, long c, long d, long e, long f) {
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
static long raw3(long nr, long a, long b, long c) { return raw6(nr, a, b, c, 0, 0, 0); }

static long int80_creat(const char* path) {
  long ret;
  /* Guest RAM lies below 4 GiB, so the pointer fits the 32-bit ABI's ebx. */
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(NR32_creat), "b"(path), "c"(0644) : "memory");
  return ret;
}

static char prefix[200];
static char path_open[220], path_exec[220];
static char shell_cmd[260];
static char data_page[8192] __attribute__((aligned(4096)));
static const char rodata_page[8192] __attribute__((aligned(4096))) = "read-only";

/* A page of its own code to mprotect. */
__attribute__((noinline, used)) void sandbox_code_page(void) { __asm__ volatile(""); }

static void with_suffix(char* out, const char* suffix) {
  strcpy(out, prefix);
  strcat(out, suffix);
}

static int sandbox_escape(const unifn_request* req, unifn_response* res) {
  if (req->len > 6 && memcmp(req->body, "int80:", 6) == 0) {
    size_t n = req->len - 6 < sizeof prefix - 1 ? req->len - 6 : sizeof prefix - 1;
    memcpy(prefix, req->body + 6, n);
    prefix[n] = 0;
    unifn_printf(res, "int80_creat=%ld\n", int80_creat(prefix));
    return 200;
  }
  size_t n = req->len < sizeof prefix - 1 ? req->len : sizeof prefix - 1;
  memcpy(prefix, req->body, n);
  prefix[n] = 0;
  with_suffix(path_open, "-open");
  with_suffix(path_exec, "-exec");
  strcpy(shell_cmd, "touch ");
  strcat(shell_cmd, path_exec);
  char* argv[] = {"/bin/sh", "-c", shell_cmd, 0};
  char* envp[] = {0};

  unifn_printf(res, "open=%ld\n", raw3(NR_open, (long)"/etc/passwd", 0, 0));
  unifn_printf(res, "openat=%ld\n", raw6(NR_openat, AT_FDCWD, (long)"/etc/passwd", 0, 0, 0, 0));
  unifn_printf(res, "open_creat=%ld\n", raw3(NR_open, (long)path_open, O_CREAT | O_WRONLY, 0644));
  unifn_printf(res, "creat=%ld\n", raw3(NR_creat, (long)prefix, 0644, 0));
  unifn_printf(res, "socket=%ld\n", raw3(NR_socket, AF_INET, SOCK_STREAM, 0));
  unifn_printf(res, "fork=%ld\n", raw3(NR_fork, 0, 0, 0));
  unifn_printf(res, "vfork=%ld\n", raw3(NR_vfork, 0, 0, 0));
  unifn_printf(res, "clone=%ld\n", raw6(NR_clone, 17 /* SIGCHLD */, 0, 0, 0, 0, 0));
  unifn_printf(res, "execve=%ld\n", raw3(NR_execve, (long)"/bin/sh", (long)argv, (long)envp));
  unifn_printf(res, "kill=%ld\n", raw3(NR_kill, 1, SIGKILL, 0));
  unifn_printf(res, "ptrace_traceme=%ld\n", raw6(NR_ptrace, PTRACE_TRACEME, 0, 0, 0, 0, 0));
  unifn_printf(res, "ptrace_attach=%ld\n", raw6(NR_ptrace, PTRACE_ATTACH, 1, 0, 0, 0, 0));
  unifn_printf(res, "unshare=%ld\n", raw3(NR_unshare, CLONE_NEWUSER, 0, 0));
  unifn_printf(res, "mount=%ld\n",
               raw6(NR_mount, (long)"none", (long)"/tmp", (long)"tmpfs", 0, 0, 0));
  unifn_printf(res, "memfd_create=%ld\n", raw3(NR_memfd_create, (long)"x", 0, 0));
  unifn_printf(res, "userfaultfd=%ld\n", raw3(NR_userfaultfd, 0, 0, 0));
  /* The personality answers these three with success without doing anything: what the host
   * process maps and holds must not change (the test looks). */
  uintptr_t text = (uintptr_t)&sandbox_code_page & ~(uintptr_t)4095;
  unifn_printf(res, "mprotect_text=%ld\n", raw3(NR_mprotect, (long)text, 4096, PROT_RWX));
  unifn_printf(res, "mprotect_data=%ld\n", raw3(NR_mprotect, (long)data_page, 4096, PROT_RWX));
  unifn_printf(res, "mprotect_rodata=%ld\n", raw3(NR_mprotect, (long)rodata_page, 4096, PROT_RWX));
  long closed = 0;
  for (long fd = 0; fd < 16; ++fd) closed |= raw3(NR_close, fd, 0, 0);
  unifn_printf(res, "close=%ld\n", closed);
  long m = raw6(NR_mmap, 0, 4096, PROT_RWX, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  unifn_printf(res, "mmap_rwx=%s\n", m < 0 ? "error" : "ok");
  data_page[0] = rodata_page[0]; /* keep both pages in the image */
  return 200;
}

UNIFN_FUNCTION(sandbox_escape)
