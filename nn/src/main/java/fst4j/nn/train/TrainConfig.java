package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.autograd.SparseConfig.Variant;
import fst4j.nn.AdamW;
import fst4j.sparse.NM;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Everything that determines a training run (with the data): model, sparsity method, optimisation recipe, seed.
 * The recipe follows fst-method.md scaled down: SGD momentum 0.9, weight decay 5e-4, cosine LR with linear warm-up,
 * label smoothing 0.1, SR-STE decay lambda 2e-4 where the method prunes W. AdamW in place of SGD: {@link #withAdamWDefaults}.
 *
 * @param warmupSteps linear warm-up steps; negative means 5% of the total (rounded, at least 1 when total >= 20)
 * @param trainSubset first N training images only (0: all); testSubset likewise for evaluation
 * @param augment     random crop (padding 2 for 28x28, 4 otherwise) and horizontal flip
 * @param variants    changes applied on top of the method to every pruned layer ({@link Variant}), in order
 * @param optimizer   SGD (momentum, nesterov) or AdamW (adamW's betas, eps, amsgrad); lr and weightDecay are either's
 * @param wdOnNormAndBias false: biases and batch norm's parameters get no weight decay (ParamGroup.splitDecay)
 * @param clipGradNorm the largest total L2 norm of the gradients (torch.nn.utils.clip_grad_norm_, {@link fst4j.nn.GradClip}),
 *                     applied by the trainer after the backward pass and before SR-STE's decay and the optimizer's step;
 *                     0: no clipping (the default, and what a checkpoint without the key means)
 * @param nm          the N:M pattern of the weights the method prunes by magnitude (S(W), S(W^T)); 2:4 is the presets'
 *                    (the default, and what a checkpoint without the key means); another is refused for a method that
 *                    prunes no weight by magnitude ({@link Method#whyNoPattern})
 * @param schedule    the learning-rate schedule ({@link ScheduleSpec}; cosine with warm-up, the default, and what a
 *                    checkpoint without the key means); warmupSteps and minLr shape cosine and linear only
 * @param accumulate  micro-batches of batchSize per optimizer step (gradient accumulation; 1, the default: none). Each
 *                    micro-batch's loss is scaled by 1 / accumulate before its backward pass, so the step's gradient
 *                    is the mean over accumulate * batchSize images; batch norm normalises each micro-batch on its own
 */
public record TrainConfig(String model, Method method, int epochs, int batchSize, double lr, double momentum,
                          double weightDecay, boolean nesterov, int warmupSteps, double minLr, double labelSmoothing,
                          double srSteLambda, long seed, int trainSubset, int testSubset, boolean augment,
                          List<Variant> variants, OptimizerKind optimizer, AdamWSettings adamW, boolean wdOnNormAndBias,
                          double clipGradNorm, NM nm, ScheduleSpec schedule, int accumulate) {

    /** The optimizer of a run: SGD (momentum, nesterov: this record's fields) or AdamW ({@link AdamWSettings}). */
    public enum OptimizerKind {
        SGD, ADAMW;

        /** "sgd", "adamw": the CLI's and the metadata's name. */
        public String key() { return name().toLowerCase(Locale.ROOT); }

        public static OptimizerKind parse(String s) {
            for (OptimizerKind k : values()) if (k.key().equals(s.toLowerCase(Locale.ROOT))) return k;
            throw new IllegalArgumentException("unknown optimizer '" + s + "' (sgd, adamw)");
        }
    }

    /** AdamW's own settings (fst4j.nn.AdamW; lr and weight decay are the config's); torch's defaults in DEFAULTS. */
    public record AdamWSettings(double beta1, double beta2, double eps, boolean amsgrad) {
        public static final AdamWSettings DEFAULTS = new AdamWSettings(AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS, false);

        public AdamWSettings {
            if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
                throw new IllegalArgumentException("AdamW betas must be in [0, 1), got (" + beta1 + ", " + beta2 + ")");
            if (!(eps >= 0) || eps == Double.POSITIVE_INFINITY) throw new IllegalArgumentException("AdamW eps must be finite and >= 0, got " + eps);
        }
    }

    public TrainConfig {
        if (model == null || model.isBlank()) throw new IllegalArgumentException("model name is empty");
        if (method == null) throw new IllegalArgumentException("method is null");
        if (epochs < 1) throw new IllegalArgumentException("epochs must be >= 1, got " + epochs);
        if (batchSize < 1) throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
        if (!(lr > 0)) throw new IllegalArgumentException("learning rate must be > 0, got " + lr);
        if (labelSmoothing < 0 || labelSmoothing >= 1) throw new IllegalArgumentException("label smoothing must be in [0, 1), got " + labelSmoothing);
        if (trainSubset < 0 || testSubset < 0) throw new IllegalArgumentException("subset sizes must be >= 0");
        variants = new Recipe(method, variants == null ? List.of() : variants).variants();   // checks that each applies
        if (optimizer == null) throw new IllegalArgumentException("optimizer is null");
        if (adamW == null) throw new IllegalArgumentException("AdamW settings are null (AdamWSettings.DEFAULTS for torch's)");
        if (!(weightDecay >= 0) || weightDecay == Double.POSITIVE_INFINITY)
            throw new IllegalArgumentException("weight decay must be finite and >= 0, got " + weightDecay);
        if (!(momentum >= 0)) throw new IllegalArgumentException("momentum must be >= 0, got " + momentum);
        if (!(clipGradNorm >= 0) || clipGradNorm == Double.POSITIVE_INFINITY)
            throw new IllegalArgumentException("the gradient norm to clip to must be finite and >= 0 (0: no clipping), got " + clipGradNorm);
        if (clipGradNorm == 0) clipGradNorm = 0.0;   // -0.0 is off too, and equal to the default (records compare doubles by bits)
        if (nm == null) throw new IllegalArgumentException("the N:M pattern is null (NM.TWO_FOUR for 2:4)");
        if (schedule == null) throw new IllegalArgumentException("the schedule is null (ScheduleSpec.COSINE for the default)");
        if (accumulate < 1) throw new IllegalArgumentException("micro-batches per optimizer step (accumulate) must be >= 1, got " + accumulate);
        if (!(srSteLambda >= 0) || srSteLambda == Double.POSITIVE_INFINITY)
            throw new IllegalArgumentException("SR-STE's decay lambda must be finite and >= 0 (0: the plain straight-through estimator), got " + srSteLambda);
        if (srSteLambda == 0) srSteLambda = 0.0;   // -0.0 is the plain STE too, and equal to it (records compare doubles by bits)
        String why = nm.isTwoFour() ? null : method.whyNoPattern();
        if (why != null) throw new IllegalArgumentException("N:M " + nm + " has no meaning for " + method.name().toLowerCase(Locale.ROOT) + ": " + why);
    }

    /** The defaults: resnet-small, the given method, 1 epoch, batch 128, lr 0.1, seed 0. */
    public static TrainConfig defaults(Method method) {
        return new TrainConfig("resnet-small", method, 1, 128, 0.1, 0.9, 5e-4, false, -1, 0.0, 0.1, 2e-4, 0, 0, 0, false, List.of(),
                OptimizerKind.SGD, AdamWSettings.DEFAULTS, true, 0.0, NM.TWO_FOUR, ScheduleSpec.COSINE, 1);
    }

    public TrainConfig withModel(String m) { return new TrainConfig(m, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    /** The method, without variants. */
    public TrainConfig withMethod(Method m) { return new TrainConfig(model, m, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, List.of(), optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    /** The method and its variants. */
    public TrainConfig withRecipe(Recipe r) { return new TrainConfig(model, r.method(), epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, r.variants(), optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withEpochs(int e) { return new TrainConfig(model, method, e, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withBatchSize(int b) { return new TrainConfig(model, method, epochs, b, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withLr(double l) { return new TrainConfig(model, method, epochs, batchSize, l, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withMomentum(double m) { return new TrainConfig(model, method, epochs, batchSize, lr, m, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withWeightDecay(double w) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, w, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withNesterov(boolean n) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, n, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withWarmupSteps(int w) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, w, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withLabelSmoothing(double s) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, s, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withSeed(long s) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, s, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withSubsets(int train, int test) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, train, test, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withAugment(boolean a) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, a, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }

    /** SGD (the default) or AdamW; the learning rate and weight decay stay as they are (see {@link #withAdamWDefaults}). */
    public TrainConfig withOptimizer(OptimizerKind o) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, o, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    public TrainConfig withAdamW(AdamWSettings a) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, a, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }
    /** false: no weight decay on biases and batch norm's parameters (fst4j.nn.ParamGroup.splitDecay); true (torch's default): on every parameter. */
    public TrainConfig withWdOnNormAndBias(boolean on) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, on, clipGradNorm, nm, schedule, accumulate); }

    /**
     * Gradient-norm clipping at maxNorm (0: off): each step's gradients, all parameters together, scaled down to that
     * total L2 norm where they exceed it, after the backward pass and before SR-STE's decay ({@link Trainer}).
     */
    public TrainConfig withClipGradNorm(double maxNorm) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, maxNorm, nm, schedule, accumulate); }

    /** The weights pruned at pattern p instead of 2:4 (the trainer applies it to every pruned layer: SparseConfig.withPattern). */
    public TrainConfig withNm(NM p) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, p, schedule, accumulate); }

    /**
     * SR-STE's decay lambda (W - S(W)) of the pruned weights (default 2e-4); 0 is the plain straight-through estimator
     * (the pruned weights' gradient is the one with respect to S(W), with no decay), the baseline SR-STE's paper compares
     * with. Part of the checkpoints' metadata ("srste_lambda"), as it always was.
     */
    public TrainConfig withSrSteLambda(double l) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, l, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, accumulate); }

    /** The learning-rate schedule ({@link ScheduleSpec}). */
    public TrainConfig withSchedule(ScheduleSpec sch) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, sch, accumulate); }

    /** n micro-batches of batchSize per optimizer step, their gradients summed, each loss scaled by 1 / n ({@link Trainer}). */
    public TrainConfig withAccumulate(int n) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants, optimizer, adamW, wdOnNormAndBias, clipGradNorm, nm, schedule, n); }

    /** Whether the trainer clips the gradients' norm ({@link #clipGradNorm} above 0). */
    public boolean clipsGradients() { return clipGradNorm > 0; }

    /** AdamW with torch's defaults: lr 1e-3, weight decay 1e-2, betas (0.9, 0.999), eps 1e-8 (SGD's lr 0.1 would diverge). */
    public TrainConfig withAdamWDefaults() {
        return withOptimizer(OptimizerKind.ADAMW).withAdamW(AdamWSettings.DEFAULTS).withLr(1e-3).withWeightDecay(AdamW.DEFAULT_WEIGHT_DECAY);
    }

    /** Warm-up steps for a run of totalSteps. */
    public long warmupFor(long totalSteps) {
        long w = warmupSteps >= 0 ? warmupSteps : Math.round(0.05 * totalSteps);
        return Math.min(w, totalSteps);
    }

    /** The method with its variants. */
    public Recipe recipe() { return new Recipe(method, variants); }

    /** The method's name with its variants ("fst3_ir+patterns"): what outputs, summaries and checkpoints call the run. */
    public String methodName() { return recipe().key(); }

    /** As string metadata (for checkpoints and summary.json); {@link #fromMetadata} reads it back. */
    public Map<String, String> toMetadata() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("model", model);
        m.put("method", methodName());
        m.put("epochs", Integer.toString(epochs));
        m.put("batch", Integer.toString(batchSize));
        m.put("lr", Double.toString(lr));
        m.put("momentum", Double.toString(momentum));
        m.put("weight_decay", Double.toString(weightDecay));
        m.put("nesterov", Boolean.toString(nesterov));
        m.put("warmup_steps", Integer.toString(warmupSteps));
        m.put("min_lr", Double.toString(minLr));
        m.put("label_smoothing", Double.toString(labelSmoothing));
        m.put("srste_lambda", Double.toString(srSteLambda));
        m.put("seed", Long.toString(seed));
        m.put("train_subset", Integer.toString(trainSubset));
        m.put("test_subset", Integer.toString(testSubset));
        m.put("augment", Boolean.toString(augment));
        m.put("optimizer", optimizer.key());
        if (optimizer == OptimizerKind.ADAMW) {   // SGD runs keep the keys they had
            m.put("beta1", Double.toString(adamW.beta1()));
            m.put("beta2", Double.toString(adamW.beta2()));
            m.put("eps", Double.toString(adamW.eps()));
            m.put("amsgrad", Boolean.toString(adamW.amsgrad()));
        }
        if (!wdOnNormAndBias) m.put("wd_on_norm_and_bias", "false");
        if (clipsGradients()) m.put("clip_grad_norm", Double.toString(clipGradNorm));   // runs without clipping keep the keys they had
        if (!nm.isTwoFour()) m.put("nm", nm.toString());   // 2:4 runs keep the keys they had
        schedule.toMetadata(m);   // cosine runs keep the keys they had
        if (accumulate != 1) m.put("accumulate", Integer.toString(accumulate));   // and runs without accumulation
        return m;
    }

    public static TrainConfig fromMetadata(Map<String, String> m) {
        Recipe r = Recipe.parse(get(m, "method"));
        return new TrainConfig(get(m, "model"), r.method(), num(m, "epochs", Integer::parseInt),
                num(m, "batch", Integer::parseInt), num(m, "lr", Double::parseDouble), num(m, "momentum", Double::parseDouble),
                num(m, "weight_decay", Double::parseDouble), Boolean.parseBoolean(get(m, "nesterov")),
                num(m, "warmup_steps", Integer::parseInt), num(m, "min_lr", Double::parseDouble),
                num(m, "label_smoothing", Double::parseDouble), num(m, "srste_lambda", Double::parseDouble),
                num(m, "seed", Long::parseLong), num(m, "train_subset", Integer::parseInt), num(m, "test_subset", Integer::parseInt),
                Boolean.parseBoolean(get(m, "augment")), r.variants(),
                // checkpoints written before AdamW have no 'optimizer': SGD
                OptimizerKind.parse(m.getOrDefault("optimizer", "sgd")),
                m.containsKey("beta1") ? new AdamWSettings(num(m, "beta1", Double::parseDouble), num(m, "beta2", Double::parseDouble),
                        num(m, "eps", Double::parseDouble), Boolean.parseBoolean(get(m, "amsgrad"))) : AdamWSettings.DEFAULTS,
                Boolean.parseBoolean(m.getOrDefault("wd_on_norm_and_bias", "true")),
                // checkpoints written before clipping, or without it, have no 'clip_grad_norm': off
                m.containsKey("clip_grad_norm") ? num(m, "clip_grad_norm", Double::parseDouble) : 0,
                // checkpoints written before N:M, or at 2:4, have no 'nm'
                m.containsKey("nm") ? NM.parse(m.get("nm")) : NM.TWO_FOUR,
                // checkpoints written before schedules and accumulation, or without them: cosine, 1 micro-batch a step
                ScheduleSpec.fromMetadata(m), m.containsKey("accumulate") ? num(m, "accumulate", Integer::parseInt) : 1);
    }

    /** m's value of k as a number, or a refusal naming the key and its text (not only NumberFormatException's). */
    private static <T> T num(Map<String, String> m, String k, java.util.function.Function<String, T> parse) {
        String v = get(m, k);
        try {
            return parse.apply(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("metadata '" + k + "' is '" + v + "', not a number");
        }
    }

    private static String get(Map<String, String> m, String k) {
        String v = m.get(k);
        if (v == null) throw new IllegalArgumentException("metadata has no '" + k + "'");
        return v;
    }
}
