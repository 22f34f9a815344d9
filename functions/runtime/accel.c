/* Guest virtio-mmio driver for virtio-accel (one polled queue) and the vAccel-named SDK calls over
 * it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <unifn/abi.h>
#include <unifn/accel_abi.h>
#include <unifn/function.h>
#include <unifn/vaccel.h>

#include "accel_internal.h"

/* virtio-mmio v2 registers and status bits (virtio 1.2, 4.2.2). */
enum {
  REG_MAGIC = 0x000,
  REG_VERSION = 0x004,
  REG_DEVICE_ID = 0x008,
  REG_DEVICE_FEATURES = 0x010,
  REG_DEVICE_FEATURES_SEL = 0x014,
  REG_DRIVER_FEATURES = 0x020,
  REG_DRIVER_FEATURES_SEL = 0x024,
  REG_QUEUE_SEL = 0x030,
  REG_QUEUE_NUM_MAX = 0x034,
  REG_QUEUE_NUM = 0x038,
  REG_QUEUE_READY = 0x044,
  REG_QUEUE_NOTIFY = 0x050,
  REG_STATUS = 0x070,
  REG_QUEUE_DESC_LOW = 0x080,
  REG_QUEUE_DESC_HIGH = 0x084,
  REG_QUEUE_DRIVER_LOW = 0x090,
  REG_QUEUE_DRIVER_HIGH = 0x094,
  REG_QUEUE_DEVICE_LOW = 0x0a0,
  REG_QUEUE_DEVICE_HIGH = 0x0a4,
  REG_CONFIG = 0x100,
};
enum { ST_ACKNOWLEDGE = 1, ST_DRIVER = 2, ST_DRIVER_OK = 4, ST_FEATURES_OK = 8, ST_FAILED = 128 };
enum { DESC_NEXT = 1, DESC_WRITE = 2 };
#define QSIZE 32u /* a request needs at most 3 + UNIFN_ACCEL_MAX_ARGS descriptors */

struct vq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct vq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[QSIZE];
  uint16_t used_event;
};
struct vq_used {
  uint16_t flags;
  uint16_t idx;
  struct {
    uint32_t id;
    uint32_t len;
  } ring[QSIZE];
  uint16_t avail_event;
};

static struct vq_desc desc[QSIZE] __attribute__((aligned(16)));
static struct vq_avail avail __attribute__((aligned(16)));
static struct vq_used used __attribute__((aligned(16)));
static struct unifn_accel_req req_hdr __attribute__((aligned(16)));
static struct unifn_accel_arg arg_hdrs[UNIFN_ACCEL_MAX_ARGS] __attribute__((aligned(16)));
static volatile uint8_t status_byte;
static uint16_t last_used;
static uint64_t next_request_id;
static int last_status = -1;

static uintptr_t regs; /* gpa of the register window (identity-mapped) */
static int dev_state;  /* 0 not probed, 1 ready, -1 absent or failed */
static struct unifn_accel_config dev_config;

/* Plain 32-bit moves: each is one VM exit that the VMM decodes, so keep them simple. */
static inline uint32_t mmio_read(uint32_t off) {
  uint32_t v;
  __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(regs + off) : "memory");
  return v;
}
static inline void mmio_write(uint32_t off, uint32_t v) {
  __asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(regs + off) : "memory");
}

static int fail_init(void) {
  if (regs) mmio_write(REG_STATUS, mmio_read(REG_STATUS) | ST_FAILED);
  dev_state = -1;
  return -1;
}

static int accel_init(void) {
  if (dev_state) return dev_state > 0 ? 0 : -1;
  const struct unifn_boot_info* bi = unifn_get_boot_info();
  for (uint32_t i = 0; bi && i < bi->virtio_count && i < UNIFN_MAX_VIRTIO; i++)
    if (bi->virtio[i].device_id == UNIFN_VIRTIO_ID_ACCEL) regs = (uintptr_t)bi->virtio[i].base;
  if (!regs) {
    dev_state = -1;
    return -1;
  }
  if (mmio_read(REG_MAGIC) != 0x74726976 || mmio_read(REG_VERSION) != 2 ||
      mmio_read(REG_DEVICE_ID) != UNIFN_VIRTIO_ID_ACCEL)
    return fail_init();
  mmio_write(REG_STATUS, 0);
  mmio_write(REG_STATUS, ST_ACKNOWLEDGE);
  mmio_write(REG_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);
  mmio_write(REG_DEVICE_FEATURES_SEL, 1);
  if (!(mmio_read(REG_DEVICE_FEATURES) & 1)) return fail_init(); /* VIRTIO_F_VERSION_1 */
  mmio_write(REG_DRIVER_FEATURES_SEL, 0);
  mmio_write(REG_DRIVER_FEATURES, 0);
  mmio_write(REG_DRIVER_FEATURES_SEL, 1);
  mmio_write(REG_DRIVER_FEATURES, 1);
  mmio_write(REG_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK);
  if (!(mmio_read(REG_STATUS) & ST_FEATURES_OK)) return fail_init();
  mmio_write(REG_QUEUE_SEL, 0);
  if (mmio_read(REG_QUEUE_NUM_MAX) < QSIZE) return fail_init();
  memset(desc, 0, sizeof desc);
  memset(&avail, 0, sizeof avail);
  memset(&used, 0, sizeof used);
  mmio_write(REG_QUEUE_NUM, QSIZE);
  mmio_write(REG_QUEUE_DESC_LOW, (uint32_t)(uintptr_t)desc);
  mmio_write(REG_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)(uintptr_t)desc >> 32));
  mmio_write(REG_QUEUE_DRIVER_LOW, (uint32_t)(uintptr_t)&avail);
  mmio_write(REG_QUEUE_DRIVER_HIGH, (uint32_t)((uint64_t)(uintptr_t)&avail >> 32));
  mmio_write(REG_QUEUE_DEVICE_LOW, (uint32_t)(uintptr_t)&used);
  mmio_write(REG_QUEUE_DEVICE_HIGH, (uint32_t)((uint64_t)(uintptr_t)&used >> 32));
  mmio_write(REG_QUEUE_READY, 1);
  if (mmio_read(REG_QUEUE_READY) != 1) return fail_init();
  uint32_t* cfg = (uint32_t*)&dev_config;
  for (size_t i = 0; i < sizeof dev_config / 4; i++)
    cfg[i] = mmio_read(REG_CONFIG + 4 * (uint32_t)i);
  dev_config.backend[sizeof dev_config.backend - 1] = 0;
  mmio_write(REG_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
  last_used = 0;
  dev_state = 1;
  return 0;
}

int unifn_accel_request(uint32_t command, uint32_t session_id, uint32_t op,
                        const struct vaccel_arg* read, int nr_read, const struct vaccel_arg* write,
                        int nr_write, uint32_t* used_len) {
  last_status = -1;
  if (nr_read < 0 || nr_write < 0 || (uint32_t)nr_read + (uint32_t)nr_write > UNIFN_ACCEL_MAX_ARGS)
    return -1;
  if (accel_init() != 0) return -1;
  const uint32_t nargs = (uint32_t)nr_read + (uint32_t)nr_write;
  req_hdr = (struct unifn_accel_req){++next_request_id, session_id,         command, op,
                                     (uint32_t)nr_read, (uint32_t)nr_write, 0};
  uint16_t n = 0;
  desc[n++] = (struct vq_desc){(uint64_t)(uintptr_t)&req_hdr, sizeof req_hdr, 0, 0};
  if (nargs)
    desc[n++] = (struct vq_desc){(uint64_t)(uintptr_t)arg_hdrs, nargs * sizeof arg_hdrs[0], 0, 0};
  for (int i = 0; i < nr_read; i++) {
    arg_hdrs[i] = (struct unifn_accel_arg){read[i].size, read[i].argtype};
    desc[n++] = (struct vq_desc){(uint64_t)(uintptr_t)read[i].buf, read[i].size, 0, 0};
  }
  for (int i = 0; i < nr_write; i++) {
    arg_hdrs[nr_read + i] = (struct unifn_accel_arg){write[i].size, write[i].argtype};
    desc[n++] = (struct vq_desc){(uint64_t)(uintptr_t)write[i].buf, write[i].size, DESC_WRITE, 0};
  }
  status_byte = 0xff;
  desc[n++] = (struct vq_desc){(uint64_t)(uintptr_t)&status_byte, 1, DESC_WRITE, 0};
  for (uint16_t i = 0; i + 1 < n; i++) {
    desc[i].flags |= DESC_NEXT;
    desc[i].next = (uint16_t)(i + 1);
  }
  /* One request in flight at a time, so the chain always starts at descriptor 0. */
  avail.ring[avail.idx % QSIZE] = 0;
  __atomic_store_n(&avail.idx, (uint16_t)(avail.idx + 1), __ATOMIC_RELEASE);
  mmio_write(REG_QUEUE_NOTIFY, 0); /* the device answers before this write completes */
  /* So the loop below normally ends at once; it is bounded in case a device ever answers late. */
  const uint64_t give_up = unifn_now_ns() + 60ull * 1000000000ull;
  while (__atomic_load_n(&used.idx, __ATOMIC_ACQUIRE) == last_used) {
    if (unifn_now_ns() > give_up) return -1;
    __asm__ volatile("pause");
  }
  const uint32_t len = used.ring[last_used % QSIZE].len;
  last_used++;
  if (used_len) *used_len = len;
  if (len == 0) return -1; /* the device could not even find the status byte */
  last_status = status_byte;
  return last_status;
}

int vaccel_last_status(void) { return last_status; }

const char* vaccel_backend(void) { return accel_init() == 0 ? dev_config.backend : NULL; }

uint32_t unifn_accel_features(void) { return accel_init() == 0 ? dev_config.features : 0; }

int unifn_accel_to_vaccel(int status) {
  switch (status) {
    case UNIFN_ACCEL_OK:
      return VACCEL_OK;
    case UNIFN_ACCEL_BADMSG:
    case UNIFN_ACCEL_INVSESS:
      return VACCEL_EINVAL;
    case UNIFN_ACCEL_NOTSUPP:
      return VACCEL_ENOTSUP;
    case -1:
      return dev_state < 0 ? VACCEL_ENODEV : VACCEL_EIO;
    default:
      return VACCEL_EIO;
  }
}

static int do_op(struct vaccel_session* sess, uint32_t op, const struct vaccel_arg* read,
                 int nr_read, const struct vaccel_arg* write, int nr_write) {
  if (!sess) return VACCEL_EINVAL;
  return unifn_accel_to_vaccel(unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, sess->session_id, op,
                                                   read, nr_read, write, nr_write, NULL));
}

int vaccel_sess_init(struct vaccel_session* sess, uint32_t flags) {
  if (!sess) return VACCEL_EINVAL;
  uint32_t id = 0;
  struct vaccel_arg in = {sizeof flags, UNIFN_ACCEL_ARG_UINT32, &flags};
  struct vaccel_arg out = {sizeof id, UNIFN_ACCEL_ARG_UINT32, &id};
  int rc = unifn_accel_to_vaccel(
      unifn_accel_request(UNIFN_ACCEL_CMD_CREATE_SESSION, 0, 0, &in, 1, &out, 1, NULL));
  if (rc != VACCEL_OK) return rc;
  sess->session_id = id;
  sess->hint = flags;
  sess->priv = NULL;
  return VACCEL_OK;
}

int vaccel_sess_free(struct vaccel_session* sess) {
  if (!sess) return VACCEL_EINVAL;
  int rc = unifn_accel_to_vaccel(unifn_accel_request(UNIFN_ACCEL_CMD_DESTROY_SESSION,
                                                     sess->session_id, 0, NULL, 0, NULL, 0, NULL));
  if (rc == VACCEL_OK) sess->session_id = 0;
  return rc;
}

int vaccel_session_init(struct vaccel_session* sess, uint32_t flags) {
  return vaccel_sess_init(sess, flags);
}
int vaccel_session_release(struct vaccel_session* sess) { return vaccel_sess_free(sess); }

int vaccel_noop(struct vaccel_session* sess) {
  return do_op(sess, UNIFN_ACCEL_OP_NOOP, NULL, 0, NULL, 0);
}

#define ARG(ptr, bytes, type) ((struct vaccel_arg){(uint32_t)(bytes), (type), (void*)(ptr)})

int vaccel_sgemm(struct vaccel_session* sess, int64_t m, int64_t n, int64_t k, float alpha,
                 float* a, int64_t lda, float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int64_t big = (int64_t)1 << 30; /* keeps the products below from overflowing */
  if (m < 1 || n < 1 || k < 1 || m > big || n > big || k > big || lda < k || ldb < n || ldc < n ||
      lda > big || ldb > big || ldc > big)
    return VACCEL_EINVAL;
  const uint64_t na = (uint64_t)((m - 1) * lda + k) * 4, nb = (uint64_t)((k - 1) * ldb + n) * 4,
                 nc = (uint64_t)((m - 1) * ldc + n) * 4;
  if (na > UNIFN_ACCEL_MAX_ARG_BYTES || nb > UNIFN_ACCEL_MAX_ARG_BYTES ||
      nc > UNIFN_ACCEL_MAX_ARG_BYTES)
    return VACCEL_EINVAL;
  struct vaccel_arg in[10] = {
      ARG(&m, 8, UNIFN_ACCEL_ARG_INT64),      ARG(&n, 8, UNIFN_ACCEL_ARG_INT64),
      ARG(&k, 8, UNIFN_ACCEL_ARG_INT64),      ARG(&alpha, 4, UNIFN_ACCEL_ARG_FLOAT32),
      ARG(a, na, UNIFN_ACCEL_ARG_FLOAT32),    ARG(&lda, 8, UNIFN_ACCEL_ARG_INT64),
      ARG(b, nb, UNIFN_ACCEL_ARG_FLOAT32),    ARG(&ldb, 8, UNIFN_ACCEL_ARG_INT64),
      ARG(&beta, 4, UNIFN_ACCEL_ARG_FLOAT32), ARG(&ldc, 8, UNIFN_ACCEL_ARG_INT64)};
  struct vaccel_arg out[1] = {ARG(c, nc, UNIFN_ACCEL_ARG_FLOAT32)};
  return do_op(sess, UNIFN_ACCEL_OP_BLAS_SGEMM, in, 10, out, 1);
}

int vaccel_minmax(struct vaccel_session* sess, const double* indata, int ndata, int low_threshold,
                  int high_threshold, double* outdata, double* min, double* max) {
  if (ndata < 1 || (uint64_t)ndata * 8 > UNIFN_ACCEL_MAX_ARG_BYTES) return VACCEL_EINVAL;
  struct vaccel_arg in[4] = {ARG(indata, (uint64_t)ndata * 8, UNIFN_ACCEL_ARG_FLOAT64),
                             ARG(&ndata, 4, UNIFN_ACCEL_ARG_INT32),
                             ARG(&low_threshold, 4, UNIFN_ACCEL_ARG_INT32),
                             ARG(&high_threshold, 4, UNIFN_ACCEL_ARG_INT32)};
  struct vaccel_arg out[3] = {ARG(outdata, (uint64_t)ndata * 8, UNIFN_ACCEL_ARG_FLOAT64),
                              ARG(min, 8, UNIFN_ACCEL_ARG_FLOAT64),
                              ARG(max, 8, UNIFN_ACCEL_ARG_FLOAT64)};
  return do_op(sess, UNIFN_ACCEL_OP_MINMAX, in, 4, out, 3);
}

int vaccel_genop(struct vaccel_session* sess, struct vaccel_arg* read, int nr_read,
                 struct vaccel_arg* write, int nr_write) {
  if (!read || nr_read < 1 || !read[0].buf) return VACCEL_EINVAL;
  uint64_t op = 0;
  if (read[0].size != 1 && read[0].size != 4 && read[0].size != 8) return VACCEL_EINVAL;
  memcpy(&op, read[0].buf, read[0].size);
  if (op > 0xffffffffu) return VACCEL_EINVAL;
  return do_op(sess, (uint32_t)op, read + 1, nr_read - 1, write, nr_write);
}

int vaccel_image_op(struct vaccel_session* sess, const struct unifn_accel_image_params* p,
                    const void* src, void* dst) {
  if (!p) return VACCEL_EINVAL;
  const uint64_t in_len = (uint64_t)p->width * p->height * p->channels;
  const uint64_t out_len = (uint64_t)p->out_width * p->out_height * p->out_channels;
  if (in_len > UNIFN_ACCEL_MAX_ARG_BYTES || out_len > UNIFN_ACCEL_MAX_ARG_BYTES)
    return VACCEL_EINVAL;
  struct vaccel_arg in[2] = {ARG(p, sizeof *p, UNIFN_ACCEL_ARG_STRUCT),
                             ARG(src, in_len, UNIFN_ACCEL_ARG_UINT8)};
  struct vaccel_arg out[1] = {ARG(dst, out_len, UNIFN_ACCEL_ARG_UINT8)};
  return do_op(sess, UNIFN_ACCEL_OP_OPENCV, in, 2, out, 1);
}

int vaccel_image_grayscale(struct vaccel_session* sess, const void* rgb, uint32_t width,
                           uint32_t height, uint32_t channels, void* gray) {
  struct unifn_accel_image_params p = {
      UNIFN_ACCEL_IMAGE_GRAYSCALE, width, height, channels, width, height, 1, 0, 0, 0};
  return vaccel_image_op(sess, &p, rgb, gray);
}

int vaccel_image_gaussian_blur(struct vaccel_session* sess, const void* src, uint32_t width,
                               uint32_t height, uint32_t channels, uint32_t ksize, float sigma,
                               void* dst) {
  struct unifn_accel_image_params p = {UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR,
                                       width,
                                       height,
                                       channels,
                                       width,
                                       height,
                                       channels,
                                       ksize,
                                       sigma,
                                       0};
  return vaccel_image_op(sess, &p, src, dst);
}

int vaccel_image_sobel(struct vaccel_session* sess, const void* gray, uint32_t width,
                       uint32_t height, void* dst) {
  struct unifn_accel_image_params p = {
      UNIFN_ACCEL_IMAGE_SOBEL, width, height, 1, width, height, 1, 0, 0, 0};
  return vaccel_image_op(sess, &p, gray, dst);
}

int vaccel_image_resize(struct vaccel_session* sess, const void* src, uint32_t width,
                        uint32_t height, uint32_t channels, void* dst, uint32_t out_width,
                        uint32_t out_height) {
  struct unifn_accel_image_params p = {
      UNIFN_ACCEL_IMAGE_RESIZE, width, height, channels, out_width, out_height, channels, 0, 0, 0};
  return vaccel_image_op(sess, &p, src, dst);
}
