package fst4j.nn;

import fst4j.sparse.MaskBits;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The mask flip rate of SR-STE's paper (Zhou et al., ICLR 2021, "Learning N:M fine-grained structured sparse neural
 * networks from scratch", Sec. 4, Figs. 2 and 3), with which they show that the plain straight-through estimator's masks
 * keep flipping and that SR-STE's decay damps it. For a layer whose W is pruned, r_t = ||m_t - m_{t-1}||_1 / D, where
 * m_t is the 0/1 mask of the weights the rule keeps after optimizer step t and D the layer's weight count: r_t is in
 * [0, 1], and a 2:4 group whose kept pair moves by one position counts two (the weight dropped and the weight taken), as
 * the L1 norm does. A model's rate is the weight-count weighted mean over its pruned layers: all their flips over all
 * their weights.
 *
 * <p>Which layers: every Eq. 1-3 layer ({@link Conv2d}, {@link Linear}) whose W slot prunes (its configuration's
 * {@code w()} is not dense), with the mask that slot applies to W seen as [Cout, K]: the magnitude 2:4 or N:M S(W) of the
 * presets; TSM's transposable mask, the one its next forward applies (its cached mask between refreshes, so its rate is 0
 * but at a refresh); ASP's frozen mask once fixed (rate 0 from the step after its pruning); a stateless rule of one's own.
 * Layers kept dense (the models' first convolution and classifier, every layer of dense, meProp and ReSprop, ASP's before
 * its pruning) have no mask and do not count; a model without a pruned layer has no rate ({@link Step#rate} NaN). The
 * Eq. 2 mask S(W^T) that FST2 and FST x3 prune on their own is not counted: the paper's rate is that of the forward's mask.
 * Refused when built, naming the layer: the authors' random patterns or a stateful rule of one's own in a W slot (reading
 * their mask would move their state).
 *
 * <pre>{@code
 * try (FlipRate flips = new FlipRate(model)) {           // the masks now: m_0
 *     ... loss.backward(); SrSte.stepWithDecay(model, opt, 2e-4); opt.zeroGrad();
 *     FlipRate.Step s = flips.step();                     // m_1 against m_0, and m_1 kept for the next step
 *     s.rate(); s.layers();                               // the model's rate, each layer's
 * }
 * }</pre>
 *
 * A layer whose mask appears between two calls (ASP pruning, a configuration changed) has no rate at the first of them;
 * its mask is kept for the next. Cost: computed only when asked; a reading only reads W (on the CPU magnitude 2:4 is the
 * shim's prune + compress into scratch metadata, on CUDA that kernel's metadata copied back, one bit per weight; other
 * rules select on a host copy of W) and moves no state, so training with and without it gives the same bits. It keeps
 * one bit per pruned weight ({@link MaskBits}) on the heap; each reading's off-heap temporaries are freed before it
 * returns, and {@link #close} drops the kept masks. One thread at a time, as the training it measures.
 */
public final class FlipRate implements AutoCloseable {
    /** One layer's part of a step: how many of its mask's entries changed (flips) out of its weights. */
    public record Layer(String name, long flips, long weights) {
        /** flips / weights, in [0, 1]. */
        public double rate() { return (double) flips / weights; }
    }

    /** A step's reading: the layers that had a mask at the step before and now, and the model's rate over them. */
    public record Step(List<Layer> layers) {
        public Step { layers = List.copyOf(layers); }

        /** Flips over every layer. */
        public long flips() { return layers.stream().mapToLong(Layer::flips).sum(); }

        /** Weights of every layer with a rate. */
        public long weights() { return layers.stream().mapToLong(Layer::weights).sum(); }

        /** The model's rate, flips() / weights(): the weight-count weighted mean of the layers' rates; NaN where no layer has one. */
        public double rate() {
            long w = weights();
            return w == 0 ? Double.NaN : (double) flips() / w;
        }
    }

    /** A layer's kept mask: the layer it was read from and one bit per weight. */
    private record Kept(Sparse layer, long[] bits, long weights) {}

    private final Module model;
    private Map<String, Kept> kept;
    private boolean closed;

    /** Reads the masks of model's pruned layers now (m_0); refuses a W slot whose mask cannot be read, naming the layer. */
    public FlipRate(Module model) {
        this.model = Objects.requireNonNull(model, "model");
        this.kept = read(model);
    }

    /** Reads the masks again, compares them with the kept ones, keeps the new ones: the rates of the step just taken. */
    public Step step() {
        check();
        Map<String, Kept> now = read(model);
        List<Layer> layers = new ArrayList<>();
        now.forEach((name, k) -> {
            Kept before = kept.get(name);
            // the same layer with a mask of the same size at both readings; a mask that just appeared (ASP) has no rate yet
            if (before != null && before.layer() == k.layer() && before.weights() == k.weights())
                layers.add(new Layer(name, MaskBits.differing(before.bits(), k.bits()), k.weights()));
        });
        kept = now;
        return new Step(layers);
    }

    /**
     * Forgets the kept masks and reads them as they are now: after a checkpoint is loaded into the model, the next
     * {@link #step} compares with the loaded weights' masks, as the run that wrote it would have.
     */
    public void reset() {
        check();
        kept = read(model);
    }

    /** The pruned layers whose masks are kept, by their dotted names ({@link Models#sparseLayers}). */
    public List<String> layers() {
        check();
        return List.copyOf(kept.keySet());
    }

    /** The weights of the pruned layers whose masks are kept. */
    public long weights() {
        check();
        return kept.values().stream().mapToLong(Kept::weights).sum();
    }

    /** Drops the kept masks; a later call is refused. */
    @Override public void close() {
        kept = Map.of();
        closed = true;
    }

    private void check() {
        if (closed) throw new IllegalStateException("this FlipRate is closed");
    }

    /**
     * The current masks of model's pruned layers as bits ({@link MaskBits}: element i of W [Cout, K] in row-major order),
     * by layer name: what a {@link FlipRate} reads at every step.
     */
    public static Map<String, long[]> masks(Module model) {
        Map<String, long[]> out = new LinkedHashMap<>();
        read(model).forEach((name, k) -> out.put(name, k.bits()));
        return out;
    }

    private static Map<String, Kept> read(Module model) {
        Map<String, Kept> out = new LinkedHashMap<>();
        Models.sparseLayers(model).forEach((name, layer) -> {
            Sparsifier rule = layer.sparsity().w();
            if (rule instanceof Sparsifier.Dense) return;   // not pruned: no mask, not counted
            Tensor w = layer.weight().value();
            try {
                out.put(name, new Kept(layer, mask(rule, w), w.numel()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("flip rate: layer " + (name.isEmpty() ? "(the model)" : name) + " prunes W by " + rule + ": " + e.getMessage(), e);
            }
        });
        return out;
    }

    /** rule's kept set of w seen as [Cout, K], the matrix the Eq. 1-3 node prunes. */
    private static long[] mask(Sparsifier rule, Tensor w) {
        int rows = w.size(0);
        try (Tensor m = w.reshape(rows, Math.toIntExact(w.numel() / rows))) {
            // ASP's frozen mask keeps state (its masks, for checkpoints) but its keep only reads them
            if (rule instanceof Asp.FrozenMask f) return MaskBits.pack(f.keep(null, m.shape()));
            return MaskBits.of(rule, m);
        }
    }
}
