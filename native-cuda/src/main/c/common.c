#include "fst4j.h"
#include "gemm_internal.h"
#include <omp.h>

int fst_version(void) { return 1; }

int fst_max_threads(void) { return omp_get_num_procs(); }

const char *fst_isa(void) { return fst_gemm_kernel()->name; }
