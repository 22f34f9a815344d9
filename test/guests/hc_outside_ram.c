/* hc_outside_ram: hypercalls that hand the VMM addresses beyond guest RAM ("arg": the argument
 * struct itself; "data": a CONSOLE_WRITE whose buffer is outside RAM). */
#include <stdint.h>
#include <string.h>

#include <unifn/abi.h>
#include <unifn/function.h>

#define BEYOND_RAM 0xF0000000u /* above any RAM the tests give (and still a 32-bit gpa) */

static void hypercall(unsigned nr, uint32_t gpa) {
  __asm__ volatile("outl %0, %1" : : "a"(gpa), "Nd"((uint16_t)(UNIFN_HC_BASE + nr)) : "memory");
}

static int hc_outside_ram(const unifn_request* req, unifn_response* res) {
  static struct unifn_hc_buf buf;
  if (req->len == 4 && memcmp(req->body, "data", 4) == 0) {
    buf.data = BEYOND_RAM;
    buf.len = 16;
    hypercall(UNIFN_HC_CONSOLE_WRITE, (uint32_t)(uintptr_t)&buf);
  } else {
    hypercall(UNIFN_HC_CONSOLE_WRITE, BEYOND_RAM);
  }
  unifn_printf(res, "the VMM accepted an address outside guest RAM\n");
  return 200;
}

UNIFN_FUNCTION(hc_outside_ram)
