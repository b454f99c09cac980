/* ThreadSanitizer driver for ShimFirstUseRaceTest: the shim's state chosen or read from the environment on first use
 * (the 2:4 kernel family, the CUDA shim's switches and its kernel profile's) asked by one thread and then by another,
 * with nothing between them that orders the two for TSan (a relaxed flag only), as two host threads running their first
 * forwards at once. A plain static written on first use and read by the second thread is a data race that TSan reports;
 * the shim's atomics (and gemm.c's acquire / release publication) are not. Built with -DFST_TSAN_CUDA where the CUDA
 * shim (cuda_ops.c with the host emulator) is linked in too. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

const char *fst_spmm24_isa(void);
#ifdef FST_TSAN_CUDA
int fst_cuda_kprof(int on);
int fst_cuda_im2col_vec(int on);
int fst_cuda_igemm_tile(int tile);
int fst_cuda_wg_async(int mode);
#endif

static int first_done;   /* relaxed: tells the second thread to go without ordering its accesses after the first's */

static void ask(int setting) {
    const char *isa = fst_spmm24_isa();
    if (!isa || !*isa) { fprintf(stderr, "fst_spmm24_isa gave no name\n"); exit(3); }
#ifdef FST_TSAN_CUDA
    fst_cuda_kprof(setting ? 0 : -1);        /* the first thread sets (an exchange), the second asks (a load) */
    fst_cuda_im2col_vec(setting ? 1 : -1);
    fst_cuda_igemm_tile(setting ? 0 : -1);
    fst_cuda_wg_async(setting ? 0 : -1);
#else
    (void)setting;
#endif
}

static void *first(void *arg) {
    (void)arg;
    ask(1);
    __atomic_store_n(&first_done, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *second(void *arg) {
    (void)arg;
    while (!__atomic_load_n(&first_done, __ATOMIC_RELAXED)) sched_yield();
    ask(0);
    return NULL;
}

int main(void) {
    pthread_t a, b;
    if (pthread_create(&b, NULL, second, NULL) != 0 || pthread_create(&a, NULL, first, NULL) != 0) return 2;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    puts("done");
    return 0;
}
