/* Checks, against NVIDIA's real headers, the declarations that native-cuda/src/main/c/cuda.c makes for itself
 * (it is built without any CUDA header). Compiled by gpu/run.sh on the GPU machine, where the cuSPARSELt and
 * cuBLAS headers come with the Python wheels; on a machine with only the CUDA toolkit the runtime and driver
 * parts are checked and the others reported as skipped. A mismatch is a compile error naming the entry point. */
#include <stdio.h>
#include <stddef.h>
#include <stdalign.h>   /* cusparseLt.h (0.8) uses alignas, a C23 keyword, in C mode */
/* cusparse.h (included by cusparseLt.h) marks its legacy types deprecated; not ours to fix */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <library_types.h>

#ifdef __cplusplus
/* cuSPARSELt 0.8.0's header includes <cstddef>, so gpu/run.sh compiles this file as C++ when the C compile fails */
/* static_cast to a function pointer type compiles only where fn (or, for C++ overloads, one of them) has exactly it */
#define SAME(fn, type) static_assert(sizeof(static_cast<type>(&fn)) != 0, "declaration of " #fn " differs from cuda.c's")
#define _Static_assert static_assert
#else
#define SAME(fn, type) _Static_assert(__builtin_types_compatible_p(__typeof__(&fn), type), "declaration of " #fn " differs from cuda.c's")
#endif

/* none of the names cuda.c resolves with dlsym may be a macro for another symbol (_v2, _ptds, ...) */
#if defined(cudaGetDeviceCount) || defined(cudaMalloc) || defined(cudaFree) || defined(cudaMemcpy) || defined(cudaMemset) \
 || defined(cudaDeviceSynchronize) || defined(cudaStreamSynchronize) || defined(cudaGetErrorString) || defined(cudaGetLastError) \
 || defined(cudaEventCreate) || defined(cudaEventRecord) || defined(cudaEventSynchronize) || defined(cudaEventElapsedTime) \
 || defined(cudaEventDestroy)
#error "a CUDA runtime entry point used by cuda.c is a macro (remapped symbol)"
#endif
#if defined(cuInit) || defined(cuDeviceGet) || defined(cuDeviceGetName) || defined(cuDeviceGetAttribute) \
 || defined(cuDevicePrimaryCtxRetain) || defined(cuCtxGetCurrent) || defined(cuCtxSetCurrent) || defined(cuModuleLoadData) \
 || defined(cuModuleGetFunction) || defined(cuLaunchKernel) || defined(cuGetErrorString)
#error "a CUDA driver entry point used by cuda.c is a macro (remapped symbol)"
#endif

SAME(cudaGetDeviceCount, cudaError_t (*)(int *));
SAME(cudaMalloc, cudaError_t (*)(void **, size_t));
SAME(cudaFree, cudaError_t (*)(void *));
SAME(cudaMemcpy, cudaError_t (*)(void *, const void *, size_t, enum cudaMemcpyKind));
SAME(cudaMemset, cudaError_t (*)(void *, int, size_t));
SAME(cudaStreamSynchronize, cudaError_t (*)(cudaStream_t));
SAME(cudaGetErrorString, const char *(*)(cudaError_t));
/* events: cuda.c declares cudaEvent_t as void * (struct CUevent_st *) */
_Static_assert(sizeof(cudaEvent_t) == sizeof(void *), "cudaEvent_t is a pointer");
SAME(cudaEventCreate, cudaError_t (*)(cudaEvent_t *));
SAME(cudaEventRecord, cudaError_t (*)(cudaEvent_t, cudaStream_t));
SAME(cudaEventSynchronize, cudaError_t (*)(cudaEvent_t));
SAME(cudaEventElapsedTime, cudaError_t (*)(float *, cudaEvent_t, cudaEvent_t));
SAME(cudaEventDestroy, cudaError_t (*)(cudaEvent_t));
SAME(cuDeviceGetName, CUresult (*)(char *, int, CUdevice));
SAME(cuDeviceGetAttribute, CUresult (*)(int *, CUdevice_attribute, CUdevice));
SAME(cuDevicePrimaryCtxRetain, CUresult (*)(CUcontext *, CUdevice));
SAME(cuModuleLoadData, CUresult (*)(CUmodule *, const void *));
SAME(cuModuleGetFunction, CUresult (*)(CUfunction *, CUmodule, const char *));
SAME(cuLaunchKernel, CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **));
SAME(cuGetErrorString, CUresult (*)(CUresult, const char **));
_Static_assert(sizeof(enum cudaMemcpyKind) == sizeof(int) && cudaMemcpyHostToDevice == 1 && cudaMemcpyDeviceToHost == 2
               && cudaMemcpyDeviceToDevice == 3, "cudaMemcpyKind");
_Static_assert(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == 75 && CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == 76, "attributes");
_Static_assert(sizeof(cudaError_t) == sizeof(int) && sizeof(CUresult) == sizeof(int) && sizeof(CUdevice) == sizeof(int), "enums");
_Static_assert(CUDA_R_32F == 0 && CUDA_R_16F == 2 && CUDA_R_16BF == 14 && sizeof(cudaDataType) == sizeof(int), "cudaDataType");

#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
SAME(cublasCreate_v2, cublasStatus_t (*)(cublasHandle_t *));
SAME(cublasSgemm_v2, cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float *,
                                        const float *, int, const float *, int, const float *, float *, int));
_Static_assert(CUBLAS_OP_N == 0 && CUBLAS_OP_T == 1 && sizeof(cublasOperation_t) == sizeof(int), "cublasOperation_t");
#if defined(cublasGemmEx)
#error "cublasGemmEx is a macro (remapped symbol); cuda.c resolves the plain name"
#endif
SAME(cublasGemmEx, cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *, const void *,
                                      cudaDataType, int, const void *, cudaDataType, int, const void *, void *, cudaDataType, int,
                                      cublasComputeType_t, cublasGemmAlgo_t));
#if defined(cublasGemmStridedBatchedEx)
#error "cublasGemmStridedBatchedEx is a macro (remapped symbol); cuda.c resolves the plain name"
#endif
SAME(cublasGemmStridedBatchedEx, cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                                                    const void *, cudaDataType, int, long long int, const void *, cudaDataType, int,
                                                    long long int, const void *, void *, cudaDataType, int, long long int, int,
                                                    cublasComputeType_t, cublasGemmAlgo_t));
_Static_assert(CUBLAS_COMPUTE_32F == 68 && CUBLAS_COMPUTE_32F_FAST_TF32 == 77 && CUBLAS_GEMM_DEFAULT == -1
               && sizeof(cublasComputeType_t) == sizeof(int) && sizeof(cublasGemmAlgo_t) == sizeof(int), "cuBLAS GemmEx enum values");
#define HAVE_CUBLAS 1
#else
#define HAVE_CUBLAS 0
#endif

#if __has_include(<cusparseLt.h>)
#include <cusparseLt.h>
#define OPQ 32768
_Static_assert(sizeof(cusparseLtHandle_t) <= OPQ && sizeof(cusparseLtMatDescriptor_t) <= OPQ && sizeof(cusparseLtMatmulDescriptor_t) <= OPQ
               && sizeof(cusparseLtMatmulAlgSelection_t) <= OPQ && sizeof(cusparseLtMatmulPlan_t) <= OPQ, "opaque structs exceed cuda.c's OPQ");
_Static_assert(CUSPARSE_ORDER_ROW == 2 && CUSPARSE_OPERATION_NON_TRANSPOSE == 0 && CUSPARSELT_SPARSITY_50_PERCENT == 0
               && CUSPARSE_COMPUTE_32F == 2 && CUSPARSELT_MATMUL_ALG_DEFAULT == 0, "cuSPARSELt enum values");
SAME(cusparseLtInit, cusparseStatus_t (*)(cusparseLtHandle_t *));
SAME(cusparseLtDestroy, cusparseStatus_t (*)(const cusparseLtHandle_t *));
SAME(cusparseLtGetVersion, cusparseStatus_t (*)(const cusparseLtHandle_t *, int *));
SAME(cusparseLtDenseDescriptorInit, cusparseStatus_t (*)(const cusparseLtHandle_t *, cusparseLtMatDescriptor_t *, int64_t, int64_t, int64_t,
                                                         uint32_t, cudaDataType, cusparseOrder_t));
SAME(cusparseLtStructuredDescriptorInit, cusparseStatus_t (*)(const cusparseLtHandle_t *, cusparseLtMatDescriptor_t *, int64_t, int64_t,
                                                              int64_t, uint32_t, cudaDataType, cusparseOrder_t, cusparseLtSparsity_t));
SAME(cusparseLtMatDescriptorDestroy, cusparseStatus_t (*)(const cusparseLtMatDescriptor_t *));
SAME(cusparseLtMatmulDescriptorInit, cusparseStatus_t (*)(const cusparseLtHandle_t *, cusparseLtMatmulDescriptor_t *, cusparseOperation_t,
                                                          cusparseOperation_t, const cusparseLtMatDescriptor_t *, const cusparseLtMatDescriptor_t *,
                                                          const cusparseLtMatDescriptor_t *, const cusparseLtMatDescriptor_t *, cusparseComputeType));
SAME(cusparseLtMatmulAlgSelectionInit, cusparseStatus_t (*)(const cusparseLtHandle_t *, cusparseLtMatmulAlgSelection_t *,
                                                            const cusparseLtMatmulDescriptor_t *, cusparseLtMatmulAlg_t));
SAME(cusparseLtMatmulPlanInit, cusparseStatus_t (*)(const cusparseLtHandle_t *, cusparseLtMatmulPlan_t *, const cusparseLtMatmulDescriptor_t *,
                                                    const cusparseLtMatmulAlgSelection_t *));
SAME(cusparseLtMatmulGetWorkspace, cusparseStatus_t (*)(const cusparseLtHandle_t *, const cusparseLtMatmulPlan_t *, size_t *));
SAME(cusparseLtSpMMACompressedSize, cusparseStatus_t (*)(const cusparseLtHandle_t *, const cusparseLtMatmulPlan_t *, size_t *, size_t *));
SAME(cusparseLtSpMMACompress, cusparseStatus_t (*)(const cusparseLtHandle_t *, const cusparseLtMatmulPlan_t *, const void *, void *, void *,
                                                   cudaStream_t));
SAME(cusparseLtMatmul, cusparseStatus_t (*)(const cusparseLtHandle_t *, const cusparseLtMatmulPlan_t *, const void *, const void *,
                                            const void *, const void *, const void *, void *, void *, cudaStream_t *, int32_t));
SAME(cusparseLtMatmulPlanDestroy, cusparseStatus_t (*)(const cusparseLtMatmulPlan_t *));
SAME(cusparseLtMatmulSearch, cusparseStatus_t (*)(const cusparseLtHandle_t *, cusparseLtMatmulPlan_t *, const void *, const void *, const void *,
                                                  const void *, const void *, void *, void *, cudaStream_t *, int32_t));
#define HAVE_LT 1
#else
#define HAVE_LT 0
#endif

int main(void) {
#ifdef __cplusplus
    printf("decl_check: compiled as C++\n");
#endif
    printf("decl_check: CUDA runtime + driver declarations match (CUDA_VERSION %d)\n", CUDA_VERSION);
    printf("decl_check: cuBLAS %s\n", HAVE_CUBLAS ? "declarations match" : "header not found, not checked");
#if HAVE_LT
    printf("decl_check: cuSPARSELt %d.%d.%d declarations match (opaque structs: handle %zu, plan %zu bytes <= %d)\n", CUSPARSELT_VER_MAJOR,
           CUSPARSELT_VER_MINOR, CUSPARSELT_VER_PATCH, sizeof(cusparseLtHandle_t), sizeof(cusparseLtMatmulPlan_t), OPQ);
#else
    printf("decl_check: cuSPARSELt header not found, not checked\n");
#endif
    return 0;
}
