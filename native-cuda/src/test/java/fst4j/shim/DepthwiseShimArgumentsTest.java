package fst4j.shim;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Native's depthwise bindings refuse operands the geometry would read or write past (fst_dwconv_* trust their pointers),
 * a geom array of the wrong length (the C side reads 15 values), and an output that shares memory with another operand.
 * Every short operand here is a slice of a larger allocation filled with a sentinel, so that a call that is not refused
 * writes into the sentinel instead of past the allocation: the test checks both the refusal and the untouched sentinel.
 */
class DepthwiseShimArgumentsTest {
    // n 2, c 3, mult 2, 5x4 input, 3x3 kernel, stride 1, padding 1, dilation 1: 5x4 output
    static final long[] GEOM = {2, 3, 2, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 5, 4};
    static final long X = 2 * 3 * 5 * 4, W = 6 * 9, Y = 2 * 6 * 5 * 4, B = 6;
    static final float SENTINEL = 12345.5f;

    /** A segment of floats floats (values 0.25) followed by 64 sentinel floats in the same allocation; the slice is returned. */
    static MemorySegment slice(Arena a, long floats) {
        MemorySegment all = a.allocate((floats + 64) * 4, 64);
        for (long i = 0; i < floats + 64; i++) all.setAtIndex(JAVA_FLOAT, i, i < floats ? 0.25f : SENTINEL);
        return all.asSlice(0, floats * 4);
    }

    static void sentinelIntact(MemorySegment s) {
        MemorySegment tail = MemorySegment.ofAddress(s.address() + s.byteSize()).reinterpret(64 * 4);
        for (int i = 0; i < 64; i++) assertEquals(SENTINEL, tail.getAtIndex(JAVA_FLOAT, i), "the float " + i + " past the operand was written");
    }

    @Test
    void shortOperandsAreRefusedNamingTheCall() {
        Native.ensureLoaded();
        try (Arena a = Arena.ofConfined()) {
            // one float short, each operand in turn; outputs are checked for writes past their end
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class,
                    () -> Native.dwconvForward(GEOM, slice(a, X), slice(a, W), slice(a, B), slicedOut(a, Y - 1), 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_fwd"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvForward(GEOM, slice(a, X - 1), slice(a, W), slice(a, B), slice(a, Y), 1));
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvForward(GEOM, slice(a, X), slice(a, W - 1), slice(a, B), slice(a, Y), 1));
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvForward(GEOM, slice(a, X), slice(a, W), slice(a, B - 1), slice(a, Y), 1));
            e = assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvInputGrad(GEOM, slice(a, Y), slice(a, W), slicedOut(a, X - 1), 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_dx"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvInputGrad(GEOM, slice(a, Y - 1), slice(a, W), slice(a, X), 1));
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvInputGrad(GEOM, slice(a, Y), slice(a, W - 1), slice(a, X), 1));
            e = assertThrows(IndexOutOfBoundsException.class,
                    () -> Native.dwconvWeightGrad(GEOM, slice(a, X), slice(a, Y), slicedOut(a, W - 1), slice(a, B), 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_dw"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvWeightGrad(GEOM, slice(a, X), slice(a, Y), slice(a, W), slicedOut(a, B - 1), 1));
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvWeightGrad(GEOM, slice(a, X - 1), slice(a, Y), slice(a, W), slice(a, B), 1));
            assertThrows(IndexOutOfBoundsException.class, () -> Native.dwconvWeightGrad(GEOM, slice(a, X), slice(a, Y - 1), slice(a, W), slice(a, B), 1));
            for (MemorySegment out : outs) sentinelIntact(out);
            // the exact sizes run
            Native.dwconvForward(GEOM, slice(a, X), slice(a, W), slice(a, B), slicedOut(a, Y), 1);
            Native.dwconvInputGrad(GEOM, slice(a, Y), slice(a, W), slicedOut(a, X), 1);
            Native.dwconvWeightGrad(GEOM, slice(a, X), slice(a, Y), slicedOut(a, W), slicedOut(a, B), 1);
            for (MemorySegment out : outs) sentinelIntact(out);
        }
    }

    private final java.util.List<MemorySegment> outs = new java.util.ArrayList<>();

    private MemorySegment slicedOut(Arena a, long floats) {
        MemorySegment s = slice(a, floats);
        outs.add(s);
        return s;
    }

    @Test
    void aGeomOfTheWrongLengthIsRefused() {
        Native.ensureLoaded();
        try (Arena a = Arena.ofConfined()) {
            long[] shortGeom = java.util.Arrays.copyOf(GEOM, 14);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Native.dwconvForward(shortGeom, slice(a, X), slice(a, W), MemorySegment.NULL, slice(a, Y), 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_fwd") && e.getMessage().contains("15 values"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Native.dwconvInputGrad(shortGeom, slice(a, Y), slice(a, W), slice(a, X), 1));
            assertThrows(IllegalArgumentException.class, () -> Native.dwconvWeightGrad(shortGeom, slice(a, X), slice(a, Y), slice(a, W), MemorySegment.NULL, 1));
        }
    }

    /** An output that shares memory with an input (or, for dW and dBias, with the other output) is refused. */
    @Test
    void overlappingOperandsAreRefused() {
        Native.ensureLoaded();
        // mult 1, stride 1, padding 1: x, y and dx all [2, 3, 5, 4], so an output could be its own input
        long[] g = {2, 3, 1, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 5, 4};
        long n = 2 * 3 * 5 * 4;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment x = slice(a, n), w = slice(a, 27), big = slice(a, 2 * n);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvForward(g, x, w, MemorySegment.NULL, x, 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_fwd") && e.getMessage().contains("overlaps"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Native.dwconvForward(g, big, w, MemorySegment.NULL, big.asSlice(4 * 7), 1));   // shifted
            assertTrue(e.getMessage().contains("overlaps"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvInputGrad(g, x, w, x, 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_dx") && e.getMessage().contains("overlaps"), e.getMessage());
            MemorySegment dy = slice(a, n), dw = slice(a, 27 + 3);
            e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvWeightGrad(g, x, dy, dw, dw.asSlice(4 * 25), 1));
            assertTrue(e.getMessage().startsWith("fst_dwconv_dw") && e.getMessage().contains("overlaps"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvWeightGrad(g, x, dy, x.asSlice(0, 27 * 4), MemorySegment.NULL, 1));
            assertTrue(e.getMessage().contains("overlaps"), e.getMessage());
            // separate halves of one allocation do not overlap
            Native.dwconvForward(g, big.asSlice(0, 4 * n), w, MemorySegment.NULL, big.asSlice(4 * n), 1);
        }
    }
}
