/* null_read: prints a line, then reads address 0 in the handler (a #PF the caller must see). */
#include <stdio.h>

#include <unifn/function.h>

static int null_read(const unifn_request* req, unifn_response* res) {
  (void)req;
  (void)res;
  printf("reading address 0\n");
  fflush(stdout);
  volatile const int* p = 0;
  __asm__ volatile("" : "+r"(p)); /* the compiler cannot see that p is NULL */
  return *p;
}

UNIFN_FUNCTION(null_read)
