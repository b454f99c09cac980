package fst4j.tensor;

import fst4j.shim.Native;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The GEMMs that read or write a convolution's NCHW batch in place (Conv.gemmLoweredNchw, Conv.gemmLoweredImages,
 * Blas.gemmImagesB) against the same products on the gathered [C, N*L] matrix, bit for bit: alpha and beta not 0 or 1
 * on a random C, K deeper than one packed block (384), 1 and 2 threads (enough multiply-adds to split), planes whose
 * tiles cross images now and then (9x9, 20x20), always (4x4) and stride 2; Eq. 3 on the packing GEMM and on the direct
 * kernel.
 */
class ImagesGemmTest {

    /** {n, c, h, w, k, stride, pad, m}. */
    static Stream<int[]> geometries() {
        return Stream.of(new int[]{5, 48, 9, 9, 3, 1, 1, 40},     // K = 432: two K blocks; L = 81
                new int[]{6, 8, 4, 4, 3, 1, 1, 20},                  // L = 16: every 48-column tile spans images
                new int[]{3, 20, 20, 20, 3, 1, 1, 24},               // L = 400
                new int[]{4, 45, 11, 11, 3, 2, 1, 36});              // stride 2: L = 36, K = 405
    }

    private static int out(int size, int k, int s, int p) { return (size + 2 * p - k) / s + 1; }

    /** [N, C, L] as [C, N*L] (a copy). */
    private static Tensor gathered(Tensor images) {
        try (Tensor p = images.permute(1, 0, 2)) {
            Tensor c = p.contiguous();
            return c.reshape(images.size(1), images.size(0) * images.size(2));
        }
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void nchwOutputEqualsTheScatteredProduct(int[] g) {
        int n = g[0], c = g[1], k = g[4], s = g[5], p = g[6], m = g[7], ho = out(g[2], k, s, p), wo = out(g[3], k, s, p), l = ho * wo;
        int before = Blas.threads();
        try {
            for (int threads : new int[]{1, 2}) {
                Blas.setThreads(threads);
                Rng r = new Rng(31L * threads + g[2]);
                Tensor x = r.normal(0, 1, n, c, g[2], g[3]), a = r.normal(0, 1, m, c * k * k), y0 = r.normal(0, 1, n, m, ho, wo);
                Lowering low = new Lowering(x, k, k, s, s, p, p);
                Tensor mat;
                try (Tensor y3 = y0.reshape(n, m, l)) { mat = gathered(y3); }
                Conv.gemmLowered(0.7f, a, low, false, 0.3f, mat);
                Tensor want;
                try (Tensor m3 = mat.reshape(m, n, l); Tensor pm = m3.permute(1, 0, 2)) { want = pm.contiguous(); }
                Tensor y = y0.copy();
                Conv.gemmLoweredNchw(0.7f, a, low, 0.3f, y);
                assertArrayEquals(want.toFloatArray(), y.toFloatArray(), 0f, "Eq. 1 as NCHW, threads " + threads);
            }
        } finally {
            Blas.setThreads(before);
        }
    }

    @ParameterizedTest
    @MethodSource("geometries")
    void eq3FromImagesEqualsTheGatheredProduct(int[] g) {
        int n = g[0], c = g[1], k = g[4], s = g[5], p = g[6], m = g[7], ho = out(g[2], k, s, p), wo = out(g[3], k, s, p), l = ho * wo;
        int before = Blas.threads(), direct = Native.wgradDirectMax(-1);
        try {
            for (int rows : new int[]{0, 1 << 20})   // the packing GEMM; the direct kernel (where the CPU has it)
                for (int threads : new int[]{1, 2}) {
                    Native.wgradDirectMax(rows);
                    Blas.setThreads(threads);
                    Rng r = new Rng(17L * threads + g[2] + rows);
                    Tensor x = r.normal(0, 1, n, c, g[2], g[3]), dy = r.normal(0, 1, n, m, l), dw0 = r.normal(0, 1, m, c * k * k);
                    Lowering low = new Lowering(x, k, k, s, s, p, p);
                    Tensor want = dw0.copy(), got = dw0.copy();
                    try (Tensor dyg = gathered(dy)) { Conv.gemmLowered(0.7f, dyg, low, true, 0.3f, want); }
                    Conv.gemmLoweredImages(0.7f, dy, low, 0.3f, got);
                    assertArrayEquals(want.toFloatArray(), got.toFloatArray(), 0f, "Eq. 3 from images, direct rows " + rows + ", threads " + threads);
                }
        } finally {
            Blas.setThreads(before);
            Native.wgradDirectMax(direct);
        }
    }

    /** Eq. 2's W^T dY with dY read as images: K = Cout up to 400 (two packed blocks), W^T a transposed view and a copy. */
    @ParameterizedTest
    @MethodSource("geometries")
    void eq2FromImagesEqualsTheGatheredProduct(int[] g) {
        int n = g[0], l = out(g[2], g[4], g[5], g[6]) * out(g[3], g[4], g[5], g[6]), rows = g[1] * g[4] * g[4] / 4 + 3;
        int before = Blas.threads();
        try {
            for (int cout : new int[]{g[7], 400})
                for (int threads : new int[]{1, 2}) {
                    Blas.setThreads(threads);
                    Rng r = new Rng(7L * threads + cout + g[2]);
                    Tensor w = r.normal(0, 1, cout, rows), dy = r.normal(0, 1, n, cout, l), c0 = r.normal(0, 1, rows, n * l);
                    for (boolean view : new boolean[]{true, false}) {
                        Tensor wt = view ? w.t() : w.t().contiguous();
                        Tensor want = c0.copy(), got = c0.copy();
                        try (Tensor dyg = gathered(dy)) { Blas.gemm(0.7f, wt, dyg, 0.3f, want); }
                        Blas.gemmImagesB(0.7f, wt, dy, 0.3f, got);
                        assertArrayEquals(want.toFloatArray(), got.toFloatArray(), 0f,
                                "Eq. 2 from images, Cout " + cout + ", W^T " + (view ? "a view" : "contiguous") + ", threads " + threads);
                    }
                }
        } finally {
            Blas.setThreads(before);
        }
    }
}
