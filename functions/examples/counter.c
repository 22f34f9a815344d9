/* counter: how many requests this instance has served. Always 1 with per-request isolation. */
#include <unifn/function.h>

static unsigned long served;

static int counter(const unifn_request* req, unifn_response* res) {
  (void)req;
  unifn_printf(res, "%lu\n", ++served);
  return 200;
}

UNIFN_FUNCTION(counter)
