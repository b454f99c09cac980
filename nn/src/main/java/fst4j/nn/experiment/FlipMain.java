package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.analysis.Main.Flags;
import fst4j.nn.cli.Cli.DataSource;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.OutputSet;
import fst4j.nn.experiment.FlipExperiment.Row;
import fst4j.nn.experiment.FlipExperiment.Run;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.sparse.NM;
import fst4j.tensor.Blas;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code fst4j experiment flip}: the command line of {@link FlipExperiment}. Writes flip.csv (every run's flip rate per
 * step), flip.md (the table) and, where charts can be drawn, flip.png (SR-STE's Fig. 3: the rate per step, one line per
 * method) into --out. The tables' flags where they apply, with a shorter default budget.
 */
final class FlipMain {
    private FlipMain() {}

    /** Default optimizer steps of a run: the first 25,600 Fashion-MNIST images at batch 128, one pass. */
    static final int DEFAULT_STEPS = 200;

    static final String HELP = """
              flip               the mask flip rate through training (Zhou et al. 2021, SR-STE, Sec. 4 and Fig. 3:
                                 changed mask entries / weights after every optimizer step, over the layers whose W
                                 is pruned; the dense first convolution and classifier are not counted): sr_ste
                                 (decay 2e-4), ste (the plain straight-through estimator: sr_ste with decay 0) and
                                 fst3_ir unless --methods (ste, or any of train's --method names at decay 2e-4). The
                                 tables' runs (--model, --data, --batch, --lr, --passes, --seeds, --seed0,
                                 --test-subset, --nm, --threads, --out) but --steps defaults to 200 (the first
                                 25,600 training images). Writes flip.csv (method, seed, step, epoch, loss, flips,
                                 weights, flip_rate; flip_rate empty where no weight is pruned: dense, ASP before
                                 its pruning step), flip.md and flip.png (mean over seeds, moving average, log axis)
            """;

    static int run(String[] args, PrintStream out, DataSource source) throws UsageException, IOException {
        Map<String, String> v = Flags.parse(args, List.of(), List.of("--steps", "--passes", "--seeds", "--seed0", "--batch", "--lr", "--model",
                "--data", "--test-subset", "--methods", "--nm", "--threads", "--out"), UsageException::new);
        int steps = Flags.posInt(v, "--steps", DEFAULT_STEPS, UsageException::new);
        Main.RunFlags run = Main.RunFlags.parse(v);
        int passes = run.passes(), nSeeds = run.seeds(), batch = run.batch(), testSubset = run.testSubset();
        long seed0 = run.seed0();
        double lr = run.lr();
        NM nm = Main.nmFlag(v);
        String model = Main.modelFlag(v);
        boolean given = v.containsKey("--methods");
        List<Row> rows = given ? Main.methodsFlag(v, Row::parse, Row::key, " (or " + Row.STE + ", the plain straight-through estimator)")
                : FlipExperiment.defaults();
        if (given && rows.isEmpty()) throw new UsageException("--methods names no method");
        if (nm != null && !nm.isTwoFour())   // before any data is read: a row that cannot take the pattern
            for (Row r : rows) {
                String why = r.recipe().method() == Method.DENSE ? null : r.recipe().method().whyNoPattern();
                if (why != null) throw new UsageException("--nm " + nm + " has no meaning for " + r.key() + ": " + why);
            }
        if (v.containsKey("--threads")) Blas.setThreads(Flags.posInt(v, "--threads", 1, UsageException::new));
        Path dir = Path.of(v.getOrDefault("--out", "runs/experiment"));
        Files.createDirectories(dir);   // before the training, as the tables: a file in the way fails now, not after every run
        Path csvFile = dir.resolve("flip.csv"), mdFile = dir.resolve("flip.md"), pngFile = dir.resolve("flip.png");
        String noChart = fst4j.nn.plot.Plots.why();
        if (noChart == null) OutputSet.checkWritable(csvFile, mdFile, pngFile);
        else OutputSet.checkWritable(csvFile, mdFile);

        TrainData data = source.load(v.getOrDefault("--data", "fashion-mnist"));
        try {
            Experiment.checkImages(steps, batch, data);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        TrainConfig base = TrainConfig.defaults(Method.DENSE).withModel(model).withBatchSize(batch).withLr(lr).withSubsets(steps * batch, testSubset);
        long[] seeds = new long[nSeeds];
        for (int i = 0; i < nSeeds; i++) seeds[i] = seed0 + i;
        int testN = testSubset > 0 ? Math.min(testSubset, data.test().size()) : data.test().size();
        String settings = String.format(Locale.ROOT, "%s on %s, %d steps of batch %d (the first %d training images, %s), lr %s cosine with 5%% warm-up,"
                        + " SGD momentum 0.9, wd 5e-4, label smoothing 0.1%s; the flip rate after every optimizer step over the layers whose W is pruned"
                        + " (the models' dense first layer and classifier not counted); test accuracy on %d test images; seeds %s; %d thread(s).",
                model, data.spec(), (long) passes * steps, batch, steps * batch, passes == 1 ? "one pass" : passes + " passes, reshuffled each time",
                new java.math.BigDecimal(Double.toString(lr)).stripTrailingZeros().toPlainString(),
                nm != null && !nm.isTwoFour() ? ", weights pruned " + nm + " by magnitude" : "", testN, Arrays.toString(seeds), Blas.threads());
        out.println("fst4j experiment flip: " + settings);
        out.println("methods: " + rows.stream().map(Row::key).toList() + "; " + rows.size() * nSeeds + " runs; output in " + dir);

        List<Run> runs = new ArrayList<>();
        long t0 = System.nanoTime();
        int total = rows.size() * nSeeds, done = 0;
        for (Row row : rows)
            for (long seed : seeds) {
                Run r = FlipExperiment.run(base, data, row, seed, steps, passes, nm);
                runs.add(r);
                done++;
                double el = (System.nanoTime() - t0) / 1e9;
                int n = r.steps(), tenth = Math.max(1, n / 10);
                out.printf(Locale.ROOT, "[%d/%d] %-9s seed %d: flip rate %s over the first tenth of the steps, %s over the last, test acc %.2f%%, %.1f s"
                                + " (elapsed %.0f s, ETA %.0f s)%n", done, total, row.key(), seed, g(r.meanRate(0, tenth)), g(r.meanRate(n - tenth, n)),
                        100 * r.testAcc(), r.wallSeconds(), el, el / done * (total - done));
            }
        String md = FlipExperiment.markdown(settings, runs);
        out.println();
        out.print(md);
        // the chart first and the table last, as the tables' sets: a failed write leaves the previous set as it was
        OutputSet files = new OutputSet();
        int window = Math.max(1, Math.min(25, passes * steps / 20));
        if (noChart == null)
            files.png(pngFile, FlipExperiment.chart("Mask flip rate per step (SR-STE Fig. 3), " + model + ", " + nSeeds + " seed(s)", runs, window).render(900, 540));
        files.text(csvFile, FlipExperiment.csv(runs)).text(mdFile, md).write();
        out.printf(Locale.ROOT, "%nwall time %.0f s; wrote %s, %s%s%n", (System.nanoTime() - t0) / 1e9, csvFile, mdFile,
                noChart == null ? ", " + pngFile : " (flip.png skipped: " + noChart + "; flip.csv holds the curves)");
        return 0;
    }

    private static String g(double x) { return Double.isFinite(x) ? String.format(Locale.ROOT, "%.3g", x) : "-"; }
}
