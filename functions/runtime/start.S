/* Guest entry point and the ABI note that marks an image as a unifn function. */
#include <unifn/abi.h>

	.section .note.unifn, "a", @note
	.p2align 2
	.long 6			/* namesz: "unifn\0" */
	.long 4			/* descsz */
	.long UNIFN_NOTE_TYPE_ABI
	.asciz "unifn"
	.p2align 2
	.long UNIFN_ABI_VERSION

	.text
	.globl _start
	.type _start, @function
/* Entered at CPL 3 with rdi = gpa of struct unifn_boot_info and rsp at the top of the stack. */
_start:
	xor %ebp, %ebp
	and $-16, %rsp
	call unifn_rt_start
	ud2
	.size _start, .-_start

	.section .note.GNU-stack, "", @progbits
