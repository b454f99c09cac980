package fst4j.nn.data;

import fst4j.tensor.DType;
import fst4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.NoSuchElementException;

/**
 * Batches of an {@link ImageDataset} as float32 tensors [B, C, H, W] plus int labels, with seeded per-epoch shuffling,
 * optional drop-last, random crop with zero padding and horizontal flip (both seeded), and per-channel normalisation
 * {@code (pixel - mean[c]) / std[c]} (pixels of byte datasets are byte/255; padding is pixel value 0, as in
 * torchvision's {@code RandomCrop(padding=p)} before {@code Normalize}).
 *
 * <p>Everything random is a pure function of (seed, epoch, position in the epoch): the order of epoch e is a
 * Fisher-Yates shuffle seeded by (seed, e), and the crop offsets and flip of the sample at position p of epoch e
 * are a hash of (seed, e, p). So a loader restored from {@link #state()} yields exactly the batches the original
 * would have, and the state is three numbers ({@link State#toLongs()} stores them in a safetensors I64 entry).
 *
 * <pre>{@code
 * DataLoader train = DataLoader.builder(split.train()).batchSize(128).shuffle(true).seed(42).dropLast(true)
 *         .normalize(Datasets.FASHION_MNIST_MEAN, Datasets.FASHION_MNIST_STD).randomCrop(2).horizontalFlip(true).build();
 * for (int e = 0; e < epochs; e++) {
 *     train.startEpoch(e);
 *     while (train.hasNext()) {
 *         try (Scope step = Scope.open()) {
 *             DataLoader.Batch b = train.next();   // b.images() is closed with the scope
 *             ...
 *         }
 *     }
 * }
 * }</pre>
 *
 * Or as a torch DataLoader is used: each {@code for} loop over the loader runs one epoch, the next one when the last
 * has been run to its end ({@link #iterator()}):
 * <pre>{@code
 * for (int e = 0; e < epochs; e++)
 *     for (DataLoader.Batch b : train) try (Scope step = Scope.open()) { ... }
 * }</pre>
 *
 * Per batch it allocates the image tensor (owned by the caller's current Scope, or by the caller) and the label
 * array (the caller may keep it); the staging buffer and the shuffled order are reused. Not thread-safe.
 */
public final class DataLoader implements Iterable<DataLoader.Batch> {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** One batch: images [B, C, H, W] float32 and their labels (length B). */
    public record Batch(Tensor images, int[] labels) {
        public int size() { return labels.length; }
    }

    /** Where a loader is: its seed, the epoch, and how many samples of the epoch it has handed out. */
    public record State(long seed, int epoch, int position) {
        public State {
            if (epoch < 0 || position < 0) throw new IllegalArgumentException("invalid loader state: epoch " + epoch + ", position " + position);
        }

        /** {seed, epoch, position}, e.g. for a safetensors I64 entry. */
        public long[] toLongs() { return new long[]{seed, epoch, position}; }

        public static State fromLongs(long[] v) {
            if (v == null || v.length != 3) throw new IllegalArgumentException("a loader state is 3 longs {seed, epoch, position}");
            return new State(v[0], Math.toIntExact(v[1]), Math.toIntExact(v[2]));
        }
    }

    public static Builder builder(ImageDataset dataset) { return new Builder(dataset); }

    /** Options; defaults: batch 64, no shuffle, seed 0, keep the last partial batch, no normalisation or augmentation. */
    public static final class Builder {
        private final ImageDataset ds;
        private int batchSize = 64;
        private boolean shuffle, dropLast, flip;
        private long seed;
        private int padding = -1;
        private float[] mean, std;

        private Builder(ImageDataset ds) {
            if (ds == null) throw new IllegalArgumentException("dataset is null");
            this.ds = ds;
        }

        public Builder batchSize(int b) {
            if (b <= 0) throw new IllegalArgumentException("batch size must be positive, got " + b);
            batchSize = b;
            return this;
        }

        public Builder shuffle(boolean s) { shuffle = s; return this; }
        public Builder seed(long s) { seed = s; return this; }
        public Builder dropLast(boolean d) { dropLast = d; return this; }

        /** Per-channel mean and std (length C, or 1 for all channels); std must be positive. */
        public Builder normalize(float[] mean, float[] std) {
            if (mean == null || std == null || mean.length != std.length || (mean.length != 1 && mean.length != ds.channels()))
                throw new IllegalArgumentException("normalize needs mean and std of length 1 or " + ds.channels());
            for (float s : std) if (!(s > 0)) throw new IllegalArgumentException("std must be positive, got " + s);
            this.mean = mean.clone();
            this.std = std.clone();
            return this;
        }

        /** Random crop of the original size from the image zero-padded by padding on each side (0: no crop). */
        public Builder randomCrop(int padding) {
            if (padding < 0) throw new IllegalArgumentException("padding must be >= 0, got " + padding);
            this.padding = padding;
            return this;
        }

        /** Mirror each image left-right with probability 1/2. */
        public Builder horizontalFlip(boolean f) { flip = f; return this; }

        public DataLoader build() { return new DataLoader(this); }
    }

    private final ImageDataset ds;
    private final int batchSize, padding;
    private final boolean shuffle, dropLast, flip;
    private final long seed;
    private final float[] mean, std;   // per channel, length C
    private final float[][] lut;       // byte datasets: normalised value of each byte, per channel
    private final int[] order;
    private final float[] staging;
    private int epoch, position;

    private DataLoader(Builder b) {
        ds = b.ds;
        batchSize = b.batchSize;
        shuffle = b.shuffle;
        dropLast = b.dropLast;
        flip = b.flip;
        seed = b.seed;
        padding = Math.max(b.padding, 0);
        int c = ds.channels();
        mean = new float[c];
        std = new float[c];
        for (int k = 0; k < c; k++) {
            mean[k] = b.mean == null ? 0f : b.mean[b.mean.length == 1 ? 0 : k];
            std[k] = b.std == null ? 1f : b.std[b.std.length == 1 ? 0 : k];
        }
        if (ds.isBytes()) {
            lut = new float[c][256];
            for (int k = 0; k < c; k++)
                for (int v = 0; v < 256; v++) lut[k][v] = (v / 255f - mean[k]) / std[k];
        } else {
            lut = null;
        }
        order = new int[ds.size()];
        staging = new float[Math.min(batchSize, Math.max(ds.size(), 1)) * ds.imageSize()];
        startEpoch(0);
    }

    public ImageDataset dataset() { return ds; }
    public int batchSize() { return batchSize; }
    public int epoch() { return epoch; }
    /** Samples of the current epoch handed out so far. */
    public int position() { return position; }

    /** Batches per epoch: floor(N/B) with drop-last, else ceil(N/B). */
    public int batchesPerEpoch() {
        int n = ds.size();
        return dropLast ? n / batchSize : (n + batchSize - 1) / batchSize;
    }

    /** Samples per epoch (N, or the whole batches' worth with drop-last). */
    public int samplesPerEpoch() { return dropLast ? batchesPerEpoch() * batchSize : ds.size(); }

    /** Starts epoch e from its beginning (its order depends only on seed and e). */
    public void startEpoch(int e) {
        if (e < 0) throw new IllegalArgumentException("epoch must be >= 0, got " + e);
        epoch = e;
        position = 0;
        int n = order.length;
        for (int i = 0; i < n; i++) order[i] = i;
        if (shuffle) {
            long s = mix(seed ^ mix(0x5EED_0000_0000L + e));
            for (int i = n - 1; i > 0; i--) {
                s += GOLDEN;
                int j = (int) (((mix(s) >>> 33) * (i + 1)) >>> 31);   // uniform in [0, i]
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
    }

    /** Starts the next epoch. */
    public void nextEpoch() { startEpoch(epoch + 1); }

    /** The loader's position, for checkpoints. */
    public State state() { return new State(seed, epoch, position); }

    /** Continues from a state saved by {@link #state()} of a loader with the same dataset and options. */
    public void restore(State st) {
        check(st);
        startEpoch(st.epoch());
        position = st.position();
    }

    /** What {@link #restore} would refuse, without changing anything. */
    public void check(State st) {
        if (st.seed() != seed) throw new IllegalArgumentException("state has seed " + st.seed() + " but this loader's seed is " + seed);
        if (st.position() > samplesPerEpoch())
            throw new IllegalArgumentException("state position " + st.position() + " is beyond the " + samplesPerEpoch() + " samples of an epoch");
    }

    /** Whether the current epoch has another batch. */
    /**
     * The batches of one epoch, as iterating a torch DataLoader: the rest of the current epoch where it has batches left
     * (a fresh loader's epoch 0, one restored part way, or one a loop left early), else the next epoch from its start.
     * The iterator reads this loader's position, so one loop at a time.
     */
    @Override
    public java.util.Iterator<Batch> iterator() {
        if (!hasNext()) nextEpoch();
        return new java.util.Iterator<>() {
            @Override public boolean hasNext() { return DataLoader.this.hasNext(); }
            @Override public Batch next() {
                if (!DataLoader.this.hasNext()) throw new java.util.NoSuchElementException("epoch " + epoch + " has no batch left");
                return DataLoader.this.next();
            }
        };
    }

    public boolean hasNext() {
        int left = ds.size() - position;
        return dropLast ? left >= batchSize : left > 0;
    }

    /** The next batch of the current epoch; {@link NoSuchElementException} at its end. */
    public Batch next() {
        if (!hasNext()) throw new NoSuchElementException("epoch " + epoch + " is over after " + position + " samples; call startEpoch/nextEpoch");
        int b = Math.min(batchSize, ds.size() - position);
        int is = ds.imageSize();
        int[] labels = new int[b];
        for (int k = 0; k < b; k++) {
            int p = position + k;
            int idx = order[p];
            labels[k] = ds.labels()[idx];
            fill(idx, k * is, sampleHash(p));
        }
        position += b;
        Tensor t = Tensor.empty(DType.F32, b, ds.channels(), ds.height(), ds.width());
        MemorySegment.copy(staging, 0, t.data(), F, 0, b * is);
        return new Batch(t, labels);
    }

    private long sampleHash(int p) {
        return mix(seed ^ mix(((long) epoch << 32) + p + 0x0A06_0000_0000_0000L));
    }

    /** Writes the augmented, normalised image idx into staging at out. */
    private void fill(int idx, int out, long h) {
        int c = ds.channels(), hh = ds.height(), w = ds.width(), plane = hh * w;
        int span = 2 * padding + 1;
        int dy = padding > 0 ? (int) ((h & 0xFFFF) % span) - padding : 0;
        int dx = padding > 0 ? (int) (((h >>> 16) & 0xFFFF) % span) - padding : 0;
        boolean mirror = flip && ((h >>> 40) & 1) == 1;
        long base = (long) idx * c * plane;
        byte[] bytes = ds.bytes();
        float[] floats = ds.floats();
        for (int ch = 0; ch < c; ch++) {
            float[] l = lut != null ? lut[ch] : null;
            float pad = l != null ? l[0] : (0f - mean[ch]) / std[ch];
            float m = mean[ch], inv = 1f / std[ch];
            int src = (int) (base + (long) ch * plane);
            int dst = out + ch * plane;
            for (int y = 0; y < hh; y++) {
                int sy = y + dy;
                int row = dst + y * w;
                if (sy < 0 || sy >= hh) {
                    for (int x = 0; x < w; x++) staging[row + x] = pad;
                    continue;
                }
                int srow = src + sy * w;
                if (dx == 0 && !mirror) { // the common case: a straight row copy
                    if (l != null) for (int x = 0; x < w; x++) staging[row + x] = l[bytes[srow + x] & 0xFF];
                    else for (int x = 0; x < w; x++) staging[row + x] = (floats[srow + x] - m) * inv;
                    continue;
                }
                for (int x = 0; x < w; x++) {
                    int sx = (mirror ? w - 1 - x : x) + dx;
                    float v;
                    if (sx < 0 || sx >= w) v = pad;
                    else if (l != null) v = l[bytes[srow + sx] & 0xFF];
                    else v = (floats[srow + sx] - m) * inv;
                    staging[row + x] = v;
                }
            }
        }
    }

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    /** SplitMix64's finaliser. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
