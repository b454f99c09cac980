package fst4j.tensor;

import java.util.Arrays;

/**
 * Seeded, reproducible random numbers: xoshiro256** (Blackman and Vigna) seeded through SplitMix64.
 * The whole state is four longs; {@link #state()} exports it for checkpoints and {@link #setState(long[])}
 * (or {@link #fromState(long[])}) restores it, after which the sequence continues identically.
 * Not thread-safe: use one instance per thread.
 */
public final class Rng {
    private long s0, s1, s2, s3;

    public Rng(long seed) {
        long z = seed;
        long[] s = new long[4];
        for (int i = 0; i < 4; i++) {
            z += 0x9E3779B97F4A7C15L;
            long x = z;
            x = (x ^ (x >>> 30)) * 0xBF58476D1CE4E5B9L;
            x = (x ^ (x >>> 27)) * 0x94D049BB133111EBL;
            s[i] = x ^ (x >>> 31);
        }
        setState(s);
    }

    /** A generator continuing from a state returned by {@link #state()}. */
    public static Rng fromState(long[] state) {
        Rng r = new Rng(0);
        r.setState(state);
        return r;
    }

    /** The complete generator state (4 longs); a copy. */
    public long[] state() { return new long[]{s0, s1, s2, s3}; }

    public void setState(long[] state) {
        if (state == null || state.length != 4)
            throw new IllegalArgumentException("Rng state must be 4 longs, got " + (state == null ? "null" : Arrays.toString(state)));
        if ((state[0] | state[1] | state[2] | state[3]) == 0)
            throw new IllegalArgumentException("Rng state must not be all zero");
        s0 = state[0]; s1 = state[1]; s2 = state[2]; s3 = state[3];
    }

    // ------------------------------------------------------------------ scalars

    public long nextLong() {
        long result = Long.rotateLeft(s1 * 5, 7) * 9;
        long t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = Long.rotateLeft(s3, 45);
        return result;
    }

    /** Uniform in [0, 1) with 53 random bits. */
    public double nextDouble() { return (nextLong() >>> 11) * 0x1.0p-53; }

    /** Uniform in [0, 1) with 24 random bits. */
    public float nextFloat() { return (nextLong() >>> 40) * 0x1.0p-24f; }

    /** Uniform integer in [0, bound), unbiased (Lemire's method). */
    public int nextInt(int bound) {
        if (bound <= 0) throw new IllegalArgumentException("bound must be positive, got " + bound);
        long m = (nextLong() >>> 32) * bound;
        long low = m & 0xFFFFFFFFL;
        if (low < bound) {
            long threshold = (0x100000000L - bound) % bound;
            while (low < threshold) {
                m = (nextLong() >>> 32) * bound;
                low = m & 0xFFFFFFFFL;
            }
        }
        return (int) (m >>> 32);
    }

    /** Standard normal (Box-Muller, one value per call so that the state stays four longs). */
    public double nextGaussian() {
        double u1 = 1.0 - nextDouble(); // (0, 1]
        double u2 = nextDouble();
        return Math.sqrt(-2.0 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }

    // ------------------------------------------------------------------ tensors

    public Tensor uniform(double lo, double hi, int... shape) { return uniform(DType.F32, lo, hi, shape); }

    public Tensor uniform(DType dtype, double lo, double hi, int... shape) {
        Tensor t = Tensor.empty(dtype, shape);
        fillUniform(t, lo, hi);
        return t;
    }

    public Tensor normal(double mean, double std, int... shape) { return normal(DType.F32, mean, std, shape); }

    public Tensor normal(DType dtype, double mean, double std, int... shape) {
        Tensor t = Tensor.empty(dtype, shape);
        fillNormal(t, mean, std);
        return t;
    }

    /** Overwrites t (any layout) with uniform values in [lo, hi); returns t. */
    public Tensor fillUniform(Tensor t, double lo, double hi) {
        t.check();
        if (!(hi >= lo)) throw new IllegalArgumentException("uniform needs lo <= hi, got [" + lo + ", " + hi + ")");
        t.markModified();
        long n = t.numel();
        boolean flat = t.isContiguous();
        for (long i = 0; i < n; i++) t.setAt(flat ? t.offset + i : t.storageIndex(i), lo + (hi - lo) * nextDouble());
        return t;
    }

    /** Overwrites t (any layout) with normal values; returns t. */
    public Tensor fillNormal(Tensor t, double mean, double std) {
        t.check();
        if (!(std >= 0)) throw new IllegalArgumentException("normal needs std >= 0, got " + std);
        t.markModified();
        long n = t.numel();
        boolean flat = t.isContiguous();
        for (long i = 0; i < n; i++) t.setAt(flat ? t.offset + i : t.storageIndex(i), mean + std * nextGaussian());
        return t;
    }

    /** fan_in of a weight: shape[1] * prod(shape[2:]) (Linear [out, in], Conv [out, in, kh, kw]); shape[0] for rank 1. */
    public static long fanIn(int... shape) {
        if (shape.length == 0) throw new IllegalArgumentException("fan_in of a scalar shape");
        if (shape.length == 1) return shape[0];
        long r = 1;
        for (int i = 2; i < shape.length; i++) r *= shape[i];
        return shape[1] * r;
    }

    /** fan_out of a weight: shape[0] * prod(shape[2:]). */
    public static long fanOut(int... shape) {
        if (shape.length == 0) throw new IllegalArgumentException("fan_out of a scalar shape");
        if (shape.length == 1) return shape[0];
        long r = 1;
        for (int i = 2; i < shape.length; i++) r *= shape[i];
        return shape[0] * r;
    }

    /** He normal (fan_in, ReLU gain sqrt 2): std = sqrt(2 / fan_in). */
    public Tensor kaimingNormal(int... shape) { return kaimingNormal(DType.F32, shape); }

    public Tensor kaimingNormal(DType dtype, int... shape) {
        return normal(dtype, 0, Math.sqrt(2.0 / positive(fanIn(shape), shape)), shape);
    }

    /** He uniform (fan_in, ReLU gain sqrt 2): bound = sqrt(6 / fan_in). */
    public Tensor kaimingUniform(int... shape) { return kaimingUniform(DType.F32, shape); }

    public Tensor kaimingUniform(DType dtype, int... shape) {
        double b = Math.sqrt(6.0 / positive(fanIn(shape), shape));
        return uniform(dtype, -b, b, shape);
    }

    /** Glorot uniform: bound = sqrt(6 / (fan_in + fan_out)). */
    public Tensor xavierUniform(int... shape) { return xavierUniform(DType.F32, shape); }

    public Tensor xavierUniform(DType dtype, int... shape) {
        double b = Math.sqrt(6.0 / positive(fanIn(shape) + fanOut(shape), shape));
        return uniform(dtype, -b, b, shape);
    }

    private static long positive(long fan, int[] shape) {
        if (fan <= 0) throw new IllegalArgumentException("fan must be positive for init of shape " + Shape.str(shape));
        return fan;
    }

    /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
    public int[] permutation(int n) {
        if (n < 0) throw new IllegalArgumentException("permutation size must be >= 0, got " + n);
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = nextInt(i + 1);
            int t = p[i]; p[i] = p[j]; p[j] = t;
        }
        return p;
    }

    /** 1 with probability p, else 0 (float32), e.g. a dropout keep-mask with p = 1 - dropRate. */
    public Tensor bernoulli(double p, int... shape) { return bernoulli(DType.F32, p, shape); }

    public Tensor bernoulli(DType dtype, double p, int... shape) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("bernoulli probability must be in [0, 1], got " + p);
        Tensor t = Tensor.empty(dtype, shape);
        long n = t.numel();
        for (long i = 0; i < n; i++) t.setAt(i, nextDouble() < p ? 1 : 0);
        return t;
    }
}
