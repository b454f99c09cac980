package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.Models;
import fst4j.nn.Sparse;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.nn.data.Datasets;
import fst4j.sparse.NM;
import fst4j.sparse.Sparsifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code fst4j train --nm N:M} and {@link TrainConfig#nm}: the built-in models' magnitude-pruned W slots at the pattern,
 * the dense baseline unchanged beside them, the pattern in the checkpoint's metadata (absent at 2:4, so 2:4 runs and
 * older checkpoints keep their keys), a resume at another pattern refused, bad values and methods without a pattern
 * refused as one-line usage errors.
 */
class NmTrainTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.restored();

    @Test
    void trainAtOneFourOnFashionMnistAndRefuseAResumeAtTwoFour(@TempDir Path tmp) throws Exception {
        assumeTrue(Datasets.locateFashionMnist(null).isPresent(), "Fashion-MNIST is not installed");
        Path out = tmp.resolve("run");
        Outcome r = MainTest.main(TrainData::load, "--model", "cnn", "--data", "fashion-mnist", "--method", "dense,fst2", "--nm", "1:4",
                "--train-subset", "256", "--test-subset", "128", "--batch", "64", "--save-every", "2", "--threads", "1", "--no-progress",
                "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains(", weights pruned 1:4 (not 2:4)"), r.out());
        Path ckpt = out.resolve("fst2/checkpoint.safetensors");
        assertEquals("1:4", Trainer.readMetadata(ckpt).get("nm"));
        assertEquals("1:4", Trainer.readMetadata(out.resolve("fst2/final.safetensors")).get("nm"));
        assertNull(Trainer.readMetadata(out.resolve("dense/final.safetensors")).get("nm"), "the dense baseline has no pattern");
        TrainConfig saved = Trainer.readConfig(ckpt);
        assertEquals(new NM(1, 4), saved.nm());
        try (Trainer t = new Trainer(saved, TrainData.load("fashion-mnist"))) {   // the model the run trained: every pruned layer at 1:4
            int pruned = 0;
            for (Sparse s : Models.sparseLayers(t.model()).values()) {
                if (s.sparsity().isDense()) continue;   // the model's dense stem and classifier stay dense
                assertEquals(new Sparsifier.MagnitudeNM(1, 4, 1), s.sparsity().w());
                assertEquals(new Sparsifier.MagnitudeNM(1, 4, 0), s.sparsity().wt());
                pruned++;
            }
            assertTrue(pruned > 0);
            t.load(ckpt);
        }
        for (String p : new String[]{"2:4", "2:8"}) {
            Outcome refused = MainTest.main(MainTest.NO_DATA, "--resume", ckpt.toString(), "--nm", p, "--no-progress", "--out", out.toString());
            assertEquals(2, refused.rc(), refused.err());
            assertTrue(refused.err().contains("--resume continues the checkpoint's N:M pattern 1:4 (fst2); --nm must be that or left out, got " + p),
                    refused.err());
        }
        // a trainer at another pattern refuses the checkpoint too (its config differs), leaving itself as it was
        try (Trainer t = new Trainer(saved.withNm(NM.TWO_FOUR), TrainData.load("fashion-mnist"))) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> t.load(ckpt));
            assertTrue(e.getMessage().contains("nm=1:4"), e.getMessage());
        }
        Outcome resumed = MainTest.main(TrainData::load, "--resume", ckpt.toString(), "--nm", "1:4", "--threads", "1", "--no-progress",
                "--out", out.toString());
        assertEquals(0, resumed.rc(), resumed.err());
        // the dense baseline took --nm 1:4 and stayed dense: its resume with the same flags is taken too, as a fresh run is
        Outcome dense = MainTest.main(TrainData::load, "--resume", out.resolve("dense/checkpoint.safetensors").toString(), "--nm", "1:4",
                "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(0, dense.rc(), dense.err());
    }

    @Test
    void badPatternsAndMethodsWithoutOneAreUsageErrors() {
        String[][] bad = {{"--nm", "4:4"}, {"--nm", "0:4"}, {"--nm", "1:1"}, {"--nm", "x:4"}, {"--nm", "1:4:8"}, {"--nm", "14"}, {"--nm", ""},
                {"--nm"}, {"--nm", "1:64"}, {"--method", "tsm", "--nm", "1:4"}, {"--method", "dense,asp", "--nm", "2:8"},
                {"--method", "meprop", "--nm", "1:4"}, {"--method", "resprop", "--nm", "1:4"}, {"--nm", "1:4", "--nm", "1:4"}};
        String[] want = {"--nm: N:M pattern 4:4: N must be < M", "--nm: N:M pattern 0:4: N must be >= 1", "--nm: N:M pattern 1:1: M must be >= 2",
                "--nm: N:M pattern 'x:4': N is not a whole number ('x')", "--nm: an N:M pattern is written N:M (1:4, 2:8), got '1:4:8'",
                "--nm: an N:M pattern is written N:M", "--nm needs a value", "--nm needs a value", "M must be at most 32",
                "--nm 1:4 has no meaning for tsm: its transposable mask is 2:4 along both axes by definition",
                "--nm 2:8 has no meaning for asp: ", "--nm 1:4 has no meaning for meprop: it prunes the output gradient",
                "--nm 1:4 has no meaning for resprop", "--nm given twice"};
        for (int i = 0; i < bad.length; i++) {
            Outcome r = MainTest.main(MainTest.NO_DATA, bad[i]);
            String args = String.join(" ", bad[i]);
            assertEquals(2, r.rc(), args + ": " + r.err());
            assertTrue(r.err().startsWith("fst4j train: ") && r.err().contains(want[i]) && r.err().lines().count() == 1, args + ": " + r.err());
        }
        assertTrue(MainTest.main(MainTest.NO_DATA, "--help").out().contains("--nm N:M"));
    }

    @Test
    void theConfigKeepsThePatternAndTwoFourKeepsItsKeys() throws Exception {
        TrainConfig c = TrainConfig.defaults(Method.FST3_IR).withNm(new NM(2, 8));
        Map<String, String> meta = c.toMetadata();
        assertEquals("2:8", meta.get("nm"));
        assertEquals(c, TrainConfig.fromMetadata(meta));
        Map<String, String> old = new LinkedHashMap<>(meta);
        old.remove("nm");
        assertEquals(TrainConfig.defaults(Method.FST3_IR), TrainConfig.fromMetadata(old), "no key: 2:4");
        assertEquals(TrainConfig.defaults(Method.FST3_IR).toMetadata(), TrainConfig.defaults(Method.FST3_IR).withNm(NM.TWO_FOUR).toMetadata());
        assertFalse(TrainConfig.defaults(Method.FST3_IR).toMetadata().containsKey("nm"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainConfig.defaults(Method.TSM).withNm(new NM(1, 4)));
        assertTrue(e.getMessage().contains("N:M 1:4 has no meaning for tsm"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TrainConfig.defaults(Method.DENSE).withNm(new NM(1, 4)));
        assertTrue(e.getMessage().contains("N:M 1:4 has no meaning for dense: it prunes no weight"), e.getMessage());
        // the CLI: --nm 2:4 is the default run; dense beside a pattern stays 2:4
        Main.Options o = Main.parse(new String[]{"--nm", "2:4"});
        assertEquals(NM.TWO_FOUR, o.nm());
        TrainConfig d = Main.withNm(TrainConfig.defaults(Method.DENSE), new NM(1, 4));
        assertEquals(TrainConfig.defaults(Method.DENSE), d);
        assertEquals(new NM(1, 4), Main.withNm(TrainConfig.defaults(Method.WG), new NM(1, 4)).nm());
        // a model of one's own takes the pattern in its layers' configuration, not from the trainer
        try (var m = Models.byName("mlp", 1, 28, 28, 10, Method.FST2, 0)) {
            e = assertThrows(IllegalArgumentException.class, () -> new Trainer(m, TrainConfig.defaults(Method.FST2).withNm(new NM(1, 4)), CheckpointTest.tiny()));
            assertTrue(e.getMessage().contains("withPattern"), e.getMessage());
        }
    }
}
