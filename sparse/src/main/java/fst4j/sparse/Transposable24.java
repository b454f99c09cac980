package fst4j.sparse;

/**
 * Transposable 2:4 masks (TSM, Hubara et al. 2021; the paper's baseline): the tensor is viewed as a
 * matrix [size(0), numel / size(0)] (a conv weight [Cout, Cin, k, k] as Cout x Cin*k*k), cut into 4x4
 * blocks (edges zero-padded), and each block gets, among the 90 masks that keep exactly 2 of every row
 * and 2 of every column, the one that keeps the largest |x| sum (the first in enumeration order on
 * ties). The mask is thus 2:4 along both axes, usable for W (Eq. 1) and W^T (Eq. 2).
 *
 * <p>Stateful: the mask is recomputed on the first call and then every {@code refreshInterval} calls
 * (TSM uses 40), and reused in between (also when the values changed); a call with a different shape
 * recomputes and restarts the count. {@link #axis()} is -1 (the matrix columns).
 *
 * <p>Thread-safe: its state moves under its lock, so one layer's forward may run on several threads at once (an eval-mode
 * model serving two threads); each call then counts once, and a refresh reads the values it is given, or the tensor's
 * own where the call that fell due had not copied them ({@link #keep(double[], int[], java.util.function.Supplier)}).
 * Which call refreshes depends on the threads' order, as it must; on weights that do not change (eval) the mask does not.
 * Forwards that do not train W call it {@link #withoutCounting} (the Eq. 1-3 node does): they leave the count and the
 * mask as they were.
 */
public final class Transposable24 implements Sparsifier, StatefulSparsifier {
    /** The 90 transposable 4x4 patterns as row-pair indices into {@link #PAIRS}, in enumeration order. */
    static final int[][] PATTERNS;
    /** The 6 ways to keep 2 of 4, as (first, second) column indices. */
    static final int[][] PAIRS = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};

    static {
        java.util.List<int[]> list = new java.util.ArrayList<>();
        for (int a = 0; a < 6; a++) for (int b = 0; b < 6; b++) for (int c = 0; c < 6; c++) for (int d = 0; d < 6; d++) {
            int[] col = new int[4];
            for (int q : new int[]{a, b, c, d}) { col[PAIRS[q][0]]++; col[PAIRS[q][1]]++; }
            if (col[0] == 2 && col[1] == 2 && col[2] == 2 && col[3] == 2) list.add(new int[]{a, b, c, d});
        }
        PATTERNS = list.toArray(new int[0][]);
        if (PATTERNS.length != 90) throw new AssertionError("expected 90 transposable patterns, found " + PATTERNS.length);
    }

    private final int refreshInterval;
    private long calls;
    private int[] cachedShape;
    private boolean[] cached;

    public Transposable24(int refreshInterval) {
        if (refreshInterval < 1) throw new IllegalArgumentException("refreshInterval must be >= 1, got " + refreshInterval);
        this.refreshInterval = refreshInterval;
    }

    public int refreshInterval() { return refreshInterval; }

    /** Calls (steps) seen since construction or the last {@link #reset()}. */
    public synchronized long steps() { return calls; }

    /** Forgets the cached mask: the next call recomputes it. */
    public synchronized void reset() { calls = 0; cached = null; cachedShape = null; }

    @Override public int axis() { return -1; }
    @Override public boolean accelerable() { return true; }

    /** Whether the next {@link #keep} call recomputes the mask (and so reads the values): first call, new shape, or refresh. */
    synchronized boolean refreshDue(int[] shape) { return fresh(shape) || calls % refreshInterval == 0; }

    /** No mask yet for a tensor of this shape: the step counter starts again. */
    private boolean fresh(int[] shape) { return cached == null || !java.util.Arrays.equals(shape, cachedShape); }

    /** Whether this thread's calls are not counted now ({@link #withoutCounting}). */
    private static final ThreadLocal<Boolean> NOT_COUNTING = ThreadLocal.withInitial(() -> false);

    /**
     * Runs body with this thread's calls of every transposable mask not counted: each gives the mask the next counted
     * call would give ({@link #peek}) and moves no state. For forwards that do not train W (eval, no-grad): counted, an
     * evaluation between two training steps moved the refresh schedule (and with it training), and a refresh falling due
     * in an evaluation rebuilt the mask there, so two eval forwards of the same input could differ.
     */
    public static <T> T withoutCounting(java.util.function.Supplier<T> body) {
        boolean was = NOT_COUNTING.get();
        NOT_COUNTING.set(true);
        try {
            return body.get();
        } finally {
            NOT_COUNTING.set(was);
        }
    }

    /**
     * {@link #keep(double[], int[])} for a caller that copied the values only where {@link #refreshDue} said so: where v
     * is null and a refresh is due now (another thread's call moved the count in between), values supplies them.
     */
    synchronized boolean[] keep(double[] v, int[] shape, java.util.function.Supplier<double[]> values) {
        if (v == null && shape.length >= 2 && (fresh(shape) || calls % refreshInterval == 0)) v = values.get();
        return keep(v, shape);
    }

    /** The kept set for a tensor of this shape; v (its values) is read only when {@link #refreshDue}. */
    synchronized boolean[] keep(double[] v, int[] shape) {
        if (shape.length < 2) throw new IllegalArgumentException("transposable 2:4 needs rank >= 2, got shape " + java.util.Arrays.toString(shape));
        if (NOT_COUNTING.get()) return peek(shape, () -> v);
        if (fresh(shape)) calls = 0;
        if (refreshDue(shape)) {
            cached = compute(v, shape[0], v.length / Math.max(shape[0], 1));
            cachedShape = shape.clone();
        }
        calls++;
        return cached.clone();
    }

    /**
     * The kept set the next {@link #keep} call for a tensor of this shape would return, without counting a call: the
     * cached mask, or where a refresh is due (first call, new shape, or the count at a multiple of the interval) the
     * mask computed from values, which is asked for only then. Nothing of the state moves, so a reader of the mask (the
     * flip rate) leaves training as it was.
     */
    synchronized boolean[] peek(int[] shape, java.util.function.Supplier<double[]> values) {
        if (shape.length < 2) throw new IllegalArgumentException("transposable 2:4 needs rank >= 2, got shape " + java.util.Arrays.toString(shape));
        if (!refreshDue(shape)) return cached.clone();
        double[] v = values.get();
        return compute(v, shape[0], v.length / Math.max(shape[0], 1));
    }

    static boolean[] compute(double[] v, int rows, int cols) {
        boolean[] keep = new boolean[v.length];
        double[][] rp = new double[4][6];
        for (int r0 = 0; r0 < rows; r0 += 4)
            for (int c0 = 0; c0 < cols; c0 += 4) {
                for (int r = 0; r < 4; r++) {
                    double[] a = new double[4];
                    for (int c = 0; c < 4; c++)
                        a[c] = r0 + r < rows && c0 + c < cols ? Math.abs(v[(r0 + r) * cols + c0 + c]) : 0;
                    for (int q = 0; q < 6; q++) rp[r][q] = a[PAIRS[q][0]] + a[PAIRS[q][1]];
                }
                int best = 0;
                double bestScore = Double.NEGATIVE_INFINITY;
                for (int p = 0; p < PATTERNS.length; p++) {
                    int[] q = PATTERNS[p];
                    double s = rp[0][q[0]] + rp[1][q[1]] + rp[2][q[2]] + rp[3][q[3]];
                    if (s > bestScore || (Double.isNaN(s) && !Double.isNaN(bestScore))) { bestScore = s; best = p; }
                }
                for (int r = 0; r < 4 && r0 + r < rows; r++)
                    for (int c : PAIRS[PATTERNS[best][r]])
                        if (c0 + c < cols) keep[(r0 + r) * cols + c0 + c] = true;
            }
        return keep;
    }

    /** [calls, rank, dims..., mask length, mask bits packed 64 per word] (rank -1 when no mask is cached). */
    @Override public synchronized long[] exportState() {
        if (cached == null) return new long[]{calls, -1};
        int words = (cached.length + 63) / 64;
        long[] out = new long[3 + cachedShape.length + words];
        out[0] = calls;
        out[1] = cachedShape.length;
        for (int i = 0; i < cachedShape.length; i++) out[2 + i] = cachedShape[i];
        int at = 2 + cachedShape.length;
        out[at] = cached.length;
        for (int i = 0; i < cached.length; i++) if (cached[i]) out[at + 1 + i / 64] |= 1L << (i % 64);
        return out;
    }

    @Override public synchronized void importState(long[] s) {
        try {
            if (s.length < 2 || s[0] < 0) throw new IllegalArgumentException("too short or negative step count");
            if (s[1] == -1) { calls = s[0]; cached = null; cachedShape = null; return; }
            int rank = Math.toIntExact(s[1]);
            if (rank < 0 || s.length < 3 + rank) throw new IllegalArgumentException("bad rank " + rank);
            int[] shape = new int[rank];
            long n = 1;
            for (int i = 0; i < rank; i++) { shape[i] = Math.toIntExact(s[2 + i]); n *= shape[i]; }
            int at = 2 + rank;
            if (s[at] != n || s.length != at + 1 + (n + 63) / 64) throw new IllegalArgumentException("mask length does not match the shape");
            boolean[] mask = new boolean[(int) n];
            for (int i = 0; i < n; i++) mask[i] = (s[at + 1 + i / 64] >>> (i % 64) & 1) != 0;
            calls = s[0]; cachedShape = shape; cached = mask;
        } catch (ArithmeticException | IllegalArgumentException e) {
            throw new IllegalArgumentException("malformed Transposable24 state: " + e.getMessage(), e);
        }
    }

    @Override public String toString() { return "Transposable24[refreshInterval=" + refreshInterval + "]"; }
}
