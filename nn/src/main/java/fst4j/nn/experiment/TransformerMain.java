package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig.Recipe;
import fst4j.nn.analysis.Main.Flags;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.OutputSet;
import fst4j.nn.experiment.TransformerExperiment.Data;
import fst4j.nn.experiment.TransformerExperiment.Result;
import fst4j.nn.experiment.TransformerExperiment.Run;
import fst4j.nn.experiment.TransformerExperiment.Settings;
import fst4j.nn.experiment.TransformerExperiment.Task;
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
 * {@code fst4j experiment transformer}: the command line of {@link TransformerExperiment}. Writes TRANSFORMER.md and
 * TRANSFORMER.csv into --out and prints one line per run. Its flags are its own (no --model, --data, --passes, --nm:
 * the data are generated and the model is Models.tinyTransformer).
 */
final class TransformerMain {
    private TransformerMain() {}

    static final List<Recipe> DEFAULT_METHODS = List.of("dense", "sr_ste", "fst2", "fst3_ir").stream().map(Recipe::parse).toList();

    static final String HELP = """
              transformer        Models.tinyTransformer (2 pre-LN blocks, width 32, 4 heads, FFN 128; the method on the
                                 FFN's Linear layers, attention projections and head dense) on a synthetic sequence
                                 task; rows dense, sr_ste, fst2, fst3_ir unless --methods (any of train's --method
                                 names). AdamW (betas 0.9, 0.999, eps 1e-8; no decay on biases and layer norms),
                                 cosine LR with 5% warm-up, SR-STE lambda 2e-4 where W is pruned, no label smoothing.
                                 Writes TRANSFORMER.md and TRANSFORMER.csv. Its flags:
                --task T         sort (default: its tokens ascending) or reverse (the sequence back to front)
                --vocab N        tokens 0..N-1 (default 32); --len N sequence length (default 16)
                --train-size N   distinct training sequences (default 4096); --test-size N held-out test sequences,
                                 none of them in the training set (default 512); both drawn from --data-seed (default
                                 0), the same for every method and seed
                --steps N        AdamW steps (default 1000); --batch N sequences per step (default 32)
                --lr X           peak learning rate (default 3e-3); --wd X AdamW weight decay (default 0.01)
                --seeds N, --seed0 N, --methods a,b, --threads N, --out DIR as for the tables; a run's seed draws
                                 its weights and batch order
            """;

    static int run(String[] args, PrintStream out) throws UsageException, IOException {
        Map<String, String> v = Flags.parse(args, List.of(), List.of("--task", "--vocab", "--len", "--train-size", "--test-size", "--data-seed",
                "--steps", "--batch", "--lr", "--wd", "--seeds", "--seed0", "--methods", "--threads", "--out"), UsageException::new);
        Settings d = Settings.defaults();
        Task task;
        try {
            task = v.containsKey("--task") ? Task.parse(v.get("--task")) : d.task();
        } catch (IllegalArgumentException e) {
            throw new UsageException("--task: " + e.getMessage());
        }
        int vocab = Flags.posInt(v, "--vocab", d.vocab(), UsageException::new), len = Flags.posInt(v, "--len", d.len(), UsageException::new);
        int trainSize = Flags.posInt(v, "--train-size", d.trainSize(), UsageException::new), testSize = Flags.posInt(v, "--test-size", d.testSize(), UsageException::new);
        long dataSeed = Flags.longOf(v, "--data-seed", d.dataSeed(), UsageException::new);
        int steps = Flags.posInt(v, "--steps", d.steps(), UsageException::new), batch = Flags.posInt(v, "--batch", d.batch(), UsageException::new);
        double lr = Flags.posDouble(v, "--lr", d.lr(), UsageException::new), wd = Flags.nonNegDouble(v, "--wd", d.weightDecay(), UsageException::new);
        int nSeeds = Flags.posInt(v, "--seeds", 3, UsageException::new);
        if (nSeeds > Main.MAX_SEEDS) throw new UsageException("--seeds must be at most " + Main.MAX_SEEDS + ", got " + nSeeds);
        long seed0 = Flags.longOf(v, "--seed0", 0, UsageException::new);
        Settings s;
        try {
            s = d.withTask(task).withSizes(vocab, len, trainSize, testSize).withDataSeed(dataSeed).withTraining(steps, batch, lr, wd);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        boolean given = v.containsKey("--methods");
        List<Recipe> methods = given ? Main.methodsFlag(v, Recipe::parse, Recipe::key, "") : DEFAULT_METHODS;
        if (given && methods.isEmpty()) throw new UsageException("--methods names no method");
        if (v.containsKey("--threads")) Blas.setThreads(Flags.posInt(v, "--threads", 1, UsageException::new));
        Path dir = Path.of(v.getOrDefault("--out", "runs/experiment"));
        Files.createDirectories(dir);   // before the training, as the tables: a file in the way fails now, not after every run
        Path mdFile = dir.resolve("TRANSFORMER.md"), csvFile = dir.resolve("TRANSFORMER.csv");
        OutputSet.checkWritable(mdFile, csvFile);   // and so must the outputs themselves (a directory of that name): found after every run, all were lost

        Data data = TransformerExperiment.generate(s);
        long[] seeds = new long[nSeeds];
        for (int i = 0; i < nSeeds; i++) seeds[i] = seed0 + i;
        String settings = String.format(Locale.ROOT, "task %s: %d training and %d test sequences (distinct; no test sequence is a training one) of"
                        + " length %d over %d tokens, data seed %d; Models.tinyTransformer (%d blocks, width %d, %d heads, FFN %d, pre-LN, not causal);"
                        + " %d AdamW steps of batch %d, lr %s cosine with 5%% warm-up, weight decay %s (not on biases and layer norms), SR-STE lambda 2e-4"
                        + " where W is pruned; seeds %s; %d thread(s). Final train loss: mean over the last %d steps; ms/step: median over a run's"
                        + " steps after the first 2; chance token accuracy (most frequent target per position) %.2f %%.",
                task.key(), s.trainSize(), s.testSize(), s.len(), s.vocab(), s.dataSeed(), s.layers(), s.dim(), s.heads(), s.ff(), s.steps(), s.batch(),
                fmt(s.lr()), fmt(s.weightDecay()), Arrays.toString(seeds), Blas.threads(), Math.min(s.steps(), TransformerExperiment.LOSS_WINDOW),
                100 * TransformerExperiment.chanceTokenAcc(data, s.vocab()));
        out.println("fst4j experiment transformer: " + settings);
        out.println("methods: " + methods.stream().map(Recipe::key).toList() + "; " + methods.size() * nSeeds + " runs; output in " + dir);

        List<Result> results = new ArrayList<>();
        long t0 = System.nanoTime();
        int total = methods.size() * nSeeds, done = 0;
        for (Recipe m : methods) {
            List<Run> rs = new ArrayList<>();
            for (long seed : seeds) {
                Run r = TransformerExperiment.run(s, data, m, seed);
                rs.add(r);
                done++;
                double el = (System.nanoTime() - t0) / 1e9;
                out.printf(Locale.ROOT, "[%d/%d] %-9s seed %d: train loss %.4f, test token acc %.2f%%, sequence acc %.2f%%, %.1f ms/step, %.1f s"
                                + " (elapsed %.0f s, ETA %.0f s)%n", done, total, m.key(), seed, r.trainLoss(), 100 * r.tokenAcc(), 100 * r.seqAcc(),
                        r.medianStepMs(), r.wallSeconds(), el, el / done * (total - done));
            }
            results.add(new Result(m, rs));
        }
        String md = TransformerExperiment.markdown(settings, notes(s, methods), results);
        out.println();
        out.print(md);
        // both or neither: a failed write leaves the previous pair (another run's) as it was
        new OutputSet().text(csvFile, TransformerExperiment.csv(task, results)).text(mdFile, md).write();
        out.printf(Locale.ROOT, "%nwall time %.0f s; wrote %s (.csv)%n", (System.nanoTime() - t0) / 1e9, mdFile);
        return 0;
    }

    /** What the runs prune, read off the model they build, and what a pruned X^T means on a Linear's token columns. */
    static String notes(Settings s, List<Recipe> methods) {
        StringBuilder sb = new StringBuilder();
        for (Recipe m : methods)
            if (m.method() != fst4j.autograd.SparseConfig.Method.DENSE) {
                sb.append("- Layers by configuration (").append(m.key()).append("): ").append(TransformerExperiment.layerNote(s, m))
                        .append(". The method goes to the FFN's two Linear layers of each block (their W, and what the method prunes"
                                + " in their Eq. 2 and 3); attention's in/out projections, the embeddings, layer norms and the head stay dense.\n");
                break;
            }
        if (sb.isEmpty()) sb.append("- Every row is dense: nothing is pruned (a pruning method would go to the FFN's two Linear layers of each block).\n");
        if (methods.stream().anyMatch(TransformerExperiment::prunesXt))
            sb.append("- A Linear flattens [B, T] into the Eq. 1-3 node's B*T columns (one per token of the batch), so a pruned X^T in Eq. 3 has its 2:4"
                    + " groups along the flattened tokens, 4 consecutive tokens of a batch.");
        if (methods.stream().anyMatch(TransformerExperiment::fixedEq7)) {
            sb.append(" The fixed Eq. 7 mask (fst3, fst3_ir) keeps the even columns: with T = ").append(s.len()).append(s.len() % 2 == 0
                    ? " (even) the tokens at even positions of every sequence, and fst3_ir's IR (coefficient 1, not circular, the whole batch one"
                      + " segment) adds to each kept token's dY the next token's, of the same sequence."
                    : " (odd) the parity alternates between sequences, and fst3_ir's IR (coefficient 1, not circular, the whole batch one"
                      + " segment) adds to the last token of every other sequence the next sequence's first token's dY.")
                    .append(" A token stands in for a conv's neighbouring pixel; that it trains here does not make it a sound choice for sequences.");
        }
        return sb.append(sb.isEmpty() || sb.charAt(sb.length() - 1) == '\n' ? "" : "\n").toString();
    }

    /** A flag's value as given, without trailing zeros (3e-3 prints 0.003). */
    private static String fmt(double x) { return new java.math.BigDecimal(Double.toString(x)).stripTrailingZeros().toPlainString(); }
}
