package fst4j.nn.experiment;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Shift;
import fst4j.autograd.Var;
import fst4j.nn.Conv2d;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.SGD;
import fst4j.nn.analysis.FeatureRecorder;
import fst4j.nn.train.Trainer;
import fst4j.sparse.Compressed24;
import fst4j.sparse.HalfK;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Blas;
import fst4j.tensor.Conv;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The paper's Table 2 (what pruning costs per training iteration, sorting-based S(dY) and S(X^T) against S(W)) and
 * Table 6 (FST's own overhead: S(W), S(W^T), the shift) at small scale, on this machine: every pruned convolution of a
 * model at a batch, with its own W, its own input X (from a forward pass of random images) and a random dY of its output's
 * shape, each pruning timed on its own (median over rounds) and summed over the layers, beside the measured DENSE and
 * FST3_IR training steps of the same model and batch.
 *
 * <p>The rows, each per iteration (all pruned convolutions):
 * <ul>
 * <li>S(W), S(W^T): FST's weight pruning, magnitude 2:4 with compression (the kernels the step runs);</li>
 * <li>S(dY): Table 1's sort-based pruning of the output gradient, 2:4 along Cout (Eq. 2's K);</li>
 * <li>S(X^T): Table 1's sort-based pruning of the activations along N*H*W (Eq. 3's K), on the im2col matrix, whose
 *     materialisation is its own row (the pruning needs it; FST's fixed mask does not);</li>
 * <li>the IR shift fused with the fixed mask's half-K gather of dY: FST x3's per-iteration activation-side overhead (its
 *     X side is lowered at the kept positions inside Eq. 3's GEMM: no pruning pass);</li>
 * <li>meProp's unstructured top-k of dY (half of each column), for scale.</li>
 * </ul>
 * "Sort-based" here is this library's magnitude 2:4 kernel (top 2 of 4 by compares, one pass), not a sort: the paper's
 * 0.29 s and 0.48 s came from sorting. What stays is the size: X^T is the k*k-fold im2col of the activations.
 */
public final class PruneCost {
    private PruneCost() {}

    /** One row: the pruning, the paper's number for it, ms per iteration summed over the layers. */
    public record Row(String what, String paper, double ms) {}

    /** The measurement: model, batch, threads, layers pruned, the two steps' medians and the rows. */
    public record Result(String model, int batch, int threads, int layers, double denseStepMs, double fst3irStepMs, List<Row> rows) {}

    /** Input shape (channels, height, width) and classes of a model name, as the trainer's data would give. */
    static int[] inputOf(String model) {
        return switch (model.toLowerCase(Locale.ROOT)) {
            case "resnet18" -> new int[]{3, 32, 32, 10};
            case "resnet18-imagenet" -> new int[]{3, 224, 224, 1000};
            case "cnn", "small-cnn", "resnet-small" -> new int[]{1, 28, 28, 10};
            default -> throw new IllegalArgumentException("table2 needs a convolutional model (cnn, resnet-small, resnet18, resnet18-imagenet), not '" + model + "'");
        };
    }

    /**
     * One pruned convolution's operands and geometry: w [Cout, K], x its input, dy [Cout, N*Ho*Wo]; im2col(x) with the
     * layer's own kernel, stride, padding and dilation per axis is the X^T its Eq. 3 prunes.
     */
    record Layer(String name, Tensor w, Tensor x, Tensor dy, Conv2d conv, int planeOut) {
        Tensor im2col() {
            Conv2d.Pair k = conv.kernelSize(), s = conv.stride(), p = conv.padding(), d = conv.dilation();
            return Conv.im2col(x, k.h(), k.w(), s.h(), s.w(), p.h(), p.w(), d.h(), d.w());
        }
    }

    /**
     * The operands of layer c with input x (its dY random, of c's output shape, drawn from rng). Grouped layers are
     * refused by name: each group is its own Eq. 1-3 product, which these per-layer timings (one W of K = Cin*kh*kw,
     * one im2col of the whole input) do not measure.
     */
    static Layer layerOf(String name, Conv2d c, Tensor x, Rng rng) {
        if (c.groups() != 1)
            throw new IllegalArgumentException("table2 measures one Eq. 1-3 product per convolution: layer " + name + " has groups " + c.groups()
                    + " (each group its own product), which it does not measure");
        Conv2d.Pair k = c.kernelSize(), s = c.stride(), p = c.padding(), d = c.dilation();
        int ho = Conv.outSize(x.size(2), k.h(), s.h(), p.h(), d.h()), wo = Conv.outSize(x.size(3), k.w(), s.w(), p.w(), d.w());
        Tensor w;
        try (Tensor v = c.weight().value().reshape(c.cout, -1)) { w = v.copy(); }
        Tensor dy = rng.normal(0, 1, c.cout, x.size(0) * ho * wo);
        return new Layer(name, w, x, dy, c, ho * wo);
    }

    public static Result measure(String model, int batch, int rounds, long seed) {
        if (batch < 1 || rounds < 1) throw new IllegalArgumentException("batch and rounds must be >= 1");
        int[] in = inputOf(model);
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(seed);
            Tensor images = rng.normal(0, 1, batch, in[0], in[1], in[2]);
            int[] labels = new int[batch];
            for (int i = 0; i < batch; i++) labels[i] = i % in[3];
            List<Layer> layers = new ArrayList<>();
            try (Module m = Models.byName(model, in[0], in[1], in[2], in[3], Method.FST3_IR, seed)) {
                Map<String, Conv2d> convs = FeatureRecorder.convLayers(m);
                Map<String, Tensor> inputs = new LinkedHashMap<>();
                try (FeatureRecorder r = new FeatureRecorder(m, (name, x) -> inputs.put(name, x.copy()));
                     var g = fst4j.autograd.Grad.noGrad()) {
                    m.forward(Var.of(images)).value().close();
                }
                for (var e : convs.entrySet()) {
                    Conv2d c = e.getValue();
                    if (c.sparsity().isDense() || !inputs.containsKey(e.getKey())) continue;
                    layers.add(layerOf(e.getKey(), c, inputs.get(e.getKey()), rng));
                }
            }
            if (layers.isEmpty()) throw new IllegalArgumentException(model + " has no pruned convolution");
            int threads = Blas.threads();
            Map<String, double[]> ms = new LinkedHashMap<>();
            List<String[]> spec = List.of(
                    new String[]{"S(W): magnitude 2:4 of W along K, compressed (FST x2, x3)", "1.7 ms (Table 6, A100); 0.0017 s (Table 2)"},
                    new String[]{"S(W^T): magnitude 2:4 of W along Cout, compressed (FST x2, x3)", "1.7 ms (Table 6)"},
                    new String[]{"S(dY): 2:4 of dY along Cout, per iteration (Table 1's G rows)", "0.29 s (Table 2, sorting)"},
                    new String[]{"im2col: X^T materialised (what S(X^T) prunes)", "-"},
                    new String[]{"S(X^T): 2:4 of im2col(X) along N*H*W, per iteration (Table 1's X rows)", "0.48 s (Table 2, sorting)"},
                    new String[]{"IR shift + fixed-mask gather of dY (FST x3; X^T lowered at the kept positions)", "0.8 ms (Table 6, shift)"},
                    new String[]{"meProp: the larger half of each dY column by magnitude, unstructured", "-"});
            for (String[] sp : spec) ms.put(sp[0], new double[layers.size()]);
            for (int li = 0; li < layers.size(); li++) {
                Layer l = layers.get(li);
                ms.get(spec.get(0)[0])[li] = median(rounds, () -> Compressed24.pruneCompress(l.w(), null, threads));
                ms.get(spec.get(1)[0])[li] = median(rounds, () -> Compressed24.pruneCompressTransposed(l.w(), threads));
                ms.get(spec.get(2)[0])[li] = median(rounds, () -> new Sparsifier.SortMagnitude24(0).apply(l.dy()));
                ms.get(spec.get(3)[0])[li] = median(rounds, l::im2col);
                try (Tensor cols = l.im2col()) {
                    ms.get(spec.get(4)[0])[li] = median(rounds, () -> new Sparsifier.SortMagnitude24(1).apply(cols));
                }
                ms.get(spec.get(5)[0])[li] = median(rounds, () -> HalfK.shiftGather(l.dy(), l.planeOut(), Shift.PAPER.coeff(),
                        Shift.PAPER.direction(), Shift.PAPER.circular(), threads));
                ms.get(spec.get(6)[0])[li] = median(rounds, () -> new Sparsifier.TopK(0, 0.5).apply(l.dy()));
            }
            List<Row> rows = new ArrayList<>();
            for (String[] sp : spec) rows.add(new Row(sp[0], sp[1], Arrays.stream(ms.get(sp[0])).sum()));
            double dense = stepMs(model, in, images, labels, Method.DENSE, rounds, seed);
            double fst = stepMs(model, in, images, labels, Method.FST3_IR, rounds, seed);
            return new Result(model, batch, threads, layers.size(), dense, fst, rows);
        }
    }

    /** Median ms of rounds calls of op (after one untimed call), each result closed at once. */
    private static double median(int rounds, Supplier<? extends AutoCloseable> op) {
        double[] t = new double[rounds];
        try {
            op.get().close();
            for (int r = 0; r < rounds; r++) {
                long t0 = System.nanoTime();
                AutoCloseable c = op.get();
                t[r] = (System.nanoTime() - t0) / 1e6;
                c.close();
            }
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        Arrays.sort(t);
        return t[rounds / 2];
    }

    /** Median ms of a full training step (forward, cross-entropy, backward, SR-STE decay where W is pruned, SGD). */
    private static double stepMs(String model, int[] in, Tensor images, int[] labels, Method method, int rounds, long seed) {
        try (Module m = Models.byName(model, in[0], in[1], in[2], in[3], method, seed);
             SGD opt = new SGD(m.parameters(), 0.01, 0.9, 5e-4, false)) {
            boolean decay = method != Method.DENSE;
            double[] t = new double[rounds];
            for (int r = -2; r < rounds; r++) {   // two untimed steps warm up
                long t0 = System.nanoTime();
                try (Scope s = Scope.open()) {
                    Var loss = NN.crossEntropy(m.forward(Var.of(images)), labels, 0.1);
                    Trainer.backwardAndUpdate(loss, m, opt, decay, 2e-4);
                }
                if (r >= 0) t[r] = (System.nanoTime() - t0) / 1e6;
            }
            Arrays.sort(t);
            return t[rounds / 2];
        }
    }

    /** The Markdown table, with the settings line and each row's share of the two steps. */
    public static String markdown(Result r) {
        StringBuilder sb = new StringBuilder();
        sb.append("### Table 2 / Table 6: what pruning costs per training iteration\n\n");
        sb.append(String.format(Locale.ROOT, "%s, batch %d, %d thread(s), %d pruned convolutions (their own W, X from a forward pass of random"
                        + " images, random dY); each pruning timed alone (median), summed over the layers. Training step of the same model and"
                        + " batch (median): DENSE %.1f ms, FST3_IR %.1f ms. Paper: ResNet-18, ImageNet, batch 256, GPU; its iteration 0.179 s"
                        + " (Table 2), 0.184 s (Table 6, A100).%n%n", r.model(), r.batch(), r.threads(), r.layers(), r.denseStepMs(), r.fst3irStepMs()));
        sb.append("| pruning | ms per iteration | share of the DENSE step | share of the FST3_IR step | paper |\n");
        sb.append("|---|---|---|---|---|\n");
        for (Row row : r.rows())
            sb.append(String.format(Locale.ROOT, "| %s | %.2f | %.1f %% | %.1f %% | %s |%n", row.what(), row.ms(), 100 * row.ms() / r.denseStepMs(),
                    100 * row.ms() / r.fst3irStepMs(), row.paper()));
        double fst = r.rows().get(0).ms() + r.rows().get(1).ms() + r.rows().get(5).ms();
        sb.append(String.format(Locale.ROOT, "%nFST x3's own overhead (S(W) + S(W^T) + shift): %.2f ms, %.1f %% of its step (paper, Table 6: 2.3 %%)."
                + " Table 1's per-iteration S(dY) + im2col + S(X^T): %.2f ms, %.1f %% of the DENSE step.%n", fst, 100 * fst / r.fst3irStepMs(),
                r.rows().get(2).ms() + r.rows().get(3).ms() + r.rows().get(4).ms(),
                100 * (r.rows().get(2).ms() + r.rows().get(3).ms() + r.rows().get(4).ms()) / r.denseStepMs()));
        return sb.toString();
    }

    /** One line per row. */
    public static String csv(Result r) {
        StringBuilder sb = new StringBuilder("model,batch,threads,pruning,ms_per_iteration,dense_step_ms,fst3_ir_step_ms\n");
        for (Row row : r.rows())
            sb.append(String.format(Locale.ROOT, "%s,%d,%d,\"%s\",%.4f,%.3f,%.3f%n", r.model(), r.batch(), r.threads(), row.what(), row.ms(),
                    r.denseStepMs(), r.fst3irStepMs()));
        return sb.toString();
    }
}
