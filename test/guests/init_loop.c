/* init_loop: never finishes init; only the boot deadline ends it. */
#include <unifn/function.h>

static void spin(void) {
  for (volatile unsigned long i = 0;; i++) {
  }
}

static int never_called(const unifn_request* req, unifn_response* res) {
  (void)req;
  unifn_printf(res, "init finished\n");
  return 200;
}

UNIFN_INIT(spin)
UNIFN_FUNCTION(never_called)
