/* virtio-accel wire format (after vAccel's virtio-accel) and op codes (after vAccel's numbering).
 * Freestanding C. */
#ifndef UNIFN_ACCEL_ABI_H
#define UNIFN_ACCEL_ABI_H

#include <stdint.h>

/* Bumped on any incompatible change of what follows; the device's config space names it. */
#define UNIFN_ACCEL_ABI_VERSION 1u

/* The virtio device id of virtio-accel (the id nubificus/virtio-accel uses). */
#define UNIFN_VIRTIO_ID_ACCEL 21u

/* One request is one descriptor chain on queue 0, in this order:
 *   1. struct unifn_accel_req             device-readable
 *   2. struct unifn_accel_arg[nr_read + nr_write]
 *                                         device-readable; present only when nr_read + nr_write > 0
 *   3. nr_read argument buffers           device-readable, one descriptor each, len == arg[i].len
 *   4. nr_write argument buffers          device-writable, one descriptor each, len == arg[nr_read
 * + j].len
 *   5. one status byte                    device-writable (UNIFN_ACCEL_OK ...)
 * The device checks all of it (lengths, directions, bounds, overlaps, counts, types) before it runs
 * anything; a request it refuses gets an error status and touches no argument buffer. A chain so
 * broken that its last descriptor cannot be found (a loop, more descriptors than the queue holds)
 * comes back in the used ring with len 0 and its status byte untouched.
 * Completions are polled: the device answers during the QueueNotify write, so the used ring
 * already holds the answer when that write returns. */

/* Status byte (vAccel's virtio-accel values). */
enum unifn_accel_status {
  UNIFN_ACCEL_OK = 0,
  UNIFN_ACCEL_ERR = 1,     /* the backend failed (the request itself was well-formed) */
  UNIFN_ACCEL_BADMSG = 2,  /* malformed chain, header or arguments */
  UNIFN_ACCEL_NOTSUPP = 3, /* unknown command or op code, or an op the backend does not have */
  UNIFN_ACCEL_INVSESS = 4, /* unknown session id */
};

/* Commands (vAccel's virtio-accel generic commands). */
enum unifn_accel_command {
  UNIFN_ACCEL_CMD_NOOP = 0,           /* no args: answers OK (checks the path, no session needed) */
  UNIFN_ACCEL_CMD_CREATE_SESSION = 1, /* read: [u32 flags] (optional); write: [u32 session id] */
  UNIFN_ACCEL_CMD_DESTROY_SESSION = 2, /* no args; session_id names it */
  UNIFN_ACCEL_CMD_DO_OP = 3,           /* op, in session_id, with the op's args below */
  /* unifn's own, numbered from 256 so that they never meet vAccel's (see MODEL_REGISTER below). */
  UNIFN_ACCEL_CMD_MODEL_REGISTER = 256,   /* an ONNX model into session_id */
  UNIFN_ACCEL_CMD_MODEL_UNREGISTER = 257, /* read: [u32 model id], in session_id */
};

/* Op codes: vAccel's operation numbering (enum vaccel_op_type, VACCEL_OP_* in vAccel up to v0.6:
 * NOOP = 0, BLAS_SGEMM, IMAGE_CLASSIFY, ...). Only those marked (*) are served here; the others
 * answer UNIFN_ACCEL_NOTSUPP. */
enum unifn_accel_op {
  UNIFN_ACCEL_OP_NOOP = 0,       /* (*) no args */
  UNIFN_ACCEL_OP_BLAS_SGEMM = 1, /* (*) see below */
  UNIFN_ACCEL_OP_IMAGE_CLASSIFY = 2,
  UNIFN_ACCEL_OP_IMAGE_DETECT = 3,
  UNIFN_ACCEL_OP_IMAGE_SEGMENT = 4,
  UNIFN_ACCEL_OP_IMAGE_POSE = 5,
  UNIFN_ACCEL_OP_IMAGE_DEPTH = 6,
  UNIFN_ACCEL_OP_EXEC = 7,
  UNIFN_ACCEL_OP_TF_MODEL_NEW = 8,
  UNIFN_ACCEL_OP_TF_MODEL_DESTROY = 9,
  UNIFN_ACCEL_OP_TF_MODEL_REGISTER = 10,
  UNIFN_ACCEL_OP_TF_MODEL_UNREGISTER = 11,
  UNIFN_ACCEL_OP_TF_SESSION_LOAD = 12,
  UNIFN_ACCEL_OP_TF_SESSION_RUN = 13,
  UNIFN_ACCEL_OP_TF_SESSION_DELETE = 14,
  UNIFN_ACCEL_OP_MINMAX = 15, /* (*) see below */
  UNIFN_ACCEL_OP_FPGA_ARRAYCOPY = 16,
  UNIFN_ACCEL_OP_FPGA_MMULT = 17,
  UNIFN_ACCEL_OP_FPGA_PARALLEL = 18,
  UNIFN_ACCEL_OP_FPGA_VECTORADD = 19,
  UNIFN_ACCEL_OP_EXEC_WITH_RESOURCE = 20,
  UNIFN_ACCEL_OP_TORCH_JITLOAD_FORWARD = 21,
  UNIFN_ACCEL_OP_TORCH_SGEMM = 22,
  UNIFN_ACCEL_OP_OPENCV = 23, /* (*) image ops, see below */
  UNIFN_ACCEL_OP_TFLITE_SESSION_LOAD = 24,
  UNIFN_ACCEL_OP_TFLITE_SESSION_RUN = 25,
  UNIFN_ACCEL_OP_TFLITE_SESSION_DELETE = 26,
  UNIFN_ACCEL_OP_COUNT,
  /* unifn's own op codes, numbered from 256: vAccel has no ONNX op and its numbering stops far
   * below. Served when the config space's features say so (they have no bit in `ops`). */
  UNIFN_ACCEL_OP_MODEL_RUN = 256, /* see below */
};

/* Argument element types. RAW accepts any argument; any other type must be the one the op expects.
 */
enum unifn_accel_arg_type {
  UNIFN_ACCEL_ARG_RAW = 0,
  UNIFN_ACCEL_ARG_INT32 = 1,
  UNIFN_ACCEL_ARG_INT64 = 2,
  UNIFN_ACCEL_ARG_FLOAT32 = 3,
  UNIFN_ACCEL_ARG_FLOAT64 = 4,
  UNIFN_ACCEL_ARG_UINT8 = 5,
  UNIFN_ACCEL_ARG_UINT32 = 6,
  UNIFN_ACCEL_ARG_STRUCT = 7, /* one of the parameter structs below */
};

/* The request header (descriptor 1). */
struct unifn_accel_req {
  uint64_t request_id; /* the driver's own tag; the device only reports it in its error messages */
  uint32_t session_id; /* 0 for NOOP and CREATE_SESSION */
  uint32_t command;    /* enum unifn_accel_command */
  uint32_t op;         /* enum unifn_accel_op, for DO_OP */
  uint32_t nr_read;    /* device-readable argument buffers */
  uint32_t nr_write;   /* device-writable argument buffers */
  uint32_t _reserved;  /* 0 */
};

/* One argument header (descriptor 2 holds nr_read + nr_write of them, read ones first). */
struct unifn_accel_arg {
  uint32_t len;  /* bytes; equal to the length of the argument's descriptor */
  uint32_t type; /* enum unifn_accel_arg_type */
};

/* At most this many arguments in one request. */
#define UNIFN_ACCEL_MAX_ARGS 16u
/* The device's queue size, and so the longest chain it follows. */
#define UNIFN_ACCEL_QUEUE_SIZE 64u
/* Largest single argument buffer. */
#define UNIFN_ACCEL_MAX_ARG_BYTES (1u << 30)

/* BLAS_SGEMM, vAccel's genop layout: C = alpha * A x B + beta * C, row-major.
 *   read:  [int64 m] [int64 n] [int64 k] [float32 alpha] [float32 A] [int64 lda] [float32 B]
 *          [int64 ldb] [float32 beta] [int64 ldc]
 *   write: [float32 C]
 * A is m x k with row stride lda >= k, B is k x n with ldb >= n, C is m x n with ldc >= n; each
 * buffer holds exactly (rows - 1) * ld + cols floats and is 4-byte aligned. With beta != 0 the
 * device reads C before writing it. 1 <= m, n, k <= 65536. */

/* MINMAX, vAccel's genop layout: min-max scaling of a vector into [low, high].
 *   read:  [float64 indata[ndata]] [int32 ndata] [int32 low_threshold] [int32 high_threshold]
 *   write: [float64 outdata[ndata]] [float64 min] [float64 max]
 * out[i] = low + (in[i] - min) * (high - low) / (max - min) (all low when max == min); min and max
 * are the input's. Buffers 8-byte aligned; 1 <= ndata. */

/* OPENCV (image operations on 8-bit images, rows packed, channels interleaved):
 *   read:  [struct unifn_accel_image_params] [uint8 src: width * height * channels]
 *   write: [uint8 dst: out_width * out_height * out_channels]
 * The params say what the output is; the device checks it against the op. */
enum unifn_accel_image_op {
  UNIFN_ACCEL_IMAGE_GRAYSCALE = 1, /* RGB (3) or RGBA (4) -> 1 channel, same size (BT.601) */
  UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR =
      2, /* 1..4 channels -> same; ksize odd 1..31; sigma > 0 or 0 (from ksize) */
  UNIFN_ACCEL_IMAGE_SOBEL =
      3, /* 1 channel -> 1 channel: min(255, |dx| + |dy|), 3x3, edges replicated */
  UNIFN_ACCEL_IMAGE_RESIZE = 4, /* 1..4 channels -> same, out_width x out_height, bilinear */
};

struct unifn_accel_image_params {
  uint32_t op; /* enum unifn_accel_image_op */
  uint32_t width, height, channels;
  uint32_t out_width, out_height, out_channels;
  uint32_t ksize;     /* GAUSSIAN_BLUR */
  float sigma;        /* GAUSSIAN_BLUR */
  uint32_t _reserved; /* 0 */
};

/* Largest image side the device accepts. */
#define UNIFN_ACCEL_IMAGE_MAX_SIDE 16384u

/* Models (ONNX), unifn's extension. A model is registered once, in UNIFN_INIT, so that it is part
 * of the function's snapshot; it belongs to the session it was registered in (destroying the
 * session unregisters it).
 *
 * CMD_MODEL_REGISTER, in session_id:
 *   read:  [raw: the model's ONNX bytes, at most UNIFN_ACCEL_MODEL_MAX_BYTES; no external data]
 *   write: [struct unifn_accel_model_io]  the device fills model_id, nr_inputs, nr_outputs and the
 *                                         declared inputs and outputs (dims -1 where open)
 *          [raw: metadata] (optional)     the model's metadata_props as "key=value\n" lines, then
 *                                         a NUL; refused when they do not fit
 * The model is checked once (ONNX's checker and shape inference, then every node against what the
 * backends run): a model they cannot run is refused here, with the node, operator and reason in
 * the daemon's log. The guest must keep the bytes where it registered them from, unchanged, while
 * the model is registered: a snapshot restored by a later daemon process loads the model again
 * from them, checked against the SHA-256 the device's saved state records.
 *
 * OP_MODEL_RUN (CMD_DO_OP), in the model's session:
 *   read:  [struct unifn_accel_model_io]  model_id, nr_inputs and inputs[] (type, rank, dims)
 *          [input 0] ... [input nr_inputs - 1]   each exactly its dims' product of its type
 *   write: [struct unifn_accel_model_io]  the device fills model_id, nr_outputs and outputs[]
 *          [output 0] ... [output nr_outputs - 1] each at least its output's bytes; the output is
 *                                         written from the buffer's start
 * nr_inputs and nr_outputs are the model's counts. Inputs are checked against the model (type,
 * rank, sizes) before anything runs; nothing is written unless the whole run succeeded. */
#define UNIFN_ACCEL_MODEL_MAX_BYTES (64u << 20)
#define UNIFN_ACCEL_MODEL_MAX_RANK 8u
#define UNIFN_ACCEL_MODEL_MAX_IO 7u /* (UNIFN_ACCEL_MAX_ARGS - 2) / 2 */

struct unifn_accel_tensor_desc {
  uint32_t type; /* UNIFN_ACCEL_ARG_FLOAT32 or UNIFN_ACCEL_ARG_INT64 */
  uint32_t rank; /* 0 .. UNIFN_ACCEL_MODEL_MAX_RANK */
  int64_t dims[UNIFN_ACCEL_MODEL_MAX_RANK];
};

struct unifn_accel_model_io {
  uint32_t model_id;
  uint32_t nr_inputs;
  uint32_t nr_outputs;
  uint32_t _reserved; /* 0 */
  struct unifn_accel_tensor_desc inputs[UNIFN_ACCEL_MODEL_MAX_IO];
  struct unifn_accel_tensor_desc outputs[UNIFN_ACCEL_MODEL_MAX_IO];
};

/* Device config space (read-only, at offset 0x100 of the register window). */
struct unifn_accel_config {
  uint32_t abi_version;  /* UNIFN_ACCEL_ABI_VERSION */
  uint32_t ops;          /* bit n set: op code n is served */
  uint32_t max_sessions; /* open sessions at most */
  uint32_t features;     /* UNIFN_ACCEL_FEATURE_* */
  char backend[16];      /* the backend serving this device ("cpu", "cuda"), NUL-padded */
};

/* Feature bits of the config space. */
#define UNIFN_ACCEL_FEATURE_MODELS (1u << 0) /* MODEL_REGISTER, MODEL_UNREGISTER and MODEL_RUN */

#endif /* UNIFN_ACCEL_ABI_H */
