package fst4j.shim;

import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Locale;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * Our GEMM on Hopper's warpgroup tensor cores (fst_cuda_wggemm: wgmma, and wgmma.sp on a 2:4 A) against cuBLAS's bf16
 * GEMM on the same operands, at ResNet-18's (ImageNet) conv-as-GEMM shapes: M = Cout, K = 9 Cin, N = batch x H x W (a
 * multiple of 128), A = W [M, K] 2:4 along K (random kept positions), B given as B^T [N, K] (an im2col in NHWC order),
 * fp32 output. Per shape: each product once, compared with cuBLAS (the largest difference relative to the largest
 * |C|), then CUDA-event timings (median of 10 after 3 warm-up runs). The question it answers: how far the sparse tensor
 * cores' 1.83-1.87x ceiling (gpu/mma_peak.cu) carries through a whole GEMM of our own, against our dense kernel of the
 * same design and against cuBLAS, with both tiles (64 x 128 on one warpgroup, 128 x 128 on two, the latter also as "128a": its K slices copied by
 * cp.async into three shared-memory stages instead of through registers into two); then Eq. 1 of
 * ResNet-18's stride-1 3x3 layers as implicit GEMMs on the same kernels (fst_cuda_wgconv, x in bf16 NHWC: compare with
 * cuDNN's channels_last times in native-cuda/CUDA.md, run 25). Prints "WGG" lines; {@code --smoke} runs one 128 x 128 x 64
 * product and one small convolution (the host emulator).
 * <p>
 * {@code java -cp ... fst4j.shim.CudaWgGemmBench [--smoke] [--batch N] [--gemm MxKxN [--untimed]] [OUTFILE]} (--gemm: that one
 * product only, no convolutions)
 */
public final class CudaWgGemmBench {
    private CudaWgGemmBench() {}

    private static final int F32 = Cuda.R_32F, BF16 = Cuda.R_16BF;

    /**
     * Values per random block that the operands repeat (uploaded once, copied on the device to fill them): 1M timed;
     * the smoke mode takes a small one, so that the fill's offsets past the first block are exercised there too (they
     * were written with a slice of a zero-length device segment, which failed on the first real device run only).
     */
    private static long blockValues = 1 << 20;

    /**
     * --untimed: each product once (dense, 2:4, cuBLAS per tile) and compared, nothing timed: what gpu/ncu_wg.sh profiles,
     * one launch per kernel and operand form.
     */
    private static boolean untimed;

    public static void main(String[] args) throws Exception {
        boolean smoke = false;
        int batch = 256;
        String outFile = null;
        long[] only = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--smoke")) { smoke = true; blockValues = 1000; }
            else if (args[i].equals("--batch") && i + 1 < args.length) batch = Integer.parseInt(args[++i]);
            else if (args[i].equals("--gemm") && i + 1 < args.length) {
                String[] f = args[++i].split("x");
                if (f.length != 3) throw new IllegalArgumentException("--gemm takes MxKxN, e.g. 256x2304x50176: " + args[i]);
                only = new long[]{ Long.parseLong(f[0]), Long.parseLong(f[1]), Long.parseLong(f[2]) };
            }
            else if (args[i].equals("--untimed")) untimed = true;
            else outFile = args[i];
        }
        try (PrintStream out = outFile == null ? new PrintStream(System.out, true) : new PrintStream(outFile)) {
            out.println("WGG device: " + Cuda.status());
            if (!Cuda.isAvailable()) { out.println("WGG skipped: no CUDA device"); return; }
            if (only != null) { run(out, only[0], only[1], only[2] / 128 * 128, 3, 10); return; }
            long[][] shapes = smoke ? new long[][]{ { 128, 64, 128 } }
                    : new long[][]{ { 64, 576, 56 * 56L * batch }, { 128, 1152, 28 * 28L * batch }, { 256, 2304, 14 * 14L * batch }, { 512, 4608, 7 * 7L * batch } };
            for (long[] s : shapes) run(out, s[0], s[1], s[2] / 128 * 128, smoke ? 1 : 3, smoke ? 2 : 10);
            // Eq. 1 as an implicit GEMM on the same tensor cores: 3x3, stride 1, "same" padding, x bf16 NHWC
            long[][] convs = smoke ? new long[][]{ { 1, 64, 6, 128 } }
                    : new long[][]{ { batch, 64, 56, 64 }, { batch, 128, 28, 128 }, { batch, 256, 14, 256 }, { batch, 512, 7, 512 } };
            for (long[] cv : convs) conv(out, cv[0], cv[1], cv[2], cv[3], smoke ? 1 : 3, smoke ? 2 : 10);
        }
    }

    /** One stride-1 3x3 convolution (n images, c -> cout channels, h x h): the NHWC conversion, then both tiles, dense and 2:4. */
    private static void conv(PrintStream out, long n, long c, long h, long cout, int warmup, int reps) {
        Random r = new Random(c * 7 + h);
        long kk = 9, K = kk * c, npos = n * h * h;
        try (Arena arena = Arena.ofConfined()) {
            Sparse24 w = Sparse24.random(r, cout, K);
            MemorySegment w16 = upload(arena, w.dense()), v16 = upload(arena, w.kept()), dm = upload(arena, w.meta());
            long total = n * c * h * h, block = Math.min(total, blockValues);
            float[] xb = new float[(int) block];
            for (int i = 0; i < xb.length; i++) xb[i] = (float) r.nextGaussian();
            MemorySegment hb = arena.allocate(4 * block, 64);
            MemorySegment.copy(xb, 0, hb, JAVA_FLOAT, 0, xb.length);
            MemorySegment x = Cuda.malloc(4 * total), blk = Cuda.malloc(4 * block), xh = Cuda.malloc(2 * total);
            MemorySegment y = Cuda.malloc(4 * npos * cout), ok = Cuda.malloc(4);
            try {
                Cuda.copyToDevice(blk, hb, 4 * block);
                for (long off = 0; off < total; off += block) Cuda.copyOnDevice(CudaGemmBench.at(x, 4 * off), blk, 4 * Math.min(block, total - off));
                Runnable toNhwc = () -> Native.cudaNhwc16(x, n, c, h, h, xh);
                toNhwc.run();
                double flop = 2.0 * npos * cout * K, tn = CudaGemmBench.time(warmup, reps, toNhwc).median();
                StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "WGG conv %3d -> %3d @%dx%d batch %d: NHWC bf16 copy %.3f ms", c, cout, h, h, n, tn));
                for (int tile : TILES) {
                    int rows = Math.abs(tile);
                    if (cout % rows != 0 || c % (rows == 64 ? 64 : 32) != 0) continue;
                    Runnable d = async(tile, () -> Native.cudaWgconv(xh, n, c, h, h, 3, 3, 1, 1, 1, 1, h, h, w16, K, cout, y, 0f, MemorySegment.NULL, 0, ok, rows));
                    Runnable sp = async(tile, () -> Native.cudaWgconv(xh, n, c, h, h, 3, 3, 1, 1, 1, 1, h, h, v16, K / 2, cout, y, 0f, dm, K / 32, ok, rows));
                    d.run();
                    Cuda.sync();
                    MemorySegment hk = arena.allocate(4);
                    Cuda.copyToHost(hk, ok, 4);
                    if (hk.get(JAVA_INT, 0) != 1) { out.println(sb + " | skipped: no sm_90a code"); return; }
                    double td = CudaGemmBench.time(warmup, reps, d).median(), ts = CudaGemmBench.time(warmup, reps, sp).median();
                    sb.append(String.format(Locale.ROOT, " | tile %s: wgmma %.3f ms (%.0f TFLOP/s), wgmma.sp %.3f ms (%.0f dense-eq), sp/dense %.2fx",
                            tileName(tile), td, flop / td / 1e9, ts, flop / ts / 1e9, td / ts));
                }
                out.println(sb);
            } finally {
                for (MemorySegment dv : new MemorySegment[]{ x, blk, xh, y, ok, w16, v16, dm }) Cuda.free(dv);
            }
        }
    }

    /** The tiles timed: 64 rows, 128 rows staged through registers, and (-128) 128 rows filled by cp.async (wggemm3). */
    private static final int[] TILES = { 64, 128, -128 };

    private static String tileName(int tile) { return tile < 0 ? -tile + "a" : Integer.toString(tile); }

    /** r with the 128-row tile's cp.async pipeline on for a negative tile (off otherwise), the setting restored after each call. */
    static Runnable async(int tile, Runnable r) {
        return () -> {
            int was = Native.cudaWgAsync(tile < 0 ? 1 : 0);
            try { r.run(); } finally { Native.cudaWgAsync(was); }
        };
    }

    private static void run(PrintStream out, long m, long k, long n, int warmup, int reps) {
        for (int tile : TILES) if (m % Math.abs(tile) == 0) run(out, m, k, n, warmup, reps, tile);
    }

    private static void run(PrintStream out, long m, long k, long n, int warmup, int reps, int tile) {
        int rows = Math.abs(tile);
        Random r = new Random(m * 31 + k);
        try (Arena arena = Arena.ofConfined()) {
            Sparse24 sa = Sparse24.random(r, m, k);
            MemorySegment a16 = upload(arena, sa.dense()), v16 = upload(arena, sa.kept()), dm = upload(arena, sa.meta());
            // B^T [n, k]: one random block of up to 1M values, repeated
            long total = n * k, block = Math.min(total, blockValues);
            short[] bb = new short[(int) block];
            for (int i = 0; i < bb.length; i++) bb[i] = Bf16.of((float) r.nextGaussian());
            MemorySegment bt = Cuda.malloc(2 * total), blk = upload(arena, bb);
            for (long off = 0; off < total; off += block) Cuda.copyOnDevice(CudaGemmBench.at(bt, 2 * off), blk, 2 * Math.min(block, total - off));
            MemorySegment cw = Cuda.malloc(4 * m * n), cs = Cuda.malloc(4 * m * n), cb = Cuda.malloc(4 * m * n), ok = Cuda.malloc(4);
            try {
                Runnable wgDense = async(tile, () -> Native.cudaWggemm(a16, k, bt, k, cw, n, m, n, k, 1f, 0f, MemorySegment.NULL, 0, ok, rows));
                Runnable wgSparse = async(tile, () -> Native.cudaWggemm(v16, k / 2, bt, k, cs, n, m, n, k, 1f, 0f, dm, k / 32, ok, rows));
                Runnable cublas = () -> Cuda.gemmEx(false, true, m, n, k, 1f, a16, BF16, k, bt, BF16, k, 0f, cb, F32, n, false);
                wgDense.run();
                Cuda.sync();
                int[] okv = new int[1];
                MemorySegment h = arena.allocate(4);
                Cuda.copyToHost(h, ok, 4);
                okv[0] = h.get(JAVA_INT, 0);
                String shape = String.format(Locale.ROOT, "%d x %d x %d tile %s", m, n, k, tileName(tile));
                if (okv[0] != 1) { out.println("WGG " + shape + ": skipped, this device build has no sm_90a code"); return; }
                wgSparse.run();
                cublas.run();
                Cuda.sync();
                double dd = maxRelDiff(arena, cw, cb, m * n), ds = maxRelDiff(arena, cs, cb, m * n);
                if (untimed) { out.printf(Locale.ROOT, "WGG %-22s untimed | max diff vs cuBLAS %.1e / %.1e%n", shape, dd, ds); return; }
                double tb = CudaGemmBench.time(warmup, reps, cublas).median(), td = CudaGemmBench.time(warmup, reps, wgDense).median(),
                       ts = CudaGemmBench.time(warmup, reps, wgSparse).median();
                double flop = 2.0 * m * n * k;
                out.printf(Locale.ROOT, "WGG %-22s cuBLAS bf16 %8.3f ms (%5.0f TFLOP/s) | wgmma %8.3f ms (%5.0f) | wgmma.sp %8.3f ms (%5.0f dense-eq)"
                                + " | sp/dense %.2fx, sp/cuBLAS %.2fx, dense/cuBLAS %.2fx | max diff vs cuBLAS %.1e / %.1e%n",
                        shape, tb, flop / tb / 1e9, td, flop / td / 1e9, ts, flop / ts / 1e9, td / ts, tb / ts, tb / td, dd, ds);
            } finally {
                for (MemorySegment d : new MemorySegment[]{ bt, cw, cs, cb, ok }) Cuda.free(d);
                for (MemorySegment d : new MemorySegment[]{ a16, v16, dm, blk }) Cuda.free(d);
            }
        }
    }

    /** A [rows, k] 2:4 along k with random kept positions and values: dense bf16 (zeros pruned), its kept values, k_prune24's words. */
    private record Sparse24(short[] dense, short[] kept, int[] meta) {
        static Sparse24 random(Random r, long rows, long k) {
            short[] dense = new short[(int) (rows * k)], kept = new short[(int) (rows * k / 2)];
            int[] meta = new int[(int) (rows * k / 32)];
            for (int row = 0; row < rows; row++)
                for (int g = 0; g < k / 4; g++) {
                    int i0 = r.nextInt(3), i1 = i0 + 1 + r.nextInt(3 - i0);
                    short v0 = Bf16.of(0.5f + r.nextFloat()), v1 = Bf16.of(-0.5f - r.nextFloat());
                    dense[(int) (row * k + 4 * g + i0)] = v0;
                    dense[(int) (row * k + 4 * g + i1)] = v1;
                    kept[(int) (row * k / 2 + 2 * g)] = v0;
                    kept[(int) (row * k / 2 + 2 * g + 1)] = v1;
                    meta[(int) (row * (k / 32) + g / 8)] |= (i0 | i1 << 2) << (4 * (g % 8));
                }
            return new Sparse24(dense, kept, meta);
        }
    }

    /** max |x - y| / max |y| over n floats of two device buffers (fails where the comparison is not finite). */
    private static double maxRelDiff(Arena arena, MemorySegment x, MemorySegment y, long n) {
        long step = Math.max(1, n / (1 << 22));   // at most ~4M sampled values
        MemorySegment hx = arena.allocate(4 * n, 64), hy = arena.allocate(4 * n, 64);
        Cuda.copyToHost(hx, x, 4 * n);
        Cuda.copyToHost(hy, y, 4 * n);
        double diff = 0, scale = 0;
        for (long i = 0; i < n; i += step) {
            double a = hx.getAtIndex(JAVA_FLOAT, i), b = hy.getAtIndex(JAVA_FLOAT, i);
            diff = Math.max(diff, Math.abs(a - b));
            scale = Math.max(scale, Math.abs(b));
        }
        double rel = diff / Math.max(scale, 1e-30);
        if (!Double.isFinite(rel)) throw new IllegalStateException("warpgroup GEMM: non-finite difference against cuBLAS");
        return rel;
    }

    private static MemorySegment upload(Arena arena, short[] v) {
        MemorySegment h = arena.allocate(2L * v.length, 64), d = Cuda.malloc(2L * v.length);
        MemorySegment.copy(v, 0, h, JAVA_SHORT, 0, v.length);
        Cuda.copyToDevice(d, h, 2L * v.length);
        return d;
    }

    private static MemorySegment upload(Arena arena, int[] v) {
        MemorySegment h = arena.allocate(4L * v.length, 64), d = Cuda.malloc(4L * v.length);
        MemorySegment.copy(v, 0, h, JAVA_INT, 0, v.length);
        Cuda.copyToDevice(d, h, 4L * v.length);
        return d;
    }
}
