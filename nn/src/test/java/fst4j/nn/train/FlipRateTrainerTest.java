package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.nn.Module;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.sparse.NM;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The flip rate in the trainer ({@link Trainer#measureFlipRate}) and in {@code fst4j train --flip-rate}: training is the
 * same bits with it and without (SR-STE, the plain STE, FST x3 on a conv net, TSM across its refresh, ASP across its
 * pruning, 2:8); TSM's rate is 0 but where it refreshes, ASP's has none until the step after its pruning and is 0 from
 * then on; metrics.csv has the flip_rate column only with the flag (empty for a dense run), summary.json its mean over
 * the last epoch; a resumed run reads the same rates as the uninterrupted one; --srste-lambda 0 is the plain STE.
 */
public class FlipRateTrainerTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    /** Every step's loss bits and flip rate, and the parameters' and buffers' bits at the end (CudaFlipRateTest too). */
    public record Trace(List<Long> losses, List<Double> rates, List<float[]> state) {}

    public static Trace train(TrainConfig cfg, TrainData data, boolean measure, Device device) {
        List<Long> losses = new ArrayList<>();
        List<Double> rates = new ArrayList<>();
        try (Trainer t = new Trainer(cfg, data, device)) {
            t.measureFlipRate(measure);
            while (!t.finished()) {
                while (t.epochHasNext()) {
                    Trainer.StepResult r = t.trainStep();
                    losses.add(Double.doubleToRawLongBits(r.loss()));
                    rates.add(r.flipRate());
                    assertEquals(measure, r.flips() != null, "flips are read only when asked for");
                }
                t.endEpoch();
            }
            List<float[]> state = new ArrayList<>();
            Module m = t.model();
            for (Tensor p : m.stateDict().values()) state.add(p.toFloatArray());
            return new Trace(losses, rates, state);
        }
    }

    public static void assertSameBits(Trace a, Trace b, String what) {
        assertEquals(a.losses().size(), b.losses().size());
        for (int i = 0; i < a.losses().size(); i++) assertEquals(a.losses().get(i), b.losses().get(i), what + ": the loss of step " + (i + 1));
        assertEquals(a.state().size(), b.state().size());
        for (int i = 0; i < a.state().size(); i++) {
            float[] x = a.state().get(i), y = b.state().get(i);
            assertEquals(x.length, y.length);
            for (int j = 0; j < x.length; j++)
                assertEquals(Float.floatToRawIntBits(x[j]), Float.floatToRawIntBits(y[j]), what + ": state tensor " + i + " element " + j);
        }
    }

    /** 2 epochs of 24 steps of batch 8 on 192 12x12 images: TSM refreshes at step 40, ASP prunes at step 25. */
    static TrainConfig config(String model, String method) {
        return TrainConfig.defaults(Method.DENSE).withModel(model).withRecipe(Recipe.parse(method)).withBatchSize(8).withEpochs(2).withSeed(3);
    }

    @Test
    void trainingIsTheSameBitsWithTheFlipRateAndWithout(@TempDir Path tmp) throws Exception {
        TrainData data = TrainData.load("mnist:" + MainTest.idxData(tmp, 192, 16));
        record Case(String what, TrainConfig cfg) {}
        List<Case> cases = List.of(new Case("sr_ste", config("mlp", "sr_ste")), new Case("ste", config("mlp", "sr_ste").withSrSteLambda(0)),
                new Case("fst3_ir cnn", config("cnn", "fst3_ir")), new Case("tsm", config("mlp", "tsm")), new Case("asp", config("mlp", "asp")),
                new Case("sr_ste 2:8", config("mlp", "sr_ste").withNm(new NM(2, 8))), new Case("fst3_ir+patterns", config("mlp", "fst3_ir+patterns")));
        Trace srste = null, ste = null;
        for (Case c : cases) {
            Trace on = train(c.cfg(), data, true, Device.CPU), off = train(c.cfg(), data, false, Device.CPU);
            assertSameBits(on, off, c.what());
            assertEquals(48, on.rates().size());
            for (double r : off.rates()) assertTrue(Double.isNaN(r), "not measured: NaN");
            List<Double> rates = on.rates();
            switch (c.what()) {
                case "tsm" -> {
                    // the mask the next forward applies: TSM's cached one, refreshed at its 41st forward (calls 0 and 40)
                    for (int i = 0; i < rates.size(); i++) if (i != 39) assertEquals(0.0, rates.get(i), "tsm step " + (i + 1) + ": the cached mask");
                    assertTrue(rates.get(39) > 0 && rates.get(39) <= 1, "tsm's refresh after 40 steps moved blocks: " + rates.get(39));
                }
                case "asp" -> {
                    for (int i = 0; i <= 24; i++) assertTrue(Double.isNaN(rates.get(i)), "asp step " + (i + 1) + ": no mask before, or none the step before");
                    for (int i = 25; i < rates.size(); i++) assertEquals(0.0, rates.get(i), "asp step " + (i + 1) + ": the frozen mask");
                }
                default -> {
                    double sum = 0;
                    for (double r : rates) { assertTrue(r >= 0 && r <= 1, c.what() + ": " + r); sum += r; }
                    assertTrue(sum > 0, c.what() + ": no mask flipped in 48 steps");
                }
            }
            if (c.what().equals("sr_ste")) srste = on;
            if (c.what().equals("ste")) ste = on;
        }
        assertNotEquals(srste.losses(), ste.losses(), "lambda 0 is another run: the decay is off");
        try (Trainer t = new Trainer(config("mlp", "sr_ste").withSrSteLambda(0), data)) { assertFalse(t.decaysPruned(), "the plain STE: no decay pass"); }
    }

    static Outcome main(String... args) { return MainTest.main(TrainData::load, args); }

    static List<String[]> rows(Path csv) throws Exception {
        List<String[]> out = new ArrayList<>();
        for (String l : Files.readAllLines(csv)) out.add(l.split(",", -1));
        return out;
    }

    @Test
    void theCsvColumnIsThereOnlyWithTheFlag(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 64, 16), with = tmp.resolve("with"), without = tmp.resolve("without");
        List<String> common = List.of("--model", "mlp", "--data", "mnist:" + data, "--method", "dense,sr_ste", "--batch", "16", "--epochs", "2",
                "--threads", "1", "--no-progress");
        List<String> a = new ArrayList<>(common), b = new ArrayList<>(common);
        a.addAll(List.of("--flip-rate", "--out", with.toString()));
        b.addAll(List.of("--out", without.toString()));
        Outcome on = main(a.toArray(String[]::new)), off = main(b.toArray(String[]::new));
        assertEquals(0, on.rc(), on.err());
        assertEquals(0, off.rc(), off.err());
        List<String[]> w = rows(with.resolve("metrics.csv")), wo = rows(without.resolve("metrics.csv"));
        assertEquals(Main.METRICS + ",flip_rate", String.join(",", w.get(0)));
        assertEquals(Main.METRICS, String.join(",", wo.get(0)));
        assertEquals(17, w.size());
        double sum = 0;
        for (int i = 1; i < w.size(); i++) {
            assertEquals(8, w.get(i).length);
            List<String> x = new ArrayList<>(List.of(w.get(i))), y = new ArrayList<>(List.of(wo.get(i)));
            String flip = x.remove(7);
            x.remove(6);   // step_ms
            y.remove(6);
            assertEquals(y, x, "row " + i + ": the same training with the flag");
            if (x.get(0).equals("dense")) assertEquals("", flip, "a dense run has no pruned layer: an empty cell");
            else {
                double r = Double.parseDouble(flip);
                assertTrue(r >= 0 && r <= 1, flip);
                sum += r;
            }
        }
        assertTrue(sum > 0, "sr_ste's masks flipped in 8 steps");
        String summary = Files.readString(with.resolve("summary.json"));
        assertTrue(summary.contains("\"flip_rate_last_epoch\": null"), "dense: no rate\n" + summary);
        assertTrue(summary.matches("(?s).*\"method\": \"sr_ste\".*\"flip_rate_last_epoch\": [0-9.e-]+,.*"), summary);
        assertFalse(Files.readString(without.resolve("summary.json")).contains("flip_rate"), "without the flag: the summary as it was");
        assertTrue(on.out().contains("mean over the last epoch: dense - (no pruned layer), sr_ste "), on.out());
        assertFalse(off.out().contains("flip rate"), off.out());
        // the summary's mean is that of the last epoch's rows
        double last = 0;
        int n = 0;
        for (String[] f : w.subList(1, w.size())) if (f[0].equals("sr_ste") && f[1].equals("2")) { last += Double.parseDouble(f[7]); n++; }
        Map<?, ?> json = (Map<?, ?>) fst4j.nn.io.JsonText.parse(summary);
        for (Object run : (List<?>) json.get("runs"))
            if (((Map<?, ?>) run).get("method").equals("sr_ste"))
                assertEquals(last / n, ((Number) ((Map<?, ?>) run).get("flip_rate_last_epoch")).doubleValue(), 1e-5 * last / n + 1e-12);
    }

    /**
     * A run resumed from a checkpoint reads the masks of the loaded weights first, so its rows have the uninterrupted run's
     * rates; resumed with the flag into a folder written without it, the column is added, empty in the earlier rows.
     */
    @Test
    void aResumedRunReadsTheSameRates(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 64, 16), full = tmp.resolve("full"), plain = tmp.resolve("plain");
        List<String> common = List.of("--model", "mlp", "--data", "mnist:" + data, "--method", "sr_ste", "--batch", "16", "--epochs", "2",
                "--save-every", "3", "--threads", "1", "--no-progress");
        List<String> a = new ArrayList<>(common), b = new ArrayList<>(common);
        a.addAll(List.of("--flip-rate", "--out", full.toString()));
        b.addAll(List.of("--out", plain.toString()));
        assertEquals(0, main(a.toArray(String[]::new)).rc());
        assertEquals(0, main(b.toArray(String[]::new)).rc());
        Path ckpt = tmp.resolve("at6.safetensors");
        Files.copy(plain.resolve("sr_ste/checkpoint.safetensors"), ckpt);   // step 6 of 8 (every 3 steps)
        Outcome r = main("--resume", ckpt.toString(), "--flip-rate", "--threads", "1", "--no-progress", "--out", plain.toString());
        assertEquals(0, r.rc(), r.err());
        List<String[]> want = rows(full.resolve("metrics.csv")), got = rows(plain.resolve("metrics.csv"));
        assertEquals(Main.METRICS + ",flip_rate", String.join(",", got.get(0)), "the column added to the file written without it");
        assertEquals(9, got.size());
        for (int i = 1; i <= 6; i++) assertEquals("", got.get(i)[7], "row " + i + " of the run without the flag: an empty cell");
        for (int i = 7; i <= 8; i++) {
            assertEquals(want.get(i)[2], got.get(i)[2]);
            assertEquals(want.get(i)[3], got.get(i)[3], "step " + i + ": the same loss");
            assertEquals(want.get(i)[7], got.get(i)[7], "step " + i + ": the uninterrupted run's flip rate");
            assertTrue(Double.parseDouble(got.get(i)[7]) > 0, "step " + i + ": a rate that can tell a wrong first mask");
        }
        // a finished run resumed trains nothing: no rate, and the line says why
        Outcome done = main("--resume", plain.resolve("sr_ste/final.safetensors").toString(), "--flip-rate", "--threads", "1", "--no-progress",
                "--out", plain.toString());
        assertEquals(0, done.rc(), done.err());
        assertTrue(done.out().contains("mean over the last epoch: sr_ste - (no step trained here)"), done.out());
    }

    @Test
    void theColumnsOfAFileAreConformedByName(@TempDir Path tmp) throws Exception {
        Path csv = tmp.resolve("metrics.csv");
        String base = "dense,1,1,2.3,0.1,0.05,3.0";
        Files.writeString(csv, Main.METRICS + "\n" + base + "\n");
        assertEquals(new Main.Columns(false, true), Main.Run.conformMetrics(csv, false, true));
        assertEquals(Main.METRICS + ",flip_rate\n" + base + ",\n", Files.readString(csv));
        assertEquals(new Main.Columns(true, true), Main.Run.conformMetrics(csv, true, false));
        assertEquals(Main.METRICS + ",grad_norm,flip_rate\n" + base + ",,\n", Files.readString(csv), "grad_norm goes before flip_rate");
        Files.writeString(csv, Main.METRICS + ",flip_rate\n" + base + ",0.25\n");
        assertEquals(new Main.Columns(true, true), Main.Run.conformMetrics(csv, true, false));
        assertEquals(Main.METRICS + ",grad_norm,flip_rate\n" + base + ",,0.25\n", Files.readString(csv), "the rate stays in its column");
        String both = Main.METRICS + ",grad_norm,flip_rate\n" + base + ",1.5,0.25\n";
        Files.writeString(csv, both);
        assertEquals(new Main.Columns(true, true), Main.Run.conformMetrics(csv, false, false));
        assertEquals(both, Files.readString(csv), "nothing to change: left as it was");
        Files.writeString(csv, Main.METRICS + ",grad_norm\n" + base + "\n" + base + ",1.5\n");   // a file of two schemas, as before
        assertEquals(new Main.Columns(true, true), Main.Run.conformMetrics(csv, false, true));
        assertEquals(Main.METRICS + ",grad_norm,flip_rate\n" + base + ",,\n" + base + ",1.5,\n", Files.readString(csv));
        Files.writeString(csv, Main.METRICS + ",flip_rate\n" + base + "\n");
        java.io.IOException e = assertThrows(java.io.IOException.class, () -> Main.Run.conformMetrics(csv, false, true));
        assertTrue(e.getMessage().contains("has 7 cells, not the header's 8 (" + Main.METRICS + ",flip_rate)"), e.getMessage());
    }

    @Test
    void srSteLambdaIsAFlagOfTheConfig(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 32, 16), out = tmp.resolve("run");
        Outcome r = main("--model", "mlp", "--data", "mnist:" + data, "--method", "sr_ste", "--batch", "16", "--srste-lambda", "0", "--threads", "1",
                "--no-progress", "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        assertEquals(0.0, Trainer.readConfig(out.resolve("sr_ste/final.safetensors")).srSteLambda());
        for (String bad : new String[]{"-1", "x", "inf"}) {
            Outcome u = MainTest.main(MainTest.NO_DATA, "--srste-lambda", bad);
            assertEquals(2, u.rc(), bad);
            assertTrue(u.err().contains("--srste-lambda needs a non-negative number"), u.err());
        }
        assertThrows(IllegalArgumentException.class, () -> TrainConfig.defaults(Method.SR_STE).withSrSteLambda(Double.NaN));
        assertEquals(TrainConfig.defaults(Method.SR_STE).withSrSteLambda(0), TrainConfig.defaults(Method.SR_STE).withSrSteLambda(-0.0));
    }
}
