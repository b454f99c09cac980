/* Which x86 core the shim runs on, for the few blocking choices measured to differ between hosts (the 2:4 product's K
 * blocks, sparse_kernel.c; Eq. 3's direct kernel, gemm.c; the compiled product's limits, sparse.c). Read once (per
 * object file) and kept. */
#ifndef FST4J_CPU_HOST_H
#define FST4J_CPU_HOST_H
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* The widest vector family a path with its own vector code may take on this CPU: 2 AVX-512, 1 AVX2 (for a path that
 * has an AVX2 version: avx2 set), 0 its scalar code. FST4J_ISA=avx2|generic forces a lesser family, as it does for the
 * GEMM kernels (gemm.c); the path's own variable off_env=0 keeps it off. */
static inline int fst_vec_family(const char *off_env, int avx2) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const char *force = getenv("FST4J_ISA"), *off = getenv(off_env);
    const int generic = force && strcmp(force, "generic") == 0, lesser = generic || (force && strcmp(force, "avx2") == 0);
    if (off && strcmp(off, "0") == 0) return 0;
    if (__builtin_cpu_supports("avx512f") && !lesser) return 2;
    return avx2 && __builtin_cpu_supports("avx2") && !generic ? 1 : 0;
#else
    (void)off_env; (void)avx2;
    return 0;
#endif
}

/* A vector path's switch, its family kept in *state (-1 until decided, on first use): mode 0 turns it off, 1 decides it
 * again from the CPU and the environment (fst_vec_family), -1 only asks. Returns the family in use. */
static inline int fst_vec_switch(int *state, const char *off_env, int avx2, int mode) {
    if (mode == 0) __atomic_store_n(state, 0, __ATOMIC_RELAXED);
    else if (mode > 0) __atomic_store_n(state, -1, __ATOMIC_RELAXED);
    int have = __atomic_load_n(state, __ATOMIC_RELAXED);
    if (have < 0) {
        have = fst_vec_family(off_env, avx2);
        __atomic_store_n(state, have, __ATOMIC_RELAXED);
    }
    return have;
}

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
