/* Test kernel for unifn's multiboot1 loader: the header and a 32-bit entry that calls kmain. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-aligned modules, memory info */

  .section .multiboot, "a"
  .balign 4
  .long MB_MAGIC
  .long MB_FLAGS
  .long -(MB_MAGIC + MB_FLAGS)

  .text
  .code32
  .globl _start
_start:
  /* EAX = 0x2BADB002, EBX = multiboot_info; the loader promises no stack. */
  mov $stack_top, %esp
  push %ebx
  push %eax
  call kmain
1:
  hlt
  jmp 1b

  .bss
  .balign 16
  .skip 8192
stack_top:
