package fst4j.nn.train;

import fst4j.autograd.SparseConfig;

import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Cli.DataSource;
import fst4j.nn.cli.Outcome;
import fst4j.nn.data.DatasetNotFoundException;
import fst4j.nn.data.Datasets;
import fst4j.nn.data.Idx;
import fst4j.nn.io.SafeTensors;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

public class MainTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.restored();

    static Outcome main(DataSource src, String... args) { return Outcome.of((out, err) -> Main.run(args, out, err, src)); }

    static final DataSource NO_DATA = s -> { throw new AssertionError("no data should be loaded"); };

    @Test
    void badFlagsGiveOneLineUsageErrors() {
        for (String[] args : List.of(new String[]{"--bogus"}, new String[]{"--epochs", "zero"}, new String[]{"--epochs", "0"},
                new String[]{"--batch"}, new String[]{"--method", "dense,nope"}, new String[]{"--model", "vgg"},
                new String[]{"stray"}, new String[]{"--lr", "-1"}, new String[]{"--nesterov=yes"}, new String[]{"--seed", "1", "--seed", "2"})) {
            Outcome r = main(NO_DATA, args);
            assertEquals(2, r.rc(), String.join(" ", args));
            assertEquals("", r.out());
            assertTrue(r.err().startsWith("fst4j train: "), r.err());
            assertTrue(r.err().contains("; usage: fst4j train ["), r.err());
            assertEquals(1, r.err().lines().count(), r.err());
        }
        Outcome h = main(NO_DATA, "--help");
        assertEquals(0, h.rc());
        assertTrue(h.out().contains("--train-subset"));
    }

    @Test
    void missingDatasetPrintsTheInstallLineOnly() {
        Outcome r = main(s -> { throw new DatasetNotFoundException("sudo apt-get install dataset-fashion-mnist", "Fashion-MNIST is not installed: ..."); },
                "--epochs", "1");
        assertEquals(1, r.rc());
        assertEquals("fst4j train: Fashion-MNIST is not installed: ...; install it with this command (or ./fst4j setup), then run this one again:"
                + System.lineSeparator() + "sudo apt-get install dataset-fashion-mnist" + System.lineSeparator(), r.err());
    }

    /** A 12x12 MNIST-style dataset in dir: the class is which quadrant holds a bright square. */
    public static void writeIdx(Path dir, String split, int n, long seed) throws Exception {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        byte[] px = new byte[n * 144], lb = new byte[n];
        for (int i = 0; i < n; i++) {
            int c = r.nextInt(4);
            lb[i] = (byte) c;
            for (int k = 0; k < 144; k++) px[i * 144 + k] = (byte) r.nextInt(50);
            for (int y = 0; y < 4; y++) for (int x = 0; x < 4; x++) px[i * 144 + ((c / 2) * 6 + 1 + y) * 12 + (c % 2) * 6 + 1 + x] = (byte) 200;
        }
        Idx.write(dir.resolve(split + "-images-idx3-ubyte"), new int[]{n, 12, 12}, px, false);
        Idx.write(dir.resolve(split + "-labels-idx1-ubyte"), new int[]{n}, lb, false);
    }

    /** tmp/data with an MNIST-format training and test split of the given sizes. */
    public static Path idxData(Path tmp, int train, int test) throws Exception {
        Path data = tmp.resolve("data");
        Files.createDirectories(data);
        writeIdx(data, "train", train, 1);
        writeIdx(data, "t10k", test, 2);
        return data;
    }

    /** Resuming one method into the run's own folder keeps the other methods' entries in summary.json. */
    @Test
    void resumingIntoTheSameFolderKeepsTheOtherMethodsSummaries(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense,fst3_ir", "--batch", "16",
                "--epochs", "2", "--save-every", "3", "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        Outcome again = main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, again.rc(), again.err());
        Object json = fst4j.nn.io.JsonText.parse(Files.readString(out.resolve("summary.json")));
        List<?> runs = (List<?>) ((Map<?, ?>) json).get("runs");
        assertEquals(List.of("dense", "fst3_ir"), runs.stream().map(e -> ((Map<?, ?>) e).get("method")).toList(), "both, in the run's order");
        // the CPU the times were taken on (hosts change; step times are not comparable across them)
        Map<?, ?> host = (Map<?, ?>) ((Map<?, ?>) json).get("host");
        assertEquals(fst4j.shim.Native.isa(), host.get("kernels"), String.valueOf(host));
        assertEquals(fst4j.shim.Host.current().modelName(), host.get("cpu"));
        assertEquals((double) Runtime.getRuntime().availableProcessors(), ((Number) host.get("cpus")).doubleValue());
        Map<?, ?> denseBefore = (Map<?, ?>) runs.get(0);
        // resuming the finished run trains nothing: its entry stays as it was (not NaN), the other kept
        Outcome finished = main(TrainData::load, "--resume", out.resolve("dense/final.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, finished.rc(), finished.err());
        List<?> runs2 = (List<?>) ((Map<?, ?>) fst4j.nn.io.JsonText.parse(Files.readString(out.resolve("summary.json")))).get("runs");
        assertEquals(2, runs2.size());
        assertEquals(denseBefore, runs2.get(0), "the finished method's entry as it was");
        // the charts are drawn from every method's rows of the folder's CSVs
        Map<String, List<double[]>> loss = new java.util.LinkedHashMap<>(), acc = new java.util.LinkedHashMap<>(), test = new java.util.LinkedHashMap<>();
        Main.Run.readCurves(out, loss, acc, test);
        assertEquals(java.util.Set.of("dense", "fst3_ir"), loss.keySet());
        assertEquals(8, loss.get("dense").size(), "two epochs of 4 steps");
        assertEquals(java.util.Set.of("dense", "fst3_ir"), test.keySet());
        assertEquals(2, acc.get("dense").get(1)[0], 0.0, "x is the step");
        // an unreadable earlier summary is kept aside, not lost
        Files.writeString(out.resolve("summary.json"), "{not json");
        Outcome third = main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, third.rc(), third.err());
        assertEquals("{not json", Files.readString(out.resolve("summary-before-resume.json")));
        assertTrue(third.err().contains("is not merged into this run's (malformed JSON"), third.err());
    }

    /** A CSV's rows without its timing columns (step_ms): what two runs of the same seed agree on. */
    static List<String> rowsWithoutTimes(Path csv) throws Exception {
        List<String> lines = Files.readAllLines(csv);
        List<String> header = List.of(lines.get(0).split(","));
        return lines.stream().map(l -> {
            String[] f = l.split(",");
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < f.length; i++) if (!header.get(i).endsWith("_ms")) sb.append(sb.isEmpty() ? "" : ",").append(f[i]);
            return sb.toString();
        }).toList();
    }

    /**
     * A run resumed into its own folder continues its CSVs exactly: the resumed method's rows past the checkpoint (which
     * the earlier run wrote and the resumed one trains again) are replaced, not repeated; the other method's rows stay in
     * place; the charts read one curve per method. They held steps 7 and 8 twice.
     */
    @Test
    void resumingIntoItsOwnFolderWritesNoStepTwice(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense,fst3_ir", "--batch", "16",
                "--epochs", "2", "--save-every", "3", "--threads", "1", "--no-progress", "--out", out.toString());   // 4 steps an epoch: saved at step 6
        assertEquals(0, r.rc(), r.err());
        List<String> metrics = rowsWithoutTimes(out.resolve("metrics.csv")), evals = rowsWithoutTimes(out.resolve("eval.csv"));
        assertEquals(1 + 2 * 8, metrics.size());
        assertEquals(1 + 2 * 2, evals.size());
        // a checkpoint refused when it is loaded (other data of another size) leaves the CSVs as they were
        Path other = tmp.resolve("other");
        Files.createDirectories(other);
        writeIdx(other, "train", 80, 1);
        writeIdx(other, "t10k", 16, 2);
        byte[] metricsBytes = Files.readAllBytes(out.resolve("metrics.csv")), evalBytes = Files.readAllBytes(out.resolve("eval.csv"));
        Outcome refused = main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--data", "mnist:" + other,
                "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(1, refused.rc(), refused.err());
        assertTrue(refused.err().contains("it was trained on 64 images, this run has 80"), refused.err());
        assertArrayEquals(metricsBytes, Files.readAllBytes(out.resolve("metrics.csv")));
        assertArrayEquals(evalBytes, Files.readAllBytes(out.resolve("eval.csv")));

        Outcome fst = main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, fst.rc(), fst.err());
        assertEquals(metrics, rowsWithoutTimes(out.resolve("metrics.csv")), "the last method's rows 7 and 8 retrained in their place");
        assertEquals(evals, rowsWithoutTimes(out.resolve("eval.csv")));

        Outcome dense = main(TrainData::load, "--resume", out.resolve("dense/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, dense.rc(), dense.err());
        // dense's rows up to its checkpoint and every fst3_ir row where they were, dense's retrained rows after them
        List<String> want = new java.util.ArrayList<>(metrics.subList(0, 7));
        want.addAll(metrics.subList(9, 17));
        want.addAll(metrics.subList(7, 9));
        assertEquals(want, rowsWithoutTimes(out.resolve("metrics.csv")));
        assertEquals(List.of(evals.get(0), evals.get(1), evals.get(3), evals.get(4), evals.get(2)), rowsWithoutTimes(out.resolve("eval.csv")));
        try (var files = Files.list(out)) {
            assertEquals(List.of(), files.filter(f -> f.getFileName().toString().endsWith(".tmp")).toList(), "no temporary file left");
        }

        Map<String, List<double[]>> loss = new java.util.LinkedHashMap<>(), acc = new java.util.LinkedHashMap<>(), test = new java.util.LinkedHashMap<>();
        Main.Run.readCurves(out, loss, acc, test);
        for (String m : List.of("dense", "fst3_ir")) {
            assertEquals(List.of(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0), loss.get(m).stream().map(p -> p[0]).toList(), m);
            assertEquals(List.of(4.0, 8.0), test.get(m).stream().map(p -> p[0]).toList(), m);
        }
    }

    /** Thrown by {@link #killedAt}'s stream: the run ends there, as if it were killed. */
    static final class Killed extends RuntimeException {
        private static final long serialVersionUID = 1L;
        Killed() { super("killed"); }
    }

    /** An output stream that ends the run (Killed) where it prints a line containing text. */
    static java.io.PrintStream killedAt(String text) {
        return new java.io.PrintStream(java.io.OutputStream.nullOutputStream(), true) {
            @Override public void println(String x) {
                if (x.contains(text)) throw new Killed();
                super.println(x);
            }
        };
    }

    /**
     * A run stopped in its second epoch and resumed into its own folder from the --save-every checkpoint at the end of
     * its first writes the same metrics.csv and eval.csv (but for the timing columns) as the run that was not stopped.
     * The first epoch's evaluation was written twice: once before the stop, once more by the resumed run, which resumes
     * into that epoch's end.
     */
    @Test
    void aRunStoppedAndResumedWritesTheCsvsOfTheUninterruptedRun(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), straight = tmp.resolve("straight"), out = tmp.resolve("run");
        String[] common = {"--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16", "--epochs", "3",
                "--save-every", "4", "--seed", "2", "--threads", "1", "--no-progress"};   // 4 steps an epoch: saved at each epoch's end
        Outcome r = main(TrainData::load, concat(common, "--out", straight.toString()));
        assertEquals(0, r.rc(), r.err());
        String[] stopped = concat(common, "--out", out.toString());
        assertThrows(Killed.class, () -> Main.run(stopped, killedAt("[dense] epoch 2/3 step 6/12 "),
                new java.io.PrintStream(java.io.OutputStream.nullOutputStream()), TrainData::load));
        try (SafeTensors.Contents c = SafeTensors.read(out.resolve("dense/checkpoint.safetensors"))) {
            assertArrayEquals(new long[]{4}, c.int64("step"), "the checkpoint of epoch 1's end");
        }
        assertEquals(1 + 1, Files.readAllLines(out.resolve("eval.csv")).size(), "epoch 1 evaluated before the stop");
        Outcome resumed = main(TrainData::load, "--resume", out.resolve("dense/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, resumed.rc(), resumed.err());
        // the checkpoint at epoch 1's end resumes into that end: its line, with the sums the checkpoint kept, and the others
        assertEquals(epochLines(r.out()), epochLines(resumed.out()), "the epochs' train loss and accuracy as uninterrupted");
        assertEquals(summaryOf(straight, "dense", "train_loss"), summaryOf(out, "dense", "train_loss"));
        assertEquals(summaryOf(straight, "dense", "train_acc"), summaryOf(out, "dense", "train_acc"));
        assertEquals(rowsWithoutTimes(straight.resolve("metrics.csv")), rowsWithoutTimes(out.resolve("metrics.csv")));
        assertEquals(rowsWithoutTimes(straight.resolve("eval.csv")), rowsWithoutTimes(out.resolve("eval.csv")));
        assertEquals(4, Files.readAllLines(out.resolve("eval.csv")).size());
        Map<String, List<double[]>> loss = new java.util.LinkedHashMap<>(), acc = new java.util.LinkedHashMap<>(), test = new java.util.LinkedHashMap<>();
        Main.Run.readCurves(out, loss, acc, test);
        assertEquals(List.of(4.0, 8.0, 12.0), test.get("dense").stream().map(p -> p[0]).toList());
        assertEquals(12, loss.get("dense").size());
    }

    /** A method stopped in its first epoch has training rows and no test point: a resume into its folder still draws. */
    @Test
    void resumingIntoAFolderWithAMethodStoppedEarlyStillDraws(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense,fst3_ir", "--batch", "16", "--epochs", "3",
                "--lr", "1e12", "--warmup", "0", "--save-every", "1", "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(1, r.rc(), r.err());
        Outcome again = main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(1, again.rc(), again.err());   // it diverges again; what matters is the ending
        assertTrue(again.err().contains("stopped early") && !again.err().contains("Exception"), again.err());
        assertTrue(again.out().contains("wrote "), again.out());
    }

    /** Flags whose values only the config refuses are usage errors too; a batch no step can fill fails before any file exists. */
    @Test
    void badValuesFailBeforeAnyOutput(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--smoothing", "1", "--no-progress", "--out", out.toString());
        assertEquals(2, r.rc(), r.err());
        assertTrue(r.err().startsWith("fst4j train: label smoothing must be in [0, 1), got 1.0; usage:"), r.err());
        r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--batch", "32", "--train-subset", "10", "--no-progress",
                "--out", out.toString());
        assertEquals(2, r.rc(), r.err());
        assertTrue(r.err().contains("the training set has 10 images, fewer than one batch of 32"), r.err());
        assertFalse(Files.exists(out), "no output directory, no header-only metrics.csv");
    }

    /** A method whose loss leaves the floats stops there, says so, writes no final weights; the others still train. */
    @Test
    void aDivergingMethodStopsAndTheRunSaysSo(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense,fst3_ir", "--batch", "16", "--epochs", "3",
                "--lr", "1e12", "--warmup", "0", "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(1, r.rc(), r.out() + r.err());
        for (String m : new String[]{"dense", "fst3_ir"}) {
            assertTrue(r.out().contains("[" + m + "] stopped: the loss is"), r.out());
            assertFalse(Files.exists(out.resolve(m + "/final.safetensors")), m + ": no final weights from a stopped run");
        }
        assertTrue(r.err().contains("fst4j train: dense, fst3_ir stopped early: the loss was not finite"), r.err());
        String summary = Files.readString(out.resolve("summary.json"));
        assertTrue(summary.contains("\"stopped\": \"the loss is") && summary.contains("\"checkpoint\": null"), summary);
        assertTrue(Files.exists(out.resolve("loss.png")) && Files.exists(out.resolve("metrics.csv")));
    }

    @Test
    void profileOpsPrintsTheMeasuredStepsPerOperation(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16);
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16",
                "--threads", "1", "--no-progress", "--profile-ops", "--out", tmp.resolve("run").toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("[dense] time per operation over") && r.out().contains("Linear 144->256"), r.out());
        assertTrue(Files.readString(tmp.resolve("run/dense/profile-ops.txt")).contains("Linear 144->256"), "the table kept in a file too");
        assertFalse(fst4j.autograd.Profile.byOperation(), "switched off again after the run");
        Outcome plain = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16",
                "--threads", "1", "--no-progress", "--out", tmp.resolve("run2").toString());
        assertEquals(0, plain.rc(), plain.err());
        assertFalse(plain.out().contains("time per operation"), plain.out());
        assertFalse(plain.out().contains("ran one after another"), "one method: nothing to compare");
    }

    /**
     * A method with the authors' changes on top trains under its full name, records it in the checkpoint, and resumes
     * bit-identically (the random patterns' generator state included); variants that change nothing are usage errors.
     */
    @Test
    void methodVariantsTrainAndResumeUnderTheirName(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 200, 50);
        Path out = tmp.resolve("run");
        String key = "fst3_ir+patterns+shift0.03";
        Outcome r = main(TrainData::load, "--model", "cnn", "--data", "mnist:" + data, "--epochs", "2", "--batch", "16", "--train-subset", "64",
                "--seed", "5", "--threads", "1", "--no-progress", "--method", "FST3-IR+patterns+shift0.03", "--out", out.toString(), "--save-every", "3");
        assertEquals(0, r.rc(), r.err());
        assertTrue(Files.size(out.resolve(key + "/final.safetensors")) > 0);
        assertTrue(Files.readString(out.resolve("summary.json")).contains("\"method\": \"" + key + "\""));
        assertTrue(Files.readAllLines(out.resolve("metrics.csv")).get(1).startsWith(key + ","));
        TrainConfig saved = Trainer.readConfig(out.resolve(key + "/checkpoint.safetensors"));
        assertEquals(List.of(SparseConfig.Variant.PATTERNS, SparseConfig.Variant.SHIFT003), saved.variants());
        assertEquals(key, saved.methodName());
        // every pruned layer carries both changes (its own pattern seed), the dense ends stay dense
        try (Trainer t = new Trainer(saved, TrainData.load("mnist:" + data))) {
            int pruned = 0;
            java.util.Set<Long> seeds = new java.util.HashSet<>();
            for (fst4j.nn.Sparse sp : fst4j.nn.Models.sparseLayers(t.model()).values()) {
                SparseConfig c = sp.sparsity();
                if (c.isDense()) continue;
                pruned++;
                assertEquals(key, c.name());
                assertEquals(SparseConfig.Shift.AUTHORS, c.ir());
                fst4j.sparse.AuthorsFixed24 xt = assertInstanceOf(fst4j.sparse.AuthorsFixed24.class, c.xt());
                seeds.add(xt.seed());
                assertEquals(SparseConfig.Method.FST3_IR.config().withXt(c.xt()).withIr(c.ir()).withName(key), c);
            }
            assertEquals(2, pruned);
            assertEquals(2, seeds.size());
        }

        Path out2 = tmp.resolve("resumed");
        Outcome r2 = main(TrainData::load, "--resume", out.resolve(key + "/checkpoint.safetensors").toString(), "--method", key,
                "--out", out2.toString(), "--threads", "1", "--no-progress");
        assertEquals(0, r2.rc(), r2.err());
        try (SafeTensors.Contents a = SafeTensors.read(out.resolve(key + "/final.safetensors"));
             SafeTensors.Contents b = SafeTensors.read(out2.resolve(key + "/final.safetensors"))) {
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            for (String k : a.tensors().keySet()) assertArrayEquals(a.tensor(k).toFloatArray(), b.tensor(k).toFloatArray(), k);
        }
        // resuming the finished run trains nothing and says so (no NaN row)
        Outcome done = main(TrainData::load, "--resume", out.resolve(key + "/final.safetensors").toString(), "--out", tmp.resolve("done").toString(),
                "--threads", "1", "--no-progress");
        assertEquals(0, done.rc(), done.err());
        assertTrue(done.out().contains("no steps left to train") && !done.out().contains("NaN"), done.out());
        // resuming under the bare method is a usage error: the variants are part of the run
        Outcome r3 = main(NO_DATA, "--resume", out.resolve(key + "/checkpoint.safetensors").toString(), "--method", "fst3_ir");
        assertEquals(2, r3.rc());
        assertTrue(r3.err().contains("checkpoint's method " + key), r3.err());

        for (String[] bad : List.of(new String[]{"dense+patterns", "has no fixed X^T mask"}, new String[]{"fst2+shift0.03", "has no Information Restoration"},
                new String[]{"fst_code+patterns", "already draws"}, new String[]{"fst3_ir+patterns+patterns", "given twice"},
                new String[]{"fst3_ir+bogus", "unknown variant 'bogus'"})) {
            Outcome u = main(NO_DATA, "--method", bad[0]);
            assertEquals(2, u.rc(), bad[0]);
            assertTrue(u.err().contains(bad[1]), u.err());
        }
    }

    @Test
    void endToEndWritesMetricsSummaryPlotsAndCheckpointsAndResumes(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 400, 100);
        Path out = tmp.resolve("run");
        String[] common = {"--model", "mlp", "--data", "mnist:" + data, "--epochs", "2", "--batch", "16", "--train-subset", "160",
                "--lr", "0.05", "--seed", "3", "--threads", "1", "--no-progress"};
        Outcome r = main(TrainData::load, concat(common, "--method", "dense,fst3_ir", "--out", out.toString(), "--save-every", "15"));
        assertEquals(0, r.rc(), r.err());
        assertEquals("", r.err());
        for (String f : new String[]{"metrics.csv", "eval.csv", "summary.json", "loss.png", "accuracy.png",
                "dense/final.safetensors", "fst3_ir/final.safetensors", "fst3_ir/checkpoint.safetensors"})
            assertTrue(Files.size(out.resolve(f)) > 0, f);
        List<String> metrics = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals("method,epoch,step,loss,train_acc,lr,step_ms", metrics.get(0));
        assertEquals(1 + 2 * 20, metrics.size());
        assertTrue(metrics.get(40).startsWith("fst3_ir,2,20,"), metrics.get(40));
        assertEquals(5, Files.readAllLines(out.resolve("eval.csv")).size());
        String summary = Files.readString(out.resolve("summary.json"));
        assertTrue(summary.contains("\"method\": \"fst3_ir\"") && summary.contains("\"eq3\"") && summary.contains("\"test_acc\""), summary);
        assertTrue(r.out().contains("epoch 2/2 done") && r.out().contains("ms/step"), r.out());
        assertTrue(r.out().contains("the methods ran one after another: for speed ratios between them use ./fst4j bench-interleaved"), r.out());
        byte[] png = Files.readAllBytes(out.resolve("loss.png"));
        assertEquals((byte) 0x89, png[0]);
        assertEquals('P', png[1]);

        // the step-15 checkpoint, resumed into another directory, ends bit-identical to the straight run
        Path out2 = tmp.resolve("resumed");
        Outcome r2 = main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--out", out2.toString(),
                "--threads", "1", "--no-progress");
        assertEquals(0, r2.rc(), r2.err());
        assertTrue(r2.out().contains("resumed from"), r2.out());
        try (SafeTensors.Contents a = SafeTensors.read(out.resolve("fst3_ir/final.safetensors"));
             SafeTensors.Contents b = SafeTensors.read(out2.resolve("fst3_ir/final.safetensors"))) {
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            for (String k : a.tensors().keySet()) {
                Tensor x = a.tensor(k), y = b.tensor(k);
                assertArrayEquals(x.toFloatArray(), y.toFloatArray(), k);
            }
            assertArrayEquals(a.int64("step"), b.int64("step"));
        }
        // a conflicting flag with --resume is a usage error
        Outcome r3 = main(NO_DATA, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--lr", "0.2");
        assertEquals(2, r3.rc());
        assertTrue(r3.err().contains("these flags differ from them: lr: 0.2 against the checkpoint's 0.05;"), r3.err());
        // a corrupt checkpoint is one clear line
        Path bad = tmp.resolve("bad.safetensors");
        Files.write(bad, new byte[]{1, 2, 3});
        Outcome r4 = main(NO_DATA, "--resume", bad.toString());
        assertEquals(1, r4.rc());
        assertTrue(r4.err().startsWith("fst4j train: checkpoint " + bad + " is unusable: "), r4.err());
        assertEquals(1, r4.err().lines().count(), r4.err());
    }

    /**
     * A --save-every checkpoint at an epoch's last step resumes into that epoch's end: it is evaluated and the next
     * epoch trains, bit-identical to the straight run; the epoch line has no loss to show (it printed "loss NaN, train
     * acc NaN%").
     */
    @Test
    void resumingAtAnEpochsEndPrintsNoNaN(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run"), out2 = tmp.resolve("resumed");
        Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16", "--epochs", "3",
                "--save-every", "8", "--threads", "1", "--no-progress", "--out", out.toString());   // 4 steps an epoch: saved at the end of epoch 2
        assertEquals(0, r.rc(), r.err());
        Outcome r2 = main(TrainData::load, "--resume", out.resolve("dense/checkpoint.safetensors").toString(), "--threads", "1", "--no-progress",
                "--out", out2.toString());
        assertEquals(0, r2.rc(), r2.err());
        assertFalse(r2.out().contains("NaN"), r2.out());
        // the checkpoint keeps its epoch's running sums: the resumed epoch's line is the uninterrupted run's
        assertEquals(epochLines(r.out()).subList(1, 3), epochLines(r2.out()), r2.out());
        assertTrue(r2.out().contains("[dense] epoch 3/3 done: step 12/12, loss "), r2.out());
        try (SafeTensors.Contents a = SafeTensors.read(out.resolve("dense/final.safetensors"));
             SafeTensors.Contents b = SafeTensors.read(out2.resolve("dense/final.safetensors"))) {
            for (String k : a.tensors().keySet()) assertArrayEquals(a.tensor(k).toFloatArray(), b.tensor(k).toFloatArray(), k);
        }
    }

    /**
     * A data set with an empty split is one clear failure before any output: an empty test set scored "test acc 0.00 %",
     * an empty training set normalised every image to NaN.
     */
    @Test
    void anEmptySplitIsRefusedWhenTheDataIsLoaded(@TempDir Path tmp) throws Exception {
        for (int[] sizes : new int[][]{{32, 0}, {0, 16}}) {
            Path data = tmp.resolve("d" + sizes[0]);
            Files.createDirectories(data);
            writeIdx(data, "train", sizes[0], 1);
            writeIdx(data, "t10k", sizes[1], 2);
            Path out = tmp.resolve("run" + sizes[0]);
            Outcome r = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16",
                    "--threads", "1", "--no-progress", "--out", out.toString());
            assertEquals(new Outcome(1, "", "fst4j train: mnist:" + data + ": the " + (sizes[0] == 0 ? "training" : "test") + " set has no images"
                    + System.lineSeparator()), r);
            assertFalse(Files.exists(out));
        }
    }

    @Test
    void fashionMnistSpecLoadsWhenInstalled() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(Datasets.locateFashionMnist(null).isPresent(), "Fashion-MNIST is not installed");
        TrainData d = TrainData.load("fashion-mnist");
        assertEquals(60000, d.train().size());
        assertEquals(10000, d.test().size());
    }

    /** The "epoch N/E done: ..." lines of a run's output, without their timing (", 1.2 s"). */
    static List<String> epochLines(String out) {
        return out.lines().filter(l -> l.contains("] epoch ") && l.contains(" done: ")).map(l -> l.replaceAll(", [0-9.]+ s$", "")).toList();
    }

    /** A method's value of key in dir's summary.json. */
    static Object summaryOf(Path dir, String method, String key) throws Exception {
        List<?> runs = (List<?>) ((Map<?, ?>) fst4j.nn.io.JsonText.parse(Files.readString(dir.resolve("summary.json")))).get("runs");
        return runs.stream().map(e -> (Map<?, ?>) e).filter(e -> method.equals(e.get("method"))).findFirst().orElseThrow().get(key);
    }

    /**
     * What a usability trial found the train command losing or misreporting: a new run into a folder holding one (its
     * results were replaced), a folder the checkpoints cannot be written to (found after all the training), flags that
     * differ on a resume (not named), an empty method entry (dropped silently), and an interrupted multi-method run
     * (its finished methods were missing from summary.json, so a resume of the other one dropped them).
     */
    @Test
    void outputsAreNotLostAndRefusalsNameTheirCause(@TempDir Path tmp) throws Exception {
        Path data = idxData(tmp, 64, 16), out = tmp.resolve("run");
        String[] common = {"--model", "mlp", "--data", "mnist:" + data, "--batch", "16", "--epochs", "2", "--threads", "1", "--no-progress"};
        Outcome r = main(TrainData::load, concat(common, "--method", "dense", "--out", out.toString()));
        assertEquals(0, r.rc(), r.err());
        String summary = Files.readString(out.resolve("summary.json"));
        Outcome again = main(TrainData::load, concat(common, "--method", "fst3_ir", "--out", out.toString()));
        assertEquals(2, again.rc(), again.err());
        assertTrue(again.err().startsWith("fst4j train: --out " + out + " already holds a run (metrics.csv); a new run there would replace its results:"),
                again.err());
        assertEquals(summary, Files.readString(out.resolve("summary.json")), "nothing replaced");
        assertFalse(Files.exists(out.resolve("fst3_ir")));

        Outcome empty = main(NO_DATA, "--method", "dense,,fst3_ir");
        assertEquals(2, empty.rc());
        assertTrue(empty.err().startsWith("fst4j train: --method has an empty entry in 'dense,,fst3_ir'"), empty.err());

        Outcome flags = main(TrainData::load, "--resume", out.resolve("dense/final.safetensors").toString(), "--lr", "0.05", "--seed", "3",
                "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(2, flags.rc());
        assertTrue(flags.err().startsWith("fst4j train: --resume continues the checkpoint's settings; these flags differ from them: lr: 0.05"
                + " against the checkpoint's 0.1, seed: 3 against the checkpoint's 0; leave them out or give the checkpoint's values"), flags.err());

        // a method folder that takes no files: refused before training, by the folder's name
        Path ro = tmp.resolve("ro");
        Files.createDirectories(ro);
        Files.createFile(ro.resolve("dense"));   // a file where the method's folder would go (root writes anywhere: no chmod test)
        Outcome blocked = main(TrainData::load, concat(common, "--method", "dense", "--out", ro.toString()));
        assertEquals(1, blocked.rc(), blocked.err());
        assertTrue(blocked.err().startsWith("fst4j train: " + ro.resolve("dense") + ": exists and is not a directory"), blocked.err());
        assertEquals("", blocked.out(), "refused before the run's first line");

        // an interrupted two-method run keeps its finished method in summary.json; resuming the other merges them
        Path two = tmp.resolve("two");
        String[] run2 = concat(common, "--method", "dense,fst3_ir", "--save-every", "2", "--out", two.toString());
        assertThrows(Killed.class, () -> Main.run(run2, killedAt("[fst3_ir] epoch 2/2 step 6/8 "),
                new java.io.PrintStream(java.io.OutputStream.nullOutputStream()), TrainData::load));
        assertEquals(List.of("dense"), methodsOf(two));
        // without --out the resume continues in the checkpoint's own run folder
        Outcome resumed = main(TrainData::load, "--resume", two.resolve("fst3_ir/checkpoint.safetensors").toString(), "--threads", "1",
                "--no-progress");
        assertEquals(0, resumed.rc(), resumed.err());
        assertTrue(resumed.out().contains("output in " + two.toAbsolutePath()), resumed.out());
        assertEquals(List.of("dense", "fst3_ir"), methodsOf(two));

        // a run of one step has no timed step: said so, not "ms/step NaN" and shares of 0.0 %
        Outcome one = main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--batch", "16", "--epochs", "1", "--threads", "1",
                "--no-progress", "--method", "dense", "--train-subset", "16", "--out", tmp.resolve("one").toString());
        assertEquals(0, one.rc(), one.err());
        assertTrue(one.out().contains("(no step timed: each step trained here was warm-up; train more for times)"), one.out());
        assertFalse(one.out().contains("NaN"), one.out());
        assertEquals(Map.of(), summaryOf(tmp.resolve("one"), "dense", "time_share"));
    }

    /** A diverging run's losses keep the table's width: 4 significant digits past a million, 4 decimals below. */
    @Test
    void hugeLossesPrintInFourSignificantDigits() {
        assertEquals("1.2572", Main.Run.loss4(1.25720));
        assertEquals("4.221e+36", Main.Run.loss4(4.220959567682672e36));
        assertEquals("NaN", Main.Run.loss4(Double.NaN));
    }

    static List<?> methodsOf(Path dir) throws Exception {
        List<?> runs = (List<?>) ((Map<?, ?>) fst4j.nn.io.JsonText.parse(Files.readString(dir.resolve("summary.json")))).get("runs");
        return runs.stream().map(e -> ((Map<?, ?>) e).get("method")).toList();
    }

    static String[] concat(String[] a, String... b) {
        String[] o = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, o, a.length, b.length);
        return o;
    }
}
