package fst4j.nn.experiment;

import fst4j.autograd.Grad;
import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.autograd.Var;
import fst4j.nn.AdamW;
import fst4j.nn.Asp;
import fst4j.nn.LrSchedule;
import fst4j.nn.Models;
import fst4j.nn.ParamGroup;
import fst4j.nn.Sparse;
import fst4j.nn.SrSte;
import fst4j.nn.TinyTransformer;
import fst4j.tensor.Scope;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code fst4j experiment transformer}: Models.tinyTransformer trained on a synthetic sequence task under several
 * sparsity methods, several seeds each, as the image tables are (mean ± std over seeds). The method goes where
 * Models.tinyTransformer puts it (the FFN Linear layers, Hu et al. 2024's choice for GPT-2); the model's other layers
 * stay as it builds them. A run: AdamW (ParamGroup.splitDecay: no decay on biases and layer norms), cosine learning
 * rate with 5 % warm-up, SR-STE's decay where the layers prune W by magnitude (the trainer's rule: SrSte.stepWithDecay),
 * ASP pruned at half of the steps and ReSprop warmed up over the run's first tenth (as the trainer does for them), then
 * token and whole-sequence accuracy on a held-out test set of sequences that are not in the training set.
 * Everything but the timings is a function of the settings and the seed: the same bits on every run.
 */
public final class TransformerExperiment {
    private TransformerExperiment() {}

    /** The sequence task: the target sequence of an input sequence. */
    public enum Task {
        /** The input back to front: each output needs the token at the mirrored position (attention, not position-wise). */
        REVERSE,
        /** The input's tokens in ascending order: each output depends on every input token. */
        SORT;

        void target(int[] x, int off, int len, int[] y) {
            switch (this) {
                case REVERSE -> { for (int t = 0; t < len; t++) y[off + t] = x[off + len - 1 - t]; }
                case SORT -> { System.arraycopy(x, off, y, off, len); Arrays.sort(y, off, off + len); }
            }
        }

        public String key() { return name().toLowerCase(Locale.ROOT); }

        public static Task parse(String s) {
            for (Task t : values()) if (t.key().equals(s.trim().toLowerCase(Locale.ROOT))) return t;
            throw new IllegalArgumentException("unknown task '" + s + "' (reverse or sort)");
        }
    }

    /**
     * Everything a run depends on besides its method and seed. The data (train and test sequences) comes from dataSeed
     * alone, so every method and seed sees the same split; the run's seed draws the weights and the batch order.
     */
    public record Settings(Task task, int vocab, int len, int trainSize, int testSize, long dataSeed, int dim, int heads, int ff, int layers,
                           int steps, int batch, double lr, double weightDecay, double lambda) {
        public Settings {
            if (vocab < 2 || vocab > 65535) throw new IllegalArgumentException("--vocab must be in [2, 65535], got " + vocab);
            if (len < 2 || len > 1024) throw new IllegalArgumentException("--len must be in [2, 1024], got " + len);
            if (trainSize < 1 || testSize < 1) throw new IllegalArgumentException("train and test sets need at least one sequence, got " + trainSize + " and " + testSize);
            // each set is one int[] of size * len tokens: past an array's length it wrapped to a negative size (an exception, not a message)
            if ((long) trainSize * len > MAX_TOKENS || (long) testSize * len > MAX_TOKENS)
                throw new IllegalArgumentException("--train-size " + trainSize + " or --test-size " + testSize + " times --len " + len
                        + " is more than the " + MAX_TOKENS + " tokens a set can hold");
            // distinct sequences drawn by rejection: at most half of the V^L possible ones, so a draw is new with probability >= 1/2
            double space = Math.pow(vocab, len);
            if ((double) trainSize + testSize > space / 2)
                throw new IllegalArgumentException(trainSize + " training + " + testSize + " test sequences are more than half of the "
                        + String.format(Locale.ROOT, "%.0f", space) + " distinct sequences of length " + len + " over " + vocab + " tokens");
            if (batch > trainSize) throw new IllegalArgumentException("--batch " + batch + " is larger than the " + trainSize + " training sequences");
            if (steps < 1 || batch < 1) throw new IllegalArgumentException("steps and batch must be positive, got " + steps + " and " + batch);
            if (dim % heads != 0) throw new IllegalArgumentException("model width " + dim + " is not a multiple of the " + heads + " heads");
        }

        /** The most tokens (sequences times length) the training or the test set holds: one Java array each. */
        public static final int MAX_TOKENS = Integer.MAX_VALUE - 8;

        /**
         * The defaults of {@code fst4j experiment transformer} (see its help): sorting 16 tokens of 32, which 1,000 steps
         * leave short of perfect, so the methods separate (reversing 8 of 10 reached 100 % under every method).
         */
        public static Settings defaults() {
            return new Settings(Task.SORT, 32, 16, 4096, 512, 0, 32, 4, 128, 2, 1000, 32, 3e-3, 0.01, SrSte.DEFAULT_LAMBDA);
        }

        public Settings withTask(Task t) { return new Settings(t, vocab, len, trainSize, testSize, dataSeed, dim, heads, ff, layers, steps, batch, lr, weightDecay, lambda); }
        public Settings withSizes(int v, int l, int train, int test) { return new Settings(task, v, l, train, test, dataSeed, dim, heads, ff, layers, steps, batch, lr, weightDecay, lambda); }
        public Settings withModel(int d, int h, int f, int n) { return new Settings(task, vocab, len, trainSize, testSize, dataSeed, d, h, f, n, steps, batch, lr, weightDecay, lambda); }
        public Settings withTraining(int s, int b, double l, double wd) { return new Settings(task, vocab, len, trainSize, testSize, dataSeed, dim, heads, ff, layers, s, b, l, wd, lambda); }
        public Settings withDataSeed(long s) { return new Settings(task, vocab, len, trainSize, testSize, s, dim, heads, ff, layers, steps, batch, lr, weightDecay, lambda); }
    }

    /** Sequences [n, len] row-major with their targets: the training set and the held-out test set. */
    public record Data(int len, int[] trainX, int[] trainY, int[] testX, int[] testY) {
        public int trainSize() { return trainX.length / len; }
        public int testSize() { return testX.length / len; }
    }

    /**
     * trainSize distinct random sequences, then testSize distinct ones of which none is a training sequence (checked
     * while drawing: a test sequence already in the training set is drawn again), each token uniform in [0, vocab).
     */
    public static Data generate(Settings s) {
        SplittableRandom rnd = new SplittableRandom(s.dataSeed());
        Set<String> seen = new HashSet<>();
        int[][] xs = {new int[s.trainSize() * s.len()], new int[s.testSize() * s.len()]};
        int[][] ys = {new int[xs[0].length], new int[xs[1].length]};
        char[] key = new char[s.len()];
        for (int set = 0; set < 2; set++)
            for (int i = 0, n = xs[set].length / s.len(); i < n; ) {
                for (int t = 0; t < s.len(); t++) key[t] = (char) rnd.nextInt(s.vocab());
                if (!seen.add(new String(key))) continue;   // a repeat of a training (or earlier test) sequence
                for (int t = 0; t < s.len(); t++) xs[set][i * s.len() + t] = key[t];
                s.task().target(xs[set], i * s.len(), s.len(), ys[set]);
                i++;
            }
        return new Data(s.len(), xs[0], ys[0], xs[1], ys[1]);
    }

    /** One (method, seed) run: the mean loss of its last steps, test accuracies (fractions), median ms per step. */
    public record Run(Recipe recipe, long seed, double trainLoss, double tokenAcc, double seqAcc, double medianStepMs, long steps, double wallSeconds) {}

    /** The steps whose losses make a run's final training loss (its last ones; all of a shorter run). */
    static final int LOSS_WINDOW = 20;

    /** A model as a run of recipe builds it: Models.tinyTransformer with the method, the variants applied to its pruned layers. */
    public static TinyTransformer model(Settings s, Recipe recipe, long seed) {
        TinyTransformer m = Models.tinyTransformer(s.vocab(), s.len(), s.dim(), s.heads(), s.ff(), s.layers(), false, recipe.method(), seed);
        if (!recipe.variants().isEmpty()) {
            long layer = 0;   // Trainer.applyVariants' per-layer seeds, so a variant draws its patterns as the image tables do
            for (Sparse sp : Models.sparseLayers(m).values()) sp.setSparsity(recipe.apply(sp.sparsity(), seed * 1_000_003L + ++layer));
        }
        return m;
    }

    /** Trains a fresh model with recipe and seed on data's training set for s.steps() steps and scores it on the test set. */
    public static Run run(Settings s, Data data, Recipe recipe, long seed) {
        long t0 = System.nanoTime();
        int b = s.batch(), len = s.len(), v = s.vocab();
        try (TinyTransformer model = model(s, recipe, seed);
             AdamW opt = AdamW.withGroups(ParamGroup.splitDecay(model, s.weightDecay()), s.lr(), AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2,
                     AdamW.DEFAULT_EPS, false)) {
            // what the trainer does per method, decided once from the layers as built (Trainer's constructor)
            boolean decays = false;
            for (Map.Entry<String, Sparse> e : Models.sparseLayers(model).entrySet()) {
                decays |= e.getValue().sparsity().decaysPruned();
                fst4j.nn.ReSprop r = e.getValue().resprop();
                if (r != null) { r.warmUpOver(s.steps()); r.saltWith(e.getKey()); }
            }
            long aspStep = recipe.method() == Method.ASP ? s.steps() / 2 : -1;
            LrSchedule lr = LrSchedule.cosine(s.lr(), Math.max(1, s.steps() / 20), s.steps(), 0);
            SplittableRandom order = new SplittableRandom(seed);
            int n = data.trainSize(), pos = n;   // pos == n: shuffle a new pass first
            int[] perm = new int[n];
            for (int i = 0; i < n; i++) perm[i] = i;
            int[] x = new int[b * len], y = new int[b * len];
            List<Double> ms = new ArrayList<>();
            double[] losses = new double[s.steps()];
            for (int step = 0; step < s.steps(); step++) {
                if (pos + b > n) {   // a new pass over the training set, reshuffled (the remainder of the last one is dropped)
                    for (int i = n - 1; i > 0; i--) { int j = order.nextInt(i + 1), tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp; }
                    pos = 0;
                }
                for (int k = 0; k < b; k++, pos++) {
                    System.arraycopy(data.trainX(), perm[pos] * len, x, k * len, len);
                    System.arraycopy(data.trainY(), perm[pos] * len, y, k * len, len);
                }
                if (step == aspStep && Asp.pending(model)) Asp.prune(model);   // ASP: dense so far, the masks fixed from here
                long ts = System.nanoTime();
                try (Scope sc = Scope.open()) {
                    opt.setLr(lr.lr(step));
                    Var loss = NN.crossEntropy(model.forward(x, b, len).reshape(b * len, v), y, 0);
                    losses[step] = loss.item();
                    loss.backward();   // a diverging method trains on with NaN, as the image tables' runs do
                    if (decays) SrSte.stepWithDecay(model, opt, s.lambda());
                    else opt.step();
                    opt.zeroGrad();
                }
                if (step >= Math.min(2, s.steps() - 1)) ms.add((System.nanoTime() - ts) / 1e6);   // the first 2 steps warm up
            }
            int from = Math.max(0, s.steps() - LOSS_WINDOW);
            double lossSum = 0;
            for (int i = from; i < s.steps(); i++) lossSum += losses[i];
            double[] acc = evaluate(model, data, v);
            return new Run(recipe, seed, lossSum / (s.steps() - from), acc[0], acc[1], Experiment.median(ms), s.steps(), (System.nanoTime() - t0) / 1e9);
        }
    }

    /** {token accuracy, whole-sequence accuracy} of model on data's test set, in eval mode without a graph. */
    static double[] evaluate(TinyTransformer model, Data data, int vocab) {
        int len = data.len(), n = data.testSize(), chunk = 256;
        long tokens = 0, seqs = 0;
        Runnable modes = model.modeRestorer();
        model.eval();
        try (var g = Grad.noGrad()) {
            for (int i0 = 0; i0 < n; i0 += chunk) {
                int m = Math.min(chunk, n - i0);
                int[] x = Arrays.copyOfRange(data.testX(), i0 * len, (i0 + m) * len);
                try (Scope sc = Scope.open()) {
                    float[] z = model.forward(x, m, len).value().toFloatArray();
                    for (int i = 0; i < m; i++) {
                        boolean all = true;
                        for (int t = 0; t < len; t++) {
                            int row = i * len + t, arg = 0;
                            for (int c = 1; c < vocab; c++) if (z[row * vocab + c] > z[row * vocab + arg]) arg = c;
                            boolean ok = arg == data.testY()[(i0 + i) * len + t];
                            tokens += ok ? 1 : 0;
                            all &= ok;
                        }
                        seqs += all ? 1 : 0;
                    }
                }
            }
        } finally {
            modes.run();
        }
        return new double[]{(double) tokens / ((long) n * len), (double) seqs / n};
    }

    /**
     * Which layers of the model the runs build are pruned and how, from the model itself: the FFN's Linear layers take
     * the method, the rest (attention projections, head) are listed with their configuration's name.
     */
    public static String layerNote(Settings s, Recipe recipe) {
        Map<String, List<String>> byConfig = new LinkedHashMap<>();
        try (TinyTransformer m = model(s, recipe, 0)) {
            Models.sparseLayers(m).forEach((name, sp) -> byConfig.computeIfAbsent(sp.sparsity().name(), k -> new ArrayList<>()).add(name));
        }
        List<String> parts = new ArrayList<>();
        byConfig.forEach((cfg, names) -> parts.add(cfg + ": " + String.join(", ", names)));
        return String.join("; ", parts);
    }

    /** Token accuracy of always guessing the most frequent target token at each position over the test set: the bar "chance" is. */
    public static double chanceTokenAcc(Data data, int vocab) {
        int len = data.len(), n = data.testSize();
        long best = 0;
        for (int t = 0; t < len; t++) {
            int[] count = new int[vocab];
            for (int i = 0; i < n; i++) count[data.testY()[i * len + t]]++;
            best += Arrays.stream(count).max().orElse(0);
        }
        return (double) best / ((long) n * len);
    }

    /** A method's row: its name, what it prunes, and its runs over the seeds. */
    public record Result(Recipe recipe, List<Run> runs) {
        double[] of(java.util.function.ToDoubleFunction<Run> f) { return runs.stream().mapToDouble(f).toArray(); }
    }

    /** The Markdown table (heading, settings, one row per method, notes). */
    public static String markdown(String settings, String notes, List<Result> results) {
        StringBuilder sb = new StringBuilder("### Tiny transformer, synthetic sequences\n\n").append(settings).append("\n\n");
        sb.append("| method | pruned (FFN Linear layers) | final train loss (mean ± std) | test token acc % (mean ± std) | test sequence acc % (mean ± std)"
                + " | ms/step (mean ± std) | seeds | per-seed token acc % |\n");
        sb.append("|--------|----------------------------|-------------------------------|-------------------------------|----------------------------------"
                + "|----------------------|-------|----------------------|\n");
        for (Result r : results) {
            double[] tok = r.of(x -> 100 * x.tokenAcc());
            StringBuilder per = new StringBuilder();
            for (double a : tok) per.append(per.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%.2f", a));
            sb.append("| ").append(r.recipe().key())
                    .append(" | ").append(Experiment.pruned(r.recipe()).replace("|", "\\|"))
                    .append(" | ").append(Experiment.pm(r.of(Run::trainLoss), 4))
                    .append(" | ").append(Experiment.pm(tok, 2))
                    .append(" | ").append(Experiment.pm(r.of(x -> 100 * x.seqAcc()), 2))
                    .append(" | ").append(Experiment.pm(r.of(Run::medianStepMs), 1))
                    .append(" | ").append(tok.length)
                    .append(" | ").append(per)
                    .append(" |\n");
        }
        return sb.append('\n').append(notes).append('\n').toString();
    }

    /**
     * One line per run, for re-analysis; accuracies as fractions, as the image tables' CSV. The numbers the table
     * summarises (loss, accuracies, ms/step) are written in full (the shortest decimal that reads back as the same
     * double), so the table's cells recomputed from the CSV are the table's: rounded to 6 decimals first, a value such as
     * 1.234449996 read back as 1.234450 and its mean printed 1.2345 where the table says 1.2344.
     */
    public static String csv(Task task, List<Result> results) {
        StringBuilder sb = new StringBuilder("task,method,seed,train_loss,test_token_acc,test_seq_acc,median_step_ms,steps,wall_s\n");
        for (Result r : results)
            for (Run x : r.runs())
                sb.append(String.format(Locale.ROOT, "%s,%s,%d,%s,%s,%s,%s,%d,%.1f%n", task.key(), r.recipe().key(), x.seed(), x.trainLoss(),
                        x.tokenAcc(), x.seqAcc(), x.medianStepMs(), x.steps(), x.wallSeconds()));
        return sb.toString();
    }

    /** Whether recipe prunes X^T in Eq. 3 (a fixed or sorted mask), which on a Linear runs over the flattened tokens. */
    static boolean prunesXt(Recipe r) {
        SparseConfig c = r.apply(r.method().config(), 0);
        return !(c.xt() instanceof fst4j.sparse.Sparsifier.Dense);
    }

    /** Whether recipe's X^T rule is Eq. 7's fixed mask (fst3, fst3_ir), whose kept tokens the table's note names. */
    static boolean fixedEq7(Recipe r) { return r.apply(r.method().config(), 0).xt() instanceof fst4j.sparse.Sparsifier.Fixed24; }
}
