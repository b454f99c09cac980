/* Which x86 core the shim runs on, for the few blocking choices measured to differ between hosts (the 2:4 product's K
 * blocks, sparse_kernel.c; Eq. 3's direct kernel, gemm.c; the compiled product's limits, sparse.c). Read once (per
 * object file) and kept. */
#ifndef FST4J_CPU_HOST_H
#define FST4J_CPU_HOST_H
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* The AMD family (0x19: Zen 3 and Zen 4, 0x1A: Zen 5), or 0 on any other vendor or architecture. */
static inline unsigned fst_cpu_amd_family(void) {
#if defined(__x86_64__) || defined(__i386__)
    static int family = -1;   /* -1 until read; every thread reads the same value */
    int f = __atomic_load_n(&family, __ATOMIC_RELAXED);
    if (f >= 0) return (unsigned)f;
    unsigned a, b, c, d;
    f = 0;
    if (__get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u /* "Auth": AuthenticAMD */ && __get_cpuid(1, &a, &b, &c, &d)) {
        const unsigned base = (a >> 8) & 0xF;
        f = (int)(base == 0xF ? base + ((a >> 20) & 0xFF) : base);
    }
    __atomic_store_n(&family, f, __ATOMIC_RELAXED);
    return (unsigned)f;
#else
    return 0;
#endif
}
#endif
