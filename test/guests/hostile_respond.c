/* hostile_respond: answers with a content type that would split the HTTP response ("crlf", the
 * default: a CR LF and an injected header), or another control byte by the request body ("lf",
 * "del", "esc"); "tab" answers a valid one (HTAB is allowed inside a header value). First it
 * prints a console line that would clear a terminal and overwrite itself, which must reach the
 * log escaped. */
#include <stdio.h>
#include <string.h>

#include <unifn/function.h>

static int is(const unifn_request* req, const char* word) {
  return req->len == strlen(word) && memcmp(req->body, word, req->len) == 0;
}

static int hostile_respond(const unifn_request* req, unifn_response* res) {
  printf("\x1b[2Jcleared\rforged\n");
  fflush(stdout);
  if (is(req, "tab"))
    res->content_type = "text/plain;\tcharset=utf-8";
  else if (is(req, "lf"))
    res->content_type = "text/plain\nX-Injected: 1";
  else if (is(req, "del"))
    res->content_type = "text/plain\x7f";
  else if (is(req, "esc"))
    res->content_type = "\x1b[31m";
  else
    res->content_type = "text/plain\r\nX-Injected: 1";
  unifn_printf(res, "smuggled\n");
  return 200;
}

UNIFN_FUNCTION(hostile_respond)
