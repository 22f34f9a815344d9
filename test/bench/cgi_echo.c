/* The peer of the HTTP benchmark: a CGI program that echoes its request body (fork per request). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
  const char* cl = getenv("CONTENT_LENGTH");
  long n = cl ? atol(cl) : 0;
  static char buf[1 << 16];
  printf("Content-Type: application/octet-stream\r\nContent-Length: %ld\r\n\r\n", n);
  fflush(stdout);
  while (n > 0) {
    ssize_t r = read(0, buf, n < (long)sizeof buf ? (size_t)n : sizeof buf);
    if (r <= 0) break;
    fwrite(buf, 1, (size_t)r, stdout);
    n -= r;
  }
  return 0;
}
