package fst4j.autograd;

import fst4j.tensor.OnThreads;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Profile under threads running forwards at once, booking by operation: two threads run convolutions, two batch norms,
 * and every section lands under the operation its own thread ran (a convolution's GEMM or pruning never under a batch
 * norm's label: the current label is each thread's), and the bookings by operation add up to the per-part totals exactly (no
 * update of either is lost). With the label one static field, a convolution's EQ1 was booked under the batch norm that
 * another thread had entered meanwhile.
 */
class ProfileThreadsTest {
    @Test
    void eachThreadBooksUnderItsOwnOperationAndNothingIsLost() throws InterruptedException {
        Profile.setByOperation(true);
        Profile.reset();
        int threads = 4, iterations = 400;
        Tensor x = Scope.within(null, () -> new Rng(1).normal(0, 1, 2, 3, 6, 6));
        Var w = Scope.within(null, () -> Var.param(new Rng(2).normal(0, 0.3, 4, 3, 3, 3)));
        Var gamma = Scope.within(null, () -> Var.param(Tensor.ones(3))), beta = Scope.within(null, () -> Var.param(Tensor.zeros(3)));
        Tensor mean = Scope.within(null, () -> Tensor.zeros(3)), var = Scope.within(null, () -> Tensor.ones(3));
        Gemm3 node = new Gemm3(SparseConfig.Method.DENSE.config(1));
        try {
            OnThreads.run(threads, "profile", t -> {   // even threads convolutions, odd ones batch norms
                try (Grad.Restore g = Grad.noGrad()) {
                    for (int i = 0; i < iterations; i++)
                        try (Scope s = Scope.open()) {
                            if (t % 2 == 0) Layers.conv2d(node, Var.of(x.alias()), w, null, 1, 1);
                            else NN.batchNorm2dRelu(Var.of(x.alias()), gamma, beta, mean, var, false, 0.1, 1e-5);
                        }
                }
            });

            Map<String, Map<Profile.Part, Long>> by = Profile.byLabel();
            // a convolution books its GEMM, sparsification and layout copies; a batch norm only ELEMENTWISE
            for (Map.Entry<String, Map<Profile.Part, Long>> e : by.entrySet())
                if (!e.getKey().startsWith("Conv2d"))
                    for (Profile.Part p : e.getValue().keySet())
                        if (p != Profile.Part.ELEMENTWISE) fail(p + " booked under " + e.getKey() + ": a section of another thread's convolution (" + by + ")");
            assertTrue(by.keySet().stream().anyMatch(l -> l.startsWith("Conv2d")) && by.keySet().stream().anyMatch(l -> l.startsWith("BatchNorm2dRelu")),
                    by.keySet().toString());
            Map<Profile.Part, Long> totals = Profile.snapshot();
            for (Profile.Part p : Profile.Part.values()) {
                long sum = by.values().stream().mapToLong(m -> m.getOrDefault(p, 0L)).sum();
                assertEquals(totals.get(p), sum, p + ": the operations' bookings add up to the total");
            }
        } finally {
            Profile.setByOperation(false);
            Profile.reset();
            for (AutoCloseable c : new AutoCloseable[]{x, w, gamma, beta, mean, var})
                try { c.close(); } catch (Exception e) { throw new AssertionError(e); }
        }
    }
}
