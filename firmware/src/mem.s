@ memcpy, memmove, memset and their ARM EABI aliases in 124 bytes of Thumb-2, for the ARMv7-M
@ builds: compiler_builtins' versions are unrolled for speed and take about 3 KB of flash. The
@ firmware copies little per inference (struct copies at boot, one row shift per strip), so a
@ word loop when both pointers are aligned, else a byte loop, costs almost nothing.
@ Arguments as the EABI: memcpy/memmove (dst, src, n) -> dst; __aeabi_memset (dst, n, c);
@ memset (dst, c, n) -> dst; __aeabi_memclr (dst, n).

    .syntax unified
    .thumb
    .section .text.sqz_mem, "ax", %progbits
    .p2align 1

    .global memmove, __aeabi_memmove, __aeabi_memmove4, __aeabi_memmove8
    .type memmove, %function
    .type __aeabi_memmove, %function
    .type __aeabi_memmove4, %function
    .type __aeabi_memmove8, %function
memmove:
__aeabi_memmove:
__aeabi_memmove4:
__aeabi_memmove8:
    subs r3, r0, r1          @ dst - src, unsigned: >= n when a forward copy is safe
    cmp r3, r2
    bhs memcpy
1:  subs r2, r2, #1          @ dst overlaps the source's tail: copy backwards, bytewise
    bcc 2f
    ldrb r3, [r1, r2]
    strb r3, [r0, r2]
    b 1b
2:  bx lr

    .global memcpy, __aeabi_memcpy, __aeabi_memcpy4, __aeabi_memcpy8
    .type memcpy, %function
    .type __aeabi_memcpy, %function
    .type __aeabi_memcpy4, %function
    .type __aeabi_memcpy8, %function
memcpy:
__aeabi_memcpy:
__aeabi_memcpy4:
__aeabi_memcpy8:
    mov r12, r0
    orr r3, r0, r1
    lsls r3, r3, #30
    bne 3f
1:  subs r2, r2, #4          @ both aligned: words, then the tail bytes
    bcc 2f
    ldr r3, [r1], #4
    str r3, [r12], #4
    b 1b
2:  adds r2, r2, #4
3:  subs r2, r2, #1
    bcc 4f
    ldrb r3, [r1], #1
    strb r3, [r12], #1
    b 3b
4:  bx lr

    .global memset, __aeabi_memset, __aeabi_memset4, __aeabi_memset8
    .global __aeabi_memclr, __aeabi_memclr4, __aeabi_memclr8
    .type memset, %function
    .type __aeabi_memset, %function
    .type __aeabi_memset4, %function
    .type __aeabi_memset8, %function
    .type __aeabi_memclr, %function
    .type __aeabi_memclr4, %function
    .type __aeabi_memclr8, %function
memset:
    mov r3, r1               @ (dst, c, n) -> (dst, n, c)
    mov r1, r2
    mov r2, r3
__aeabi_memset:
__aeabi_memset4:
__aeabi_memset8:
    and r2, r2, #255
    orr r2, r2, r2, lsl #8
    orr r2, r2, r2, lsl #16
    b 0f
__aeabi_memclr:
__aeabi_memclr4:
__aeabi_memclr8:
    movs r2, #0
0:  mov r12, r0
    lsls r3, r0, #30
    bne 3f
1:  subs r1, r1, #4          @ aligned: words, then the tail bytes
    bcc 2f
    str r2, [r12], #4
    b 1b
2:  adds r1, r1, #4
3:  subs r1, r1, #1
    bcc 4f
    strb r2, [r12], #1
    b 3b
4:  bx lr
