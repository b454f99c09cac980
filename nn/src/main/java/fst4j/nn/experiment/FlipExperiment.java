package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.nn.FlipRate;
import fst4j.nn.plot.LineChart;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.nn.train.Trainer;
import fst4j.sparse.NM;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The masks' flip rate through training ({@link FlipRate}; SR-STE's paper, Zhou et al. 2021, Sec. 4 and Fig. 3), method
 * against method: every run trains as the tables' runs do ({@link Experiment#run}: the config's model, batch, schedule
 * and data, steps per pass over the first steps * batch training images, passes, a seed) and reads the pruned layers'
 * masks after every optimizer step. The paper's comparison is SR-STE's decay against the plain straight-through
 * estimator: the same S(W) forward and the same gradient, with lambda 2e-4 and with 0.
 */
public final class FlipExperiment {
    private FlipExperiment() {}

    /** SR-STE's decay of the pruned weights in its paper and in fst4j's trainer. */
    public static final double SRSTE_LAMBDA = 2e-4;

    /**
     * A row: its name, the method with its variants, and SR-STE's decay lambda of the pruned weights (0: the plain
     * straight-through estimator). {@value #STE} is sr_ste at lambda 0; any of train's method names is itself at 2e-4.
     */
    public record Row(String key, Recipe recipe, double lambda) {
        /** The name of the plain straight-through estimator: sr_ste (S(W) forward, dense backward) without the decay. */
        public static final String STE = "ste";

        public Row {
            if (key == null || recipe == null) throw new IllegalArgumentException("a flip-rate row needs a name and a method");
            if (!(lambda >= 0) || lambda == Double.POSITIVE_INFINITY) throw new IllegalArgumentException("lambda must be finite and >= 0, got " + lambda);
        }

        /** "ste", or one of train's method names ("sr_ste", "fst3_ir+patterns") at lambda 2e-4. */
        public static Row parse(String s) {
            String k = s.trim().toLowerCase(Locale.ROOT);
            if (k.equals(STE)) return new Row(STE, Recipe.of(Method.SR_STE), 0);
            Recipe r = Recipe.parse(s);
            return new Row(r.key(), r, SRSTE_LAMBDA);
        }

        /** What the row prunes and how its pruned weights decay, for the table. */
        public String describe() {
            return Experiment.pruned(recipe) + (lambda == 0 && recipe.method() == Method.SR_STE ? " (plain STE: no decay)" : "");
        }
    }

    /** The default rows: SR-STE (lambda 2e-4), the plain STE (lambda 0) and FST x3 (fst3_ir, lambda 2e-4). */
    public static List<Row> defaults() {
        return List.of(Row.parse("sr_ste"), Row.parse(Row.STE), Row.parse("fst3_ir"));
    }

    /**
     * One run: its row and seed, per optimizer step (0-based index) the epoch (1-based), loss, flips, weights with a rate
     * and the model's rate (NaN where no layer had one: a method without a pruned W, ASP until the step after its pruning),
     * the pruned layers' names and weights, and the test accuracy after training.
     */
    public record Run(Row row, long seed, int[] epoch, double[] loss, long[] flips, long[] weights, double[] rate, List<String> layers,
                      long prunedWeights, double testAcc, double wallSeconds) {
        public int steps() { return rate.length; }

        /** The mean of the finite rates of steps [from, to); NaN where none is. */
        public double meanRate(int from, int to) {
            double s = 0;
            int n = 0;
            for (int i = Math.max(0, from); i < Math.min(to, rate.length); i++) if (Double.isFinite(rate[i])) { s += rate[i]; n++; }
            return n == 0 ? Double.NaN : s / n;
        }
    }

    /**
     * Trains row at seed for passes x steps steps with base's settings, as {@link Experiment#run} does (the cosine schedule
     * over all of them, the first steps * batch training images, a diverging run trained on), reading the masks' flips
     * after every step; nm prunes the weights N:M (null or 2:4: as the method is).
     */
    public static Run run(TrainConfig base, TrainData data, Row row, long seed, int steps, int passes, NM nm) {
        if (passes < 1) throw new IllegalArgumentException("passes must be >= 1, got " + passes);
        long images = Experiment.checkImages(steps, base.batchSize(), data);
        TrainConfig cfg = base.withRecipe(row.recipe()).withSrSteLambda(row.lambda()).withSeed(seed).withEpochs(passes)
                .withSubsets((int) images, base.testSubset());
        if (nm != null && !nm.isTwoFour() && row.recipe().method() != Method.DENSE) cfg = cfg.withNm(nm);
        long t0 = System.nanoTime();
        try (Trainer t = new Trainer(cfg, data)) {
            t.stopOnNonFiniteLoss(false);   // a diverging method is a result here, as in the tables
            t.measureFlipRate(true);
            List<String> layers = List.of();
            long pruned = 0;
            int n = Math.toIntExact(t.totalSteps());
            int[] epoch = new int[n];
            double[] loss = new double[n], rate = new double[n];
            long[] flips = new long[n], weights = new long[n];
            int i = 0;
            while (!t.finished()) {
                while (t.epochHasNext()) {
                    Trainer.StepResult r = t.trainStep();
                    FlipRate.Step f = r.flips();
                    epoch[i] = r.epoch() + 1;
                    loss[i] = r.loss();
                    flips[i] = f.flips();
                    weights[i] = f.weights();
                    rate[i] = f.rate();
                    if (f.layers().size() > layers.size()) {   // every pruned layer with a rate (ASP's appear after its pruning)
                        layers = f.layers().stream().map(FlipRate.Layer::name).toList();
                        pruned = f.weights();
                    }
                    i++;
                }
                t.endEpoch();
            }
            Trainer.Eval e = t.evaluate();
            return new Run(row, seed, Arrays.copyOf(epoch, i), Arrays.copyOf(loss, i), Arrays.copyOf(flips, i), Arrays.copyOf(weights, i),
                    Arrays.copyOf(rate, i), layers, pruned, e.accuracy(), (System.nanoTime() - t0) / 1e9);
        }
    }

    /** One line per run and step: method,seed,step (1-based),epoch,loss,flips,weights,flip_rate (empty where none). */
    public static String csv(List<Run> runs) {
        StringBuilder sb = new StringBuilder("method,seed,step,epoch,loss,flips,weights,flip_rate\n");
        for (Run r : runs)
            for (int i = 0; i < r.steps(); i++)
                sb.append(String.format(Locale.ROOT, "%s,%d,%d,%d,%.6f,%d,%d,%s%n", r.row().key(), r.seed(), i + 1, r.epoch()[i], r.loss()[i],
                        r.flips()[i], r.weights()[i], Double.isFinite(r.rate()[i]) ? String.format(Locale.ROOT, "%.6g", r.rate()[i]) : ""));
        return sb.toString();
    }

    /** The runs by row, in the order the rows first appear. */
    static Map<Row, List<Run>> byRow(List<Run> runs) {
        Map<Row, List<Run>> out = new LinkedHashMap<>();
        for (Run r : runs) out.computeIfAbsent(r.row(), k -> new ArrayList<>()).add(r);
        return out;
    }

    /**
     * The Markdown table: per row the pruned layers and weights, the flip rate over the first tenth of the steps, the
     * last tenth and the whole run (mean ± sample std over the seeds of each run's mean per step), and the test accuracy.
     */
    public static String markdown(String settings, List<Run> runs) {
        StringBuilder sb = new StringBuilder("### Mask flip rate (SR-STE's Sec. 4, Fig. 3)\n\n").append(settings).append("\n\n");
        sb.append("| method | pruned | SR-STE lambda | pruned layers (weights) | flip rate, first 10 % of steps | last 10 % | whole run | test acc % | seeds |\n");
        sb.append("|--------|--------|---------------|-------------------------|--------------------------------|-----------|-----------|------------|-------|\n");
        for (var e : byRow(runs).entrySet()) {
            List<Run> rs = e.getValue();
            int n = rs.get(0).steps(), tenth = Math.max(1, n / 10);
            Run first = rs.get(0);
            sb.append("| ").append(e.getKey().key())
                    .append(" | ").append(e.getKey().describe().replace("|", "\\|"))
                    .append(" | ").append(lambda(e.getKey()))
                    .append(" | ").append(first.layers().isEmpty() ? "none" : first.layers().size() + " (" + first.prunedWeights() + ")")
                    .append(" | ").append(pm(rs.stream().mapToDouble(r -> r.meanRate(0, tenth)).toArray()))
                    .append(" | ").append(pm(rs.stream().mapToDouble(r -> r.meanRate(n - tenth, n)).toArray()))
                    .append(" | ").append(pm(rs.stream().mapToDouble(r -> r.meanRate(0, n)).toArray()))
                    .append(" | ").append(Experiment.pm(rs.stream().mapToDouble(r -> 100 * r.testAcc()).toArray(), 2))
                    .append(" | ").append(rs.size())
                    .append(" |\n");
        }
        return sb.toString();
    }

    /** The row's decay lambda as the table shows it: "-" where the method decays no weight (nothing pruned by magnitude, ASP). */
    static String lambda(Row row) {
        boolean decays = row.recipe().apply(row.recipe().method().config(), 0).decaysPruned() && row.recipe().method() != Method.ASP;
        return !decays ? "-" : row.lambda() == 0 ? "0" : String.format(Locale.ROOT, "%.0e", row.lambda());
    }

    /** "mean ± std" in three significant digits; "-" where no run has a rate (no pruned layer). */
    static String pm(double[] v) {
        if (Arrays.stream(v).anyMatch(x -> !Double.isFinite(x))) return "-";
        double s = Experiment.std(v);
        return String.format(Locale.ROOT, "%.3g", Experiment.mean(v)) + " ± " + (Double.isNaN(s) ? "n/a" : String.format(Locale.ROOT, "%.2g", s));
    }

    /**
     * SR-STE's Fig. 3 here: the flip rate per step of every row, the mean over its seeds, as a trailing moving average over
     * window steps, on a log axis (a step with rate 0 breaks the line there); rows without a rate are left out.
     */
    public static LineChart chart(String title, List<Run> runs, int window) {
        LineChart c = new LineChart(title, "optimizer step", "flip rate, mean over seeds, moving average of " + window + " step" + (window == 1 ? "" : "s"));
        for (var e : byRow(runs).entrySet()) {
            int n = e.getValue().stream().mapToInt(Run::steps).min().orElse(0);
            double[] x = new double[n], y = new double[n];
            boolean any = false;
            for (int i = 0; i < n; i++) {
                x[i] = i + 1;
                double s = 0;
                int k = 0;
                for (Run r : e.getValue()) if (Double.isFinite(r.rate()[i])) { s += r.rate()[i]; k++; }
                y[i] = k == 0 ? Double.NaN : s / k;
                any |= k > 0;
            }
            if (any) c.add(e.getKey().key(), x, smooth(y, window));
        }
        return c.logY(true);
    }

    /** Trailing moving average over window points, skipping NaN (NaN where the whole window is). */
    static double[] smooth(double[] y, int window) {
        double[] o = new double[y.length];
        for (int i = 0; i < y.length; i++) {
            double s = 0;
            int k = 0;
            for (int j = Math.max(0, i - window + 1); j <= i; j++) if (Double.isFinite(y[j])) { s += y[j]; k++; }
            o[i] = k == 0 ? Double.NaN : s / k;
        }
        return o;
    }
}
