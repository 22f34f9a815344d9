/* COM1 output by polling LSR, and isa-debug-exit, for the freestanding test kernels. */
#ifndef UNIFN_TEST_KERNEL_IO_H
#define UNIFN_TEST_KERNEL_IO_H

#include <stdint.h>

#define COM1 0x3F8
#define DEBUG_EXIT_PORT 0xF4

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

/* 115200 8N1 with FIFOs, the way real kernels set the chip up (the divisor goes through DLAB). */
static inline void serial_init(void) {
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x80);
  outb(COM1 + 0, 0x01);
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03);
  outb(COM1 + 2, 0xC7);
  outb(COM1 + 4, 0x03);
}

static inline void serial_putc(char c) {
  while (!(inb(COM1 + 5) & 0x20)) {
  }
  outb(COM1, (uint8_t)c);
}

static inline void serial_puts(const char* s) {
  while (*s) serial_putc(*s++);
}

static inline void serial_putu(uint32_t v) {
  char buf[11];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v);
  while (n) serial_putc(buf[--n]);
}

static inline __attribute__((noreturn)) void debug_exit(uint8_t value) {
  outb(DEBUG_EXIT_PORT, value);
  for (;;) __asm__ volatile("cli; hlt");
}

#endif
