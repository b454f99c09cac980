/* fst4j CUDA shim: run-time binding of the CUDA runtime, driver, cuBLAS and cuSPARSELt through dlopen with
 * this file's own declarations (no CUDA header or library at build time), plus the launchers of the kernels in
 * src/main/cuda/fst4j_kernels.cu, whose fatbin the Makefile embeds here (FST_FATBIN). This file is the device back end
 * of cuda_backend.h: memory, launches, cuBLAS, cuSPARSELt; the kernel entry points are in cuda_ops.c (shared with the
 * host emulator). See native-cuda/CUDA.md. */
#include "cuda_backend.h"
#include "../cuda/fst4j_kargs.h"
#include <dlfcn.h>
#include <glob.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* messages are cut to their buffers on purpose */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#ifndef FST_FATBIN
#error "FST_FATBIN (path of the kernels' fatbin) must be defined by the Makefile"
#endif
__asm__(".section .rodata\n.balign 64\n.globl fst_cuda_fatbin\n.hidden fst_cuda_fatbin\nfst_cuda_fatbin:\n"
        ".incbin \"" FST_FATBIN "\"\n.byte 0\n.previous\n");
extern const unsigned char fst_cuda_fatbin[];

/* ---- own declarations: the few entry points used, with their documented C signatures ---- */
typedef int cudaError_t;                 /* enum cudaError; 0 = cudaSuccess */
typedef void *cudaStream_t;              /* struct CUstream_st *; NULL = legacy default stream */
typedef void *cudaEvent_t;               /* struct CUevent_st * */
typedef int CUresult;                    /* enum cudaError_enum; 0 = CUDA_SUCCESS */
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream;
typedef int cublasStatus_t;              /* 0 = CUBLAS_STATUS_SUCCESS */
typedef void *cublasHandle_t;
typedef int cusparseStatus_t;            /* 0 = CUSPARSE_STATUS_SUCCESS */

static struct {
    cudaError_t (*GetDeviceCount)(int *);
    cudaError_t (*Malloc)(void **, size_t);
    cudaError_t (*Free)(void *);
    cudaError_t (*Memcpy)(void *, const void *, size_t, int);
    cudaError_t (*Memset)(void *, int, size_t);
    cudaError_t (*DeviceSynchronize)(void);
    cudaError_t (*StreamSynchronize)(cudaStream_t);
    cudaError_t (*RuntimeGetVersion)(int *);
    cudaError_t (*DriverGetVersion)(int *);
    cudaError_t (*GetLastError)(void);
    const char *(*GetErrorString)(cudaError_t);
    cudaError_t (*EventCreate)(cudaEvent_t *);
    cudaError_t (*EventRecord)(cudaEvent_t, cudaStream_t);
    cudaError_t (*EventSynchronize)(cudaEvent_t);
    cudaError_t (*EventElapsedTime)(float *, cudaEvent_t, cudaEvent_t);
    cudaError_t (*EventDestroy)(cudaEvent_t);
} rt;

static struct {
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*CtxGetCurrent)(CUcontext *);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void **, void **);
    CUresult (*GetErrorString)(CUresult, const char **);
} drv;

static struct {
    cublasStatus_t (*Create)(cublasHandle_t *);
    cublasStatus_t (*Sgemm)(cublasHandle_t, int, int, int, int, int, const float *, const float *, int,
                            const float *, int, const float *, float *, int);
    /* cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
     * cublasComputeType_t, cublasGemmAlgo_t); the enums are ints */
    cublasStatus_t (*GemmEx)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, int, const void *, int, int,
                             const void *, void *, int, int, int, int);
    /* cublasGemmStridedBatchedEx: GemmEx's arguments with a long long stride after each matrix's leading dimension
     * and the batch count before the compute type */
    cublasStatus_t (*GemmStridedBatchedEx)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, int, long long,
                                           const void *, int, int, long long, const void *, void *, int, int, long long, int, int, int);
    const char *(*GetStatusString)(cublasStatus_t);   /* optional (cuBLAS >= 11.4) */
} blas;
/* cublasComputeType_t and cublasGemmAlgo_t values (cublas_api.h; gpu/decl_check.c asserts them) */
#define CUBLAS_COMPUTE_32F 68
#define CUBLAS_COMPUTE_32F_FAST_TF32 77
#define CUBLAS_GEMM_DEFAULT (-1)

/* cuSPARSELt (>= 0.6): every opaque struct is passed by pointer; we give each a zeroed OPQ-byte buffer, larger
 * than the header's declared size (13072 bytes in 0.6.2; gpu/decl_check.c asserts the bound on the device). */
#define OPQ 32768
static struct {
    cusparseStatus_t (*Init)(void *handle);
    cusparseStatus_t (*Destroy)(const void *handle);
    cusparseStatus_t (*GetVersion)(const void *handle, int *version);
    cusparseStatus_t (*DenseDescriptorInit)(const void *handle, void *mat, int64_t rows, int64_t cols, int64_t ld,
                                            uint32_t alignment, int valueType, int order);
    cusparseStatus_t (*StructuredDescriptorInit)(const void *handle, void *mat, int64_t rows, int64_t cols, int64_t ld,
                                                 uint32_t alignment, int valueType, int order, int sparsity);
    cusparseStatus_t (*MatDescriptorDestroy)(const void *mat);
    cusparseStatus_t (*MatmulDescriptorInit)(const void *handle, void *mm, int opA, int opB, const void *matA,
                                             const void *matB, const void *matC, const void *matD, int computeType);
    cusparseStatus_t (*MatmulAlgSelectionInit)(const void *handle, void *alg, const void *mm, int algId);
    cusparseStatus_t (*MatmulPlanInit)(const void *handle, void *plan, const void *mm, const void *alg);
    cusparseStatus_t (*MatmulGetWorkspace)(const void *handle, const void *plan, size_t *workspaceSize);
    cusparseStatus_t (*SpMMACompressedSize)(const void *handle, const void *plan, size_t *compressedSize,
                                            size_t *compressBufferSize);
    cusparseStatus_t (*SpMMACompress)(const void *handle, const void *plan, const void *dense, void *compressed,
                                      void *buffer, cudaStream_t stream);
    cusparseStatus_t (*Matmul)(const void *handle, const void *plan, const void *alpha, const void *dA, const void *dB,
                               const void *beta, const void *dC, void *dD, void *workspace, cudaStream_t *streams,
                               int32_t numStreams);
    cusparseStatus_t (*MatmulPlanDestroy)(const void *plan);
    const char *(*GetErrorString)(cusparseStatus_t);   /* optional */
    cusparseStatus_t (*MatmulSearch)(const void *handle, void *plan, const void *alpha, const void *dA, const void *dB,
                                     const void *beta, const void *dC, void *dD, void *workspace, cudaStream_t *streams,
                                     int32_t numStreams);   /* optional */
} lt;

/* ---- errors (the per-thread message lives in cuda_ops.c) ---- */
#define last_err fst_cuda_err
/* An argument refused before any CUDA call: its own message (the thread's last one described an earlier failure). */
#define REFUSE(code, ...) do { snprintf(last_err, sizeof last_err, __VA_ARGS__); return (code); } while (0)
#define fail fst_cuda_fail

static const char *rt_str(cudaError_t e) { const char *s = rt.GetErrorString ? rt.GetErrorString(e) : NULL; return s ? s : "unknown error"; }
static const char *drv_str(CUresult e) { const char *s = NULL; if (drv.GetErrorString) drv.GetErrorString(e, &s); return s ? s : "unknown error"; }
static const char *blas_str(cublasStatus_t e) { const char *s = blas.GetStatusString ? blas.GetStatusString(e) : NULL; return s ? s : "see cublasStatus_t"; }
static const char *lt_str(cusparseStatus_t e) { const char *s = lt.GetErrorString ? lt.GetErrorString(e) : NULL; return s ? s : "see cusparseStatus_t"; }

#define RT(call, what, ...) do { cudaError_t e_ = (call); if (e_ != 0) return fail(what ": %s (cudaError %d)", ##__VA_ARGS__, rt_str(e_), e_); } while (0)
#define DRV(call, what, ...) do { CUresult e_ = (call); if (e_ != 0) return fail(what ": %s (CUresult %d)", ##__VA_ARGS__, drv_str(e_), e_); } while (0)

/* ---- library search ---- */
#define MAXDIRS 64
static char *dirs[MAXDIRS];
static int ndirs;
static char searched[1024];   /* human-readable list of the places searched, for messages */

static void add_dir(const char *d) {
    if (!d || !*d || ndirs == MAXDIRS) return;
    for (int i = 0; i < ndirs; i++) if (!strcmp(dirs[i], d)) return;
    dirs[ndirs++] = strdup(d);
}

static void add_glob(const char *pattern) {
    glob_t g;
    if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) add_dir(g.gl_pathv[i]);
        globfree(&g);
    }
}

/* Python wheels (nvidia-*-cu13, nvidia-cusparselt-cu13, ...) install their libraries under
 * <prefix>/lib/python3.X/{site,dist}-packages/nvidia/<package>/lib (CUDA 13 wheels: nvidia/cu13/lib). */
static void add_wheel_dirs(const char *prefix) {
    if (!prefix || !*prefix) return;
    static const char *const tails[] = { "/lib/python3*/site-packages/nvidia/*/lib", "/lib/python3*/dist-packages/nvidia/*/lib",
                                         "/lib64/python3*/site-packages/nvidia/*/lib" };
    char buf[512];
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        snprintf(buf, sizeof buf, "%s%s", prefix, tails[i]);
        add_glob(buf);
    }
}

static void build_search(const char *extra, int defaults) {
    size_t n = 0;
    searched[0] = 0;
    if (extra && *extra) {
        char *copy = strdup(extra), *save = NULL;
        for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) add_dir(t);
        free(copy);
        n += (size_t)snprintf(searched + n, sizeof searched - n, "FST4J_CUDA_LIB_DIR (%s)", extra);
    }
    if (!defaults) {
        if (n == 0) snprintf(searched, sizeof searched, "nowhere (FST4J_CUDA_LIB_DIR empty, default search off)");
        else snprintf(searched + n, sizeof searched - n, " only (default search off)");
        return;
    }
    add_dir("/usr/local/cuda/lib64");
    add_glob("/usr/local/cuda-1[3-9]*/lib64");
    add_glob("/usr/local/cuda-1[3-9]*/targets/x86_64-linux/lib");
    add_wheel_dirs(getenv("VIRTUAL_ENV"));
    add_wheel_dirs(getenv("CONDA_PREFIX"));
    add_wheel_dirs("/usr/local");
    add_wheel_dirs("/usr");
    add_wheel_dirs("/opt/conda");
    const char *home = getenv("HOME");
    if (home) { char b[400]; snprintf(b, sizeof b, "%s/.local", home); add_wheel_dirs(b); }
    snprintf(searched + n, sizeof searched - n, "%sLD_LIBRARY_PATH, ld.so.cache, /usr/local/cuda/lib64, "
             "/usr/local/cuda-13*/lib64 and python3 site-packages nvidia/*/lib (%d folders in all)", n ? ", " : "", ndirs);
}

/* dlopen the first of names found in the search folders, else through the dynamic linker's own search.
 * Records the folder in where (may be NULL). */
static void *open_lib(const char *const *names, int nnames, int defaults, int flags, char *where, size_t wsize) {
    int nextra = ndirs;
    for (int i = 0; i < nextra; i++)
        for (int k = 0; k < nnames; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[i], names[k]);
            void *h = dlopen(path, flags);
            if (h) { if (where) snprintf(where, wsize, "%s", dirs[i]); return h; }
        }
    if (defaults)
        for (int k = 0; k < nnames; k++) {
            void *h = dlopen(names[k], flags);
            if (h) { if (where) *where = 0; return h; }
        }
    return NULL;
}

#define SYM(lib, tbl, field, name) do { *(void **)&tbl.field = dlsym(lib, name); \
    if (!tbl.field) { snprintf(status, sizeof status, "%s has no symbol %s", libname, name); return FST_EUNAVAIL; } } while (0)
#define OPT_SYM(lib, tbl, field, name) (*(void **)&tbl.field = dlsym(lib, name))

/* ---- initialisation ---- */
static CUfunction kernels[FST_N_KERNELS];
static CUcontext ctx;
static char status[1024] = "not initialised";
static char rt_dir[512];
static int init_rc = 1;   /* 1 = not yet */
static int search_defaults;
/* FST4J_CUDA_SYNC=1: synchronise after every launch, so that a fault names its kernel (debugging; slow) */
static int sync_launches;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

const char *fst_cuda_status(void) { return status; }
const char *fst_cuda_runtime_path(void) { return rt_dir; }

static int do_init(const char *extra, int defaults) {
    search_defaults = defaults;
    const char *sync_env = getenv("FST4J_CUDA_SYNC");
    sync_launches = sync_env && *sync_env && strcmp(sync_env, "0") != 0;
    build_search(extra, defaults);
    static const char *const rt_names[] = { "libcudart.so.13", "libcudart.so.12", "libcudart.so" };
    const char *libname = "libcudart.so.13";
    void *h = open_lib(rt_names, 3, defaults, RTLD_NOW | RTLD_GLOBAL, rt_dir, sizeof rt_dir);
    if (!h) { snprintf(status, sizeof status, "libcudart.so.13 not found in %s", searched); return FST_EUNAVAIL; }
    SYM(h, rt, GetDeviceCount, "cudaGetDeviceCount");
    SYM(h, rt, Malloc, "cudaMalloc");
    SYM(h, rt, Free, "cudaFree");
    SYM(h, rt, Memcpy, "cudaMemcpy");
    SYM(h, rt, Memset, "cudaMemset");
    SYM(h, rt, DeviceSynchronize, "cudaDeviceSynchronize");
    SYM(h, rt, StreamSynchronize, "cudaStreamSynchronize");
    SYM(h, rt, RuntimeGetVersion, "cudaRuntimeGetVersion");
    SYM(h, rt, DriverGetVersion, "cudaDriverGetVersion");
    SYM(h, rt, GetLastError, "cudaGetLastError");
    SYM(h, rt, GetErrorString, "cudaGetErrorString");
    SYM(h, rt, EventCreate, "cudaEventCreate");
    SYM(h, rt, EventRecord, "cudaEventRecord");
    SYM(h, rt, EventSynchronize, "cudaEventSynchronize");
    SYM(h, rt, EventElapsedTime, "cudaEventElapsedTime");
    SYM(h, rt, EventDestroy, "cudaEventDestroy");
    int count = 0;
    cudaError_t e = rt.GetDeviceCount(&count);
    if (e != 0) {
        void *drv_probe = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
        if (!drv_probe) drv_probe = dlopen("libcuda.so.1", RTLD_LAZY);
        snprintf(status, sizeof status, "no CUDA device (cudaGetDeviceCount failed: %s, cudaError %d%s; libcudart from %s)",
                 rt_str(e), e, drv_probe ? "" : "; the NVIDIA driver library libcuda.so.1 is not installed",
                 *rt_dir ? rt_dir : "the dynamic linker's search");
        return FST_EUNAVAIL;
    }
    if (count == 0) { snprintf(status, sizeof status, "no CUDA device (cudaGetDeviceCount returned 0)"); return FST_EUNAVAIL; }
    e = rt.Free(NULL);   /* creates (retains) the primary context of device 0 */
    if (e != 0) { snprintf(status, sizeof status, "CUDA context creation failed (cudaFree(0): %s, cudaError %d)", rt_str(e), e); return FST_EUNAVAIL; }

    libname = "libcuda.so.1";
    void *d = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!d) { snprintf(status, sizeof status, "libcuda.so.1 (NVIDIA driver) not found: %s", dlerror()); return FST_EUNAVAIL; }
    SYM(d, drv, Init, "cuInit");
    SYM(d, drv, DeviceGet, "cuDeviceGet");
    SYM(d, drv, DeviceGetName, "cuDeviceGetName");
    SYM(d, drv, DeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(d, drv, DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(d, drv, CtxGetCurrent, "cuCtxGetCurrent");
    SYM(d, drv, CtxSetCurrent, "cuCtxSetCurrent");
    SYM(d, drv, ModuleLoadData, "cuModuleLoadData");
    SYM(d, drv, ModuleGetFunction, "cuModuleGetFunction");
    SYM(d, drv, LaunchKernel, "cuLaunchKernel");
    SYM(d, drv, GetErrorString, "cuGetErrorString");
    CUresult r;
    CUdevice dev;
    CUmodule mod;
    if ((r = drv.Init(0)) != 0 || (r = drv.DeviceGet(&dev, 0)) != 0 || (r = drv.DevicePrimaryCtxRetain(&ctx, dev)) != 0
        || (r = drv.CtxSetCurrent(ctx)) != 0) {
        snprintf(status, sizeof status, "CUDA driver initialisation failed: %s (CUresult %d)", drv_str(r), r);
        return FST_EUNAVAIL;
    }
    if ((r = drv.ModuleLoadData(&mod, fst_cuda_fatbin)) != 0) {
        snprintf(status, sizeof status, "cannot load the fst4j kernels (built for sm_90a + compute_90 PTX) on this device: "
                 "cuModuleLoadData: %s (CUresult %d)", drv_str(r), r);
        return FST_EUNAVAIL;
    }
    for (int k = 0; k < FST_N_KERNELS; k++)
        if ((r = drv.ModuleGetFunction(&kernels[k], mod, fst_cuda_kernel_name(k))) != 0) {
            snprintf(status, sizeof status, "kernel %s missing from the fatbin: %s (CUresult %d)", fst_cuda_kernel_name(k), drv_str(r), r);
            return FST_EUNAVAIL;
        }
    char name[256] = "?";
    int major = 0, minor = 0, rtv = 0, drvv = 0;
    drv.DeviceGetName(name, sizeof name, dev);
    drv.DeviceGetAttribute(&major, 75, dev);   /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    drv.DeviceGetAttribute(&minor, 76, dev);   /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR */
    rt.RuntimeGetVersion(&rtv);
    rt.DriverGetVersion(&drvv);
    snprintf(status, sizeof status, "ok: %s (sm_%d%d), %d device(s), runtime %d, driver %d, libcudart from %s", name, major, minor,
             count, rtv, drvv, *rt_dir ? rt_dir : "the dynamic linker's search");
    return FST_OK;
}

int fst_cuda_init(const char *extra_dirs, int defaults) {
    pthread_mutex_lock(&init_lock);
    if (init_rc == 1) init_rc = do_init(extra_dirs, defaults);
    int rc = init_rc;
    pthread_mutex_unlock(&init_lock);
    if (rc != FST_OK) snprintf(last_err, sizeof last_err, "%s", status);
    return rc;
}

int fst_backend_ready(void) {
    if (init_rc != FST_OK) {
        snprintf(last_err, sizeof last_err, "%s", init_rc == 1 ? "CUDA not initialised (call fst_cuda_init first)" : status);
        return FST_EUNAVAIL;
    }
    return FST_OK;
}

/* ---- memory ---- */
int fst_cuda_device_count(int *count) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (!count) REFUSE(FST_ENULL, "fst_cuda_device_count: null pointer (count)");
    RT(rt.GetDeviceCount(count), "cudaGetDeviceCount");
    return FST_OK;
}
int fst_cuda_malloc(void **p, size_t bytes) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (!p) REFUSE(FST_ENULL, "fst_cuda_malloc: null pointer (p)");
    RT(rt.Malloc(p, bytes ? bytes : 1), "cudaMalloc(%zu)", bytes);
    return FST_OK;
}
int fst_cuda_free(void *p) {
    int rc = fst_backend_ready(); if (rc) return rc;
    RT(rt.Free(p), "cudaFree");
    return FST_OK;
}
int fst_cuda_memcpy(void *dst, const void *src, size_t bytes, int kind) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (kind < 1 || kind > 3) REFUSE(FST_EINVAL, "fst_cuda_memcpy: kind %d is not 1 (h2d), 2 (d2h) or 3 (d2d)", kind);
    if (bytes == 0) return FST_OK;
    if (!dst || !src) REFUSE(FST_ENULL, "fst_cuda_memcpy: null pointer (%s)", !dst ? "dst" : "src");
    static const char *const kinds[4] = { "", "h2d", "d2h", "d2d" };
    const double t0 = fst_kprof_begin();
    RT(rt.Memcpy(dst, src, bytes, kind), "cudaMemcpy(%zu bytes, kind %d)", bytes, kind);
    fst_kprof_end("cudaMemcpy", kinds[kind], (int64_t)bytes, t0);
    return FST_OK;
}
int fst_cuda_memset(void *p, int value, size_t bytes) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (bytes == 0) return FST_OK;
    if (!p) REFUSE(FST_ENULL, "fst_cuda_memset: null pointer (p)");
    const double t0 = fst_kprof_begin();
    RT(rt.Memset(p, value, bytes), "cudaMemset(%zu)", bytes);
    fst_kprof_end("cudaMemset", NULL, (int64_t)bytes, t0);
    return FST_OK;
}
int fst_cuda_sync(void) {
    int rc = fst_backend_ready(); if (rc) return rc;
    RT(rt.DeviceSynchronize(), "cudaDeviceSynchronize (an earlier kernel or copy failed)");
    return FST_OK;
}

/* ---- events (timing on the legacy default stream) ---- */
int fst_cuda_event_create(void **event) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (!event) { snprintf(last_err, sizeof last_err, "fst_cuda_event_create: null pointer (event)"); return FST_ENULL; }
    RT(rt.EventCreate((cudaEvent_t *)event), "cudaEventCreate");
    return FST_OK;
}
int fst_cuda_event_record(void *event) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (!event) { snprintf(last_err, sizeof last_err, "fst_cuda_event_record: null pointer (event)"); return FST_ENULL; }
    RT(rt.EventRecord(event, NULL), "cudaEventRecord");
    return FST_OK;
}
int fst_cuda_event_elapsed_ms(void *start, void *stop, float *ms) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (!start || !stop || !ms) { snprintf(last_err, sizeof last_err, "fst_cuda_event_elapsed_ms: null pointer (start, stop or ms)"); return FST_ENULL; }
    RT(rt.EventSynchronize(stop), "cudaEventSynchronize (stop event; an earlier kernel or copy may have failed)");
    cudaError_t e = rt.EventElapsedTime(ms, start, stop);
    if (e != 0) {
        rt.GetLastError();   /* not sticky: clear it so that it does not resurface at a later call */
        return fail("cudaEventElapsedTime: %s (cudaError %d)", rt_str(e), e);
    }
    return FST_OK;
}
int fst_cuda_event_destroy(void *event) {
    int rc = fst_backend_ready(); if (rc) return rc;
    if (!event) return FST_OK;
    RT(rt.EventDestroy(event), "cudaEventDestroy");
    return FST_OK;
}

/* ---- kernel launches (cuda_backend.h): legacy default stream ---- */
int fst_backend_emulated(void) { return 0; }
int fst_cuda_emu_order(int order, int64_t seed) {
    (void)order; (void)seed;
    snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_emu_order: the device has no thread order to choose (emulator only)");
    return FST_EUNAVAIL;
}

int fst_backend_launch(int k, int64_t blocks, int threads, int smem, const void *args) {
    CUcontext cur = NULL;
    if (drv.CtxGetCurrent(&cur) != 0 || cur != ctx) DRV(drv.CtxSetCurrent(ctx), "cuCtxSetCurrent");
    void *params[] = { (void *)args };   /* one parameter: the kernel's argument struct, by value */
    DRV(drv.LaunchKernel(kernels[k], (unsigned)blocks, 1, 1, (unsigned)threads, 1, 1, (unsigned)smem, NULL, params, NULL), "cuLaunchKernel(%s, %lld blocks)",
        fst_cuda_kernel_name(k), (long long)blocks);
    if (sync_launches)
        RT(rt.DeviceSynchronize(), "%s (%lld blocks) failed on the device (FST4J_CUDA_SYNC=1)", fst_cuda_kernel_name(k), (long long)blocks);
    return FST_OK;
}

/* Device pointers cannot be checked cheaply here (cuPointerGetAttributes per argument would cost more than a small
 * kernel); the emulator checks every range instead, and the Java side bounds-checks before calling. */
int fst_backend_owns(const void *p, size_t bytes) { (void)p; (void)bytes; return 1; }

/* ---- cuBLAS ---- */
static char blas_status[1024] = "not loaded";
static int blas_rc = 1;
static cublasHandle_t blas_handle;

const char *fst_cuda_blas_status(void) { return blas_status; }

static int load_blas(void) {
    static const char *const lt_names[] = { "libcublasLt.so.13", "libcublasLt.so.12" };
    static const char *const names[] = { "libcublas.so.13", "libcublas.so.12" };
    const char *libname = "libcublas.so.13";
    char where[512];
    /* libcublas needs libcublasLt: load it first, globally, in case libcublas's RUNPATH does not find it */
    open_lib(lt_names, 2, search_defaults, RTLD_NOW | RTLD_GLOBAL, NULL, 0);
    void *h = open_lib(names, 2, search_defaults, RTLD_NOW | RTLD_GLOBAL, where, sizeof where);
    if (!h) { snprintf(blas_status, sizeof blas_status, "libcublas.so.13 not found in %s", searched); return FST_EUNAVAIL; }
    char *status = blas_status;   /* for SYM */
    (void)status;
#undef SYM
#define SYM(lib, tbl, field, name) do { *(void **)&tbl.field = dlsym(lib, name); \
    if (!tbl.field) { snprintf(blas_status, sizeof blas_status, "%s has no symbol %s", libname, name); return FST_EUNAVAIL; } } while (0)
    SYM(h, blas, Create, "cublasCreate_v2");
    SYM(h, blas, Sgemm, "cublasSgemm_v2");
    SYM(h, blas, GemmEx, "cublasGemmEx");
    SYM(h, blas, GemmStridedBatchedEx, "cublasGemmStridedBatchedEx");
    OPT_SYM(h, blas, GetStatusString, "cublasGetStatusString");
    cublasStatus_t s = blas.Create(&blas_handle);
    if (s != 0) { snprintf(blas_status, sizeof blas_status, "cublasCreate failed: %s (status %d)", blas_str(s), s); return FST_EUNAVAIL; }
    snprintf(blas_status, sizeof blas_status, "ok: libcublas from %s", *where ? where : "the dynamic linker's search");
    return FST_OK;
}

static int blas_ready(void) {
    int rc = fst_backend_ready(); if (rc) return rc;
    pthread_mutex_lock(&init_lock);
    if (blas_rc == 1) blas_rc = load_blas();
    rc = blas_rc;
    pthread_mutex_unlock(&init_lock);
    if (rc) snprintf(last_err, sizeof last_err, "%s", blas_status);
    return rc;
}

int fst_cuda_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    int rc = blas_ready(); if (rc) return rc;
    if (M < 0 || N < 0 || K < 0 || M > 0x7fffffff || N > 0x7fffffff || K > 0x7fffffff)
        REFUSE(FST_EINVAL, "fst_cuda_sgemm: sizes %lld x %lld x %lld outside [0, 2^31 - 1] (cuBLAS takes int)", (long long)M, (long long)N, (long long)K);
    if (lda > 0x7fffffff || ldb > 0x7fffffff || ldc > 0x7fffffff)
        REFUSE(FST_EINVAL, "fst_cuda_sgemm: a leading dimension past 2^31 - 1 (cuBLAS takes int)");
    if (lda < (transA ? M : K) || ldb < (transB ? K : N) || ldc < N || lda < 1 || ldb < 1 || ldc < 1)
        REFUSE(FST_EINVAL, "fst_cuda_sgemm: leading dimensions %lld, %lld, %lld too small for %lld x %lld x %lld", (long long)lda,
               (long long)ldb, (long long)ldc, (long long)M, (long long)N, (long long)K);
    if (M == 0 || N == 0) return FST_OK;
    if (!A || !B || !C) REFUSE(FST_ENULL, "fst_cuda_sgemm: null pointer");
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags */
    const double t0 = fst_kprof_begin();
    cublasStatus_t s = blas.Sgemm(blas_handle, transB ? 1 : 0, transA ? 1 : 0, (int)N, (int)M, (int)K, &alpha, B, (int)ldb,
                                  A, (int)lda, &beta, C, (int)ldc);
    if (s == 0) fst_kprof_end("cublasSgemm", transA ? (transB ? "TT" : "TN") : (transB ? "NT" : "NN"), M * N * K, t0);
    if (s != 0) return fail("cublasSgemm_v2(M=%lld, N=%lld, K=%lld): %s (status %d)", (long long)M, (long long)N, (long long)K, blas_str(s), s);
    return FST_OK;
}

int fst_cuda_gemm_ex(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int atype, int64_t lda,
                     const void *B, int btype, int64_t ldb, float beta, void *C, int ctype, int64_t ldc, int tf32) {
    int rc = blas_ready(); if (rc) return rc;
    int nothing = 0;
    if ((rc = fst_gemm_ex_check("fst_cuda_gemm_ex", transA, transB, M, N, K, A, atype, lda, B, btype, ldb, C, ctype, ldc, tf32, &nothing)) != 0) return rc;
    if (nothing) return FST_OK;
    const int compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags */
    const double t0 = fst_kprof_begin();
    cublasStatus_t s = blas.GemmEx(blas_handle, transB ? 1 : 0, transA ? 1 : 0, (int)N, (int)M, (int)K, &alpha, B, btype, (int)ldb,
                                   A, atype, (int)lda, &beta, C, ctype, (int)ldc, compute, CUBLAS_GEMM_DEFAULT);
    if (s == 0) fst_kprof_end("cublasGemmEx", transA ? (transB ? "TT" : "TN") : (transB ? "NT" : "NN"), M * N * K, t0);
    if (s != 0)
        return fail("cublasGemmEx(M=%lld, N=%lld, K=%lld, types %d/%d/%d, compute %d): %s (status %d)", (long long)M, (long long)N,
                    (long long)K, atype, btype, ctype, compute, blas_str(s), s);
    return FST_OK;
}

int fst_cuda_gemm_ex_batched(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int atype,
                             int64_t lda, int64_t strideA, const void *B, int btype, int64_t ldb, int64_t strideB, float beta,
                             void *C, int ctype, int64_t ldc, int64_t strideC, int64_t batch, int tf32) {
    int rc = blas_ready(); if (rc) return rc;
    int nothing = 0;
    if ((rc = fst_gemm_ex_batched_check(transA, transB, M, N, K, A, atype, lda, strideA, B, btype, ldb, strideB, C, ctype, ldc, strideC,
                                        batch, tf32, &nothing)) != 0) return rc;
    if (nothing) return FST_OK;
    const int compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    /* row-major, as fst_cuda_gemm_ex: the operands swapped, each with its stride */
    const double t0 = fst_kprof_begin();
    cublasStatus_t s = blas.GemmStridedBatchedEx(blas_handle, transB ? 1 : 0, transA ? 1 : 0, (int)N, (int)M, (int)K, &alpha, B, btype,
                                                 (int)ldb, (long long)strideB, A, atype, (int)lda, (long long)strideA, &beta, C, ctype,
                                                 (int)ldc, (long long)strideC, (int)batch, compute, CUBLAS_GEMM_DEFAULT);
    if (s == 0) fst_kprof_end("cublasGemmStridedBatchedEx", transA ? (transB ? "TT" : "TN") : (transB ? "NT" : "NN"), M * N * K * batch, t0);
    if (s != 0)
        return fail("cublasGemmStridedBatchedEx(M=%lld, N=%lld, K=%lld, batch %lld, types %d/%d/%d, compute %d): %s (status %d)",
                    (long long)M, (long long)N, (long long)K, (long long)batch, atype, btype, ctype, compute, blas_str(s), s);
    return FST_OK;
}

/* ---- cuSPARSELt ---- */
static char lt_status[1024] = "not loaded";
static int lt_rc = 1;
const char *fst_cuda_splt_status(void) { return lt_status; }

/* One cuSPARSELt handle per host thread (the cuSPARSE family's rule: a handle must not be used by two threads at
 * once), made on the thread's first call and destroyed when the thread exits. A plan keeps the handle it was made
 * with; fst4j.tensor.CudaSpmm caches plans per thread, so a plan is only used by the thread that made it. */
static pthread_key_t lt_key;
static pthread_once_t lt_key_once = PTHREAD_ONCE_INIT;
static void lt_handle_free(void *h) { if (h) { lt.Destroy(h); free(h); } }
static void lt_key_init(void) { (void)pthread_key_create(&lt_key, lt_handle_free); }

/* This thread's handle, or NULL with why in *err (an allocation or cusparseLtInit failure). */
static void *lt_thread_handle(char *err, size_t errlen) {
    pthread_once(&lt_key_once, lt_key_init);
    void *h = pthread_getspecific(lt_key);
    if (h) return h;
    h = calloc(1, OPQ);
    if (!h) { snprintf(err, errlen, "out of host memory for a cuSPARSELt handle"); return NULL; }
    cusparseStatus_t s = lt.Init(h);
    if (s != 0) { snprintf(err, errlen, "cusparseLtInit failed: %s (status %d)", lt_str(s), s); free(h); return NULL; }
    if (pthread_setspecific(lt_key, h) != 0) { lt.Destroy(h); free(h); snprintf(err, errlen, "pthread_setspecific failed"); return NULL; }
    return h;
}

static int load_lt(void) {
    static const char *const names[] = { "libcusparseLt.so.0" };
    const char *libname = "libcusparseLt.so.0";
    char where[512];
    void *h = open_lib(names, 1, search_defaults, RTLD_NOW | RTLD_GLOBAL, where, sizeof where);
    if (!h) { snprintf(lt_status, sizeof lt_status, "libcusparseLt.so.0 not found in %s", searched); return FST_EUNAVAIL; }
#undef SYM
#define SYM(lib, tbl, field, name) do { *(void **)&tbl.field = dlsym(lib, name); \
    if (!tbl.field) { snprintf(lt_status, sizeof lt_status, "%s has no symbol %s", libname, name); return FST_EUNAVAIL; } } while (0)
    SYM(h, lt, Init, "cusparseLtInit");
    SYM(h, lt, Destroy, "cusparseLtDestroy");
    SYM(h, lt, GetVersion, "cusparseLtGetVersion");
    SYM(h, lt, DenseDescriptorInit, "cusparseLtDenseDescriptorInit");
    SYM(h, lt, StructuredDescriptorInit, "cusparseLtStructuredDescriptorInit");
    SYM(h, lt, MatDescriptorDestroy, "cusparseLtMatDescriptorDestroy");
    SYM(h, lt, MatmulDescriptorInit, "cusparseLtMatmulDescriptorInit");
    SYM(h, lt, MatmulAlgSelectionInit, "cusparseLtMatmulAlgSelectionInit");
    SYM(h, lt, MatmulPlanInit, "cusparseLtMatmulPlanInit");
    SYM(h, lt, MatmulGetWorkspace, "cusparseLtMatmulGetWorkspace");
    SYM(h, lt, SpMMACompressedSize, "cusparseLtSpMMACompressedSize");
    SYM(h, lt, SpMMACompress, "cusparseLtSpMMACompress");
    SYM(h, lt, Matmul, "cusparseLtMatmul");
    OPT_SYM(h, lt, MatmulSearch, "cusparseLtMatmulSearch");
    SYM(h, lt, MatmulPlanDestroy, "cusparseLtMatmulPlanDestroy");
    if (!OPT_SYM(h, lt, GetErrorString, "cusparseLtGetErrorString")) OPT_SYM(h, lt, GetErrorString, "cusparseLtGetErrorName");
    void *handle = lt_thread_handle(lt_status, sizeof lt_status);
    if (!handle) return FST_EUNAVAIL;
    int version = 0;
    lt.GetVersion(handle, &version);
    /* the declarations above (4-argument cusparseLtSpMMACompressedSize, compress buffer) are those of 0.6+ */
    if (version < 600) {
        snprintf(lt_status, sizeof lt_status, "cuSPARSELt %d found in %s, need >= 0.6.0 (600)", version, *where ? where : "system");
        return FST_EUNAVAIL;
    }
    snprintf(lt_status, sizeof lt_status, "ok: cuSPARSELt %d from %s", version, *where ? where : "the dynamic linker's search");
    return FST_OK;
}

static int lt_ready(void) {
    int rc = fst_backend_ready(); if (rc) return rc;
    pthread_mutex_lock(&init_lock);
    if (lt_rc == 1) lt_rc = load_lt();
    rc = lt_rc;
    pthread_mutex_unlock(&init_lock);
    if (rc) snprintf(last_err, sizeof last_err, "%s", lt_status);
    return rc;
}

typedef struct {
    unsigned char matA[OPQ], matB[OPQ], matC[OPQ], mm[OPQ], alg[OPQ], plan[OPQ];
    int plan_ok, descs;
    size_t sizes[3];
    int64_t M, N, K;
    int ab, cd;
    void *handle;   /* the creating thread's handle */
} lt_plan;

#define LT(call, what) do { cusparseStatus_t s_ = (call); if (s_ != 0) { fail("%s: %s (cusparseStatus %d)", what, lt_str(s_), s_); goto bad; } } while (0)

/* Picks the plan's kernel by timing the candidates (cusparseLtMatmulSearch) on scratch operands of its shape, once per
 * plan. Measured on an H200 (cuSPARSELt 0.8.0, gpu/splt_probe.cu): the default kernel ran ResNet-18's Eq. 1 shapes at
 * 0.38-0.88x of cuBLAS's dense bf16 GEMM, the searched one at 0.98-1.21x. The scratch is zeroed (kernel speed does not
 * depend on the values) and freed again; a failed allocation or search keeps the default kernel. FST4J_SPLT_SEARCH=0
 * switches it off. Returns 1 when a search ran.
 * Every scratch operand of the search gets SEARCH_SLACK bytes past its size: a candidate kernel may need a larger
 * compressed operand than the default one the sizes were queried for (compute-sanitizer on an H100, cuSPARSELt 0.8.0:
 * a 64x256x64-tile candidate read 512 bytes at offset 256 of a 512-byte compressed operand of a small product; where
 * that read left mapped memory, the context was lost and the next call failed with "illegal memory access"). */
#define SEARCH_SLACK ((size_t)1 << 20)
static int splt_search(lt_plan *p) {
    const char *env = getenv("FST4J_SPLT_SEARCH");
    if (!lt.MatmulSearch || (env && strcmp(env, "0") == 0)) return 0;
    const size_t bytes[4] = { p->sizes[0] + SEARCH_SLACK, (size_t)(p->K * p->N * fst_type_bytes(p->ab)) + SEARCH_SLACK,
                              (size_t)(p->M * p->N * fst_type_bytes(p->cd)) + SEARCH_SLACK, p->sizes[2] + SEARCH_SLACK };
    void *d[4] = { NULL, NULL, NULL, NULL };
    int ok = 1;
    for (int i = 0; i < 4 && ok; i++) ok = rt.Malloc(&d[i], bytes[i]) == 0 && rt.Memset(d[i], 0, bytes[i]) == 0;
    const float alpha = 1, beta = 0;
    if (ok) ok = lt.MatmulSearch(p->handle, p->plan, &alpha, d[0], d[1], &beta, d[2], d[2], d[3], NULL, 0) == 0;
    for (int i = 0; i < 4; i++) if (d[i]) rt.Free(d[i]);
    if (!ok && rt.GetLastError) rt.GetLastError();   /* a failed cudaMalloc is not sticky: do not let it resurface later */
    return ok;
}

int fst_cuda_splt_plan(int64_t M, int64_t N, int64_t K, int ab_type, int cd_type, void **plan, size_t sizes[3]) {
    int rc = lt_ready(); if (rc) return rc;
    if ((rc = fst_splt_check_plan(M, N, K, ab_type, cd_type)) != 0) return rc;
    if (!plan || !sizes) { snprintf(last_err, sizeof last_err, "fst_cuda_splt_plan: null pointer (plan or sizes)"); return FST_ENULL; }
    lt_plan *p = calloc(1, sizeof *p);
    if (!p) return fail("out of host memory for a cuSPARSELt plan");
    p->M = M; p->N = N; p->K = K; p->ab = ab_type; p->cd = cd_type;
    char herr[256];
    if (!(p->handle = lt_thread_handle(herr, sizeof herr))) { free(p); return fail("fst_cuda_splt_plan: %s", herr); }
    void *const lt_handle = p->handle;
    const int ROW = 2 /* CUSPARSE_ORDER_ROW */, NT = 0 /* CUSPARSE_OPERATION_NON_TRANSPOSE */, COMPUTE_32F = 2 /* 0.6+ */;
    LT(lt.StructuredDescriptorInit(lt_handle, p->matA, M, K, K, 16, ab_type, ROW, 0 /* 50 percent */),
       "cusparseLtStructuredDescriptorInit(A)");
    p->descs = 1;
    LT(lt.DenseDescriptorInit(lt_handle, p->matB, K, N, N, 16, ab_type, ROW), "cusparseLtDenseDescriptorInit(B)");
    p->descs = 2;
    LT(lt.DenseDescriptorInit(lt_handle, p->matC, M, N, N, 16, cd_type, ROW), "cusparseLtDenseDescriptorInit(C)");
    p->descs = 3;
    LT(lt.MatmulDescriptorInit(lt_handle, p->mm, NT, NT, p->matA, p->matB, p->matC, p->matC, COMPUTE_32F),
       "cusparseLtMatmulDescriptorInit");
    LT(lt.MatmulAlgSelectionInit(lt_handle, p->alg, p->mm, 0 /* CUSPARSELT_MATMUL_ALG_DEFAULT */), "cusparseLtMatmulAlgSelectionInit");
    LT(lt.MatmulPlanInit(lt_handle, p->plan, p->mm, p->alg), "cusparseLtMatmulPlanInit");
    p->plan_ok = 1;
    LT(lt.MatmulGetWorkspace(lt_handle, p->plan, &p->sizes[2]), "cusparseLtMatmulGetWorkspace");
    LT(lt.SpMMACompressedSize(lt_handle, p->plan, &p->sizes[0], &p->sizes[1]), "cusparseLtSpMMACompressedSize");
    if (splt_search(p)) {   /* the searched kernel may need other sizes */
        LT(lt.MatmulGetWorkspace(lt_handle, p->plan, &p->sizes[2]), "cusparseLtMatmulGetWorkspace (after the search)");
        LT(lt.SpMMACompressedSize(lt_handle, p->plan, &p->sizes[0], &p->sizes[1]), "cusparseLtSpMMACompressedSize (after the search)");
    }
    memcpy(sizes, p->sizes, sizeof p->sizes);
    *plan = p;
    return FST_OK;
bad:
    fst_cuda_splt_plan_free(p);
    return FST_ECUDA;
}

int fst_cuda_splt_compress(void *plan, const void *dense_a, void *compressed, void *buffer) {
    int rc = lt_ready(); if (rc) return rc;
    lt_plan *p = plan;
    const char *fn = "fst_cuda_splt_compress";
    if (!p) { snprintf(last_err, sizeof last_err, "%s: null pointer (plan)", fn); return FST_ENULL; }
    if ((rc = fst_splt_check_ptr(fn, "dense_a", dense_a, (size_t)(p->M * p->K * fst_type_bytes(p->ab)))) != 0
        || (rc = fst_splt_check_ptr(fn, "compressed", compressed, p->sizes[0])) != 0
        || (p->sizes[1] && (rc = fst_splt_check_ptr(fn, "buffer", buffer, p->sizes[1])) != 0)) return rc;
    const double t0 = fst_kprof_begin();
    LT(lt.SpMMACompress(p->handle, p->plan, dense_a, compressed, buffer, NULL), "cusparseLtSpMMACompress");
    fst_kprof_end("cusparseLtSpMMACompress", NULL, p->M * p->K, t0);
    return FST_OK;
bad:
    return FST_ECUDA;
}

int fst_cuda_splt_matmul(void *plan, float alpha, const void *compressed_a, const void *b, float beta, void *c, void *workspace) {
    int rc = lt_ready(); if (rc) return rc;
    lt_plan *p = plan;
    const char *fn = "fst_cuda_splt_matmul";
    if (!p) { snprintf(last_err, sizeof last_err, "%s: null pointer (plan)", fn); return FST_ENULL; }
    if ((rc = fst_splt_check_ptr(fn, "compressed_a", compressed_a, p->sizes[0])) != 0
        || (rc = fst_splt_check_ptr(fn, "b", b, (size_t)(p->K * p->N * fst_type_bytes(p->ab)))) != 0
        || (rc = fst_splt_check_ptr(fn, "c", c, (size_t)(p->M * p->N * fst_type_bytes(p->cd)))) != 0
        || (p->sizes[2] && (rc = fst_splt_check_ptr(fn, "workspace", workspace, p->sizes[2])) != 0)) return rc;
    const double t0 = fst_kprof_begin();
    LT(lt.Matmul(p->handle, p->plan, &alpha, compressed_a, b, &beta, c, c, workspace, NULL, 0), "cusparseLtMatmul");
    fst_kprof_end("cusparseLtMatmul", NULL, p->M * p->N * p->K, t0);
    return FST_OK;
bad:
    return FST_ECUDA;
}

int fst_cuda_splt_plan_free(void *plan) {
    lt_plan *p = plan;
    if (!p) return FST_OK;
    if (p->plan_ok) lt.MatmulPlanDestroy(p->plan);
    if (p->descs > 0) lt.MatDescriptorDestroy(p->matA);
    if (p->descs > 1) lt.MatDescriptorDestroy(p->matB);
    if (p->descs > 2) lt.MatDescriptorDestroy(p->matC);
    free(p);
    return FST_OK;
}
