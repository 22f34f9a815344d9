/* abort_reason: gives up with a reason of its own (unifn_abort). */
#include <unifn/function.h>

static int abort_reason(const unifn_request* req, unifn_response* res) {
  (void)req;
  (void)res;
  unifn_abort("the model file is missing");
}

UNIFN_FUNCTION(abort_reason)
