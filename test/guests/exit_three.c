/* exit_three: calls exit(3) from the handler, after a line on stdout. */
#include <stdio.h>
#include <stdlib.h>

#include <unifn/function.h>

static int exit_three(const unifn_request* req, unifn_response* res) {
  (void)req;
  (void)res;
  printf("leaving with status 3\n");
  exit(3);
}

UNIFN_FUNCTION(exit_three)
