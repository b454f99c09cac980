package fst4j.shim;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CUDA kernels against the CPU shim (prune.c, conv.c, gemm): bit-identical where the CPU result is exact
 * (pruning, compression, gathers, col2im's summation order), within tolerance for the GEMMs. Skipped, with the
 * reason, where no device is usable; gpu/run.sh runs it on a lent GPU machine.
 */
class CudaKernelsTest {
    private final DeviceBuffers mem = new DeviceBuffers(0x7f, 4);   // unwritten elements show as 0x7f7f7f7f

    @BeforeAll
    static void reportDevice() {
        System.out.println("CUDA " + Cuda.status());
    }

    /** Per test (not per class), so that every test is reported as skipped with the reason. */
    @BeforeEach
    void needsDevice() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
    }

    @AfterEach
    void freeAll() { mem.close(); }

    // ---- helpers ----

    private static int[] ints(MemorySegment h, long n) { return h.asSlice(0, 4 * n).toArray(JAVA_INT); }

    /**
     * Bits with every NaN written as the one canonical NaN, for results of arithmetic: IEEE 754 leaves the payload of a
     * NaN produced from a NaN operand to the hardware (x86 keeps the operand's, 0x7fc00000; the GPU returns 0x7fffffff),
     * so "bit for bit" holds for every other value and for NaN-ness, not for NaN payloads.
     */
    private static int[] nanCanonical(int[] bits) {
        for (int i = 0; i < bits.length; i++) if (Float.isNaN(Float.intBitsToFloat(bits[i]))) bits[i] = 0x7fc00000;
        return bits;
    }

    /** Random values with the special cases the selection must order: ties, zeros of both signs, NaN, infinities, subnormals. */
    static float[] values(Random r, int n) {
        float[] v = new float[n];
        float[] specials = { 0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE, -1f, 1f, 1f, 0.5f };
        for (int i = 0; i < n; i++) v[i] = r.nextInt(8) == 0 ? specials[r.nextInt(specials.length)] : (float) r.nextGaussian();
        return v;
    }


    // ---- pruning ----

    @Test
    void prune24MatchesTheCpuBitForBit() {
        Random r = new Random(1);
        int[][] shapes = { { 1, 1 }, { 3, 5 }, { 7, 33 }, { 2, 64 }, { 64, 256 }, { 33, 1000 }, { 5, 27 } };
        for (int[] s : shapes) {
            int rows = s[0], k = s[1], ldw = k + (rows % 2 == 0 ? 0 : 3), ldd = k + 1;
            int groups = (k + 3) / 4, ldv = 2 * groups, ldm = (groups + 7) / 8;
            MemorySegment w = mem.host(values(r, rows * ldw));
            MemorySegment cv = mem.host(4L * rows * ldv), cm = mem.host(4L * rows * ldm), cd = mem.host(4L * rows * ldd);
            Native.prune24Compress(rows, k, w, ldw, cv, cm, cd, ldd, 1);
            MemorySegment dw = mem.upload(w), dv = mem.dev(4L * rows * ldv), dm = mem.dev(4L * rows * ldm), dd = mem.dev(4L * rows * ldd), d16 = mem.dev(2L * rows * k);
            Native.cudaPrune24(rows, k, dw, ldw, dv, dm, dd, ldd, d16, k);
            String at = rows + "x" + k;
            assertArrayEquals(ints(cv, (long) rows * ldv), mem.downloadInts(dv, (long) rows * ldv), "values " + at);
            assertArrayEquals(ints(cm, (long) rows * ldm), mem.downloadInts(dm, (long) rows * ldm), "meta " + at);
            int[] gd = mem.downloadInts(dd, (long) rows * ldd), cdi = ints(cd, (long) rows * ldd);
            MemorySegment h16 = mem.host(2L * rows * k);
            Cuda.copyToHost(h16, d16, 2L * rows * k);
            short[] g16 = h16.asSlice(0, 2L * rows * k).toArray(JAVA_SHORT);
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < k; j++) {
                    assertEquals(cdi[i * ldd + j], gd[i * ldd + j], "dense " + at + " at " + i + "," + j);
                    assertEquals(Bf16.bits(cdi[i * ldd + j]), g16[i * k + j], "bf16 dense " + at + " at " + i + "," + j);
                }
            // the bf16 copy only (no compressed form: cuSPARSELt's operand), into a wider block whose padding stays
            short[] only = copiesOnly(false, rows, k, dw, ldw, k + 5);
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < k + 5; j++)
                    assertEquals(j < k ? g16[i * k + j] : (short) 0x7f7f, only[i * (k + 5) + j], "bf16 copy only " + at + " at " + i + "," + j);
        }
        assertThrows(IllegalArgumentException.class, () -> Native.cudaPrune24(2, 8, mem.dev(64), 8, mem.dev(64), MemorySegment.NULL,
                MemorySegment.NULL, 0, mem.dev(32), 8), "values without meta");
        assertThrows(IllegalArgumentException.class, () -> Native.cudaPrune24Transposed(8, 2, mem.dev(64), 2, MemorySegment.NULL, MemorySegment.NULL,
                MemorySegment.NULL, 0, MemorySegment.NULL, 0), "no output at all");
    }

    /** The masked bf16 copy alone (values and meta NULL) into a block of 0x7f bytes [rows', ld16]: its bf16 bits. */
    private short[] copiesOnly(boolean transposed, int a, int b, MemorySegment dw, int ldw, int ld16) {
        int outRows = transposed ? b : a;
        MemorySegment h = mem.host(2L * outRows * ld16);
        h.fill((byte) 0x7f);
        MemorySegment d = mem.upload(h);
        if (transposed) Native.cudaPrune24Transposed(a, b, dw, ldw, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, 0, d, ld16);
        else Native.cudaPrune24(a, b, dw, ldw, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, 0, d, ld16);
        return mem.downloadShorts(d, (long) outRows * ld16);
    }

    @Test
    void prune24TransposedMatchesTheCpuBitForBit() {
        Random r = new Random(2);
        int[][] shapes = { { 1, 1 }, { 5, 3 }, { 33, 7 }, { 64, 300 }, { 130, 65 }, { 256, 64 } };
        for (int[] s : shapes) {
            int cout = s[0], k = s[1], ldw = k + 2;
            int groups = (cout + 3) / 4, ldv = 2 * groups, ldm = (groups + 7) / 8;
            float[] wv = values(r, cout * ldw);
            MemorySegment w = mem.host(wv);
            MemorySegment cv = mem.host(4L * k * ldv), cm = mem.host(4L * k * ldm);
            Native.prune24CompressTransposed(cout, k, w, ldw, cv, cm, 1);
            // the masked W^T, from the CPU's non-transposed kernel on an explicit transpose
            float[] wt = new float[k * cout];
            for (int c = 0; c < cout; c++) for (int j = 0; j < k; j++) wt[j * cout + c] = wv[c * ldw + j];
            MemorySegment tv = mem.host(4L * k * ldv), tm = mem.host(4L * k * ldm), td = mem.host(4L * k * cout);
            Native.prune24Compress(k, cout, mem.host(wt), cout, tv, tm, td, cout, 1);
            assertArrayEquals(ints(cv, (long) k * ldv), ints(tv, (long) k * ldv), "CPU transposed vs CPU on the transpose");
            MemorySegment dw = mem.upload(w), dv = mem.dev(4L * k * ldv), dm = mem.dev(4L * k * ldm), dd = mem.dev(4L * k * cout), d16 = mem.dev(2L * k * cout);
            Native.cudaPrune24Transposed(cout, k, dw, ldw, dv, dm, dd, cout, d16, cout);
            String at = cout + "x" + k;
            assertArrayEquals(ints(cv, (long) k * ldv), mem.downloadInts(dv, (long) k * ldv), "values " + at);
            assertArrayEquals(ints(cm, (long) k * ldm), mem.downloadInts(dm, (long) k * ldm), "meta " + at);
            assertArrayEquals(ints(td, (long) k * cout), mem.downloadInts(dd, (long) k * cout), "masked W^T " + at);
            // the bf16 copy only: a thread per group (coalesced stores), the same bits as the full kernel's copy
            short[] full = mem.downloadShorts(d16, (long) k * cout), only = copiesOnly(true, cout, k, dw, ldw, cout + 3);
            for (int i = 0; i < k; i++)
                for (int j = 0; j < cout + 3; j++)
                    assertEquals(j < cout ? full[i * cout + j] : (short) 0x7f7f, only[i * (cout + 3) + j], "bf16 W^T copy only " + at + " at " + i + "," + j);
        }
    }

    // ---- the kernel profile ----

    @Test
    void theKernelProfileCountsLaunchesWhileOnAndResets() {
        Random r = new Random(8);
        MemorySegment dy = mem.upload(mem.host(values(r, 3 * 40))), out = mem.dev(4L * 3 * 40);
        boolean was = Cuda.setKernelProfile(true);
        try {
            Cuda.kernelProfile(true);
            for (int i = 0; i < 3; i++) Native.cudaShiftGather(dy, out, 3, 40, 8, 1, 0.03f, true);
            String table = Cuda.kernelProfile(true);
            String row = table.lines().filter(l -> l.startsWith("fst_k_shift_gather ")).findFirst()
                    .orElseThrow(() -> new AssertionError("no shift-gather row in\n" + table));
            assertEquals("3", row.trim().split("\\s+")[1], "calls in " + row);
            assertTrue(table.lines().anyMatch(l -> l.startsWith("total")), table);
            assertTrue(Cuda.kernelProfile(false).lines().noneMatch(l -> l.startsWith("fst_k_")), "reset leaves no rows");
            Cuda.setKernelProfile(false);
            Native.cudaShiftGather(dy, out, 3, 40, 8, 1, 0.03f, true);
            assertTrue(Cuda.kernelProfile(true).startsWith("off"), "switched off, nothing is booked");
        } finally {
            Cuda.setKernelProfile(was);
        }
    }

    // ---- IR shift + half-K gather ----

    @Test
    void shiftGatherMatchesTheCpuBitForBit() {
        Random r = new Random(3);
        for (int seg : new int[] { 1, 2, 7, 64, 49 })
            for (int shift : new int[] { 1, -1 })
                for (float coeff : new float[] { 0f, 0.03f, 1f })
                    for (boolean circular : new boolean[] { false, true }) {
                        int rows = 3, len = seg * 5, h = (seg + 1) / 2, outN = rows * (len / seg) * h;
                        MemorySegment dy = mem.host(values(r, rows * len)), out = mem.host(4L * outN);
                        Native.shiftGather(dy, out, rows, len, seg, shift, coeff, circular, 1);
                        MemorySegment ddy = mem.upload(dy), dout = mem.dev(4L * outN);
                        Native.cudaShiftGather(ddy, dout, rows, len, seg, shift, coeff, circular);
                        String at = "seg " + seg + " shift " + shift + " coeff " + coeff + " circular " + circular;
                        assertArrayEquals(nanCanonical(ints(out, outN)), nanCanonical(mem.downloadInts(dout, outN)), at);
                        // with the bf16 copy: the same float32 output, and its bf16 rounding beside it
                        MemorySegment dout2 = mem.dev(4L * outN), d16 = mem.dev(2L * outN);
                        Native.cudaShiftGather16(ddy, dout2, d16, rows, len, seg, shift, coeff, circular);
                        int[] got = mem.downloadInts(dout2, outN);
                        assertArrayEquals(nanCanonical(ints(out, outN)), nanCanonical(got), at + " (with bf16)");
                        short[] got16 = mem.downloadShorts(d16, outN);   // the rounding of the device's own output
                        for (int i = 0; i < outN; i++) {
                            boolean nan = (got[i] & 0x7fffffff) > 0x7f800000;   // a NaN's sign and payload are not specified
                            if (nan) assertTrue((got16[i] & 0x7fff) > 0x7f80, at + " bf16 at " + i + ": a NaN stays a NaN");
                            else assertEquals(Bf16.bits(got[i]), got16[i], at + " bf16 at " + i);
                        }
                    }
    }

    @Test
    void f32ToBf16RoundsToNearestEvenAndKeepsNaN() {
        Random r = new Random(7);
        int n = 1031;
        float[] v = values(r, n);
        v[0] = Float.intBitsToFloat(0x3f808000);   // exactly half way, even below: rounds down
        v[1] = Float.intBitsToFloat(0x3f818000);   // exactly half way, odd below: rounds up
        v[2] = Float.intBitsToFloat(0xff800001);   // a signalling NaN with the sign set stays a NaN
        MemorySegment d = mem.upload(mem.host(v)), out = mem.dev(2L * n);
        Native.cudaF32ToBf16(d, out, n);
        Cuda.sync();
        MemorySegment h = mem.host(2L * n);
        Cuda.copyToHost(h, out, 2L * n);
        for (int i = 0; i < n; i++)
            assertEquals(Bf16.bits(Float.floatToRawIntBits(v[i])), h.getAtIndex(JAVA_SHORT, i), "element " + i + " = " + v[i]);
    }

    // ---- convolution lowering ----

    /** n, c, h, w, kh, kw, sh, sw, ph, pw */
    static final int[][] GEOMS = { { 2, 3, 8, 8, 3, 3, 1, 1, 1, 1 }, { 2, 4, 9, 7, 3, 3, 2, 2, 1, 1 }, { 1, 5, 6, 6, 1, 1, 2, 2, 0, 0 },
            { 1, 3, 15, 15, 7, 7, 2, 2, 3, 3 }, { 3, 2, 5, 8, 2, 3, 1, 2, 0, 1 },
            { 3, 2, 7, 5, 3, 3, 1, 1, 1, 1 },     // 35 columns per image: groups of four cross output rows and images
            { 2, 3, 5, 12, 3, 3, 1, 1, 1, 1 },    // "same" 3x3 with rows of 12: the vectorised im2col's three loads per row
            { 2, 3, 6, 14, 3, 3, 1, 1, 1, 1 },    // rows of 14 (ResNet-18's layer3): groups of four in a row, unaligned, or across two
            { 3, 2, 7, 7, 3, 3, 1, 1, 1, 1 },     // rows of 7 (layer4): 49 columns per image, groups across rows and images
            // horizontal stride 2 (the two 16-byte loads per row): Eq. 3's kept half (vertical stride 1), a stride-2
            // convolution, unaligned rows of 14 with groups across rows, and no vertical padding
            { 2, 3, 6, 16, 3, 3, 1, 2, 1, 1 }, { 2, 3, 8, 16, 3, 3, 2, 2, 1, 1 }, { 1, 2, 5, 14, 3, 3, 1, 2, 1, 1 },
            { 2, 2, 6, 16, 3, 3, 1, 2, 0, 1 },
            // rows of 16 and 24 at stride 1 and of 8 at stride 2: the eight-column span kernels (mode 8), aligned 16-byte
            // loads, two and three groups per row, the last one ending at the padding
            { 2, 3, 5, 16, 3, 3, 1, 1, 1, 1 }, { 1, 2, 4, 24, 3, 3, 1, 1, 1, 1 }, { 2, 3, 7, 16, 3, 3, 2, 2, 1, 1 },
            { 2, 3, 7, 15, 3, 3, 2, 2, 1, 1 } };   // rows of 15 at stride 2 (Wo 8): the eight-column span's unaligned rows and right edge

    /** Mode 8 takes the eight-column kernels where they apply (the values are checked in the test below), mode 1 never. */
    @Test
    void theEightColumnIm2colRunsWhereRowsHoldMultiplesOfEight() {
        Random r = new Random(5);
        int[][] cases = { { 2, 3, 5, 16, 1, 1 }, { 2, 3, 7, 16, 2, 1 }, { 2, 3, 5, 12, 1, 0 } };   // n, c, h, w, stride, eight-column?
        boolean prof = Cuda.setKernelProfile(true);
        int was = Native.cudaIm2colVecMode(8);
        try {
            for (int[] g : cases) {
                int n = g[0], c = g[1], h = g[2], w = g[3], s = g[4], ho = (h + 2 - 3) / s + 1, wo = (w + 2 - 3) / s + 1;
                long rowsP = c * 9L, colsP = (n * ho * wo + 7) / 8 * 8;
                MemorySegment dx = mem.upload(mem.host(values(r, n * c * h * w))), out = mem.dev(2L * rowsP * colsP);
                for (int mode : new int[]{ 8, 1 }) {
                    Native.cudaIm2colVecMode(mode);
                    Cuda.kernelProfile(true);
                    Native.cudaIm2colBf16(dx, n, c, h, w, 3, 3, s, s, 1, 1, ho, wo, out, rowsP, colsP);
                    String table = Cuda.kernelProfile(true), x8 = "fst_k_im2col_bf16_s" + s + "x8 ";
                    assertEquals(mode == 8 && g[5] == 1, table.lines().anyMatch(l -> l.startsWith(x8)), java.util.Arrays.toString(g) + " mode " + mode + "\n" + table);
                }
            }
        } finally {
            Native.cudaIm2colVecMode(was);
            Cuda.setKernelProfile(prof);
        }
    }

    @Test
    void im2colAndCol2imMatchTheCpuBitForBit() {
        Random r = new Random(4);
        for (int[] g : GEOMS) {
            int n = g[0], c = g[1], h = g[2], w = g[3], kh = g[4], kw = g[5], sh = g[6], sw = g[7], ph = g[8], pw = g[9];
            int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1, kk = c * kh * kw, cols = n * ho * wo, ld = cols + 5;
            String at = Arrays.toString(g);
            MemorySegment x = mem.host(values(r, n * c * h * w)), out = mem.host(4L * kk * ld);
            out.fill((byte) 0);
            Native.im2col(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, out, ld, 1);
            MemorySegment dx = mem.upload(x), dout = mem.dev(4L * kk * ld);
            Native.cudaIm2col(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dout, ld);
            int[] cpu = ints(out, (long) kk * ld), gpu = mem.downloadInts(dout, (long) kk * ld);
            for (int i = 0; i < kk; i++)
                assertArrayEquals(Arrays.copyOfRange(cpu, i * ld, i * ld + cols), Arrays.copyOfRange(gpu, i * ld, i * ld + cols), "im2col " + at + " row " + i);

            // straight into a zero-padded bf16 operand (rows and columns past the matrix, into a block of 0x7f bytes):
            // an odd padded width (a column per thread) and widths that are multiples of 4 (four columns and one 8-byte
            // store per thread), with whole groups of four padding columns past the matrix
            // (and, for "same" 3x3 stride-1 geometries, the vectorised kernel, off and on: aligned 16-byte loads at rows of
            // a multiple of 4, single loads for unaligned groups of four within a row, the general walk across rows)
            int rowsP = kk + 5;
            // (mode 8: the eight-column span kernels, where output rows hold a multiple of 8 positions and the padded width
            // is a multiple of 8; the others fall back to mode 1's kernels)
            for (int vec : new int[]{ 0, 1, 8 }) {
                int was = Native.cudaIm2colVecMode(vec);
                try {
                    for (int colsP : new int[]{ cols + 3, (cols + 3) / 4 * 4 + 4, (cols + 3) / 4 * 4 + 8, (cols + 7) / 8 * 8 + 8 }) {
                        MemorySegment lowered16 = mem.dev(2L * rowsP * colsP);
                        Native.cudaIm2colBf16(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, lowered16, rowsP, colsP);
                        short[] got16 = mem.downloadShorts(lowered16, (long) rowsP * colsP);
                        for (int i = 0; i < rowsP; i++)
                            for (int j = 0; j < colsP; j++) {
                                short want = i < kk && j < cols ? Bf16.bits(cpu[i * ld + j]) : 0;
                                assertEquals(want, got16[i * colsP + j], "im2col bf16 " + at + " width " + colsP + " mode " + vec + " at " + i + "," + j);
                            }
                    }
                } finally {
                    Native.cudaIm2colVecMode(was);
                }
            }

            MemorySegment colsH = mem.host(values(r, kk * ld)), dxc = mem.host(4L * n * c * h * w);
            Native.col2im(colsH, ld, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dxc, 1);
            MemorySegment dcols = mem.upload(colsH), ddx = mem.dev(4L * n * c * h * w);
            Native.cudaCol2im(dcols, ld, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, ddx);
            assertArrayEquals(nanCanonical(ints(dxc, (long) n * c * h * w)), nanCanonical(mem.downloadInts(ddx, (long) n * c * h * w)), "col2im " + at);

            // from bf16 columns (a bf16 GEMM product): the CPU's col2im of the same values widened, bit for bit
            short[] c16 = new short[kk * ld];
            float[] widened = new float[kk * ld];
            for (int i = 0; i < c16.length; i++) {
                c16[i] = Bf16.of(colsH.getAtIndex(JAVA_FLOAT, i));
                widened[i] = Bf16.value(c16[i]);
            }
            MemorySegment wideH = mem.host(widened), dxw = mem.host(4L * n * c * h * w);
            Native.col2im(wideH, ld, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dxw, 1);
            MemorySegment d16 = mem.upload(c16), ddx16 = mem.dev(4L * n * c * h * w);
            Native.cudaCol2imBf16(d16, ld, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, ddx16);
            assertArrayEquals(nanCanonical(ints(dxw, (long) n * c * h * w)), nanCanonical(mem.downloadInts(ddx16, (long) n * c * h * w)), "col2im bf16 " + at);
        }
    }

    @Test
    void im2colAtMatchesTheCpuBitForBit() {
        Random r = new Random(5);
        for (int[] g : GEOMS) {
            int n = g[0], c = g[1], h = g[2], w = g[3], kh = g[4], kw = g[5], sh = g[6], sw = g[7], ph = g[8], pw = g[9];
            int ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1, kk = c * kh * kw;
            int[] pos = java.util.stream.IntStream.range(0, ho * wo).filter(p -> p % 2 == 1 || r.nextInt(5) == 0).toArray();
            int npos = pos.length, ld = n * npos + 3;
            String at = Arrays.toString(g);
            MemorySegment x = mem.host(values(r, n * c * h * w)), out = mem.host(4L * kk * ld);
            MemorySegment posH = mem.host(4L * npos);
            MemorySegment.copy(pos, 0, posH, JAVA_INT, 0, npos);
            Native.im2colAt(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, posH, npos, out, ld, 1);
            MemorySegment dx = mem.upload(x), dpos = mem.upload(posH), dout = mem.dev(4L * kk * ld);
            Native.cudaIm2colAt(dx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dpos, npos, dout, ld);
            int[] cpu = ints(out, (long) kk * ld), gpu = mem.downloadInts(dout, (long) kk * ld);
            for (int i = 0; i < kk; i++)
                assertArrayEquals(Arrays.copyOfRange(cpu, i * ld, i * ld + n * npos), Arrays.copyOfRange(gpu, i * ld, i * ld + n * npos),
                        "im2colAt " + at + " row " + i);
        }
    }

    // ---- GEMMs through cuBLAS and cuSPARSELt ----

    private static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    /**
     * The per element bound on |CUDA - CPU| of C = alpha op(A) op(B) + beta C0 (row-major, leading dimensions as the
     * calls take them): each side's value is a sum of k products and one more term, added in some order (with or
     * without FMA), so each is within (k + 2) u (|alpha| sum_p |a_ip b_pj| + |beta c0_ij|) of the exact value (u = 2^-24,
     * Higham's bound for any order of a float sum); the two sides differ by at most twice that. The padding past n columns
     * is C0's on both: bound 0.
     */
    static double[] gemmBound(boolean ta, boolean tb, int m, int n, int k, float alpha, float[] a, int lda, float[] b, int ldb,
                              float beta, float[] c0, int ldc) {
        double[] bound = new double[m * ldc];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += Math.abs((double) (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]));
                bound[i * ldc + j] = 2 * (k + 2) * 0x1p-24 * (Math.abs(alpha) * s + Math.abs(beta * c0[i * ldc + j]));
            }
        return bound;
    }

    /** |got - want| <= bound[i] at every element (NaN nowhere). */
    private static void assertWithin(float[] want, float[] got, double[] bound, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (!(Math.abs((double) got[i] - want[i]) <= bound[i]))
                fail(what + " at " + i + ": " + got[i] + " vs " + want[i] + " (allowed " + bound[i] + ")");
    }

    @Test
    void cublasSgemmMatchesTheCpuGemm() {
        Random r = new Random(6);
        int[][] cases = { { 64, 48, 80, 0, 0 }, { 33, 17, 129, 1, 0 }, { 128, 96, 64, 0, 1 }, { 31, 65, 7, 1, 1 } };
        for (int[] cs : cases) {
            int m = cs[0], n = cs[1], k = cs[2];
            boolean ta = cs[3] == 1, tb = cs[4] == 1;
            int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
            MemorySegment a = mem.host(gaussian(r, (ta ? k : m) * lda)), b = mem.host(gaussian(r, (tb ? n : k) * ldb));
            float[] c0 = gaussian(r, m * ldc);
            MemorySegment c = mem.host(c0);
            MemorySegment da = mem.upload(a), db = mem.upload(b), dc = mem.upload(c);
            Native.sgemm(ta, tb, m, n, k, 1.5f, a, lda, b, ldb, 0.5f, c, ldc, 1);
            Cuda.copyToDevice(dc, mem.host(c0), 4L * m * ldc);
            try {
                Native.cudaSgemm(ta, tb, m, n, k, 1.5f, da, lda, db, ldb, 0.5f, dc, ldc);
            } catch (CudaUnavailableException e) {
                assumeTrue(false, "cuBLAS unavailable: " + e.getMessage());
            }
            Cuda.sync();
            MemorySegment got = mem.host(4L * m * ldc);
            Cuda.copyToHost(got, dc, 4L * m * ldc);
            assertWithin(c.asSlice(0, 4L * m * ldc).toArray(JAVA_FLOAT), got.asSlice(0, 4L * m * ldc).toArray(JAVA_FLOAT),
                    gemmBound(ta, tb, m, n, k, 1.5f, a.toArray(JAVA_FLOAT), lda, b.toArray(JAVA_FLOAT), ldb, 0.5f, c0, ldc),
                    "sgemm " + Arrays.toString(cs) + " (" + Cuda.blasStatus() + ")");
        }
    }

    /** fst4j's own GEMM kernel (the fallback without cuBLAS, and the emulator's): also on a device that has cuBLAS. */
    @Test
    void gemmKernelMatchesTheCpuGemm() {
        Random r = new Random(8);
        int[][] cases = { { 5, 7, 3, 0, 0 }, { 33, 17, 29, 1, 0 }, { 16, 9, 40, 0, 1 }, { 11, 13, 6, 1, 1 } };
        for (int[] cs : cases) {
            int m = cs[0], n = cs[1], k = cs[2];
            boolean ta = cs[3] == 1, tb = cs[4] == 1;
            int lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
            MemorySegment a = mem.host(gaussian(r, (ta ? k : m) * lda)), b = mem.host(gaussian(r, (tb ? n : k) * ldb));
            float[] c0 = gaussian(r, m * ldc);
            MemorySegment c = mem.host(c0);
            MemorySegment da = mem.upload(a), db = mem.upload(b), dc = mem.upload(c);
            Native.sgemm(ta, tb, m, n, k, 1.5f, a, lda, b, ldb, 0.5f, c, ldc, 1);
            Native.cudaGemm(ta, tb, m, n, k, 1.5f, da, lda, db, ldb, 0.5f, dc, ldc);
            Cuda.sync();
            MemorySegment got = mem.host(4L * m * ldc);
            Cuda.copyToHost(got, dc, 4L * m * ldc);
            assertWithin(c.asSlice(0, 4L * m * ldc).toArray(JAVA_FLOAT), got.asSlice(0, 4L * m * ldc).toArray(JAVA_FLOAT),
                    gemmBound(ta, tb, m, n, k, 1.5f, a.toArray(JAVA_FLOAT), lda, b.toArray(JAVA_FLOAT), ldb, 0.5f, c0, ldc), "gemm kernel " + Arrays.toString(cs));
        }
    }

    @Test
    void cusparseLtMatmulOnTheGpuPrunedOperandMatchesTheCpu() {
        int m = 128, n = 256, k = 192;
        Random r = new Random(7);
        float[] wv = gaussian(r, m * k), bv = gaussian(r, k * n);
        MemorySegment dw = mem.upload(mem.host(wv)), db = mem.upload(mem.host(bv));
        int groups = k / 4;
        MemorySegment dv = mem.dev(4L * m * 2 * groups), dm = mem.dev(4L * m * ((groups + 7) / 8)), dd = mem.dev(4L * m * k), a16 = mem.dev(2L * m * k), b16 = mem.dev(2L * k * n);
        Native.cudaPrune24(m, k, dw, k, dv, dm, dd, k, a16, k);
        Native.cudaF32ToBf16(db, b16, (long) k * n);
        // reference: fp32 GEMM of the bf16-rounded operands
        int[] maskedBits = mem.downloadInts(dd, (long) m * k);
        float[] a = new float[m * k], b = new float[k * n];
        for (int i = 0; i < a.length; i++) a[i] = Float.intBitsToFloat(Bf16.bits(maskedBits[i]) << 16);
        for (int i = 0; i < b.length; i++) b[i] = Float.intBitsToFloat(Bf16.bits(Float.floatToRawIntBits(bv[i])) << 16);
        MemorySegment want = mem.host(4L * m * n);
        Native.sgemm(false, false, m, n, k, 1f, mem.host(a), k, mem.host(b), n, 0f, want, n, 1);
        float[] wantV = want.asSlice(0, 4L * m * n).toArray(JAVA_FLOAT);

        Cuda.SparseLtPlan plan;
        int cdType = Cuda.R_32F;
        try {
            plan = Cuda.sparseLtPlan(m, n, k, Cuda.R_16BF, Cuda.R_32F);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuSPARSELt unavailable: " + e.getMessage());
            return;
        } catch (CudaException e) {
            System.out.println("CUSPARSELT bf16 -> fp32 output refused (" + e.getMessage() + "), trying bf16 output");
            plan = Cuda.sparseLtPlan(m, n, k, Cuda.R_16BF, Cuda.R_16BF);
            cdType = Cuda.R_16BF;
        }
        try (Cuda.SparseLtPlan p = plan) {
            System.out.println("CUSPARSELT " + Cuda.sparseLtStatus() + ", output type " + cdType + ", sizes " + p.compressedBytes() + "/"
                    + p.bufferBytes() + "/" + p.workspaceBytes());
            MemorySegment comp = mem.dev(p.compressedBytes()), buf = mem.dev(p.bufferBytes()), ws = mem.dev(p.workspaceBytes());
            MemorySegment dc = mem.dev((cdType == Cuda.R_32F ? 4L : 2L) * m * n);
            Cuda.memset(dc, 0, (cdType == Cuda.R_32F ? 4L : 2L) * m * n);
            p.compress(a16, comp, buf);
            p.matmul(1f, comp, b16, 0f, dc, ws);
            Cuda.sync();
            float[] got = new float[m * n];
            if (cdType == Cuda.R_32F) {
                MemorySegment h = mem.host(4L * m * n);
                Cuda.copyToHost(h, dc, 4L * m * n);
                got = h.asSlice(0, 4L * m * n).toArray(JAVA_FLOAT);
            } else {
                MemorySegment h = mem.host(2L * m * n);
                Cuda.copyToHost(h, dc, 2L * m * n);
                short[] s = h.asSlice(0, 2L * m * n).toArray(JAVA_SHORT);
                for (int i = 0; i < got.length; i++) got[i] = Float.intBitsToFloat((s[i] & 0xffff) << 16);
            }
            // the fp32 product of the same bf16 operands as the reference, in another order; a bf16 output rounds once more
            // (half a bf16 ulp, 2^-9 relative: 2^-8 |want| covers it with the sum's own error)
            double[] bound = gemmBound(false, false, m, n, k, 1f, a, k, b, n, 0f, new float[m * n], n);
            if (cdType != Cuda.R_32F) for (int i = 0; i < bound.length; i++) bound[i] += 0x1p-8 * Math.abs(wantV[i]) + bound[i];
            assertWithin(wantV, got, bound, "cuSPARSELt " + m + "x" + n + "x" + k);
        }
    }
}
