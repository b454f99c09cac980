package fst4j.nn.experiment;

import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.nn.data.Datasets;
import fst4j.nn.train.TrainData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code fst4j experiment flip} on a tiny subset: flip.csv has one row per method, seed and step with rates in [0, 1] and
 * the plain STE's not all zero, flip.md one row per method, flip.png the chart; a method without pruned weights has
 * empty cells; bad flags are usage errors before any training.
 */
class FlipExperimentTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    static final String HEADER = "method,seed,step,epoch,loss,flips,weights,flip_rate";

    @Test
    void aTinyRunWritesTheRatesPerStepPerMethod(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new Datasets.Split(ExperimentTest.halves(96, 1), ExperimentTest.halves(32, 2)));
        Outcome r = ExperimentTest.run(data, "flip", "--model", "cnn", "--steps", "6", "--batch", "16", "--seeds", "2", "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        List<String> lines = Files.readAllLines(dir.resolve("flip.csv"));
        assertEquals(HEADER, lines.get(0));
        assertEquals(1 + 3 * 2 * 6, lines.size(), "a row per method, seed and step");
        Map<String, Double> sums = new LinkedHashMap<>();
        Map<String, String> losses = new LinkedHashMap<>();   // seed 0's last loss per method
        for (String line : lines.subList(1, lines.size())) {
            String[] f = line.split(",", -1);
            if (f[1].equals("0")) losses.put(f[0], f[4]);
            assertEquals(8, f.length, line);
            double rate = Double.parseDouble(f[7]);
            assertTrue(rate >= 0 && rate <= 1, line);
            long flips = Long.parseLong(f[5]), weights = Long.parseLong(f[6]);
            assertEquals(32 * 64 * 9 + 64 * 128 * 9, weights, "the cnn's two pruned convolutions; its dense stem and classifier not counted");
            assertEquals((double) flips / weights, rate, 1e-5 * rate);
            sums.merge(f[0], rate, Double::sum);
        }
        assertEquals(List.of("sr_ste", "ste", "fst3_ir"), List.copyOf(sums.keySet()), "the default rows");
        assertTrue(sums.get("ste") > 0, "the plain STE's masks flipped: " + sums);
        assertNotEquals(losses.get("sr_ste"), losses.get("ste"), "ste trains without the decay: another run than sr_ste's");
        List<String> rows = Files.readString(dir.resolve("flip.md")).lines().filter(l -> l.startsWith("| ")).skip(1).toList();
        assertEquals(3, rows.size(), rows.toString());
        assertTrue(rows.get(1).startsWith("| ste | W (plain STE: no decay) | 0 | 2 (") && rows.get(0).startsWith("| sr_ste | W | 2e-04 | 2 ("), rows.toString());
        if (fst4j.nn.plot.Plots.available()) {
            var img = ImageIO.read(dir.resolve("flip.png").toFile());
            assertNotNull(img);
            assertEquals(900, img.getWidth());
        }
        assertTrue(r.out().contains("[6/6] fst3_ir"), r.out());
    }

    @Test
    void rowsWithoutARateAndBadFlags(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new Datasets.Split(ExperimentTest.halves(64, 1), ExperimentTest.halves(16, 2)));
        Outcome r = ExperimentTest.run(data, "flip", "--model", "mlp", "--steps", "4", "--batch", "16", "--seeds", "1", "--methods", "dense,asp",
                "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        List<String> lines = Files.readAllLines(dir.resolve("flip.csv"));
        assertEquals(1 + 2 * 4, lines.size());
        for (String line : lines.subList(1, 5)) assertTrue(line.startsWith("dense,") && line.endsWith(",0,0,"), "dense: no pruned layer, no rate: " + line);
        // asp prunes at the start of step 3 of 4: no rate at steps 1-3, its frozen mask's 0 at step 4
        for (int i = 5; i <= 7; i++) assertTrue(lines.get(i).endsWith(","), lines.subList(5, 9).toString());
        assertEquals(0.0, Double.parseDouble(lines.get(8).substring(lines.get(8).lastIndexOf(',') + 1)), lines.get(8));
        String md = Files.readString(dir.resolve("flip.md"));
        assertTrue(md.contains("| dense | - | - | none | - | - | - |"), md);
        assertTrue(md.contains("| asp | W, mask fixed at half of the steps | - | 1 (32768) | - | 0.00 ± n/a |"), md);

        for (String[] bad : List.of(new String[]{"flip", "--methods", "nope"}, new String[]{"flip", "--methods", "tsm", "--nm", "2:8"},
                new String[]{"flip", "--methods", "ste,ste"}, new String[]{"flip", "--task", "sort"}, new String[]{"flip", "--steps", "0"})) {
            Outcome u = ExperimentTest.run(null, bad);
            assertEquals(2, u.rc(), String.join(" ", bad) + ": " + u.err());
            assertTrue(u.err().startsWith("fst4j experiment: "), u.err());
        }
        // --methods as experiment's tables and transformer parse it (Main.methodsFlag): flip's hint, a name given twice, no name
        for (String[] e : List.of(new String[]{"flip", "nope", "(or ste, the plain straight-through estimator)"},
                new String[]{"flip", "ste,ste", "method ste given twice"}, new String[]{"flip", " , ", "--methods names no method"},
                new String[]{"methods", "fst2,fst3_ir,FST2", "method fst2 given twice"},
                new String[]{"transformer", "sr_ste, ,SR_STE", "method sr_ste given twice"})) {
            Outcome u = ExperimentTest.run(null, e[0], "--methods", e[1]);
            assertTrue(u.rc() == 2 && u.err().contains(e[2]) && u.err().lines().count() == 1, String.join(" ", e) + ": " + u.err());
        }
        Outcome big = ExperimentTest.run(data, "flip", "--steps", "100", "--batch", "16", "--out", dir.toString());
        assertEquals(2, big.rc());
        assertTrue(big.err().contains("need 1600 training images; the data has 64"), big.err());
        Outcome help = ExperimentTest.run(null, "--help");
        assertTrue(help.out().contains("flip               the mask flip rate"), help.out());
    }
}
