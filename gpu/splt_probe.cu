// splt_probe.cu: at which operand layouts / algorithm choices does cuSPARSELt's 2:4 bf16 GEMM beat cuBLAS's dense bf16
// GEMM at the conv-as-GEMM shapes of ResNet-18 (ImageNet, batch 256)?
// Why: the product (structured W [M,K] row-major x dense im2col X [K,N] row-major -> Y [M,N] row-major, op N/N,
// ALG_DEFAULT, no search) measured 0.33-0.88x of cuBLAS dense on an H200. This probe separates "wrong layout",
// "wrong kernel heuristic" (default vs cusparseLtMatmulSearch) and "2:4 does not pay at these shapes".
// Standalone: needs only the CUDA runtime, cuBLAS and cuSPARSELt 0.8 (built and run by gpu/splt_probe.sh).
// Usage: splt_probe [--no-search] [--reps=N] [--budget=SECONDS] [M,K,N ...]
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cusparseLt.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

typedef __nv_bfloat16 bf16;

// ---- failures: one refused call ends one variant (printed as SKIP), never the program ----
struct Skip { std::string why; };
static std::string fmt(const char* f, ...) {
  char b[512]; va_list a; va_start(a, f); vsnprintf(b, sizeof b, f, a); va_end(a); return b;
}
static void ck(cudaError_t e, const char* w) { if (e != cudaSuccess) throw Skip{fmt("%s: %s (%s)", w, cudaGetErrorName(e), cudaGetErrorString(e))}; }
static void ck(cublasStatus_t e, const char* w) { if (e != CUBLAS_STATUS_SUCCESS) throw Skip{fmt("%s: %s (%d)", w, cublasGetStatusName(e), (int)e)}; }
static void ck(cusparseStatus_t e, const char* w) { if (e != CUSPARSE_STATUS_SUCCESS) throw Skip{fmt("%s: %s (%d)", w, cusparseLtGetErrorName(e), (int)e)}; }

struct Dev {  // device buffer freed on scope exit, so a SKIP never leaks (shapes are large)
  void* p = nullptr;
  Dev() {}
  explicit Dev(size_t bytes) { alloc(bytes); }
  void alloc(size_t bytes) { if (p) cudaFree(p); p = nullptr; ck(cudaMalloc(&p, bytes ? bytes : 16), "cudaMalloc"); }
  ~Dev() { if (p) cudaFree(p); }
  Dev(const Dev&) = delete; Dev& operator=(const Dev&) = delete;
  template <class T> T* as() const { return (T*)p; }
};

// ---- data: a hash of the logical (row, col) index, so any memory layout holds the same matrix and the host
// reference needs no copy of the (up to 0.9 GB) dense operand. Values in +-[0.125, 1]: never zero. ----
static const uint64_t SEED_W = 1, SEED_X = 2;
__host__ __device__ inline uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__host__ __device__ inline float genval(uint64_t seed, int64_t i, int64_t j, int64_t cols) {
  uint64_t h = mix(mix(seed) + (uint64_t)(i * cols + j));
  float v = 0.125f + 0.875f * (float)(h >> 40) * (1.0f / 16777216.0f);
  return (h & 1) ? -v : v;
}
static float genbf(uint64_t seed, int64_t i, int64_t j, int64_t cols) { return __bfloat162float(__float2bfloat16_rn(genval(seed, i, j, cols))); }
__global__ void fill(bf16* out, int64_t R, int64_t C, bool rowMajor, uint64_t seed) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < R * C; p += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = rowMajor ? p / C : p % R, j = rowMajor ? p % C : p / R;
    out[p] = __float2bfloat16_rn(genval(seed, i, j, C));
  }
}
__device__ inline float tof(bf16 v) { return __bfloat162float(v); }
__device__ inline float tof(float v) { return v; }
template <class T> __global__ void gather(const T* src, const int64_t* idx, float* out, int n) {
  int i = threadIdx.x; if (i < n) out[i] = tof(src[idx[i]]);
}

// ---- layouts. Logical problem: Y[M,N] = W[M,K] * X[K,N]; W is the weight-like operand, 2:4 along K.
// Mem says how each logical matrix lies in memory (row-major or column-major); a Variant says how cuSPARSELt is
// told about it (which operand is structured, op, order). Several variants share one memory layout on purpose. ----
struct Mem { bool wRow, xRow, yRow; };
static std::string memName(Mem m) { return fmt("W%s/X%s/Y%s", m.wRow ? "row" : "col", m.xRow ? "row" : "col", m.yRow ? "row" : "col"); }
static bool sameMem(Mem a, Mem b) { return a.wRow == b.wRow && a.xRow == b.xRow && a.yRow == b.yRow; }
struct Variant { const char* name; bool sparseB, opAT, opBT; Mem mem; };
static const Variant VARIANTS[] = {
  {"A-row/B-row/C-row",       false, false, false, {true, true, true}},    // the current product
  {"A-row/B-col/C-col",       false, false, false, {true, false, false}},  // X as an NHWC im2col [N,K], Y [N,M]
  {"A-row/B-col/C-row",       false, false, false, {true, false, true}},
  {"A-row/Bt-row/C-row",      false, false, true,  {true, false, true}},   // same memory as above, B told as op T
  {"At-row/B-row/C-row",      false, true,  false, {false, true, true}},   // W stored [K,M]
  {"At-col/B-col/C-col",      false, true,  false, {true, false, false}},  // "TN": both inputs K-contiguous
  {"swap:A-row/Bt-row/C-row", true,  false, true,  {true, false, false}},  // Y^T = X^T W^T, NHWC-natural
  {"swap:A-col/B-col/C-col",  true,  false, false, {true, true, true}},    // product memory, structured as B
  {"swap:A-row/B-row/C-row",  true,  false, false, {false, false, false}},
  {"swap:At-col/B-col/C-col", true,  true,  false, {true, false, true}},
};
struct Op { int64_t rows, cols, ld; cusparseOrder_t order; };
// The stored operand S with op(S) = L, L logical [R,C] lying row- or column-major: transposing the description flips
// the order, the memory (and ld) stay the same.
static Op describe(int64_t R, int64_t C, bool lRow, bool trans) {
  int64_t ld = lRow ? C : R; bool sRow = trans ? !lRow : lRow;
  cusparseOrder_t o = sRow ? CUSPARSE_ORDER_ROW : CUSPARSE_ORDER_COL;
  return trans ? Op{C, R, ld, o} : Op{R, C, ld, o};
}
static void describeVariant(const Variant& v, int64_t M, int64_t K, int64_t N, Op* a, Op* b, Op* c) {
  if (!v.sparseB) { *a = describe(M, K, v.mem.wRow, v.opAT); *b = describe(K, N, v.mem.xRow, v.opBT); *c = describe(M, N, v.mem.yRow, false); }
  else { *a = describe(N, K, !v.mem.xRow, v.opAT); *b = describe(K, M, !v.mem.wRow, v.opBT); *c = describe(N, M, !v.mem.yRow, false); }
}

// ---- globals and timing ----
static cudaStream_t g_stream; static cublasHandle_t g_blas; static cusparseLtHandle_t g_lt;
static int g_warm = 3, g_reps = 20; static bool g_search = true; static double g_budget = 80;
static const auto g_t0 = std::chrono::steady_clock::now();
static double elapsed() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - g_t0).count(); }

struct Events {
  std::vector<cudaEvent_t> v;
  explicit Events(int n) : v(n, nullptr) { for (auto& e : v) ck(cudaEventCreate(&e), "cudaEventCreate"); }
  ~Events() { for (auto e : v) if (e) cudaEventDestroy(e); }
};
struct Stat { double med, p10, p90; int reps; };
// Per-call events on one stream; calls above 4 ms get half the reps to keep the whole run under ~90 s.
template <class F> static Stat timeit(F&& run) {
  Events w(2);
  ck(cudaEventRecord(w.v[0], g_stream), "cudaEventRecord");
  for (int i = 0; i < g_warm; i++) run();
  ck(cudaEventRecord(w.v[1], g_stream), "cudaEventRecord"); ck(cudaEventSynchronize(w.v[1]), "warm-up");
  float wms = 0; ck(cudaEventElapsedTime(&wms, w.v[0], w.v[1]), "cudaEventElapsedTime");
  int reps = (g_warm > 0 && wms / g_warm > 4.0f) ? std::max(5, g_reps / 2) : g_reps;
  Events ev(2 * reps);
  for (int i = 0; i < reps; i++) {
    ck(cudaEventRecord(ev.v[2 * i], g_stream), "cudaEventRecord"); run(); ck(cudaEventRecord(ev.v[2 * i + 1], g_stream), "cudaEventRecord");
  }
  ck(cudaEventSynchronize(ev.v[2 * reps - 1]), "timed runs");
  std::vector<double> t(reps);
  for (int i = 0; i < reps; i++) { float ms; ck(cudaEventElapsedTime(&ms, ev.v[2 * i], ev.v[2 * i + 1]), "cudaEventElapsedTime"); t[i] = ms; }
  std::sort(t.begin(), t.end());
  auto q = [&](double p) { return t[(size_t)std::lround(p * (reps - 1))]; };
  return {reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]), q(0.1), q(0.9), reps};
}

// ---- per-shape state ----
struct Shape {
  int64_t M, K, N;
  Dev w[2], x[2], y, ws;      // [0] column-major, [1] row-major; ws = the copy pruned for the current variant
  std::vector<int64_t> sm, sn;  // sampled output positions for the correctness check
  double flops() const { return 2.0 * M * N * K; }
  std::string tag() const { return fmt("M=%lld K=%lld N=%lld", (long long)M, (long long)K, (long long)N); }
};
struct Sum {
  std::string tag, bestDense = "-", bestSparse = "-";
  double bestDenseMs = INFINITY, bestSparseMs = INFINITY, prodDense = NAN, prodDefault = NAN, prodSearch = NAN;
  std::vector<std::pair<std::string, double>> dense;  // memName -> ms (bf16 out)
  double denseFor(Mem m) const { for (auto& d : dense) if (d.first == memName(m)) return d.second; return NAN; }
};

// max over the samples of |out-ref| / max(|ref|, 0.01*sqrt(sum_k (w*x)^2)); ref in float64 from the host W
// (the pruned copy for 2:4, the generator for dense) and the generated, bf16-rounded X.
static double checkOut(Shape& s, Mem mem, const std::vector<bf16>* wHost, const void* out, bool f32) {
  int n = (int)s.sm.size();
  std::vector<int64_t> off(n);
  for (int i = 0; i < n; i++) off[i] = mem.yRow ? s.sm[i] * s.N + s.sn[i] : s.sn[i] * s.M + s.sm[i];
  Dev dOff(n * sizeof(int64_t)), dVal(n * sizeof(float));
  ck(cudaMemcpyAsync(dOff.p, off.data(), n * sizeof(int64_t), cudaMemcpyHostToDevice, g_stream), "copy offsets");
  if (f32) gather<<<1, 64, 0, g_stream>>>((const float*)out, dOff.as<int64_t>(), dVal.as<float>(), n);
  else gather<<<1, 64, 0, g_stream>>>((const bf16*)out, dOff.as<int64_t>(), dVal.as<float>(), n);
  ck(cudaGetLastError(), "gather");
  std::vector<float> val(n);
  ck(cudaMemcpyAsync(val.data(), dVal.p, n * sizeof(float), cudaMemcpyDeviceToHost, g_stream), "copy samples");
  ck(cudaStreamSynchronize(g_stream), "check sync");
  double worst = 0;
  for (int i = 0; i < n; i++) {
    int64_t m = s.sm[i], c = s.sn[i]; double ref = 0, ss = 0;
    for (int64_t k = 0; k < s.K; k++) {
      double w = wHost ? (double)__bfloat162float((*wHost)[mem.wRow ? m * s.K + k : k * s.M + m]) : genbf(SEED_W, m, k, s.K);
      double p = w * genbf(SEED_X, k, c, s.N); ref += p; ss += p * p;
    }
    double e = std::fabs(val[i] - ref) / std::max(std::fabs(ref), 0.01 * std::sqrt(ss));
    if (!std::isfinite(e)) return INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}
static const char* bad(double err) { return err > 2e-2 ? " BAD" : ""; }

// cuBLAS is column-major: Y col-major is Y = W*X; Y row-major is Y^T (col-major [N,M]) = X^T * W^T.
static void runDense(Shape& s, Mem mem, bool f32, Sum& sum) {
  std::string name = memName(mem);
  try {
    int M = (int)s.M, K = (int)s.K, N = (int)s.N; float one = 1, zero = 0;
    const void* W = s.w[mem.wRow].p; const void* X = s.x[mem.xRow].p;
    Dev yf; if (f32) yf.alloc((size_t)s.M * s.N * sizeof(float));
    void* Y = f32 ? yf.p : s.y.p; cudaDataType ct = f32 ? CUDA_R_32F : CUDA_R_16BF;
    auto T = CUBLAS_OP_T, NN = CUBLAS_OP_N;
    auto run = [&] {
      if (!mem.yRow)
        ck(cublasGemmEx(g_blas, mem.wRow ? T : NN, mem.xRow ? T : NN, M, N, K, &one, W, CUDA_R_16BF, mem.wRow ? K : M,
                        X, CUDA_R_16BF, mem.xRow ? N : K, &zero, Y, ct, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), "cublasGemmEx");
      else
        ck(cublasGemmEx(g_blas, mem.xRow ? NN : T, mem.wRow ? NN : T, N, M, K, &one, X, CUDA_R_16BF, mem.xRow ? N : K,
                        W, CUDA_R_16BF, mem.wRow ? K : M, &zero, Y, ct, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), "cublasGemmEx");
    };
    ck(cudaMemsetAsync(Y, 0xFF, (size_t)s.M * s.N * (f32 ? 4 : 2), g_stream), "cudaMemset");  // NaN: a no-op call shows
    run();
    double err = checkOut(s, mem, nullptr, Y, f32);
    Stat t = timeit(run);
    printf("PROBE %s kind=dense variant=%s out=%s ms=%.4f p10=%.4f p90=%.4f reps=%d tflops=%.1f err=%.1e%s\n", s.tag().c_str(),
           name.c_str(), f32 ? "f32" : "bf16", t.med, t.p10, t.p90, t.reps, s.flops() / t.med / 1e9, err, bad(err));
    if (!f32 && err <= 2e-2) {
      sum.dense.push_back({name, t.med});
      if (t.med < sum.bestDenseMs) { sum.bestDenseMs = t.med; sum.bestDense = name; }
    }
    if (!f32 && sameMem(mem, VARIANTS[0].mem)) sum.prodDense = t.med;
  } catch (const Skip& e) {
    printf("SKIP %s kind=dense variant=%s out=%s %s\n", s.tag().c_str(), name.c_str(), f32 ? "f32" : "bf16", e.why.c_str());
  }
  fflush(stdout);
}

struct LtObjs {  // cuSPARSELt objects of one variant; alg selection and plan must outlive each other's use
  cusparseLtMatDescriptor_t d[3]; int nd = 0;
  cusparseLtMatmulDescriptor_t mm; cusparseLtMatmulAlgSelection_t sel; cusparseLtMatmulPlan_t plan;
  bool hasSel = false, hasPlan = false;
  ~LtObjs() {
    if (hasPlan) cusparseLtMatmulPlanDestroy(&plan);
    if (hasSel) cusparseLtMatmulAlgSelectionDestroy(&sel);
    for (int i = nd - 1; i >= 0; i--) cusparseLtMatDescriptorDestroy(&d[i]);
  }
};
static int algAttr(LtObjs& o, cusparseLtMatmulAlgAttribute_t a) {  // -1 where the attribute is not readable
  int v = -1; return cusparseLtMatmulAlgGetAttribute(&g_lt, &o.sel, a, &v, sizeof v) == CUSPARSE_STATUS_SUCCESS ? v : -1;
}

static void report(Shape& s, const Variant& v, const char* alg, LtObjs& o, const Stat& t, double err, Sum& sum) {
  double same = sum.denseFor(v.mem), ratio = same / t.med, best = sum.bestDenseMs / t.med;
  printf("PROBE %s kind=2:4 variant=%s mem=%s alg=%s id=%d splitk=%d ms=%.4f p10=%.4f p90=%.4f reps=%d tflops=%.1f "
         "vs_dense_same_layout=%.2fx vs_best_dense=%.2fx err=%.1e%s\n", s.tag().c_str(), v.name, memName(v.mem).c_str(), alg,
         algAttr(o, CUSPARSELT_MATMUL_ALG_CONFIG_ID), algAttr(o, CUSPARSELT_MATMUL_SPLIT_K), t.med, t.p10, t.p90, t.reps,
         s.flops() / t.med / 1e9, ratio, best, err, bad(err));
  fflush(stdout);
  std::string what = fmt("%s/%s", v.name, alg);
  if (err <= 2e-2 && t.med < sum.bestSparseMs) { sum.bestSparseMs = t.med; sum.bestSparse = what; }
  if (&v == &VARIANTS[0]) (strcmp(alg, "default") ? sum.prodSearch : sum.prodDefault) = t.med;
}

static void runSparse(Shape& s, const Variant& v, Sum& sum) {
  const char* stage = "default";
  try {
    if (elapsed() > g_budget) throw Skip{fmt("time budget (%.0f s) spent", g_budget)};
    LtObjs o; Op a, b, c;
    describeVariant(v, s.M, s.K, s.N, &a, &b, &c);
    const Op* ops[3] = {&a, &b, &c};
    const char* names[3] = {"DescriptorInit(A)", "DescriptorInit(B)", "DescriptorInit(C)"};
    for (int i = 0; i < 3; i++, o.nd++) {
      bool structured = (i == 0 && !v.sparseB) || (i == 1 && v.sparseB);
      const Op& p = *ops[i];
      if (structured)
        ck(cusparseLtStructuredDescriptorInit(&g_lt, &o.d[i], p.rows, p.cols, p.ld, 16, CUDA_R_16BF, p.order,
                                              CUSPARSELT_SPARSITY_50_PERCENT), names[i]);
      else ck(cusparseLtDenseDescriptorInit(&g_lt, &o.d[i], p.rows, p.cols, p.ld, 16, CUDA_R_16BF, p.order), names[i]);
    }
    auto opOf = [](bool t) { return t ? CUSPARSE_OPERATION_TRANSPOSE : CUSPARSE_OPERATION_NON_TRANSPOSE; };
    ck(cusparseLtMatmulDescriptorInit(&g_lt, &o.mm, opOf(v.opAT), opOf(v.opBT), &o.d[0], &o.d[1], &o.d[2], &o.d[2],
                                      CUSPARSE_COMPUTE_32F), "MatmulDescriptorInit");
    size_t wBytes = (size_t)s.M * s.K * sizeof(bf16);
    ck(cudaMemcpyAsync(s.ws.p, s.w[v.mem.wRow].p, wBytes, cudaMemcpyDeviceToDevice, g_stream), "copy W");
    ck(cusparseLtMatmulDescSetAttribute(&g_lt, &o.mm, CUSPARSELT_MATMUL_SPARSE_MAT_POINTER, &s.ws.p, sizeof s.ws.p), "SPARSE_MAT_POINTER");
    ck(cusparseLtMatmulAlgSelectionInit(&g_lt, &o.sel, &o.mm, CUSPARSELT_MATMUL_ALG_DEFAULT), "AlgSelectionInit"); o.hasSel = true;
    ck(cusparseLtMatmulPlanInit(&g_lt, &o.plan, &o.mm, &o.sel), "PlanInit"); o.hasPlan = true;
    // prune in place (2:4 along K of the op, whichever operand is structured), check, compress
    ck(cusparseLtSpMMAPrune(&g_lt, &o.mm, s.ws.p, s.ws.p, CUSPARSELT_PRUNE_SPMMA_STRIP, g_stream), "SpMMAPrune");
    Dev dValid(sizeof(int)); int valid = -1;
    ck(cusparseLtSpMMAPruneCheck(&g_lt, &o.mm, s.ws.p, dValid.as<int>(), g_stream), "SpMMAPruneCheck");
    ck(cudaMemcpyAsync(&valid, dValid.p, sizeof(int), cudaMemcpyDeviceToHost, g_stream), "copy valid");
    std::vector<bf16> wHost((size_t)s.M * s.K);
    ck(cudaMemcpyAsync(wHost.data(), s.ws.p, wBytes, cudaMemcpyDeviceToHost, g_stream), "copy pruned W");
    ck(cudaStreamSynchronize(g_stream), "prune sync");
    if (valid != 0) throw Skip{fmt("SpMMAPruneCheck: pruned matrix not valid (%d)", valid)};
    size_t zeros = 0; for (auto& w : wHost) zeros += (__bfloat162float(w) == 0.0f);
    size_t csz = 0, cbuf = 0;
    ck(cusparseLtSpMMACompressedSize(&g_lt, &o.plan, &csz, &cbuf), "SpMMACompressedSize");
    Dev comp(csz), compBuf(cbuf);
    ck(cusparseLtSpMMACompress(&g_lt, &o.plan, s.ws.p, comp.p, compBuf.p, g_stream), "SpMMACompress");
    size_t wsz = 0; ck(cusparseLtMatmulGetWorkspace(&g_lt, &o.plan, &wsz), "MatmulGetWorkspace");
    Dev work(wsz); size_t workCap = wsz;
    void* workPtr = work.p;
    const void* X = s.x[v.mem.xRow].p;
    const void* dA = v.sparseB ? X : comp.p; const void* dB = v.sparseB ? comp.p : X;
    float alpha = 1, beta = 0;  // beta 0: search and timing repeat the call, C never accumulates
    auto run = [&] {
      ck(cusparseLtMatmul(&g_lt, &o.plan, &alpha, dA, dB, &beta, s.y.p, s.y.p, workPtr, &g_stream, 1), "cusparseLtMatmul");
    };
    auto measure = [&](const char* alg) {
      ck(cudaMemsetAsync(s.y.p, 0xFF, (size_t)s.M * s.N * 2, g_stream), "cudaMemset");  // NaN: a no-op call shows
      run();
      double err = checkOut(s, v.mem, &wHost, s.y.p, false);
      Stat t = timeit(run);
      report(s, v, alg, o, t, err, sum);
    };
    printf("INFO %s variant=%s pruned_zero_fraction=%.3f compressed_bytes=%zu workspace_bytes=%zu splitk_mode=%d splitk_buffers=%d\n",
           s.tag().c_str(), v.name, (double)zeros / wHost.size(), csz, wsz, algAttr(o, CUSPARSELT_MATMUL_SPLIT_K_MODE),
           algAttr(o, CUSPARSELT_MATMUL_SPLIT_K_BUFFERS));
    measure("default");
    if (!g_search) return;
    stage = "search";
    if (elapsed() > g_budget) throw Skip{fmt("time budget (%.0f s) spent", g_budget)};
    int maxId = algAttr(o, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID), iters = algAttr(o, CUSPARSELT_MATMUL_SEARCH_ITERATIONS);
    double t0 = elapsed();
    // workspace nullptr during the search, as NVIDIA's matmul samples do (the searched plan's size is queried after);
    // should that be refused, once more with the default plan's workspace
    const char* how = "null";
    if (cusparseLtMatmulSearch(&g_lt, &o.plan, &alpha, dA, dB, &beta, s.y.p, s.y.p, nullptr, &g_stream, 1) != CUSPARSE_STATUS_SUCCESS) {
      how = "default";
      ck(cusparseLtMatmulSearch(&g_lt, &o.plan, &alpha, dA, dB, &beta, s.y.p, s.y.p, workPtr, &g_stream, 1), "MatmulSearch");
    }
    ck(cudaStreamSynchronize(g_stream), "search sync");
    double searchS = elapsed() - t0;
    ck(cusparseLtMatmulGetWorkspace(&g_lt, &o.plan, &wsz), "MatmulGetWorkspace(searched)");
    if (wsz > workCap) { work.alloc(wsz); workPtr = work.p; }
    printf("SEARCH %s variant=%s max_id=%d search_iterations=%d search_workspace=%s search_s=%.2f -> id=%d splitk=%d splitk_mode=%d splitk_buffers=%d workspace_bytes=%zu\n",
           s.tag().c_str(), v.name, maxId, iters, how, searchS, algAttr(o, CUSPARSELT_MATMUL_ALG_CONFIG_ID),
           algAttr(o, CUSPARSELT_MATMUL_SPLIT_K), algAttr(o, CUSPARSELT_MATMUL_SPLIT_K_MODE),
           algAttr(o, CUSPARSELT_MATMUL_SPLIT_K_BUFFERS), wsz);
    measure("search");
  } catch (const Skip& e) {
    printf("SKIP %s kind=2:4 variant=%s mem=%s alg=%s %s\n", s.tag().c_str(), v.name, memName(v.mem).c_str(), stage, e.why.c_str());
  }
  fflush(stdout);
}

static Sum runShape(int64_t M, int64_t K, int64_t N) {
  Sum sum; Shape s; s.M = M; s.K = K; s.N = N;
  sum.tag = s.tag();
  printf("\n== shape %s (%.1f GFLOP dense-equivalent)\n", s.tag().c_str(), s.flops() / 1e9);
  try {
    for (int r = 0; r < 2; r++) {
      s.w[r].alloc((size_t)M * K * sizeof(bf16)); s.x[r].alloc((size_t)K * N * sizeof(bf16));
      fill<<<4096, 256, 0, g_stream>>>(s.w[r].as<bf16>(), M, K, r == 1, SEED_W);
      fill<<<4096, 256, 0, g_stream>>>(s.x[r].as<bf16>(), K, N, r == 1, SEED_X);
      ck(cudaGetLastError(), "fill");
    }
    s.y.alloc((size_t)M * N * sizeof(bf16)); s.ws.alloc((size_t)M * K * sizeof(bf16));
    ck(cudaStreamSynchronize(g_stream), "fill sync");
  } catch (const Skip& e) { printf("SKIP %s shape setup %s\n", s.tag().c_str(), e.why.c_str()); return sum; }
  s.sm = {0, M - 1, 0, M - 1}; s.sn = {0, N - 1, N - 1, 0};
  for (int i = 4; i < 64; i++) { s.sm.push_back((int64_t)(mix(100 + i) % M)); s.sn.push_back((int64_t)(mix(200 + i) % N)); }
  // dense baselines: every memory layout a variant uses, then fp32 output in the product layout
  std::vector<Mem> mems;
  for (auto& v : VARIANTS) if (std::none_of(mems.begin(), mems.end(), [&](Mem m) { return sameMem(m, v.mem); })) mems.push_back(v.mem);
  for (auto m : mems) runDense(s, m, false, sum);
  runDense(s, VARIANTS[0].mem, true, sum);
  for (auto& v : VARIANTS) runSparse(s, v, sum);
  printf("SUMMARY %s best_dense=%s ms=%.4f best_2:4=%s ms=%.4f speedup=%.2fx | product_layout dense=%.4f 2:4_default=%.4f (%.2fx) 2:4_search=%.4f (%.2fx)\n",
         s.tag().c_str(), sum.bestDense.c_str(), sum.bestDenseMs, sum.bestSparse.c_str(), sum.bestSparseMs,
         sum.bestDenseMs / sum.bestSparseMs, sum.prodDense, sum.prodDefault, sum.prodDense / sum.prodDefault, sum.prodSearch,
         sum.prodDense / sum.prodSearch);
  fflush(stdout);
  return sum;  // Shape's buffers are freed here, before the next shape
}

int main(int argc, char** argv) {
  std::vector<std::array<long long, 3>> shapes;
  for (int i = 1; i < argc; i++) {
    long long m, k, n;
    if (!strcmp(argv[i], "--no-search")) g_search = false;
    else if (!strncmp(argv[i], "--reps=", 7)) g_reps = std::max(1, atoi(argv[i] + 7));
    else if (!strncmp(argv[i], "--budget=", 9)) g_budget = atof(argv[i] + 9);
    else if (sscanf(argv[i], "%lld,%lld,%lld", &m, &k, &n) == 3 && m > 0 && k > 0 && n > 0) shapes.push_back({m, k, n});
    else { fprintf(stderr, "usage: %s [--no-search] [--reps=N] [--budget=S] [M,K,N ...]\n", argv[0]); return 2; }
  }
  if (shapes.empty())  // Eq. 1 (Y = W X), Eq. 2-like (dX = W^T dY), calibration
    shapes = {{64, 576, 802816}, {128, 1152, 200704}, {256, 2304, 50176}, {512, 4608, 12544},
              {576, 64, 802816}, {4608, 512, 12544}, {8192, 8192, 8192}};
  try {
    int dev = 0, drv = 0, rt = 0, blasV = 0, ltV = 0, ltMaj = -1, ltMin = -1, ltPatch = -1;
    cudaDeviceProp p;
    ck(cudaSetDevice(dev), "cudaSetDevice"); ck(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
    cudaDriverGetVersion(&drv); cudaRuntimeGetVersion(&rt);
    ck(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "cudaStreamCreate");
    ck(cublasCreate(&g_blas), "cublasCreate"); ck(cublasSetStream(g_blas, g_stream), "cublasSetStream");
    ck(cublasGetVersion(g_blas, &blasV), "cublasGetVersion");
    ck(cusparseLtInit(&g_lt), "cusparseLtInit");
    ck(cusparseLtGetVersion(&g_lt, &ltV), "cusparseLtGetVersion");
    cusparseLtGetProperty(MAJOR_VERSION, &ltMaj); cusparseLtGetProperty(MINOR_VERSION, &ltMin); cusparseLtGetProperty(PATCH_LEVEL, &ltPatch);
    printf("# splt_probe: cuSPARSELt 2:4 bf16 vs cuBLAS dense bf16 (cublasGemmEx) at ResNet-18 conv-as-GEMM shapes\n");
    printf("# device: %s sm_%d%d, %d SMs, %.0f GiB; driver %d, runtime %d\n", p.name, p.major, p.minor, p.multiProcessorCount,
           p.totalGlobalMem / 1073741824.0, drv, rt);
    printf("# cuSPARSELt: library %d (%d.%d.%d), header %d.%d.%d; cuBLAS %d\n", ltV, ltMaj, ltMin, ltPatch,
           CUSPARSELT_VER_MAJOR, CUSPARSELT_VER_MINOR, CUSPARSELT_VER_PATCH, blasV);
    printf("# bf16 in, bf16 out (dense also f32 out in the product layout), compute 32F, alpha=1 beta=0, alignment 16\n");
    printf("# Y[M,N] = W[M,K] X[K,N]; W is the structured operand (2:4 along K, pruned with SPMMA_STRIP), X dense;\n"
           "# mem=Wrow/Xrow/Yrow says how W, X, Y lie in memory (row- or column-major); dense variant=mem layout\n");
    printf("# tflops = 2*M*N*K/median for dense AND 2:4 (dense-equivalent FLOPs: 2:4 does half the multiply-adds)\n");
    printf("# vs_dense_* = dense ms / this ms (>1: 2:4 faster); same_layout = cuBLAS on the same memory, best = fastest dense layout\n");
    printf("# timing: CUDA events, one stream, %d warm-up + %d timed calls (half above 4 ms/call), median p10 p90, no L2 flush\n", g_warm, g_reps);
    printf("# err = max over 64 outputs of |out-ref|/max(|ref|, 0.01*sqrt(sum_k (w*x)^2)), ref float64 from the pruned W; BAD > 2e-2\n");
    printf("# alg=default: CUSPARSELT_MATMUL_ALG_DEFAULT; alg=search: the same plan after cusparseLtMatmulSearch (search time apart)\n");
    for (auto& v : VARIANTS) {
      Op a, b, c; describeVariant(v, 1, 1, 1, &a, &b, &c);
      auto ord = [](const Op& o) { return o.order == CUSPARSE_ORDER_ROW ? "row" : "col"; };
      printf("# VARIANT %-24s D=op(A)op(B): A=%s op%s %s, B=%s op%s %s, D=%s %s; mem=%s\n", v.name,
             v.sparseB ? "X^T[N,K]" : "W[M,K](2:4)", v.opAT ? "T" : "N", ord(a), v.sparseB ? "W^T[K,M](2:4)" : "X[K,N]",
             v.opBT ? "T" : "N", ord(b), v.sparseB ? "Y^T[N,M]" : "Y[M,N]", ord(c), memName(v.mem).c_str());
    }
    fflush(stdout);
  } catch (const Skip& e) { printf("FATAL setup %s\n", e.why.c_str()); return 1; }
  std::vector<Sum> sums;
  for (auto& sh : shapes) sums.push_back(runShape(sh[0], sh[1], sh[2]));
  printf("\n== summary (ms; speed-up = dense ms / 2:4 ms; product layout = A-row/B-row/C-row)\n");
  printf("%-30s %-16s %9s  %-36s %9s %8s | %9s %9s %9s\n", "shape", "best dense", "ms", "best 2:4 (variant/alg)", "ms",
         "speedup", "prod dns", "prod dflt", "prod srch");
  for (auto& u : sums)
    printf("%-30s %-16s %9.4f  %-36s %9.4f %7.2fx | %9.4f %9.4f %9.4f\n", u.tag.c_str(), u.bestDense.c_str(), u.bestDenseMs,
           u.bestSparse.c_str(), u.bestSparseMs, u.bestDenseMs / u.bestSparseMs, u.prodDense, u.prodDefault, u.prodSearch);
  printf("# total %.1f s\n", elapsed());
  cusparseLtDestroy(&g_lt); cublasDestroy(g_blas); cudaStreamDestroy(g_stream);
  return 0;
}
