package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.autograd.Var;
import fst4j.nn.Linear;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.nn.experiment.TransformerExperiment.Data;
import fst4j.nn.experiment.TransformerExperiment.Run;
import fst4j.nn.experiment.TransformerExperiment.Settings;
import fst4j.nn.experiment.TransformerExperiment.Task;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** {@code fst4j experiment transformer}: its files and table, determinism, learning, the held-out split, usage errors. */
class TransformerExperimentTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    static Outcome run(String... args) { return Outcome.of((out, err) -> Main.run(args, out, err, s -> { throw new AssertionError("no image data"); })); }

    static final String[] TINY = {"transformer", "--vocab", "6", "--len", "4", "--train-size", "64", "--test-size", "16", "--steps", "3", "--batch", "8"};

    static String[] tiny(String... more) {
        String[] a = Arrays.copyOf(TINY, TINY.length + more.length);
        System.arraycopy(more, 0, a, TINY.length, more.length);
        return a;
    }

    /** The table's cells are the CSV's runs summarised: each method's mean ± std recomputed from the CSV appears in its row. */
    @Test
    void tinyRunWritesTheTableAndACsvThatAgree(@TempDir Path dir) throws Exception {
        Outcome r = run(tiny("--seeds", "2", "--methods", "dense,fst2", "--out", dir.toString()));
        assertEquals(0, r.rc(), r.err());
        assertEquals("", r.err());
        assertTrue(r.out().contains("[1/4] dense") && r.out().contains("[4/4] fst2"), r.out());
        String md = Files.readString(dir.resolve("TRANSFORMER.md"));
        List<String> lines = md.lines().filter(l -> l.startsWith("|")).toList();
        assertEquals(4, lines.size(), md);   // header, separator, 2 rows
        assertTrue(lines.get(0).startsWith("| method | pruned (FFN Linear layers) | final train loss"), lines.get(0));
        assertTrue(lines.get(1).matches("\\|(-+\\|)+"), lines.get(1));
        assertTrue(md.contains("fst2: block0.linear1, block0.linear2, block1.linear1, block1.linear2"), md);
        assertTrue(md.contains("dense: block0.self_attn.in_proj, block0.self_attn.out_proj"), md);

        List<String> csv = Files.readAllLines(dir.resolve("TRANSFORMER.csv"));
        assertEquals("task,method,seed,train_loss,test_token_acc,test_seq_acc,median_step_ms,steps,wall_s", csv.get(0));
        assertEquals(1 + 4, csv.size(), String.join("\n", csv));
        Map<String, List<String[]>> byMethod = new LinkedHashMap<>();
        for (String l : csv.subList(1, csv.size())) byMethod.computeIfAbsent(l.split(",")[1], k -> new ArrayList<>()).add(l.split(","));
        assertEquals(List.of("dense", "fst2"), List.copyOf(byMethod.keySet()));
        int cols = lines.get(0).split("\\|", -1).length, row = 2;
        for (var e : byMethod.entrySet()) {
            String[] cells = lines.get(row++).split("\\|", -1);
            assertEquals(cols, cells.length);
            assertEquals(e.getKey(), cells[1].trim());
            List<String[]> runs = e.getValue();
            assertEquals(List.of("sort", "sort"), runs.stream().map(c -> c[0]).toList());   // the default task
            assertEquals(List.of("0", "1"), runs.stream().map(c -> c[2]).toList());
            assertEquals(List.of("3", "3"), runs.stream().map(c -> c[7]).toList());
            assertEquals(Experiment.pm(col(runs, 3, 1), 4), cells[3].trim());
            assertEquals(Experiment.pm(col(runs, 4, 100), 2), cells[4].trim());
            assertEquals(Experiment.pm(col(runs, 5, 100), 2), cells[5].trim());
            assertEquals(Experiment.pm(col(runs, 6, 1), 1), cells[6].trim());
            assertEquals("2", cells[7].trim());
            assertEquals(String.format(Locale.ROOT, "%.2f, %.2f", 100 * Double.parseDouble(runs.get(0)[4]), 100 * Double.parseDouble(runs.get(1)[4])),
                    cells[8].trim());
        }
    }

    /**
     * The CSV carries the numbers the table summarises in full: a loss of 1.234449996 and 12.34951 ms/step, written
     * rounded (6 and 3 decimals), read back as 1.2345 and 12.4 where the table says 1.2344 and 12.3.
     */
    @Test
    void theCsvReadsBackAsTheTablesCells() {
        List<TransformerExperiment.Result> res = List.of(new TransformerExperiment.Result(Recipe.of(Method.DENSE),
                List.of(new Run(Recipe.of(Method.DENSE), 0, 1.234449996, 0.4399499, 0.123456, 12.34951, 10, 1.0))));
        String md = TransformerExperiment.markdown("settings", "notes", res);
        String[] cells = md.lines().filter(l -> l.startsWith("| dense")).findFirst().orElseThrow().split("\\|", -1);
        List<String[]> runs = TransformerExperiment.csv(Task.SORT, res).lines().skip(1).map(l -> l.split(",")).toList();
        assertEquals("1.2344 ± n/a", cells[3].trim());
        assertEquals(Experiment.pm(col(runs, 3, 1), 4), cells[3].trim());
        assertEquals(Experiment.pm(col(runs, 4, 100), 2), cells[4].trim());
        assertEquals(Experiment.pm(col(runs, 5, 100), 2), cells[5].trim());
        assertEquals(Experiment.pm(col(runs, 6, 1), 1), cells[6].trim());
        assertEquals(String.format(Locale.ROOT, "%.2f", 100 * Double.parseDouble(runs.get(0)[4])), cells[8].trim());
    }

    /**
     * An output that cannot be written (a directory named TRANSFORMER.csv) fails before any run, and leaves the table
     * already there as it was: found at the end, every run was lost and a new TRANSFORMER.md stood beside no CSV of its own.
     */
    @Test
    void anOutputInTheWayFailsBeforeTraining(@TempDir Path dir) throws Exception {
        Files.createDirectories(dir.resolve("TRANSFORMER.csv/x"));
        Files.writeString(dir.resolve("TRANSFORMER.md"), "an earlier run's table\n");
        Outcome r = run(tiny("--seeds", "1", "--methods", "dense", "--out", dir.toString()));
        assertEquals(1, r.rc(), r.out());
        assertFalse(r.out().contains("[1/1]"), r.out());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("TRANSFORMER.csv"), r.err());
        assertEquals("an earlier run's table\n", Files.readString(dir.resolve("TRANSFORMER.md")));
        // a run with nothing in the way replaces both and leaves no temporary file behind
        Files.delete(dir.resolve("TRANSFORMER.csv/x"));
        Files.delete(dir.resolve("TRANSFORMER.csv"));
        assertEquals(0, run(tiny("--seeds", "1", "--methods", "dense", "--out", dir.toString())).rc());
        try (var files = Files.list(dir)) {
            assertEquals(List.of("TRANSFORMER.csv", "TRANSFORMER.md"), files.map(p -> p.getFileName().toString()).sorted().toList());
        }
        assertTrue(Files.readString(dir.resolve("TRANSFORMER.md")).startsWith("### Tiny transformer"));
    }

    private static double[] col(List<String[]> runs, int i, double scale) { return runs.stream().mapToDouble(c -> scale * Double.parseDouble(c[i])).toArray(); }

    /** The same command twice gives the same CSV but for the timings; another seed0 changes the runs. */
    @Test
    void theSameSeedGivesTheSameNumbers(@TempDir Path dir) throws Exception {
        for (String sub : List.of("a", "b", "c")) {
            Outcome r = run(tiny("--seeds", "1", "--methods", "sr_ste,fst3_ir", "--task", "sort", "--seed0", sub.equals("c") ? "1" : "0",
                    "--out", dir.resolve(sub).toString()));
            assertEquals(0, r.rc(), r.err());
        }
        List<String> a = untimed(dir.resolve("a")), b = untimed(dir.resolve("b")), c = untimed(dir.resolve("c"));
        assertEquals(a, b);
        assertNotEquals(a.get(1), c.get(1));
        // and bit for bit through the API, every number of the run
        Settings s = Settings.defaults().withSizes(6, 4, 64, 16).withTraining(6, 8, 3e-3, 0.01);
        Data d = TransformerExperiment.generate(s);
        for (Recipe m : List.of(Recipe.of(Method.FST2), Recipe.parse("fst3_ir+patterns"), Recipe.of(Method.ASP), Recipe.of(Method.RESPROP))) {
            Run x = TransformerExperiment.run(s, d, m, 5), y = TransformerExperiment.run(s, d, m, 5);
            assertEquals(Double.doubleToRawLongBits(x.trainLoss()), Double.doubleToRawLongBits(y.trainLoss()), m.key());
            assertEquals(x.tokenAcc(), y.tokenAcc(), m.key());
            assertEquals(x.seqAcc(), y.seqAcc(), m.key());
        }
    }

    /**
     * The same bits at 1 and 2 native threads (as the trainer's runs: the kernels split work, not sums), and no off-heap
     * memory left behind by a run or by one that fails (its test labels out of range).
     */
    @Test
    void threadCountsGiveTheSameBitsAndRunsFreeTheirMemory() {
        Settings s = Settings.defaults().withSizes(6, 4, 64, 16).withTraining(6, 8, 3e-3, 0.01);
        Data d = TransformerExperiment.generate(s);
        for (Recipe m : List.of(Recipe.of(Method.SR_STE), Recipe.of(Method.FST3_IR), Recipe.of(Method.ASP), Recipe.of(Method.RESPROP))) {
            long before = fst4j.tensor.Memory.bytesInUse();
            fst4j.tensor.Blas.setThreads(1);
            Run x = TransformerExperiment.run(s, d, m, 5);
            assertEquals(before, fst4j.tensor.Memory.bytesInUse(), m.key());
            fst4j.tensor.Blas.setThreads(2);
            Run y = TransformerExperiment.run(s, d, m, 5);
            assertEquals(Double.doubleToRawLongBits(x.trainLoss()), Double.doubleToRawLongBits(y.trainLoss()), m.key());
            assertEquals(x.tokenAcc(), y.tokenAcc(), m.key());
            assertEquals(x.seqAcc(), y.seqAcc(), m.key());
        }
        long before = fst4j.tensor.Memory.bytesInUse();
        int[] bad = d.trainY().clone();
        bad[5] = 99;
        assertThrows(IllegalArgumentException.class, () -> TransformerExperiment.run(s, new Data(4, d.trainX(), bad, d.testX(), d.testY()), Recipe.of(Method.FST2), 1));
        assertEquals(before, fst4j.tensor.Memory.bytesInUse());
    }

    private static List<String> untimed(Path dir) throws Exception {
        return Files.readAllLines(dir.resolve("TRANSFORMER.csv")).stream().map(l -> {
            String[] c = l.split(",");
            return String.join(",", Arrays.copyOfRange(c, 0, 6)) + "," + c[7];
        }).toList();
    }

    /**
     * A pruning method learns: TinyTransformerTrainingTest's bar (its model size, vocabulary 8, length 6, batch 32, 300
     * AdamW steps at 3e-3; accuracy above 0.6 against chance 0.125, the loss below half of its start), here on held-out
     * sequences never trained on.
     */
    @Test
    void fst2LearnsToReverseHeldOutSequences() {
        Settings s = Settings.defaults().withTask(Task.REVERSE).withSizes(8, 6, 2048, 256).withModel(32, 4, 64, 2).withTraining(300, 32, 3e-3, 0);
        Data d = TransformerExperiment.generate(s);
        Run r = TransformerExperiment.run(s, d, Recipe.of(Method.FST2), 0);
        System.out.printf(Locale.ROOT, "experiment transformer fst2: train loss %.4f, token acc %.3f, sequence acc %.3f%n", r.trainLoss(), r.tokenAcc(), r.seqAcc());
        assertTrue(r.tokenAcc() > 0.6, "token accuracy " + r.tokenAcc() + " (chance " + TransformerExperiment.chanceTokenAcc(d, 8) + ")");
        assertTrue(r.trainLoss() < 0.5 * Math.log(8), "final train loss " + r.trainLoss());
        assertTrue(r.seqAcc() > 0.1, "sequence accuracy " + r.seqAcc());
    }

    /** Training and test sequences are distinct and disjoint, and the targets are the task's. */
    @Test
    void theSplitIsHeldOutAndTheTargetsAreTheTasks() {
        for (Task task : Task.values()) {
            // 2 tokens of length 10: 1024 sequences, 300 + 200 of them drawn, so repeats are common and must be drawn again
            Settings s = Settings.defaults().withTask(task).withSizes(2, 10, 300, 200).withDataSeed(3);
            Data d = TransformerExperiment.generate(s);
            assertEquals(300, d.trainSize());
            assertEquals(200, d.testSize());
            Set<String> train = new HashSet<>();
            for (int i = 0; i < 300; i++) assertTrue(train.add(Arrays.toString(Arrays.copyOfRange(d.trainX(), i * 10, i * 10 + 10))), "a repeated training sequence");
            Set<String> test = new HashSet<>();
            for (int i = 0; i < 200; i++) {
                int[] x = Arrays.copyOfRange(d.testX(), i * 10, i * 10 + 10), y = Arrays.copyOfRange(d.testY(), i * 10, i * 10 + 10);
                assertTrue(test.add(Arrays.toString(x)), "a repeated test sequence");
                assertFalse(train.contains(Arrays.toString(x)), "test sequence " + i + " is a training sequence");
                int[] want = x.clone();
                if (task == Task.SORT) Arrays.sort(want);
                else for (int t = 0; t < 10; t++) want[t] = x[9 - t];
                assertArrayEquals(want, y);
            }
            for (int i = 0; i < 300; i++) {
                int[] x = Arrays.copyOfRange(d.trainX(), i * 10, i * 10 + 10), y = Arrays.copyOfRange(d.trainY(), i * 10, i * 10 + 10);
                if (task == Task.SORT) { Arrays.sort(x); assertArrayEquals(x, y); } else assertEquals(x[0], y[9]);
            }
            assertArrayEquals(d.testX(), TransformerExperiment.generate(s).testX(), "the data seed fixes the data");
        }
    }

    /**
     * What the table's note says of a pruned X^T on a Linear: the node's columns are the flattened tokens, FST3's fixed
     * mask keeps the even ones in Eq. 3, and FST3_IR adds the next token's dY to a kept one.
     */
    @Test
    void theFixedXtMaskOnALinearKeepsEvenTokensAndIrAddsTheNext() {
        int rows = 8, in = 4;
        for (int r = 0; r < rows; r++) {
            // x nonzero in row r only, dY = 1 in row r only (loss = sum of y's row r): dense dW = outer(1, x_r) != 0
            assertEquals(r % 2 == 0, weightGradNorm(Method.FST3, r, r) > 0, "fst3, token " + r);
            assertTrue(weightGradNorm(Method.DENSE, r, r) > 0);
        }
        for (int r = 0; r + 1 < rows; r++) {
            // x in row r, dY in row r+1 only: dense dW is 0; IR brings row r+1's dY to row r where r is kept
            assertEquals(0, weightGradNorm(Method.DENSE, r, r + 1));
            assertEquals(r % 2 == 0, weightGradNorm(Method.FST3_IR, r, r + 1) > 0, "fst3_ir, token " + r);
        }
    }

    private static double weightGradNorm(Method m, int xRow, int dyRow) {
        int rows = 8, in = 4, out = 4;
        try (Linear l = new Linear(in, out, false, m.config(), new Rng(1)); Scope s = Scope.open()) {
            float[] x = new float[rows * in], sel = new float[rows * out];
            for (int k = 0; k < in; k++) x[xRow * in + k] = 1 + k;
            for (int k = 0; k < out; k++) sel[dyRow * out + k] = 1;
            l.forward(Var.of(Tensor.of(x, 2, rows / 2, in))).mul(Var.of(Tensor.of(sel, 2, rows / 2, out))).sum().backward();
            double q = 0;
            for (float g : l.weight().grad().toFloatArray()) q += g * g;
            return q;
        }
    }

    @Test
    void badFlagsAreOneLineUsageErrors() {
        Map<String[], String> bad = new LinkedHashMap<>();
        bad.put(new String[]{"transformer", "--task", "x"}, "--task: unknown task 'x' (reverse or sort)");
        bad.put(new String[]{"transformer", "--steps", "0"}, "--steps needs a positive integer, got '0'");
        bad.put(new String[]{"transformer", "--methods", "dense,bogus"}, "unknown sparsity method 'bogus'");
        bad.put(new String[]{"transformer", "--methods", "dense,dense"}, "method dense given twice");
        bad.put(new String[]{"transformer", "--methods", "fst2+patterns"}, "variant 'patterns' does not apply to fst2");
        bad.put(new String[]{"transformer", "--model", "mlp"}, "unknown flag --model");
        bad.put(new String[]{"transformer", "--len", "1"}, "--len must be in [2, 1024], got 1");
        bad.put(new String[]{"transformer", "--vocab", "2", "--len", "3"}, "more than half of the 8 distinct sequences");
        bad.put(new String[]{"transformer", "--train-size", "16", "--batch", "32"}, "--batch 32 is larger than the 16 training sequences");
        bad.put(new String[]{"transformer", "--seeds", "1001"}, "--seeds must be at most 1000");
        // 200,000,000 x 16 tokens wrapped an int to a negative array size
        bad.put(new String[]{"transformer", "--train-size", "200000000"}, "--train-size 200000000 or --test-size 512 times --len 16 is more than");
        bad.put(new String[]{"transformer", "--lr", "-1"}, "--lr");
        bad.put(new String[]{"transformer", "extra"}, "unexpected argument 'extra'");
        for (var e : bad.entrySet()) {
            Outcome r = run(e.getKey());
            String cmd = String.join(" ", e.getKey());
            assertEquals(2, r.rc(), cmd + ": " + r.err());
            assertEquals("", r.out(), cmd);
            assertTrue(r.err().startsWith("fst4j experiment: ") && r.err().contains(e.getValue()) && r.err().contains("; usage: fst4j experiment"), cmd + ": " + r.err());
            assertEquals(1, r.err().lines().count(), cmd + ": " + r.err());
        }
        Outcome help = run("--help");
        assertEquals(0, help.rc());
        assertTrue(help.out().contains("transformer        Models.tinyTransformer") && help.out().contains("--task T") && help.out().contains("|transformer"), help.out());
        assertTrue(run("transformer", "--help").out().contains("--train-size N"));
    }

    /** Every recipe's name reads as train's; the fixed table's default rows are the brief's four. */
    @Test
    void defaultRows() {
        assertEquals(List.of("dense", "sr_ste", "fst2", "fst3_ir"), TransformerMain.DEFAULT_METHODS.stream().map(Recipe::key).toList());
        assertTrue(TransformerExperiment.prunesXt(Recipe.of(Method.FST3_IR)) && !TransformerExperiment.prunesXt(Recipe.of(Method.FST2)));
        assertEquals("fst3_ir", SparseConfig.Method.FST3_IR.config().name());
    }
}
