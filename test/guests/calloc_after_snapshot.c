/* calloc_after_snapshot: init fills a large (mmap'd) buffer before the snapshot; each request frees
 * it and callocs the same size, and answers "zeroed" or where the old bytes showed through. */
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>

enum { SIZE = 1 << 20 }; /* above musl's mmap threshold: malloc and free become mmap and munmap */

static unsigned char* buf;

static void fill(void) {
  buf = malloc(SIZE);
  if (buf) memset(buf, 0x77, SIZE);
}

static int calloc_after_snapshot(const unifn_request* req, unifn_response* res) {
  (void)req;
  if (!buf) return 500;
  free(buf);
  buf = calloc(1, SIZE);
  if (!buf) return 500;
  for (size_t i = 0; i < SIZE; i++)
    if (buf[i]) {
      unifn_printf(res, "byte %zu of calloc'd memory is %#x\n", i, buf[i]);
      return 200;
    }
  unifn_printf(res, "zeroed\n");
  return 200;
}

UNIFN_INIT(fill)
UNIFN_FUNCTION(calloc_after_snapshot)
