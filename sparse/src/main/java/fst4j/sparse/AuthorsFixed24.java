package fst4j.sparse;


/**
 * The activation mask of the authors' public code (fst-method.md, "How the authors' public code
 * differs"): each call (one im2col chunk) picks, with probability 1/4 each from a seeded RNG, one of four
 * fixed 2:4 patterns along the axis. With i the position along the axis, g = i / 4 its group and r the
 * row (the row-major index over all other axes):
 * <ol start="0">
 *   <li>alternating: groups with even g keep positions {1, 3} of the group, odd g keep {0, 2};</li>
 *   <li>odd positions: keep i odd;</li>
 *   <li>checkerboard A: keep (i + r) even;</li>
 *   <li>checkerboard B: keep (i + r) odd.</li>
 * </ol>
 * Every pattern keeps exactly 2 of every full group of 4. The exact pattern definitions are read from the
 * method note, not from the authors' source; treat the row-parity convention as an assumption.
 *
 * <p>Thread-safe: each draw takes the next number under the rule's lock, so calls from several threads at once draw
 * distinct numbers (which thread gets which depends on their order).
 */
public final class AuthorsFixed24 implements Sparsifier, StatefulSparsifier {
    private final int axis;
    private final long seed;
    private long calls;
    private int last = -1;

    public AuthorsFixed24(int axis, long seed) {
        this.axis = axis;
        this.seed = seed;
    }

    @Override public int axis() { return axis; }
    @Override public boolean accelerable() { return true; }
    public long seed() { return seed; }

    /** The pattern (0..3) the last call used, -1 before the first call. */
    public synchronized int lastPattern() { return last; }

    /** Restarts the draws from the seed. */
    public synchronized void reset() { calls = 0; last = -1; }

    /** Calls so far: the whole state (draw t is a pure function of seed and t). */
    @Override public synchronized long[] exportState() { return new long[]{calls, last}; }

    @Override public synchronized void importState(long[] state) {
        if (state.length != 2 || state[0] < 0 || state[1] < -1 || state[1] > 3)
            throw new IllegalArgumentException("AuthorsFixed24 state must be [calls >= 0, last pattern -1..3], got " + java.util.Arrays.toString(state));
        calls = state[0];
        last = (int) state[1];
    }

    /** Whether pattern p keeps position i (along the axis) of row r. */
    public static boolean keeps(int pattern, long i, long r) {
        return switch (pattern) {
            case 0 -> (i & 1) == (((i >> 2) & 1) == 0 ? 1 : 0);
            case 1 -> (i & 1) == 1;
            case 2 -> ((i + r) & 1) == 0;
            case 3 -> ((i + r) & 1) == 1;
            default -> throw new IllegalArgumentException("pattern must be 0..3, got " + pattern);
        };
    }

    /** Whether pattern p keeps different positions in even and odd rows (the checkerboards). */
    public static boolean rowDependent(int pattern) { return pattern == 2 || pattern == 3; }

    /**
     * The positions pattern p keeps along an axis that flattens planes of {@code plane} positions (Eq. 3's N*Ho*Wo: global
     * position i = image * plane + j), for images [firstImage, firstImage + images) and rows of parity rowParity: image m's
     * kept j are pos[off[m] .. off[m + 1]). With a plane that is not a multiple of the pattern's period the kept set
     * changes from image to image, so a block of a batch needs its first image's index (mod 8: every pattern depends on
     * the position mod 8 only).
     */
    public static Kept kept(int pattern, int rowParity, int firstImage, int images, int plane) {
        if (pattern < 0 || pattern > 3) throw new IllegalArgumentException("pattern must be 0..3, got " + pattern);
        if (firstImage < 0 || images < 0 || plane <= 0)
            throw new IllegalArgumentException("kept: need firstImage >= 0, images >= 0 and plane > 0, got " + firstImage + ", " + images + ", " + plane);
        long[] off = new long[images + 1];
        int[] buf = new int[Math.multiplyExact(images, plane)];
        int n = 0;
        for (int m = 0; m < images; m++) {
            long base = (long) (firstImage + m) * plane;
            for (int j = 0; j < plane; j++) if (keeps(pattern, base + j, rowParity)) buf[n++] = j;
            off[m + 1] = n;
        }
        return new Kept(off, java.util.Arrays.copyOf(buf, n));
    }

    /** Kept positions per image, as {@link #kept} gives them (CSR: image m's are pos[off[m] .. off[m + 1])). */
    public record Kept(long[] off, int[] pos) {
        /** The same positions as indices along the block's flattened axis: image m's j becomes m * plane + j. */
        public int[] flat(int plane) {
            int[] f = new int[pos.length];
            for (int m = 0; m + 1 < off.length; m++)
                for (int q = (int) off[m]; q < off[m + 1]; q++) f[q] = Math.addExact(Math.multiplyExact(m, plane), pos[q]);
            return f;
        }
    }

    /**
     * Draws the pattern for one call (as {@code apply} does): for a caller that computes with the mask itself rather than
     * applying it (Eq. 3 over the kept columns only), once for the whole batch.
     */
    public int draw() { return nextPattern(); }

    /** Draw number calls: the top 2 bits of a SplitMix64 finaliser of (seed, calls), uniform over 0..3. */
    synchronized int nextPattern() {
        long z = seed + (calls++ + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return last = (int) (z >>> 62);
    }

    @Override public String toString() { return "AuthorsFixed24[axis=" + axis + ", seed=" + seed + "]"; }
}
