package fst4j.nn;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.tensor.Rng;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A configuration whose sparsifiers keep state (TSM's cached mask, the authors' pattern draws) belongs to one layer: a
 * second layer given the same object is refused (before, it pruned with the first layer's TSM mask of the same shape),
 * while stateless configurations may be shared.
 */
class SharedSparsifierStateTest {
    @Test
    void aStatefulConfigurationInTwoLayersIsRefused() {
        Rng rng = new Rng(0);
        SparseConfig tsm = Method.TSM.config();
        try (Linear a = new Linear(8, 8, false, tsm, rng)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Linear(8, 8, false, tsm, rng));
            assertTrue(e.getMessage().contains("already in another layer") && e.getMessage().contains("config() per layer"), e.getMessage());
            try (Linear b = new Linear(8, 8, false, Method.TSM.config(), rng); Linear c = new Linear(8, 8, false, Method.DENSE.config(), rng)) {
                SparseConfig before = c.sparsity();
                try (Sequential m = new Sequential(a, c)) {
                    assertThrows(IllegalArgumentException.class, () -> Models.override(m, "1", b.sparsity()));
                    assertSame(before, c.sparsity(), "a refused override changes nothing");
                    SparseConfig patterns = Method.FST3_IR_PATTERNS.config(3);
                    Models.override(m, "1", patterns);
                    Models.override(m, "1", patterns);   // again on the same layer: its own
                    assertThrows(IllegalArgumentException.class, () -> Models.override(m, "0", patterns));
                    Models.override(m, "1", Method.DENSE.config());
                    Models.override(m, "0", patterns);   // released by the layer that had it
                }
            }
        }
        try (Linear again = new Linear(8, 8, false, tsm, rng)) {   // its layer is closed
            assertSame(tsm, again.sparsity());
        }
    }

    @Test
    void aStatelessConfigurationMayBeShared() {
        Rng rng = new Rng(0);
        SparseConfig fst = Method.FST3_IR.config();
        try (Linear a = new Linear(8, 8, false, fst, rng); Linear b = new Linear(8, 8, false, fst, rng)) {
            assertSame(a.sparsity(), b.sparsity());
        }
    }
}
