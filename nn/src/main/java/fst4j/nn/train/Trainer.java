package fst4j.nn.train;

import fst4j.autograd.Grad;
import fst4j.autograd.NN;
import fst4j.autograd.Profile;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.AdamW;
import fst4j.nn.Asp;
import fst4j.nn.FlipRate;
import fst4j.nn.GradClip;
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
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Trains one model with one sparsity method. A step, all inside one {@link Scope}: forward, cross-entropy with
 * label smoothing, backward, gradient-norm clipping where the config asks for it ({@link TrainConfig#clipGradNorm}),
 * SR-STE decay of pruned weights (when the method prunes W by magnitude; not ASP, whose layers are dense when the
 * trainer is built), SGD or AdamW step (the config's optimizer), zero grads; the learning rate follows a per-step cosine
 * schedule with linear warm-up. Model init, data order and augmentation are
 * seeded by the config's seed, so two trainers with the same config and data do bit-identical work.
 * A trainer, its model and its optimizer belong to one thread at a time (training is sequential; see {@link Module}'s
 * note on threads).
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
 * The model is built from the config's name ({@link Models#byName}), or is one's own
 * ({@link #Trainer(Module, TrainConfig, TrainData)}, model name {@value #CUSTOM}).
 *
 * Checkpoints ({@link #save}, {@link #load}) are {@link Checkpoint}s of the model, optimizer and loader: the model state
 * dict ("model.NAME"), the optimizer's state dict ({@link Optimizer#stateDict}: its tensors as "optim.KIND.INDEX", SGD's
 * momentum buffers "optim.momentum.INDEX", AdamW's "optim.exp_avg.INDEX", ...; its counts as int64 "optim.steps", AdamW's
 * "optim.step"), the stateful sparsifiers' states ("sparsity.LAYER.SLOT"), the step, epoch and loader state (int64), and
 * the config as metadata; loading them into a fresh trainer continues bit-identically.
 *
 * <p>Clipping ({@link TrainConfig#clipGradNorm} above 0) is {@link GradClip#clipGradNorm} over the optimizer's
 * parameters ({@link Optimizer#params()}, in that order) right after the backward pass, so it scales the loss's
 * gradient only: SR-STE's decay lambda (W - S(W)) is added after it, in the optimizer's step, unclipped. That is the
 * order of the 2:4 pre-training authors' code, whose SR-STE decay is part of the optimizer step (Hu et al. 2024,
 * thu-ml/2by4-pretrain-acc-examples, nanoGPT train.py: clip_grad_norm_, then masked_add_ of the decay into the
 * gradient, then the step); Zhou et al.'s own SR-STE code (NM-sparsity) adds it in the autograd backward
 * (sparse_ops.py) or in its sparse SGD's step, and their ImageNet script does not clip. The decay is a regulariser of the weights, not a gradient of the data, and
 * clipping it too would weaken it in exactly the steps whose gradients are large. A run without clipping measures no
 * norm and takes the code path it took before, bit for bit. With {@link #stopOnNonFiniteLoss} (the default) a step
 * whose loss is finite but whose gradients' norm is not stops with {@link NonFiniteGradNormException} before anything
 * is clipped or updated; without it the gradients are clipped as torch does (to NaN) and training goes on.
 *
 * <p>{@link #measureFlipRate} (off by default) reads the pruned weights' masks after every step and reports their flip
 * rate ({@link FlipRate}, SR-STE's paper's measure) in {@link StepResult#flips}: a reading only, so the training is the
 * same bits with it and without.
 *
 * <p>Train and eval modes are the user's, as in a PyTorch loop of one's own: no step puts a module in training mode.
 * The built-in models are built in training mode and nothing here changes that, so their runs train in it as before. A
 * model of one's own trains in the modes it is given: a batch norm put in eval mode to freeze it for fine-tuning
 * ({@code model.freeze("bn1")} and {@code bn1.eval()}) normalises with its running statistics and leaves them as they
 * are, in every step; give it a model last used for evaluation after {@code model.train()}. {@link #evaluate} puts the
 * whole model in eval mode and then each module back in its own mode. Checkpoints do not hold the modes (nor does
 * torch's state_dict): a resumed model of one's own is set as it was before, by the code that built it.
 */
public final class Trainer implements AutoCloseable {
    public static final String FORMAT = Checkpoint.FORMAT;
    /** The model name of a trainer of a model of one's own ({@link #Trainer(Module, TrainConfig, TrainData)}). */
    public static final String CUSTOM = "custom";

    /**
     * One step's numbers: the batch's loss, how many of its size were classified right, the LR used, wall time, the
     * total L2 norm of the gradients before clipping (NaN where the config does not clip: not measured then), and the
     * masks' flips of the step ({@link FlipRate}; null where the trainer does not measure them: {@link #measureFlipRate}).
     * The wall time does not include the flips' reading.
     */
    public record StepResult(long step, int epoch, double loss, int correct, int size, double lr, long nanos, double gradNorm, FlipRate.Step flips) {
        public double accuracy() { return size == 0 ? 0 : (double) correct / size; }

        /** The model's flip rate at this step ({@link FlipRate.Step#rate}); NaN where not measured or where no layer is pruned. */
        public double flipRate() { return flips == null ? Double.NaN : flips.rate(); }
    }

    /** Test-set accuracy and mean loss (without label smoothing). */
    public record Eval(double accuracy, double loss, int samples) {}

    /**
     * A step stopped before its update because a number it rests on came out NaN or infinite: its loss
     * ({@link NonFiniteLossException}) or, where the config clips, its gradients' norm ({@link NonFiniteGradNormException}).
     */
    public abstract static sealed class NonFiniteException extends RuntimeException permits NonFiniteLossException, NonFiniteGradNormException {
        private static final long serialVersionUID = 1L;
        private final long step;

        NonFiniteException(String message, long step) {
            super(message);
            this.step = step;
        }

        /** The 0-based step that stopped (stepsDone() of the trainer that threw). */
        public long step() { return step; }

        /** What was not finite, as a summary line names it: "the loss", "the gradient norm". */
        public abstract String what();
    }

    private static String nonFinite(double x) { return Double.isNaN(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf"; }

    /**
     * A step whose loss came out NaN or infinite ({@link #trainStep}): the step stopped before its backward and update,
     * so the weights, momentum, batch norm's running statistics, ASP's masks and the step count are those after the step
     * before. What the forward itself advanced stays advanced: the loader is past the batch, and rules that keep a
     * count in the forward (TSM's refresh, the authors' pattern draws) counted it. With accumulation
     * ({@link TrainConfig#accumulate} > 1) the loader is past every micro-batch up to the one that stopped, and the
     * stateful rules are put back as they were at the step's start, forward counts included, since earlier micro-batches'
     * backward passes moved them too. Training on would only spread the NaN into every weight, and a later checkpoint
     * would keep them.
     */
    public static final class NonFiniteLossException extends NonFiniteException {
        private static final long serialVersionUID = 1L;
        private final double loss;

        NonFiniteLossException(long step, int epoch, double loss, double lr) {
            super(String.format(java.util.Locale.ROOT, "the loss is %s at step %d (epoch %d, lr %.4g): stopped before its update, so the weights are"
                    + " those after step %d; a lower --lr (or --warmup) usually avoids it", nonFinite(loss), step + 1, epoch + 1, lr, step), step);
            this.loss = loss;
        }

        public double loss() { return loss; }
        @Override public String what() { return "the loss"; }
    }

    /**
     * A step of a clipping run ({@link TrainConfig#clipGradNorm}) whose loss was finite but whose gradients' total L2
     * norm came out NaN or infinite, so that they cannot be clipped (torch's clip_grad_norm_ would scale them into NaN,
     * which the update spreads into every weight). The step stopped after its backward and before clipping and update:
     * as for {@link NonFiniteLossException}, the weights, optimizer state, batch norm's running statistics, ASP's masks
     * and the step count are those after the step before, and the stateful rules' states that the backward moves
     * (ReSprop's samples and thresholds) are put back as the forward left them; the loader is past the batch, and what
     * the forward counted stays counted.
     */
    public static final class NonFiniteGradNormException extends NonFiniteException {
        private static final long serialVersionUID = 1L;
        private final double loss, norm;

        NonFiniteGradNormException(long step, int epoch, double loss, double norm, double lr, double maxNorm) {
            super(String.format(java.util.Locale.ROOT, "the gradients' total L2 norm is %s at step %d (epoch %d, loss %.4f, lr %.4g): stopped before"
                    + " clipping it to %s and the update, so the weights are those after step %d; a lower --lr (or --warmup) usually avoids it",
                    nonFinite(norm), step + 1, epoch + 1, loss, lr, maxNorm, step), step);
            this.loss = loss;
            this.norm = norm;
        }

        /** The step's loss (finite). */
        public double loss() { return loss; }
        /** The norm: NaN or an infinity. */
        public double norm() { return norm; }
        @Override public String what() { return "the gradient norm"; }
    }

    private final TrainConfig cfg;
    private final TrainData data;
    private final Module model;
    private final Optimizer opt;
    private final DataLoader loader, testLoader;
    private final LrSchedule schedule;
    private final long totalSteps;
    /** Optimizer steps per epoch: whole groups of cfg.accumulate() batches (a remainder of fewer is not trained). */
    private final int stepsPerEpoch;
    private final boolean decays;
    private boolean stopOnNonFiniteLoss = true;
    /** The buffers as they were before the step's forward (a stopped step puts its running statistics back); made once. */
    private final Map<Tensor, Tensor> bufferCopies = new java.util.IdentityHashMap<>();
    private final Device device;
    /** Whether the model is the caller's (not closed by close()) rather than built from cfg's model name. */
    private final boolean custom;
    /** Whether ASP's layers are pruned at half of the run (see aspStep). */
    private final boolean aspAtHalf;
    /** The masks' flip rate, read after every step where asked for ({@link #measureFlipRate}), else null. */
    private FlipRate flips;
    private long step;

    public Trainer(TrainConfig cfg, TrainData data) { this(cfg, data, Device.CPU); }

    /**
     * A trainer whose model, optimizer state and batches live on device (Module.to after the model is built, each batch
     * copied up by the step); data loading, augmentation and the metrics stay on the host.
     */
    public Trainer(TrainConfig cfg, TrainData data, Device device) { this(null, cfg, data, device, false); }

    /**
     * A trainer of a model of one's own (any {@link Module} that maps a batch of the data's images [B, C, H, W] to logits
     * [B, classes]), with everything else as for the built-in models: cfg's data subsets, batch, epochs, schedule, optimizer,
     * label smoothing, SR-STE decay (where a layer prunes W by magnitude) and seed (data order and augmentation; the
     * model's init is the caller's), progress, {@link #evaluate}, checkpoints that resume exactly, the NaN-loss stop. The
     * config's model name becomes {@value #CUSTOM} (so that {@code fst4j eval} or a built-in trainer refuses its
     * checkpoints instead of building another model); its method names the run (in the metadata, checked on load) but is
     * not applied: the layers keep the sparsity they were built with, and cfg may have no variants. The ASP preset's
     * layers are pruned at half of the run, as the built-in models' are. {@link #load} checks the config, the parameter
     * and buffer names and shapes, and the stateful sparsifiers against the model given here. The model stays the
     * caller's: {@link #close} frees the optimizer but not the model.
     */
    public Trainer(Module model, TrainConfig cfg, TrainData data) { this(model, cfg, data, Device.CPU); }

    /** {@link #Trainer(Module, TrainConfig, TrainData)} on device (the model is moved there). */
    public Trainer(Module model, TrainConfig cfg, TrainData data, Device device) {
        this(Objects.requireNonNull(model, "model (new Trainer(cfg, data) builds cfg's)"), cfg, data, device, true);
    }

    private Trainer(Module custom, TrainConfig cfg, TrainData data, Device device, boolean isCustom) {
        if (isCustom) {
            if (!cfg.variants().isEmpty())
                throw new IllegalArgumentException("the variants " + cfg.methodName() + " apply to the built-in models' layers; a model of one's own takes"
                        + " them in its layers' SparseConfig (SparseConfig.Recipe.parse(\"" + cfg.methodName() + "\").apply(config, seed))");
            if (!cfg.nm().isTwoFour())
                throw new IllegalArgumentException("the N:M pattern " + cfg.nm() + " applies to the built-in models' layers; a model of one's own takes"
                        + " it in its layers' SparseConfig (config.withPattern(NM.parse(\"" + cfg.nm() + "\")))");
            cfg = cfg.withModel(CUSTOM);
        } else if (cfg.model().equalsIgnoreCase(CUSTOM)) {
            throw new IllegalArgumentException("model '" + CUSTOM + "' is a model of one's own: build it and pass it to new Trainer(model, cfg, data)");
        }
        this.cfg = cfg;
        this.device = device;
        this.custom = isCustom;
        this.data = data.subsets(cfg.trainSubset(), cfg.testSubset());
        var tr = this.data.train();
        if (tr.size() < cfg.batchSize())
            throw new IllegalArgumentException("the training set has " + tr.size() + " images, fewer than one batch of " + cfg.batchSize());
        if (tr.size() / cfg.batchSize() < cfg.accumulate())
            throw new IllegalArgumentException("one optimizer step takes " + cfg.accumulate() + " batches of " + cfg.batchSize() + " (accumulate "
                    + cfg.accumulate() + "), but the training set of " + tr.size() + " images gives " + tr.size() / cfg.batchSize() + " an epoch");
        if (isCustom) {
            this.model = custom;
        } else {
            this.model = Models.byName(cfg.model(), tr.channels(), tr.height(), tr.width(), tr.numClasses(), cfg.method(), cfg.seed());
            applyVariants(model, cfg);
        }
        if (device != Device.CPU) model.to(device);
        // the ASP preset's layers of a model of one's own prune at half as the built-in models' do (their method is ASP)
        this.aspAtHalf = cfg.method() == SparseConfig.Method.ASP || isCustom && Asp.pending(model);
        this.opt = optimizerFor(model, cfg);
        DataLoader.Builder b = DataLoader.builder(tr).batchSize(cfg.batchSize()).shuffle(true).seed(cfg.seed()).dropLast(true)
                .normalize(this.data.mean(), this.data.std());
        if (cfg.augment()) b.randomCrop(tr.height() <= 28 ? 2 : 4).horizontalFlip(true);
        this.loader = b.build();
        this.testLoader = DataLoader.builder(this.data.test()).batchSize(Math.max(cfg.batchSize(), 256))
                .normalize(this.data.mean(), this.data.std()).build();
        this.stepsPerEpoch = loader.batchesPerEpoch() / cfg.accumulate();
        this.totalSteps = (long) cfg.epochs() * stepsPerEpoch;
        this.schedule = cfg.schedule().build(cfg, totalSteps, stepsPerEpoch);
        Models.sparseLayers(model).forEach((name, s) -> {   // ReSprop: the warm-up spans the run's first tenth; samples per layer
            fst4j.nn.ReSprop r = s.resprop();   // its steps are backward passes: one per micro-batch
            if (r != null) { r.warmUpOver(this.totalSteps * this.cfg.accumulate()); r.saltWith(name); }
        });
        boolean d = false;
        for (Sparse s : Models.sparseLayers(model).values()) d |= s.sparsity().decaysPruned();
        // lambda 0 is the plain straight-through estimator: the optimizer's own step, no decay pass
        this.decays = d && cfg.srSteLambda() != 0;
    }

    /**
     * The config's N:M pattern ({@link SparseConfig#withPattern}: the magnitude-pruned W slots of every pruned layer) and
     * variants applied to every pruned layer of model, before any checkpoint is loaded (a layer's random patterns are part
     * of its state). Layer i (1-based, over all conv/linear layers) seeds its patterns with seed * 1000003 + i, as
     * {@code fst4j experiment ir} always has. At 2:4 and without variants the layers stay as built.
     */
    public static void applyVariants(Module model, TrainConfig cfg) {
        if (!cfg.nm().isTwoFour())
            for (Sparse sp : Models.sparseLayers(model).values())
                if (!sp.sparsity().isDense()) sp.setSparsity(sp.sparsity().withPattern(cfg.nm()));
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
    /** Optimizer steps per epoch (batches per epoch / accumulate, rounded down). */
    public int stepsPerEpoch() { return stepsPerEpoch; }
    /** The current epoch (0-based). */
    public int epoch() { return loader.epoch(); }
    public boolean finished() { return loader.epoch() >= cfg.epochs() || step >= totalSteps; }
    /** Whether the current epoch has another step. */
    public boolean epochHasNext() {
        if (finished()) return false;
        int n = cfg.accumulate();
        // with accumulation a step needs n whole batches; the epoch's remainder of fewer is skipped, as drop_last skips a partial batch
        return n == 1 ? loader.hasNext() : loader.position() / loader.batchSize() + n <= loader.batchesPerEpoch();
    }
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
        update(model, opt, decay, lambda, Profile.start());
    }

    /** The optimizer's step, with SR-STE's decay where the layers prune (fused into SGD's pass where it can be), and zeroGrad, timed from t. */
    private static void update(Module model, Optimizer opt, boolean decay, double lambda, long t) {
        if (decay) SrSte.stepWithDecay(model, opt, lambda);
        else opt.step();
        opt.zeroGrad();
        Profile.stop(Profile.Part.OPTIMIZER, t);
    }

    /**
     * {@link #backwardAndUpdate} with gradient-norm clipping between the backward pass and the SR-STE decay:
     * {@link GradClip#clipGradNorm GradClip.clipGradNorm(opt.params(), maxNorm, errorIfNonfinite)}, timed with the
     * update as {@link Profile.Part#OPTIMIZER}. Returns the norm before clipping. With errorIfNonfinite a NaN or
     * infinite norm throws {@link GradClip.NonFiniteNormException} before any gradient, weight or optimizer state
     * changes (the gradients are left for the caller to zero).
     */
    public static double backwardClipAndUpdate(Var loss, Module model, Optimizer opt, boolean decay, double lambda, double maxNorm,
                                               boolean errorIfNonfinite) {
        loss.backward();
        long t = Profile.start();
        double norm = GradClip.clipGradNorm(opt.params(), maxNorm, errorIfNonfinite);
        update(model, opt, decay, lambda, t);   // the decay after the clipping: the loss's gradient is clipped, not the decay
        return norm;
    }

    /**
     * Whether {@link #trainStep} stops at a NaN or infinite loss with {@link NonFiniteLossException} (the default), and
     * where the config clips at a finite loss with a NaN or infinite gradient norm with {@link NonFiniteGradNormException},
     * or trains on (the experiments do, to report a diverging method as it ends, as the paper's Table 1 does).
     */
    public Trainer stopOnNonFiniteLoss(boolean on) {
        stopOnNonFiniteLoss = on;
        return this;
    }

    /**
     * Whether every step reads the masks of the pruned weights and reports their flip rate ({@link StepResult#flips},
     * {@link FlipRate}); off by default. Turned on, it reads the masks now as the ones the next step is compared with
     * (call it before that step, or after {@link #load}, which reads them again); turned off, it drops them. The reading
     * changes nothing the training computes (the same bits with it and without), and is not in the step's wall time.
     * Refused, naming the layer, where a W slot's mask cannot be read without moving its state.
     */
    public Trainer measureFlipRate(boolean on) {
        if (on && flips == null) flips = new FlipRate(model);
        else if (!on && flips != null) { flips.close(); flips = null; }
        return this;
    }

    /**
     * One training step on the next batch of the current epoch; {@link NonFiniteLossException} where its loss is not
     * finite, {@link NonFiniteGradNormException} where the config clips and its gradients' norm is not.
     */
    public StepResult trainStep() {
        if (!epochHasNext()) throw new IllegalStateException("epoch " + epoch() + " has no more steps; call endEpoch()");
        long t0 = System.nanoTime();
        int ep = loader.epoch();
        double lr = schedule.lr(step);
        int n = cfg.accumulate();
        double lossSum = 0, gradNorm = Double.NaN;
        int correct = 0, size = 0;
        // no model.train(true) here: the modes are the user's (a batch norm put in eval mode to freeze it stays so)
        Runnable beforeAsp = null;
        if (step == aspStep() && Asp.pending(model)) {   // ASP: dense so far, the masks fixed from here
            if (stopOnNonFiniteLoss) beforeAsp = Models.sparsityRestorer(model);
            Asp.prune(model);
        }
        if (stopOnNonFiniteLoss) keepBuffers();
        // with accumulation a stop in a later micro-batch follows earlier backward passes: the rules go back to the step's start
        List<Runnable> rules = stopOnNonFiniteLoss && n > 1 ? ruleRestorers() : List.of();
        try (Scope s = Scope.open()) {
            opt.setLr(lr);
            Var logits = null, loss = null;
            try {
                for (int k = 0; k < n; k++) {
                    logits = loss = null;
                    // each micro-batch's graph and activations freed before the next (the gradients live with the parameters)
                    try (Scope micro = n > 1 ? Scope.open() : null) {
                        DataLoader.Batch batch = loader.next();
                        logits = model.forward(Var.of(onDevice(batch.images())));
                        loss = NN.crossEntropy(logits, batch.labels(), cfg.labelSmoothing());
                        double lossValue = loss.item();
                        if (stopOnNonFiniteLoss && !Double.isFinite(lossValue)) {   // the step's loss (their mean) is not finite either
                            rules.forEach(Runnable::run);
                            undoForward(beforeAsp);
                            throw new NonFiniteLossException(step, ep, lossValue, lr);
                        }
                        lossSum += lossValue;
                        correct += countCorrect(logits.value(), batch.labels());
                        size += batch.size();
                        if (n == 1 && !cfg.clipsGradients()) {
                            backwardAndUpdate(loss, model, opt, decays, cfg.srSteLambda());   // the step as it was before accumulation
                            break;
                        }
                        // without accumulation, the rules' states as the forward left them: a step that clips and stops puts back
                        // what its backward moved (ReSprop's samples), and keeps what the forward counted
                        if (n == 1 && stopOnNonFiniteLoss) rules = ruleRestorers();
                        // summed over the micro-batches, the 1/n-scaled losses' gradients are the mean over all n * batch images
                        (n == 1 ? loss : loss.mul(1.0 / n)).backward();
                    }
                }
                if (n > 1 || cfg.clipsGradients()) {
                    logits = loss = null;
                    long t = Profile.start();
                    if (cfg.clipsGradients()) {
                        try {
                            gradNorm = GradClip.clipGradNorm(opt.params(), cfg.clipGradNorm(), stopOnNonFiniteLoss);
                        } catch (GradClip.NonFiniteNormException nf) {   // thrown before anything was clipped or updated
                            rules.forEach(Runnable::run);
                            undoForward(beforeAsp);
                            throw new NonFiniteGradNormException(step, ep, lossSum / n, nf.norm(), lr, cfg.clipGradNorm());
                        }
                    }
                    update(model, opt, decays, cfg.srSteLambda(), t);   // once per optimizer step: SR-STE's decay, the step, zeroGrad
                }
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
        long nanos = System.nanoTime() - t0, done = step++;
        // after the update, outside the step's time: the masks the next forward applies, against the last step's
        return new StepResult(done, ep, lossSum / n, correct, size, lr, nanos, gradNorm, flips == null ? null : flips.step());
    }

    /** A stopped step puts back what its forward moved: batch norm's running statistics and the masks ASP fixed at its start. */
    private void undoForward(Runnable beforeAsp) {
        bufferCopies.forEach(Tensor::copyFrom);
        if (beforeAsp != null) beforeAsp.run();
    }

    /** What puts every stateful rule of the model back as it is now ({@link fst4j.sparse.StatefulSparsifier#restorer}). */
    private List<Runnable> ruleRestorers() {
        List<Runnable> out = new ArrayList<>();
        Models.statefulSparsifiers(model).values().forEach(r -> out.add(r.restorer()));
        return out;
    }

    /** The step at whose start ASP prunes (half of the run), or -1 for other methods. */
    public long aspStep() { return aspAtHalf ? totalSteps / 2 : -1; }

    /**
     * Accuracy and loss on the test set, batched, in eval mode without recording a graph. Every module's mode is put back
     * as it was, each its own (also when a forward throws): a layer the user put in eval mode stays there.
     */
    public Eval evaluate() {
        Runnable modes = model.modeRestorer();
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
            modes.run();
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

    /** The trainer's parts as a {@link Checkpoint}: model, optimizer and loader. */
    private Checkpoint checkpoint() {
        var tr = data.train();
        String note = custom ? "(is the model given to this trainer the one the checkpoint was written with?)"
                : "(this " + cfg.model() + " is built for the " + tr.channels() + "x" + tr.height() + "x" + tr.width() + " images and "
                + tr.numClasses() + " classes of " + data.spec() + ")";
        return Checkpoint.of(model).optimizer(opt).loader(loader).modelNote(note);
    }

    /**
     * Writes the full training state to file atomically (parent directories are created): a {@link Checkpoint} of the
     * model, optimizer and loader whose step is {@link #stepsDone}, with the epoch as int64 "epoch" and the config
     * ({@link TrainConfig#toMetadata}), data spec, training set size and total steps as metadata.
     */
    public void save(Path file) throws IOException { save(file, Map.of()); }

    /**
     * {@link #save(Path)} with string metadata of the caller's beside the trainer's (the CLI keeps the epoch's running
     * train loss and accuracy there, so that a resumed epoch reports all of its steps); a key of the trainer's is refused.
     */
    public void save(Path file, Map<String, String> extra) throws IOException {
        Map<String, String> meta = new LinkedHashMap<>(cfg.toMetadata());
        for (String k : extra.keySet())
            if (meta.containsKey(k) || List.of("data", "train_size", "total_steps").contains(k))
                throw new IllegalArgumentException("checkpoint metadata '" + k + "' is the trainer's own");
        meta.putAll(extra);
        meta.put("data", data.spec());
        meta.put("train_size", Integer.toString(data.train().size()));
        meta.put("total_steps", Long.toString(totalSteps));
        checkpoint().save(file, new Checkpoint.Info(step, meta, Map.of("epoch", new long[]{loader.epoch()})));
    }

    /** The config stored in a checkpoint (to build the trainer to {@link #load} it into). */
    public static TrainConfig readConfig(Path file) {
        try (SafeTensors.Contents c = Checkpoint.open(file)) {
            return TrainConfig.fromMetadata(trainers(c.metadata()));
        } catch (RuntimeException e) {
            throw e instanceof CheckpointException ce ? ce : new CheckpointException(file, e.getMessage(), e);
        }
    }

    /** The string metadata of a checkpoint (config, data spec, sizes). */
    public static Map<String, String> readMetadata(Path file) {
        try (SafeTensors.Contents c = Checkpoint.open(file)) {
            return new LinkedHashMap<>(c.metadata());
        }
    }

    /** meta, refused with the reason where it is not a trainer's (a loop of one's own wrote the file with no config). */
    private static Map<String, String> trainers(Map<String, String> meta) {
        if (!meta.containsKey("model") || !meta.containsKey("method"))
            throw new IllegalArgumentException("it holds no trainer config (no 'model' or 'method' in its metadata): a training loop of one's own"
                    + " wrote it with Checkpoint.save; load it with Checkpoint.load");
        return meta;
    }

    /**
     * Restores the state saved by {@link #save} into this trainer, which must have the same config (but for the test
     * subset) and data (checked: model, method, batch, epochs, seed, lr, data size). Training then continues exactly.
     * All or nothing ({@link Checkpoint#load}): a refused checkpoint leaves the trainer as it was.
     */
    public void load(Path file) {
        step = checkpoint().load(file, info -> {
            Map<String, String> meta = trainers(info.metadata());
            TrainConfig saved = TrainConfig.fromMetadata(meta);
            // the test subset only chooses what evaluate() reads: a checkpoint may be evaluated on another one
            if (!saved.withSubsets(saved.trainSubset(), cfg.testSubset()).equals(cfg))
                throw new IllegalArgumentException("it was written for " + saved.toMetadata() + ", not " + cfg.toMetadata());
            String trainSize = meta.get("train_size");
            if (trainSize != null && !trainSize.equals(Integer.toString(data.train().size())))
                throw new IllegalArgumentException("it was trained on " + trainSize + " images, this run has " + data.train().size());
            if (info.step() > totalSteps) throw new IllegalArgumentException("step " + info.step() + " is outside 0.." + totalSteps);
        }, (info, int64s) -> {
            // ASP's masks were fixed before it was saved: placeholders for the file's masks (which must all be there)
            if (aspStep() < 0 || info.step() <= aspStep() || !Asp.pending(model)) return null;
            Runnable back = Models.sparsityRestorer(model);
            Asp.installPlaceholders(model);
            return back;
        }).step();
        if (flips != null) flips.reset();   // the loaded weights' masks are the ones the next step's are compared with
    }

    @Override
    public void close() {
        if (flips != null) flips.close();
        bufferCopies.values().forEach(Tensor::close);
        bufferCopies.clear();
        opt.close();
        if (!custom) model.close();
    }

    private void keepBuffers() {
        for (Tensor b : model.namedBuffers().values()) {
            Tensor c = bufferCopies.get(b);
            if (c == null) bufferCopies.put(b, c = Scope.within(null, () -> Tensor.empty(b.device(), b.dtype(), b.shape())));
            c.copyFrom(b);
        }
    }
}
