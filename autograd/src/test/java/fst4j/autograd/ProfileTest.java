package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Profile's booking by operation: every section of a forward and backward pass lands under the operation that ran it
 * (convolutions by geometry, the rest by name and input shape), the per-operation sums equal the per-part totals, and
 * nothing is booked by operation while that is off.
 */
class ProfileTest {

    private static void step(Rng rng) {
        try (Scope s = Scope.open()) {
            Var x = Var.of(rng.normal(0, 1, 2, 3, 8, 8));
            Var w = Var.param(rng.normal(0, 0.3, 4, 3, 3, 3));
            Var gamma = Var.param(Tensor.ones(4)), beta = Var.param(Tensor.zeros(4));
            Var y = Layers.conv2d(new Gemm3(SparseConfig.Method.DENSE.config(1)), x, w, null, 1, 1);
            Var h = NN.batchNorm2dRelu(y, gamma, beta, Tensor.zeros(4), Tensor.ones(4), true, 0.1, 1e-5);
            h.sum().backward();
        }
    }

    @Test
    void booksEverySectionUnderItsOperation() {
        Rng rng = new Rng(5);
        try {
            Profile.setByOperation(false);
            Profile.reset();
            step(rng);
            assertTrue(Profile.byLabel().isEmpty(), "nothing booked by operation while off");
            assertEquals("", Profile.table(1));

            Profile.setByOperation(true);
            Profile.reset();
            step(rng);
            Map<String, Map<Profile.Part, Long>> by = Profile.byLabel();
            Map<String, Map<Profile.Part, Long>> conv = by.entrySet().stream().filter(e -> e.getKey().startsWith("Conv2d"))
                    .collect(java.util.stream.Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue));
            assertEquals(1, conv.size(), by.keySet().toString());
            assertTrue(conv.containsKey("Conv2d 3->4 k3 s1 @8x8"), by.keySet().toString());
            Map<Profile.Part, Long> c = conv.get("Conv2d 3->4 k3 s1 @8x8");
            assertTrue(c.getOrDefault(Profile.Part.EQ1, 0L) > 0 && c.getOrDefault(Profile.Part.EQ3, 0L) > 0, c.toString());
            assertTrue(by.containsKey("BatchNorm2dRelu [2, 4, 8, 8]"), by.keySet().toString());
            assertTrue(by.get("BatchNorm2dRelu [2, 4, 8, 8]").getOrDefault(Profile.Part.ELEMENTWISE, 0L) > 0);

            // every section of forward and backward runs inside some operation: the labels add up to the totals
            Map<Profile.Part, Long> totals = Profile.snapshot();
            for (Profile.Part p : Profile.Part.values()) {
                long sum = by.values().stream().mapToLong(m -> m.getOrDefault(p, 0L)).sum();
                assertEquals(totals.get(p), sum, p.toString());
            }
            String table = Profile.table(1);
            assertTrue(table.contains("Conv2d 3->4 k3 s1 @8x8") && table.contains("EQ1="), table);
        } finally {
            Profile.setByOperation(false);
            Profile.reset();
        }
    }
}
