package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.*;

/** The Eq. 1-3 node: DENSE equals a plain layer; FST3_IR equals fst-method.md's formulas in float64. */
class Gemm3Test {

    static void close(float[] a, float[] b, double tol, String what) {
        assertEquals(a.length, b.length, what);
        double scale = 0;
        for (float v : b) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < a.length; i++)
            assertEquals(b[i], a[i], tol * Math.max(1, scale), what + " at " + i);
    }

    @Test
    void denseLinearEqualsPlainMatmul() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(1);
            Var x1 = Var.param(r.normal(0, 1, 7, 17)), w1 = Var.param(r.normal(0, 1, 5, 17)), b1 = Var.param(r.normal(0, 1, 5));
            Var x2 = Var.param(x1.value().copy()), w2 = Var.param(w1.value().copy()), b2 = Var.param(b1.value().copy());
            Var y1 = Layers.linear(new Gemm3(SparseConfig.Method.DENSE.config()), x1, w1, b1);
            Var y2 = x2.matmul(w2.transpose(0, 1)).add(b2);
            close(y1.value().toFloatArray(), y2.value().toFloatArray(), 1e-5, "y");
            Tensor g = r.normal(0, 1, 7, 5);
            y1.backward(g);
            y2.backward(g);
            close(x1.grad().toFloatArray(), x2.grad().toFloatArray(), 1e-5, "dx");
            close(w1.grad().toFloatArray(), w2.grad().toFloatArray(), 1e-5, "dw");
            close(b1.grad().toFloatArray(), b2.grad().toFloatArray(), 1e-5, "db");
        }
    }

    @Test
    void denseConvEqualsPlainConvAndPassesGradcheck() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(2);
            Var x1 = Var.param(r.normal(0, 1, 3, 5, 7, 6)), w1 = Var.param(r.normal(0, 1, 8, 5, 3, 3));
            Var x2 = Var.param(x1.value().copy()), w2 = Var.param(w1.value().copy());
            Var y1 = Layers.conv2d(new Gemm3(SparseConfig.Method.DENSE.config()), x1, w1, null, 2, 1);
            Var y2 = NN.conv2d(x2, w2, null, 2, 1);
            close(y1.value().toFloatArray(), y2.value().toFloatArray(), 1e-5, "y");
            Tensor g = r.normal(0, 1, y1.shape());
            y1.backward(g);
            y2.backward(g);
            close(x1.grad().toFloatArray(), x2.grad().toFloatArray(), 1e-5, "dx");
            close(w1.grad().toFloatArray(), w2.grad().toFloatArray(), 1e-5, "dw");
            Gemm3 dense = new Gemm3(SparseConfig.Method.DENSE.config());
            GradCheck.Result res = GradCheck.check(v -> Layers.conv2d(dense, v[0], v[1], v[2], 1, 1),
                    OpsGradTest.rand(3, 2, 3, 5, 4), OpsGradTest.rand(4, 4, 3, 3, 3), OpsGradTest.rand(5, 4));
            assertTrue(res.passed(), res.toString());
            GradCheck.Result lin = GradCheck.check(v -> Layers.linear(dense, v[0], v[1], v[2]),
                    OpsGradTest.rand(6, 3, 7), OpsGradTest.rand(7, 4, 7), OpsGradTest.rand(8, 4));
            assertTrue(lin.passed(), lin.toString());
        }
    }

    // ---- independent float64 reference for FST3_IR (fst-method.md) ----

    /** Keep the 2 largest |v| of each group of 4 along the given axis of a [R, C] matrix (lower index wins ties). */
    static double[][] top2(double[][] m, int axis) {
        int R = m.length, C = m[0].length;
        double[][] out = new double[R][C];
        int len = axis == 1 ? C : R, lines = axis == 1 ? R : C;
        for (int l = 0; l < lines; l++)
            for (int g = 0; g < len; g += 4) {
                int n = Math.min(4, len - g);
                Integer[] idx = new Integer[n];
                for (int i = 0; i < n; i++) idx[i] = i;
                final int line = l, base = g;
                java.util.Arrays.sort(idx, (a, b) -> {
                    double va = Math.abs(axis == 1 ? m[line][base + a] : m[base + a][line]);
                    double vb = Math.abs(axis == 1 ? m[line][base + b] : m[base + b][line]);
                    return va != vb ? Double.compare(vb, va) : Integer.compare(a, b);
                });
                for (int i = 0; i < Math.min(2, n); i++) {
                    int j = base + idx[i];
                    if (axis == 1) out[line][j] = m[line][j]; else out[j][line] = m[j][line];
                }
            }
        return out;
    }

    @Test
    void fst3IrConvGradientsEqualTheFormulasInFloat64() {
        int n = 2, cin = 3, h = 5, wd = 6, cout = 8, k = 3, pad = 1;  // K = 27: not a multiple of 4
        try (Scope s = Scope.open()) {
            Rng r = new Rng(9);
            Tensor xt = r.normal(0, 1, n, cin, h, wd), wt = r.normal(0, 1, cout, cin, k, k), gt = r.normal(0, 1, n, cout, h, wd);
            Var x = Var.param(xt.copy()), w = Var.param(wt.copy());
            Var y = Layers.conv2d(new Gemm3(SparseConfig.Method.FST3_IR.config()), x, w, null, 1, pad);
            y.backward(gt);

            int K = cin * k * k, P = h * wd;
            double[][] W = new double[cout][K];
            for (int o = 0; o < cout; o++) for (int q = 0; q < K; q++) W[o][q] = wt.getFlat((long) o * K + q);
            // im2col in float64 by loops: X[n][q][p]
            double[][][] X = new double[n][K][P];
            for (int b = 0; b < n; b++) for (int c = 0; c < cin; c++) for (int i = 0; i < k; i++) for (int j = 0; j < k; j++)
                for (int oh = 0; oh < h; oh++) for (int ow = 0; ow < wd; ow++) {
                    int ih = oh - pad + i, iw = ow - pad + j;
                    X[b][(c * k + i) * k + j][oh * wd + ow] = ih < 0 || ih >= h || iw < 0 || iw >= wd ? 0 : xt.getDouble(b, c, ih, iw);
                }
            double[][] SW = top2(W, 1), SWT = top2(W, 0);
            // Eq. 1
            for (int b = 0; b < n; b++) for (int o = 0; o < cout; o++) for (int p = 0; p < P; p++) {
                double acc = 0;
                for (int q = 0; q < K; q++) acc += SW[o][q] * X[b][q][p];
                assertEquals(acc, y.value().getDouble(b, o, p / wd, p % wd), 1e-4, "Eq.1");
            }
            // Eq. 2 then col2im
            double[][][][] dx = new double[n][cin][h][wd];
            for (int b = 0; b < n; b++) for (int q = 0; q < K; q++) for (int p = 0; p < P; p++) {
                double acc = 0;
                for (int o = 0; o < cout; o++) acc += SWT[o][q] * gt.getDouble(b, o, p / wd, p % wd);
                int c = q / (k * k), i = (q / k) % k, j = q % k, ih = p / wd - pad + i, iw = p % wd - pad + j;
                if (ih >= 0 && ih < h && iw >= 0 && iw < wd) dx[b][c][ih][iw] += acc;
            }
            for (int b = 0; b < n; b++) for (int c = 0; c < cin; c++) for (int i = 0; i < h; i++) for (int j = 0; j < wd; j++)
                assertEquals(dx[b][c][i][j], x.grad().getDouble(b, c, i, j), 1e-4, "Eq.2");
            // Eq. 3 with fixed mask (even positions of H*W) and IR: G[p] = dY[p] + dY[p+1] within the image
            for (int o = 0; o < cout; o++) for (int q = 0; q < K; q++) {
                double acc = 0;
                for (int b = 0; b < n; b++) for (int p = 0; p < P; p += 2) {
                    double gv = gt.getDouble(b, o, p / wd, p % wd) + (p + 1 < P ? gt.getDouble(b, o, (p + 1) / wd, (p + 1) % wd) : 0);
                    acc += gv * X[b][q][p];
                }
                assertEquals(acc, w.grad().getDouble(o, q / (k * k), (q / k) % k, q % k), 1e-4, "Eq.3");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(SparseConfig.Method.class)
    void everyMethodTrainsAConvAndALinearAtAwkwardSizes(SparseConfig.Method m) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(m.ordinal());
            Var x = Var.param(r.normal(0, 1, 3, 1, 7, 7));
            Var w = Var.param(r.normal(0, 1, 12, 1, 3, 3));        // K = 9
            Var fc = Var.param(r.normal(0, 1, 10, 12 * 49));
            SparseConfig cfg = m.config(5);
            Var h = Layers.conv2d(new Gemm3(cfg), x, w, null, 1, 1).relu();
            Var out = Layers.linear(new Gemm3(m.config(6)), h.reshape(3, -1), fc, null);
            assertArrayEquals(new int[]{3, 10}, out.shape());
            NN.crossEntropy(out, new int[]{1, 5, 9}, 0.1).backward();
            for (Var v : new Var[]{x, w, fc}) {
                assertNotNull(v.grad(), m + " gradient");
                assertFalse(fst4j.tensor.Elementwise.hasNonFinite(v.grad()), m + " finite gradient");
                assertTrue(v.grad().abs().sum().item() > 0, m + " non-zero gradient");
            }
            if (cfg.w() instanceof fst4j.sparse.Sparsifier.Magnitude24) {
                // Eq. 1 really used S(W): the output equals the dense conv of the masked weight
                try (Tensor sw = cfg.w().apply(w.value().reshape(12, 9)); Tensor sw4 = sw.reshape(12, 1, 3, 3);
                     Tensor ref = fst4j.tensor.Conv.conv2d(x.value(), sw4, null, 1, 1); Tensor y = Layers.conv2d(new Gemm3(cfg), Var.of(x.value().alias()), Var.of(w.value().alias()), null, 1, 1).value()) {
                    close(y.toFloatArray(), ref.toFloatArray(), 1e-5, "S(W) forward");
                }
            }
        }
    }

    /** Magnitude 2:4 of a row-major [rows, cols] along axis (0: down the columns, 1: along the rows): the 2 largest |v| of each group of 4 (a last group padded), ties to the lower index. */
    static double[] mag24(double[] v, int rows, int cols, int axis) {
        double[] out = new double[v.length];
        int len = axis == 1 ? cols : rows, lines = axis == 1 ? rows : cols;
        for (int l = 0; l < lines; l++)
            for (int g = 0; g < len; g += 4) {
                int best = -1, second = -1;
                for (int j = g; j < Math.min(g + 4, len); j++) {
                    double a = Math.abs(v[axis == 1 ? l * cols + j : j * cols + l]);
                    if (best < 0 || a > Math.abs(v[axis == 1 ? l * cols + best : best * cols + l])) { second = best; best = j; }
                    else if (second < 0 || a > Math.abs(v[axis == 1 ? l * cols + second : second * cols + l])) second = j;
                }
                for (int j : new int[]{best, second}) if (j >= 0) { int i = axis == 1 ? l * cols + j : j * cols + l; out[i] = v[i]; }
            }
        return out;
    }

    /** meProp's selection of a [rows, cols]: per column, the ceil(rows / 2) largest |v|, ties to the lower row. */
    static double[] topHalfPerColumn(double[] v, int rows, int cols) {
        double[] out = new double[v.length];
        for (int c = 0; c < cols; c++) {
            Integer[] idx = new Integer[rows];
            for (int i = 0; i < rows; i++) idx[i] = i;
            final int col = c;
            java.util.Arrays.sort(idx, (p, q) -> { int d = Double.compare(Math.abs(v[q * cols + col]), Math.abs(v[p * cols + col])); return d != 0 ? d : Integer.compare(p, q); });
            for (int t = 0; t < (rows + 1) / 2; t++) out[idx[t] * cols + c] = v[idx[t] * cols + c];
        }
        return out;
    }

    /** v where the rule keeps it, 0 elsewhere (a stateful rule of the sparse module, in a fresh instance). */
    static double[] keptBy(fst4j.sparse.Sparsifier rule, double[] v, int rows, int cols) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        double[] k = rule.mask(Tensor.of(f, rows, cols)).toDoubleArray(), out = v.clone();
        for (int i = 0; i < v.length; i++) if (k[i] == 0) out[i] = 0;
        return out;
    }

    /**
     * Every method's Eq. 1-3 node on a linear layer against the method's definition (SparseConfig's Javadoc, fst-method.md,
     * Table 1) written out here in float64, independently of SparseConfig's table of slots: which operand each method prunes,
     * along which axis, Eq. 2's W^T from W or from S(W), Eq. 3's fixed mask (the even positions of the segment, here the
     * batch) and shift. Magnitude 2:4 and meProp's top half are loops here; only TSM's transposable mask and the authors'
     * random patterns come from the sparse module (fresh instances, stepped once as the node's are). Sizes that are not
     * multiples of 4 (Cout 6, K 10, a batch of 7): padded groups and the segment's end are in. The smoke test below only asks
     * for finite, non-zero gradients, which a slot on the wrong operand or axis also gives.
     */
    /** A method's operands of Eq. 1-3 in the paper's orientation, as its definition prunes them (see the test below). */
    record Defined(double[] sw, double[] wEq2, double[] g2, double[] g3, double[] xs) {}

    /**
     * W [Cout, K], X [K, cols], dY [Cout, cols] pruned as method m defines: S_w(W) for Eq. 1; Eq. 2's W^T operand (kept
     * [Cout, K]) and dY; Eq. 3's G (IR applied per segment of cols) and X. The fixed mask keeps the even positions of each
     * segment; the authors' patterns and TSM's mask come from fresh instances of the sparse module's rules (seed).
     */
    static Defined defined(SparseConfig.Method m, long seed, double[] W, double[] X, double[] dY, int out, int k, int cols, int segment) {
        boolean prunesW = !java.util.List.of(SparseConfig.Method.DENSE, SparseConfig.Method.MEPROP, SparseConfig.Method.ASP,
                SparseConfig.Method.RESPROP).contains(m);
        double[] sw = m == SparseConfig.Method.TSM ? keptBy(new fst4j.sparse.Transposable24(40), W, out, k) : prunesW ? mag24(W, out, k, 1) : W;
        // Eq. 2's left operand: S(W^T) along Cout from W (WG, WX, FST2, FST3, FST3_IR, the patterns), from S(W) (the
        // authors' code), S(W) itself (TSM: its mask is 2:4 both ways), else W
        double[] wEq2 = switch (m) {
            case WG, WX, FST2, FST3, FST3_IR, FST3_IR_PATTERNS -> mag24(W, out, k, 0);
            case FST_CODE -> mag24(sw, out, k, 0);
            case TSM -> sw;
            default -> W;
        };
        double[] g2 = switch (m) {
            case GG, GX -> mag24(dY, out, cols, 0);
            case MEPROP -> topHalfPerColumn(dY, out, cols);
            default -> dY;
        };
        double[] g3 = switch (m) {
            case WG, GG -> mag24(dY, out, cols, 1);
            case MEPROP -> topHalfPerColumn(dY, out, cols);
            default -> dY;
        };
        // Information Restoration within each segment: the paper's G[j] = dY[j] + dY[j + 1]; the authors' 0.03 roll by one
        if (java.util.List.of(SparseConfig.Method.FST3_IR, SparseConfig.Method.FST_CODE, SparseConfig.Method.FST3_IR_PATTERNS).contains(m)) {
            boolean authors = m == SparseConfig.Method.FST_CODE;
            double coeff = authors ? 0.03f : 1;
            int dir = authors ? -1 : 1;
            double[] sh = new double[g3.length];
            for (int o = 0; o < out; o++)
                for (int j = 0; j < cols; j++) {
                    int base = j / segment * segment, nb = j % segment + dir;
                    double add = nb >= 0 && nb < segment ? g3[o * cols + base + nb] : authors ? g3[o * cols + base + Math.floorMod(nb, segment)] : 0;
                    sh[o * cols + j] = g3[o * cols + j] + coeff * add;
                }
            g3 = sh;
        }
        double[] xs = switch (m) {
            case WX, GX -> mag24(X, k, cols, 1);
            case FST3, FST3_IR -> {   // Eq. 7: the even positions of each segment
                double[] e = X.clone();
                for (int q = 0; q < k; q++) for (int j = 0; j < cols; j++) if (j % segment % 2 == 1) e[q * cols + j] = 0;
                yield e;
            }
            case FST_CODE, FST3_IR_PATTERNS -> keptBy(new fst4j.sparse.AuthorsFixed24(1, seed), X, k, cols);
            default -> X;
        };
        return new Defined(sw, wEq2, g2, g3, xs);
    }

    /**
     * Every method's Eq. 1-3 node on a linear layer against the method's definition (SparseConfig's Javadoc, fst-method.md,
     * Table 1) written out here in float64, independently of SparseConfig's table of slots: which operand each method prunes,
     * along which axis, Eq. 2's W^T from W or from S(W), Eq. 3's fixed mask (the even positions of the segment, here the
     * batch) and shift. Magnitude 2:4 and meProp's top half are loops here; only TSM's transposable mask and the authors'
     * random patterns come from the sparse module (fresh instances, stepped once as the node's are). Sizes that are not
     * multiples of 4 (Cout 6, K 10, a batch of 7): padded groups and the segment's end are in. The smoke test below only asks
     * for finite, non-zero gradients, which a slot on the wrong operand or axis also gives.
     */
    @ParameterizedTest
    @EnumSource(SparseConfig.Method.class)
    void everyMethodsLinearNodeEqualsItsDefinitionInFloat64(SparseConfig.Method m) {
        int n = 7, in = 10, out = 6;
        long seed = 9;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(40 + m.ordinal());
            Tensor xt = r.normal(0, 1, n, in), wt = r.normal(0, 1, out, in), gt = r.normal(0, 1, n, out);
            Var x = Var.param(xt.copy()), w = Var.param(wt.copy());
            Var y = Layers.linear(new Gemm3(m.config(seed)), x, w, null);
            y.backward(gt);
            double[] X = xt.t().contiguous().toDoubleArray();
            Defined d = defined(m, seed, wt.toDoubleArray(), X, gt.t().contiguous().toDoubleArray(), out, in, n, n);   // a linear layer's segment: the batch
            double[] yv = y.value().toDoubleArray(), dx = x.grad().toDoubleArray(), dw = w.grad().toDoubleArray();
            for (int j = 0; j < n; j++)
                for (int o = 0; o < out; o++) {
                    double want = 0, mag = 0;
                    for (int k = 0; k < in; k++) { want += d.sw()[o * in + k] * X[k * n + j]; mag += Math.abs(d.sw()[o * in + k] * X[k * n + j]); }
                    assertEquals(want, yv[j * out + o], 1e-5 * (1 + mag), m + " Eq. 1 at " + j + "," + o);
                }
            for (int j = 0; j < n; j++)
                for (int k = 0; k < in; k++) {
                    double want = 0, mag = 0;
                    for (int o = 0; o < out; o++) { want += d.wEq2()[o * in + k] * d.g2()[o * n + j]; mag += Math.abs(d.wEq2()[o * in + k] * d.g2()[o * n + j]); }
                    assertEquals(want, dx[j * in + k], 1e-5 * (1 + mag), m + " Eq. 2 at " + j + "," + k);
                }
            assertEq3(d, dw, out, in, n, m + " Eq. 3");
        }
    }

    private static void assertEq3(Defined d, double[] dw, int out, int k, int cols, String what) {
        for (int o = 0; o < out; o++)
            for (int q = 0; q < k; q++) {
                double want = 0, mag = 0;
                for (int j = 0; j < cols; j++) { want += d.g3()[o * cols + j] * d.xs()[q * cols + j]; mag += Math.abs(d.g3()[o * cols + j] * d.xs()[q * cols + j]); }
                assertEquals(want, dw[o * k + q], 1e-5 * (1 + mag), what + " at " + o + "," + q);
            }
    }

    /**
     * The same definitions on a convolution (the whole-batch path and the default blocked one), Eq. 2 folded back by a
     * col2im written out here: 2 images of 5x5 (an odd plane, so the per-image even positions are not the batch's), K = 27,
     * Cout 6; the segment of the fixed mask and of the shift is each image's plane.
     */
    @ParameterizedTest
    @EnumSource(SparseConfig.Method.class)
    void everyMethodsConvolutionEqualsItsDefinitionInFloat64(SparseConfig.Method m) {
        int n = 2, cin = 3, h = 5, wd = 5, cout = 6, k = 3, pad = 1, K = cin * k * k, L = h * wd, cols = n * L;
        long seed = 11;
        for (boolean blocked : new boolean[]{false, true}) {
            boolean before = Layers.blocked;
            Layers.blocked = blocked;
            if (blocked) assertTrue(Layers.imagesPerBlock(n, K, L) > 0, "the geometry must take the blocked path");
            try (Scope s = Scope.open()) {
                Rng r = new Rng(60 + m.ordinal());
                Tensor xt = r.normal(0, 1, n, cin, h, wd), wt = r.normal(0, 1, cout, cin, k, k), gt = r.normal(0, 1, n, cout, h, wd);
                Var x = Var.param(xt.copy()), w = Var.param(wt.copy());
                Var y = Layers.conv2d(new Gemm3(m.config(seed)), x, w, null, 1, pad);
                y.backward(gt);
                double[] xv = xt.toDoubleArray(), gv = gt.toDoubleArray(), X = new double[K * cols], dY = new double[cout * cols];
                for (int b = 0; b < n; b++)   // im2col: X[(c, i, j)][b * L + p]
                    for (int c = 0; c < cin; c++) for (int i = 0; i < k; i++) for (int j = 0; j < k; j++)
                        for (int p = 0; p < L; p++) {
                            int ih = p / wd - pad + i, iw = p % wd - pad + j;
                            if (ih >= 0 && ih < h && iw >= 0 && iw < wd) X[((c * k + i) * k + j) * cols + b * L + p] = xv[((b * cin + c) * h + ih) * wd + iw];
                        }
                for (int b = 0; b < n; b++) for (int o = 0; o < cout; o++) for (int p = 0; p < L; p++) dY[o * cols + b * L + p] = gv[(b * cout + o) * L + p];
                Defined d = defined(m, seed, wt.toDoubleArray(), X, dY, cout, K, cols, L);
                String what = m + (blocked ? " blocked" : " whole batch");
                double[] yv = y.value().toDoubleArray(), dx = x.grad().toDoubleArray(), dw = w.grad().toDoubleArray();
                for (int o = 0; o < cout; o++)
                    for (int j = 0; j < cols; j++) {
                        double want = 0, mag = 0;
                        for (int q = 0; q < K; q++) { want += d.sw()[o * K + q] * X[q * cols + j]; mag += Math.abs(d.sw()[o * K + q] * X[q * cols + j]); }
                        assertEquals(want, yv[((j / L) * cout + o) * L + j % L], 1e-5 * (1 + mag), what + " Eq. 1 at " + o + "," + j);
                    }
                double[] dxWant = new double[xv.length], dxMag = new double[xv.length];
                for (int q = 0; q < K; q++)
                    for (int j = 0; j < cols; j++) {
                        double acc = 0, mag = 0;
                        for (int o = 0; o < cout; o++) { acc += d.wEq2()[o * K + q] * d.g2()[o * cols + j]; mag += Math.abs(d.wEq2()[o * K + q] * d.g2()[o * cols + j]); }
                        int b = j / L, p = j % L, c = q / (k * k), i = q / k % k, jj = q % k, ih = p / wd - pad + i, iw = p % wd - pad + jj;
                        if (ih >= 0 && ih < h && iw >= 0 && iw < wd) { dxWant[((b * cin + c) * h + ih) * wd + iw] += acc; dxMag[((b * cin + c) * h + ih) * wd + iw] += mag; }
                    }
                for (int e = 0; e < dx.length; e++) assertEquals(dxWant[e], dx[e], 1e-5 * (1 + dxMag[e]), what + " Eq. 2 at " + e);
                assertEq3(d, dw, cout, K, cols, what + " Eq. 3");
            } finally {
                Layers.blocked = before;
            }
        }
    }

    /**
     * MEPROP (Table 3's meProp): dense W forward; in both Eq. 2 and Eq. 3 the output gradient keeps, per sample, the
     * larger half of its entries by magnitude (ties to the lower index), checked against float64 sums.
     */
    @Test
    void mePropPrunesTheOutputGradientPerSampleInBothEquations() {
        int n = 4, in = 6, out = 7;   // ceil(7 / 2) = 4 kept of 7 per sample
        try (Scope s = Scope.open()) {
            Rng r = new Rng(11);
            Tensor xt = r.normal(0, 1, n, in), wt = r.normal(0, 1, out, in), gt = r.normal(0, 1, n, out);
            Var x = Var.param(xt.copy()), w = Var.param(wt.copy());
            Var y = Layers.linear(new Gemm3(SparseConfig.Method.MEPROP.config()), x, w, null);
            long shared = Gemm3.sharedDySelections.get();
            y.backward(gt);
            assertEquals(shared + 1, Gemm3.sharedDySelections.get(), "Eq. 3 took Eq. 2's selection of the same dY");
            double[] X = xt.toDoubleArray(), W = wt.toDoubleArray(), G = gt.toDoubleArray(), yv = y.value().toDoubleArray();
            double[] sg = new double[n * out];
            for (int i = 0; i < n; i++) {
                Integer[] idx = new Integer[out];
                for (int o = 0; o < out; o++) idx[o] = o;
                final int row = i;
                java.util.Arrays.sort(idx, (p, q) -> { int c = Double.compare(Math.abs(G[row * out + q]), Math.abs(G[row * out + p])); return c != 0 ? c : Integer.compare(p, q); });
                for (int t = 0; t < 4; t++) sg[i * out + idx[t]] = G[i * out + idx[t]];
            }
            for (int i = 0; i < n; i++)
                for (int o = 0; o < out; o++) {
                    double want = 0;
                    for (int k = 0; k < in; k++) want += X[i * in + k] * W[o * in + k];
                    assertEquals(want, yv[i * out + o], 1e-5, "dense forward");
                }
            for (int i = 0; i < n; i++)
                for (int k = 0; k < in; k++) {
                    double want = 0;
                    for (int o = 0; o < out; o++) want += sg[i * out + o] * W[o * in + k];
                    assertEquals(want, x.grad().getDouble(i, k), 1e-5, "Eq. 2 with S(dY)");
                }
            for (int o = 0; o < out; o++)
                for (int k = 0; k < in; k++) {
                    double want = 0;
                    for (int i = 0; i < n; i++) want += sg[i * out + o] * X[i * in + k];
                    assertEquals(want, w.grad().getDouble(o, k), 1e-5, "Eq. 3 with S(dY)");
                }
        }
    }

    /**
     * Eq. 2's S(dY) is reused only for the very dY it came from, and freed when Eq. 3 does not run: no Scope open, a
     * frozen W, nothing left behind; another dY selects afresh.
     */
    @Test
    void eq2sSelectionIsOnlyForItsOwnDyAndIsFreedWhenEq3DoesNotRun() {
        Rng r = new Rng(13);
        long before = fst4j.tensor.Memory.bytesInUse(), shared = Gemm3.sharedDySelections.get();
        try (Tensor xt = r.normal(0, 1, 8, 4); Tensor wt = r.normal(0, 1, 4, 4); Tensor g = r.normal(0, 1, 8, 4)) {
            Var x = Var.param(xt.copy());
            Var y = Layers.linear(new Gemm3(SparseConfig.Method.MEPROP.config()), x, Var.of(wt), null);   // W frozen: no Eq. 3
            y.backward(g);
            x.grad().close();
            x.value().close();
            y.value().close();
        }
        assertEquals(before, fst4j.tensor.Memory.bytesInUse(), "the kept S(dY) was freed");
        assertEquals(shared, Gemm3.sharedDySelections.get());
        try (Scope s = Scope.open()) {
            Gemm3 node = new Gemm3(SparseConfig.Method.MEPROP.config());
            Tensor w = r.normal(0, 1, 4, 6), dy1 = r.normal(0, 1, 4, 8), dy2 = r.normal(0, 1, 4, 8), xt = r.normal(0, 1, 6, 8);
            node.inputGrad(w, null, dy1).close();
            Gemm3.Columns cols = new Gemm3.Columns() {
                public Tensor all() { return xt.alias(); }
                public Tensor kept(int[] pos, int images) { throw new AssertionError(); }
            };
            Tensor dw = node.weightGrad(dy2, cols, 8, 6);
            assertEquals(shared, Gemm3.sharedDySelections.get(), "another dY: no reuse");
            Gemm3 fresh = new Gemm3(SparseConfig.Method.MEPROP.config());
            assertArrayEquals(fresh.weightGrad(dy2, cols, 8, 6).toFloatArray(), dw.toFloatArray(), 0f, "dy2's own selection");
            node.dropSharedDy();
        }
    }

    /** Eq. 3 reuses Eq. 2's S(dY) only where both slots hold the same rule: GG's two axes select twice, as they must. */
    @Test
    void differentRulesInTheTwoDySlotsSelectTwice() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(12);
            Var x = Var.param(r.normal(0, 1, 4, 8)), w = Var.param(r.normal(0, 1, 8, 8));
            long shared = Gemm3.sharedDySelections.get();
            Layers.linear(new Gemm3(SparseConfig.Method.GG.config()), x, w, null).backward(r.normal(0, 1, 4, 8));
            assertEquals(shared, Gemm3.sharedDySelections.get());
        }
    }

    /** FST3_IR_PATTERNS is FST3_IR with only its X^T rule changed: the authors' random patterns, seeded per layer. */
    @Test
    void fst3IrPatternsChangesOnlyTheActivationMask() {
        SparseConfig a = SparseConfig.Method.FST3_IR.config(3), b = SparseConfig.Method.FST3_IR_PATTERNS.config(3);
        assertEquals(a.w(), b.w());
        assertEquals(a.wt(), b.wt());
        assertEquals(a.wtFromSparse(), b.wtFromSparse());
        assertEquals(a.dyEq2(), b.dyEq2());
        assertEquals(a.dyEq3(), b.dyEq3());
        assertEquals(a.ir(), b.ir());
        assertInstanceOf(fst4j.sparse.AuthorsFixed24.class, b.xt());
        assertEquals(3, ((fst4j.sparse.AuthorsFixed24) b.xt()).seed());
        assertEquals(SparseConfig.Method.FST3_IR_PATTERNS, SparseConfig.Method.parse("fst3_ir_patterns"));
    }

    @Test
    void parseNamesAndRejectUnknown() {
        assertEquals(SparseConfig.Method.FST3_IR, SparseConfig.Method.parse("fst3-ir"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SparseConfig.Method.parse("fst4"));
        assertTrue(e.getMessage().contains("unknown sparsity method"), e.getMessage());
    }
}
