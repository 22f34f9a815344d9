/* init_abort: gives up during init with a reason (unifn_abort before the first request). */
#include <unifn/function.h>

static void give_up(void) { unifn_abort("no model configured"); }

static int never_called(const unifn_request* req, unifn_response* res) {
  (void)req;
  unifn_printf(res, "init finished\n");
  return 200;
}

UNIFN_INIT(give_up)
UNIFN_FUNCTION(never_called)
