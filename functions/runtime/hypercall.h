/* Hypercalls from ring 3: one outl of the argument struct's address. */
#ifndef UNIFN_RT_HYPERCALL_H
#define UNIFN_RT_HYPERCALL_H

#include <stdint.h>
#include <unifn/abi.h>

static inline void unifn_hc(unsigned nr, void* arg) {
  __asm__ volatile("outl %0, %1"
                   :
                   : "a"((uint32_t)(uintptr_t)arg), "Nd"((uint16_t)(UNIFN_HC_BASE + nr))
                   : "memory");
}

static inline uint64_t unifn_rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

#endif
