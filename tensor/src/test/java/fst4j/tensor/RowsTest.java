package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Rows.gather / scatterAdd refusals that name their problem. */
class RowsTest {
    @Test
    void outputsPastAnIntAreRefusedNamingTheirSize() {
        try (Tensor w = Tensor.zeros(1, 1 << 20); Tensor g = Tensor.zeros(1, 1 << 20)) {
            String m = assertThrows(IllegalArgumentException.class, () -> Rows.gather(w, new int[1 << 12])).getMessage();
            assertTrue(m.contains("Rows.gather's output [4096, 1048576]") && m.contains("4294967296 elements"), m);
            m = assertThrows(IllegalArgumentException.class, () -> Rows.scatterAdd(g, new int[1], 1 << 12, -1)).getMessage();
            assertTrue(m.contains("Rows.scatterAdd's output [4096, 1048576]") && m.contains("4294967296 elements"), m);
        }
    }
}
