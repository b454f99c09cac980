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

    @Test
    void aRowIndexGivesTheIndicesBitsAndRefusesAMismatchByName() {
        int[] idx = {2, 0, 2, 1, 2};
        try (Tensor w = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 3, 2); Tensor g = Tensor.of(new float[]{.1f, .2f, .3f, .4f, .5f, .6f, .7f, .8f, .9f, 1}, 5, 2);
             RowIndex t = RowIndex.of(idx, 3, Device.CPU); Tensor a = Rows.gather(w, idx); Tensor b = Rows.gather(w, t);
             Tensor da = Rows.scatterAdd(g, idx, 3, -1); Tensor db = Rows.scatterAdd(g, t)) {
            assertArrayEquals(a.toFloatArray(), b.toFloatArray());
            assertArrayEquals(da.toFloatArray(), db.toFloatArray());
            String m = assertThrows(IllegalArgumentException.class, () -> Rows.gather(g, t)).getMessage();
            assertTrue(m.contains("RowIndex of 3 rows") && m.contains("[5, 2]"), m);
            m = assertThrows(IllegalArgumentException.class, () -> Rows.scatterAdd(w, t)).getMessage();
            assertTrue(m.contains("RowIndex of 5 indices") && m.contains("[3, 2]"), m);
            m = assertThrows(IllegalArgumentException.class, () -> RowIndex.of(new int[]{0, 3}, 3, Device.CPU)).getMessage();
            assertTrue(m.contains("index 3 at position 1 out of range [0, 3)"), m);
            RowIndex alias = t.alias();
            alias.close();
            assertThrows(IllegalStateException.class, () -> Rows.gather(w, alias));
            try (Tensor c = Rows.gather(w, t)) { assertArrayEquals(a.toFloatArray(), c.toFloatArray(), "the other reference still reads"); }
        }
    }
}
