package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.nn.analysis.Main.Flags;
import fst4j.nn.cli.Cli;
import fst4j.nn.cli.Cli.DataSource;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.OutputSet;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code fst4j experiment table1|table3|table5|all|ir|methods|table2}: the paper's Table 1 (which operand to prune),
 * Table 5 (FST ablation, plus TSM and the authors' code variant) and Table 3's rows this library has, at small scale,
 * several seeds per row; see {@link Experiment}. Writes TABLE.md (Markdown table), TABLE.png (test accuracy bars with
 * +- std), TABLE-time.png (ms/step) and TABLE.csv (one line per run) into --out. {@code all} runs the union of tables 1,
 * 5 and 3 once (shared methods trained once) and writes all three; {@code ir} writes table-ir: FST x3 against the
 * authors' code, one of its changes at a time ({@link Experiment#tableIr()}); {@code methods} the recipes given by
 * --methods; {@code table2} times the prunings per iteration ({@link PruneCost}) without training; {@code transformer}
 * trains the tiny transformer on a synthetic sequence task ({@link TransformerMain}); {@code flip} the masks' flip rate
 * through training, SR-STE against the plain STE and FST x3 ({@link FlipMain}). Exit status: 0 done, 1 failure, 2 usage
 * error.
 */
public final class Main {
    private Main() {}

    static final String USAGE = "usage: fst4j experiment table1|table3|table5|all|ir|table2|methods|transformer|flip [--steps N] [--passes N] [--seeds N] [--seed0 N] [--batch N] [--lr X]"
            + " [--model M] [--data D] [--test-subset N] [--methods a,b,...] [--clip-grad-norm X] [--nm N:M] [--rounds N] [--threads N] [--out DIR]"
            + " [transformer: --task reverse|sort --vocab N --len N --train-size N --test-size N --data-seed N --wd X]";

    static final String HELP = """
            fst4j experiment: the paper's Tables 1, 3 and 5 at small scale, any methods, and Tables 2 and 6 (pruning cost).
              table1             dense, WG, WX, GG, GX (which operand of Eq. 2 / Eq. 3 is pruned)
              table5             dense, S(W) = sr_ste (with SR-STE decay), fst2, fst3 (fixed X^T mask, no IR), fst3_ir,
                                 plus tsm and fst_code
              table3             dense, sr_ste, tsm, fst2, fst3_ir, meprop, asp and resprop (Table 3's rows)
              all                tables 1, 5 and 3, each method trained once (dense and the rest shared)
              ir                 fst3, fst3_ir, fst3_ir with one of the authors' code's changes at a time (random fixed
                                 patterns, 0.03 circular shift, S(W^T) from S(W)), and fst_code
              methods            the methods given by --methods (any of train's --method names, variants too,
                                 e.g. dense,fst3_ir,fst3_ir+patterns), as one table
              table2             what pruning costs per training iteration (Tables 2 and 6): S(W), S(W^T), Table 1's
                                 S(dY) and S(X^T), FST x3's shift, against the DENSE and FST3_IR steps; no training,
                                 no data (random images); --model (default resnet18), --batch (default 32), --rounds
                                 (default 7), --threads, --out
              --steps N          training steps per pass over the first N*batch training images (default: all of the
                                 training set); cosine LR over all the steps with 5% warm-up
              --passes N         passes over those images (default 1), reshuffled each time: N * steps steps in all
              --seeds N          seeds per method (default 3, at most 1000): seed0, seed0+1, ...
              --seed0 N          first seed (default 0)
              --batch N          batch size (default 128); --lr X peak learning rate (default 0.1)
              --model M          resnet-small (default), mlp, cnn, resnet18
              --data D           fashion-mnist (default), mnist:DIR, cifar10:DIR
              --test-subset N    evaluate on the first N test images (default 0: all)
              --methods a,b      only these rows of the table (a method name keeps its rows with any variant;
                                 fst3_ir+patterns keeps that row only); experiment methods: the rows
              --clip-grad-norm X clip the gradients' total L2 norm to X after the backward pass, before SR-STE's
                                 decay, in every run (train's flag: torch.nn.utils.clip_grad_norm_; default 0: off);
                                 a run whose norm is NaN or infinite trains on with torch's NaN gradients, as a
                                 diverging method does here
              --nm N:M           prune the weights (S(W), S(W^T)) N:M by magnitude instead of 2:4 in every run
                                 (train's flag, 1 <= N < M <= 32; default 2:4): dense runs unchanged beside the
                                 pattern; refused where a row's method prunes no weight by magnitude (tsm, meprop,
                                 asp, resprop: table3 and table5 need --methods to leave them out)
              --threads N        native kernel threads (default: all cores)
              --out DIR          output directory (default runs/experiment)
            """ + TransformerMain.HELP + FlipMain.HELP;

    /** The most --seeds (runs per method) an experiment takes. */
    static final int MAX_SEEDS = 1000;

    private static final Cli.Command COMMAND = new Cli.Command("experiment", HELP, USAGE, List.of());

    public static void main(String[] args) { System.exit(run(args, System.out, System.err)); }

    public static int run(String[] args, PrintStream out, PrintStream err) { return run(args, out, err, TrainData::load); }

    static int run(String[] args, PrintStream out, PrintStream err, DataSource source) {
        return COMMAND.run(args, out, err, () -> {
            if (args.length == 0) throw new UsageException("which table? (table1, table3, table5, all, ir, table2, methods, transformer or flip)");
            String which = args[0].toLowerCase(Locale.ROOT);
            if (!List.of("table1", "table3", "table5", "all", "ir", "table2", "methods", "transformer", "flip").contains(which))
                throw new UsageException("unknown experiment '" + args[0] + "'");
            // its own flags (no image data, no model choice): parsed apart, so a table's flag is refused there and the other way round
            if (which.equals("transformer")) return TransformerMain.run(Arrays.copyOfRange(args, 1, args.length), out);
            if (which.equals("flip")) return FlipMain.run(Arrays.copyOfRange(args, 1, args.length), out, source);
            Map<String, String> v = Flags.parse(Arrays.copyOfRange(args, 1, args.length), List.of(),
                    List.of("--steps", "--passes", "--seeds", "--seed0", "--batch", "--lr", "--model", "--data", "--test-subset", "--methods", "--rounds",
                            "--threads", "--out", "--clip-grad-norm", "--nm"), UsageException::new);
            if (which.equals("table2")) return table2(v, out);
            if (v.containsKey("--rounds")) throw new UsageException("--rounds is table2's");
            return execute(which, v, out, source);
        });
    }

    /** Whether --methods' r keeps row: a bare method keeps its rows with any variant, a method with variants exactly that row. */
    private static boolean selects(Recipe r, Experiment.Row row) {
        return r.variants().isEmpty() ? r.method() == row.method() : r.equals(row.recipe());
    }

    /** Tables 2 and 6: the pruning costs per iteration ({@link PruneCost}); trains nothing, reads no data. */
    static int table2(Map<String, String> v, PrintStream out) throws UsageException, IOException {
        for (String f : List.of("--steps", "--passes", "--seeds", "--seed0", "--lr", "--data", "--test-subset", "--methods", "--clip-grad-norm", "--nm"))
            if (v.containsKey(f)) throw new UsageException(f + " does not apply to table2");
        String model = v.getOrDefault("--model", "resnet18").toLowerCase(Locale.ROOT);
        int batch = Flags.posInt(v, "--batch", 32, UsageException::new), rounds = Flags.posInt(v, "--rounds", 7, UsageException::new);
        try {
            PruneCost.inputOf(model);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        if (v.containsKey("--threads")) Blas.setThreads(Flags.posInt(v, "--threads", 1, UsageException::new));
        Path dir = Path.of(v.getOrDefault("--out", "runs/experiment"));
        Files.createDirectories(dir);   // before the measuring: an --out that cannot be a directory fails now, not after it
        Path mdFile = dir.resolve("table2.md"), csvFile = dir.resolve("table2.csv");
        OutputSet.checkWritable(mdFile, csvFile);   // and so must the two files (a directory of that name)
        out.printf(Locale.ROOT, "fst4j experiment table2: %s, batch %d, %d round(s) per pruning and step, %d thread(s); output in %s%n", model, batch,
                rounds, Blas.threads(), dir);
        PruneCost.Result r = PruneCost.measure(model, batch, rounds, 0);
        String md = PruneCost.markdown(r);
        out.println();
        out.print(md);
        new OutputSet().text(csvFile, PruneCost.csv(r)).text(mdFile, md).write();   // both or neither, as the tables
        out.println("wrote " + mdFile + " (.csv)");
        return 0;
    }

    /** The run flags the tables and experiment flip share, checked in this order, with the tables' defaults. */
    record RunFlags(int passes, int seeds, long seed0, int batch, double lr, int testSubset) {
        static RunFlags parse(Map<String, String> v) throws UsageException {
            int passes = Flags.posInt(v, "--passes", 1, UsageException::new);
            int seeds = Flags.posInt(v, "--seeds", 3, UsageException::new);
            // each seed is a run per method; a billion of them ran out of memory listing the seeds (an OutOfMemoryError, not a message)
            if (seeds > MAX_SEEDS) throw new UsageException("--seeds must be at most " + MAX_SEEDS + ", got " + seeds);
            long seed0 = Flags.longOf(v, "--seed0", 0, UsageException::new);
            int batch = Flags.posInt(v, "--batch", 128, UsageException::new);
            double lr = Flags.posDouble(v, "--lr", 0.1, UsageException::new);
            int testSubset = Flags.nonNegInt(v, "--test-subset", 0, UsageException::new);
            return new RunFlags(passes, seeds, seed0, batch, lr, testSubset);
        }
    }

    /**
     * --methods a,b,...: each name parsed by parse (its IllegalArgumentException a usage error, with hint appended), blank
     * names skipped, a method given twice (the same key) refused. Empty where the flag is absent or names nothing: each
     * command decides what that means (its defaults, or an error).
     */
    static <T> List<T> methodsFlag(Map<String, String> v, java.util.function.Function<String, T> parse,
                                   java.util.function.Function<T, String> key, String hint) throws UsageException {
        List<T> out = new ArrayList<>();
        if (!v.containsKey("--methods")) return out;
        for (String s : v.get("--methods").split(",")) {
            if (s.isBlank()) continue;
            T r;
            try {
                r = parse.apply(s);
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage() + hint);
            }
            if (out.stream().anyMatch(x -> key.apply(x).equals(key.apply(r)))) throw new UsageException("method " + key.apply(r) + " given twice");
            out.add(r);
        }
        return out;
    }

    /** --nm as train parses it (the same message), or null when not given. */
    static NM nmFlag(Map<String, String> v) throws UsageException {
        if (!v.containsKey("--nm")) return null;
        try {
            return NM.parse(v.get("--nm"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--nm: " + e.getMessage());
        }
    }

    /** --model, lower-cased, one of the models the experiments train (default resnet-small). */
    static String modelFlag(Map<String, String> v) throws UsageException {
        String model = v.getOrDefault("--model", "resnet-small").toLowerCase(Locale.ROOT);
        if (!List.of("mlp", "cnn", "small-cnn", "resnet-small", "resnet18", "resnet18-imagenet").contains(model))
            throw new UsageException("unknown model '" + model + "'");
        return model;
    }

    static int execute(String which, Map<String, String> v, PrintStream out, DataSource source) throws UsageException, IOException {
        // Defaults: one pass over the whole training set (Fashion-MNIST at batch 128: 468 steps), scored on the whole test
        // set; `all` (11 methods x 3 seeds, before meProp joined in session 29) took 949 s on the 2-core Zen 5 of session 27. Until session 26 they were 50
        // steps on 2,000 test images, chosen when a step took 0.6-2 s.
        int stepsGiven = v.containsKey("--steps") ? Flags.posInt(v, "--steps", 1, UsageException::new) : 0;   // 0: one pass over all images
        RunFlags run = RunFlags.parse(v);
        int passes = run.passes(), nSeeds = run.seeds(), batch = run.batch(), testSubset = run.testSubset();
        long seed0 = run.seed0();
        double lr = run.lr();
        // train's --clip-grad-norm: the same check and message (a finite number >= 0; 0 is off)
        double clip = Flags.nonNegDouble(v, "--clip-grad-norm", 0, UsageException::new);
        // train's --nm: checked against the rows below, once they are known
        NM nm = nmFlag(v);
        String model = modelFlag(v);
        if (v.containsKey("--threads")) Blas.setThreads(Flags.posInt(v, "--threads", 1, UsageException::new));

        List<Recipe> keep = methodsFlag(v, Recipe::parse, Recipe::key, "");
        Map<String, List<Experiment.Row>> tables = new LinkedHashMap<>();
        if (which.equals("methods")) {
            if (keep.isEmpty()) throw new UsageException("experiment methods needs --methods a,b,... (any of train's --method names)");
            tables.put("methods", keep.stream().map(r -> new Experiment.Row(r.key(), r.method(), Experiment.pruned(r), "-", r.variants())).toList());
        } else {
            if (which.equals("ir")) tables.put("table-ir", Experiment.tableIr());
            else if (which.equals("table3")) tables.put("table3", Experiment.table3());
            else {
                if (!which.equals("table5")) tables.put("table1", Experiment.table1());
                if (!which.equals("table1")) tables.put("table5", Experiment.table5());
                if (which.equals("all")) tables.put("table3", Experiment.table3());
            }
            if (!keep.isEmpty()) {
                for (Recipe r : keep)
                    if (tables.values().stream().flatMap(List::stream).noneMatch(row -> selects(r, row)))
                        throw new UsageException("method " + r.key() + " is not a row of " + String.join(" or ", tables.keySet()));
                tables.replaceAll((k, rows) -> rows.stream().filter(row -> keep.stream().anyMatch(r -> selects(r, row))).toList());
            }
        }
        Map<String, Experiment.Row> methods = new LinkedHashMap<>();   // by key: each method (and variant) trained once
        for (List<Experiment.Row> rows : tables.values()) for (Experiment.Row r : rows) methods.putIfAbsent(r.key(), r);
        if (nm != null && !nm.isTwoFour())   // before any data is read or run trained: a fixed table's row that cannot take it
            for (Experiment.Row r : methods.values()) {
                String why = r.method() == Method.DENSE ? null : r.method().whyNoPattern();
                if (why != null)
                    throw new UsageException("--nm " + nm + " has no meaning for " + r.key() + (which.equals("methods") ? "" : " (a row of "
                            + String.join(" and ", tables.entrySet().stream().filter(e -> e.getValue().stream().anyMatch(x -> x.key().equals(r.key()))).map(Map.Entry::getKey).toList())
                            + "; --methods keeps the rows that take a pattern)") + ": " + why);
            }
        long[] seeds = new long[nSeeds];
        for (int i = 0; i < nSeeds; i++) seeds[i] = seed0 + i;

        String dataSpec = v.getOrDefault("--data", "fashion-mnist");
        TrainData data = source.load(dataSpec);
        int steps = stepsGiven > 0 ? stepsGiven : data.train().size() / batch;
        if (steps < 1) throw new UsageException("the training set (" + data.train().size() + " images) is smaller than one batch of " + batch);
        // before the steps * batch below: in int it wrapped (--steps 20000000 --batch 128 said "subset sizes must be >= 0");
        // a budget the data cannot fill is the command line's fault, a usage error as train's batch larger than its images
        try {
            Experiment.checkImages(steps, batch, data);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        // every run's config is base's with its method and seed (Experiment.run): the clipping goes into each of them
        TrainConfig base = TrainConfig.defaults(Method.DENSE).withModel(model).withBatchSize(batch).withLr(lr).withSubsets(steps * batch, testSubset)
                .withClipGradNorm(clip);
        Path dir = Path.of(v.getOrDefault("--out", "runs/experiment"));
        // the tables come with their charts: where none can be drawn, say so before the training, not after it
        String noCharts = fst4j.nn.plot.Plots.why();
        if (noCharts != null) throw new IOException("the tables' charts cannot be drawn: " + noCharts + "; run with a full JDK 25 (./fst4j picks one)");
        // before the training: an --out that cannot be a directory (a file in the way) failed after every run, losing them all
        Files.createDirectories(dir);
        // and so must every output itself (a directory named table5.csv, a read-only file): found at the end, every run was lost
        List<Path> outputs = new ArrayList<>();
        for (String k : tables.keySet()) for (String ext : List.of(".md", ".csv", ".png", "-time.png")) outputs.add(dir.resolve(k + ext));
        OutputSet.checkWritable(outputs.toArray(Path[]::new));
        int testN = testSubset > 0 ? Math.min(testSubset, data.test().size()) : data.test().size();
        String settings = String.format(Locale.ROOT, "%s on %s, %s of batch %d (the first %d training images, %s), lr %s cosine with"
                        + " 5%% warm-up, SGD momentum 0.9, wd 5e-4, label smoothing 0.1, SR-STE lambda 2e-4 where the weights are"
                        + " magnitude-pruned%s; test accuracy on %d test images; seeds %s; %d thread(s). ms/step: median over a run's steps"
                        + " after the first 2" + (steps < 3 ? " (with " + steps + " step" + (steps == 1 ? "" : "s") + " a run: its last step only)" : "") + ".",
                model, data.spec(), (long) passes * steps + " steps", batch, steps * batch,
                passes == 1 ? "one pass" : passes + " passes, reshuffled each time", lr,
                (base.clipsGradients() ? ", gradient norm clipped to " + new java.math.BigDecimal(Double.toString(clip)).stripTrailingZeros().toPlainString()
                        + " before the decay" : "") + (nm != null && !nm.isTwoFour() ? ", weights pruned " + nm + " by magnitude (dense as it is)" : ""), testN, Arrays.toString(seeds), Blas.threads());
        out.println("fst4j experiment " + which + ": " + settings);
        out.println("methods: " + List.copyOf(methods.keySet()) + "; " + methods.size() * nSeeds
                + " runs; output in " + dir);

        Map<String, List<Experiment.Run>> runs = new LinkedHashMap<>();
        long t0 = System.nanoTime();
        int total = methods.size() * nSeeds, done = 0;
        for (Experiment.Row m : methods.values()) {
            List<Experiment.Run> rs = new ArrayList<>();
            for (long s : seeds) {
                Experiment.Run r = Experiment.run(base, data, m.recipe(), s, steps, passes, nm);
                rs.add(r);
                done++;
                double el = (System.nanoTime() - t0) / 1e9;
                out.printf(Locale.ROOT, "[%d/%d] %-9s seed %d: test acc %.2f%%, train loss %.4f, %.0f ms/step, %.1f s (elapsed %.0f s, ETA %.0f s)%n",
                        done, total, m.key(), s, 100 * r.testAcc(), r.trainLoss(), r.medianStepMs(), r.wallSeconds(),
                        el, el / done * (total - done));
            }
            runs.put(m.key(), rs);
        }
        // every table's files as one set, written once all are made: a failed write leaves the previous set (an earlier
        // run's tables, CSVs and charts) as it was, never a new table beside an old CSV
        OutputSet files = new OutputSet();
        for (var e : tables.entrySet()) {
            List<Experiment.Result> res = e.getValue().stream().map(r -> new Experiment.Result(r, runs.get(r.key()))).toList();
            String title = switch (e.getKey()) {
                case "table1" -> "Table 1 (which operand to prune)";
                case "table5" -> "Table 5 (FST ablation) + TSM, authors' code";
                case "methods" -> "Methods given by --methods";
                case "table3" -> "Table 3 (from scratch), the rows implemented";
                default -> "FST x3 against the authors' code (one change at a time)";
            };
            String md = Experiment.markdown(title, settings, res);
            out.println();
            out.print(md);
            // the charts first and the table last: the set is moved in this order, so a table in place is always the set's last file
            Experiment.charts(title.replaceAll(" \\(.*", "") + ", " + model + " " + (long) passes * steps + " steps, " + nSeeds + " seed(s)", res,
                    dir.resolve(e.getKey() + ".png"), dir.resolve(e.getKey() + "-time.png"), files);
            files.text(dir.resolve(e.getKey() + ".csv"), Experiment.csv(res)).text(dir.resolve(e.getKey() + ".md"), md);
        }
        files.write();
        out.printf(Locale.ROOT, "%nwall time %.0f s; wrote %s%n", (System.nanoTime() - t0) / 1e9,
                String.join(", ", tables.keySet().stream().map(k -> dir.resolve(k + ".md") + " (.csv, .png, -time.png)").toList()));
        return 0;
    }
}
