package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.autograd.SparseConfig.Variant;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Everything that determines a training run (with the data): model, sparsity method, optimisation recipe, seed.
 * The recipe follows fst-method.md scaled down: SGD momentum 0.9, weight decay 5e-4, cosine LR with linear warm-up,
 * label smoothing 0.1, SR-STE decay lambda 2e-4 where the method prunes W.
 *
 * @param warmupSteps linear warm-up steps; negative means 5% of the total (rounded, at least 1 when total >= 20)
 * @param trainSubset first N training images only (0: all); testSubset likewise for evaluation
 * @param augment     random crop (padding 2 for 28x28, 4 otherwise) and horizontal flip
 * @param variants    changes applied on top of the method to every pruned layer ({@link Variant}), in order
 */
public record TrainConfig(String model, Method method, int epochs, int batchSize, double lr, double momentum,
                          double weightDecay, boolean nesterov, int warmupSteps, double minLr, double labelSmoothing,
                          double srSteLambda, long seed, int trainSubset, int testSubset, boolean augment,
                          List<Variant> variants) {

    public TrainConfig {
        if (model == null || model.isBlank()) throw new IllegalArgumentException("model name is empty");
        if (method == null) throw new IllegalArgumentException("method is null");
        if (epochs < 1) throw new IllegalArgumentException("epochs must be >= 1, got " + epochs);
        if (batchSize < 1) throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
        if (!(lr > 0)) throw new IllegalArgumentException("learning rate must be > 0, got " + lr);
        if (labelSmoothing < 0 || labelSmoothing >= 1) throw new IllegalArgumentException("label smoothing must be in [0, 1), got " + labelSmoothing);
        if (trainSubset < 0 || testSubset < 0) throw new IllegalArgumentException("subset sizes must be >= 0");
        variants = new Recipe(method, variants == null ? List.of() : variants).variants();   // checks that each applies
    }

    /** The defaults: resnet-small, the given method, 1 epoch, batch 128, lr 0.1, seed 0. */
    public static TrainConfig defaults(Method method) {
        return new TrainConfig("resnet-small", method, 1, 128, 0.1, 0.9, 5e-4, false, -1, 0.0, 0.1, 2e-4, 0, 0, 0, false, List.of());
    }

    public TrainConfig withModel(String m) { return new TrainConfig(m, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    /** The method, without variants. */
    public TrainConfig withMethod(Method m) { return new TrainConfig(model, m, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, List.of()); }
    /** The method and its variants. */
    public TrainConfig withRecipe(Recipe r) { return new TrainConfig(model, r.method(), epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, r.variants()); }
    public TrainConfig withEpochs(int e) { return new TrainConfig(model, method, e, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withBatchSize(int b) { return new TrainConfig(model, method, epochs, b, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withLr(double l) { return new TrainConfig(model, method, epochs, batchSize, l, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withMomentum(double m) { return new TrainConfig(model, method, epochs, batchSize, lr, m, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withWeightDecay(double w) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, w, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withNesterov(boolean n) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, n, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withWarmupSteps(int w) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, w, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withLabelSmoothing(double s) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, s, srSteLambda, seed, trainSubset, testSubset, augment, variants); }
    public TrainConfig withSeed(long s) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, s, trainSubset, testSubset, augment, variants); }
    public TrainConfig withSubsets(int train, int test) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, train, test, augment, variants); }
    public TrainConfig withAugment(boolean a) { return new TrainConfig(model, method, epochs, batchSize, lr, momentum, weightDecay, nesterov, warmupSteps, minLr, labelSmoothing, srSteLambda, seed, trainSubset, testSubset, a, variants); }

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
        return m;
    }

    public static TrainConfig fromMetadata(Map<String, String> m) {
        Recipe r = Recipe.parse(get(m, "method"));
        return new TrainConfig(get(m, "model"), r.method(), Integer.parseInt(get(m, "epochs")),
                Integer.parseInt(get(m, "batch")), Double.parseDouble(get(m, "lr")), Double.parseDouble(get(m, "momentum")),
                Double.parseDouble(get(m, "weight_decay")), Boolean.parseBoolean(get(m, "nesterov")),
                Integer.parseInt(get(m, "warmup_steps")), Double.parseDouble(get(m, "min_lr")),
                Double.parseDouble(get(m, "label_smoothing")), Double.parseDouble(get(m, "srste_lambda")),
                Long.parseLong(get(m, "seed")), Integer.parseInt(get(m, "train_subset")), Integer.parseInt(get(m, "test_subset")),
                Boolean.parseBoolean(get(m, "augment")), r.variants());
    }

    private static String get(Map<String, String> m, String k) {
        String v = m.get(k);
        if (v == null) throw new IllegalArgumentException("metadata has no '" + k + "'");
        return v;
    }
}
