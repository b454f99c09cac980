package fst4j.bench;

import fst4j.tensor.Blas;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The training step of {@link StepBench} (same models, data, optimizer and thread count), timed interleaved: each
 * round gives every variant (fst4j DENSE, FST2, FST3_IR and PyTorch's dense step, driven through
 * {@code jmh/peers/torch_step.py --serve}) a turn of a few steps, back to back, in an order that rotates from round to
 * round; the last step of a turn is timed (the ones before bring its model's data back into the caches the others
 * used). Ratios are taken within a round, between steps seconds apart, and their median over the rounds is reported.
 * <p>
 * Why: on the development VM the machine's speed switches between two levels (a step's time jumps by ~1.4x between
 * JMH iterations of one JVM, for seconds to minutes at a time), so medians of separate runs compare different machine
 * states. Steps that alternate see the same state. PyTorch runs in its own process, idle (blocked on its input)
 * while fst4j steps and the other way round; a short pause between steps lets the spinning worker threads of both
 * park before the next one starts.
 * <p>
 * A variant may carry settings of process-wide switches, e.g. {@code --methods dense,dense:blockcols=4096 --no-torch}
 * (tconv = Eq. 2 as a convolution of dY, tconvall = that at every stride-1 layer rather than v6's narrow ones,
 * group = the 2:4 kernel's large-weight blocking, spf = its software prefetch of a large S, kblock = its L2-sized K
 * blocks, jit = the 2:4 product compiled per call for small weights, plan = the planned lowering, seg = its segment plan for strided geometries (else gathers), collist = half-K Eq. 3's kept columns at odd-width planes as a column list (else gathered), eq3img = Eq. 3 of a blocked convolution (half-K, or dense) reading dY's images in place (else a gathered block), eq2img = Eq. 2 as a dense W^T dY reading them in place (else a gathered block), eq3shift = half-K Eq. 3 from images computing the IR shift while packing (else a shifted gather first), spin = PAUSE instructions a helper thread spins before it sleeps, mpvec = the 2x2 / stride-2 max pool's vector path, c2i = the stride-2 col2im as a gather, densesmall = Eq. 1 and 2 of layers of at most 64 channels on the dense GEMM of the pruned weights where the AVX-512 2:4 kernel is absent, dense2 = stride-2 Eq. 1 of few channels on the dense GEMM of S(W), dense2eq2 = their Eq. 2 on the dense GEMM of S(W^T), nchw = a convolution's product (the dense GEMM, or the compiled 2:4 convolution) writing a block's NCHW planes (else a matrix scattered), inplace = gradients summed in place, bnx = the fused batch norm + ReLU's backward recomputing the mask from x (else reading the output), bnadd = a ResNet block's second batch norm, shortcut add and ReLU as one function (else batch norm, then the add and ReLU), bnpool = batch norm, ReLU and a 2x2 max pool as one function (else batch norm + ReLU, then the pool), wgrad = most output rows of Eq. 3 without packing, blockcols = target columns per
 * convolution block, blockmb = most MB of lowered columns per block): each is applied for that variant's steps
 * only, so one run A/Bs a change under the same machine states.
 * <p>
 * {@code ./fst4j bench-interleaved [--models cnn,resnet-small,resnet18] [--methods dense,fst2,fst3_ir] [--rounds 30]
 * [--warmup 5] [--turn 2] [--threads 2] [--no-torch]}
 */
public final class StepInterleaved {
    private StepInterleaved() {}

    /**
     * Process-wide switches a variant may set for its own steps ("fst3_ir:group=0"), for A/B runs of one change inside
     * one interleaved run: each variant applies its settings before its steps and the defaults are restored after.
     */
    private static final Map<String, java.util.function.IntUnaryOperator> SWITCHES = Map.ofEntries(
            Map.entry("tconv", flag(() -> fst4j.autograd.Layers.eq2Tconv, b -> fst4j.autograd.Layers.eq2Tconv = b)),
            Map.entry("group", nativeSwitch(fst4j.shim.Native::spmm24Grouping)),
            Map.entry("spf", nativeSwitch(fst4j.shim.Native::spmm24Prefetch)),
            Map.entry("kblock", nativeSwitch(fst4j.shim.Native::spmm24KBlocks)),
            Map.entry("jit", nativeSwitch(fst4j.shim.Native::spmm24Jit)),
            Map.entry("plan", v -> { boolean p = fst4j.shim.Native.loweringPlan(-1); fst4j.shim.Native.loweringPlan(v); return p ? 1 : 0; }),
            Map.entry("seg", nativeSwitch(fst4j.shim.Native::loweringSeg)),
            Map.entry("spin", nativeSwitch(fst4j.shim.Native::parallelSpin)),
            Map.entry("mpvec", v -> { boolean p = fst4j.shim.Native.maxPoolVector(-1); fst4j.shim.Native.maxPoolVector(v); return p ? 1 : 0; }),
            Map.entry("c2i", v -> { boolean p = fst4j.shim.Native.col2imStride2(-1); fst4j.shim.Native.col2imStride2(v); return p ? 1 : 0; }),
            Map.entry("tconvall", flag(() -> fst4j.autograd.Layers.eq2TconvAll, b -> fst4j.autograd.Layers.eq2TconvAll = b)),
            Map.entry("dense2", flag(() -> fst4j.autograd.Layers.denseStride2, b -> fst4j.autograd.Layers.denseStride2 = b)),
            Map.entry("densesmall", flag(() -> fst4j.autograd.Layers.denseSmallWithoutAvx512, b -> fst4j.autograd.Layers.denseSmallWithoutAvx512 = b)),
            Map.entry("dense2eq2", flag(() -> fst4j.autograd.Layers.denseStride2Eq2, b -> fst4j.autograd.Layers.denseStride2Eq2 = b)),
            Map.entry("nchw", flag(() -> fst4j.autograd.Gemm3.cpuNchw, b -> fst4j.autograd.Gemm3.cpuNchw = b)),
            Map.entry("eq3img", flag(() -> fst4j.autograd.Layers.eq3FromImages, b -> fst4j.autograd.Layers.eq3FromImages = b)),
            Map.entry("eq2img", flag(() -> fst4j.autograd.Layers.eq2FromImages, b -> fst4j.autograd.Layers.eq2FromImages = b)),
            Map.entry("eq3shift", flag(() -> fst4j.autograd.Gemm3.eq3FusedShift, b -> fst4j.autograd.Gemm3.eq3FusedShift = b)),
            Map.entry("collist", flag(() -> fst4j.autograd.Gemm3.oddPlaneColumnList, b -> fst4j.autograd.Gemm3.oddPlaneColumnList = b)),
            Map.entry("inplace", flag(() -> fst4j.autograd.Var.accumulateInPlace, b -> fst4j.autograd.Var.accumulateInPlace = b)),
            Map.entry("bnx", flag(() -> fst4j.tensor.Norm.reluMaskFromX, b -> fst4j.tensor.Norm.reluMaskFromX = b)),
            Map.entry("bnadd", flag(() -> fst4j.nn.BasicBlock.fuseBnAddRelu, b -> fst4j.nn.BasicBlock.fuseBnAddRelu = b)),
            Map.entry("bnpool", flag(() -> fst4j.nn.Sequential.fuseBnReluPool, b -> fst4j.nn.Sequential.fuseBnReluPool = b)),
            Map.entry("blockcols", fst4j.autograd.Layers::blockColumns),
            Map.entry("blockmb", fst4j.autograd.Layers::blockMegabytes),
            Map.entry("wgrad", nativeSwitch(fst4j.shim.Native::wgradDirectMax)));

    /** A boolean switch (a static field) as a setter of 0 / 1 returning the previous setting. */
    private static java.util.function.IntUnaryOperator flag(java.util.function.BooleanSupplier get,
                                                            java.util.function.Consumer<Boolean> set) {
        return v -> { boolean p = get.getAsBoolean(); set.accept(v != 0); return p ? 1 : 0; };
    }

    /** A native switch (mode 0 or 1 set, -1 only asks, the mode in use returned) as a setter returning the previous mode. */
    private static java.util.function.IntUnaryOperator nativeSwitch(java.util.function.IntUnaryOperator sw) {
        return v -> { int p = sw.applyAsInt(-1); sw.applyAsInt(v); return p; };
    }

    /** The switch settings of a variant "method:NAME=INT:..." (none for a bare method), in order. */
    static Map<String, Integer> settings(String spec) {
        Map<String, Integer> settings = new LinkedHashMap<>();
        String[] parts = spec.split(":");
        for (int i = 1; i < parts.length; i++) {
            String[] kv = parts[i].split("=", 2);
            if (kv.length != 2 || !SWITCHES.containsKey(kv[0]))
                throw new IllegalArgumentException("variant '" + spec + "': settings are NAME=INT with NAME one of " + SWITCHES.keySet());
            settings.put(kv[0], Integer.parseInt(kv[1]));
        }
        return settings;
    }

    /** Sets the switches; returns the settings they had before, for the same call to restore them. */
    static Map<String, Integer> apply(Map<String, Integer> settings) {
        Map<String, Integer> before = new LinkedHashMap<>();
        settings.forEach((k, v) -> before.put(k, SWITCHES.get(k).applyAsInt(v)));
        return before;
    }

    /** One fst4j variant: a {@link StepCase} and the switches it runs under. */
    private static final class Variant implements AutoCloseable {
        final String name;
        final StepCase step;
        final Map<String, Integer> settings = new LinkedHashMap<>();

        Variant(String model, String spec) {
            settings.putAll(settings(spec));
            name = spec;
            step = new StepCase(model, spec.split(":")[0]);
        }

        /** One step under this variant's settings; returns its wall time in ms. */
        double step() {
            Map<String, Integer> before = apply(settings);
            try {
                long t0 = System.nanoTime();
                step.step();
                return (System.nanoTime() - t0) / 1e6;
            } finally {
                apply(before);
            }
        }

        @Override public void close() { step.close(); }
    }

    /** PyTorch's step in a child process (torch_step.py --serve); null when python3 or torch is missing. */
    private static final class Peer implements AutoCloseable {
        final Process p;
        final Writer in;
        final BufferedReader out;

        private Peer(Process p) {
            this.p = p;
            this.in = new OutputStreamWriter(p.getOutputStream(), StandardCharsets.UTF_8);
            this.out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        }

        static Peer start(String python, Path script, String model, int threads) {
            if (!Files.isRegularFile(script)) {
                System.out.println("  PyTorch: skipped (no peer script at " + script + ")");
                return null;
            }
            try {
                Process p = new ProcessBuilder(python, script.toString(), "--serve", model, "--threads", Integer.toString(threads))
                        .redirectError(ProcessBuilder.Redirect.INHERIT).start();
                Peer peer = new Peer(p);
                String first = peer.out.readLine();
                if ("ready".equals(first)) return peer;
                System.out.println("  PyTorch: skipped (" + (first == null ? "the peer exited" : first) + ")");
                peer.close();
            } catch (IOException e) {
                System.out.println("  PyTorch: skipped (cannot run " + python + ": " + e.getMessage() + ")");
            }
            return null;
        }

        double step() throws IOException {
            in.write("step\n");
            in.flush();
            String line = out.readLine();
            if (line == null || !line.startsWith("ms ")) throw new IOException("PyTorch peer answered '" + line + "'");
            return Double.parseDouble(line.substring(3));
        }

        @Override public void close() {
            try { in.write("quit\n"); in.flush(); } catch (IOException ignored) { /* already gone */ }
            try {
                if (!p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) p.destroyForcibly();
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    public static void main(String[] args) throws Exception {
        try {
            run(args);
        } catch (IllegalArgumentException e) {   // a bad command line or variant: one line, no stack trace
            System.err.println("bench-interleaved: " + e.getMessage());
            System.exit(2);
        }
    }

    private static void run(String[] args) throws Exception {
        Map<String, String> o = new LinkedHashMap<>(Map.of("--models", "cnn,resnet-small,resnet18", "--methods", "dense,fst2,fst3_ir",
                "--rounds", "30", "--warmup", "5", "--threads", "2", "--pause-ms", "25", "--peer", "jmh/peers/torch_step.py"));
        o.put("--turn", "2");
        o.put("--python", "python3");
        boolean torch = true;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--no-torch")) { torch = false; continue; }
            if (!o.containsKey(args[i]) || i + 1 >= args.length)
                throw new IllegalArgumentException("usage: StepInterleaved [--models a,b] [--methods dense,fst2,fst3_ir] [--rounds N] [--warmup N]"
                        + " [--turn N] [--threads N] [--pause-ms N] [--peer torch_step.py] [--python python3] [--no-torch]; got '" + args[i] + "'");
            o.put(args[i], args[++i]);
        }
        int rounds = Integer.parseInt(o.get("--rounds")), warmup = Integer.parseInt(o.get("--warmup"));
        int threads = Integer.parseInt(o.get("--threads")), pause = Integer.parseInt(o.get("--pause-ms")), turn = Integer.parseInt(o.get("--turn"));
        if (rounds < 1 || warmup < 0 || threads < 1 || pause < 0 || turn < 1)
            throw new IllegalArgumentException("rounds >= 1, warmup >= 0, turn >= 1, threads >= 1, pause >= 0");
        Blas.setThreads(threads);
        System.out.printf(Locale.ROOT, "Interleaved training steps: %d threads, %d rounds after %d warm-up rounds; per round each variant"
                + " takes a turn of %d steps (order rotating), the last one timed; %d ms pause between turns%n", threads, rounds, warmup, turn, pause);
        System.out.println("# host: " + fst4j.shim.Host.current().describe());
        for (String model : o.get("--models").split(",")) {
            System.out.println();
            System.out.println(model + ":");
            List<Variant> fst = new ArrayList<>();
            Peer peer = null;
            try {
                for (String m : o.get("--methods").split(",")) if (!m.isBlank()) fst.add(new Variant(model, m));
                if (torch) peer = Peer.start(o.get("--python"), Path.of(o.get("--peer")), model, threads);
                int nv = fst.size() + (peer != null ? 1 : 0);
                String[] names = new String[nv];
                for (int v = 0; v < fst.size(); v++) names[v] = "fst4j " + fst.get(v).name;
                if (peer != null) names[nv - 1] = "pytorch";
                double[][] ms = new double[nv][rounds];
                for (int r = -warmup; r < rounds; r++) {
                    for (int k = 0; k < nv; k++) {
                        int v = Math.floorMod(k + r, nv);
                        double t = 0;
                        for (int s = 0; s < turn; s++) t = v < fst.size() ? fst.get(v).step() : peer.step();   // the first warm the caches
                        if (r >= 0) ms[v][r] = t;
                        Thread.sleep(pause);
                    }
                }
                for (int v = 0; v < nv; v++) {
                    double[] q = quartiles(ms[v]);
                    System.out.printf(Locale.ROOT, "  %-16s median %8.1f ms   IQR %.1f-%.1f   min %.1f%n", names[v], q[1], q[0], q[2], min(ms[v]));
                }
                // ratio a/b > 1: b is faster; within a round, then the median over rounds
                for (int a = 0; a < nv; a++)
                    for (int b = 0; b < nv; b++) {
                        // against PyTorch and against the first fst4j variant (DENSE, or an A/B's reference)
                        if (a == b || !(names[a].equals("pytorch") || a == 0) || names[b].equals("pytorch")) continue;
                        double[] ratio = new double[rounds];
                        for (int r = 0; r < rounds; r++) ratio[r] = ms[a][r] / ms[b][r];
                        double[] q = quartiles(ratio);
                        System.out.printf(Locale.ROOT, "  %-16s / %-16s %.2fx (IQR %.2f-%.2f)  %s%n", names[a], names[b], q[1], q[0], q[2],
                                q[1] >= 1 ? names[b] + " faster" : names[a] + " faster");
                    }
            } finally {
                if (peer != null) peer.close();
                for (Variant v : fst) v.close();
            }
        }
    }

    /** {25th, 50th, 75th percentile} with linear interpolation. */
    static double[] quartiles(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return new double[]{pct(s, 0.25), pct(s, 0.5), pct(s, 0.75)};
    }

    private static double pct(double[] s, double p) {
        double i = p * (s.length - 1);
        int lo = (int) Math.floor(i), hi = (int) Math.ceil(i);
        return s[lo] + (s[hi] - s[lo]) * (i - lo);
    }

    private static double min(double[] v) { return Arrays.stream(v).min().orElse(Double.NaN); }
}
