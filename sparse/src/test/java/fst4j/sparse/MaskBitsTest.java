package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * MaskBits reads a rule's kept set as bits: magnitude 2:4 from the shim's 2:4 metadata, the bits of the host rule even
 * where groups keep zeros, NaN, infinities, -0.0 and a short last group; the other rules by their host selection; a
 * transposable mask as its next call would apply it, without moving its state; the authors' draws and stateful rules of
 * one's own refused by name.
 */
class MaskBitsTest {
    private static final int[] AWKWARD = {1, 2, 3, 4, 5, 7, 8, 17, 31, 32, 33, 63, 64, 65, 70, 129};

    /** The host rule's kept set, packed: the reference. */
    private static long[] host(Sparsifier rule, Tensor x) { return MaskBits.pack(Masks.keep(rule, x, x.toDoubleArray())); }

    @Test
    void magnitude24FromTheMetadataIsTheHostRulesKeptSet() {
        assumeTrue(Native.isLoaded(), "the shim is not loaded: the metadata path is not taken");
        Sparsifier rule = new Sparsifier.Magnitude24(1);
        long seed = 3;
        long before = Memory.bytesInUse();
        for (int rows : new int[]{1, 3, 6})
            for (int k : AWKWARD)
                try (Scope s = Scope.open()) {
                    Tensor w = Tensor.of(NativePruneTest.nasty(rows * k, seed++), rows, k);
                    long[] got = MaskBits.of(rule, w);
                    assertArrayEquals(host(rule, w), got, rows + "x" + k);
                    // every full group keeps exactly two, a short last group min(2, its length): nothing past k is set
                    assertEquals((long) rows * (k / 4 * 2 + Math.min(2, k % 4)), MaskBits.count(got), rows + "x" + k);
                    assertEquals(MaskBits.words((long) rows * k), got.length);
                    Tensor src = Tensor.of(NativePruneTest.nasty(rows * k, seed++), k, rows);
                    try (Tensor wt = src.t()) { assertArrayEquals(host(rule, wt), MaskBits.of(rule, wt), "a strided view " + rows + "x" + k); }
                }
        assertEquals(before, Memory.bytesInUse(), "the metadata and kept values are freed");
    }

    /** Groups of equal magnitudes and zeros, where the metadata's fill rule must give the rule's tie-break (lower index). */
    @Test
    void groupsThatKeepZerosOrTiesAreTheRulesChoice() {
        assumeTrue(Native.isLoaded(), "the shim is not loaded: the metadata path is not taken");
        float[][] groups = {{0, 0, 0, 0}, {0, 5, 0, 0}, {0, 0, 0, 5}, {5, 0, 0, 0}, {0, 0, 5, 0}, {-0f, 0, -0f, 3}, {2, -2, 2, -2},
                {Float.NaN, 0, 0, 0}, {0, Float.NaN, Float.NaN, 1}, {1, 1, 0, 1}, {Float.POSITIVE_INFINITY, 0, Float.NEGATIVE_INFINITY, 7}};
        Sparsifier rule = new Sparsifier.Magnitude24(1);
        for (float[] g : groups)
            try (Scope s = Scope.open()) {
                Tensor w = Tensor.of(g, 1, 4);
                assertArrayEquals(host(rule, w), MaskBits.of(rule, w), Arrays.toString(g));
            }
        try (Scope s = Scope.open()) {   // [0, 5, 0, 0] keeps positions 0 and 1: the written bits, by hand
            assertEquals(0b0011L, MaskBits.of(rule, Tensor.of(new float[]{0, 5, 0, 0}, 1, 4))[0]);
            assertEquals(0b1001L, MaskBits.of(rule, Tensor.of(new float[]{0, 0, 0, 5}, 1, 4))[0]);
            assertEquals(0b0110L << 4 | 0b0101L, MaskBits.of(rule, Tensor.of(new float[]{3, 1, 2, 0, 0, 4, -4, 1}, 1, 8))[0]);
        }
    }

    @Test
    void otherRulesTakeTheirHostSelection() {
        long seed = 40;
        for (Sparsifier rule : new Sparsifier[]{new Sparsifier.Magnitude24(0), new Sparsifier.MagnitudeNM(2, 8, 1), new Sparsifier.MagnitudeNM(1, 4, 0),
                new Sparsifier.Fixed24(1), new Sparsifier.TopK(1, 0.5), new Sparsifier.Dense(), new Sparsifier.SortMagnitude24(1),
                Sparsifier.Custom.of("smallest first 2:4", 1, true, (v, shape) -> TestData.positionalKeep(shape))})
            for (int k : new int[]{3, 8, 13})
                try (Scope s = Scope.open()) {
                    Tensor w = Tensor.of(NativePruneTest.nasty(5 * k, seed++), 5, k);
                    assertArrayEquals(host(rule, w), MaskBits.of(rule, w), rule + " 5x" + k);
                    try (Tensor w64 = w.to(fst4j.tensor.DType.F64)) { assertArrayEquals(host(rule, w), MaskBits.of(rule, w64), rule + " in float64"); }
                }
    }

    /** A transposable mask is read as its next call would apply it (the cached mask, or the refreshed one), counting no call. */
    @Test
    void aTransposableMaskIsReadWithoutMovingItsState() {
        Transposable24 tsm = new Transposable24(3);
        try (Scope s = Scope.open()) {
            for (int call = 0; call < 8; call++) {
                Tensor w = Tensor.of(TestData.values(8 * 12, 100 + call), 8, 12);
                long[] state = tsm.exportState();
                long[] read = MaskBits.of(tsm, w);
                assertArrayEquals(state, tsm.exportState(), "call " + call + ": the reading moved the state");
                assertArrayEquals(MaskBits.pack(tsm.keep(w.toDoubleArray(), w.shape())), read, "call " + call + ": the mask the call applies");
                // between refreshes the cached mask, whatever the values: the same bits for other values (after call 2 mod 3 one is due)
                if (call % 3 == 2) continue;
                Tensor other = Tensor.of(TestData.values(8 * 12, 999 + call), 8, 12);
                assertArrayEquals(read, MaskBits.of(tsm, other), "call " + call + ": a refresh is not due, the mask is cached");
            }
        }
    }

    @Test
    void rulesWhoseReadingWouldMoveTheirStateAreRefusedByName() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.of(TestData.values(32, 1), 4, 8);
            AuthorsFixed24 authors = new AuthorsFixed24(1, 7);
            long[] state = authors.exportState();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MaskBits.of(authors, w));
            assertTrue(e.getMessage().contains("drawn anew by every call"), e.getMessage());
            assertArrayEquals(state, authors.exportState());
            AtomicInteger calls = new AtomicInteger();
            class Counting implements Sparsifier.Custom, StatefulSparsifier {
                @Override public boolean[] keep(double[] v, int[] shape) { calls.incrementAndGet(); return TestData.positionalKeep(shape); }
                @Override public int axis() { return 1; }
                @Override public boolean accelerable() { return true; }
                @Override public long[] exportState() { return new long[]{calls.get()}; }
                @Override public void importState(long[] st) { calls.set((int) st[0]); }
                @Override public String toString() { return "counting"; }
            }
            e = assertThrows(IllegalArgumentException.class, () -> MaskBits.of(new Counting(), w));
            assertTrue(e.getMessage().contains("custom rule counting keeps state"), e.getMessage());
            assertEquals(0, calls.get(), "never called");
            e = assertThrows(IllegalArgumentException.class, () -> MaskBits.of(null, w));
            assertTrue(e.getMessage().contains("rule is null"), e.getMessage());
        }
    }

    @Test
    void packUnpackCountAndDiffering() {
        boolean[] a = new boolean[130], b = new boolean[130];
        for (int i = 0; i < 130; i++) { a[i] = i % 3 == 0; b[i] = i % 3 == 0 ^ (i == 5 || i == 63 || i == 64 || i == 129); }
        long[] pa = MaskBits.pack(a), pb = MaskBits.pack(b);
        assertEquals(3, pa.length);
        assertArrayEquals(a, MaskBits.unpack(pa, 130));
        assertEquals(44, MaskBits.count(pa));
        assertEquals(4, MaskBits.differing(pa, pb));
        assertEquals(0, MaskBits.differing(pa, pa));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MaskBits.differing(pa, new long[2]));
        assertTrue(e.getMessage().contains("not the same tensor"), e.getMessage());
        // metadata of a 1 x 9 row: group 0 keeps (1, 3), group 1 (0, 2), group 2 (0, 1) of which only column 8 is real
        int word = (1 | 3 << 2) | (0 | 2 << 2) << 4 | (0 | 1 << 2) << 8;
        assertArrayEquals(MaskBits.pack(new boolean[]{false, true, false, true, true, false, true, false, true}), MaskBits.fromMetadata(new int[]{word}, 1, 9));
        assertThrows(IllegalArgumentException.class, () -> MaskBits.fromMetadata(new int[3], 2, 9));
    }
}
