package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The blocked float32 convolution (a few images lowered at a time, NCHW in and out; with the im2col buffer or lowered
 * inside the GEMMs) equals the whole-batch path
 * (im2col of the batch, [Cout, N*L] permuted): output, dX and dW, for every ready-made configuration, at
 * geometries that give one block, several blocks with a short last one, and one image per block; the blocked path with
 * an im2col buffer, with implicit lowering, and with Eq. 2 of stride-1 convolutions as a convolution of dY.
 */
class ConvBlockedTest {

    static Stream<Arguments> cases() {
        int[][] geoms = {
                // n, cin, cout, h, w, k, stride, pad[, target columns per block (Layers.blockCols; default rule if absent)]
                {3, 3, 8, 8, 8, 3, 1, 1},      // one block holding the whole batch (b == n)
                {5, 4, 8, 20, 20, 3, 1, 1, 1200},    // L = 400: blocks of 3 and 2
                {6, 5, 12, 33, 33, 3, 2, 1, 1156},   // stride 2, L = 289, odd Wo: two blocks of 3
                {2, 3, 4, 32, 32, 3, 1, 1, 1024},    // L = 1024: one image per block, written straight into NCHW
                {4, 6, 8, 18, 18, 1, 1, 0},    // 1x1 conv, L = 324
                // wide layers (Cin*k*k >= 512), as in ResNet-18
                {5, 60, 8, 16, 16, 3, 1, 1, 768},    // blocks of 3 and 2
                {4, 57, 6, 20, 20, 3, 2, 1},   // stride 2, Wo = 10 even: half-K lowered with the stride doubled
                // Eq. 2 as a convolution of dY (stride 1, "same"), and where it falls back to W^T dY + col2im
                {3, 4, 6, 10, 10, 3, 1, 1},    // Cout % 4 != 0: a pruned W^T cannot take the tap-major layout
                {2, 3, 8, 12, 12, 5, 1, 2},    // 5x5, pad 2
                {7, 9, 16, 4, 4, 3, 1, 1},     // 4x4 planes: 16 columns per image, vectors on image boundaries
                // odd Wo under the fixed mask: Eq. 3 over the kept positions as a column list of im2col
                {5, 8, 8, 7, 7, 3, 1, 1},      // 7x7, stride 1
                {4, 6, 8, 14, 14, 3, 2, 1},    // 14x14 -> 7x7, stride 2
                {4, 6, 8, 14, 14, 1, 2, 0},    // 1x1, stride 2: the gather
                {3, 4, 8, 9, 9, 5, 1, 2},      // 5x5, pad 2
                {3, 4, 8, 6, 7, 3, 1, 1},      // 6x7
        };
        List<Arguments> out = new ArrayList<>();
        for (SparseConfig.Method m : SparseConfig.Method.values())
            for (int[] g : geoms) out.add(Arguments.of(m, g));
        return out.stream();
    }

    private record Result(float[] y, float[] dx, float[] dw) {}

    private static Result run(SparseConfig.Method m, int[] g, boolean blocked, boolean implicit, boolean tconv) {
        return run(m.config(7), 31L * g[0] + g[3] + m.ordinal(), g, blocked, implicit, tconv);
    }

    private static Result run(SparseConfig cfg, long dataSeed, int[] g, boolean blocked, boolean implicit, boolean tconv) {
        boolean before = Layers.blocked, beforeImplicit = Layers.implicitLowering, beforeTconv = Layers.eq2Tconv;
        int beforeCols = Layers.blockCols;
        Layers.blockCols = g.length > 8 ? g[8] : 0;
        Layers.blocked = blocked;
        Layers.implicitLowering = implicit;
        Layers.eq2Tconv = tconv;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(dataSeed);
            Var x = Var.param(r.normal(0, 1, g[0], g[1], g[3], g[4]));
            Var w = Var.param(r.normal(0, 0.5, g[2], g[1], g[5], g[5]));
            Gemm3 node = new Gemm3(cfg);
            Var y = Layers.conv2d(node, x, w, null, g[6], g[7]);
            Tensor up = r.normal(0, 1, y.shape());
            y.backward(up);
            return new Result(y.value().toFloatArray(), x.grad().toFloatArray(), w.grad().toFloatArray());
        } finally {
            Layers.blocked = before;
            Layers.implicitLowering = beforeImplicit;
            Layers.eq2Tconv = beforeTconv;
            Layers.blockCols = beforeCols;
        }
    }

    private static void close(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        double scale = 0;
        for (float v : want) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < want.length; i++)
            assertEquals(want[i], got[i], 1e-5 * Math.max(1, scale), what + " at " + i);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void blockedEqualsWholeBatch(SparseConfig.Method m, int[] g) {
        Result whole = run(m, g, false, false, false);
        for (int variant = 0; variant < 3; variant++) {
            boolean implicit = variant > 0, tconv = variant == 2;
            Result blocked = run(m, g, true, implicit, tconv);
            String v = m + (!implicit ? " blocked, im2col buffer" : tconv ? " blocked, implicit im2col, Eq. 2 as a convolution of dY"
                    : " blocked, implicit im2col, Eq. 2 with col2im");
            close(whole.y, blocked.y, v + " y");
            close(whole.dx, blocked.dx, v + " dx");
            close(whole.dw, blocked.dw, v + " dw");
        }
        int ho = (g[3] + 2 * g[7] - g[5]) / g[6] + 1, wo = (g[4] + 2 * g[7] - g[5]) / g[6] + 1;
        int before = Layers.blockCols;
        Layers.blockCols = g.length > 8 ? g[8] : 0;
        try {
            int b = Layers.imagesPerBlock(g[0], g[1] * g[5] * g[5], ho * wo);
            assertTrue(b > 0, "the geometry must take the blocked path");
            if (g.length > 8) assertTrue(b < g[0], "the geometry must give several blocks, got " + b + " images per block");
        } finally {
            Layers.blockCols = before;
        }
    }

    /**
     * Where Layers' rule sends a stride-2 convolution's S(W) to the dense GEMM (1x1 kernels, at most 32 output channels),
     * the blocked result equals the whole-batch 2:4 product's within float rounding, with the rule on and off; the rule
     * leaves stride 1 and wider stride-2 layers on the 2:4 product.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("stride2")
    void stride2DenseProductOfSwEqualsThe24Product(SparseConfig.Method m, int[] g) {
        boolean before = Layers.denseStride2, small = Layers.denseSmallWithoutAvx512;
        Layers.denseSmallWithoutAvx512 = false;   // the stride-2 rule alone (the small-layer rule of CPUs without AVX-512: below)
        try {
            assertTrue(Layers.denseEq1(g[2], g[5], g[6]), "the geometry must fall under the rule");
            assertFalse(Layers.denseEq1(g[2], g[5], 1));
            assertFalse(Layers.denseEq1(64, 3, 2));
            Result whole = run(m, g, false, false, false);
            for (boolean on : new boolean[]{true, false}) {
                Layers.denseStride2 = on;
                long before0 = Gemm3.DENSE_PRODUCTS_OF_SW.get();
                Result blocked = run(m, g, true, true, false);
                // the rule acts on magnitude-pruned W only (the authors' code prunes W so too; SR-STE and FST3_IR likewise)
                assertEquals(on ? 1 : 0, Gemm3.DENSE_PRODUCTS_OF_SW.get() - before0, m + ": the dense product of S(W) taken " + on);
                close(whole.y, blocked.y, m + " y, dense product of S(W) " + on);
                close(whole.dx, blocked.dx, m + " dx " + on);
                close(whole.dw, blocked.dw, m + " dw " + on);
            }
        } finally {
            Layers.denseStride2 = before;
            Layers.denseSmallWithoutAvx512 = small;
        }
    }

    /**
     * On a CPU without AVX-512 (the isa-avx2 / isa-generic runs) layers with at most 64 output channels take the dense GEMM
     * of S(W) for Eq. 1 and, where Eq. 2 is a convolution of dY, of the tap-major S(W^T) for Eq. 2 (at most 64 input
     * channels); the blocked result equals the whole-batch 2:4 product's within float rounding with the rule on and off. On
     * an AVX-512 CPU the rule never acts.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = SparseConfig.Method.class, names = {"SR_STE", "FST2", "FST3_IR"})
    void smallLayersWithoutAvx512TakeTheDenseProductOfThePrunedOperands(SparseConfig.Method m) {
        boolean avx512 = "avx512".equals(fst4j.shim.Native.spmm24Isa());
        int[] g = {5, 16, 16, 12, 12, 3, 1, 1};   // 16 -> 16, 3x3, stride 1, "same": Eq. 2 as a convolution of dY
        boolean small = Layers.denseSmallWithoutAvx512;
        try {
            Layers.denseSmallWithoutAvx512 = true;   // the default (not -Dfst4j.conv.denseSmall=false)
            assertEquals(!avx512, Layers.denseEq1(64, 3, 1), "64 output channels, stride 1, " + fst4j.shim.Native.spmm24Isa());
            assertFalse(Layers.denseEq1(128, 3, 1));
            Result whole = run(m, g, false, false, false);
            for (boolean on : new boolean[]{true, false}) {
                Layers.denseSmallWithoutAvx512 = on;
                long sw0 = Gemm3.DENSE_PRODUCTS_OF_SW.get(), swt0 = Gemm3.DENSE_PRODUCTS_OF_SWT.get();
                Result blocked = run(m, g, true, true, true);
                int acts = on && !avx512 ? 1 : 0;
                assertEquals(acts, Gemm3.DENSE_PRODUCTS_OF_SW.get() - sw0, m + ": the dense product of S(W), rule " + on);
                // FST2's and FST3_IR's S(W^T) is 2:4 along Cout (SR-STE's W^T is dense: no pruned S(W^T) to keep)
                assertEquals(m == SparseConfig.Method.SR_STE ? 0 : acts, Gemm3.DENSE_PRODUCTS_OF_SWT.get() - swt0, m + ": the dense product of S(W^T), rule " + on);
                close(whole.y, blocked.y, m + " y, rule " + on);
                close(whole.dx, blocked.dx, m + " dx " + on);
                close(whole.dw, blocked.dw, m + " dw " + on);
            }
        } finally {
            Layers.denseSmallWithoutAvx512 = small;
        }
    }

    /**
     * Where Layers' rule sends a stride-2 convolution's Eq. 2 to the dense GEMM of S(W^T) (at most 64 output channels), the
     * blocked result equals the whole-batch 2:4 product's within float rounding with the rule on and off, for every preset
     * whose S(W^T) is 2:4 (FST2, FST3_IR, and the authors' S_T(S(W))); the rule leaves stride 1 and wider layers alone.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("stride2Eq2")
    void stride2DenseProductOfSwtEqualsThe24Product(SparseConfig.Method m, int[] g) {
        assertTrue(Layers.denseEq2(g[2], g[6]), "the geometry must fall under the rule");
        assertFalse(Layers.denseEq2(g[2], 1));
        assertFalse(Layers.denseEq2(128, 2));
        Result whole = run(m, g, false, false, false);
        boolean before = Layers.denseStride2Eq2;
        try {
            for (boolean on : new boolean[]{true, false}) {
                Layers.denseStride2Eq2 = on;
                long before0 = Gemm3.DENSE_PRODUCTS_OF_SWT.get();
                Result blocked = run(m, g, true, true, false);
                assertEquals(on ? 1 : 0, Gemm3.DENSE_PRODUCTS_OF_SWT.get() - before0, m + ": the dense product of S(W^T) taken " + on);
                close(whole.y, blocked.y, m + " y, dense product of S(W^T) " + on);
                close(whole.dx, blocked.dx, m + " dx " + on);
                close(whole.dw, blocked.dw, m + " dw " + on);
            }
        } finally {
            Layers.denseStride2Eq2 = before;
        }
    }

    static Stream<Arguments> stride2Eq2() {
        int[][] geoms = {{6, 5, 12, 33, 33, 3, 2, 1, 1156}, {4, 6, 8, 14, 14, 1, 2, 0}, {3, 16, 64, 12, 12, 3, 2, 1}};
        List<Arguments> out = new ArrayList<>();
        for (SparseConfig.Method m : List.of(SparseConfig.Method.FST2, SparseConfig.Method.FST3_IR, SparseConfig.Method.FST_CODE))
            for (int[] g : geoms) out.add(Arguments.of(m, g));
        return out.stream();
    }

    static Stream<Arguments> stride2() {
        int[][] geoms = {{6, 5, 12, 33, 33, 3, 2, 1, 1156}, {4, 6, 8, 14, 14, 1, 2, 0}, {3, 16, 32, 12, 12, 3, 2, 1}};
        List<Arguments> out = new ArrayList<>();
        for (SparseConfig.Method m : List.of(SparseConfig.Method.SR_STE, SparseConfig.Method.FST3_IR, SparseConfig.Method.FST_CODE))
            for (int[] g : geoms) out.add(Arguments.of(m, g));
        return out.stream();
    }

    /**
     * Where Eq. 7's kept positions are not a strided lowering (odd-width planes, where they form a checkerboard, at stride
     * 1 or 2) the fixed mask's Eq. 3 (FST3, FST3_IR; the authors' random patterns are not Eq. 7's) lowers them as one
     * column list of im2col, not a gather of its kept columns, and gives the gather's dW within float rounding: several
     * blocks too, and on the packing GEMM as well as on the direct kernel (Eq. 3 without packing up to 48 or 128 rows).
     * 1x1 kernels keep the gather.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("oddPlanes")
    void columnListEqualsGather(int[] g) {
        boolean before = Gemm3.oddPlaneColumnList, withoutPlans = Gemm3.columnListWithoutPlans;
        int directBefore = fst4j.shim.Native.wgradDirectMax(-1);
        Gemm3.columnListWithoutPlans = true;   // a CPU without AVX-512 (the isa-avx2 / isa-generic runs) too
        try {
            for (int direct : new int[]{directBefore, 0})
                for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.FST3, SparseConfig.Method.FST3_IR}) {
                    fst4j.shim.Native.wgradDirectMax(direct);
                    Gemm3.oddPlaneColumnList = false;
                    Result gather = run(m, g, true, true, true);
                    Gemm3.oddPlaneColumnList = true;
                    long built = Gemm3.keptColumnLists.get();
                    Result cl = run(m, g, true, true, true);
                    String what = m + " direct rows " + direct;
                    if (g[5] == 1) assertEquals(built, Gemm3.keptColumnLists.get(), what + ": a 1x1 kernel keeps the gather");
                    else assertTrue(Gemm3.keptColumnLists.get() > built, what + ": the geometry must take the column list");
                    close(gather.y, cl.y, what + " y");
                    close(gather.dx, cl.dx, what + " dx");
                    close(gather.dw, cl.dw, what + " dw");
                }
        } finally {
            Gemm3.oddPlaneColumnList = before;
            Gemm3.columnListWithoutPlans = withoutPlans;
            fst4j.shim.Native.wgradDirectMax(directBefore);
        }
    }

    /**
     * A blocked convolution's Eq. 3 of Eq. 7's half-K (FST3, FST3_IR) reads dY's images in place (no gathered [Cout,
     * nb*L] block) where Eq. 2 is a convolution of dY, and gives the gathered path's gradients bit for bit: several
     * blocks with a short last one, odd planes, stride 2 (Eq. 2 then takes col2im and the gathered block too).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("imageBlocks")
    void eq3FromImagesEqualsGathered(int[] g) {
        boolean before = Layers.eq3FromImages;
        int directBefore = fst4j.shim.Native.wgradDirectMax(-1);
        try {
            // DENSE and FST2 (dense Eq. 3, no IR shift): the GEMM packs dY image by image, or the direct kernel (up to its
            // row limit) copies each chunk of positions from the images; both are run
            for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.FST3, SparseConfig.Method.FST3_IR,
                    SparseConfig.Method.DENSE, SparseConfig.Method.FST2})
                for (int direct : new int[]{0, 1 << 20}) {
                    fst4j.shim.Native.wgradDirectMax(direct);
                    String what = m + " direct rows " + direct;
                    Layers.eq3FromImages = false;
                    Result gathered = run(m, g, true, true, true);
                    Layers.eq3FromImages = true;
                    long before3 = Gemm3.eq3ImageBlocks.get();
                    Result images = run(m, g, true, true, true);
                    assertTrue(Gemm3.eq3ImageBlocks.get() > before3, what + ": the blocks must read dY's images in place");
                    assertArrayEquals(gathered.y, images.y, 0f, what + " y");
                    assertArrayEquals(gathered.dx, images.dx, 0f, what + " dx");
                    assertArrayEquals(gathered.dw, images.dw, 0f, what + " dw");
                }
        } finally {
            Layers.eq3FromImages = before;
            fst4j.shim.Native.wgradDirectMax(directBefore);
        }
    }

    /**
     * Half-K Eq. 3 from dY's images computes the IR shift while its GEMM packs dY where x's strided lowering gives the kept
     * positions (even-width planes), and gives the shifted gather's gradients bit for bit (FST3_IR; FST3, no shift); odd
     * planes (7x7, the stride-2 17x17) keep the gather.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("imageBlocks")
    void eq3FusedShiftEqualsTheGather(int[] g) {
        boolean before = Gemm3.eq3FusedShift;
        int directBefore = fst4j.shim.Native.wgradDirectMax(-1);
        int wo = (g[4] + 2 * g[7] - g[5]) / g[6] + 1;
        try {
            for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.FST3_IR, SparseConfig.Method.FST3})
                for (int direct : new int[]{0, 1 << 20}) {
                    fst4j.shim.Native.wgradDirectMax(direct);
                    String what = m + " direct rows " + direct;
                    Gemm3.eq3FusedShift = false;
                    Result gathered = run(m, g, true, true, true);
                    Gemm3.eq3FusedShift = true;
                    long before3 = Gemm3.eq3FusedShifts.get();
                    Result fused = run(m, g, true, true, true);
                    if (wo % 2 == 0) assertTrue(Gemm3.eq3FusedShifts.get() > before3, what + ": an even-width plane must take the fused shift");
                    else assertEquals(before3, Gemm3.eq3FusedShifts.get(), what + ": an odd-width plane keeps the gather");
                    assertArrayEquals(gathered.dw, fused.dw, 0f, what + " dw");
                    assertArrayEquals(gathered.dx, fused.dx, 0f, what + " dx");
                }
        } finally {
            Gemm3.eq3FusedShift = before;
            fst4j.shim.Native.wgradDirectMax(directBefore);
        }
    }

    /**
     * DENSE's blocked convolution writes Eq. 1's output, and Eq. 2's where it is a convolution of dY, as NCHW straight from
     * the GEMM's tiles (those that cross from one image into the next through a buffer) instead of a [rows, nb*L] block
     * then scattered: the same bits, forward and backward, at planes whose tiles cross images rarely (20x20), often (7x7)
     * and always (4x4, 16 columns an image against tiles of 48), stride 2, and a short last block.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("nchwBlocks")
    void denseNchwEqualsScattered(int[] g) {
        boolean before = Gemm3.cpuNchw;
        try {
            Gemm3.cpuNchw = false;
            Result scattered = run(SparseConfig.Method.DENSE, g, true, true, true);
            Gemm3.cpuNchw = true;
            long n0 = Gemm3.nchwProducts.get();
            Result nchw = run(SparseConfig.Method.DENSE, g, true, true, true);
            int l = ((g[3] + 2 * g[7] - g[5]) / g[6] + 1) * ((g[4] + 2 * g[7] - g[5]) / g[6] + 1), cols = Layers.blockCols;
            Layers.blockCols = g[8];
            int per = Layers.imagesPerBlock(g[0], g[1] * g[5] * g[5], l);
            Layers.blockCols = cols;
            assertTrue(per > 1 && per < g[0], "the geometry must make several blocks of several images, got " + per + " images a block");
            long blocks = (g[0] + per - 1) / per, want = g[6] == 1 ? 2 * blocks : blocks;   // Eq. 2 as a convolution of dY at stride 1
            assertTrue(Gemm3.nchwProducts.get() - n0 >= want, (Gemm3.nchwProducts.get() - n0) + " NCHW products, want " + want);
            assertArrayEquals(scattered.y, nchw.y, 0f, "y");
            assertArrayEquals(scattered.dx, nchw.dx, 0f, "dx");
            assertArrayEquals(scattered.dw, nchw.dw, 0f, "dw");
        } finally {
            Gemm3.cpuNchw = before;
        }
    }

    /**
     * A blocked convolution's Eq. 2 as W^T dY followed by col2im (not a convolution of dY: stride 2, or the transposed
     * convolution switched off) reads dY's images in place where W^T is dense (DENSE; FST2 where the stride-2 rule takes
     * the dense GEMM of S(W^T)) and gives the gathered block's gradients bit for bit; with a 2:4 W^T it gathers as before.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("imageBlocks")
    void eq2FromImagesEqualsGathered(int[] g) {
        boolean before = Layers.eq2FromImages;
        try {
            for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.DENSE, SparseConfig.Method.FST2}) {
                Layers.eq2FromImages = false;
                Result gathered = run(m, g, true, true, false);
                Layers.eq2FromImages = true;
                long before2 = Gemm3.eq2ImageBlocks.get();
                Result images = run(m, g, true, true, false);
                long read = Gemm3.eq2ImageBlocks.get() - before2;
                // FST2's W^T is dense where the stride-2 rule puts its Eq. 2 on the dense GEMM of S(W^T)
                if (m == SparseConfig.Method.DENSE || Layers.denseEq2(g[2], g[6])) assertTrue(read > 0, m + ": the blocks must read dY's images in place");
                else assertEquals(0, read, m + ": a 2:4 W^T gathers dY");
                assertArrayEquals(gathered.y, images.y, 0f, m + " y");
                assertArrayEquals(gathered.dx, images.dx, 0f, m + " dx");
                assertArrayEquals(gathered.dw, images.dw, 0f, m + " dw");
            }
        } finally {
            Layers.eq2FromImages = before;
        }
    }

    static Stream<int[]> nchwBlocks() {
        return Stream.of(new int[]{5, 4, 8, 20, 20, 3, 1, 1, 1200},   // L = 400: blocks of 3 and 2
                new int[]{13, 6, 12, 7, 7, 3, 1, 1, 300},                // L = 49: blocks of 7 and 6
                new int[]{50, 4, 20, 4, 4, 3, 1, 1, 288},                // L = 16: every tile crosses images; blocks of 17, 17, 16
                new int[]{6, 5, 12, 33, 33, 3, 2, 1, 1156});             // stride 2, L = 289
    }

    /**
     * A blocked convolution's 2:4 Eq. 1 and its Eq. 2 as a convolution of dY write their images' NCHW planes themselves
     * instead of a [rows, nb*L] block then scattered: the compiled 2:4 convolution where it runs (an AVX-512 CPU; blocks
     * of at least 2048 columns, planes 14-32 wide), else, and with it switched off, the register kernel storing each vector
     * in its image (planes of a multiple of 16 positions). The same bits, forward and backward, for every 2:4 preset; two blocks of 4 images and one of 2 (a
     * short last block) at 32x32 and 8x8 planes, and at 4x4 (blocks of 17, 17 and 16 images: every column block of the
     * register kernel spans several images, each vector stored in its own).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("twoFourPresets")
    void nchwProductsEqualScattered(SparseConfig.Method m) {
        int jitBefore = fst4j.shim.Native.spmm24Jit(-1);
        boolean before = Gemm3.cpuNchw;
        try {
            for (int jit : new int[]{jitBefore, 0})
                for (int[] g : new int[][]{{10, 8, 16, 32, 32, 3, 1, 1, 4096}, {10, 8, 16, 8, 8, 3, 1, 1, 256},
                                           {50, 4, 16, 4, 4, 3, 1, 1, 288}}) {
                    fst4j.shim.Native.spmm24Jit(jit);
                    String what = m + " jit mode " + jit + " at " + g[3] + "x" + g[4];
                    Gemm3.cpuNchw = false;
                    Result scattered = run(m, g, true, true, true);
                    Gemm3.cpuNchw = true;
                    long n0 = Gemm3.nchwProducts.get();
                    Result nchw = run(m, g, true, true, true);
                    // Eq. 1's three blocks, and Eq. 2's three where its S(W^T) is 2:4 along Cout (FST2, FST3_IR)
                    long want = m == SparseConfig.Method.FST2 || m == SparseConfig.Method.FST3_IR ? 6 : 3;
                    assertTrue(Gemm3.nchwProducts.get() - n0 >= want, what + ": " + (Gemm3.nchwProducts.get() - n0) + " NCHW products, want " + want);
                    assertArrayEquals(scattered.y, nchw.y, 0f, what + " y");
                    assertArrayEquals(scattered.dx, nchw.dx, 0f, what + " dx");
                    assertArrayEquals(scattered.dw, nchw.dw, 0f, what + " dw");
                }
        } finally {
            Gemm3.cpuNchw = before;
            fst4j.shim.Native.spmm24Jit(jitBefore);
        }
    }

    static Stream<SparseConfig.Method> twoFourPresets() {
        return Stream.of(SparseConfig.Method.SR_STE, SparseConfig.Method.FST2, SparseConfig.Method.FST3_IR, SparseConfig.Method.FST_CODE);
    }

    static Stream<int[]> imageBlocks() {
        return Stream.of(new int[]{5, 4, 8, 20, 20, 3, 1, 1, 1200},   // L = 400: blocks of 3 and 2
                new int[]{12, 6, 8, 7, 7, 3, 1, 1, 294},                // 7x7 (the kept columns as a column list): two blocks of 6
                new int[]{6, 5, 12, 33, 33, 3, 2, 1, 1156},              // stride 2, odd Wo
                new int[]{5, 60, 8, 16, 16, 3, 1, 1, 768});              // wide layer: blocks of 3 and 2
    }

    /**
     * The authors' random activation patterns (FST_CODE, and FST3_IR with their patterns): the blocked path computes Eq. 3
     * over the kept columns only, with the pattern drawn once per batch, and gives the whole-batch masked GEMM's dW for
     * each of the four patterns, at planes that are and are not multiples of the patterns' period (so the kept set moves
     * from image to image), over several blocks whose first images are odd, and at odd K (rows of both parities differ
     * in number).
     */
    @ParameterizedTest(name = "pattern {0}")
    @MethodSource("patterns")
    void authorsPatternsKeptColumnsEqualMasked(int pattern) {
        long seed = seedDrawing(pattern);
        int[][] geoms = {
                {5, 4, 8, 20, 20, 3, 1, 1, 1200},    // L = 400 (a multiple of 8): blocks of 3 and 2
                {5, 6, 8, 14, 14, 3, 1, 1, 588},     // L = 196 (4 mod 8): blocks of 3 and 2, the kept set alternates
                {14, 8, 8, 7, 7, 3, 1, 1, 343},      // L = 49 (odd): two blocks of 7, the second starting at an odd column
                {13, 6, 8, 14, 14, 1, 2, 0, 343},    // 1x1, stride 2 -> 7x7, K = 6: blocks of 7 and 6
                {3, 5, 12, 9, 9, 3, 1, 1},           // K = 45 (odd), one block
        };
        for (int[] g : geoms) {
            int before = Layers.blockCols;
            Layers.blockCols = g.length > 8 ? g[8] : 0;
            try {
                int l = ((g[3] + 2 * g[7] - g[5]) / g[6] + 1) * ((g[4] + 2 * g[7] - g[5]) / g[6] + 1);
                int b = Layers.imagesPerBlock(g[0], g[1] * g[5] * g[5], l);
                assertTrue(b > 0 && (g.length == 8 || b < g[0]), java.util.Arrays.toString(g) + ": blocks of " + b);
            } finally {
                Layers.blockCols = before;
            }
            for (boolean authorsCode : new boolean[]{true, false}) {
                // a fresh config per run: the pattern's draws are the sparsifier's state
                java.util.function.Supplier<SparseConfig> fresh = () -> authorsCode ? SparseConfig.Method.FST_CODE.config(seed)
                        : SparseConfig.Method.FST3_IR.config(seed).withXt(new fst4j.sparse.AuthorsFixed24(1, seed));
                SparseConfig cfg = fresh.get();
                Result whole = run(cfg, 17L * g[3] + g[0], g, false, false, false);
                for (boolean implicit : new boolean[]{false, true}) {   // kept columns materialised, or lowered while packing
                    long built = Gemm3.authorsKeptBlocks.get();
                    Result blocked = run(fresh.get(), 17L * g[3] + g[0], g, true, implicit, true);
                    assertTrue(Gemm3.authorsKeptBlocks.get() > built, cfg.name() + " " + java.util.Arrays.toString(g) + ": Eq. 3 must take the kept columns");
                    String v = cfg.name() + " pattern " + pattern + " " + java.util.Arrays.toString(g) + (implicit ? " lowered" : " materialised");
                    close(whole.y, blocked.y, v + " y");
                    close(whole.dx, blocked.dx, v + " dx");
                    close(whole.dw, blocked.dw, v + " dw");
                }
            }
        }
    }

    static Stream<Integer> patterns() { return Stream.of(0, 1, 2, 3); }

    /** A seed whose first draw is the pattern. */
    private static long seedDrawing(int pattern) {
        for (long s = 0; ; s++) if (new fst4j.sparse.AuthorsFixed24(1, s).draw() == pattern) return s;
    }

    static Stream<int[]> oddPlanes() {
        return Stream.of(new int[]{5, 8, 8, 7, 7, 3, 1, 1}, new int[]{3, 4, 8, 9, 9, 5, 1, 2}, new int[]{5, 4, 8, 11, 11, 5, 1, 2, 363},
                new int[]{4, 6, 8, 14, 14, 3, 2, 1},      // 14x14 -> 7x7, stride 2
                new int[]{3, 4, 8, 6, 7, 3, 1, 1},        // 6x7
                new int[]{12, 12, 60, 7, 7, 3, 1, 1, 294}, // 60 output rows, two blocks of 6 images
                new int[]{4, 6, 8, 14, 14, 1, 2, 0});     // 1x1, stride 2: the gather
    }
}
