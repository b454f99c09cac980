package fst4j.sparse;

/**
 * An N:M pattern: at most {@code n} non-zeros in every group of {@code m} consecutive elements along an axis (Zhou et al.
 * 2021 train at 1:4, 2:8, 4:8, 1:16, ...). 2:4 ({@link #TWO_FOUR}) is the one that sparse tensor cores accelerate and the
 * presets' default; any other runs as a dense GEMM of the masked operand. M is at most {@value #MAX_M}: a group's
 * selection is held per thread (in registers on CUDA), and that covers every ratio reported for N:M training.
 */
public record NM(int n, int m) {
    /** The largest M a pattern may have. */
    public static final int MAX_M = 32;
    /** 2:4, the presets' pattern. */
    public static final NM TWO_FOUR = new NM(2, 4);

    public NM {
        if (m < 2) throw new IllegalArgumentException("N:M pattern " + n + ":" + m + ": M must be >= 2 (the group size), got " + m);
        if (m > MAX_M) throw new IllegalArgumentException("N:M pattern " + n + ":" + m + ": M must be at most " + MAX_M + ", got " + m);
        if (n < 1) throw new IllegalArgumentException("N:M pattern " + n + ":" + m + ": N must be >= 1 (the non-zeros kept per group), got " + n);
        if (n >= m) throw new IllegalArgumentException("N:M pattern " + n + ":" + m + ": N must be < M (N = M would prune nothing), got " + n);
    }

    /** Parses "1:4", " 2:8 "; refuses anything else with a message naming what is wrong. */
    public static NM parse(String s) {
        if (s == null) throw new IllegalArgumentException("an N:M pattern is written N:M (1:4, 2:8), got nothing");
        String[] p = s.trim().split(":", -1);
        if (p.length != 2) throw new IllegalArgumentException("an N:M pattern is written N:M (1:4, 2:8), got '" + s + "'");
        return new NM(number(p[0], "N", s), number(p[1], "M", s));
    }

    private static int number(String t, String which, String s) {
        try {
            return Integer.parseInt(t.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("N:M pattern '" + s + "': " + which + " is not a whole number ('" + t.trim() + "')");
        }
    }

    /** Whether this is 2:4. */
    public boolean isTwoFour() { return equals(TWO_FOUR); }

    /** "n:m", what {@link #parse} reads. */
    @Override public String toString() { return n + ":" + m; }
}
