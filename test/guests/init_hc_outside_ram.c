/* init_hc_outside_ram: during init, NEXT_REQUEST (port UNIFN_HC_BASE + 1) with its argument
 * struct at a guest-physical address beyond RAM. */
#include <stdint.h>

#include <unifn/abi.h>
#include <unifn/function.h>

static void bad_next_request(void) {
  __asm__ volatile("outl %0, %1"
                   :
                   : "a"(0xF0000000u), "Nd"((uint16_t)(UNIFN_HC_BASE + UNIFN_HC_NEXT_REQUEST))
                   : "memory");
}

static int never_called(const unifn_request* req, unifn_response* res) {
  (void)req;
  unifn_printf(res, "the VMM accepted NEXT_REQUEST outside guest RAM\n");
  return 200;
}

UNIFN_INIT(bad_next_request)
UNIFN_FUNCTION(never_called)
