/* unknown_syscall: calls fork (Linux system call 57) twice, which the VMM does not implement, and
 * still answers with what it got back. */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include <unifn/function.h>

static int unknown_syscall(const unifn_request* req, unifn_response* res) {
  (void)req;
  for (int i = 0; i < 2; i++) {
    errno = 0;
    long r = syscall(57);
    unifn_printf(res, "fork: %ld errno %d\n", r, errno);
  }
  return 200;
}

UNIFN_FUNCTION(unknown_syscall)
