package fst4j.nn.train;

import fst4j.autograd.Grad;
import fst4j.autograd.NN;
import fst4j.autograd.Profile;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.AdamW;
import fst4j.nn.Asp;
import fst4j.nn.LrSchedule;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.Optimizer;
import fst4j.nn.ParamGroup;
import fst4j.nn.SGD;
import fst4j.nn.Sparse;
import fst4j.nn.SrSte;
import fst4j.nn.data.DataLoader;
import fst4j.nn.io.SafeTensors;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Trains one model with one sparsity method. A step, all inside one {@link Scope}: forward, cross-entropy with
 * label smoothing, backward, SR-STE decay of pruned weights (when the method prunes W by magnitude; not ASP, whose layers
 * are dense when the trainer is built), SGD or AdamW step (the config's optimizer), zero grads; the
 * learning rate follows a per-step cosine schedule with linear warm-up. Model init, data order and augmentation are
 * seeded by the config's seed, so two trainers with the same config and data do bit-identical work.
 *
 * <pre>{@code
 * try (Trainer t = new Trainer(cfg, data)) {
 *     while (!t.finished()) {
 *         while (t.epochHasNext()) t.trainStep();
 *         Trainer.Eval e = t.evaluate();
 *         t.endEpoch();
 *     }
 * }
 * }</pre>
 *
 * Checkpoints ({@link #save}, {@link #load}) hold the model state dict ("model.NAME"), the optimizer's state dict
 * ({@link Optimizer#stateDict}: its tensors as "optim.KIND.INDEX", SGD's momentum buffers "optim.momentum.INDEX", AdamW's
 * "optim.exp_avg.INDEX", ...; its counts as int64 "optim.steps", AdamW's "optim.step"), the step, epoch and loader state
 * (int64), and the config as metadata; loading them into a fresh trainer continues bit-identically.
 */
public final class Trainer implements AutoCloseable {
    public static final String FORMAT = "fst4j-checkpoint-1";
    /** The prefix of the optimizer's state dict in a checkpoint (its tensors and its counts). */
    private static final String OPTIM = "optim.";

    /** One step's numbers: the batch's loss, how many of its size were classified right, the LR used, wall time. */
    public record StepResult(long step, int epoch, double loss, int correct, int size, double lr, long nanos) {
        public double accuracy() { return size == 0 ? 0 : (double) correct / size; }
    }

    /** Test-set accuracy and mean loss (without label smoothing). */
    public record Eval(double accuracy, double loss, int samples) {}

    /**
     * A step whose loss came out NaN or infinite ({@link #trainStep}): the step stopped before its backward and update,
     * so the weights, momentum, batch norm's running statistics, ASP's masks and the step count are those after the step
     * before. What the forward itself advanced stays advanced: the loader is past the batch, and rules that keep a
     * count in the forward (TSM's refresh, the authors' pattern draws) counted it. Training on would only spread the
     * NaN into every weight, and a later checkpoint would keep them.
     */
    public static final class NonFiniteLossException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        private final long step;
        private final double loss;

        NonFiniteLossException(long step, int epoch, double loss, double lr) {
            super(String.format(java.util.Locale.ROOT, "the loss is %s at step %d (epoch %d, lr %.4g): stopped before its update, so the weights are"
                    + " those after step %d; a lower --lr (or --warmup) usually avoids it", Double.isNaN(loss) ? "NaN" : loss > 0 ? "+Inf" : "-Inf",
                    step + 1, epoch + 1, lr, step));
            this.step = step;
            this.loss = loss;
        }

        /** The 0-based step whose loss was not finite (stepsDone() of the trainer that threw). */
        public long step() { return step; }
        public double loss() { return loss; }
    }

    private final TrainConfig cfg;
    private final TrainData data;
    private final Module model;
    private final Optimizer opt;
    private final DataLoader loader, testLoader;
    private final LrSchedule schedule;
    private final long totalSteps;
    private final boolean decays;
    private boolean stopOnNonFiniteLoss = true;
    /** The buffers as they were before the step's forward (a stopped step puts its running statistics back); made once. */
    private final Map<Tensor, Tensor> bufferCopies = new java.util.IdentityHashMap<>();
    private final Device device;
    private long step;

    public Trainer(TrainConfig cfg, TrainData data) { this(cfg, data, Device.CPU); }

    /**
     * A trainer whose model, optimizer state and batches live on device (Module.to after the model is built, each batch
     * copied up by the step); data loading, augmentation and the metrics stay on the host.
     */
    public Trainer(TrainConfig cfg, TrainData data, Device device) {
        this.cfg = cfg;
        this.device = device;
        this.data = data.subsets(cfg.trainSubset(), cfg.testSubset());
        var tr = this.data.train();
        if (tr.size() < cfg.batchSize())
            throw new IllegalArgumentException("the training set has " + tr.size() + " images, fewer than one batch of " + cfg.batchSize());
        this.model = Models.byName(cfg.model(), tr.channels(), tr.height(), tr.width(), tr.numClasses(), cfg.method(), cfg.seed());
        applyVariants(model, cfg);
        if (device != Device.CPU) model.to(device);
        this.opt = optimizerFor(model, cfg);
        DataLoader.Builder b = DataLoader.builder(tr).batchSize(cfg.batchSize()).shuffle(true).seed(cfg.seed()).dropLast(true)
                .normalize(this.data.mean(), this.data.std());
        if (cfg.augment()) b.randomCrop(tr.height() <= 28 ? 2 : 4).horizontalFlip(true);
        this.loader = b.build();
        this.testLoader = DataLoader.builder(this.data.test()).batchSize(Math.max(cfg.batchSize(), 256))
                .normalize(this.data.mean(), this.data.std()).build();
        this.totalSteps = (long) cfg.epochs() * loader.batchesPerEpoch();
        this.schedule = LrSchedule.cosine(cfg.lr(), cfg.warmupFor(totalSteps), totalSteps, cfg.minLr());
        Models.sparseLayers(model).forEach((name, s) -> {   // ReSprop: the warm-up spans the run's first tenth; samples per layer
            fst4j.nn.ReSprop r = s.resprop();
            if (r != null) { r.warmUpOver(totalSteps); r.saltWith(name); }
        });
        boolean d = false;
        for (Sparse s : Models.sparseLayers(model).values()) d |= s.sparsity().decaysPruned();
        this.decays = d;
    }

    /**
     * The config's variants applied to every pruned layer of model, before any checkpoint is loaded (a layer's random
     * patterns are part of its state). Layer i (1-based, over all conv/linear layers) seeds its patterns with
     * seed * 1000003 + i, as {@code fst4j experiment ir} always has.
     */
    public static void applyVariants(Module model, TrainConfig cfg) {
        if (cfg.variants().isEmpty()) return;
        long layer = 0;
        for (Sparse sp : Models.sparseLayers(model).values()) {
            layer++;
            sp.setSparsity(cfg.recipe().apply(sp.sparsity(), cfg.seed() * 1_000_003L + layer));
        }
    }

    public TrainConfig config() { return cfg; }
    public Device device() { return device; }

    /** A batch tensor on the trainer's device (the same tensor on the CPU; a copy in the current scope otherwise). */
    private Tensor onDevice(Tensor t) { return device == Device.CPU ? t : t.to(device); }
    public TrainData data() { return data; }
    public Module model() { return model; }
    public Optimizer optimizer() { return opt; }
    public DataLoader loader() { return loader; }
    /** Steps done so far (the 0-based index of the next step). */
    public long stepsDone() { return step; }
    public long totalSteps() { return totalSteps; }
    public int stepsPerEpoch() { return loader.batchesPerEpoch(); }
    /** The current epoch (0-based). */
    public int epoch() { return loader.epoch(); }
    public boolean finished() { return loader.epoch() >= cfg.epochs() || step >= totalSteps; }
    /** Whether the current epoch has another step. */
    public boolean epochHasNext() { return !finished() && loader.hasNext(); }
    /** Whether the model has SR-STE-decayed layers. */
    public boolean decaysPruned() { return decays; }

    /** Moves on to the next epoch (call after the last step of one, and after evaluating). */
    public void endEpoch() { loader.nextEpoch(); }

    /**
     * The optimizer cfg asks for over model's parameters: one group of all of them with the config's weight decay, or
     * with wdOnNormAndBias false ParamGroup.splitDecay's two groups (no decay on biases and batch norm).
     */
    public static Optimizer optimizerFor(Module model, TrainConfig cfg) {
        List<ParamGroup> groups = cfg.wdOnNormAndBias() ? List.of(ParamGroup.of(model.parameters(), cfg.weightDecay()))
                : ParamGroup.splitDecay(model, cfg.weightDecay());
        return switch (cfg.optimizer()) {
            case SGD -> SGD.withGroups(groups, cfg.lr(), cfg.momentum(), cfg.nesterov());
            case ADAMW -> AdamW.withGroups(groups, cfg.lr(), cfg.adamW().beta1(), cfg.adamW().beta2(), cfg.adamW().eps(), cfg.adamW().amsgrad());
        };
    }

    /**
     * The end of every training step (this trainer's, jmh's StepBench and the GPU step timing run the same code): the
     * backward pass, the SR-STE decay lambda (W - S(W)) when decay is set, the optimizer's step and zeroed gradients, the
     * last three timed as {@link Profile.Part#OPTIMIZER}.
     */
    public static void backwardAndUpdate(Var loss, Module model, Optimizer opt, boolean decay, double lambda) {
        loss.backward();
        long t = Profile.start();
        if (decay) SrSte.stepWithDecay(model, opt, lambda);   // the decay fused into SGD's pass where it can be
        else opt.step();
        opt.zeroGrad();
        Profile.stop(Profile.Part.OPTIMIZER, t);
    }

    /**
     * Whether {@link #trainStep} stops at a NaN or infinite loss with {@link NonFiniteLossException} (the default), or
     * trains on (the experiments do, to report a diverging method as it ends, as the paper's Table 1 does).
     */
    public Trainer stopOnNonFiniteLoss(boolean on) {
        stopOnNonFiniteLoss = on;
        return this;
    }

    /** One training step on the next batch of the current epoch; {@link NonFiniteLossException} where its loss is not finite. */
    public StepResult trainStep() {
        if (!epochHasNext()) throw new IllegalStateException("epoch " + epoch() + " has no more steps; call endEpoch()");
        long t0 = System.nanoTime();
        int ep = loader.epoch();
        double lr = schedule.lr(step);
        double lossValue;
        int correct, size;
        model.train(true);
        Map<Sparse, SparseConfig> beforeAsp = null;
        if (step == aspStep() && Asp.pending(model)) {   // ASP: dense so far, the masks fixed from here
            if (stopOnNonFiniteLoss) {
                beforeAsp = new LinkedHashMap<>();
                for (Sparse l : Models.sparseLayers(model).values()) beforeAsp.put(l, l.sparsity());
            }
            Asp.prune(model);
        }
        if (stopOnNonFiniteLoss) keepBuffers();
        try (Scope s = Scope.open()) {
            DataLoader.Batch batch = loader.next();
            opt.setLr(lr);
            Var logits = null, loss = null;
            try {
                logits = model.forward(Var.of(onDevice(batch.images())));
                loss = NN.crossEntropy(logits, batch.labels(), cfg.labelSmoothing());
                lossValue = loss.item();
                if (stopOnNonFiniteLoss && !Double.isFinite(lossValue)) {
                    bufferCopies.forEach(Tensor::copyFrom);   // batch norm's forward already moved its running statistics
                    if (beforeAsp != null)   // the masks this step fixed
                        beforeAsp.forEach((l, c) -> { if (l.sparsity() != c) l.setSparsity(c); });
                    throw new NonFiniteLossException(step, ep, lossValue, lr);
                }
                correct = countCorrect(logits.value(), batch.labels());
                size = batch.size();
                backwardAndUpdate(loss, model, opt, decays, cfg.srSteLambda());
            } catch (RuntimeException | Error e) {
                // what the Scope does not free (CUDA max-pool indices) goes too, and a backward that failed half way does not
                // leave its gradients to be added twice by a retried step
                try {
                    if (loss != null) loss.freeGraph();
                    else if (logits != null) logits.freeGraph();
                    opt.zeroGrad();
                } catch (RuntimeException | Error f) { e.addSuppressed(f); }
                throw e;
            }
        }
        StepResult r = new StepResult(step, ep, lossValue, correct, size, lr, System.nanoTime() - t0);
        step++;
        return r;
    }

    /** The step at whose start ASP prunes (half of the run), or -1 for other methods. */
    public long aspStep() { return cfg.method() == fst4j.autograd.SparseConfig.Method.ASP ? totalSteps / 2 : -1; }

    /** Accuracy and loss on the test set, batched, in eval mode without recording a graph. */
    public Eval evaluate() {
        model.eval();
        long correct = 0;
        double lossSum = 0;
        int n = 0;
        try (Grad.Restore g = Grad.noGrad()) {
            testLoader.startEpoch(0);
            while (testLoader.hasNext()) {
                try (Scope s = Scope.open()) {
                    DataLoader.Batch b = testLoader.next();
                    Var logits = model.forward(Var.of(onDevice(b.images())));
                    lossSum += NN.crossEntropy(logits, b.labels(), 0).item() * b.size();
                    correct += countCorrect(logits.value(), b.labels());
                    n += b.size();
                }
            }
        } finally {
            model.train(true);
        }
        return new Eval(n == 0 ? 0 : (double) correct / n, n == 0 ? 0 : lossSum / n, n);
    }

    static int countCorrect(Tensor logits, int[] labels) {
        float[] v = logits.toFloatArray();
        int c = logits.size(1), ok = 0;
        for (int i = 0; i < labels.length; i++) {
            int best = 0;
            for (int k = 1; k < c; k++) if (v[i * c + k] > v[i * c + best]) best = k;
            if (best == labels[i]) ok++;
        }
        return ok;
    }

    // ------------------------------------------------------------------ checkpoints

    /** Writes the full training state to file atomically (parent directories are created). */
    public void save(Path file) throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        model.stateDict().forEach((k, v) -> tensors.put("model." + k, v));
        Optimizer.State os = opt.stateDict();
        os.tensors().forEach((k, v) -> tensors.put(OPTIM + k, v));
        Map<String, long[]> longs = new LinkedHashMap<>();
        longs.put("step", new long[]{step});
        longs.put("epoch", new long[]{loader.epoch()});
        os.counts().forEach((k, v) -> longs.put(OPTIM + k, v));   // SGD: "optim.steps", as before the Optimizer interface
        longs.put("loader", loader.state().toLongs());
        sparsifierStates().forEach((k, sp) -> longs.put(k, sp.exportState()));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.putAll(cfg.toMetadata());
        meta.put("data", data.spec());
        meta.put("train_size", Integer.toString(data.train().size()));
        meta.put("total_steps", Long.toString(totalSteps));
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        SafeTensors.write(file, tensors, longs, meta);
    }

    /** Stateful sparsifiers of every layer by checkpoint key "sparsity.LAYER.SLOT". */
    private Map<String, fst4j.sparse.StatefulSparsifier> sparsifierStates() {
        Map<String, fst4j.sparse.StatefulSparsifier> out = new LinkedHashMap<>();
        Models.statefulSparsifiers(model).forEach((k, st) -> out.put("sparsity." + k, st));
        return out;
    }

    /** The config stored in a checkpoint (to build the trainer to {@link #load} it into). */
    public static TrainConfig readConfig(Path file) {
        try (SafeTensors.Contents c = read(file)) {
            return TrainConfig.fromMetadata(c.metadata());
        } catch (RuntimeException e) {
            throw e instanceof CheckpointException ce ? ce : new CheckpointException(file, e.getMessage(), e);
        }
    }

    /** The string metadata of a checkpoint (config, data spec, sizes). */
    public static Map<String, String> readMetadata(Path file) {
        try (SafeTensors.Contents c = read(file)) {
            return new LinkedHashMap<>(c.metadata());
        }
    }

    /**
     * Restores the state saved by {@link #save} into this trainer, which must have the same config (but for the test
     * subset) and data (checked: model, method, batch, epochs, seed, lr, data size). Training then continues exactly.
     */
    public void load(Path file) {
        try (Scope s = Scope.open(); SafeTensors.Contents c = read(file)) {
            Map<String, String> meta = c.metadata();
            TrainConfig saved = TrainConfig.fromMetadata(meta);
            // the test subset only chooses what evaluate() reads: a checkpoint may be evaluated on another one
            if (!saved.withSubsets(saved.trainSubset(), cfg.testSubset()).equals(cfg))
                throw new IllegalArgumentException("it was written for " + saved.toMetadata() + ", not " + cfg.toMetadata());
            String trainSize = meta.get("train_size");
            if (trainSize != null && !trainSize.equals(Integer.toString(data.train().size())))
                throw new IllegalArgumentException("it was trained on " + trainSize + " images, this run has " + data.train().size());
            Map<String, Tensor> state = new HashMap<>(), optTensors = new LinkedHashMap<>();
            for (var e : c.tensors().entrySet()) {
                String k = e.getKey();
                if (k.startsWith("model.")) state.put(k.substring(6), e.getValue());
                else if (k.startsWith(OPTIM)) optTensors.put(k.substring(OPTIM.length()), e.getValue());
                else throw new IllegalArgumentException("unexpected tensor " + k);
            }
            Map<String, long[]> optCounts = new LinkedHashMap<>();
            c.int64s().forEach((k, v) -> { if (k.startsWith(OPTIM)) optCounts.put(k.substring(OPTIM.length()), v); });
            Optimizer.State optState = new Optimizer.State(optTensors, optCounts);
            long st = one(c.int64("step"));
            DataLoader.State ls = DataLoader.State.fromLongs(c.int64("loader"));
            if (st < 0 || st > totalSteps) throw new IllegalArgumentException("step " + st + " is outside 0.." + totalSteps);
            // the model before its momentum buffers: a model built for other images (eval --data of another size) said only
            // "momentum buffer 0 has the wrong shape"
            try {
                model.checkStateDict(state);
            } catch (IllegalArgumentException e) {
                var tr = data.train();
                throw new IllegalArgumentException(e.getMessage() + " (this " + cfg.model() + " is built for the " + tr.channels() + "x" + tr.height()
                        + "x" + tr.width() + " images and " + tr.numClasses() + " classes of " + data.spec() + ")", e);
            }
            opt.checkStateDict(optState);
            loader.check(ls);
            // all or nothing: what cannot be checked first (ASP's placeholders, each rule's own state check) is undone on failure
            List<Runnable> undo = new ArrayList<>();
            try {
                if (aspStep() >= 0 && st > aspStep() && Asp.pending(model)) {   // masks fixed before it was saved
                    Map<Sparse, SparseConfig> before = new LinkedHashMap<>();
                    Models.sparseLayers(model).values().forEach(l -> before.put(l, l.sparsity()));
                    Asp.installPlaceholders(model);
                    undo.add(() -> before.forEach(Sparse::setSparsity));
                }
                Map<String, fst4j.sparse.StatefulSparsifier> sparsifiers = sparsifierStates();
                for (String k : c.int64s().keySet())
                    if (k.startsWith("sparsity.") && !sparsifiers.containsKey(k))
                        throw new IllegalArgumentException("it holds the state of sparsifier " + k.substring(9) + ", a slot with no stateful rule in"
                                + " this model (a custom rule, a per-layer override or a layer on the ReSprop preset, not installed before load?)");
                for (var e : sparsifiers.entrySet())
                    if (c.int64(e.getKey()) == null) throw new IllegalArgumentException("missing sparsifier state " + e.getKey());
                for (var e : sparsifiers.entrySet()) {
                    fst4j.sparse.StatefulSparsifier r = e.getValue();
                    Runnable back = r.restorer();
                    r.importState(c.int64(e.getKey()));
                    undo.add(back);
                }
            } catch (RuntimeException | Error e) {
                for (int i = undo.size() - 1; i >= 0; i--) {
                    try { undo.get(i).run(); } catch (RuntimeException u) { e.addSuppressed(u); }
                }
                throw e;
            }
            model.loadStateDict(state);   // checked above: from here on nothing refuses
            opt.loadStateDict(optState);
            loader.restore(ls);
            step = st;
        } catch (CheckpointException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CheckpointException(file, e.getMessage(), e);
        }
    }

    private static long one(long[] v) {
        if (v.length != 1) throw new IllegalArgumentException("expected one int64, got " + v.length);
        return v[0];
    }

    private static SafeTensors.Contents read(Path file) {
        SafeTensors.Contents c;
        try {
            c = SafeTensors.read(file);
        } catch (IOException e) {
            throw new CheckpointException(file, e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new CheckpointException(file, e.getMessage(), e);
        }
        if (!FORMAT.equals(c.metadata().get("format"))) {
            c.close();
            throw new CheckpointException(file, "not an fst4j training checkpoint (metadata format is " + c.metadata().get("format") + ", expected " + FORMAT + ")", null);
        }
        return c;
    }

    @Override
    public void close() {
        bufferCopies.values().forEach(Tensor::close);
        bufferCopies.clear();
        opt.close();
        model.close();
    }

    private void keepBuffers() {
        for (Tensor b : model.namedBuffers().values()) {
            Tensor c = bufferCopies.get(b);
            if (c == null) bufferCopies.put(b, c = Scope.within(null, () -> Tensor.empty(b.device(), b.dtype(), b.shape())));
            c.copyFrom(b);
        }
    }
}
