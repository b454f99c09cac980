#include "fst4j.h"
#include "gemm_internal.h"
#include <unistd.h>

int fst_version(void) { return 1; }

int fst_max_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

const char *fst_isa(void) { return fst_gemm_kernel()->name; }
