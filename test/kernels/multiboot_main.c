/* Test kernel for unifn's multiboot1 loader: prints what the boot info says to COM1, then exits. */
#include <stdint.h>

#include "kernel_io.h"

#define MB_BOOT_MAGIC 0x2BADB002u
#define MBI_MEMORY (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_LOADER_NAME (1u << 9)

/* The fields of multiboot_info this kernel reads. */
struct multiboot_info {
  uint32_t flags;
  uint32_t mem_lower;
  uint32_t mem_upper;
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t pad[11];
  uint32_t boot_loader_name; /* offset 64 */
};

void kmain(uint32_t magic, const struct multiboot_info* mbi);

void kmain(uint32_t magic, const struct multiboot_info* mbi) {
  serial_init();
  if (magic != MB_BOOT_MAGIC) {
    serial_puts("bad multiboot magic\n");
    debug_exit(0x11);
  }
  serial_puts("hello from multiboot\n");
  serial_puts("cmdline: ");
  if (mbi->flags & MBI_CMDLINE) serial_puts((const char*)(uintptr_t)mbi->cmdline);
  serial_puts("\nloader: ");
  if (mbi->flags & MBI_LOADER_NAME) serial_puts((const char*)(uintptr_t)mbi->boot_loader_name);
  serial_puts("\nmemory: ");
  /* mem_upper counts KiB from 1 MiB up to the first hole. */
  serial_putu((mbi->flags & MBI_MEMORY) ? (mbi->mem_upper + 1024u) / 1024u : 0u);
  serial_puts(" MiB\n");
  debug_exit(0x10); /* QEMU and unifn exit with (0x10 << 1) | 1 = 33 */
}
