package fst4j.nn.analysis;

/**
 * Entropies for the spatial-similarity analysis of fst-method.md (Figure 4), in bits, from plug-in (maximum
 * likelihood) histogram estimates.
 * <ul>
 * <li>Quantisation: {@code bins} equal-width bins over [min, max] of the tensor; value v goes to bin
 *     {@code floor((v - min) / (max - min) * bins)}, clamped to {@code bins - 1} (so max lands in the last bin);
 *     a constant tensor (max == min) is all bin 0. 256 bins = the paper's 8-bit quantisation.</li>
 * <li>Pairs: for an N x C x H x W tensor, X = X[n, c, h, w] and X' = X[n, c, h, w + 1] for every n, c, h and
 *     w = 0 .. W-2: the horizontal (next-column) neighbour within the same row of the same channel of the same
 *     image; rows never wrap. N*C*H*(W-1) pairs in all.</li>
 * <li>H(X), H(X'), H(X, X') from the marginal and joint histograms of the pairs; H(X|X') = H(X, X') - H(X');
 *     similarity = H(X) - H(X|X'), the mutual information I(X; X') &gt;= 0.</li>
 * </ul>
 * The plug-in estimate of I(X; X') is biased upwards: for independent X, X' its expectation is about
 * (B-1)^2 / (2 n ln 2) bits for B occupied bins per variable and n pairs ({@link #independenceBias}), so a noise
 * control needs many pairs (256 bins and 1e6 pairs: about 0.05 bits).
 */
public final class Entropy {
    private Entropy() {}

    /** The paper's 8-bit quantisation. */
    public static final int BINS_8BIT = 256;

    /** Bin of v under uniform quantisation of [min, max] into bins bins (see the class comment). */
    public static int bin(float v, float min, float max, int bins) {
        if (!(max > min)) return 0;
        int b = (int) Math.floor((double) (v - min) / ((double) max - min) * bins);
        return b < 0 ? 0 : Math.min(b, bins - 1);
    }

    /** {min, max} of the finite values of x ({0, 0} when there are none). */
    public static float[] range(float[] x) {
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float v : x) {
            if (!Float.isFinite(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        return lo > hi ? new float[]{0, 0} : new float[]{lo, hi};
    }

    /** Each value's bin under uniform quantisation of [min(x), max(x)]. */
    public static int[] quantize(float[] x, int bins) {
        checkBins(bins);
        float[] r = range(x);
        int[] out = new int[x.length];
        for (int i = 0; i < x.length; i++) out[i] = bin(x[i], r[0], r[1], bins);
        return out;
    }

    /** Entropy in bits of the distribution given by counts (zeros allowed; all zero: 0). */
    public static double entropy(long[] counts) {
        long n = 0;
        for (long c : counts) {
            if (c < 0) throw new IllegalArgumentException("negative count " + c);
            n += c;
        }
        if (n == 0) return 0;
        double h = 0;
        for (long c : counts) if (c > 0) { double p = (double) c / n; h -= p * Math.log(p); }
        return Math.max(0, h / Math.log(2));
    }

    /** Entropy in bits of the empirical distribution of codes in 0..bins-1. */
    public static double entropy(int[] codes, int bins) {
        checkBins(bins);
        long[] c = new long[bins];
        for (int v : codes) c[v]++;
        return entropy(c);
    }

    /** The expected plug-in mutual information of independent variables with bins occupied bins each, from n pairs. */
    public static double independenceBias(int bins, long n) {
        return n <= 0 ? Double.POSITIVE_INFINITY : (double) (bins - 1) * (bins - 1) / (2.0 * n * Math.log(2));
    }

    /** The entropies of one set of (X, X') pairs. */
    public record Similarity(double hX, double hXp, double hJoint, long pairs, int bins) {
        /** H(X | X') = H(X, X') - H(X'). */
        public double conditional() { return Math.max(0, hJoint - hXp); }
        /** H(X) - H(X | X'). */
        public double similarity() { return hX - conditional(); }
        /** {@link Entropy#independenceBias} for these pairs: what independent noise would score on average. */
        public double noiseFloor() { return independenceBias(bins, pairs); }
    }

    /** The entropies of the pairs (x[i], xp[i]) of codes in 0..bins-1. */
    public static Similarity similarity(int[] x, int[] xp, int bins) {
        if (x.length != xp.length) throw new IllegalArgumentException(x.length + " X values but " + xp.length + " X' values");
        PairHistogram h = new PairHistogram(bins, 0, 1);
        for (int i = 0; i < x.length; i++) h.addCodes(x[i], xp[i]);
        return h.result();
    }

    /** The similarity of the horizontal pairs of one N x C x H x W tensor, quantised over its own min..max. */
    public static Similarity horizontalSimilarity(float[] data, int[] nchw, int bins) {
        float[] r = range(data);
        PairHistogram h = new PairHistogram(bins, r[0], r[1]);
        h.addHorizontalPairs(data, nchw);
        return h.result();
    }

    /**
     * A joint histogram of (X, X') over a fixed quantisation range, filled incrementally (e.g. batch by batch, after
     * a first pass found the range of the whole tensor).
     */
    public static final class PairHistogram {
        private final int bins;
        private final float min, max;
        private final long[] joint;
        private long pairs;

        public PairHistogram(int bins, float min, float max) {
            checkBins(bins);
            if (!(max >= min)) throw new IllegalArgumentException("quantisation range needs min <= max, got " + min + ", " + max);
            this.bins = bins;
            this.min = min;
            this.max = max;
            this.joint = new long[bins * bins];
        }

        void addCodes(int a, int b) {
            if (a < 0 || a >= bins || b < 0 || b >= bins) throw new IllegalArgumentException("code outside 0.." + (bins - 1) + ": " + a + ", " + b);
            joint[a * bins + b]++;
            pairs++;
        }

        /** Adds the horizontal pairs of an N x C x H x W tensor stored row-major in data. */
        public void addHorizontalPairs(float[] data, int[] nchw) {
            if (nchw.length != 4) throw new IllegalArgumentException("expected an N x C x H x W shape, got " + java.util.Arrays.toString(nchw));
            long numel = (long) nchw[0] * nchw[1] * nchw[2] * nchw[3];
            if (numel != data.length) throw new IllegalArgumentException(data.length + " values for shape " + java.util.Arrays.toString(nchw));
            int rows = nchw[0] * nchw[1] * nchw[2], w = nchw[3];
            for (int r = 0; r < rows; r++) {
                int base = r * w;
                int prev = bin(data[base], min, max, bins);
                for (int j = 1; j < w; j++) {
                    int cur = bin(data[base + j], min, max, bins);
                    joint[prev * bins + cur]++;
                    prev = cur;
                }
                pairs += w - 1;
            }
        }

        public long pairs() { return pairs; }

        public Similarity result() {
            long[] mx = new long[bins], mxp = new long[bins];
            for (int a = 0; a < bins; a++)
                for (int b = 0; b < bins; b++) {
                    long c = joint[a * bins + b];
                    mx[a] += c;
                    mxp[b] += c;
                }
            return new Similarity(entropy(mx), entropy(mxp), entropy(joint), pairs, bins);
        }
    }

    private static void checkBins(int bins) {
        if (bins < 1 || bins > 4096) throw new IllegalArgumentException("bins must be in 1..4096, got " + bins);
    }
}
