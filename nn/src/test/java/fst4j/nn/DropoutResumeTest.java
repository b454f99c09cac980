package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Dropout's generator is not in its state dict; saved and set back through rng(), the masks continue exactly. */
class DropoutResumeTest {
    @Test
    void theGeneratorsStateResumesTheMasks() {
        try (Scope s = Scope.open(); Dropout a = new Dropout(0.5, new Rng(3)); Dropout b = new Dropout(0.5, new Rng(99))) {
            assertTrue(a.stateDict().isEmpty(), "the masks' generator is not in the state dict");
            Tensor x = Tensor.ones(64);
            a.forward(Var.of(x.alias()));
            long[] saved = a.rng().state();
            float[] next = a.forward(Var.of(x.alias())).value().toFloatArray();
            b.rng().setState(saved);
            assertArrayEquals(next, b.forward(Var.of(x.alias())).value().toFloatArray());
        }
    }
}
