package fst4j.nn.analysis;

import fst4j.autograd.Grad;
import fst4j.autograd.Var;
import fst4j.nn.Module;
import fst4j.nn.data.DataLoader;
import fst4j.nn.data.ImageDataset;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Figure 4 of the paper for one model: the similarity H(X) - H(X|X') ({@link Entropy}) of each convolution's input
 * X, measured over a set of images. Each layer's input for the whole image set is one N x C x H x W tensor: its
 * quantisation range is its min..max over all the images (first pass), and the joint histogram of horizontal
 * neighbour pairs pools every image and channel (second pass, batch by batch, so nothing of size N is kept).
 * The model runs in eval mode without a graph.
 */
public final class SpatialSimilarity {
    private SpatialSimilarity() {}

    /** One layer's input: its shape per image (C, H, W), the quantisation range and the entropies. */
    public record Layer(String name, int channels, int height, int width, float min, float max, Entropy.Similarity entropy) {}

    /** The similarity of every convolution's input (in forward order; those in skip, e.g. 1x1 projections, left out). */
    public static List<Layer> measure(Module model, ImageDataset images, float[] mean, float[] std, int batch, int bins,
                                      java.util.function.Predicate<String> include) {
        Map<String, float[]> ranges = new LinkedHashMap<>();
        Map<String, int[]> shapes = new LinkedHashMap<>();
        forward(model, images, mean, std, batch, (name, x) -> {
            if (!include.test(name)) return;
            float[] r = Entropy.range(x.toFloatArray());
            int[] s = x.shape();
            shapes.putIfAbsent(name, new int[]{s[1], s[2], s[3]});
            ranges.merge(name, r, (a, b) -> new float[]{Math.min(a[0], b[0]), Math.max(a[1], b[1])});
        });
        Map<String, Entropy.PairHistogram> hist = new LinkedHashMap<>();
        ranges.forEach((k, r) -> hist.put(k, new Entropy.PairHistogram(bins, r[0], r[1])));
        forward(model, images, mean, std, batch, (name, x) -> {
            Entropy.PairHistogram h = hist.get(name);
            if (h != null) h.addHorizontalPairs(x.toFloatArray(), x.shape());
        });
        List<Layer> out = new ArrayList<>();
        for (String k : hist.keySet()) {
            int[] s = shapes.get(k);
            float[] r = ranges.get(k);
            out.add(new Layer(k, s[0], s[1], s[2], r[0], r[1], hist.get(k).result()));
        }
        return out;
    }

    /** Runs the images through the model in batches (normalised with mean/std), calling listener with each conv input. */
    public static void forward(Module model, ImageDataset images, float[] mean, float[] std, int batch,
                               java.util.function.BiConsumer<String, Tensor> listener) {
        DataLoader loader = DataLoader.builder(images).batchSize(batch).normalize(mean, std).build();
        Runnable modes = model.modeRestorer();   // each module's own: a layer the user put in eval mode stays there
        model.eval();
        try (Grad.Restore g = Grad.noGrad(); FeatureRecorder r = new FeatureRecorder(model, listener)) {
            while (loader.hasNext()) {
                try (Scope s = Scope.open()) {
                    model.forward(Var.of(loader.next().images()));
                }
            }
        } finally {
            modes.run();
        }
    }

    /** The white-noise control: n images of the given shape with pixels uniform in [0, 1) (seeded). */
    public static ImageDataset whiteNoise(int n, int channels, int height, int width, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] px = new float[n * channels * height * width];
        for (int i = 0; i < px.length; i++) px[i] = (float) rng.nextDouble();
        return ImageDataset.ofFloats("white-noise", px, n, channels, height, width, new int[n], 1);
    }

    /** One conv input of one image, C x H x W, for Figure 5. */
    public record Feature(String layer, int channels, int height, int width, float[] values) {
        /** Channel c as rows x columns. */
        public float[][] channel(int c) {
            float[][] m = new float[height][width];
            for (int y = 0; y < height; y++) System.arraycopy(values, (c * height + y) * width, m[y], 0, width);
            return m;
        }

        /** The channel with the largest variance (the most visible one). */
        public int mostVariedChannel() {
            int best = 0;
            double bestVar = -1;
            int plane = height * width;
            for (int c = 0; c < channels; c++) {
                double s = 0, q = 0;
                for (int i = 0; i < plane; i++) { double v = values[c * plane + i]; s += v; q += v * v; }
                double var = q / plane - (s / plane) * (s / plane);
                if (var > bestVar) { bestVar = var; best = c; }
            }
            return best;
        }
    }

    /** The inputs of the named conv layers for image index of images (one forward, batch of 1). */
    public static Map<String, Feature> features(Module model, ImageDataset images, int index, float[] mean, float[] std, List<String> layers) {
        Map<String, Feature> out = new LinkedHashMap<>();
        forward(model, images.slice(index, index + 1), mean, std, 1, (name, x) -> {
            if (!layers.contains(name) || out.containsKey(name)) return;
            int[] s = x.shape();
            out.put(name, new Feature(name, s[1], s[2], s[3], x.toFloatArray()));
        });
        for (String l : layers)
            if (!out.containsKey(l)) throw new IllegalArgumentException("no convolution named '" + l + "'; layers: " + FeatureRecorder.convLayers(model).keySet());
        return out;
    }
}
