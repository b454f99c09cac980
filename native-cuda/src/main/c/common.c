#include "fst4j.h"
#include "gemm_internal.h"
#include <unistd.h>

int fst_version(void) { return 1; }

int fst_max_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

const char *fst_isa(void) { return fst_gemm_kernel()->name; }

int64_t fst_allocs_left = -1;
void fst_debug_fail_allocs(int64_t after) { __atomic_store_n(&fst_allocs_left, after < 0 ? -1 : after, __ATOMIC_RELAXED); }
