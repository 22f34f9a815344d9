/* The unifn function SDK: write a handler in C, register it with UNIFN_FUNCTION, link with
 * unifn_add_function. The runtime calls the handler once per invocation. */
#ifndef UNIFN_FUNCTION_H
#define UNIFN_FUNCTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct unifn_request {
  const uint8_t* body; /* the request body (not NUL-terminated) */
  size_t len;
  const char* content_type; /* the request's Content-Type, "" when absent */
  uint64_t id;              /* 1, 2, 3, ... per instance since its snapshot */
} unifn_request;

typedef struct unifn_response {
  int status;               /* HTTP status; 0 means: use the handler's return value */
  const char* content_type; /* default "text/plain" */
  const void* body;         /* NULL: the bytes written with unifn_write/unifn_printf */
  size_t len;               /* body length */
  uint8_t* buf;             /* the runtime's response buffer, cap bytes */
  size_t cap;
} unifn_response;

/* The handler returns an HTTP status (200, 400, ...). */
typedef int (*unifn_handler_fn)(const unifn_request* req, unifn_response* res);

/* Appends to the response buffer; returns 0, or -1 when it is full. */
int unifn_write(unifn_response* res, const void* data, size_t len);
int unifn_printf(unifn_response* res, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/* Points the response at bytes elsewhere in guest memory (no copy); they must stay valid until
 * the handler returns to the runtime. */
void unifn_set_body(unifn_response* res, const void* body, size_t len);

/* Fails the invocation: the caller gets 502 with this reason. Does not return. */
void unifn_abort(const char* reason) __attribute__((noreturn));
/* A log line on the daemon's log, tagged with the function and call. */
void unifn_log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/* Nanoseconds from the guest's TSC: cheap, no exit. */
uint64_t unifn_now_ns(void);
/* The function's setting `key` from its config (env), or NULL. Same as getenv. */
const char* unifn_config(const char* key);
/* What the VMM handed the guest at boot (memory layout, devices on the MMIO bus, TSC rate), for
 * drivers such as the virtio-accel one; see <unifn/abi.h>. Valid from unifn_init on. */
struct unifn_boot_info;
const struct unifn_boot_info* unifn_get_boot_info(void);

/* Registers the handler. */
#define UNIFN_FUNCTION(handler) \
  int unifn_handler(const unifn_request* req, unifn_response* res) { return handler(req, res); }

/* Registers an initialiser that runs once before the snapshot is taken: load models, build
 * tables, open accelerator sessions here. */
#define UNIFN_INIT(init) \
  void unifn_init(void) { init(); }

#ifdef __cplusplus
}
#endif

#endif /* UNIFN_FUNCTION_H */
