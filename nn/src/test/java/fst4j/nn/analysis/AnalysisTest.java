package fst4j.nn.analysis;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.Conv2d;
import fst4j.nn.Models;
import fst4j.nn.Sequential;
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
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class AnalysisTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    /** Smooth 1x12x12 images (horizontal ramps plus a little noise): strongly similar neighbours. */
    static ImageDataset smooth(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] px = new float[n * 144];
        int[] lb = new int[n];
        for (int i = 0; i < n; i++) {
            lb[i] = r.nextInt(3);
            double a = r.nextDouble(), f = 0.1 + 0.3 * r.nextDouble();
            for (int y = 0; y < 12; y++)
                for (int x = 0; x < 12; x++) px[i * 144 + y * 12 + x] = (float) (0.5 + 0.4 * Math.sin(a * 6 + f * x + 0.2 * y) + 0.01 * r.nextGaussian());
        }
        return ImageDataset.ofFloats("smooth", px, n, 1, 12, 12, lb, 3);
    }

    @Test
    void differenceAndReconstructionFollowTheDefinitions() {
        float[][] x = {{1, 2, 4, 8, 16}, {0, 1, 0, 1, 0}};
        assertArrayEquals(new float[]{-1, -2, -4, -8, 0}, AdjacentDifference.difference(x)[0]);
        assertArrayEquals(new float[]{-1, 1, -1, 1, 0}, AdjacentDifference.difference(x)[1]);
        assertArrayEquals(new float[]{1, 1, 4, 4, 16}, AdjacentDifference.reconstruction(x)[0]);
        assertArrayEquals(new float[]{0, 0, 0, 0, 0}, AdjacentDifference.reconstruction(x)[1]);
        float[][] n = AdjacentDifference.normalise(new float[][]{{-2, 0, 2}});
        assertArrayEquals(new float[]{0, 0.5f, 1}, n[0]);
        assertEquals(0, AdjacentDifference.relativeError(x, x));
        assertEquals(1.0, AdjacentDifference.relativeError(new float[][]{{0, 0}}, new float[][]{{3, 4}}), 1e-12);
    }

    @Test
    void recorderSeesEveryConvInputAndUninstalls() {
        try (Sequential m = Models.byName("resnet-small", 1, 12, 12, 3, Method.DENSE, 1)) {
            ImageDataset d = smooth(4, 1);
            m.submodule("3.bn1").eval();   // a layer the user keeps in eval mode stays there
            List<String> seen = new ArrayList<>();
            List<int[]> shapes = new ArrayList<>();
            SpatialSimilarity.forward(m, d, new float[]{0.5f}, new float[]{0.25f}, 4, (name, x) -> { seen.add(name); shapes.add(x.shape()); });
            assertEquals(new ArrayList<>(FeatureRecorder.convLayers(m).keySet()), seen);
            assertEquals(List.of("0", "3.conv1", "3.conv2", "4.conv1", "4.conv2", "4.downsample.0", "5.conv1", "5.conv2", "5.downsample.0"), seen);
            assertArrayEquals(new int[]{4, 1, 12, 12}, shapes.get(0));
            assertArrayEquals(new int[]{4, 16, 12, 12}, shapes.get(1));
            assertArrayEquals(new int[]{4, 16, 12, 12}, shapes.get(3));   // 4.conv1: stride 2 inside
            assertArrayEquals(new int[]{4, 32, 6, 6}, shapes.get(4));
            assertNull(Conv2d.INPUT_HOOK.get());
            assertTrue(m.isTraining() && m.submodule("3.conv1").isTraining(), "the model's mode is restored");
            assertFalse(m.submodule("3.bn1").isTraining(), "each module's own mode is restored");
        }
    }

    @Test
    void firstLayerSimilarityIsTheImagesAndBeatsNoise() {
        try (Sequential m = Models.byName("resnet-small", 1, 12, 12, 3, Method.DENSE, 1)) {
            ImageDataset real = smooth(40, 2), noise = SpatialSimilarity.whiteNoise(40, 1, 12, 12, 3);
            float[] mean = {0.5f}, std = {0.25f};
            // 16 bins: 5,280 pairs per tensor are too few for 256 bins (plug-in bias ~ 255^2 / (2 n ln 2) = 8.9 bits)
            var r = SpatialSimilarity.measure(m, real, mean, std, 16, 16, n -> true);
            var z = SpatialSimilarity.measure(m, noise, mean, std, 16, 16, n -> true);
            assertEquals(9, r.size());
            // layer "0" sees the normalised images themselves: compare with Entropy on them directly
            float[] norm = new float[real.size() * 144];
            for (int i = 0; i < norm.length; i++) norm[i] = (real.floats()[i] - 0.5f) / 0.25f;
            Entropy.Similarity direct = Entropy.horizontalSimilarity(norm, new int[]{40, 1, 12, 12}, 16);
            assertEquals(direct.similarity(), r.get(0).entropy().similarity(), 1e-9);
            assertEquals(40L * 12 * 11, r.get(0).entropy().pairs());
            assertTrue(z.get(0).entropy().similarity() < 0.1, "white noise: " + z.get(0).entropy().similarity());
            assertTrue(r.get(0).entropy().similarity() > z.get(0).entropy().similarity() + 0.5,
                    r.get(0).entropy().similarity() + " vs noise " + z.get(0).entropy().similarity());
        }
    }

    @Test
    void cliWritesTableChartAndFigure5(@TempDir Path dir) throws Exception {
        TrainData data = new TrainData("smooth", smooth(32, 4), smooth(24, 5), new float[]{0.5f}, new float[]{0.25f});
        Outcome r = Outcome.of((o, e) -> Main.run(new String[]{"similarity", "--images", "20", "--batch", "10", "--out", dir.toString(),
                "--fig5-layers", "0,4.conv1"}, o, e, s -> data));
        String out = r.out();
        assertEquals(0, r.rc(), r.err());
        String md = Files.readString(dir.resolve("similarity.md"));
        assertTrue(md.contains("| # | layer |"), md);
        assertEquals(7, md.lines().filter(l -> l.matches("\\| \\d+ \\| .*")).count(), md);   // 7 convs without the two 1x1
        assertFalse(md.contains("downsample"));
        assertTrue(out.contains("relative error"), out);
        for (String f : List.of("similarity.png", "fig5-0.png", "fig5-4_conv1.png")) assertNotNull(ImageIO.read(dir.resolve(f).toFile()), f);
        List<String> csv = Files.readAllLines(dir.resolve("similarity.csv"));
        assertEquals(1 + 2 * 7, csv.size());
        assertTrue(csv.get(0).endsWith(",pairs,bias_floor"), csv.get(0));   // the bias floor as in similarity.md
        // a layer whose similarity is at or below the estimator's bias floor is named (the CLI then says to use more --images)
        Entropy.Similarity few = new Entropy.Similarity(3.0, 3.0, 5.9, 40, 64), many = new Entropy.Similarity(3.0, 3.0, 4.0, 1_000_000, 64);
        assertTrue(few.similarity() <= few.noiseFloor() && many.similarity() > many.noiseFloor(), few.noiseFloor() + " " + many.noiseFloor());
        assertEquals("2", Main.belowFloor(List.of(new SpatialSimilarity.Layer("a", 1, 2, 2, 0, 1, many), new SpatialSimilarity.Layer("b", 1, 2, 2, 0, 1, few))));
        assertNull(Main.belowFloor(List.of(new SpatialSimilarity.Layer("a", 1, 2, 2, 0, 1, many))));

        Outcome bad = Outcome.of((o, e) -> Main.run(new String[]{"similarity", "--fig5-layers", "nope", "--out", dir.toString(), "--images", "4"},
                o, e, s -> data));
        assertEquals(2, bad.rc());
        assertTrue(bad.err().contains("no conv layer 'nope'"));
        assertEquals(2, Outcome.of((o, e) -> Main.run(new String[]{"similarity", "--bogus"}, o, e, s -> data)).rc());
    }

    /**
     * Figure 5's options and the model name are usage errors before anything is measured or written: --fig5-layers ","
     * drew no Figure 5 yet said "wrote ... fig5-*.png", and a bad --fig5-image was refused after similarity.md was written;
     * a layer named twice failed after the measuring (the output set refused fig5-0.png twice), every measurement lost.
     */
    @Test
    void badFigure5OptionsAreRefusedBeforeAnyOutput(@TempDir Path dir) throws Exception {
        TrainData data = new TrainData("smooth", smooth(32, 4), smooth(24, 5), new float[]{0.5f}, new float[]{0.25f});
        Path out = dir.resolve("out");
        for (String[] bad : List.of(new String[]{"--fig5-layers", ",", "--fig5-layers names no layer; layers: [0, 3.conv1, "},
                new String[]{"--fig5-layers", "0,4.conv1,0", "--fig5-layers names 0 twice (both would be fig5-0.png)"},
                new String[]{"--fig5-image", "24", "--fig5-image 24 is beyond the 24 test images"},
                new String[]{"--model", "vgg", "unknown model 'vgg'"})) {
            Outcome r = Outcome.of((o, e) -> Main.run(new String[]{"similarity", "--images", "4", "--out", out.toString(), bad[0], bad[1]}, o, e, s -> data));
            assertEquals(2, r.rc(), r.err());
            assertTrue(r.err().contains(bad[2]), r.err());
            assertEquals("", r.out());
            assertFalse(Files.exists(out), "nothing written for " + bad[0]);
        }
    }

    /**
     * An output in the way (a directory named similarity.csv or like a Figure 5 image) fails before anything is measured,
     * one line naming it, the earlier table as it was; it was found after the measuring, with a new similarity.md
     * beside no CSV of its own.
     */
    @Test
    void anOutputInTheWayFailsBeforeMeasuring(@TempDir Path dir) throws Exception {
        TrainData data = new TrainData("smooth", smooth(32, 4), smooth(24, 5), new float[]{0.5f}, new float[]{0.25f});
        for (String obstacle : List.of("similarity.csv", "fig5-4_conv1.png")) {
            Path out = Files.createDirectories(dir.resolve(obstacle));
            Files.createDirectories(out.resolve(obstacle).resolve("x"));
            Files.writeString(out.resolve("similarity.md"), "an earlier run's table\n");
            var before = Outcome.filesIn(out);
            Outcome r = Outcome.of((o, e) -> Main.run(new String[]{"similarity", "--images", "8", "--batch", "8", "--out", out.toString(),
                    "--fig5-layers", "0,4.conv1"}, o, e, s -> data));
            assertEquals("", r.out(), "nothing measured");
            assertEquals(before, Outcome.filesIn(out));
            assertEquals(1, r.rc(), r.err());
            assertEquals(List.of("fst4j analyze: " + out.resolve(obstacle) + ": is a directory, in the way of the output file"), r.err().lines().toList());
        }
    }

    /**
     * A write that fails after the measuring (similarity.csv's target became a non-empty directory meanwhile) leaves the
     * previous table, chart and Figure 5 images as they were, and no temporary file.
     */
    @Test
    void aFailedWriteLeavesThePreviousFiles(@TempDir Path dir) throws Exception {
        TrainData data = new TrainData("smooth", smooth(32, 4), smooth(24, 5), new float[]{0.5f}, new float[]{0.25f});
        String[] args = {"similarity", "--images", "8", "--batch", "8", "--out", dir.toString(), "--fig5-layers", "0,4.conv1"};
        assertEquals(0, Outcome.of((o, e) -> Main.run(args, o, e, s -> data)).rc());
        Files.delete(dir.resolve("similarity.csv"));
        Files.writeString(dir.resolve("similarity.md"), "an earlier run's table\n");   // so that the same numbers again would show
        Files.write(dir.resolve("fig5-0.png"), new byte[]{1, 2, 3});
        var before = Outcome.filesIn(dir);
        Outcome r = Outcome.whenPrinted("output in", () -> Files.createDirectories(dir.resolve("similarity.csv/x")),
                (o, e) -> Main.run(args, o, e, s -> data));
        assertEquals(1, r.rc(), r.err());
        assertTrue(r.out().contains("relative error"), "measured, then the write failed: " + r.out());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("similarity.csv"), r.err());
        before.put("similarity.csv", "a directory");
        assertEquals(before, Outcome.filesIn(dir));
    }
}
