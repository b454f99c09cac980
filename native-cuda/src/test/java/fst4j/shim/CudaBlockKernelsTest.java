package fst4j.shim;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The block kernels (shared memory, barriers, warp shuffles, tensor-core mma; fst4j_kargs.h FST_BLOCK_KERNELS) against
 * their definitions: on the emulator, where every thread is a fiber switched at each barrier and warp operation, under
 * each of its thread orders; on a device (gpu/run.sh) the same checks show that the emulator's model of the primitives is
 * the device's.
 */
class CudaBlockKernelsTest {
    private static final int T = 128;   // FST_SELFTEST_T
    private final DeviceBuffers mem = new DeviceBuffers(0x7f, 4);

    @BeforeEach
    void needsDevice() { assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status()); }

    @AfterEach
    void freeAll() {
        try {
            if (Cuda.isAvailable() && Cuda.isEmulated()) Native.cudaEmuOrder(0, 0);
        } finally {
            mem.close();
        }
    }

    /** The emulator's thread orders to run a kernel under (reverse, forward, two shuffles); only the device's own elsewhere. */
    private static int[][] orders() {
        return Cuda.isEmulated() ? new int[][]{ { 0, 0 }, { 1, 0 }, { 2, 7 }, { 2, 8 } } : new int[][]{ { -1, 0 } };
    }

    private static void order(int[] o) { if (o[0] >= 0) Native.cudaEmuOrder(o[0], o[1]); }

    /** Runs body under each of the implicit GEMMs' two tiles (64 x 128 and 128 x 64), then restores the setting. */
    private static void eachTile(java.util.function.IntConsumer body) {
        int was = Native.cudaIgemmTile(-1);
        try {
            for (int tile : new int[]{ 64, 128 }) {
                Native.cudaIgemmTile(tile);
                body.accept(tile);
            }
        } finally {
            Native.cudaIgemmTile(was);
        }
    }

    private static short[] bf16(Random r, int n, boolean integers) {
        short[] v = new short[n];
        for (int i = 0; i < n; i++) v[i] = Bf16.of(integers ? r.nextInt(17) - 8 : (float) r.nextGaussian());
        return v;
    }

    /** A 2:4 matrix for mma.sp: per block 16 rows x 32 columns, its kept values [16][16], metadata words [16] and the dense form. */
    private record Sparse(short[] kept, int[] meta, float[] dense) {}

    private static Sparse sparse(Random r, int blocks, boolean integers) {
        short[] kept = new short[blocks * 256];
        int[] meta = new int[blocks * 16];
        float[] dense = new float[blocks * 512];
        int[][] pairs = { { 0, 1 }, { 0, 2 }, { 0, 3 }, { 1, 2 }, { 1, 3 }, { 2, 3 } };
        for (int b = 0; b < blocks; b++)
            for (int row = 0; row < 16; row++)
                for (int g = 0; g < 8; g++) {
                    int[] p = pairs[r.nextInt(6)];
                    meta[b * 16 + row] |= (p[0] | p[1] << 2) << (4 * g);
                    for (int slot = 0; slot < 2; slot++) {
                        short v = Bf16.of(integers ? r.nextInt(17) - 8 : (float) r.nextGaussian());
                        kept[b * 256 + row * 16 + 2 * g + slot] = v;
                        dense[b * 512 + row * 32 + 4 * g + p[slot]] = Bf16.value(v);
                    }
                }
        return new Sparse(kept, meta, dense);
    }

    /** The self-test's buffers, uploaded. */
    private record Selftest(MemorySegment in, MemorySegment out, MemorySegment a, MemorySegment bt, MemorySegment d,
                            MemorySegment sa, MemorySegment sm, MemorySegment sbt, MemorySegment sd) {
        void run(long blocks, int mode) { Native.cudaBlockSelftest(in, out, a, bt, d, blocks, mode, sa, sm, sbt, sd); }
    }

    private Selftest selftest(int blocks, float[] in, short[] a, short[] bt, Sparse sp, short[] sbt) {
        return new Selftest(mem.upload(in), mem.dev(4L * blocks * 3 * T), mem.upload(a), mem.upload(bt), mem.dev(4L * blocks * 128),
                mem.upload(sp.kept()), mem.upload(sp.meta()), mem.upload(sbt), mem.dev(4L * blocks * 128));
    }

    /** A weight element as the reference multiplies it (already rounded to bf16): out channel o, in channel ci, tap (a, b). */
    private interface Wt { double at(int o, int ci, int a, int b); }

    /** Element (img, o, oh, ow) of a convolution's NCHW output. */
    private interface Got { float at(int img, int o, int oh, int ow); }

    /**
     * Every output of a convolution (got, [n, cout, ho, wo]) against its float64 definition sum over (ci, a, b) of
     * w(o, ci, a, b) bf16(x[img, ci, oh*sh - ph + a, ow*sw - pw + b]), within kTerms 2^-23 of the sum of |terms|.
     */
    private static void assertConv(Got got, float[] x, Wt wt, int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw,
                                   int cout, int ho, int wo, long kTerms, String at) {
        for (int img = 0; img < n; img++)
            for (int oc = 0; oc < cout; oc++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++) {
                        double want = 0, mag = 0;
                        for (int ci = 0; ci < c; ci++)
                            for (int a = 0; a < kh; a++)
                                for (int b = 0; b < kw; b++) {
                                    int ih = oh * sh - ph + a, iw = ow * sw - pw + b;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                    double t = wt.at(oc, ci, a, b) * Bf16.round(x[((img * c + ci) * h + ih) * w + iw]);
                                    want += t;
                                    mag += Math.abs(t);
                                }
                        assertEquals(want, got.at(img, oc, oh, ow), kTerms * 0x1p-23 * mag + 1e-30, at + " at " + img + "," + oc + "," + oh + "," + ow);
                    }
    }

    /**
     * Every input gradient of a stride-1 convolution (got, [n, cin, h, w]) against Eq. 2's float64 definition: the sum over
     * (co, a, b) of w(co, ci, a, b) bf16(dy[img, co, ih + p - a, iw + p - b]), within kTerms 2^-23 of the sum of |terms|.
     */
    private static void assertEq2(float[] got, float[] dy, Wt wt, int n, int cin, int h, int w, int k, int p, int cout, int ho, int wo, long kTerms,
                                  String at) {
        for (int img = 0; img < n; img++)
            for (int ci = 0; ci < cin; ci++)
                for (int ih = 0; ih < h; ih++)
                    for (int iw = 0; iw < w; iw++) {
                        double want = 0, mag = 0;
                        for (int co = 0; co < cout; co++)
                            for (int a = 0; a < k; a++)
                                for (int b = 0; b < k; b++) {
                                    int oh = ih + p - a, ow = iw + p - b;
                                    if (oh < 0 || oh >= ho || ow < 0 || ow >= wo) continue;
                                    double t = wt.at(co, ci, a, b) * Bf16.round(dy[((img * cout + co) * ho + oh) * wo + ow]);
                                    want += t;
                                    mag += Math.abs(t);
                                }
                        assertEquals(want, got[((img * cin + ci) * h + ih) * w + iw], kTerms * 0x1p-23 * mag + 1e-30, at + " at " + img + "," + ci + "," + ih + "," + iw);
                    }
    }

    /** got's bits == want's, element for element. */
    private static void assertBits(float[] want, float[] got, String at) {
        assertEquals(want.length, got.length, at);
        for (int i = 0; i < want.length; i++) assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), at + " at " + i);
    }

    @Test
    void selftestMatchesItsDefinition() {
        Random r = new Random(11);
        int blocks = 5;
        for (boolean integers : new boolean[]{ true, false }) {
            float[] in = new float[blocks * T];
            for (int i = 0; i < in.length; i++) in[i] = (float) r.nextGaussian();
            short[] a = bf16(r, blocks * 256, integers), bt = bf16(r, blocks * 128, integers), sbt = bf16(r, blocks * 256, integers);
            Sparse sp = sparse(r, blocks, integers);
            for (int[] o : orders()) {
                order(o);
                Selftest st = selftest(blocks, in, a, bt, sp, sbt);
                st.run(blocks, 0);
                float[] out = mem.downloadFloats(st.out(), (long) blocks * 3 * T), d = mem.downloadFloats(st.d(), (long) blocks * 128);
                float[] sd = mem.downloadFloats(st.sd(), (long) blocks * 128);
                String at = "order " + o[0] + "/" + o[1];
                for (int b = 0; b < blocks; b++) {
                    float[] w = new float[T];
                    for (int t = 0; t < T; t++) w[t] = in[b * T + t];
                    for (int m = 16; m >= 1; m >>= 1) {   // all lanes at once, as the shuffle does
                        float[] next = new float[T];
                        for (int t = 0; t < T; t++) next[t] = w[t] + w[t ^ m];
                        w = next;
                    }
                    for (int t = 0; t < T; t++) {
                        int base = b * 3 * T;
                        assertEquals(Float.floatToRawIntBits(in[b * T + T - 1 - t]), Float.floatToRawIntBits(out[base + t]), "reversal " + at);
                        assertEquals(Float.floatToRawIntBits(w[t]), Float.floatToRawIntBits(out[base + T + t]), "butterfly sum " + at + " t " + t);
                        assertEquals(Float.floatToRawIntBits(in[b * T + (t & ~31) + 31 - (t & 31)]), Float.floatToRawIntBits(out[base + 2 * T + t]),
                                "lane reversal " + at);
                    }
                    for (int i = 0; i < 16; i++)
                        for (int j = 0; j < 8; j++) {
                            double want = 0, mag = 0;
                            for (int k = 0; k < 16; k++) {
                                double p = (double) Bf16.value(a[b * 256 + i * 16 + k]) * Bf16.value(bt[b * 128 + j * 16 + k]);
                                want += p;
                                mag += Math.abs(p);
                            }
                            float got = d[b * 128 + i * 8 + j];
                            if (integers) assertEquals((float) want, got, 0f, "mma of integers " + at + " at " + i + "," + j);
                            else assertEquals(want, got, 16 * 0x1p-23 * mag + 1e-30, "mma " + at + " at " + i + "," + j);
                            double swant = 0, smag = 0;   // mma.sp: the dense 16 x 32 A (zeros where pruned) times B
                            for (int k = 0; k < 32; k++) {
                                double p = (double) sp.dense()[b * 512 + i * 32 + k] * Bf16.value(sbt[b * 256 + j * 32 + k]);
                                swant += p;
                                smag += Math.abs(p);
                            }
                            float sgot = sd[b * 128 + i * 8 + j];
                            if (integers) assertEquals((float) swant, sgot, 0f, "mma.sp of integers " + at + " at " + i + "," + j);
                            else assertEquals(swant, sgot, 16 * 0x1p-23 * smag + 1e-30, "mma.sp " + at + " at " + i + "," + j);
                        }
                }
            }
        }
    }

    /**
     * Where mma.sp takes each kept value from, probed one value at a time: block (row, c) of 256 holds a single kept value
     * 1 at row `row`, kept column c, random valid metadata, and B with B[k][0] = 2^(k - 16) (column 0 only), so the product
     * D[row][0] = 2^(position - 16) names the position the instruction used and every other element of D must be 0. The
     * expected position is the model's (fst4j_bodies.cuh, sp_meta): 4 (c / 2) + the (c % 2)-th 2-bit field of the row's
     * metadata for group c / 2. On a device this checks the model against the hardware and, if they differ, the message
     * lists what the hardware did, so that the model can be corrected from one run.
     */
    @Test
    void mmaSpTakesEveryKeptValueFromThePositionTheModelSays() {
        int blocks = 256;
        Random r = new Random(14);
        int[][] pairs = { { 0, 1 }, { 0, 2 }, { 0, 3 }, { 1, 2 }, { 1, 3 }, { 2, 3 } };
        short[] kept = new short[blocks * 256], sbt = new short[blocks * 256];
        int[] meta = new int[blocks * 16], expect = new int[blocks];
        for (int b = 0; b < blocks; b++) {
            int row = b / 16, c = b % 16;
            for (int i = 0; i < 16; i++)
                for (int g = 0; g < 8; g++) {
                    int[] p = pairs[r.nextInt(6)];
                    meta[b * 16 + i] |= (p[0] | p[1] << 2) << (4 * g);
                }
            kept[b * 256 + row * 16 + c] = Bf16.of(1f);
            int m = meta[b * 16 + row], g = c / 2;
            expect[b] = 4 * g + ((m >>> (4 * g + 2 * (c % 2))) & 3);
            for (int k = 0; k < 32; k++) sbt[b * 256 + k] = Bf16.of((float) Math.scalb(1.0, k - 16));   // B^T row 0 = B's column 0
        }
        Selftest st = selftest(blocks, new float[blocks * T], new short[blocks * 256], new short[blocks * 128], new Sparse(kept, meta, null), sbt);
        st.run(blocks, 0);
        float[] sd = mem.downloadFloats(st.sd(), (long) blocks * 128);
        StringBuilder wrong = new StringBuilder();
        int bad = 0;
        for (int b = 0; b < blocks; b++) {
            int row = b / 16, c = b % 16;
            StringBuilder got = new StringBuilder();
            for (int i = 0; i < 16; i++)
                for (int j = 0; j < 8; j++) {
                    float v = sd[b * 128 + i * 8 + j];
                    if (v != 0f) got.append(String.format(" D[%d][%d]=2^%d", i, j, Math.getExponent(v))).append(v == Math.scalb(1f, Math.getExponent(v)) ? "" : "(" + v + ")");
                }
            String want = String.format(" D[%d][0]=2^%d", row, expect[b] - 16);
            if (!got.toString().equals(want)) {
                bad++;
                if (wrong.length() < 4000)
                    wrong.append(String.format("%nrow %d kept column %d, metadata 0x%08x: model position %d, got%s", row, c, meta[b * 16 + row], expect[b],
                            got.length() == 0 ? " nothing" : got));
            }
        }
        assertEquals(0, bad, bad + " of 256 kept values taken from elsewhere than the model says:" + wrong);
    }

    @Test
    void theEmulatorReportsBarriersAndWarpOperationsThatNotEveryThreadReaches() {
        Random r = new Random(3);
        Selftest st = selftest(2, new float[2 * T], new short[2 * 256], new short[2 * 128], sparse(r, 2, true), new short[2 * 256]);
        if (!Cuda.isEmulated()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> st.run(2, 1));
            assertTrue(e.getMessage().contains("emulator only"), e.getMessage());
            return;
        }
        CudaException barrier = assertThrows(CudaException.class, () -> st.run(2, 1));
        assertTrue(barrier.getMessage().contains("127 threads wait at a barrier") && barrier.getMessage().contains("1 have returned"), barrier.getMessage());
        CudaException warp = assertThrows(CudaException.class, () -> st.run(2, 2));
        assertTrue(warp.getMessage().contains("warp 1: lanes 0 and 3 are at different warp operations"), warp.getMessage());
        CudaException past = assertThrows(CudaException.class, () -> st.run(2, 3));
        assertTrue(past.getMessage().contains("wrote past its 512 bytes of shared memory"), past.getMessage());
        st.run(2, 0);   // the next launch starts clean
        assertEquals(0f, mem.downloadFloats(st.d(), 256)[255]);
        assertThrows(IllegalArgumentException.class, () -> Native.cudaEmuOrder(3, 0));
        // metadata whose two positions in a group do not increase: undefined on a device, an error here
        Sparse bad = sparse(r, 2, true);
        bad.meta()[16 + 5] = (bad.meta()[16 + 5] & ~(0xf << 12)) | (0x5 << 12);   // block 1, row 5, group 3: positions 1 and 1
        Selftest st2 = selftest(2, new float[2 * T], new short[2 * 256], new short[2 * 128], bad, new short[2 * 256]);
        CudaException meta = assertThrows(CudaException.class, () -> st2.run(2, 0));
        assertTrue(meta.getMessage().contains("block 1, warp 1: mma.sp metadata of row 5, group 3 names positions 1 and 1"), meta.getMessage());
    }

    /** The reference: im2col lowered into bf16, the bf16 GEMM, the product permuted into NCHW (on the host). */
    private float[] lowered(MemorySegment dx, long[] g, MemorySegment dw, int ldw, int cout) {
        int n = (int) g[0], k = (int) (g[1] * g[4] * g[5]), plane = (int) (g[10] * g[11]), cols = n * plane;
        MemorySegment cols16 = mem.dev(2L * k * cols), c = mem.dev(4L * cout * cols);
        Native.cudaIm2colBf16(dx, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], cols16, k, cols);
        Native.cudaGemmEx(false, false, cout, cols, k, 1f, dw, Cuda.R_16BF, ldw, cols16, Cuda.R_16BF, cols, 0f, c, Cuda.R_32F, cols, false);
        float[] p = mem.downloadFloats(c, (long) cout * cols), y = new float[p.length];
        for (int o = 0; o < cout; o++)
            for (int img = 0; img < n; img++) System.arraycopy(p, o * cols + img * plane, y, (img * cout + o) * plane, plane);
        return y;
    }

    /**
     * Hopper's warpgroup product wgmma.m64n64k16 (A and B^T from shared memory by descriptor, K-major core matrices, no
     * swizzle; the D fragments of the warpgroup's 128 threads) against its definition, in float64 with the bound of a
     * float32 sum, at two layouts of the core matrices (K-neighbours next to each other, and 8-row groups next to each
     * other). On the emulator this checks the probe's staging and fragment indexing against the functional model; on a
     * device (gpu/run.sh) it checks the model, and with it the reading of the PTX ISA's descriptor and fragment figures,
     * against the hardware, and names the first elements that differ. Skipped on a device build without sm_90a.
     */
    @Test
    void wgmmaMatchesItsDefinition() {
        Random r = new Random(61);
        int blocks = 3;
        for (long[] layout : new long[][]{ { 128, 256 }, { 1024, 128 } }) {
            long lbo = layout[0], sbo = layout[1];
            short[] a = bf16(r, blocks * 1024, false), bt = bf16(r, blocks * 1024, false);
            assertWgmmaProbe("wgmma", a, bt, 16, null, null, lbo, sbo, blocks);
        }
    }

    /**
     * The 2:4 warpgroup product wgmma.sp.m64n64k32 (selector 0): A 2:4 along k given as its kept values (K-major core
     * matrices, as the dense A) and k_prune24's metadata words, each warp's metadata registers laid out as mma.sp.m16n8k32's
     * (that layout agrees with the H200, run 23); B^T 64 x 32 as four core matrices along K. Against float64 at two
     * layouts, under every thread order; on a device it checks the model against the hardware. Skipped on a device build
     * without sm_90a.
     */
    @Test
    void wgmmaSpMatchesItsDefinition() {
        Random r = new Random(62);
        int blocks = 3;
        for (long[] layout : new long[][]{ { 128, 512 }, { 1024, 128 } }) {
            long lbo = layout[0], sbo = layout[1];
            short[] kept = bf16(r, blocks * 1024, false), bt = bf16(r, blocks * 2048, false);
            int[] meta = new int[blocks * 64];
            int[][] pos = new int[blocks * 64][16];   // the k of each kept value
            for (int row = 0; row < blocks * 64; row++)
                for (int g = 0; g < 8; g++) {
                    int i0 = r.nextInt(3), i1 = i0 + 1 + r.nextInt(3 - i0);   // two positions of 4, increasing
                    meta[row] |= (i0 | i1 << 2) << (4 * g);
                    pos[row][2 * g] = 4 * g + i0;
                    pos[row][2 * g + 1] = 4 * g + i1;
                }
            assertWgmmaProbe("wgmma.sp", kept, bt, 32, meta, pos, lbo, sbo, blocks);
        }
    }

    /**
     * Runs the wgmma probe (meta null: the dense product; else wgmma.sp with these metadata words) on blocks of a (64 x 16
     * bf16 per block: A, or its kept values) and bt (64 x kb: B^T) under every thread order and compares each of the 64 x 64
     * outputs with its float64 sum, within the bound of a float32 sum; pos[block * 64 + row][c] is the k of that row's c-th
     * value (null: c). Skipped where the device build did not run the instruction (no sm_90a); names the first 8 elements
     * that differ.
     */
    private void assertWgmmaProbe(String what, short[] a, short[] bt, int kb, int[] meta, int[][] pos, long lbo, long sbo, int blocks) {
        for (int[] o : orders()) {
            order(o);
            String bad = wgmmaProbeMismatches(what, a, bt, kb, meta, pos, lbo, sbo, blocks, 0);
            assertEquals("", bad, what + " lbo " + lbo + " sbo " + sbo + " order " + o[0] + "/" + o[1] + ":" + bad);
        }
    }

    /**
     * One run of the wgmma probe (transb 0: B^T K-major; 1: B MN-major under the descriptor as staged; 2: the same with
     * lbo and sbo swapped in B's descriptor): "" where every output is within the bound of a float32 sum of its float64
     * value, else how many differ and the first 8. Skipped (assumption) where the device build did not run it.
     */
    private String wgmmaProbeMismatches(String what, short[] a, short[] bt, int kb, int[] meta, int[][] pos, long lbo, long sbo, int blocks,
                                        int transb) {
        MemorySegment d = mem.dev(4L * blocks * 4096), ok = mem.dev(4L * blocks);
        Native.cudaWgmmaProbe(mem.upload(a), mem.upload(bt), d, lbo, sbo, blocks, ok, meta == null ? MemorySegment.NULL : mem.upload(meta), transb);
        assumeTrue(mem.downloadInts(ok, blocks)[0] == 1, "this device build has no sm_90a code: " + what + " did not run");
        float[] got = mem.downloadFloats(d, (long) blocks * 4096);
        StringBuilder bad = new StringBuilder();
        int nbad = 0;
        for (int b = 0; b < blocks; b++)
            for (int m = 0; m < 64; m++)
                for (int n = 0; n < 64; n++) {
                    double want = 0, bound = 0;
                    for (int c = 0; c < 16; c++) {
                        int k = pos == null ? c : pos[b * 64 + m][c];
                        double t = (double) Bf16.value(a[b * 1024 + m * 16 + c]) * Bf16.value(bt[(b * 64 + n) * kb + k]);
                        want += t;
                        bound += Math.abs(t);
                    }
                    float g = got[b * 4096 + m * 64 + n];
                    if (!(Math.abs(g - want) <= 1e-5 * bound + 1e-30) && nbad++ < 8)
                        bad.append(String.format(" (block %d, row %d, column %d: %g, want %g)", b, m, n, g, want));
                }
        return nbad == 0 ? "" : " " + nbad + " of " + blocks * 4096 + " elements differ:" + bad;
    }

    /**
     * wgmma with B MN-major (imm-trans-b = 1: core matrices of 8 k-rows of 8 consecutive n), the layout a convolution's B
     * would take straight from NCHW rows (positions contiguous). The PTX ISA's descriptor fields are read here as for
     * K-major: lbo between core matrices along K, sbo along N; the emulator models that. The probe stages B so and runs it
     * with B's descriptor as staged, then with lbo and sbo swapped, at two layouts, and prints which one the device (or the
     * emulator) computes correctly ("WGMMA TRANS-B" line, also in gpu/run.sh's output). It fails unless exactly the modelled
     * one is right: on a device, a failure says the model (and the reading of the ISA) is wrong, and how.
     */
    @Test
    void wgmmaTransposedBProbe() {
        Random r = new Random(63);
        int blocks = 2;
        // two layouts whose swapped descriptors stay inside B's 4 KB too (7 max(lbo, sbo) + min + 128 <= 4096)
        for (long[] layout : new long[][]{ { 128, 256 }, { 384, 512 } }) {
            long lbo = layout[0], sbo = layout[1];
            short[] a = bf16(r, blocks * 1024, false), bt = bf16(r, blocks * 1024, false);
            for (int[] o : orders()) {
                order(o);
                String asStaged = wgmmaProbeMismatches("wgmma (B transposed)", a, bt, 16, null, null, lbo, sbo, blocks, 1);
                String swapped = wgmmaProbeMismatches("wgmma (B transposed)", a, bt, 16, null, null, lbo, sbo, blocks, 2);
                String verdict = "WGMMA TRANS-B lbo " + lbo + " sbo " + sbo + ": descriptor as staged (lbo along K) " + (asStaged.isEmpty() ? "RIGHT" : "wrong")
                        + ", lbo and sbo swapped " + (swapped.isEmpty() ? "RIGHT" : "wrong") + " (order " + o[0] + "/" + o[1] + ")";
                System.out.println(verdict);
                assertEquals("", asStaged, verdict + "; as staged:" + asStaged);
                assertFalse(swapped.isEmpty(), verdict + ": the swapped descriptor must read other elements");
            }
        }
    }

    /** The warpgroup kernels' tiles under test: 64 rows, 128 rows staged through registers, 128 rows filled by cp.async
     * (negative: CudaWgGemmBench.async's code for the cp.async pipeline). */
    private static final int ASYNC_128 = -128;
    private static final int[] TILES = { 64, 128, ASYNC_128 };

    private static int tileRows(int tile) { return Math.abs(tile); }

    private static String tileName(int tile) { return tile == ASYNC_128 ? "128 (cp.async, 3 stages)" : Integer.toString(tile); }

    /**
     * The GEMM on the warpgroup tensor cores (fst_cuda_wggemm), dense and 2:4, both tiles (the 128-row one also with its stages
     * filled by cp.async), against float64: c = alpha a
     * b + beta c at 2 x 2 tiles of 64 x 128 with three K slices, or 1 x 2 tiles of 128 x 128 (two warpgroups) with six (so
     * both shared-memory stages are used several times and the next slice is loaded while one computes), rows of a and B^T padded past k, c with a row stride past n; the 2:4 form with random
     * kept positions in every group. Every element within the bound of a float32 sum (1e-5 of the sum of |products|);
     * names the first that differ. Under every thread order on the emulator; skipped on a device build without sm_90a.
     */
    @Test
    void warpgroupGemmMatchesFloat64() {
        Random r = new Random(71);
        int m = 128, n = 256, k = 192, lda = k + 8, ldb = k + 16, ldc = n + 4;
        short[] a = new short[m * lda], bt = new short[n * ldb];
        for (int i = 0; i < a.length; i++) a[i] = Bf16.of((float) r.nextGaussian());
        for (int i = 0; i < bt.length; i++) bt[i] = Bf16.of((float) r.nextGaussian());
        // 2:4: the same rows pruned to random positions, as kept values [m, k / 2] and k_prune24's words [m, k / 32]
        int ldv = k / 2 + 8, ldm = k / 32 + 1;
        short[] kept = new short[m * ldv], masked = new short[m * lda];
        int[] meta = new int[m * ldm];
        prune24(r, a, m, k, lda, kept, ldv, meta, ldm, masked);
        float[] c0 = new float[m * ldc];
        for (int i = 0; i < c0.length; i++) c0[i] = (float) r.nextGaussian();
        for (int tile : TILES)
        for (boolean sp : new boolean[]{ false, true })
            for (float beta : new float[]{ 0f, -0.5f })
                for (int[] o : orders()) {
                    order(o);
                    MemorySegment dc = mem.upload(c0), ok = mem.dev(4);
                    int rows = tileRows(tile);
                    CudaWgGemmBench.async(tile, () -> Native.cudaWggemm(mem.upload(sp ? kept : a), sp ? ldv : lda, mem.upload(bt), ldb, dc, ldc, m,
                            n, k, 1.25f, beta, sp ? mem.upload(meta) : MemorySegment.NULL, ldm, ok, rows)).run();
                    assumeTrue(mem.downloadInts(ok, 1)[0] == 1, "this device build has no sm_90a code: the warpgroup GEMM did not run");
                    float[] got = mem.downloadFloats(dc, (long) m * ldc);
                    short[] ref = sp ? masked : a;
                    StringBuilder bad = new StringBuilder();
                    int nbad = 0;
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < ldc; j++) {
                            double want = c0[i * ldc + j], bound = 0;
                            if (j < n) {
                                double s = 0;
                                for (int q = 0; q < k; q++) {
                                    double t = (double) Bf16.value(ref[i * lda + q]) * Bf16.value(bt[j * ldb + q]);
                                    s += t;
                                    bound += Math.abs(t);
                                }
                                want = 1.25 * s + (beta == 0f ? 0 : beta * (double) c0[i * ldc + j]);
                                bound = 1.25 * bound + Math.abs(beta * c0[i * ldc + j]);
                            }
                            float g = got[i * ldc + j];
                            if (!(Math.abs(g - want) <= 1e-5 * bound) && nbad++ < 8)
                                bad.append(String.format(" (%d, %d: %g, want %g)", i, j, g, want));
                        }
                    assertEquals(0, nbad, (sp ? "2:4" : "dense") + " tile " + tileName(tile) + " beta " + beta + " order " + o[0] + "/" + o[1] + ": " + nbad
                            + " of " + m * ldc + " elements differ:" + bad);
                }
    }

    /**
     * Eq. 1 on the warpgroup tensor cores (fst_cuda_wgconv), dense and 2:4, both tiles: x converted to bf16 NHWC on the
     * device (fst_cuda_nhwc16), W with K in (kh, kw, c) order, against float64 of the same rounded operands, 3x3 convolutions
     * at stride 1 and 2 with padding (so taps fall outside the image) and a number of positions that is not a multiple of
     * the 128-position tile, beta 0 and 0.5 into NCHW y. Under every thread order on the emulator.
     */
    @Test
    void warpgroupConvolutionMatchesFloat64() {
        Random r = new Random(73);
        int n = 2, c = 64, h = 7, w = 6, k = 3, cout = 128, kk = k * k, K = kk * c;
        float[] x = new float[n * c * h * w];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        short[] wd = new short[cout * K], kept = new short[cout * K / 2];
        int[] meta = new int[cout * K / 32];
        short[] wm = new short[cout * K];   // the 2:4 W, dense with zeros
        for (int i = 0; i < wd.length; i++) wd[i] = Bf16.of((float) r.nextGaussian());
        prune24(r, wd, cout, K, K, kept, K / 2, meta, K / 32, wm);
        for (int stride : new int[]{ 1, 2 }) {
            int ho = (h + 2 - k) / stride + 1, wo = (w + 2 - k) / stride + 1;
            float[] y0 = new float[n * cout * ho * wo];
            for (int i = 0; i < y0.length; i++) y0[i] = (float) r.nextGaussian();
            for (int tile : TILES)
                for (boolean sp : new boolean[]{ false, true })
                    for (float beta : new float[]{ 0f, 0.5f })
                        for (int[] o : orders()) {
                            order(o);
                            MemorySegment xh = mem.dev(2L * x.length), y = mem.upload(y0), ok = mem.dev(4);
                            Native.cudaNhwc16(mem.upload(x), n, c, h, w, xh);
                            int rows = tileRows(tile);
                            CudaWgGemmBench.async(tile, () -> Native.cudaWgconv(xh, n, c, h, w, k, k, stride, stride, 1, 1, ho, wo,
                                    mem.upload(sp ? kept : wd), sp ? K / 2 : K, cout, y, beta, sp ? mem.upload(meta) : MemorySegment.NULL, K / 32, ok,
                                    rows)).run();
                            assumeTrue(mem.downloadInts(ok, 1)[0] == 1, "this device build has no sm_90a code: the warpgroup convolution did not run");
                            float[] got = mem.downloadFloats(y, y0.length);
                            short[] wr = sp ? wm : wd;
                            // beta y0 taken off in float64; kTerms 84: 1e-5 of the sum of |terms|
                            assertConv((img, oc, oh, ow) -> {
                                        int idx = ((img * cout + oc) * ho + oh) * wo + ow;
                                        return (float) (got[idx] - beta * (double) y0[idx]);
                                    }, x, (oc, ci, a, b) -> Bf16.value(wr[oc * K + (a * k + b) * c + ci]), n, c, h, w, k, k, stride, stride, 1, 1,
                                    cout, ho, wo, 84, (sp ? "2:4" : "dense") + " stride " + stride + " tile " + tileName(tile) + " beta " + beta + " order " + o[0] + "/" + o[1]);
                        }
        }
    }

    /**
     * Rows of src [rows, k] (row stride lds) pruned 2:4 to random positions (two of each 4, increasing): kept values [rows,
     * k / 2] (stride ldv), k_prune24's words [rows, k / 32] (stride ldm) and the pruned rows dense with zeros (stride lds).
     */
    private static void prune24(Random r, short[] src, int rows, int k, int lds, short[] kept, int ldv, int[] meta, int ldm, short[] masked) {
        for (int row = 0; row < rows; row++)
            for (int g = 0; g < k / 4; g++) {
                int i0 = r.nextInt(3), i1 = i0 + 1 + r.nextInt(3 - i0);
                meta[row * ldm + g / 8] |= (i0 | i1 << 2) << (4 * (g % 8));
                kept[row * ldv + 2 * g] = src[row * lds + 4 * g + i0];
                kept[row * ldv + 2 * g + 1] = src[row * lds + 4 * g + i1];
                masked[row * lds + 4 * g + i0] = src[row * lds + 4 * g + i0];
                masked[row * lds + 4 * g + i1] = src[row * lds + 4 * g + i1];
            }
    }

    /** The warpgroup GEMM refuses shapes off its tile and slice sizes, and rows that are not 16-byte aligned. */
    @Test
    void warpgroupGemmRejectsBadShapes() {
        MemorySegment a = mem.dev(2L * 128 * 256), bt = mem.dev(2L * 256 * 256), c = mem.dev(4L * 128 * 256), ok = mem.dev(4);
        long[][] bad = { { 96, 128, 64, 64, 64, 64 }, { 64, 96, 64, 64, 64, 64 }, { 64, 128, 48, 64, 64, 64 }, { 64, 128, 64, 60, 64, 64 },
                { 64, 128, 64, 64, 63, 64 }, { 64, 128, 64, 64, 64, 128 }, { 128, 128, 48, 64, 64, 128 }, { 128, 128, 64, 64, 64, 96 } };
        for (long[] s : bad)   // m, n, k, lda, ldb, rows
            assertThrows(IllegalArgumentException.class, () -> Native.cudaWggemm(a, s[3], bt, s[4], c, s[1], s[0], s[1], s[2], 1f, 0f,
                    MemorySegment.NULL, 0, ok, (int) s[5]), java.util.Arrays.toString(s));
        Native.cudaWggemm(a, 32, bt, 32, c, 128, 128, 128, 32, 1f, 0f, MemorySegment.NULL, 0, ok, 128);   // k = 32 is one slice of the 128-row tile
    }

    /** The probe refuses layouts whose core matrices overlap or leave its shared memory. */
    @Test
    void wgmmaProbeRejectsBadLayouts() {
        MemorySegment a = mem.dev(2048), bt = mem.dev(2048), d = mem.dev(4L * 4096), ok = mem.dev(4);
        for (long[] layout : new long[][]{ { 64, 256 }, { 128, 120 }, { 16, 16 }, { 128, 576 } })
            assertThrows(IllegalArgumentException.class, () -> Native.cudaWgmmaProbe(a, bt, d, layout[0], layout[1], 1, ok, MemorySegment.NULL),
                    "lbo " + layout[0] + " sbo " + layout[1]);
        // wgmma.sp's B has four core matrices along K: at lbo 128 they reach the next row group 256 bytes on
        MemorySegment bt32 = mem.dev(4096), meta = mem.dev(256);
        assertThrows(IllegalArgumentException.class, () -> Native.cudaWgmmaProbe(a, bt32, d, 128, 256, 1, ok, meta));
    }

    @Test
    void implicitGemmConvolutionEqualsTheLoweredProduct() {
        eachTile(tile -> implicitGemmConvolutionEqualsTheLoweredProduct(tile));
    }

    private void implicitGemmConvolutionEqualsTheLoweredProduct(int tile) {
        Random r = new Random(5);   // (cuBLAS is not needed: the emulator's own GemmEx gives the lowered reference, a device float64)
        // n, c, h, w, kh, kw, sh, sw, ph, pw, cout: K below, at and above one 32-slice; Cout below, at and past one 64-tile;
        // positions not a multiple of the 128-tile; stride 2; 1x1; a 7x7 stem; no padding
        int[][] cases = { { 2, 3, 9, 11, 3, 3, 1, 1, 1, 1, 5 }, { 3, 16, 8, 8, 3, 3, 1, 1, 1, 1, 64 }, { 2, 8, 13, 7, 3, 3, 2, 2, 1, 1, 70 },
                { 1, 5, 6, 6, 1, 1, 1, 1, 0, 0, 9 }, { 2, 4, 10, 10, 7, 7, 2, 2, 3, 3, 3 }, { 2, 32, 5, 5, 3, 3, 1, 1, 0, 0, 130 } };
        for (int[] cs : cases) {
            int n = cs[0], c = cs[1], h = cs[2], w = cs[3], kh = cs[4], kw = cs[5], sh = cs[6], sw = cs[7], ph = cs[8], pw = cs[9], cout = cs[10];
            int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1, k = c * kh * kw, ldw = (cout & 1) == 1 ? k + 5 : (k + 7) / 8 * 8 + 8, plane = ho * wo;   // rows unaligned, or 16-byte aligned (the vector loads)
            long[] g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
            String at = java.util.Arrays.toString(cs) + " tile " + tile;
            float[] x = new float[n * c * h * w];
            for (int i = 0; i < x.length; i++) x[i] = r.nextInt(16) == 0 ? (r.nextBoolean() ? 0f : -0f) : (float) r.nextGaussian();
            short[] wt = new short[cout * ldw];
            for (int o = 0; o < cout; o++)
                for (int j = 0; j < ldw; j++) wt[o * ldw + j] = j < k ? Bf16.of((float) r.nextGaussian()) : (short) 0x7fc0;   // NaN past K: never read
            MemorySegment dx = mem.upload(x), dw = mem.upload(wt);
            float[] ref = Cuda.isEmulated() ? lowered(dx, g, dw, ldw, cout) : null;
            for (int[] o : orders()) {
                order(o);
                MemorySegment dy = mem.dev(4L * n * cout * plane);
                Native.cudaConvIgemm(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dw, ldw, cout, dy);
                float[] y = mem.downloadFloats(dy, (long) n * cout * plane);
                if (ref != null) assertBits(ref, y, at + " order " + o[0] + "/" + o[1]);   // the emulator: its GemmEx's sums in its order
                else assertConv((img, oc, oh, ow) -> y[((img * cout + oc) * ho + oh) * wo + ow], x,
                        (oc, ci, a, b) -> Bf16.value(wt[oc * ldw + (ci * kh + a) * kw + b]), n, c, h, w, kh, kw, sh, sw, ph, pw, cout, ho, wo, k, at);
            }
        }
    }

    /**
     * The implicit GEMM with K ordered channels fastest (fst_cuda_wtap16's weight; with the channels a multiple of the
     * thread's 16 or 8 values, one tap per thread and slice): the reordered weight bit for bit, the convolution against
     * float64 of the same bf16-rounded operands, on both tiles, at channel counts that take the one-tap gather on one tile
     * or both (16, 24, 48) and the general one (3, 5).
     */
    @Test
    void channelsFastestImplicitGemmEqualsItsDefinition() {
        eachTile(tile -> channelsFastestImplicitGemmEqualsItsDefinition(tile));
    }

    private void channelsFastestImplicitGemmEqualsItsDefinition(int tile) {
        Random r = new Random(15);
        int[][] cases = { { 2, 16, 7, 9, 3, 3, 1, 1, 1, 1, 20 }, { 1, 24, 6, 6, 3, 3, 2, 2, 1, 1, 70 }, { 2, 48, 5, 5, 1, 1, 1, 1, 0, 0, 9 },
                { 2, 3, 9, 9, 3, 3, 1, 1, 1, 1, 8 }, { 1, 5, 8, 8, 7, 7, 2, 2, 3, 3, 4 } };
        for (int[] cs : cases) {
            int n = cs[0], c = cs[1], h = cs[2], w = cs[3], kh = cs[4], kw = cs[5], sh = cs[6], sw = cs[7], ph = cs[8], pw = cs[9], cout = cs[10];
            int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1, khw = kh * kw, k = c * khw, ldw = k + 3, plane = ho * wo;
            String at = java.util.Arrays.toString(cs) + " tile " + tile;
            float[] x = new float[n * c * h * w], wt = new float[cout * k];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            for (int i = 0; i < wt.length; i++) wt[i] = (float) r.nextGaussian();
            MemorySegment dx = mem.upload(x), dw = mem.upload(wt), w16 = mem.dev(2L * cout * ldw), dy = mem.dev(4L * n * cout * plane);
            Native.cudaWtap16(dw, cout, c, khw, w16, ldw);
            short[] got16 = mem.downloadShorts(w16, (long) cout * ldw);
            for (int co = 0; co < cout; co++)
                for (int t = 0; t < khw; t++)
                    for (int ci = 0; ci < c; ci++)
                        assertEquals(Bf16.of(wt[(co * c + ci) * khw + t]), got16[co * ldw + t * c + ci], "reordered weight " + at);
            Native.cudaConvIgemm(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, w16, ldw, cout, dy, true);
            float[] y = mem.downloadFloats(dy, (long) n * cout * plane);
            assertConv((img, oc, oh, ow) -> y[((img * cout + oc) * ho + oh) * wo + ow], x, (oc, ci, a, b) -> Bf16.round(wt[(oc * c + ci) * khw + a * kw + b]),
                    n, c, h, w, kh, kw, sh, sw, ph, pw, cout, ho, wo, k, at);
        }
    }

    /**
     * The 2:4 implicit GEMM (mma.sp) on W as fst_cuda_prune24 compresses it (kept values rounded to bf16, metadata words)
     * against the dense implicit GEMM on the masked W: on the emulator the same sums in the same order (the pruned terms
     * add zeros), bit for bit; on a device within K 2^-23 of the sum of |products| of a float64 reference. Geometries as
     * above, with K not a multiple of 4 or of 32 (the padding groups' metadata).
     */
    @Test
    void sparseImplicitGemmEqualsTheDenseOneOnTheMaskedWeight() {
        eachTile(tile -> sparseImplicitGemmEqualsTheDenseOneOnTheMaskedWeight(tile));
    }

    private void sparseImplicitGemmEqualsTheDenseOneOnTheMaskedWeight(int tile) {
        Random r = new Random(6);
        int[][] cases = { { 2, 3, 9, 11, 3, 3, 1, 1, 1, 1, 5 }, { 3, 16, 8, 8, 3, 3, 1, 1, 1, 1, 64 }, { 2, 8, 13, 7, 3, 3, 2, 2, 1, 1, 70 },
                { 1, 5, 6, 6, 1, 1, 1, 1, 0, 0, 9 }, { 2, 4, 10, 10, 7, 7, 2, 2, 3, 3, 3 }, { 2, 32, 5, 5, 3, 3, 1, 1, 0, 0, 130 } };
        for (int[] cs : cases) {
            int n = cs[0], c = cs[1], h = cs[2], w = cs[3], kh = cs[4], kw = cs[5], sh = cs[6], sw = cs[7], ph = cs[8], pw = cs[9], cout = cs[10];
            int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1, k = c * kh * kw, plane = ho * wo;
            int groups = (k + 3) / 4, ldv = 2 * groups, ldm = (groups + 7) / 8;
            String at = java.util.Arrays.toString(cs) + " tile " + tile;
            float[] x = new float[n * c * h * w], wt = new float[cout * k];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            for (int i = 0; i < wt.length; i++) wt[i] = (float) r.nextGaussian();
            MemorySegment dx = mem.upload(x), dw = mem.upload(wt), values = mem.dev(4L * cout * ldv), meta = mem.dev(4L * cout * ldm),
                    masked = mem.dev(4L * cout * k), v16 = mem.dev(2L * cout * ldv), m16 = mem.dev(2L * cout * k);
            Native.cudaPrune24(cout, k, dw, k, values, meta, masked, k, MemorySegment.NULL, 0);
            Native.cudaF32ToBf16(values, v16, (long) cout * ldv);
            Native.cudaF32ToBf16(masked, m16, (long) cout * k);
            MemorySegment dense = mem.dev(4L * n * cout * plane);
            Native.cudaConvIgemm(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, m16, k, cout, dense);
            float[] ref = mem.downloadFloats(dense, (long) n * cout * plane), wm = mem.downloadFloats(masked, (long) cout * k);
            for (int[] o : orders()) {
                order(o);
                MemorySegment dy = mem.dev(4L * n * cout * plane);
                Native.cudaConvIgemmSparse(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, v16, ldv, meta, ldm, cout, dy, false);
                float[] y = mem.downloadFloats(dy, (long) n * cout * plane);
                if (Cuda.isEmulated()) assertBits(ref, y, at + " order " + o[0] + "/" + o[1]);
                else assertConv((img, oc, oh, ow) -> y[((img * cout + oc) * ho + oh) * wo + ow], x,
                        (oc, ci, a, b) -> Bf16.round(wm[oc * k + (ci * kh + a) * kw + b]), n, c, h, w, kh, kw, sh, sw, ph, pw, cout, ho, wo, k, at);
            }
        }
        MemorySegment dx = mem.upload(new float[2 * 3 * 25]), v = mem.dev(2L * 4 * 14), m = mem.dev(4L * 4), dy = mem.dev(4L * 2 * 4 * 25);
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvIgemmSparse(dx, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 5, 5, v, 13, m, 1, 4, dy, false), "ldv < 2 groups");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvIgemmSparse(dx, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 5, 5, v, 14, m, 0, 4, dy, false), "ldm < words");
    }

    /**
     * Eq. 2 of a stride-1 convolution as a convolution of dY with the transposed, tap-reversed weight (fst_cuda_wflip16, then
     * the implicit GEMM at padding k - 1 - p): the flipped weight bit for bit, dX against Eq. 2's definition (W^T dY folded
     * back) in float64 of the same bf16-rounded operands.
     */
    @Test
    void eq2OfAStrideOneConvolutionIsTheConvolutionOfDyWithTheFlippedWeight() {
        eachTile(tile -> eq2OfAStrideOneConvolutionIsTheConvolutionOfDyWithTheFlippedWeight(tile));
    }

    private void eq2OfAStrideOneConvolutionIsTheConvolutionOfDyWithTheFlippedWeight(int tile) {
        Random r = new Random(8);
        // n, cin, h, w, k, padding, cout: "same" 3x3, no padding, Cin past one 64-tile, 1x1, a 7x7 with padding 3
        int[][] cases = { { 2, 3, 9, 11, 3, 1, 5 }, { 1, 4, 6, 7, 3, 0, 6 }, { 2, 70, 6, 5, 3, 1, 8 }, { 1, 4, 7, 7, 1, 0, 9 }, { 2, 3, 10, 10, 7, 3, 4 }, { 2, 5, 7, 8, 3, 1, 32 }, { 1, 3, 6, 6, 3, 1, 16 } };
        for (int[] cs : cases) {
            int n = cs[0], cin = cs[1], h = cs[2], w = cs[3], k = cs[4], p = cs[5], cout = cs[6], ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1;
            int kk = cout * k * k, ldd = kk + 3, q = k - 1 - p;
            String at = java.util.Arrays.toString(cs) + " tile " + tile;
            float[] wt = new float[cout * cin * k * k], dy = new float[n * cout * ho * wo];
            for (int i = 0; i < wt.length; i++) wt[i] = (float) r.nextGaussian();
            for (int i = 0; i < dy.length; i++) dy[i] = (float) r.nextGaussian();
            for (boolean cfast : new boolean[]{ false, true }) {
            MemorySegment dw = mem.upload(wt), ddy = mem.upload(dy), flipped = mem.dev(2L * cin * ldd), dx = mem.dev(4L * n * cin * h * w);
            Native.cudaWflip16(dw, cout, cin, k, k, flipped, ldd, cfast);
            short[] f = mem.downloadShorts(flipped, (long) cin * ldd);
            for (int ci = 0; ci < cin; ci++)
                for (int co = 0; co < cout; co++)
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++)
                            assertEquals(Bf16.of(wt[((co * cin + ci) * k + (k - 1 - a)) * k + (k - 1 - b)]),
                                    f[ci * ldd + (cfast ? (a * k + b) * cout + co : (co * k + a) * k + b)], "flipped weight " + at + " cfast " + cfast);
            Native.cudaConvIgemm(ddy, n, cout, ho, wo, k, k, 1, 1, q, q, h, w, flipped, ldd, cin, dx, cfast);
            float[] got = mem.downloadFloats(dx, (long) n * cin * h * w);
            assertEq2(got, dy, (co, ci, a, b) -> Bf16.round(wt[((co * cin + ci) * k + a) * k + b]), n, cin, h, w, k, p, cout, ho, wo, kk, at + " cfast " + cfast);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Native.cudaWflip16(mem.dev(64), 2, 2, 2, 2, mem.dev(64), 7), "ldd < cout*kh*kw");
    }

    /**
     * Eq. 2 with S(W^T) 2:4 along Cout as a 2:4 convolution of dY: fst_cuda_prune24_t's kept values and metadata of W^T
     * reordered tap-reversed with K as (tap, co) (fst_cuda_conv24_t), then the 2:4 implicit GEMM with channels fastest,
     * against Eq. 2's definition in float64 on S(W^T) (prune24_t's masked copy) and dY, both rounded to bf16.
     */
    @Test
    void eq2WithSparseWtIsATwoFourConvolutionOfDy() {
        eachTile(tile -> eq2WithSparseWtIsATwoFourConvolutionOfDy(tile));
    }

    private void eq2WithSparseWtIsATwoFourConvolutionOfDy(int tile) {
        Random r = new Random(9);
        // n, cin, h, w, k, padding, cout (a multiple of 32)
        int[][] cases = { { 2, 3, 9, 11, 3, 1, 32 }, { 1, 70, 6, 5, 3, 0, 64 }, { 2, 5, 7, 7, 1, 0, 32 } };
        for (int[] cs : cases) {
            int n = cs[0], cin = cs[1], h = cs[2], w = cs[3], k = cs[4], p = cs[5], cout = cs[6], ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1;
            int khw = k * k, kk = cin * khw, q = k - 1 - p;
            String at = java.util.Arrays.toString(cs) + " tile " + tile;
            float[] wt = new float[cout * kk], dy = new float[n * cout * ho * wo];
            for (int i = 0; i < wt.length; i++) wt[i] = (float) r.nextGaussian();
            for (int i = 0; i < dy.length; i++) dy[i] = (float) r.nextGaussian();
            MemorySegment dw = mem.upload(wt), ddy = mem.upload(dy), vt = mem.dev(4L * kk * cout / 2), mt = mem.dev(4L * kk * cout / 32),
                    maskedT = mem.dev(4L * kk * cout), v = mem.dev(2L * kk * cout / 2), m = mem.dev(4L * kk * cout / 32), dx = mem.dev(4L * n * cin * h * w);
            Native.cudaPrune24Transposed(cout, kk, dw, kk, vt, mt, maskedT, cout, MemorySegment.NULL, 0);
            Native.cudaConv24T(vt, mt, cin, cout, khw, v, m);
            Native.cudaConvIgemmSparse(ddy, n, cout, ho, wo, k, k, 1, 1, q, q, h, w, v, (long) khw * cout / 2, m, (long) khw * cout / 32, cin, dx, true);
            float[] got = mem.downloadFloats(dx, (long) n * cin * h * w), st = mem.downloadFloats(maskedT, (long) kk * cout);   // S(W^T) [K, cout]
            assertEq2(got, dy, (co, ci, a, b) -> Bf16.round(st[((ci * k + a) * k + b) * cout + co]), n, cin, h, w, k, p, cout, ho, wo, (long) cout * khw, at);
        }
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConv24T(mem.dev(64), mem.dev(64), 1, 16, 1, mem.dev(64), mem.dev(64)), "cout % 32");
    }

    /**
     * Eq. 3 as an implicit GEMM (fst_cuda_conv_wgrad): dw = g im2col(x)^T + beta dw. On the emulator with one split the same
     * sums in the same order as im2col_bf16 + GemmEx (bit for bit); with several splits (partial products added in split
     * order), and on a device, against float64 of the same bf16-rounded operands. beta 0 must not read dw (NaN there).
     */
    @Test
    void eq3AsAnImplicitGemmEqualsTheLoweredProduct() {
        Random r = new Random(12);
        // n, c, h, w, kh, kw, sh, sw, ph, pw, cout: K past one 128-tile, Cout past one 64-tile, positions not a multiple of 32,
        // stride 2, 1x1, a 7x7 stem
        int[][] cases = { { 2, 3, 9, 11, 3, 3, 1, 1, 1, 1, 5 }, { 3, 16, 8, 8, 3, 3, 1, 1, 1, 1, 70 }, { 2, 8, 13, 7, 3, 3, 2, 2, 1, 1, 9 },
                { 1, 5, 6, 6, 1, 1, 1, 1, 0, 0, 9 }, { 2, 4, 10, 10, 7, 7, 2, 2, 3, 3, 3 }, { 2, 24, 6, 7, 3, 3, 1, 1, 1, 1, 12 } };
        for (int[] cs : cases) {
            int n = cs[0], c = cs[1], h = cs[2], w = cs[3], kh = cs[4], kw = cs[5], sh = cs[6], sw = cs[7], ph = cs[8], pw = cs[9], cout = cs[10];
            int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1, k = c * kh * kw, npix = n * ho * wo, ldg = npix + 3;
            String at = java.util.Arrays.toString(cs);
            float[] x = new float[n * c * h * w], dw0 = new float[cout * k];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            for (int i = 0; i < dw0.length; i++) dw0[i] = (float) r.nextGaussian();
            short[] g = bf16(r, cout * ldg, false);
            MemorySegment dx = mem.upload(x), dg = mem.upload(g);
            for (float beta : new float[]{ 0f, 1f }) {
                float[] ref = null;
                if (Cuda.isEmulated()) {   // the lowered product: im2col into bf16, GemmEx with im2col transposed
                    MemorySegment cols16 = mem.dev(2L * k * npix), c0 = beta == 0 ? mem.dev(4L * cout * k) : mem.upload(dw0);
                    Native.cudaIm2colBf16(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, cols16, k, npix);
                    Native.cudaGemmEx(false, true, cout, k, npix, 1f, dg, Cuda.R_16BF, ldg, cols16, Cuda.R_16BF, npix, beta, c0, Cuda.R_32F, k, false);
                    ref = mem.downloadFloats(c0, (long) cout * k);
                }
                for (boolean cfast : new boolean[]{ false, true })
                for (long splits : new long[]{ 1, 3, Native.cudaConvWgradSplits(cout, k, npix, 0) }) {
                    float[] nan = new float[cout * k];
                    java.util.Arrays.fill(nan, Float.NaN);
                    MemorySegment ws = mem.dev(4L * splits * cout * k), dd = mem.upload(beta == 0 ? nan : dw0);
                    Native.cudaConvWgrad(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dg, ldg, cout, ws, splits, dd, k, beta, cfast);
                    float[] got = mem.downloadFloats(dd, (long) cout * k);
                    for (int co = 0; co < cout; co++)
                        for (int kk = 0; kk < k; kk++) {
                            String where = at + " beta " + beta + " splits " + splits + " cfast " + cfast + " at " + co + "," + kk;
                            if (ref != null && splits == 1 && !cfast) {
                                assertEquals(Float.floatToRawIntBits(ref[co * k + kk]), Float.floatToRawIntBits(got[co * k + kk]), where);
                                continue;
                            }
                            int ci = kk / (kh * kw), a = kk % (kh * kw) / kw, b = kk % kw;
                            double want = beta * dw0[co * k + kk], mag = Math.abs(want);
                            for (int img = 0; img < n; img++)
                                for (int oh = 0; oh < ho; oh++)
                                    for (int ow = 0; ow < wo; ow++) {
                                        int ih = oh * sh - ph + a, iw = ow * sw - pw + b;
                                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                        double t = (double) Bf16.value(g[co * ldg + (img * ho + oh) * wo + ow]) * Bf16.round(x[((img * c + ci) * h + ih) * w + iw]);
                                        want += t;
                                        mag += Math.abs(t);
                                    }
                            assertEquals(want, got[co * k + kk], (npix + 2) * 0x1p-23 * mag + 1e-30, where);
                        }
                }
            }
        }
        MemorySegment ws = mem.dev(64), dd = mem.dev(64), dx = mem.dev(64), dg = mem.dev(64);
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvWgrad(dx, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, dg, 8, 1, ws, 1, dd, 9, 0f), "ldg < npix");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvWgrad(dx, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, dg, 9, 1, ws, 0, dd, 9, 0f), "no split");
    }

    /**
     * FST3_IR's half-K Eq. 3 with the IR shift and the fixed mask's gather made inside the implicit GEMM's staging
     * (fst_cuda_conv_wgrad_sg) against the two passes it replaces (fst_cuda_shift_gather16's bf16 copy, then
     * fst_cuda_conv_wgrad): the same operand bits and the same kernel, so the same dW bit for bit on either back end, for
     * every shift variant (none, next, previous, wrapped), several splits and both K orders.
     */
    @Test
    void eq3WithTheShiftGatherInsideEqualsTheTwoPasses() {
        Random r = new Random(16);
        // n, c, h, w, k, stride, padding, cout: even output widths (the kept half's lowering: the horizontal stride doubled)
        int[][] cases = { { 2, 3, 8, 8, 3, 1, 1, 5 }, { 1, 16, 8, 8, 3, 2, 1, 70 }, { 2, 8, 6, 10, 1, 1, 0, 9 } };
        float[][] irs = { { 0f, 1, 0 }, { 1f, 1, 0 }, { 0.03f, 1, 1 }, { 0.5f, -1, 0 }, { 0.5f, -1, 1 } };
        for (int[] cs : cases) {
            int n = cs[0], c = cs[1], h = cs[2], w = cs[3], k = cs[4], st = cs[5], p = cs[6], cout = cs[7];
            int ho = (h + 2 * p - k) / st + 1, wo = (w + 2 * p - k) / st + 1, seg = ho * wo, half = (seg + 1) / 2, kk = c * k * k;
            int wk = (w + 2 * p - k) / (2 * st) + 1, npix = n * ho * wk;   // the kept lowering: horizontal stride doubled
            assertEquals(n * half, npix, "the kept positions are the lowering's");
            float[] x = new float[n * c * h * w], dy = new float[cout * n * seg];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            for (int i = 0; i < dy.length; i++) dy[i] = (float) r.nextGaussian();
            float[] nchw = new float[dy.length];   // dy is by channel [cout, n * seg]; the same values as NCHW [n, cout, seg]
            for (int co = 0; co < cout; co++)
                for (int img = 0; img < n; img++)
                    System.arraycopy(dy, co * n * seg + img * seg, nchw, (img * cout + co) * seg, seg);
            MemorySegment dx = mem.upload(x), ddy = mem.upload(dy), dnchw = mem.upload(nchw);
            for (float[] ir : irs)
                for (boolean cfast : new boolean[]{ false, true })
                    for (long splits : new long[]{ 1, 3 }) {
                        String at = java.util.Arrays.toString(cs) + " ir " + java.util.Arrays.toString(ir) + " cfast " + cfast + " splits " + splits;
                        MemorySegment out = mem.dev(4L * cout * n * half), out16 = mem.dev(2L * cout * n * half), ws = mem.dev(4L * splits * cout * kk),
                                twoPass = mem.dev(4L * cout * kk), fused = mem.dev(4L * cout * kk);
                        Native.cudaShiftGather16(ddy, out, out16, (long) cout * n, seg, seg, (int) ir[1], ir[0], ir[2] == 1);
                        Native.cudaConvWgrad(dx, n, c, h, w, k, k, st, 2 * st, p, p, ho, wk, out16, npix, cout, ws, splits, twoPass, kk, 0f, cfast);
                        Native.cudaConvWgradFrom(dx, n, c, h, w, k, k, st, 2 * st, p, p, ho, wk, ddy, (long) n * seg, seg, seg, true, ir[0], (int) ir[1],
                                ir[2] == 1, cout, ws, splits, fused, kk, 0f, cfast);
                        assertArrayEquals(mem.downloadInts(twoPass, (long) cout * kk), mem.downloadInts(fused, (long) cout * kk), at);
                        // the same from NCHW dY (row co a plane apart, image i cout planes apart): no by-channel copy
                        MemorySegment fromNchw = mem.dev(4L * cout * kk);
                        Native.cudaConvWgradFrom(dx, n, c, h, w, k, k, st, 2 * st, p, p, ho, wk, dnchw, seg, seg, (long) cout * seg, true, ir[0], (int) ir[1],
                                ir[2] == 1, cout, ws, splits, fromNchw, kk, 0f, cfast);
                        assertArrayEquals(mem.downloadInts(twoPass, (long) cout * kk), mem.downloadInts(fromNchw, (long) cout * kk), at + " from NCHW");
                    }
            // every position, straight from NCHW (DENSE's Eq. 3) == the bf16 copy of dY by channel through fst_cuda_conv_wgrad
            for (boolean cfast : new boolean[]{ false, true }) {
                int npixAll = n * seg;
                MemorySegment d32 = mem.upload(dy), d16 = mem.dev(2L * cout * npixAll), ws = mem.dev(4L * 3 * cout * kk),
                        viaCopy = mem.dev(4L * cout * kk), direct = mem.dev(4L * cout * kk);
                Native.cudaF32ToBf16(d32, d16, (long) cout * npixAll);
                Native.cudaConvWgrad(dx, n, c, h, w, k, k, st, st, p, p, ho, wo, d16, npixAll, cout, ws, 3, viaCopy, kk, 0f, cfast);
                Native.cudaConvWgradFrom(dx, n, c, h, w, k, k, st, st, p, p, ho, wo, dnchw, seg, seg, (long) cout * seg, false, 0f, 1, false,
                        cout, ws, 3, direct, kk, 0f, cfast);
                assertArrayEquals(mem.downloadInts(viaCopy, (long) cout * kk), mem.downloadInts(direct, (long) cout * kk),
                        java.util.Arrays.toString(cs) + " every position from NCHW, cfast " + cfast);
            }
        }
        MemorySegment any = mem.dev(1024);
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvWgradFrom(any, 1, 1, 4, 4, 1, 1, 1, 2, 0, 0, 4, 2, any, 16, 16, 16, true, 1f, 2, false,
                1, any, 1, any, 1, 0f, false), "shift 2");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvWgradFrom(any, 1, 1, 4, 4, 1, 1, 1, 2, 0, 0, 4, 2, any, 16, 12, 12, true, 1f, 1, false,
                1, any, 1, any, 1, 0f, false), "positions not whole segments");
    }

    @Test
    void implicitGemmConvolutionRejectsBadArguments() {
        MemorySegment dx = mem.upload(new float[2 * 3 * 5 * 5]), dw = mem.upload(new short[4 * 27]), dy = mem.dev(4L * 2 * 4 * 25);
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvIgemm(dx, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 5, 5, dw, 26, 4, dy), "ldw < K");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvIgemm(dx, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 5, 5, dw, 27, 0, dy), "no output channel");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvIgemm(dx, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 4, 5, dw, 27, 4, dy), "ho");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaConvIgemm(MemorySegment.NULL, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 5, 5, dw, 27, 4, dy), "null x");
        IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                () -> Native.cudaConvIgemm(dx, 1, 1 << 16, 1 << 8, 1 << 8, 1, 1, 1, 1, 0, 0, 1 << 8, 1 << 8, dw, 1 << 16, 4, dy), "an image of 2^32 elements");
        assertTrue(big.getMessage().contains("c * h * w"), big.getMessage());
        if (Cuda.isEmulated()) {   // ranges are checked where they can be
            MemorySegment small = mem.dev(4L * 2 * 4 * 25 - 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Native.cudaConvIgemm(dx, 2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 5, 5, dw, 27, 4, small));
            assertTrue(e.getMessage().contains("not inside one device allocation"), e.getMessage());
        }
    }
}
