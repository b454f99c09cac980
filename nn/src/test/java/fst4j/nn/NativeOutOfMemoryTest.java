package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.shim.Native;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The C shim's working memory running out (made to happen with {@link Native#debugFailAllocs}: the n-th allocation of a
 * training step and every later one fail): the step stops with an {@link OutOfMemoryError} that says so (not a crash,
 * not "rejected its arguments"), or completes through a path that needs no memory with the same bits; either way no
 * off-heap memory is left behind, and the next step, with memory back, gives the reference gradients bit for bit (no
 * cache of pruned weights or compiled code kept half built).
 */
class NativeOutOfMemoryTest {
    @AfterEach
    void memoryBack() { Native.debugFailAllocs(-1); }

    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"DENSE", "SR_STE", "FST3_IR", "GX"})
    void aStepThatRunsOutOfNativeMemoryFailsCleanlyAndTheNextOneIsExact(Method method) {
        Module model = Models.resnetSmall(1, 10, method, 7);
        SplittableRandom r = new SplittableRandom(11);
        float[] px = new float[8 * 28 * 28];
        for (int i = 0; i < px.length; i++) px[i] = (float) r.nextGaussian();
        int[] labels = r.ints(8, 0, 10).toArray();
        try (Tensor x = Tensor.of(px, 8, 1, 28, 28)) {
            List<float[]> ref = step(model, x, labels);
            long inUse = Memory.bytesInUse();
            int failed = 0;
            boolean completed = false;
            for (int after = 0; after < 400 && !completed; after += after < 40 ? 1 : 7) {
                Native.debugFailAllocs(after);
                try {
                    List<float[]> g = step(model, x, labels);
                    completed = true;
                    Native.debugFailAllocs(-1);
                    assertGradsEqual(ref, g, method + ": a step within the limit of " + after + " allocations");
                } catch (OutOfMemoryError e) {
                    failed++;
                    assertTrue(e.getMessage().contains("could not allocate its working memory"), e.getMessage());
                } finally {
                    Native.debugFailAllocs(-1);
                    for (Var p : model.parameters()) p.zeroGrad();
                }
                assertEquals(inUse, Memory.bytesInUse(), method + ": off-heap memory after a step limited to " + after + " allocations");
                assertGradsEqual(ref, step(model, x, labels), method + ": the step after one limited to " + after + " allocations");
                for (Var p : model.parameters()) p.zeroGrad();
            }
            assertTrue(failed > 0, method + ": no step ran out of memory (the hook or the shim's allocations are not wired)");
            assertTrue(completed, method + ": a step never completed within 400 allocations");
        } finally {
            model.close();
        }
    }

    /** One forward and backward; the parameters' gradients as float arrays (then zeroed). */
    private static List<float[]> step(Module model, Tensor x, int[] labels) {
        List<float[]> grads = new ArrayList<>();
        try (Scope s = Scope.open()) {
            Var loss = NN.crossEntropy(model.forward(Var.of(x)), labels, 0.0);
            loss.backward();
            for (Var p : model.parameters()) grads.add(p.grad() == null ? null : p.grad().toFloatArray());
        }
        for (Var p : model.parameters()) p.zeroGrad();
        return grads;
    }

    private static void assertGradsEqual(List<float[]> ref, List<float[]> got, String what) {
        assertEquals(ref.size(), got.size(), what);
        for (int i = 0; i < ref.size(); i++) assertArrayEquals(ref.get(i), got.get(i), what + ", parameter " + i);
    }
}
