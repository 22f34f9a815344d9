/* init_fault: reads address 0 during init, before the snapshot (the boot must fail). */
#include <unifn/function.h>

static volatile int sink;

static void read_null(void) {
  volatile const int* p = 0;
  __asm__ volatile("" : "+r"(p));
  sink = *p;
}

static int never_called(const unifn_request* req, unifn_response* res) {
  (void)req;
  unifn_printf(res, "init survived a NULL read\n");
  return 200;
}

UNIFN_INIT(read_null)
UNIFN_FUNCTION(never_called)
