/* Test kernel for unifn's PVH loader: an ELF64 holding 32-bit code, like Linux's vmlinux. It prints
 * what hvm_start_info says to COM1, then exits through isa-debug-exit. Like Linux's 8250 driver it
 * polls LSR until the transmitter is empty and then fills the 16-byte FIFO at once (rep outsb). */
#define COM1 0x3F8
#define HVM_START_MAGIC 0x336ec578
#define CMDLINE_MAX 256

/* XEN_ELFNOTE_PHYS32_ENTRY: name "Xen", type 18, a pointer-sized physical entry address. */
  .section .note.Xen, "a", @note
  .balign 4
  .long 2f - 1f
  .long 4f - 3f
  .long 18
1:.asciz "Xen"
2:.balign 4
3:.quad pvh_start
4:.balign 4

  .text
  .code32
  .globl pvh_start
pvh_start:
  /* EBX = hvm_start_info; no stack is promised. DF is clear, as PVH requires. */
  mov $stack_top, %esp
  mov %ebx, %ebp
  call serial_init
  mov $outbuf, %edi
  cmpl $HVM_START_MAGIC, (%ebp)
  je 1f
  mov $msg_bad, %esi
  mov $msg_bad_len, %ecx
  rep movsb
  call flush
  mov $0x11, %al
  out %al, $0xF4
1:
  mov $msg_hello, %esi        /* "hello from pvh\ncmdline: " */
  mov $msg_hello_len, %ecx
  rep movsb
  mov 24(%ebp), %esi          /* cmdline_paddr (low half; 0 = none) */
  test %esi, %esi
  jz 3f
  mov $CMDLINE_MAX, %ecx
2:
  lodsb
  test %al, %al
  jz 3f
  stosb
  loop 2b
3:
  mov $msg_memory, %esi       /* "\nmemory: " */
  mov $msg_memory_len, %ecx
  rep movsb

  /* Memory in MiB: the end of the highest RAM (type 1) range of the memory map. */
  mov 40(%ebp), %esi          /* memmap_paddr */
  mov 48(%ebp), %ecx          /* memmap_entries */
  xor %ebx, %ebx
4:
  test %ecx, %ecx
  jz 6f
  cmpl $1, 16(%esi)
  jne 5f
  mov 0(%esi), %eax
  mov 4(%esi), %edx
  add 8(%esi), %eax
  adc 12(%esi), %edx
  shrd $20, %edx, %eax
  cmp %ebx, %eax
  jbe 5f
  mov %eax, %ebx
5:
  add $24, %esi
  dec %ecx
  jmp 4b
6:
  mov %ebx, %eax
  call putu
  mov $msg_mib, %esi          /* " MiB\n" */
  mov $msg_mib_len, %ecx
  rep movsb
  call flush

  mov $0x10, %al              /* exit status (0x10 << 1) | 1 = 33 */
  out %al, $0xF4
7:
  cli
  hlt
  jmp 7b

/* 115200 8N1 with FIFOs enabled and cleared; the divisor goes through DLAB. */
serial_init:
  mov $COM1 + 1, %dx
  mov $0x00, %al
  out %al, %dx
  mov $COM1 + 3, %dx
  mov $0x80, %al
  out %al, %dx
  mov $COM1 + 0, %dx
  mov $0x01, %al
  out %al, %dx
  mov $COM1 + 1, %dx
  mov $0x00, %al
  out %al, %dx
  mov $COM1 + 3, %dx
  mov $0x03, %al
  out %al, %dx
  mov $COM1 + 2, %dx
  mov $0xC7, %al
  out %al, %dx
  ret

/* putu: %eax in decimal, appended at %edi. */
putu:
  mov $10, %ecx
  mov %esp, %esi
1:
  xor %edx, %edx
  div %ecx
  add $'0', %dl
  dec %esp
  mov %dl, (%esp)
  test %eax, %eax
  jnz 1b
  mov %esi, %ecx
  sub %esp, %ecx
  push %esi
  lea 4(%esp), %esi
  rep movsb
  pop %esp
  ret

/* flush: sends outbuf up to %edi, 16 bytes each time LSR says the transmitter is empty. */
flush:
  mov $outbuf, %esi
  mov %edi, %ecx
  sub %esi, %ecx
1:
  test %ecx, %ecx
  jz 3f
  mov $COM1 + 5, %dx
2:
  in %dx, %al
  test $0x20, %al
  jz 2b
  mov %ecx, %ebx
  cmp $16, %ebx
  jbe 4f
  mov $16, %ebx
4:
  sub %ebx, %ecx
  push %ecx
  mov %ebx, %ecx
  mov $COM1, %dx
  rep outsb
  pop %ecx
  jmp 1b
3:
  mov $outbuf, %edi
  ret

  .section .rodata
msg_hello:   .ascii "hello from pvh\ncmdline: "
  .set msg_hello_len, . - msg_hello
msg_memory:  .ascii "\nmemory: "
  .set msg_memory_len, . - msg_memory
msg_mib:     .ascii " MiB\n"
  .set msg_mib_len, . - msg_mib
msg_bad:     .ascii "bad start info magic\n"
  .set msg_bad_len, . - msg_bad

  .bss
  .balign 16
outbuf:
  .skip 512
  .skip 4096
stack_top:
