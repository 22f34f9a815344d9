/* unifn guest <-> VMM ABI: boot info, hypercall numbers and argument structs. Freestanding C. */
#ifndef UNIFN_ABI_H
#define UNIFN_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

/* Bumped on any incompatible change; an image names the version it was built for in its
 * UNIFN_NOTE_NAME ELF note, and the VMM refuses an image built for another version. */
#define UNIFN_ABI_VERSION 1u

/* ELF note that marks an image as a unifn function: name "unifn", type 1, desc = u32 version. */
#define UNIFN_NOTE_NAME "unifn"
#define UNIFN_NOTE_TYPE_ABI 1u

/* Images load at or above 1 MiB; below it the VMM keeps its own structures. */
#define UNIFN_IMAGE_MIN_GPA 0x100000ull
/* Guest RAM stays below 4 GiB so that a guest-physical address fits in the 32 bits of outl. */
#define UNIFN_RAM_MAX_BYTES (3072ull << 20)

/* Hypercall: outl(gpa of the argument struct) to port UNIFN_HC_BASE + nr, from ring 3.
 * Every struct is 8-byte aligned and lives in guest RAM; the VMM checks its bounds. */
#define UNIFN_HC_BASE 0x500u
#ifndef __ASSEMBLER__
enum unifn_hypercall {
  UNIFN_HC_CONSOLE_WRITE = 0, /* struct unifn_hc_buf: write bytes to the console */
  UNIFN_HC_NEXT_REQUEST = 1,  /* struct unifn_hc_next: park until the next invocation */
  UNIFN_HC_RESPOND = 2,       /* struct unifn_hc_respond: answer, and park for the next one */
  UNIFN_HC_LOG = 3,           /* struct unifn_hc_log: a log line with a level */
  UNIFN_HC_ABORT = 4,         /* struct unifn_hc_buf: fail this invocation with a reason */
  UNIFN_HC_EXIT = 5,          /* struct unifn_hc_exit: the guest is done */
  UNIFN_HC_COUNT
};

/* CONSOLE_WRITE, ABORT. IN: data, len. */
struct unifn_hc_buf {
  uint64_t data; /* IN: gpa */
  uint64_t len;  /* IN: bytes */
};

/* LOG. IN: level (0 debug .. 3 error), data, len. */
struct unifn_hc_log {
  uint32_t level; /* IN */
  uint32_t _pad;
  uint64_t data; /* IN: gpa */
  uint64_t len;  /* IN */
};

/* EXIT. IN: status. */
struct unifn_hc_exit {
  int32_t status; /* IN */
  uint32_t _pad;
};

/* NEXT_REQUEST. The first call tells the VMM the function has initialised: that is where the
 * snapshot is taken. The VMM resumes the guest once a request is ready. */
struct unifn_hc_next {
  uint64_t buf;           /* IN: gpa of the buffer that receives the request body */
  uint64_t buf_cap;       /* IN: its capacity in bytes */
  uint64_t len;           /* OUT: body length (never more than buf_cap) */
  uint64_t request_id;    /* OUT: the VMM's sequence number of this request, from 1 */
  uint64_t deliver_tsc;   /* OUT: guest TSC when the VMM handed the request over */
  char content_type[128]; /* OUT: the request's Content-Type, NUL-terminated, may be empty */
};

/* RESPOND. Answers the current request; when next != 0 it also parks exactly like
 * NEXT_REQUEST with the struct at next, so one exit serves one request. */
struct unifn_hc_respond {
  uint32_t status;           /* IN: HTTP status, 100..599 */
  uint32_t content_type_len; /* IN */
  uint64_t content_type;     /* IN: gpa of the Content-Type text, may be 0 */
  uint64_t body;             /* IN: gpa */
  uint64_t body_len;         /* IN */
  uint64_t handler_tsc;      /* IN: guest TSC when the handler was entered (for measurements) */
  uint64_t next;             /* IN: gpa of a struct unifn_hc_next, or 0 */
};

/* Boot info: rdi at entry holds its guest-physical address. All pointers are gpas. */
#endif /* __ASSEMBLER__ */

#define UNIFN_BOOT_MAGIC 0x6e69666e75ull /* "unifn" */
#define UNIFN_MAX_VIRTIO 4

#ifndef __ASSEMBLER__
struct unifn_virtio_mmio {
  uint64_t base; /* gpa of the register window */
  uint64_t size;
  uint32_t device_id; /* virtio device id */
  uint32_t _pad;
};

struct unifn_boot_info {
  uint64_t magic;       /* UNIFN_BOOT_MAGIC */
  uint32_t abi_version; /* UNIFN_ABI_VERSION */
  uint32_t _pad0;
  uint64_t ram_bytes; /* guest RAM size: [0, ram_bytes) */
  uint64_t tsc_khz;   /* guest TSC frequency, for the runtime's clock */
  uint64_t cmdline;   /* gpa of a NUL-terminated command line */
  uint64_t env;       /* gpa of "K=V\0K=V\0\0" from the function's config */
  uint64_t phdr;      /* gpa of a copy of the image's program headers (for AT_PHDR) */
  uint64_t phnum;
  uint64_t phent;
  uint64_t random;      /* gpa of 16 random bytes (AT_RANDOM), fresh for every restore */
  uint64_t io_buf;      /* gpa of the request/response area the VMM fills itself */
  uint64_t io_buf_size; /* its size: half for the request body, half for the response */
  uint64_t heap_start;  /* brk starts here */
  uint64_t heap_end;    /* brk and mmap end here */
  uint64_t stack_top;   /* initial rsp */
  uint32_t virtio_count;
  uint32_t _pad1;
  struct unifn_virtio_mmio virtio[UNIFN_MAX_VIRTIO];
};
#endif /* __ASSEMBLER__ */

#endif /* UNIFN_ABI_H */
