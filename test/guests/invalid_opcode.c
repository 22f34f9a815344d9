/* invalid_opcode: executes ud2 in the handler (#UD). */
#include <unifn/function.h>

static int invalid_opcode(const unifn_request* req, unifn_response* res) {
  (void)req;
  (void)res;
  __asm__ volatile("ud2");
  return 200;
}

UNIFN_FUNCTION(invalid_opcode)
