package fst4j.nn.train;

import fst4j.nn.cli.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Where no chart can be drawn (a runtime without java.desktop, as gpu/prepare.sh's jlinked one, or -Dfst4j.plots=false),
 * the training finishes and writes everything but the two PNGs, saying why (it failed with NoClassDefFoundError
 * java/awt/Stroke after the training on the device's runtime); experiment and analyze, whose charts are part of their
 * output, refuse before any work. The property stands in for the missing module here.
 */
class ChartsSkippedTest {
    @Test
    void trainingSkipsItsChartsAndSaysWhy(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 32, 16), out = tmp.resolve("run");
        Outcome r = withoutCharts(() -> MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense",
                "--batch", "16", "--epochs", "1", "--threads", "1", "--no-progress", "--out", out.toString()));
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("loss.png and accuracy.png skipped: charts turned off (-Dfst4j.plots=false)"), r.out());
        for (String f : new String[]{"metrics.csv", "eval.csv", "summary.json", "dense/final.safetensors"}) assertTrue(Files.exists(out.resolve(f)), f);
        assertFalse(Files.exists(out.resolve("loss.png")));
        assertFalse(Files.exists(out.resolve("accuracy.png")));
    }

    @Test
    void experimentAndAnalyzeRefuseBeforeAnyWork(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 32, 16), out = tmp.resolve("exp");
        Outcome e = withoutCharts(() -> Outcome.of((o, err) -> fst4j.nn.experiment.Main.run(new String[]{"table1", "--data", "mnist:" + data,
                "--model", "mlp", "--steps", "2", "--batch", "16", "--seeds", "1", "--out", out.toString()}, o, err)));
        assertEquals(1, e.rc(), e.out() + e.err());
        assertTrue(e.err().contains("charts cannot be drawn: charts turned off"), e.err());
        assertFalse(Files.exists(out), "nothing trained, nothing written");
    }

    private static Outcome withoutCharts(java.util.function.Supplier<Outcome> run) {
        String was = System.getProperty("fst4j.plots");
        System.setProperty("fst4j.plots", "false");
        try { return run.get(); }
        finally { if (was == null) System.clearProperty("fst4j.plots"); else System.setProperty("fst4j.plots", was); }
    }
}
