package fst4j.nn.data;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class DataLoaderTest {

    /** n float images of c x h x w; every pixel of image i is i, and its label is i (n classes). */
    static ImageDataset indexed(int n, int c, int h, int w) {
        int is = c * h * w;
        float[] px = new float[n * is];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            Arrays.fill(px, i * is, (i + 1) * is, i);
            labels[i] = i;
        }
        return ImageDataset.ofFloats("indexed", px, n, c, h, w, labels, n);
    }

    /** All batches of one epoch as {labels..., then the flat image values}. */
    static List<float[]> epoch(DataLoader l, int e) {
        l.startEpoch(e);
        List<float[]> out = new ArrayList<>();
        while (l.hasNext()) {
            try (Scope _ = Scope.open()) {
                DataLoader.Batch b = l.next();
                out.add(concat(b));
            }
        }
        return out;
    }

    static float[] concat(DataLoader.Batch b) {
        float[] img = b.images().toFloatArray();
        float[] r = new float[b.size() + img.length];
        for (int i = 0; i < b.size(); i++) r[i] = b.labels()[i];
        System.arraycopy(img, 0, r, b.size(), img.length);
        return r;
    }

    @Test
    void batchesCoverEveryImageOnceWithMatchingLabels() {
        ImageDataset ds = indexed(10, 2, 3, 3);
        DataLoader l = DataLoader.builder(ds).batchSize(4).shuffle(true).seed(7).build();
        assertEquals(3, l.batchesPerEpoch());
        l.startEpoch(0);
        Set<Integer> seen = new HashSet<>();
        List<Integer> sizes = new ArrayList<>();
        while (l.hasNext()) {
            try (Scope s = Scope.open()) {
                DataLoader.Batch b = l.next();
                Tensor t = b.images();
                assertEquals(DType.F32, t.dtype());
                assertArrayEquals(new int[]{b.size(), 2, 3, 3}, t.shape());
                float[] v = t.toFloatArray();
                for (int k = 0; k < b.size(); k++) {
                    assertTrue(seen.add(b.labels()[k]));
                    for (int j = 0; j < 18; j++) assertEquals(b.labels()[k], v[k * 18 + j]);
                }
                sizes.add(b.size());
                assertEquals(1, s.size(), "only the image tensor is left for the scope to close");
            }
        }
        assertEquals(List.of(4, 4, 2), sizes);
        assertEquals(10, seen.size());
        assertThrows(NoSuchElementException.class, l::next);
    }

    @Test
    void dropLast() {
        DataLoader l = DataLoader.builder(indexed(10, 1, 2, 2)).batchSize(4).dropLast(true).build();
        assertEquals(2, l.batchesPerEpoch());
        assertEquals(8, l.samplesPerEpoch());
        List<float[]> e = epoch(l, 0);
        assertEquals(2, e.size());
        // no shuffle: in order
        assertArrayEquals(new float[]{0, 1, 2, 3}, Arrays.copyOf(e.get(0), 4));
        assertArrayEquals(new float[]{4, 5, 6, 7}, Arrays.copyOf(e.get(1), 4));
    }

    @Test
    void shuffleIsReproducibleAndDiffersAcrossEpochsAndSeeds() {
        ImageDataset ds = indexed(50, 1, 2, 2);
        DataLoader a = DataLoader.builder(ds).batchSize(50).shuffle(true).seed(1).build();
        DataLoader b = DataLoader.builder(ds).batchSize(50).shuffle(true).seed(1).build();
        DataLoader c = DataLoader.builder(ds).batchSize(50).shuffle(true).seed(2).build();
        float[] a0 = epoch(a, 0).get(0), a1 = epoch(a, 1).get(0);
        assertArrayEquals(a0, epoch(b, 0).get(0));
        assertArrayEquals(a1, epoch(b, 1).get(0));
        assertArrayEquals(a0, epoch(a, 0).get(0), "epoch 0 again gives the same order");
        assertFalse(Arrays.equals(a0, a1));
        assertFalse(Arrays.equals(a0, epoch(c, 0).get(0)));
        float[] sorted = Arrays.copyOf(a0, 50);
        Arrays.sort(sorted);
        for (int i = 0; i < 50; i++) assertEquals(i, sorted[i]);
    }

    @Test
    void restoredStateContinuesIdentically() {
        ImageDataset ds = indexed(23, 3, 5, 5);
        DataLoader.Builder opts = DataLoader.builder(ds).batchSize(4).shuffle(true).seed(99).randomCrop(2).horizontalFlip(true)
                .normalize(new float[]{1, 2, 3}, new float[]{2, 2, 4});
        DataLoader a = opts.build();
        a.startEpoch(3);
        try (Scope _ = Scope.open()) {
            a.next();
            a.next();
        }
        DataLoader.State st = a.state();
        assertEquals(new DataLoader.State(99, 3, 8), st);
        assertEquals(st, DataLoader.State.fromLongs(st.toLongs()));
        List<float[]> rest = new ArrayList<>();
        while (a.hasNext()) try (Scope _ = Scope.open()) { rest.add(concat(a.next())); }

        DataLoader b = opts.build();
        b.restore(DataLoader.State.fromLongs(st.toLongs()));
        List<float[]> again = new ArrayList<>();
        while (b.hasNext()) try (Scope _ = Scope.open()) { again.add(concat(b.next())); }
        assertEquals(rest.size(), again.size());
        for (int i = 0; i < rest.size(); i++) assertArrayEquals(rest.get(i), again.get(i));
        // and the whole epoch from a fresh loader ends with the same batches
        List<float[]> whole = epoch(opts.build(), 3);
        for (int i = 0; i < rest.size(); i++) assertArrayEquals(rest.get(i), whole.get(whole.size() - rest.size() + i));
        assertThrows(IllegalArgumentException.class, () -> DataLoader.builder(ds).seed(5).build().restore(st));
    }

    @Test
    void normalisationPerChannelOfBytes() {
        byte[] px = {0, (byte) 255, 51, 102, /* image 1 */ 10, 20, 30, (byte) 200};
        ImageDataset ds = ImageDataset.ofBytes("b", px, 2, 2, 1, 2, new int[]{0, 1}, 2);
        DataLoader l = DataLoader.builder(ds).batchSize(2).normalize(new float[]{0.5f, 0.25f}, new float[]{0.5f, 0.25f}).build();
        try (Scope _ = Scope.open()) {
            float[] v = l.next().images().toFloatArray();
            for (int i = 0; i < 8; i++) {
                int ch = (i / 2) % 2;
                float m = ch == 0 ? 0.5f : 0.25f;
                assertEquals(((px[i] & 0xFF) / 255f - m) / m, v[i], 1e-6, "value " + i);
            }
        }
    }

    @Test
    void cropAndFlipAreShiftedMirroredWindowsOfThePaddedImage() {
        int n = 300, h = 4, w = 5, p = 2;
        float[] one = new float[h * w];
        for (int k = 0; k < one.length; k++) one[k] = k + 1;   // distinct, non-zero pixels
        float[] px = new float[n * h * w];
        for (int i = 0; i < n; i++) System.arraycopy(one, 0, px, i * h * w, h * w);
        ImageDataset ds = ImageDataset.ofFloats("crop", px, n, 1, h, w, new int[n], 1);
        DataLoader l = DataLoader.builder(ds).batchSize(n).shuffle(true).seed(3).randomCrop(p).horizontalFlip(true).build();
        Set<String> seen = new HashSet<>();
        try (Scope _ = Scope.open()) {
            float[] v = l.next().images().toFloatArray();
            for (int i = 0; i < n; i++) {
                String match = null;
                search:
                for (int dy = -p; dy <= p; dy++)
                    for (int dx = -p; dx <= p; dx++)
                        for (int f = 0; f < 2; f++) {
                            boolean ok = true;
                            for (int y = 0; y < h && ok; y++)
                                for (int x = 0; x < w && ok; x++) {
                                    int sy = y + dy, sx = (f == 1 ? w - 1 - x : x) + dx;
                                    float want = sy < 0 || sy >= h || sx < 0 || sx >= w ? 0 : one[sy * w + sx];
                                    ok = v[i * h * w + y * w + x] == want;
                                }
                            if (ok) { match = dy + "," + dx + "," + f; break search; }
                        }
                assertNotNull(match, "image " + i + " is no crop/flip of the original");
                seen.add(match);
            }
        }
        assertTrue(seen.size() > 30, "only " + seen.size() + " of 50 crop/flip combinations in 300 samples");
        assertTrue(seen.stream().anyMatch(m -> m.endsWith(",1")) && seen.stream().anyMatch(m -> m.endsWith(",0")));
    }

    @Test
    void noAugmentationByDefaultAndSubset() {
        ImageDataset ds = indexed(9, 1, 3, 3).subset(4);
        assertEquals(4, ds.size());
        assertEquals(4, ds.labels().length);
        assertEquals(3, indexed(9, 1, 3, 3).slice(2, 5).labels()[1]);
        DataLoader l = DataLoader.builder(ds).batchSize(8).build();
        try (Scope _ = Scope.open()) {
            DataLoader.Batch b = l.next();
            assertEquals(4, b.size());
            assertArrayEquals(ds.floats(), b.images().toFloatArray());
        }
        assertFalse(l.hasNext());
        l.nextEpoch();
        assertEquals(1, l.epoch());
        assertTrue(l.hasNext());
    }

    @Test
    void channelMeanStd() {
        byte[] px = {0, (byte) 255, 0, (byte) 255, /* ch 1 */ 51, 51, 51, 51};
        ImageDataset ds = ImageDataset.ofBytes("m", px, 1, 2, 2, 2, new int[]{0}, 1);
        float[][] ms = ds.channelMeanStd();
        assertArrayEquals(new float[]{0.5f, 0.2f}, ms[0], 1e-6f);
        assertArrayEquals(new float[]{0.5f, 0f}, ms[1], 1e-6f);
        assertThrows(IllegalArgumentException.class, () -> ImageDataset.ofBytes("x", new byte[3], 1, 1, 2, 2, new int[1], 1));
        assertThrows(IllegalArgumentException.class, () -> ImageDataset.ofBytes("x", new byte[4], 1, 1, 2, 2, new int[]{3}, 2));
    }

    /** A float dataset with a NaN or infinite pixel is refused where it is made, naming the image. */
    @Test
    void nonFinitePixelsAreRefusedWhenADatasetIsMade() {
        for (float bad : new float[]{Float.NaN, Float.POSITIVE_INFINITY}) {
            float[] px = new float[3 * 4];
            px[2 * 4 + 1] = bad;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ImageDataset.ofFloats("bad", px, 3, 1, 2, 2, new int[3], 1));
            assertTrue(e.getMessage().contains("image 2 has a non-finite pixel") && e.getMessage().contains("at value 1"), e.getMessage());
        }
    }
}
