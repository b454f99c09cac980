package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Var.sort / topk / argsort / kthvalue / median on CUDA float32 (fst4j.tensor.LineSort: a bitonic network over (key,
 * position) pairs, in shared memory up to 4096 pairs a chunk and by global steps beyond) give the CPU path's bits:
 * values, float32 indices and the gradient, on fresh random data with ties, -0 and 0, NaN and infinities, along first,
 * middle, last and negative axes, lines of 1, 3, 1000, 4096, 5000 and 70000 elements, many lines, non-contiguous inputs;
 * float64 and bad k are refused by name before anything is allocated. Against the device or the host emulator (skipped
 * with the reason otherwise).
 */
class CudaSortTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** Random values: from a small set (many ties, -0 and 0) or spread, with NaN and +-inf sprinkled in. */
    static Tensor random(SplittableRandom r, boolean ties, int... shape) {
        long n = 1;
        for (int d : shape) n *= d;
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            int u = r.nextInt(40);
            v[i] = switch (u) {
                case 0 -> Float.NaN;
                case 1 -> Float.POSITIVE_INFINITY;
                case 2 -> Float.NEGATIVE_INFINITY;
                case 3 -> -0.0f;
                case 4 -> 0.0f;
                default -> ties ? (r.nextInt(9) - 4) * 0.5f : (float) r.nextDouble(-100, 100);
            };
        }
        return Tensor.of(v, shape);
    }

    /** The selections of one line length n along axis, each keeping its own name. */
    static Map<String, Function<Var, Var[]>> ops(int axis, int n) {
        Map<String, Function<Var, Var[]>> m = new LinkedHashMap<>();
        int k = Math.min(n, 5), kth = Math.max(1, (n + 1) / 3);
        m.put("sort", x -> x.sort(axis, false));
        m.put("sort_desc", x -> x.sort(axis, true));
        m.put("topk_largest_" + k, x -> x.topk(k, axis, true, true));
        m.put("topk_smallest_" + k, x -> x.topk(k, axis, false, true));
        m.put("kthvalue_" + kth + "_keep", x -> x.kthvalue(kth, axis, true));
        m.put("kthvalue_" + n + "_drop", x -> x.kthvalue(n, axis, false));
        m.put("median_keep", x -> x.median(axis, true));
        m.put("median_drop", x -> x.median(axis, false));
        return m;
    }

    /** x (CPU) as given and on the device, through a view maker (identity or a permutation: non-contiguous inputs). */
    static void sameBits(String what, Tensor x, Function<Tensor, Tensor> view, int axis, int n) {
        for (Map.Entry<String, Function<Var, Var[]>> e : ops(axis, n).entrySet())
            try (Scope s = Scope.open()) {
                String name = what + " " + e.getKey();
                Var cpu = Var.param(view.apply(x.copy())), gpu = Var.param(view.apply(x.to(Device.CUDA)));
                Var[] yc = e.getValue().apply(cpu), yg = e.getValue().apply(gpu);
                assertEquals(Device.CUDA, yg[0].value().device(), name);
                assertArrayEquals(yc[0].shape(), yg[0].shape(), name);
                assertArrayEquals(yc[1].shape(), yg[1].shape(), name);
                bits(name + " values", yc[0].value().toFloatArray(), yg[0].value().toFloatArray());
                bits(name + " indices", yc[1].value().toFloatArray(), yg[1].value().toFloatArray());
                assertFalse(yg[1].requiresGrad(), name);
                // weights with -0 among them: the gradient's store must keep a -0 (a sum from +0 would not)
                Tensor w = Tensor.empty(yc[0].shape());
                for (long i = 0; i < w.numel(); i++) w.setFlat(i, i % 11 == 3 ? -0.0 : 1 + (i % 7) * 0.25);
                yc[0].mul(Var.of(w)).sum().backward();
                yg[0].mul(Var.of(w.to(Device.CUDA))).sum().backward();
                assertEquals(Device.CUDA, gpu.grad().device(), name);
                bits(name + " gradient", cpu.grad().toFloatArray(), gpu.grad().toFloatArray());
            }
    }

    static void bits(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(want[i]) && Float.isNaN(got[i])) continue;   // NaN payloads may differ between devices
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                fail(what + " at " + i + ": expected " + want[i] + " got " + got[i]);
        }
    }

    @Test
    void everyAxisAndLineLengthGivesTheCpusBits() {
        SplittableRandom r = new SplittableRandom(35);
        Function<Tensor, Tensor> same = t -> t;
        sameBits("[3, 1000, 2] axis 1 ties", random(r, true, 3, 1000, 2), same, 1, 1000);
        sameBits("[3, 1000, 2] axis -2 spread", random(r, false, 3, 1000, 2), same, -2, 1000);
        sameBits("[2, 4096] axis -1 ties", random(r, true, 2, 4096), same, -1, 4096);
        sameBits("[4096, 3] axis 0 spread", random(r, false, 4096, 3), same, 0, 4096);
        sameBits("[5000, 3] axis 0 ties", random(r, true, 5000, 3), same, 0, 5000);
        sameBits("[7, 1, 3] axis 1 (size 1)", random(r, true, 7, 1, 3), same, 1, 1);
        sameBits("[300, 3, 4] axis 1 (1200 lines of 3)", random(r, true, 300, 3, 4), same, 1, 3);
        sameBits("[41, 3] axis -1 spread", random(r, false, 41, 3), same, -1, 3);
        sameBits("[5] axis 0", random(r, true, 5), same, 0, 5);
    }

    @Test
    void linesLongerThanSharedMemoryGiveTheCpusBits() {
        SplittableRandom r = new SplittableRandom(36);
        sameBits("[2, 70000] axis 1 ties", random(r, true, 2, 70000), t -> t, 1, 70000);
        sameBits("[9000] axis -1 spread", random(r, false, 9000), t -> t, -1, 9000);
    }

    @Test
    void nonContiguousInputsGiveTheCpusBits() {
        SplittableRandom r = new SplittableRandom(37);
        // [4, 6, 5] permuted to [5, 4, 6]: every axis strided
        for (int axis = -3; axis < 3; axis++) {
            int n = new int[]{5, 4, 6}[Math.floorMod(axis, 3)];
            sameBits("permuted axis " + axis, random(r, true, 4, 6, 5), t -> t.permute(2, 0, 1), axis, n);
        }
        sameBits("transposed [1100, 3] axis 1", random(r, false, 3, 1100), t -> t.transpose(0, 1), 0, 1100);
    }

    @Test
    void argsortGivesTheCpusIndices() {
        SplittableRandom r = new SplittableRandom(38);
        try (Scope s = Scope.open()) {
            Tensor x = random(r, true, 6, 700);
            Var cpu = Var.of(x), gpu = Var.of(x.to(Device.CUDA));
            for (int axis : new int[]{0, 1, -1})
                for (boolean desc : new boolean[]{false, true})
                    assertArrayEquals(cpu.argsort(axis, desc), gpu.argsort(axis, desc), "axis " + axis + " descending " + desc);
        }
    }

    @Test
    void refusalsNameTheProblemAndAllocateNothing() {
        try (Scope s = Scope.open()) {
            Var x64 = Var.param(Tensor.of(new double[]{3, 1, 2, 0}, 2, 2).to(Device.CUDA));
            Var x = Var.param(Tensor.of(new float[]{3, 1, 2, 0, 5, 4}, 2, 3).to(Device.CUDA));
            long before = Memory.bytesInUse();
            String[] names = {"Sort", "TopK", "Sort", "KthValue", "Median"};
            Executable[] calls = {() -> x64.sort(0, false), () -> x64.topk(1, -1, true, true), () -> x64.argsort(1, true),
                    () -> x64.kthvalue(1, 0, false), () -> x64.median(1, true)};
            for (int i = 0; i < calls.length; i++) {
                UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, calls[i]);
                assertEquals(names[i] + " on CUDA supports float32 only, got f64", e.getMessage());
                assertEquals(before, Memory.bytesInUse(), names[i]);
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.topk(4, 1, true, true));
            assertEquals("topk: k = 4 is out of range for axis 1 of size 3 (shape [2, 3]): 0 <= k <= 3", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.kthvalue(0, -1, true));
            assertEquals("kthvalue: k = 0 is out of range for axis 1 of size 3 (shape [2, 3]): 1 <= k <= 3", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.kthvalue(3, 0, true));
            assertTrue(e.getMessage().startsWith("kthvalue: k = 3 is out of range for axis 0 of size 2"), e.getMessage());
            assertEquals(before, Memory.bytesInUse());
            assertNull(x.grad());
            assertNull(x64.grad());
        }
    }

    @Test
    void emptyAxesAndScalarsFollowTheCpu() {
        try (Scope s = Scope.open()) {
            Tensor e = Tensor.zeros(Device.CUDA, DType.F32, 3, 0);
            Var[] y = Var.of(e).sort(1, false);
            assertArrayEquals(new int[]{3, 0}, y[0].shape());
            y = Var.of(e).topk(0, 1, true, true);
            assertArrayEquals(new int[]{3, 0}, y[1].shape());
            // empty, with other axes whose product passes an int: empty outputs, no line count overflow
            Var big = Var.param(Tensor.zeros(Device.CUDA, DType.F32, 0, 70000, 70000));
            y = big.sort(0, false);
            assertArrayEquals(new int[]{0, 70000, 70000}, y[0].shape());
            y[0].sum().backward();
            assertArrayEquals(new int[]{0, 70000, 70000}, big.grad().shape());
            assertArrayEquals(new int[]{0, 70000}, big.median(2, false)[0].shape());
            Var sc = Var.param(Tensor.scalar(2.5).to(Device.CUDA));
            Var[] m = sc.median(0, false);
            assertArrayEquals(new int[0], m[0].shape());
            assertEquals(2.5f, m[0].value().toFloatArray()[0]);
            assertEquals(0f, m[1].value().toFloatArray()[0]);
            m[0].mul(3).sum().backward();
            assertEquals(3f, sc.grad().toFloatArray()[0]);
        }
    }
}
