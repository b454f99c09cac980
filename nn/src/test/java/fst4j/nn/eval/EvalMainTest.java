package fst4j.nn.eval;

import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import fst4j.nn.train.TrainData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.*;

/** fst4j eval against what fst4j train measured at the end of the same run, and its errors. */
class EvalMainTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.restored();

    static Outcome eval(String... args) { return Outcome.of((out, err) -> Main.run(args, out, err, TrainData::load)); }

    /** Accuracy %, loss and image count of one printed line. */
    static double[] numbers(String line) {
        var m = java.util.regex.Pattern.compile("test acc +([0-9.]+)%  loss ([0-9.]+)  \\((\\d+) images").matcher(line);
        assertTrue(m.find(), line);
        return new double[]{Double.parseDouble(m.group(1)), Double.parseDouble(m.group(2)), Double.parseDouble(m.group(3))};
    }

    @Test
    void reproducesTheTrainersFinalEvaluationAndComparesDenseWeights(@TempDir Path tmp) throws Exception {
        Path data = fst4j.nn.train.MainTest.idxData(tmp, 200, 60);
        Path out = tmp.resolve("run");
        Outcome trained = Outcome.of((o, e) -> fst4j.nn.train.Main.run(new String[]{"--model", "cnn", "--data", "mnist:" + data, "--batch", "16",
                "--train-subset", "96", "--test-subset", "40", "--seed", "2", "--lr", "0.005", "--threads", "1", "--no-progress",
                "--method", "dense,fst3_ir", "--out", out.toString()}, o, e));
        assertEquals(0, trained.rc(), trained.err());
        List<String> evalCsv = Files.readAllLines(out.resolve("eval.csv"));   // method,epoch,step,test_acc,test_loss
        for (String method : List.of("dense", "fst3_ir")) {
            String[] last = evalCsv.stream().filter(l -> l.startsWith(method + ",")).reduce((a, b) -> b).orElseThrow().split(",");
            double acc = Double.parseDouble(last[3]), loss = Double.parseDouble(last[4]);
            Outcome r = eval(out.resolve(method + "/final.safetensors").toString(), "--test-subset", "40", "--threads", "1");
            assertEquals(0, r.rc(), r.err());
            String asTrained = r.out().lines().filter(l -> l.contains("as trained")).findFirst().orElseThrow();
            assertTrue(asTrained.contains(String.format(Locale.ROOT, "test acc %6.2f%%", 100 * acc)), asTrained + " vs " + acc);
            assertTrue(asTrained.contains(String.format(Locale.ROOT, "loss %.4f", loss)), asTrained + " vs " + loss);
            assertTrue(asTrained.contains("(40 images"), asTrained);
            if (method.equals("dense")) {
                assertTrue(r.out().contains("does not prune W"), r.out());
            } else {
                assertTrue(asTrained.contains("S(W) X"), asTrained);
                String dense = r.out().lines().filter(l -> l.contains("dense W X")).findFirst().orElseThrow();
                assertNotEquals(numbers(asTrained)[1], numbers(dense)[1], "other weights, another loss: " + r.out());
                assertEquals(40, (int) numbers(dense)[2]);
            }
        }
        Outcome all = eval(out.resolve("fst3_ir/final.safetensors").toString(), "--weights", "dense", "--threads", "1");
        assertEquals(0, all.rc(), all.err());
        assertTrue(all.out().contains("(60 images") && !all.out().contains("as trained"), all.out());

        for (String[] bad : List.of(new String[]{}, new String[]{"--weights", "dense"}, new String[]{"x.safetensors", "--weights", "half"},
                new String[]{"x.safetensors", "--device", "tpu"}, new String[]{"x.safetensors", "--bogus"})) {
            Outcome u = eval(bad);
            assertEquals(2, u.rc(), String.join(" ", bad));
            assertTrue(u.err().startsWith("fst4j eval: ") && u.err().contains("usage: fst4j eval CKPT"), u.err());
        }
        Outcome missing = eval(tmp.resolve("none.safetensors").toString());
        assertEquals(1, missing.rc());
        assertTrue(missing.err().contains("no checkpoint file"), missing.err());
        Path corrupt = tmp.resolve("bad.safetensors");
        Files.write(corrupt, new byte[]{9, 9, 9});
        Outcome c = eval(corrupt.toString());
        assertEquals(1, c.rc());
        assertTrue(c.err().startsWith("fst4j eval: checkpoint " + corrupt + " is unusable"), c.err());
    }
    /**
     * A checkpoint evaluated on images of another size names the layer that does not fit and the images the model was
     * built for; it said "momentum buffer 0 has the wrong shape".
     */
    @Test
    void dataOfAnotherImageSizeSaysSo(@TempDir Path tmp) throws Exception {
        Path data = fst4j.nn.train.MainTest.idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome trained = Outcome.of((o, e) -> fst4j.nn.train.Main.run(new String[]{"--model", "mlp", "--data", "mnist:" + data, "--batch", "16",
                "--threads", "1", "--no-progress", "--method", "dense", "--out", out.toString()}, o, e));
        assertEquals(0, trained.rc(), trained.err());
        Path small = tmp.resolve("small");
        Files.createDirectories(small);
        for (String[] split : new String[][]{{"train", "64"}, {"t10k", "16"}}) {
            int n = Integer.parseInt(split[1]);
            fst4j.nn.data.Idx.write(small.resolve(split[0] + "-images-idx3-ubyte"), new int[]{n, 8, 8}, new byte[n * 64], false);
            fst4j.nn.data.Idx.write(small.resolve(split[0] + "-labels-idx1-ubyte"), new int[]{n}, new byte[n], false);
        }
        Outcome r = eval(out.resolve("dense/final.safetensors").toString(), "--data", "mnist:" + small, "--threads", "1");
        assertEquals(1, r.rc(), r.err());
        assertTrue(r.err().contains("is unusable: shape mismatch for 1.weight: [256, 144] vs [256, 64] (this mlp is built for the 1x8x8 images"
                + " and 10 classes of mnist:" + small + ")"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }
}
