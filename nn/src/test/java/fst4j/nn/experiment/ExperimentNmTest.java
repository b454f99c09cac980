package fst4j.nn.experiment;

import fst4j.autograd.SparseConfig;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.sparse.NM;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.*;

/**
 * experiment --nm N:M is train's flag: the same parse and messages, refused by table2 and, naming the row and its table,
 * where a row's method prunes no weight by magnitude; every run of the table trains at the pattern (dense as it is).
 */
class ExperimentNmTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    private static Outcome run(TrainData data, String... args) { return ExperimentTest.run(data, args); }

    @Test
    void badPatternsAreTrainsUsageErrors() {
        for (String bad : List.of("4:4", "0:4", "1:1", "x:4", "1:4:8", "14", "1:64", "none")) {
            Outcome r = run(null, "table1", "--nm", bad);
            assertEquals(2, r.rc(), bad + ": " + r.err());
            assertTrue(r.err().startsWith("fst4j experiment: --nm: "), r.err());
            String msg = r.err().substring("fst4j experiment: ".length(), r.err().indexOf("; usage: "));
            Outcome t = Outcome.of((out, err) -> fst4j.nn.train.Main.run(new String[]{"--nm", bad}, out, err));
            assertEquals(2, t.rc(), t.err());
            assertTrue(t.err().contains(msg), "train says the same: " + t.err() + " / " + msg);
            assertEquals("", r.out());
        }
        assertEquals(2, run(null, "table1", "--nm", "1:4", "--nm", "1:4").rc());
        assertTrue(run(null, "table1", "--nm", "").err().startsWith("fst4j experiment: --nm needs a value"));
        assertTrue(run(null, "table2", "--nm", "1:4").err().contains("--nm does not apply to table2"));
        assertTrue(run(null, "--help").out().contains("--nm N:M"));
    }

    @Test
    void rowsThatCannotTakeAPatternAreRefusedByName() {
        Outcome r = run(null, "table3", "--nm", "1:4");   // no data: refused before anything is read
        assertEquals(2, r.rc(), r.err());
        assertTrue(r.err().startsWith("fst4j experiment: --nm 1:4 has no meaning for tsm (a row of table3; --methods keeps the rows that take a pattern):"
                + " its transposable mask is 2:4 along both axes by definition; usage: "), r.err());
        r = run(null, "all", "--nm", "2:8");
        assertTrue(r.err().startsWith("fst4j experiment: --nm 2:8 has no meaning for tsm (a row of table5 and table3;"), r.err());
        r = run(null, "methods", "--methods", "dense,asp", "--nm", "1:4");
        assertEquals(2, r.rc(), r.err());
        assertTrue(r.err().startsWith("fst4j experiment: --nm 1:4 has no meaning for asp: its one-shot mask"), r.err());
        r = run(null, "table3", "--methods", "dense,meprop", "--nm", "1:4");
        assertTrue(r.err().contains("--nm 1:4 has no meaning for meprop (a row of table3;"), r.err());
        assertEquals("", r.out());
    }

    /** Each (method, seed) row is Experiment.run at the pattern, which for a pruned method is not the 2:4 run; dense is as it was. */
    @Test
    void everyRunTrainsAtThePattern(@TempDir Path dir) throws Exception {
        TrainData data = TrainData.of("halves", new fst4j.nn.data.Datasets.Split(ExperimentTest.halves(200, 1), ExperimentTest.halves(50, 2)));
        Outcome r = run(data, "table5", "--model", "mlp", "--steps", "5", "--batch", "16", "--seeds", "1", "--seed0", "3", "--methods", "dense,fst2",
                "--nm", "1:4", "--out", dir.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("SR-STE lambda 2e-4 where the weights are magnitude-pruned, weights pruned 1:4 by magnitude (dense as it is); test accuracy"), r.out());
        TrainConfig base = TrainConfig.defaults(SparseConfig.Method.DENSE).withModel("mlp").withBatchSize(16).withLr(0.1).withSubsets(5 * 16, 0);
        List<String> csv = Files.readAllLines(dir.resolve("table5.csv"));
        assertEquals(1 + 2, csv.size(), String.join("\n", csv));
        for (String line : csv.subList(1, csv.size())) {
            String[] c = line.split(",");
            SparseConfig.Recipe recipe = SparseConfig.Recipe.parse(c[c.length - 8]);
            Experiment.Run at = Experiment.run(base, data, recipe, 3, 5, 1, new NM(1, 4)), plain = Experiment.run(base, data, recipe, 3, 5, 1);
            String got = c[c.length - 6] + "," + c[c.length - 5] + "," + c[c.length - 4];
            assertEquals(fmt(at), got, line);
            if (recipe.method() == SparseConfig.Method.DENSE) assertEquals(fmt(plain), got, "dense runs as it is");
            else assertNotEquals(fmt(plain), got, "the run trained at 2:4: " + line);
        }
        // the pattern reaches the trainer: Experiment.run at 1:4 is the Trainer's run with TrainConfig.nm = 1:4
        Experiment.Run one = Experiment.run(base, data, SparseConfig.Recipe.of(SparseConfig.Method.FST2), 3, 5, 1, new NM(1, 4));
        try (fst4j.nn.train.Trainer t = new fst4j.nn.train.Trainer(base.withMethod(SparseConfig.Method.FST2).withSeed(3).withNm(new NM(1, 4)), data)) {
            t.stopOnNonFiniteLoss(false);
            while (t.epochHasNext()) t.trainStep();
            assertEquals(t.evaluate().accuracy(), one.testAcc());
        }
    }

    private static String fmt(Experiment.Run x) {
        return String.format(Locale.ROOT, "%.6f,%.6f,%.6f", x.testAcc(), x.testLoss(), x.trainLoss());
    }
}
