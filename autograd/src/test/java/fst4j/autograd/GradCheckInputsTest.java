package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** GradCheck works on copies: a float64 input is neither perturbed nor counted as changed in place, even when f fails. */
class GradCheckInputsTest {
    @Test
    void aFloat64InputIsLeftAsItWas() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[]{1, 2, 3}, 3);
            int version = x.version();
            assertTrue(GradCheck.check(in -> in[0].mul(in[0]).sum(), x).passed());
            assertEquals(version, x.version(), "a graph holding x for backward would have refused it");

            AtomicInteger calls = new AtomicInteger();
            assertThrows(IllegalStateException.class, () -> GradCheck.check(in -> {
                if (calls.incrementAndGet() == 3) throw new IllegalStateException("f fails in the differences");
                return in[0].mul(in[0]).sum();
            }, x));
            assertArrayEquals(new double[]{1, 2, 3}, x.toDoubleArray(), "not left perturbed by eps");
            assertEquals(DType.F64, x.dtype());
        }
    }
}
