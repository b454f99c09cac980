package fst4j.sparse;

import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.lang.foreign.ValueLayout;

/**
 * A pruning rule's kept set packed as bits, read without applying the rule: bit i (bit i % 64 of word i / 64) stands for
 * element i of the tensor in logical row-major order, 1 where the rule keeps it. One bit per element, a 32nd of a
 * float32 copy: what the flip rate of Zhou et al. 2021 (fst4j.nn.FlipRate) keeps of a layer's mask from one optimizer
 * step to the next, and compares with {@link #differing}.
 *
 * <p>Magnitude 2:4 along the rows of a float32 matrix (the presets' S(W)) is read from the metadata the 2:4 kernels write,
 * four bits per group of four: on the CPU the shim's fused prune + compress ({@link Compressed24#pruneCompress}), on CUDA
 * fst_k_prune24's words copied to the host (1 bit per weight crosses the bus, not W's 32). Their nibble is the rule's
 * kept pair even where a group keeps a zero (a group with fewer than two non-zeros is filled with the lowest unused
 * indices, which is the rule's tie-break among zeros), so the bits are the host rule's ({@code MaskBitsTest}). Every
 * other rule takes its host selection over the values (copied off the device where it reads them).
 */
public final class MaskBits {
    private MaskBits() {}

    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;

    /** SPREAD[b]: the byte b of a metadata word (two nibbles, i0 | i1 << 2 each) as the 8 positions its two groups keep. */
    private static final int[] SPREAD = new int[256];

    static {
        for (int b = 0; b < 256; b++) SPREAD[b] = nibbleSet(b & 15) | nibbleSet(b >>> 4) << 4;
    }

    private static int nibbleSet(int nib) { return 1 << (nib & 3) | 1 << (nib >>> 2); }

    /**
     * The kept set of x under rule, what {@code rule.apply(x)} would keep now, as bits, without moving any state of the
     * rule: a transposable mask ({@link Transposable24}) gives the mask its next call would apply (its cached one, or
     * the one it would compute from x where a refresh is due) and counts no call. Refused, naming the rule: the
     * authors' random patterns ({@link AuthorsFixed24}: each call draws its pattern, so a reading would move the draws)
     * and a {@link Sparsifier.Custom} rule that keeps state ({@link StatefulSparsifier}: its keep may move it).
     */
    public static long[] of(Sparsifier rule, Tensor x) {
        if (rule == null) throw new IllegalArgumentException("MaskBits.of: the rule is null");
        x.check();
        return switch (rule) {
            case Sparsifier.Magnitude24 m when byMetadata(m.axis(), x) -> metadataBits(x);
            case Sparsifier.SortMagnitude24 m when byMetadata(m.axis(), x) -> metadataBits(x);
            case AuthorsFixed24 a -> throw new IllegalArgumentException("the mask of " + a + " is drawn anew by every call: reading it would move"
                    + " its draws, so it has no mask to read between steps");
            case Transposable24 t -> pack(t.peek(x.shape(), x::toDoubleArray));
            case Sparsifier.Custom c when c instanceof StatefulSparsifier -> throw new IllegalArgumentException("the custom rule " + c
                    + " keeps state (StatefulSparsifier): calling its keep to read its mask could move that state");
            default -> pack(Masks.keep(rule, x, Masks.values(rule, x)));
        };
    }

    /** Whether x takes the 2:4 kernels' metadata: a float32 matrix pruned along its rows, on CUDA or on the CPU with the shim. */
    private static boolean byMetadata(int axis, Tensor x) {
        if (x.dim() != 2 || x.dtype() != DType.F32 || (axis != 1 && axis != -1)) return false;
        return x.device() == Device.CUDA || (x.device() == Device.CPU && fst4j.shim.Native.isLoaded());
    }

    private static long[] metadataBits(Tensor x) {
        int rows = x.size(0), k = x.size(1);
        if ((long) rows * k == 0) return new long[0];
        int[] meta;
        if (x.device() == Device.CUDA) {
            meta = fst4j.tensor.CudaOps.prune24Meta(x);
        } else {
            try (Compressed24 c = Compressed24.pruneCompress(x, null, Blas.threads())) {
                Tensor t = c.metadata();
                meta = new int[Math.toIntExact((long) rows * c.metaWordsPerRow())];
                java.lang.foreign.MemorySegment.copy(t.segment(), I32, t.byteOffset(), meta, 0, meta.length);
            }
        }
        return fromMetadata(meta, rows, k);
    }

    /**
     * The kept set of a [rows, k] matrix from its 2:4 metadata words (Compressed24's layout: ceil(ceil(k / 4) / 8) words a
     * row, group g's nibble at bits 4 (g % 8) of word g / 8): the two indices of every group, those past k (the zero
     * padding of a last short group) left out.
     */
    static long[] fromMetadata(int[] meta, int rows, int k) {
        int mw = Compressed24.metaWords(k);
        if (meta.length != (long) rows * mw)
            throw new IllegalArgumentException(meta.length + " metadata words for a [" + rows + ", " + k + "] matrix, which has " + (long) rows * mw);
        long[] bits = new long[words((long) rows * k)];
        for (int r = 0; r < rows; r++)
            for (int w = 0; w < mw; w++) {
                int word = meta[r * mw + w];
                long set = (SPREAD[word & 0xff] | SPREAD[word >>> 8 & 0xff] << 8 | SPREAD[word >>> 16 & 0xff] << 16 | SPREAD[word >>> 24] << 24) & 0xffffffffL;
                int valid = Math.min(32, k - 32 * w);   // >= 1: a row's last word starts below k
                if (valid < 32) set &= (1L << valid) - 1;
                long at = (long) r * k + 32L * w;
                int word64 = (int) (at >>> 6), off = (int) (at & 63);
                bits[word64] |= set << off;
                if (off + valid > 64) bits[word64 + 1] |= set >>> (64 - off);
            }
        return bits;
    }

    /** How many longs n bits take. */
    static int words(long n) { return Math.toIntExact((n + 63) >>> 6); }

    /** keep as bits (element i at bit i % 64 of word i / 64). */
    public static long[] pack(boolean[] keep) {
        long[] bits = new long[words(keep.length)];
        for (int i = 0; i < keep.length; i++) if (keep[i]) bits[i >>> 6] |= 1L << (i & 63);
        return bits;
    }

    /** The first n flags of bits. */
    public static boolean[] unpack(long[] bits, int n) {
        if (n < 0 || words(n) > bits.length) throw new IllegalArgumentException(n + " flags from " + bits.length + " words of bits");
        boolean[] keep = new boolean[n];
        for (int i = 0; i < n; i++) keep[i] = (bits[i >>> 6] >>> (i & 63) & 1) != 0;
        return keep;
    }

    /** How many positions a and b differ in: the L1 distance ||a - b||_1 of the two 0/1 masks. */
    public static long differing(long[] a, long[] b) {
        if (a.length != b.length) throw new IllegalArgumentException("masks of " + a.length + " and " + b.length + " words: not the same tensor");
        long n = 0;
        for (int i = 0; i < a.length; i++) n += Long.bitCount(a[i] ^ b[i]);
        return n;
    }

    /** How many elements bits keeps. */
    public static long count(long[] bits) {
        long n = 0;
        for (long w : bits) n += Long.bitCount(w);
        return n;
    }
}
