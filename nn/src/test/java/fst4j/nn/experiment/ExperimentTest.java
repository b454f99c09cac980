package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig;

import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.nn.data.ImageDataset;
import fst4j.nn.train.TrainData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class ExperimentTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    /** 8x8 images, 2 classes: a bright left or right half. */
    static ImageDataset halves(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        byte[] px = new byte[n * 64];
        int[] lb = new int[n];
        for (int i = 0; i < n; i++) {
            lb[i] = r.nextInt(2);
            for (int k = 0; k < 64; k++) px[i * 64 + k] = (byte) ((k % 8 < 4) == (lb[i] == 0) ? 150 + r.nextInt(100) : r.nextInt(60));
        }
        return ImageDataset.ofBytes("halves", px, n, 1, 8, 8, lb, 2);
    }

    static Outcome run(TrainData data, String... args) { return Outcome.of((out, err) -> Main.run(args, out, err, s -> data)); }

    @Test
    void tinyBudgetWritesAWellFormedTableAndCharts(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(200, 1), halves(50, 2)));
        Outcome r = run(data, "table5", "--model", "mlp", "--steps", "5", "--batch", "16", "--seeds", "2", "--methods", "dense,fst2",
                "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        String md = Files.readString(dir.resolve("table5.md"));
        List<String> lines = md.lines().filter(l -> l.startsWith("|")).toList();
        assertEquals(4, lines.size(), md);   // header, separator, 2 rows
        assertTrue(lines.get(0).startsWith("| row | method |") && lines.get(0).contains("test acc % (mean ± std)"), lines.get(0));
        assertTrue(lines.get(1).matches("\\|(-+\\|)+"), lines.get(1));
        int cols = lines.get(0).split("\\|", -1).length;
        for (int i = 2; i < 4; i++) {
            String[] cells = lines.get(i).split("\\|", -1);
            assertEquals(cols, cells.length, lines.get(i));
            assertTrue(cells[4].trim().matches("\\d+\\.\\d\\d ± \\d+\\.\\d\\d"), cells[4]);
            assertTrue(cells[5].trim().matches("\\d+ ± \\d+"), cells[5]);
            assertEquals("2", cells[6].trim());
        }
        assertTrue(lines.get(2).contains("| dense |"));
        assertTrue(lines.get(3).contains("| fst2 |"));
        assertFalse(Files.exists(dir.resolve("table1.md")));
        assertEquals(1 + 4, Files.readAllLines(dir.resolve("table5.csv")).size());
        for (String f : List.of("table5.png", "table5-time.png")) {
            var img = ImageIO.read(dir.resolve(f).toFile());
            assertNotNull(img, f);
            assertTrue(img.getWidth() >= 800);
        }
        assertTrue(r.out().contains("[4/4]"), r.out());
    }

    /**
     * experiment methods trains exactly the recipes given (variants included) as one table; --methods on a fixed table
     * keeps a bare method's rows with any variant, or exactly the row a variant names.
     */
    @Test
    void methodsTableAndVariantFilters(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(120, 1), halves(30, 2)));
        Outcome r = run(data, "methods", "--model", "cnn", "--steps", "2", "--batch", "16", "--seeds", "1",
                "--methods", "dense,fst3_ir+shift0.03", "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        List<String> rows = Files.readString(dir.resolve("methods.md")).lines().filter(l -> l.startsWith("| ")).skip(1).toList();
        assertEquals(2, rows.size(), rows.toString());
        assertTrue(rows.get(0).startsWith("| dense | dense | - |"), rows.get(0));
        assertTrue(rows.get(1).startsWith("| fst3_ir+shift0.03 | fst3_ir+shift0.03 | W, W^T, X^T fixed + 0.03 circular shift |"), rows.get(1));

        Outcome one = run(data, "ir", "--model", "cnn", "--steps", "2", "--batch", "16", "--seeds", "1", "--methods", "fst3_ir+patterns",
                "--out", dir.resolve("ir").toString());
        assertEquals(0, one.rc(), one.err());
        assertTrue(one.out().contains("methods: [fst3_ir+patterns]; 1 runs"), one.out());
        Outcome bad = run(data, "ir", "--methods", "fst3_ir+wt-from-sw+patterns");
        assertEquals(2, bad.rc());
        assertTrue(bad.err().contains("is not a row of table-ir"), bad.err());
        Outcome none = run(data, "methods");
        assertEquals(2, none.rc());
        assertTrue(none.err().contains("needs --methods"), none.err());

        assertEquals("W, W^T, X^T fixed + IR", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.FST3_IR)));
        assertEquals("W, S_T(S(W)), X^T random fixed + 0.03 circular shift", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.FST_CODE)));
        assertEquals("W (transposable), W^T = S(W)^T", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.TSM)));
        assertEquals("W, dY (Eq. 2), dY (Eq. 3)", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.GG)));
        assertEquals("-", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.DENSE)));
        assertEquals("dY (Eq. 2), dY (Eq. 3)", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.MEPROP)));
        assertEquals(List.of("dense", "sr_ste", "tsm", "fst2", "fst3_ir", "meprop", "asp", "resprop"), Experiment.table3().stream().map(Experiment.Row::key).toList());
        assertEquals("dY - previous sample (Eq. 2, Eq. 3)", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.RESPROP)));
        assertEquals("W, mask fixed at half of the steps", Experiment.pruned(SparseConfig.Recipe.of(SparseConfig.Method.ASP)));
    }

    @Test
    void pmAndUsageErrors() {
        assertEquals("2.00 ± 1.00", Experiment.pm(new double[]{1, 2, 3}, 2));
        assertEquals("5.0 ± n/a", Experiment.pm(new double[]{5}, 1));
        TrainData none = null;
        for (String[] a : List.of(new String[]{}, new String[]{"table9"}, new String[]{"table1", "--steps", "0"},
                new String[]{"table1", "--methods", "fst3_ir"}, new String[]{"table5", "--bogus"}, new String[]{"all", "--model", "vgg"})) {
            Outcome r = run(none, a);
            assertEquals(2, r.rc(), String.join(" ", a) + ": " + r.err());
            assertTrue(r.err().startsWith("fst4j experiment: "), r.err());
        }
        Outcome help = run(none, "--help");
        assertEquals(0, help.rc());
        assertTrue(help.out().contains("5% warm-up") && !help.out().contains("%%"), help.out());   // printed as written, no format escapes
    }

    /** --passes N trains N reshuffled passes over the same images: the Trainer's own N-epoch run, step for step. */
    @Test
    void passesRunTheTrainersEpochsOverTheSameImages() {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(200, 1), halves(50, 2)));
        fst4j.nn.train.TrainConfig base = fst4j.nn.train.TrainConfig.defaults(fst4j.autograd.SparseConfig.Method.DENSE)
                .withModel("mlp").withBatchSize(16).withLr(0.1).withSubsets(5 * 16, 0);
        Experiment.Run two = Experiment.run(base, data, fst4j.autograd.SparseConfig.Method.FST2, 3, 5, 2);
        assertEquals(10, two.steps());
        double lastPassLoss = 0;
        try (fst4j.nn.train.Trainer t = new fst4j.nn.train.Trainer(base.withMethod(fst4j.autograd.SparseConfig.Method.FST2).withSeed(3).withEpochs(2), data)) {
            for (int ep = 0; ep < 2; ep++) {
                double sum = 0;
                int seen = 0;
                while (t.epochHasNext()) {
                    fst4j.nn.train.Trainer.StepResult r = t.trainStep();
                    sum += r.loss() * r.size();
                    seen += r.size();
                }
                t.endEpoch();
                lastPassLoss = sum / seen;
            }
            assertEquals(10, t.stepsDone());
            assertEquals(t.evaluate().accuracy(), two.testAcc());
        }
        assertEquals(lastPassLoss, two.trainLoss(), 1e-12);
        Experiment.Run one = Experiment.run(base, data, fst4j.autograd.SparseConfig.Method.FST2, 3, 5, 1);
        assertEquals(5, one.steps());
        assertNotEquals(one.trainLoss(), two.trainLoss());
        Outcome bad = run(data, "table5", "--model", "mlp", "--steps", "5", "--batch", "16", "--passes", "0");
        assertEquals(2, bad.rc(), bad.err());
        assertThrows(IllegalArgumentException.class, () -> Experiment.run(base, data, fst4j.autograd.SparseConfig.Method.DENSE, 0, 5, 0));
    }

    /** Each variant changes exactly its one slot of a pruned layer's configuration, and changes the training. */
    @Test
    void variantsChangeOneSlotOfTheAuthorsCodeAtATime(@TempDir Path dir) throws Exception {
        fst4j.autograd.SparseConfig ir = fst4j.autograd.SparseConfig.Method.FST3_IR.config();
        fst4j.autograd.SparseConfig p = fst4j.autograd.SparseConfig.Variant.PATTERNS.apply(ir, 7), sh = fst4j.autograd.SparseConfig.Variant.SHIFT003.apply(ir, 7),
                wt = fst4j.autograd.SparseConfig.Variant.WT_FROM_SW.apply(ir, 7);
        assertInstanceOf(fst4j.sparse.AuthorsFixed24.class, p.xt());
        assertEquals(ir.withXt(p.xt()), p);
        assertEquals(fst4j.autograd.SparseConfig.Shift.AUTHORS, sh.ir());
        assertEquals(ir.withIr(sh.ir()), sh);
        assertTrue(wt.wtFromSparse() && !ir.wtFromSparse());
        assertEquals(ir.w(), wt.w());
        assertEquals(ir.xt(), wt.xt());
        assertEquals(ir.ir(), wt.ir());

        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(200, 1), halves(50, 2)));
        Outcome r = run(data, "ir", "--model", "mlp", "--steps", "4", "--batch", "16", "--seeds", "1", "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        List<String> csv = Files.readAllLines(dir.resolve("table-ir.csv"));
        assertEquals(1 + 6, csv.size(), String.join("\n", csv));
        // the label (first, quoted) may hold commas: the method is the 8th field from the end
        List<String> keys = csv.stream().skip(1).map(l -> { String[] c = l.split(","); return c[c.length - 8]; }).toList();
        assertEquals(List.of("fst3", "fst3_ir", "fst3_ir+patterns", "fst3_ir+shift0.03", "fst3_ir+wt-from-sw", "fst_code"), keys);
        java.util.Map<String, String> loss = new java.util.HashMap<>();
        for (String l : csv.subList(1, csv.size())) {
            String[] c = l.split(",");
            loss.put(c[c.length - 8], c[c.length - 4]);
        }
        for (String k : List.of("fst3_ir+patterns", "fst3_ir+shift0.03", "fst3_ir+wt-from-sw"))
            assertNotEquals(loss.get("fst3_ir"), loss.get(k), k + " trained exactly as fst3_ir");
        assertTrue(Files.exists(dir.resolve("table-ir.md")) && Files.exists(dir.resolve("table-ir.png")));
    }

    /** Without --steps a run is one pass over the whole training set (200 images at batch 16: 12 steps). */
    @Test
    void theDefaultBudgetIsOnePassOverTheTrainingSet(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(200, 1), halves(50, 2)));
        Outcome r = run(data, "table1", "--model", "mlp", "--batch", "16", "--seeds", "1", "--methods", "dense", "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("12 steps of batch 16 (the first 192 training images, one pass)"), r.out());
        assertTrue(r.out().contains("test accuracy on 50 test images"), r.out());
        List<String> csv = Files.readAllLines(dir.resolve("table1.csv"));
        assertEquals("12", csv.get(1).split(",")[7], csv.get(1));
    }

    /**
     * Tables 2 and 6: every pruned convolution measured (the small CNN prunes two of its three), every row timed, the
     * shares taken of the steps measured in the same run; flags of the training tables are refused.
     */
    @Test
    void table2TimesEveryPruningOfEveryPrunedLayer(@TempDir Path dir) throws Exception {
        PruneCost.Result r = PruneCost.measure("cnn", 2, 1, 0);
        assertEquals(2, r.layers());
        assertEquals(7, r.rows().size());
        for (PruneCost.Row row : r.rows()) assertTrue(row.ms() > 0, row.what());
        assertTrue(r.denseStepMs() > 0 && r.fst3irStepMs() > 0);
        String md = PruneCost.markdown(r);
        assertEquals(7, md.lines().filter(l -> l.startsWith("| S(") || l.startsWith("| im2col") || l.startsWith("| IR") || l.startsWith("| meProp")).count(), md);
        double share = 100 * r.rows().get(0).ms() / r.denseStepMs();
        assertTrue(md.contains(String.format(java.util.Locale.ROOT, "| %.1f %% |", share)), md);

        Outcome ok = run(null, "table2", "--model", "cnn", "--batch", "2", "--rounds", "1", "--out", dir.toString());
        assertEquals(0, ok.rc(), ok.err());
        assertTrue(Files.readString(dir.resolve("table2.md")).contains("FST x3's own overhead"));
        assertEquals(8, Files.readAllLines(dir.resolve("table2.csv")).size());
        for (String[] bad : List.of(new String[]{"table2", "--model", "mlp"}, new String[]{"table2", "--passes", "2"},
                new String[]{"table1", "--rounds", "3"}, new String[]{"table2", "--rounds", "0"})) {
            Outcome u = run(null, bad);
            assertEquals(2, u.rc(), String.join(" ", bad));
            assertTrue(u.err().contains("usage: fst4j experiment"), u.err());
        }
    }

    /** An --out that cannot be a directory fails before the first run (it failed after all of them, at the first write). */
    @Test
    void anUnusableOutFailsBeforeTraining(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(40, 1), halves(10, 2)));
        Path file = Files.writeString(dir.resolve("file"), "x");
        for (String out : List.of(file.toString(), file.resolve("sub").toString())) {
            Outcome r = run(data, "methods", "--methods", "dense", "--model", "mlp", "--steps", "1", "--batch", "16", "--seeds", "1", "--out", out);
            assertEquals(1, r.rc(), r.err());
            assertTrue(r.err().startsWith("fst4j experiment: " + out + ": "), r.err());
            assertFalse(r.out().contains("[1/1]"), "nothing trained: " + r.out());
        }
        Outcome t2 = run(null, "table2", "--model", "cnn", "--batch", "2", "--rounds", "1", "--out", file.toString());
        assertEquals(1, t2.rc(), t2.err());
        assertEquals("", t2.out());
        assertEquals("x", Files.readString(file));
    }

    /**
     * An output in the way (a directory named like one of the files, in any table of the command) fails before any run,
     * one line naming it, and leaves the earlier table as it was: found at the end, every run was lost and a new table
     * stood beside no CSV of its own. table2 likewise, before it measures anything.
     */
    @Test
    void anOutputInTheWayFailsBeforeTraining(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(40, 1), halves(10, 2)));
        for (String[] c : List.of(new String[]{"table5", "table5.csv"}, new String[]{"all", "table3-time.png"}, new String[]{"methods", "methods.png"})) {
            Path out = Files.createDirectories(dir.resolve(c[0]));
            Files.createDirectories(out.resolve(c[1]).resolve("x"));
            Files.writeString(out.resolve(c[0].equals("all") ? "table1.md" : c[0] + ".md"), "an earlier run's table\n");
            var before = Outcome.filesIn(out);
            Outcome r = run(data, c[0], "--methods", "dense", "--model", "mlp", "--steps", "1", "--batch", "16", "--seeds", "1", "--out", out.toString());
            assertFalse(r.out().contains("[1/1]"), "nothing trained: " + r.out());
            assertEquals(before, Outcome.filesIn(out));
            assertEquals(1, r.rc(), r.out() + r.err());
            assertEquals(List.of("fst4j experiment: " + out.resolve(c[1]) + ": is a directory, in the way of the output file"), r.err().lines().toList());
        }
        Path out = Files.createDirectories(dir.resolve("table2"));
        Files.createDirectories(out.resolve("table2.csv/x"));
        Files.writeString(out.resolve("table2.md"), "an earlier run's table\n");
        Outcome t2 = run(null, "table2", "--model", "cnn", "--batch", "2", "--rounds", "1", "--out", out.toString());
        assertEquals("", t2.out(), "nothing measured");
        assertEquals(1, t2.rc(), t2.err());
        assertEquals(List.of("fst4j experiment: " + out.resolve("table2.csv") + ": is a directory, in the way of the output file"), t2.err().lines().toList());
        assertEquals("an earlier run's table\n", Files.readString(out.resolve("table2.md")));
    }

    /**
     * A write that fails after the runs (the CSV's target became a non-empty directory while they trained) leaves the
     * previous table and its charts as they were, and no temporary file: the files are written as a set. Without it the
     * new table5.md and both charts stood beside no CSV of their own.
     */
    @Test
    void aFailedWriteLeavesThePreviousFiles(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(40, 1), halves(10, 2)));
        String[] args = {"table5", "--methods", "dense,fst2", "--model", "mlp", "--steps", "2", "--batch", "16", "--seeds", "1", "--out", dir.toString()};
        assertEquals(0, run(data, args).rc());
        Files.delete(dir.resolve("table5.csv"));
        // the earlier files made unlike what the run writes (at this size a new table, timings included, can be the same text)
        Files.writeString(dir.resolve("table5.md"), "an earlier run's table\n");
        for (String png : List.of("table5.png", "table5-time.png")) Files.write(dir.resolve(png), new byte[]{1, 2, 3});
        var before = Outcome.filesIn(dir);
        assertEquals(List.of("table5-time.png", "table5.md", "table5.png"), List.copyOf(before.keySet()));
        Outcome r = Outcome.whenPrinted("output in", () -> Files.createDirectories(dir.resolve("table5.csv/x")),
                (o, e) -> Main.run(args, o, e, s -> data));
        assertEquals(1, r.rc(), r.err());
        assertTrue(r.out().contains("[2/2]"), "the runs trained, then the write failed: " + r.out());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("table5.csv"), r.err());
        before.put("table5.csv", "a directory");
        assertEquals(before, Outcome.filesIn(dir));
    }

    /**
     * --clip-grad-norm X is train's flag: the same check and message (a finite number >= 0; 0 is off), refused by table2,
     * and every run of the table trains with it: each (method, seed) row is the run Experiment.run makes with the
     * clipping config, which is the Trainer's own clipped run, and not the unclipped one.
     */
    @Test
    void clipGradNormGoesIntoEveryRun(@TempDir Path dir) throws Exception {
        for (String bad : List.of("-1", "abc", "NaN", "Infinity", "1e400")) {
            Outcome r = run(null, "table1", "--clip-grad-norm", bad);
            assertEquals(2, r.rc(), bad + ": " + r.err());
            assertTrue(r.err().startsWith("fst4j experiment: --clip-grad-norm needs a non-negative number, got '" + bad + "'; usage: "), r.err());
            // train says the same of the same values
            Outcome t = Outcome.of((out, err) -> fst4j.nn.train.Main.run(new String[]{"--clip-grad-norm", bad}, out, err));
            assertEquals(2, t.rc(), t.err());
            assertTrue(t.err().contains("--clip-grad-norm needs a non-negative number, got '" + bad + "'"), t.err());
        }
        for (String[] bad : List.of(new String[]{"table1", "--clip-grad-norm"}, new String[]{"table1", "--clip-grad-norm", "1", "--clip-grad-norm", "1"},
                new String[]{"table1", "--clip-grad-norm="}, new String[]{"table2", "--clip-grad-norm", "1"})) {
            Outcome r = run(null, bad);
            assertEquals(2, r.rc(), String.join(" ", bad) + ": " + r.err());
        }
        assertTrue(run(null, "table2", "--clip-grad-norm", "1").err().contains("--clip-grad-norm does not apply to table2"));
        assertTrue(run(null, "--help").out().contains("--clip-grad-norm X"));

        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(200, 1), halves(50, 2)));
        double clip = 0.05;   // below the mlp's gradient norms here: most steps clip
        Outcome r = run(data, "methods", "--model", "mlp", "--steps", "5", "--batch", "16", "--seeds", "2", "--seed0", "4", "--methods", "dense,fst2",
                "--clip-grad-norm", "0.05", "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("SR-STE lambda 2e-4 where the weights are magnitude-pruned, gradient norm clipped to 0.05 before the decay; test accuracy"), r.out());
        assertTrue(Files.readString(dir.resolve("methods.md")).contains("gradient norm clipped to 0.05"));
        fst4j.nn.train.TrainConfig base = fst4j.nn.train.TrainConfig.defaults(SparseConfig.Method.DENSE).withModel("mlp").withBatchSize(16).withLr(0.1)
                .withSubsets(5 * 16, 0);
        List<String> csv = Files.readAllLines(dir.resolve("methods.csv"));
        assertEquals(1 + 4, csv.size(), String.join("\n", csv));
        for (String line : csv.subList(1, csv.size())) {
            String[] c = line.split(",");
            SparseConfig.Recipe recipe = SparseConfig.Recipe.parse(c[c.length - 8]);
            long seed = Long.parseLong(c[c.length - 7]);
            Experiment.Run clipped = Experiment.run(base.withClipGradNorm(clip), data, recipe, seed, 5, 1),
                    plain = Experiment.run(base, data, recipe, seed, 5, 1);
            String got = c[c.length - 6] + "," + c[c.length - 5] + "," + c[c.length - 4];   // test_acc,test_loss,train_loss
            assertEquals(String.format(java.util.Locale.ROOT, "%.6f,%.6f,%.6f", clipped.testAcc(), clipped.testLoss(), clipped.trainLoss()), got, line);
            assertNotEquals(String.format(java.util.Locale.ROOT, "%.6f,%.6f,%.6f", plain.testAcc(), plain.testLoss(), plain.trainLoss()), got,
                    "the run trained without clipping: " + line);
        }
        // Experiment.run's clipped run is the trainer's: clipped where the norm passes 0.05, and training on as the experiments do
        Experiment.Run one = Experiment.run(base.withClipGradNorm(clip), data, SparseConfig.Recipe.of(SparseConfig.Method.FST2), 4, 5, 1);
        try (fst4j.nn.train.Trainer t = new fst4j.nn.train.Trainer(base.withClipGradNorm(clip).withMethod(SparseConfig.Method.FST2).withSeed(4), data)) {
            t.stopOnNonFiniteLoss(false);
            double sum = 0;
            int seen = 0, clippedSteps = 0;
            while (t.epochHasNext()) {
                fst4j.nn.train.Trainer.StepResult s = t.trainStep();
                sum += s.loss() * s.size();
                seen += s.size();
                if (s.gradNorm() > clip) clippedSteps++;
            }
            assertTrue(clippedSteps >= 3, clippedSteps + " of 5 steps clipped");
            assertEquals(sum / seen, one.trainLoss(), 1e-12);
            assertEquals(t.evaluate().accuracy(), one.testAcc());
        }
    }

    /** Too few images for the budget is a usage error (exit 2, the usage line), as train's batch larger than its images is. */
    @Test
    void tooFewImagesForTheBudgetIsAnError() {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(halves(40, 1), halves(10, 2)));
        Outcome r = run(data, "table1", "--model", "mlp", "--steps", "5", "--batch", "16", "--seeds", "1", "--methods", "dense");
        assertEquals(2, r.rc());
        assertTrue(r.err().startsWith("fst4j experiment: 5 steps of batch 16 need 80 training images; the data has 40; usage: fst4j experiment "), r.err());
        assertEquals("", r.out(), "refused before the settings are printed");
        // steps x batch past 2^31: counted in long (in int it wrapped to a negative subset size)
        Outcome big = run(data, "table1", "--model", "mlp", "--steps", "20000000", "--batch", "128", "--seeds", "1", "--methods", "dense");
        assertEquals(new Outcome(2, "", "fst4j experiment: 20000000 steps of batch 128 need 2560000000 training images; the data has 40; "
                + Main.USAGE.substring(0, Main.USAGE.indexOf(" [")) + " [flags] (fst4j experiment --help lists them)" + System.lineSeparator()), big);
        // no --steps and a batch larger than the training set: the same kind of error
        Outcome batch = run(data, "table1", "--model", "mlp", "--batch", "64", "--seeds", "1", "--methods", "dense");
        assertEquals(2, batch.rc(), batch.err());
        assertTrue(batch.err().contains("is smaller than one batch of 64; usage:"), batch.err());
        // a billion seeds ran out of memory listing them
        Outcome seeds = run(data, "table1", "--model", "mlp", "--steps", "1", "--seeds", "1000000000", "--methods", "dense");
        assertEquals(2, seeds.rc());
        assertTrue(seeds.err().startsWith("fst4j experiment: --seeds must be at most 1000, got 1000000000; usage: "), seeds.err());
    }
}
