package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.autograd.SparseConfig.Variant;
import fst4j.nn.cli.OutputSet;
import fst4j.nn.plot.BarChart;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.nn.train.Trainer;
import fst4j.sparse.NM;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The paper's tables at small scale: every row trains a fresh model with one sparsity method for a fixed number of
 * steps per pass over the first steps*batch training images (one pass by default, reshuffled for each further pass;
 * cosine schedule over all the steps) through
 * {@link Trainer}, once per seed, then evaluates it on the test set. A row reports the test accuracy and the median
 * time per training step of each seed, summarised as mean +- sample standard deviation over the seeds.
 */
public final class Experiment {
    private Experiment() {}

    /**
     * A table row: its label in the paper's terms, the method that implements it, what it prunes, the paper's number,
     * and the variants applied to every pruned layer of the method's model before training (none: the method as it is).
     */
    public record Row(String label, Method method, String pruned, String paper, List<Variant> variants) {
        public Row(String label, Method method, String pruned, String paper) { this(label, method, pruned, paper, List.of()); }
        public Row(String label, Method method, String pruned, String paper, Variant variant) { this(label, method, pruned, paper, List.of(variant)); }

        public Recipe recipe() { return new Recipe(method, variants); }

        /** The row's method name, with its variants ("fst3_ir+patterns"): what the tables and CSVs call it. */
        public String key() { return recipe().key(); }
    }

    /** What a recipe prunes, in Table 5's words ("W, W^T, X^T fixed + IR"), from its configuration. */
    public static String pruned(Recipe r) {
        if (r.method() == Method.ASP) return "W, mask fixed at half of the steps";
        if (r.method() == Method.RESPROP) return "dY - previous sample (Eq. 2, Eq. 3)";
        SparseConfig c = r.apply(r.method().config(), 0);
        List<String> parts = new ArrayList<>();
        if (!(c.w() instanceof fst4j.sparse.Sparsifier.Dense)) parts.add(c.w() instanceof fst4j.sparse.Transposable24 ? "W (transposable)" : "W");
        if (!(c.wt() instanceof fst4j.sparse.Sparsifier.Dense)) parts.add(c.wtFromSparse() ? "S_T(S(W))" : "W^T");
        else if (c.wtFromSparse()) parts.add("W^T = S(W)^T");
        if (!(c.dyEq2() instanceof fst4j.sparse.Sparsifier.Dense)) parts.add("dY (Eq. 2)");
        if (!(c.dyEq3() instanceof fst4j.sparse.Sparsifier.Dense)) parts.add("dY (Eq. 3)");
        if (!(c.xt() instanceof fst4j.sparse.Sparsifier.Dense))
            parts.add("X^T " + (c.xt() instanceof fst4j.sparse.AuthorsFixed24 ? "random fixed" : c.xt() instanceof fst4j.sparse.Sparsifier.Fixed24
                    ? "fixed" : "sorted"));
        String s = parts.isEmpty() ? "-" : String.join(", ", parts);
        if (c.ir() != null) s += c.ir().equals(SparseConfig.Shift.PAPER) ? " + IR" : " + " + c.ir().coeff() + (c.ir().circular() ? " circular" : "") + " shift";
        return s;
    }

    /** The paper's Table 1 (ResNet-18, ImageNet top-1 %): which operand of Eq. 2 and Eq. 3 is pruned. */
    public static List<Row> table1() {
        return List.of(
                new Row("dense", Method.DENSE, "-", "71.2"),
                new Row("WG", Method.WG, "Eq.2 S(W^T) dY; Eq.3 S(dY) X^T", "67.5"),
                new Row("WX", Method.WX, "Eq.2 S(W^T) dY; Eq.3 dY S(X^T)", "69.9"),
                new Row("GG", Method.GG, "Eq.2 W^T S(dY); Eq.3 S(dY) X^T", "0.1"),
                new Row("GX", Method.GX, "Eq.2 W^T S(dY); Eq.3 dY S(X^T)", "0.1"));
    }

    /**
     * The paper's Table 5 ablation (ResNet-18, ImageNet top-1 %), then TSM and the authors' code variant from Table 3.
     * S(W) is SR-STE: the forward weight pruned, with the decay lambda*(W - S(W)), lambda = 2e-4 (Trainer applies it to
     * every method that prunes W, so every row below dense has it).
     */
    public static List<Row> table5() {
        return List.of(
                new Row("dense", Method.DENSE, "-", "71.2"),
                new Row("S(W) (SR-STE)", Method.SR_STE, "W", "71.2"),
                new Row("S(W)+S(W^T) (FST x2)", Method.FST2, "W, W^T", "71.3"),
                new Row("+S(X^T) fixed mask, no IR", Method.FST3, "W, W^T, X^T", "69.4"),
                new Row("+IR (FST x3)", Method.FST3_IR, "W, W^T, X^T + IR", "71.0"),
                new Row("TSM (transposable)", Method.TSM, "W, W^T (one mask)", "70.7 (Table 3)"),
                new Row("authors' code (FST_CODE)", Method.FST_CODE, "W, S_T(S(W)), X^T random fixed + 0.03 shift", "-"));
    }

    /**
     * The paper's Table 3 (ResNet-18, ImageNet top-1 %) as far as this library has its methods: dense, SR-STE, TSM, FST x2,
     * FST x3, meProp, ASP (dense for half of the steps, then pruned and fine-tuned) and ReSprop (dY replaced by the
     * previous step's sample of one image plus its largest differences, fst4j.nn.ReSprop).
     */
    public static List<Row> table3() {
        return List.of(
                new Row("dense", Method.DENSE, "-", "71.2"),
                new Row("SR-STE", Method.SR_STE, "W", "71.2"),
                new Row("TSM (transposable)", Method.TSM, "W, W^T (one mask)", "70.7"),
                new Row("FST x2", Method.FST2, "W, W^T", "71.3"),
                new Row("FST x3", Method.FST3_IR, "W, W^T, X^T + IR", "71.0"),
                new Row("meProp (top half of dY, unstructured)", Method.MEPROP, "dY (Eq. 2, Eq. 3)", "32.5"),
                new Row("ASP (dense, then pruned and fine-tuned)", Method.ASP, "W, mask fixed at half of the steps", "70.7"),
                new Row("ReSprop (dY reused from the last step, 15 % of differences)", Method.RESPROP, "dY - previous sample (Eq. 2, Eq. 3)", "69.8"));
    }

    /**
     * Where the authors' code and the paper's FST x3 part: FST3 and FST3_IR, FST3_IR with one of the authors' three
     * changes at a time ({@link Variant}), and the authors' code with all three.
     */
    public static List<Row> tableIr() {
        return List.of(
                new Row("+S(X^T) fixed mask, no IR", Method.FST3, "W, W^T, X^T", "69.4"),
                new Row("+IR (FST x3)", Method.FST3_IR, "W, W^T, X^T + IR", "71.0"),
                new Row("FST x3, random fixed patterns", Method.FST3_IR, "W, W^T, X^T random fixed + IR", "-", Variant.PATTERNS),
                new Row("FST x3, 0.03 circular shift", Method.FST3_IR, "W, W^T, X^T + 0.03 shift", "-", Variant.SHIFT003),
                new Row("FST x3, S(W^T) from S(W)", Method.FST3_IR, "W, S_T(S(W)), X^T + IR", "-", Variant.WT_FROM_SW),
                new Row("authors' code (FST_CODE)", Method.FST_CODE, "W, S_T(S(W)), X^T random fixed + 0.03 shift", "-"));
    }

    /** One (method with its variants, seed) run. */
    public record Run(Recipe recipe, long seed, double testAcc, double testLoss, double trainLoss, double medianStepMs, long steps, double wallSeconds) {}

    /** A row's runs over the seeds. */
    public record Result(Row row, List<Run> runs) {
        public double[] accuracies() { return runs.stream().mapToDouble(r -> 100 * r.testAcc()).toArray(); }
        public double[] stepMs() { return runs.stream().mapToDouble(Run::medianStepMs).toArray(); }
    }

    /** Trains one model with base's settings (model, batch, lr, ...) but method and seed, for steps steps (one pass). */
    public static Run run(TrainConfig base, TrainData data, Method method, long seed, int steps) {
        return run(base, data, method, seed, steps, 1);
    }

    /**
     * Trains one model with base's settings but method and seed for passes x steps steps: passes passes over the first
     * steps*batch training images, the cosine schedule over all of them. The run's train loss is its last pass's mean.
     */
    public static Run run(TrainConfig base, TrainData data, Method method, long seed, int steps, int passes) {
        return run(base, data, Recipe.of(method), seed, steps, passes);
    }

    /** The training images steps steps of batch need (steps * batch, in long: it may pass 2^31); refused beyond data's. */
    static long checkImages(int steps, int batch, TrainData data) {
        long images = (long) steps * batch;
        if (images > data.train().size())
            throw new IllegalArgumentException(steps + " steps of batch " + batch + " need " + images + " training images; the data has "
                    + data.train().size());
        return images;
    }

    /** {@link #run(TrainConfig, TrainData, Method, long, int, int)} with the recipe's variants on every pruned layer. */
    public static Run run(TrainConfig base, TrainData data, Recipe recipe, long seed, int steps, int passes) {
        return run(base, data, recipe, seed, steps, passes, null);
    }

    /**
     * {@link #run(TrainConfig, TrainData, Recipe, long, int, int)} with the weights pruned at pattern nm (train's --nm,
     * TrainConfig.nm; null or 2:4: as the recipe is): a dense recipe runs as it is, a method that prunes no weight by
     * magnitude is refused with TrainConfig's message.
     */
    public static Run run(TrainConfig base, TrainData data, Recipe recipe, long seed, int steps, int passes, NM nm) {
        if (passes < 1) throw new IllegalArgumentException("passes must be >= 1, got " + passes);
        long images = checkImages(steps, base.batchSize(), data);
        TrainConfig cfg = base.withRecipe(recipe).withSeed(seed).withEpochs(passes).withSubsets((int) images, base.testSubset());
        if (nm != null && !nm.isTwoFour() && recipe.method() != Method.DENSE) cfg = cfg.withNm(nm);
        long t0 = System.nanoTime();
        try (Trainer t = new Trainer(cfg, data)) {
            t.stopOnNonFiniteLoss(false);   // a method that diverges is a result here (Table 1's GG and GX did in the paper)
            List<Double> ms = new ArrayList<>();
            double lossSum = 0;
            long seen = 0;
            while (!t.finished()) {
                lossSum = 0;
                seen = 0;
                while (t.epochHasNext()) {
                    Trainer.StepResult r = t.trainStep();
                    if (r.step() >= Math.min(2, steps - 1)) ms.add(r.nanos() / 1e6);   // the first 2 steps warm up
                    lossSum += r.loss() * r.size();
                    seen += r.size();
                }
                t.endEpoch();
            }
            Trainer.Eval e = t.evaluate();
            return new Run(recipe, seed, e.accuracy(), e.loss(), seen == 0 ? Double.NaN : lossSum / seen, median(ms), t.stepsDone(),
                    (System.nanoTime() - t0) / 1e9);
        }
    }

    public static double mean(double[] v) { return Arrays.stream(v).average().orElse(Double.NaN); }

    /** Sample (n-1) standard deviation; NaN for fewer than 2 values. */
    public static double std(double[] v) {
        if (v.length < 2) return Double.NaN;
        double m = mean(v), q = 0;
        for (double x : v) q += (x - m) * (x - m);
        return Math.sqrt(q / (v.length - 1));
    }

    /** "mean ± std" with the given decimals ("mean ± n/a" for one value). */
    public static String pm(double[] v, int decimals) {
        String f = "%." + decimals + "f";
        double s = std(v);
        return String.format(Locale.ROOT, f, mean(v)) + " ± " + (Double.isNaN(s) ? "n/a" : String.format(Locale.ROOT, f, s));
    }

    /** The Markdown table of results (with a heading line and the settings). */
    public static String markdown(String title, String settings, List<Result> results) {
        StringBuilder sb = new StringBuilder();
        sb.append("### ").append(title).append("\n\n").append(settings).append("\n\n");
        sb.append("| row | method | pruned | test acc % (mean ± std) | ms/step (mean ± std) | seeds | per-seed acc % | paper (R18 ImageNet) |\n");
        sb.append("|-----|--------|--------|-------------------------|----------------------|-------|----------------|----------------------|\n");
        for (Result r : results) {
            double[] acc = r.accuracies();
            StringBuilder per = new StringBuilder();
            for (double a : acc) per.append(per.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%.2f", a));
            sb.append("| ").append(r.row().label().replace("|", "\\|"))
                    .append(" | ").append(r.row().key())
                    .append(" | ").append(r.row().pruned().replace("|", "\\|"))
                    .append(" | ").append(pm(acc, 2))
                    .append(" | ").append(pm(r.stepMs(), 0))
                    .append(" | ").append(acc.length)
                    .append(" | ").append(per)
                    .append(" | ").append(r.row().paper())
                    .append(" |\n");
        }
        return sb.toString();
    }

    /** One line per run, for re-analysis. */
    public static String csv(List<Result> results) {
        StringBuilder sb = new StringBuilder("row,method,seed,test_acc,test_loss,train_loss,median_step_ms,steps,wall_s\n");
        for (Result r : results)
            for (Run x : r.runs())
                sb.append(String.format(Locale.ROOT, "\"%s\",%s,%d,%.6f,%.6f,%.6f,%.3f,%d,%.1f%n", r.row().label(), r.row().key(),
                        x.seed(), x.testAcc(), x.testLoss(), x.trainLoss(), x.medianStepMs(), x.steps(), x.wallSeconds()));
        return sb.toString();
    }

    /**
     * Bar charts of test accuracy and ms/step, mean with +- std error bars: rendered now and added to set, to be written
     * with the table they go with.
     */
    public static void charts(String title, List<Result> results, Path accPng, Path timePng, OutputSet set) throws IOException {
        BarChart acc = new BarChart(title + ": test accuracy", "test accuracy % (mean ± std over seeds)");
        BarChart time = new BarChart(title + ": time per training step", "median ms/step (mean ± std over seeds)");
        for (Result r : results) {
            String name = r.row().key();
            acc.add(name, r.accuracies());
            time.add(name, r.stepMs());
        }
        acc.decimals(1);
        time.decimals(0);
        int w = Math.max(800, 130 * results.size());
        set.png(accPng, acc.render(w, 520)).png(timePng, time.render(w, 520));
    }

    static double median(List<Double> v) {
        if (v.isEmpty()) return Double.NaN;
        double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int n = a.length;
        return n % 2 == 1 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
    }
}
