/* echo: answers with its request body, byte for byte, with the request's content type. */
#include <unifn/function.h>

static int echo(const unifn_request* req, unifn_response* res) {
  unifn_set_body(res, req->body, req->len); /* no copy: the VMM reads the request buffer */
  res->content_type = req->content_type[0] ? req->content_type : "application/octet-stream";
  return 200;
}

UNIFN_FUNCTION(echo)
