package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.CudaOps;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;

/**
 * Wall time of dense ResNet training steps on CUDA tensors, for the first GPU sessions (gpu/run.sh runs it after the
 * tests): a model from {@link Models} moved to the device, random CIFAR-sized batches already on the device, SGD with
 * Nesterov momentum and weight decay; each step is forward, cross-entropy, backward and the update, then
 * {@code Cuda.sync()}, timed with System.nanoTime after warm-up; the median, min and max are printed. This is the
 * step as the framework runs it (host overhead, launches, copies of max-pool indices and the loss included), not a
 * kernel profile.
 *
 * <p>Usage: {@code CudaStepTiming [model:batch[:warmup:steps]]...}, model resnetSmall or resnet18 (CIFAR stem,
 * 10 classes, 3x32x32), e.g. {@code resnet18:128:3:10}. Default: resnetSmall:128 and resnet18:128, 3 warm-up and 10
 * timed steps each.
 */
public final class CudaStepTiming {
    private CudaStepTiming() {}

    /** One configuration's result; times in milliseconds. */
    public record Result(String model, int batch, int steps, double medianMs, double minMs, double maxMs, double lastLoss) {
        @Override public String toString() {
            return String.format(Locale.ROOT, "%-12s batch %4d: median %9.2f ms/step (min %9.2f, max %9.2f) over %d steps, last loss %.4f",
                    model, batch, medianMs, minMs, maxMs, steps, lastLoss);
        }
    }

    public static Result time(String model, int batch, int warmup, int steps) {
        Cuda.requireDevice();
        Sequential m = switch (model) {
            case "resnetSmall" -> Models.resnetSmall(3, 10, SparseConfig.Method.DENSE, 1);
            case "resnet18" -> Models.resnet18(3, 10, false, SparseConfig.Method.DENSE, 1);
            default -> throw new IllegalArgumentException("unknown model " + model + " (resnetSmall, resnet18)");
        };
        Rng rng = new Rng(2);
        try (m; SGD opt = new SGD(m.to(Device.CUDA).parameters(), 0.05, 0.9, 5e-4, true);
             Tensor hx = rng.normal(0, 1, batch, 3, 32, 32); Tensor x = hx.to(Device.CUDA)) {
            int[] labels = new int[batch];
            for (int i = 0; i < batch; i++) labels[i] = i % 10;
            double[] ms = new double[steps];
            double loss = Double.NaN;
            for (int s = 0; s < warmup + steps; s++) {
                long t0 = System.nanoTime();
                try (Scope scope = Scope.open()) {
                    Var l = NN.crossEntropy(m.forward(Var.of(x.alias())), labels, 0.1);
                    l.backward();
                    opt.step();
                    opt.zeroGrad();
                    Cuda.sync();
                    if (s == warmup + steps - 1) loss = l.item();
                }
                if (s >= warmup) ms[s - warmup] = (System.nanoTime() - t0) / 1e6;
            }
            double[] sorted = ms.clone();
            Arrays.sort(sorted);
            double median = steps == 0 ? Double.NaN : (sorted[(steps - 1) / 2] + sorted[steps / 2]) / 2;
            return new Result(model, batch, steps, median, steps == 0 ? Double.NaN : sorted[0], steps == 0 ? Double.NaN : sorted[steps - 1], loss);
        }
    }

    public static void main(String[] args) {
        System.out.println("CUDA: " + Cuda.status());
        if (!Cuda.isAvailable()) { System.out.println("no timing: CUDA is not available"); return; }
        String[] configs = args.length > 0 ? args : new String[] { "resnetSmall:128", "resnet18:128" };
        for (String c : configs) {
            String[] p = c.split(":");
            int batch = p.length > 1 ? Integer.parseInt(p[1]) : 128;
            int warmup = p.length > 2 ? Integer.parseInt(p[2]) : 3, steps = p.length > 3 ? Integer.parseInt(p[3]) : 10;
            try {
                Result r = time(p[0], batch, warmup, steps);
                System.out.println("STEP " + r);
            } catch (RuntimeException e) {
                System.out.println("STEP " + p[0] + " batch " + batch + ": FAILED " + e);
            }
            System.out.println("     GEMM: " + (CudaOps.usesCublas() ? "cuBLAS" : "fst_k_gemm (cuBLAS: " + Cuda.blasStatus() + ")")
                    + "; device memory " + CudaMemory.stats());
        }
    }
}
