package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Profile;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.train.Trainer;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.CudaOps;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Wall time of ResNet training steps on CUDA tensors, for the GPU sessions (gpu/run.sh and gpu/step.sh run it): a
 * model from {@link Models} moved to the device, one random batch already on the device, SGD with Nesterov momentum
 * and weight decay. Each step is the step fst4j's CPU benchmark (jmh StepBench) and trainer time: forward,
 * cross-entropy with label smoothing 0.1, the loss read back ({@code item()}, as both do), backward, SR-STE decay
 * ({@link SrSte#addDecay}: it touches only the layers whose forward weight is magnitude-2:4 pruned, so nothing for
 * DENSE), SGD step and zeroGrad; then {@code Cuda.sync()}. Timed with System.nanoTime after warm-up; the median, min
 * and max are printed. This is the step as the framework runs it (host overhead, launches, copies of max-pool
 * indices and the loss included), not a kernel profile.
 *
 * <p>Usage: {@code CudaStepTiming [--profile N] [--max-seconds S] [model:batch[:warmup:steps[:method[:size]]]]...}
 * <ul>
 * <li>model: {@code resnetSmall}, {@code resnet18} (CIFAR stem, 10 classes, 3x32x32) or {@code resnet18in}
 *     ({@code Models.resnet18(3, 1000, true, method, seed)}: ImageNet stem, 1000 classes, 3x224x224);</li>
 * <li>method: any {@link SparseConfig.Method} name (default DENSE); size: the image side (default 32, or 224 for
 *     resnet18in; smaller sizes are for tests on the emulator);</li>
 * <li>{@code --max-seconds S}: stop a configuration's timed steps once they have taken S seconds (at least one step
 *     is timed; the line then says {@code steps=k of=n}), so that a slow configuration cannot eat a device call;</li>
 * <li>{@code --profile N}: after the timed steps, N more steps with a device synchronisation at every boundary of
 *     {@link Profile}'s parts (Eq. 1/2/3, im2col, sparsify, elementwise, optimizer), printed as one {@code PROFILE}
 *     line of ms per step. Profile's times are host wall times; CUDA launches return before the work is done, so
 *     without the synchronisations the parts would book launch time only. The synchronisations slow the step
 *     (its {@code step_ms} there is not the step time: the {@code STEP} line is), which is why it is off by default
 *     and the profiled steps are separate from the timed ones.</li>
 * </ul>
 * Output: one parsable line per configuration, {@code STEP <model> <method> batch=.. size=.. warmup=.. steps=..
 * median_ms=.. min_ms=.. max_ms=.. img_per_s=.. loss=.. params=..} (or {@code STEP <model> <method> batch=.. size=.. FAILED
 * <exception>}), then a {@code GEMM:} line. Default: resnetSmall:128 and resnet18:128, 3 warm-up and 10 timed steps.
 */
public final class CudaStepTiming {
    private CudaStepTiming() {}

    /** The step's hyper-parameters (jmh/peers/torch_step_gpu.py uses the same). */
    public static final double LR = 0.05, MOMENTUM = 0.9, WEIGHT_DECAY = 5e-4, LABEL_SMOOTHING = 0.1;
    public static final boolean NESTEROV = true;
    public static final long MODEL_SEED = 1, DATA_SEED = 2;

    /** One configuration: {@code model:batch[:warmup:steps[:method[:size]]]}. */
    private static final String LABEL = System.getProperty("fst4j.step.label", "").isEmpty() ? "" : "-" + System.getProperty("fst4j.step.label");

    public record Spec(String model, int batch, int warmup, int steps, SparseConfig.Method method, int size) {
        public Spec {
            if (!List.of("resnetSmall", "resnet18", "resnet18in").contains(model))
                throw new IllegalArgumentException("unknown model " + model + " (resnetSmall, resnet18, resnet18in)");
            if (batch <= 0 || warmup < 0 || steps < 0 || size <= 0)
                throw new IllegalArgumentException("bad step spec " + model + ":" + batch + ":" + warmup + ":" + steps + ":" + method + ":" + size);
        }

        public static Spec parse(String s) {
            String[] p = s.split(":", -1);
            if (p.length < 1 || p.length > 6 || p.length == 3)
                throw new IllegalArgumentException("step spec '" + s + "': expected model:batch[:warmup:steps[:method[:size]]]");
            String model = p[0];
            int batch = p.length > 1 ? Integer.parseInt(p[1]) : 128;
            int warmup = p.length > 2 ? Integer.parseInt(p[2]) : 3, steps = p.length > 3 ? Integer.parseInt(p[3]) : 10;
            SparseConfig.Method method = p.length > 4 ? SparseConfig.Method.parse(p[4]) : SparseConfig.Method.DENSE;
            int size = p.length > 5 ? Integer.parseInt(p[5]) : defaultSize(model);
            return new Spec(model, batch, warmup, steps, method, size);
        }

        static int defaultSize(String model) { return model.equals("resnet18in") ? 224 : 32; }

        public int classes() { return model.equals("resnet18in") ? 1000 : 10; }

        /** The model, built on the host with {@link #MODEL_SEED}. */
        public Sequential build() {
            return switch (model) {
                case "resnetSmall" -> Models.resnetSmall(3, 10, method, MODEL_SEED);
                case "resnet18" -> Models.resnet18(3, 10, false, method, MODEL_SEED);
                case "resnet18in" -> Models.resnet18(3, 1000, true, method, MODEL_SEED);
                default -> throw new IllegalArgumentException("unknown model " + model);
            };
        }

        /**
         * "model method batch=.. size=..", the method suffixed with -Dfst4j.step.label (e.g. "FST3_IR-twopass") where a
         * run times one configuration under another switch, so that its lines stay apart from the default's.
         */
        String head() { return String.format(Locale.ROOT, "%s %s%s batch=%d size=%d", model, method, LABEL, batch, size); }
    }

    /**
     * One configuration's result; times in milliseconds. profileMs: per-part ms per profiled step (null when not
     * profiled), profiledSteps, profiledStepMs: the synchronised steps' own mean wall time.
     */
    public record Result(Spec spec, int steps, double medianMs, double minMs, double maxMs, double lastLoss, long params,
                         Map<Profile.Part, Double> profileMs, int profiledSteps, double profiledStepMs) {
        public String model() { return spec.model(); }
        public int batch() { return spec.batch(); }

        /** The parsable STEP line (without the "STEP " prefix). */
        @Override public String toString() {
            String cut = steps < spec.steps() ? " of=" + spec.steps() : "";
            return String.format(Locale.ROOT, "%s warmup=%d steps=%d%s median_ms=%.2f min_ms=%.2f max_ms=%.2f img_per_s=%.1f loss=%.4f params=%d",
                    spec.head(), spec.warmup(), steps, cut, medianMs, minMs, maxMs, spec.batch() * 1000.0 / medianMs, lastLoss, params);
        }

        /** The PROFILE line (without the prefix), or null when the steps were not profiled. */
        public String profileLine() {
            if (profileMs == null) return null;
            StringBuilder sb = new StringBuilder(spec.head()).append(" steps=").append(profiledSteps).append(" synced_per_part");
            double parts = 0;
            for (Map.Entry<Profile.Part, Double> e : profileMs.entrySet()) {
                sb.append(String.format(Locale.ROOT, " %s_ms=%.2f", e.getKey(), e.getValue()));
                parts += e.getValue();
            }
            return sb.append(String.format(Locale.ROOT, " OTHER_ms=%.2f step_ms=%.2f", profiledStepMs - parts, profiledStepMs)).toString();
        }
    }

    /** The former entry point: a DENSE model at its default size, no time limit, no profile. */
    public static Result time(String model, int batch, int warmup, int steps) {
        return time(new Spec(model, batch, warmup, steps, SparseConfig.Method.DENSE, Spec.defaultSize(model)), 0, 0, null);
    }

    /**
     * Times spec on the device. maxSeconds > 0 ends the timed steps once they have taken that long (after at least one);
     * profileSteps > 0 runs that many extra steps with {@link Profile} synchronised per part (fewer when maxSeconds is set
     * and they would take longer; at least one). progress (may be null) gets one line per step as it ends and then the
     * STEP line of the timed steps, before the profiled ones (so a run cut by a timeout still shows how far it got).
     */
    public static Result time(Spec spec, double maxSeconds, int profileSteps, java.util.function.Consumer<String> progress) {
        Cuda.requireDevice();
        Sequential m = spec.build();
        int n = spec.size();
        try (m; SGD opt = new SGD(m.to(Device.CUDA).parameters(), LR, MOMENTUM, WEIGHT_DECAY, NESTEROV);
             Tensor hx = new Rng(DATA_SEED).normal(0, 1, spec.batch(), 3, n, n); Tensor x = hx.to(Device.CUDA)) {
            int[] labels = new int[spec.batch()];
            for (int i = 0; i < labels.length; i++) labels[i] = i % spec.classes();
            m.train(true);
            double[] ms = new double[spec.steps()];
            int done = 0;
            double timed = 0, loss = Double.NaN;
            for (int s = 0; s < spec.warmup() + spec.steps(); s++) {
                long t0 = System.nanoTime();
                loss = step(m, opt, x, labels);
                double t = (System.nanoTime() - t0) / 1e6;
                boolean warm = s < spec.warmup();
                if (!warm) { ms[done++] = t; timed += t; }
                if (progress != null)
                    progress.accept(String.format(Locale.ROOT, "  %s step %d%s: %.2f ms, loss %.4f", spec.head(), s + 1, warm ? " (warm-up)" : "", t, loss));
                if (!warm && maxSeconds > 0 && timed >= maxSeconds * 1000) break;
            }
            double[] sorted = Arrays.copyOf(ms, done);
            Arrays.sort(sorted);
            double median = done == 0 ? Double.NaN : (sorted[(done - 1) / 2] + sorted[done / 2]) / 2;
            Result timedOnly = new Result(spec, done, median, done == 0 ? Double.NaN : sorted[0], done == 0 ? Double.NaN : sorted[done - 1],
                    loss, m.parameterCount(), null, 0, Double.NaN);
            if (progress != null) progress.accept("STEP " + timedOnly);   // before the profiled steps, which a timeout may cut
            if (profileSteps > 0 && maxSeconds > 0 && done > 0)            // the profiled steps too stay within the cap
                profileSteps = (int) Math.max(1, Math.min(profileSteps, Math.floor(maxSeconds * 1000 / median)));
            if (profileSteps <= 0) return timedOnly;
            double profiled;
            Cuda.kernelProfile(true);
            boolean kprofWas = Cuda.setKernelProfile(true);   // the profiled steps are synchronised per part anyway
            Profile.reset();
            Profile.setBarrier(Cuda::sync);
            try {
                Cuda.sync();
                long t0 = System.nanoTime();
                for (int s = 0; s < profileSteps; s++) step(m, opt, x, labels);
                profiled = (System.nanoTime() - t0) / 1e6 / profileSteps;
            } finally {
                Profile.setBarrier(null);
                Cuda.setKernelProfile(kprofWas);
            }
            if (progress != null)   // where the device time of the profiled steps went, per kernel and library call
                progress.accept("KPROF " + spec.head() + ", device time summed over " + profileSteps + " profiled step(s):\n" + Cuda.kernelProfile(true));
            Map<Profile.Part, Double> parts = new EnumMap<>(Profile.Part.class);
            for (Map.Entry<Profile.Part, Long> e : Profile.snapshot().entrySet()) parts.put(e.getKey(), e.getValue() / 1e6 / profileSteps);
            return new Result(spec, done, timedOnly.medianMs(), timedOnly.minMs(), timedOnly.maxMs(), loss, timedOnly.params(), parts, profileSteps, profiled);
        }
    }

    /**
     * One training step, as jmh's StepBench times it on the CPU (and Trainer.trainStep runs it, there with a learning
     * rate schedule and metrics), followed by a device synchronisation; returns the loss.
     */
    static double step(Module m, SGD opt, Tensor x, int[] labels) {
        double l;
        try (Scope scope = Scope.open()) {
            Var loss = NN.crossEntropy(m.forward(Var.of(x.alias())), labels, LABEL_SMOOTHING);
            l = loss.item();
            Trainer.backwardAndUpdate(loss, m, opt, true, SrSte.DEFAULT_LAMBDA);
            Cuda.sync();
        }
        return l;
    }

    public static void main(String[] args) {
        int profile = 0;
        double maxSeconds = 0;
        List<String> configs = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--profile" -> profile = Integer.parseInt(args[++i]);
                case "--max-seconds" -> maxSeconds = Double.parseDouble(args[++i]);
                default -> configs.add(args[i]);
            }
        }
        if (configs.isEmpty()) configs = List.of("resnetSmall:128", "resnet18:128");
        System.out.println("CUDA: " + Cuda.status());
        if (!Cuda.isAvailable()) { System.out.println("no timing: CUDA is not available"); return; }
        System.out.printf(Locale.ROOT, "step: forward, cross-entropy (label smoothing %.2f), loss.item(), backward, SR-STE decay (lambda %.0e, pruned layers only), "
                + "SGD lr %.3g momentum %.2f weight decay %.0e nesterov %b, Cuda.sync(); one random batch on the device%n",
                LABEL_SMOOTHING, SrSte.DEFAULT_LAMBDA, LR, MOMENTUM, WEIGHT_DECAY, NESTEROV);
        for (String c : configs) {
            Spec spec;
            try {
                spec = Spec.parse(c);
            } catch (RuntimeException e) {
                System.out.println("STEP " + c + " FAILED " + e);
                continue;
            }
            try {
                Result r = time(spec, maxSeconds, profile, line -> { System.out.println(line); System.out.flush(); });   // prints the STEP line
                if (r.profileLine() != null) System.out.println("PROFILE " + r.profileLine());
            } catch (RuntimeException | OutOfMemoryError e) {
                System.out.println("STEP " + spec.head() + " FAILED " + e);
            }
            System.out.println("     GEMM: " + CudaOps.matmulPrecision() + ", " + (CudaOps.usesCublas() ? "cuBLAS" : "fst_k_gemm (cuBLAS: " + Cuda.blasStatus() + ")")
                    + "; 2:4 through cuSPARSELt: " + fst4j.tensor.CudaSpmm.status()
                    + "; implicit-GEMM convolutions so far: Eq. 1 " + CudaOps.implicitGemmUses() + ", Eq. 2 " + CudaOps.implicitGemmEq2Uses()
                    + ", 2:4 Eq. 1 " + fst4j.tensor.CudaConv24.uses() + ", 2:4 Eq. 2 " + fst4j.tensor.CudaConv24.eq2Uses()
                    + ", on the warpgroup tensor cores " + CudaOps.warpgroupUses() + (CudaOps.warpgroupUnavailable() ? " (no sm_90a code: off)" : "")
                    + "; device memory " + CudaMemory.stats());
            System.out.flush();
        }
    }
}
