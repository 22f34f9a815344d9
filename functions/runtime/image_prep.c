/* Image preparation for image models (see <unifn/image_prep.h>): stb_image decodes,
 * stb_image_resize resizes, then normalisation into planar floats. The same file is built for the
 * guest and host. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/image_prep.h>

/* stb is third-party code built with our warnings off; static, so that a function that also uses
 * stb_image itself (edges) links beside this library. PNG and JPEG from memory only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS UNIFN_IMAGE_MAX_SIDE
#include <stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
#include <stb_image_resize.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#pragma GCC diagnostic pop
/* Reported at the end of the file, past the pop: stb's static declarations it never defines. */
#pragma GCC diagnostic ignored "-Wunused-function"

static void say(char* err, size_t errlen, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char* err, size_t errlen, const char* fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int unifn_metadata_get(const char* metadata, const char* key, char* out, size_t cap) {
  if (!metadata || !key || !out || !cap) return -1;
  const size_t klen = strlen(key);
  for (const char* line = metadata; *line;) {
    const char* end = strchr(line, '\n');
    if (!end) end = line + strlen(line);
    if ((size_t)(end - line) > klen && !memcmp(line, key, klen) && line[klen] == '=') {
      const size_t vlen = (size_t)(end - line) - klen - 1;
      if (vlen + 1 > cap) return -1;
      memcpy(out, line + klen + 1, vlen);
      out[vlen] = 0;
      return (int)vlen;
    }
    line = *end ? end + 1 : end;
  }
  return -1;
}

int unifn_list_entry(const char* list, int index, char* out, size_t cap) {
  if (!list || !out || !cap || index < 0) return -1;
  const char* p = list;
  for (int i = 0; i < index; i++) {
    p = strchr(p, ',');
    if (!p) return -1;
    p++;
  }
  const char* end = strchr(p, ',');
  const size_t n = end ? (size_t)(end - p) : strlen(p);
  if (n + 1 > cap) return -1;
  memcpy(out, p, n);
  out[n] = 0;
  return (int)n;
}

/* One number or `channels` numbers separated by commas into v[0..channels-1]. */
static int parse_per_channel(const char* text, uint32_t channels, float* v) {
  const char* p = text;
  uint32_t n = 0;
  for (; n < 3; n++) {
    char* end;
    const float x = strtof(p, &end);
    if (end == p || !(x == x)) return -1; /* not a number, or NaN */
    v[n] = x;
    while (*end == ' ') end++;
    if (*end == 0) break;
    if (*end != ',') return -1;
    p = end + 1;
  }
  if (n >= 3) return -1;
  if (n == 0)
    for (uint32_t c = 1; c < 3; c++) v[c] = v[0];
  else if (n + 1 != channels)
    return -1;
  return 0;
}

int unifn_image_spec_parse(const char* metadata, struct unifn_image_spec* spec, char* err,
                           size_t errlen) {
  char v[128], kind[16];
  if (!spec) return -1;
  memset(spec, 0, sizeof *spec);
  for (int c = 0; c < 3; c++) spec->std[c] = 1;
  if (unifn_metadata_get(metadata, "unifn.input", v, sizeof v) < 0) {
    say(err, errlen, "the model's metadata has no unifn.input (e.g. \"28x28 gray\")");
    return -1;
  }
  unsigned w = 0, h = 0;
  int used = 0;
  if (sscanf(v, "%ux%u %15s%n", &w, &h, kind, &used) != 3 || v[used] != 0 || w < 1 || h < 1 ||
      w > UNIFN_IMAGE_MAX_INPUT_SIDE || h > UNIFN_IMAGE_MAX_INPUT_SIDE ||
      (strcmp(kind, "gray") && strcmp(kind, "rgb"))) {
    say(err, errlen,
        "the model's unifn.input '%s' is not WIDTHxHEIGHT gray or rgb with sides 1 to %u", v,
        UNIFN_IMAGE_MAX_INPUT_SIDE);
    return -1;
  }
  spec->width = w, spec->height = h, spec->channels = strcmp(kind, "gray") ? 3 : 1;
  if (unifn_metadata_get(metadata, "unifn.mean", v, sizeof v) >= 0 &&
      parse_per_channel(v, spec->channels, spec->mean)) {
    say(err, errlen, "the model's unifn.mean '%s' is not one number or one per channel", v);
    return -1;
  }
  if (unifn_metadata_get(metadata, "unifn.std", v, sizeof v) >= 0 &&
      parse_per_channel(v, spec->channels, spec->std)) {
    say(err, errlen, "the model's unifn.std '%s' is not one number or one per channel", v);
    return -1;
  }
  for (uint32_t c = 0; c < spec->channels; c++)
    if (!(spec->std[c] > 0)) {
      say(err, errlen, "the model's unifn.std must be positive");
      return -1;
    }
  if (unifn_metadata_get(metadata, "unifn.invert", v, sizeof v) >= 0) {
    if (strcmp(v, "0") && strcmp(v, "1")) {
      say(err, errlen, "the model's unifn.invert '%s' is neither 0 nor 1", v);
      return -1;
    }
    spec->invert = v[0] == '1';
  }
  return 0;
}

size_t unifn_image_spec_floats(const struct unifn_image_spec* spec) {
  return spec ? (size_t)spec->width * spec->height * spec->channels : 0;
}

/* Debian's stb_image (2022-09) builds a JPEG Huffman table from its 16 code counts without checking
 * that they total at most 256, and writes past the table when they do (later stb checks it). So
 * every place stb could take for a DHT segment (any 0xFF 0xC4: a superset of what its marker
 * reader finds, however the bytes around are damaged) is checked first, each table as stb reads
 * it, 0 past the end. Returns 0 when a table is impossible. */
static int jpeg_tables_fit(const uint8_t* p, size_t len) {
  if (len < 2 || p[0] != 0xFF || p[1] != 0xD8) return 1; /* not a JPEG: nothing to check */
  for (size_t i = 2; i + 1 < len; ++i) {
    if (p[i] != 0xFF || p[i + 1] != 0xC4) continue;
    const size_t at = i + 2;
    const size_t seg = at + 1 < len ? ((size_t)p[at] << 8) | p[at + 1] : 0;
    long left = (long)seg - 2; /* stb's L */
    size_t j = at + 2;
    while (left > 0 && j < len) {
      size_t n = 0;
      for (size_t k = 1; k <= 16; ++k) n += j + k < len ? p[j + k] : 0;
      if (n > 256) return 0;
      left -= 17 + (long)n;
      j += 17 + n;
    }
  }
  return 1;
}

int unifn_image_info(const void* img, size_t len, int* width, int* height, int* channels, char* err,
                     size_t errlen) {
  int w = 0, h = 0, n = 0;
  if (img && !jpeg_tables_fit((const uint8_t*)img, len)) {
    say(err, errlen,
        "the body is not a PNG or JPEG image (a JPEG Huffman table of more than 256 "
        "codes)");
    return UNIFN_IMAGE_BAD;
  }
  if (!img || len == 0 || len > 0x7fffffff ||
      !stbi_info_from_memory((const stbi_uc*)img, (int)len, &w, &h, &n)) {
    say(err, errlen, "the body is not a PNG or JPEG image (%s)",
        len > 0x7fffffff ? "larger than 2 GiB" : stbi_failure_reason());
    return UNIFN_IMAGE_BAD;
  }
  if (w < 1 || h < 1 || (uint32_t)w > UNIFN_IMAGE_MAX_SIDE || (uint32_t)h > UNIFN_IMAGE_MAX_SIDE ||
      (uint64_t)w * (uint64_t)h > UNIFN_IMAGE_MAX_PIXELS) {
    say(err, errlen, "the image is %dx%d: at most %u pixels and %u per side are accepted", w, h,
        UNIFN_IMAGE_MAX_PIXELS, UNIFN_IMAGE_MAX_SIDE);
    return UNIFN_IMAGE_TOO_LARGE;
  }
  if (width) *width = w;
  if (height) *height = h;
  if (channels) *channels = n;
  return 0;
}

uint8_t* unifn_image_decode(const void* img, size_t len, int channels, int* width, int* height,
                            char* err, size_t errlen) {
  int w = 0, h = 0, dw = 0, dh = 0, dn = 0;
  if (channels < 1 || channels > 4) {
    say(err, errlen, "an image has 1 to 4 channels, not %d", channels);
    return NULL;
  }
  if (unifn_image_info(img, len, &w, &h, NULL, err, errlen) != 0) return NULL;
  stbi_uc* px = stbi_load_from_memory((const stbi_uc*)img, (int)len, &dw, &dh, &dn, channels);
  if (!px) {
    say(err, errlen, "the image could not be decoded (%s)", stbi_failure_reason());
    return NULL;
  }
  if (dw != w || dh != h) { /* the header said one size and the decoder another */
    stbi_image_free(px);
    say(err, errlen, "the image's size changed while decoding it");
    return NULL;
  }
  *width = w;
  *height = h;
  return px;
}

void unifn_image_free(void* pixels) { stbi_image_free(pixels); }

int unifn_image_write_png(unifn_image_sink sink, void* ctx, int width, int height, int channels,
                          const void* pixels, int stride_bytes) {
  return stbi_write_png_to_func(sink, ctx, width, height, channels, pixels, stride_bytes);
}

int unifn_image_prepare(const void* img, size_t len, const struct unifn_image_spec* spec,
                        float* out, size_t out_floats, char* err, size_t errlen) {
  if (!spec || !out || spec->width < 1 || spec->height < 1 ||
      spec->width > UNIFN_IMAGE_MAX_INPUT_SIDE || spec->height > UNIFN_IMAGE_MAX_INPUT_SIDE ||
      (spec->channels != 1 && spec->channels != 3) || out_floats < unifn_image_spec_floats(spec)) {
    say(err, errlen, "the image preparation was given no usable model input or output buffer");
    return UNIFN_IMAGE_BADSPEC;
  }
  const int ch = (int)spec->channels;
  int w = 0, h = 0;
  const int known = unifn_image_info(img, len, NULL, NULL, NULL, err, errlen);
  if (known != 0) return known;
  stbi_uc* px = unifn_image_decode(img, len, ch, &w, &h, err, errlen);
  if (!px) return UNIFN_IMAGE_BAD;
  const uint32_t ow = spec->width, oh = spec->height;
  const stbi_uc* src = px;
  stbi_uc* resized = NULL;
  if ((uint32_t)w != ow || (uint32_t)h != oh) {
    resized = malloc((size_t)ow * oh * (size_t)ch);
    if (!resized) {
      stbi_image_free(px);
      say(err, errlen, "out of memory for a %ux%u image", ow, oh);
      return UNIFN_IMAGE_NOMEM;
    }
    if (!stbir_resize_uint8(px, w, h, 0, resized, (int)ow, (int)oh, 0, ch)) {
      free(resized);
      stbi_image_free(px);
      say(err, errlen, "the %dx%d image could not be resized to %ux%u", w, h, ow, oh);
      return UNIFN_IMAGE_NOMEM;
    }
    src = resized;
  }
  /* Planar output: channel c's plane at c * ow * oh. */
  const size_t plane = (size_t)ow * oh;
  for (int c = 0; c < ch; c++) {
    const float scale = 1.0f / (255.0f * spec->std[c]), shift = spec->mean[c] / spec->std[c];
    float* dst = out + (size_t)c * plane;
    for (size_t i = 0; i < plane; i++) {
      const int p = src[i * (size_t)ch + (size_t)c];
      dst[i] = (float)(spec->invert ? 255 - p : p) * scale - shift;
    }
  }
  free(resized);
  stbi_image_free(px);
  return 0;
}
