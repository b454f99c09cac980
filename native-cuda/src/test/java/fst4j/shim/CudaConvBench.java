package fst4j.shim;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Convolution benchmark of the implicit-GEMM kernels (no lowered matrix) against the lowered path, at ResNet-18's
 * ImageNet convolutions (batch 256), on the device: per layer,
 * <ul>
 *   <li>Eq. 1: lowered = fst_cuda_im2col_bf16 + cuBLAS GemmEx (bf16 in, fp32 out [Cout, N*Ho*Wo]; the permute into NCHW
 *       the step needs after it is not counted); dense64 / dense128 = fst_cuda_conv_igemm on the 64 x 128 / 128 x 64 tile
 *       (straight into NCHW); sp64 / sp128 = fst_cuda_conv_igemm_sp, S(W) 2:4 along K on mma.sp;</li>
 *   <li>Eq. 2 (stride-1 layers): lowered = by_channel (dY into [Cout, N*Ho*Wo] and bf16) + GemmEx (bf16 product) +
 *       col2im_bf16; dense64 / dense128 = the convolution of dY with the tap-reversed W (fst_cuda_wflip16 done before);
 *       sp64 / sp128 = the 2:4 convolution of dY with the tap-reversed S(W^T) (fst_cuda_conv24_t done before);</li>
 *   <li>Eq. 3: lowered = im2col_bf16 + GemmEx against the implicit GEMM over split positions (fst_cuda_conv_wgrad), for
 *       all positions and for the fixed mask's kept half (every other output column, FST3_IR's Eq. 3).</li>
 * </ul>
 * The weight preparation (bf16 rounding, pruning, reordering) is timed apart ("prep" rows). Every variant's output is
 * checked once, before timing, on sampled elements against a float64 reference of the same bf16-rounded (and masked)
 * operands (bound: K 2^-22 of the sum of |terms|, plus the bf16 rounding of the lowered Eq. 2's product). Times are CUDA
 * events around each repetition after warm-up: median, p10, p90. The sparse-vs-dense ratio that matters is sp vs the
 * faster dense implicit tile: both read x the same way, so it isolates what the sparse tensor cores buy.
 *
 * <p>Usage: {@code CudaConvBench [--smoke] [--reps R] [OUTFILE]} (default conv.txt); the "CONV" table lines are printed
 * last. Exit code 1 when a check fails. {@code --smoke}: tiny layers at batch 2 (CudaConvBenchTest runs it on the emulator).
 */
public final class CudaConvBench {
    private static final int F32 = Cuda.R_32F, BF16 = Cuda.R_16BF;

    /** A convolution: Cin -> Cout, k x k, stride, padding, input hw x hw. */
    public record Layer(String name, int cin, int cout, int k, int stride, int pad, int hw) {
        int out() { return (hw + 2 * pad - k) / stride + 1; }
        int kk() { return cin * k * k; }
    }

    public static final List<Layer> RESNET18 = List.of(new Layer("stem", 3, 64, 7, 2, 3, 224), new Layer("layer1", 64, 64, 3, 1, 1, 56),
            new Layer("layer2a", 64, 128, 3, 2, 1, 56), new Layer("layer2", 128, 128, 3, 1, 1, 28), new Layer("layer3a", 128, 256, 3, 2, 1, 28),
            new Layer("layer3", 256, 256, 3, 1, 1, 14), new Layer("layer4a", 256, 512, 3, 2, 1, 14), new Layer("layer4", 512, 512, 3, 1, 1, 7));
    public static final List<Layer> SMOKE = List.of(new Layer("stem-s", 3, 8, 3, 2, 1, 9), new Layer("conv-s", 32, 32, 3, 1, 1, 6),
            new Layer("wide-s", 40, 160, 3, 1, 1, 5));

    public record Config(List<Layer> layers, int batch, int warmup, int reps, int samples) {
        public static Config full() { return new Config(RESNET18, 256, 3, 20, 64); }
        public static Config smoke() { return new Config(SMOKE, 2, 1, 2, 48); }
    }

    /** One timed variant; relErr its worst sampled error relative to its bound (<= 1 passes). */
    public record Row(String layer, String eq, String variant, double flops, double median, double p10, double p90, double relErr) {
        boolean ok() { return relErr <= 1; }
        double tflops() { return flops / (median * 1e-3) / 1e12; }
    }

    private final Config cfg;
    private final PrintStream log;
    private final List<Row> rows = new ArrayList<>();
    private final List<String> lines = new ArrayList<>();

    private CudaConvBench(Config cfg, PrintStream log) { this.cfg = cfg; this.log = log; }

    private void out(String s) { log.println(s); lines.add(s); }

    // ---------------------------------------------------------------- helpers (device memory, random tiles, timing: CudaGemmBench's)

    private static float[] download(MemorySegment d, long n) {
        Cuda.sync();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(4 * n, 64);
            Cuda.copyToHost(h, d, 4 * n);
            return h.toArray(JAVA_FLOAT);
        }
    }

    /** The elements at idx of a device float array, one small copy each (not the whole output: up to a gigabyte). */
    private static float[] sampled(MemorySegment d, long[] idx) {
        Cuda.sync();
        float[] v = new float[idx.length];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(4, 4);
            for (int q = 0; q < idx.length; q++) {
                Cuda.copyToHost(h, CudaGemmBench.at(d, 4 * idx[q]), 4);
                v[q] = h.get(JAVA_FLOAT, 0);
            }
        }
        return v;
    }

    private static float bf(float f) { return Bf16.round(f); }

    private CudaGemmBench.Stat time(Runnable op) { return CudaGemmBench.time(cfg.warmup(), cfg.reps(), op); }

    private void row(Layer l, String eq, String variant, double flops, Runnable op, double relErr) {
        CudaGemmBench.Stat t = time(op);
        Row r = new Row(l.name(), eq, variant, flops, t.median(), t.p10(), t.p90(), relErr);
        rows.add(r);
        out(String.format(Locale.ROOT, "time  %-8s %-4s %-9s median %9.4f ms (p10 %9.4f, p90 %9.4f) %8.2f TFLOP/s  check %.3f of its bound%s",
                l.name(), eq, variant, r.median(), r.p10(), r.p90(), r.tflops(), relErr, r.ok() ? "" : "  FAIL"));
    }

    private void prep(Layer l, String what, Runnable op) {
        CudaGemmBench.Stat t = time(op);
        out(String.format(Locale.ROOT, "prep  %-8s %-30s median %9.4f ms (p10 %9.4f, p90 %9.4f)", l.name(), what, t.median(), t.p10(), t.p90()));
    }

    /**
     * Worst |got - want| / bound over the samples (got[q] the output at sample q), ref[q] = {want, sum of |terms|}: bound =
     * (kTerms 2^-22 + extraRel) sum |terms| (fp32 accumulation in any order, with room; extraRel for a product rounded to
     * bf16 before it is summed).
     */
    private static double check(float[] got, double[][] ref, long kTerms, double extraRel) {
        double worst = 0;
        for (int q = 0; q < got.length; q++) {
            double bound = (kTerms * 0x1p-22 + extraRel) * ref[q][1] + 1e-30;
            worst = Math.max(worst, Math.abs(got[q] - ref[q][0]) / bound);
        }
        return worst;
    }

    // ---------------------------------------------------------------- one layer

    private void layer(Arena arena, Random r, Layer l) {
        int n = cfg.batch(), cin = l.cin(), cout = l.cout(), k = l.k(), s = l.stride(), p = l.pad(), h = l.hw(), ho = l.out(), kk = l.kk();
        long npix = (long) n * ho * ho, xN = (long) n * cin * h * h, yN = npix * cout, groups = (kk + 3) / 4, words = (groups + 7) / 8;
        double flops = 2.0 * cout * kk * npix;
        CudaGemmBench.Tile tx = CudaGemmBench.tile(arena, r, 1 << 20 | 7), tw = CudaGemmBench.tile(arena, r, 1 << 18 | 5);
        try (CudaGemmBench.Mem m = new CudaGemmBench.Mem()) {
            MemorySegment x = m.alloc(4 * xN), w = m.alloc(4L * cout * kk), w16 = m.alloc(2L * cout * kk), y = m.alloc(4 * yN);
            tx.upload(x, xN);
            tw.upload(w, (long) cout * kk);
            MemorySegment vals = m.alloc(4 * cout * 2 * groups), meta = m.alloc(4 * cout * words), v16 = m.alloc(2 * cout * 2 * groups),
                    masked16 = m.alloc(2L * cout * kk);
            prep(l, "W to bf16", () -> Native.cudaF32ToBf16(w, w16, (long) cout * kk));
            prep(l, "S(W): prune24 + values to bf16", () -> {
                Native.cudaPrune24(cout, kk, w, kk, vals, meta, MemorySegment.NULL, 0, masked16, kk);
                Native.cudaF32ToBf16(vals, v16, cout * 2 * groups);
            });
            float[] wHost = download(w, (long) cout * kk);
            float[] wMasked = new float[wHost.length];
            try (Arena a = Arena.ofConfined()) {
                MemorySegment hm = a.allocate(2L * cout * kk, 64);
                Cuda.copyToHost(hm, masked16, 2L * cout * kk);
                for (int i = 0; i < wMasked.length; i++) wMasked[i] = Bf16.value(hm.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i));
            }
            // Eq. 1 samples: output (img, co, oh, ow) in NCHW
            long[] idx = new long[cfg.samples()];
            double[][] refD = new double[idx.length][], refS = new double[idx.length][];
            for (int q = 0; q < idx.length; q++) {
                int img = r.nextInt(n), co = r.nextInt(cout), oh = r.nextInt(ho), ow = r.nextInt(ho);
                idx[q] = (((long) img * cout + co) * ho + oh) * ho + ow;
                double[] d = { 0, 0 }, sp = { 0, 0 };
                for (int ci = 0; ci < cin; ci++)
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++) {
                            int ih = oh * s - p + a, iw = ow * s - p + b;
                            if (ih < 0 || ih >= h || iw < 0 || iw >= h) continue;
                            double xv = bf(tx.get((((long) img * cin + ci) * h + ih) * h + iw));
                            int kidx = (ci * k + a) * k + b;
                            double t1 = bf(wHost[co * kk + kidx]) * xv, t2 = wMasked[co * kk + kidx] * xv;
                            d[0] += t1; d[1] += Math.abs(t1); sp[0] += t2; sp[1] += Math.abs(t2);
                        }
                refD[q] = d;
                refS[q] = sp;
            }
            // lowered: im2col into bf16, then GemmEx into [Cout, N*Ho*Wo] (its samples read there)
            MemorySegment cols16 = m.alloc(2L * kk * npix), y2 = m.alloc(4 * yN);
            Runnable lowered = () -> {
                Native.cudaIm2colBf16(x, n, cin, h, h, k, k, s, s, p, p, ho, ho, cols16, kk, npix);
                Cuda.gemmEx(false, false, cout, npix, kk, 1f, w16, BF16, kk, cols16, BF16, npix, 0f, y2, F32, npix, false);
            };
            lowered.run();
            long[] asMatrix = new long[idx.length];   // the same outputs in the product's [Cout, N*Ho*Wo]
            for (int q = 0; q < idx.length; q++) {
                long e = idx[q], ow = e % ho, oh = (e / ho) % ho, co = (e / ((long) ho * ho)) % cout, img = e / ((long) ho * ho * cout);
                asMatrix[q] = co * npix + (img * ho + oh) * ho + ow;
            }
            row(l, "eq1", "lowered", flops, lowered, check(sampled(y2, asMatrix), refD, kk, 0));
            // the dense kernel as the step runs it: W's K channels fastest where the channels are a multiple of 16
            boolean cfast = cin % 16 == 0;
            MemorySegment wd = cfast ? m.alloc(2L * cout * kk) : w16;
            if (cfast) prep(l, "W to bf16, K channels fastest", () -> Native.cudaWtap16(w, cout, cin, (long) k * k, wd, kk));
            for (int tileM : new int[] { 64, 128 }) {
                Native.cudaIgemmTile(tileM);
                Runnable dense = () -> Native.cudaConvIgemm(x, n, cin, h, h, k, k, s, s, p, p, ho, ho, wd, kk, cout, y, cfast);
                dense.run();
                double e = check(sampled(y, idx), refD, kk, 0);
                row(l, "eq1", "dense" + tileM, flops, dense, e);
                Runnable sparse = () -> Native.cudaConvIgemmSparse(x, n, cin, h, h, k, k, s, s, p, p, ho, ho, v16, 2 * groups, meta, words, cout, y, false);
                sparse.run();
                e = check(sampled(y, idx), refS, kk, 0);
                row(l, "eq1", "sp" + tileM, flops, sparse, e);
            }
            Native.cudaIgemmTile(0);
            if (s == 1 && cout % 32 == 0) eq2(arena, r, l, m, w, wHost);
            eq3(arena, r, l, m, x, tx, false);
            eq3(arena, r, l, m, x, tx, true);
        }
    }

    /**
     * Eq. 3, dW = g im2col(x)^T with g random bf16 [Cout, positions]: lowered (im2col_bf16 + GemmEx) against the implicit
     * GEMM over split ranges of positions. half: the fixed mask's kept half as its lowering sees it (every other output
     * column: the horizontal stride doubled), FST3_IR's Eq. 3.
     */
    private void eq3(Arena arena, Random r, Layer l, CudaGemmBench.Mem m, MemorySegment x, CudaGemmBench.Tile tx, boolean half) {
        int n = cfg.batch(), cin = l.cin(), cout = l.cout(), k = l.k(), s = l.stride(), p = l.pad(), h = l.hw(), kk = l.kk();
        int sw = half ? 2 * s : s, ho = l.out(), wo = (h + 2 * p - k) / sw + 1;
        long npix = (long) n * ho * wo;
        double flops = 2.0 * cout * kk * npix;
        String eq = half ? "eq3h" : "eq3";
        CudaGemmBench.Tile tg = CudaGemmBench.tile(arena, r, 1 << 20 | 9);
        MemorySegment g32 = m.alloc(4 * cout * npix), g16 = m.alloc(2 * cout * npix), dw = m.alloc(4L * cout * kk), cols16 = m.alloc(2L * kk * npix);
        tg.upload(g32, cout * npix);
        Native.cudaF32ToBf16(g32, g16, cout * npix);
        long splits = Native.cudaConvWgradSplits(cout, kk, npix, 0);
        MemorySegment ws = m.alloc(4 * splits * cout * kk);
        long[] idx = new long[cfg.samples()];
        double[][] ref = new double[idx.length][];
        for (int z = 0; z < idx.length; z++) {
            int co = r.nextInt(cout), kx = r.nextInt(kk), ci = kx / (k * k), a = kx % (k * k) / k, b = kx % k;
            idx[z] = (long) co * kk + kx;
            double[] d = { 0, 0 };
            for (int img = 0; img < n; img++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++) {
                        int ih = oh * s - p + a, iw = ow * sw - p + b;
                        if (ih < 0 || ih >= h || iw < 0 || iw >= h) continue;
                        double t = (double) bf(tg.get(co * npix + ((long) img * ho + oh) * wo + ow)) * bf(tx.get((((long) img * cin + ci) * h + ih) * h + iw));
                        d[0] += t;
                        d[1] += Math.abs(t);
                    }
            ref[z] = d;
        }
        Runnable lowered = () -> {
            Native.cudaIm2colBf16(x, n, cin, h, h, k, k, s, sw, p, p, ho, wo, cols16, kk, npix);
            Cuda.gemmEx(false, true, cout, kk, npix, 1f, g16, BF16, npix, cols16, BF16, npix, 0f, dw, F32, kk, false);
        };
        lowered.run();
        row(l, eq, "lowered", flops, lowered, check(sampled(dw, idx), ref, npix, 0));
        Runnable implicit = () -> Native.cudaConvWgrad(x, n, cin, h, h, k, k, s, sw, p, p, ho, wo, g16, npix, cout, ws, splits, dw, kk, 0f, cin % 8 == 0);   // as the step runs it
        implicit.run();
        row(l, eq, "implicit", flops, implicit, check(sampled(dw, idx), ref, npix, 0));
    }

    private void eq2(Arena arena, Random r, Layer l, CudaGemmBench.Mem m, MemorySegment w, float[] wHost) {
        int n = cfg.batch(), cin = l.cin(), cout = l.cout(), k = l.k(), p = l.pad(), h = l.hw(), ho = l.out(), kk = l.kk(), khw = k * k, q = k - 1 - p;
        long npix = (long) n * ho * ho, plane = (long) ho * ho, dxN = (long) n * cin * h * h, dyN = npix * cout;
        double flops = 2.0 * cout * kk * npix;
        CudaGemmBench.Tile td = CudaGemmBench.tile(arena, r, 1 << 20 | 3);
        MemorySegment dy = m.alloc(4 * dyN), dx = m.alloc(4 * dxN), w16 = m.alloc(2L * cout * kk), flip16 = m.alloc(2L * cin * cout * khw);
        td.upload(dy, dyN);
        Native.cudaF32ToBf16(w, w16, (long) cout * kk);
        MemorySegment vt = m.alloc(4L * kk * cout / 2), mt = m.alloc(4L * kk * cout / 32), maskedT = m.alloc(4L * kk * cout),
                sv = m.alloc(2L * kk * cout / 2), sm = m.alloc(4L * kk * cout / 32);
        boolean cfast = cout % 16 == 0;   // as the step runs it
        prep(l, "W^T tap-reversed (wflip16)", () -> Native.cudaWflip16(w, cout, cin, k, k, flip16, (long) cout * khw, cfast));
        prep(l, "S(W^T): prune24_t + conv24_t", () -> {
            Native.cudaPrune24Transposed(cout, kk, w, kk, vt, mt, maskedT, cout, MemorySegment.NULL, 0);
            Native.cudaConv24T(vt, mt, cin, cout, khw, sv, sm);
        });
        float[] st = download(maskedT, (long) kk * cout);   // S(W^T) [K, Cout]
        long[] idx = new long[cfg.samples()];
        double[][] refD = new double[idx.length][], refS = new double[idx.length][];
        for (int z = 0; z < idx.length; z++) {
            int img = r.nextInt(n), ci = r.nextInt(cin), ih = r.nextInt(h), iw = r.nextInt(h);
            idx[z] = (((long) img * cin + ci) * h + ih) * h + iw;
            double[] d = { 0, 0 }, sp = { 0, 0 };
            for (int co = 0; co < cout; co++)
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        int oh = ih + p - a, ow = iw + p - b;
                        if (oh < 0 || oh >= ho || ow < 0 || ow >= ho) continue;
                        double g = bf(td.get((((long) img * cout + co) * ho + oh) * ho + ow));
                        int kidx = (ci * k + a) * k + b;
                        double t1 = bf(wHost[co * kk + kidx]) * g, t2 = bf(st[kidx * cout + co]) * g;
                        d[0] += t1; d[1] += Math.abs(t1); sp[0] += t2; sp[1] += Math.abs(t2);
                    }
            refD[z] = d;
            refS[z] = sp;
        }
        MemorySegment dyc = m.alloc(4 * dyN), dy16 = m.alloc(2 * dyN), prod16 = m.alloc(2L * kk * npix);
        Runnable lowered = () -> {
            Native.cudaByChannel(dy, n, cout, plane, dyc, dy16);
            Cuda.gemmEx(true, false, kk, npix, cout, 1f, w16, BF16, kk, dy16, BF16, npix, 0f, prod16, BF16, npix, false);
            Native.cudaCol2imBf16(prod16, npix, n, cin, h, h, k, k, 1, 1, p, p, ho, ho, dx);
        };
        lowered.run();
        row(l, "eq2", "lowered", flops, lowered, check(sampled(dx, idx), refD, (long) cout * khw, 0x1p-8));
        for (int tileM : new int[] { 64, 128 }) {
            Native.cudaIgemmTile(tileM);
            Runnable dense = () -> Native.cudaConvIgemm(dy, n, cout, ho, ho, k, k, 1, 1, q, q, h, h, flip16, (long) cout * khw, cin, dx, cfast);
            dense.run();
            row(l, "eq2", "dense" + tileM, flops, dense, check(sampled(dx, idx), refD, (long) cout * khw, 0));
            Runnable sparse = () -> Native.cudaConvIgemmSparse(dy, n, cout, ho, ho, k, k, 1, 1, q, q, h, h, sv, (long) khw * cout / 2, sm,
                    (long) khw * cout / 32, cin, dx, true);
            sparse.run();
            row(l, "eq2", "sp" + tileM, flops, sparse, check(sampled(dx, idx), refS, (long) cout * khw, 0));
        }
        Native.cudaIgemmTile(0);
    }

    // ---------------------------------------------------------------- table and entry points

    private List<String> table() {
        List<String> t = new ArrayList<>();
        t.add("CONV median ms (TFLOP/s, dense-equivalent) per variant; sp/dense = the faster dense implicit tile / the faster 2:4 one; lowered/best = lowered / the fastest implicit");
        t.add(String.format(Locale.ROOT, "CONV %-8s %-4s %18s %18s %18s %18s %18s %8s %8s", "layer", "eq", "lowered", "dense64", "dense128", "sp64", "sp128",
                "sp/dense", "low/best"));
        for (Layer l : cfg.layers())
            for (String eq : new String[] { "eq1", "eq2" }) {
                Row lo = find(l, eq, "lowered"), d64 = find(l, eq, "dense64"), d128 = find(l, eq, "dense128"), s64 = find(l, eq, "sp64"), s128 = find(l, eq, "sp128");
                if (lo == null) continue;
                double dense = Math.min(d64.median(), d128.median()), sp = Math.min(s64.median(), s128.median());
                boolean ok = lo.ok() && d64.ok() && d128.ok() && s64.ok() && s128.ok();
                t.add(String.format(Locale.ROOT, "CONV %-8s %-4s %18s %18s %18s %18s %18s %8.2f %8.2f%s", l.name(), eq, cell(lo), cell(d64), cell(d128),
                        cell(s64), cell(s128), dense / sp, lo.median() / Math.min(dense, sp), ok ? "" : "  FAIL"));
            }
        t.add("CONV3 Eq. 3 median ms (TFLOP/s): all positions and the fixed mask's kept half (eq3h), lowered vs implicit (split positions); "
                + "half/full = full implicit / half implicit (the target is 2)");
        t.add(String.format(Locale.ROOT, "CONV3 %-8s %18s %18s %18s %18s %8s %8s", "layer", "lowered", "implicit", "half lowered", "half implicit", "low/imp", "full/half"));
        for (Layer l : cfg.layers()) {
            Row fl = find(l, "eq3", "lowered"), fi = find(l, "eq3", "implicit"), hl = find(l, "eq3h", "lowered"), hi = find(l, "eq3h", "implicit");
            if (fl == null || fi == null || hl == null || hi == null) continue;
            boolean ok = fl.ok() && fi.ok() && hl.ok() && hi.ok();
            t.add(String.format(Locale.ROOT, "CONV3 %-8s %18s %18s %18s %18s %8.2f %8.2f%s", l.name(), cell(fl), cell(fi), cell(hl), cell(hi),
                    fl.median() / fi.median(), fi.median() / hi.median(), ok ? "" : "  FAIL"));
        }
        return t;
    }

    private Row find(Layer l, String eq, String v) {
        for (Row r : rows) if (r.layer().equals(l.name()) && r.eq().equals(eq) && r.variant().equals(v)) return r;
        return null;
    }

    private static String cell(Row r) { return String.format(Locale.ROOT, "%8.4f (%6.1f)", r.median(), r.tflops()); }

    /** Runs every layer; returns whether every check passed. */
    public static boolean run(Config cfg, Path file, PrintStream log) throws IOException {
        CudaConvBench b = new CudaConvBench(cfg, log);
        b.out("device: " + Cuda.status() + "; batch " + cfg.batch() + ", " + cfg.warmup() + " warm-up + " + cfg.reps() + " timed repetitions per variant");
        Random r = new Random(22);
        try (Arena arena = Arena.ofConfined()) {
            for (Layer l : cfg.layers()) b.layer(arena, r, l);
        }
        List<String> t = b.table();
        for (String s : t) b.out(s);
        Files.write(file, b.lines);
        return b.rows.stream().allMatch(Row::ok);
    }

    public static void main(String[] args) throws IOException {
        Config cfg = Config.full();
        Path file = Path.of("conv.txt");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--smoke" -> cfg = Config.smoke();
                case "--reps" -> cfg = new Config(cfg.layers(), cfg.batch(), cfg.warmup(), Integer.parseInt(args[++i]), cfg.samples());
                default -> file = Path.of(args[i]);
            }
        }
        if (!Cuda.isAvailable()) {
            System.err.println("CudaConvBench: no usable CUDA device: " + Cuda.status());
            System.exit(2);
        }
        System.exit(run(cfg, file, System.out) ? 0 : 1);
    }
}
