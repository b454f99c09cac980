package fst4j.sparse;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class StatefulSparsifierTest {
    @Test
    void exportedStateContinuesIdentically() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(3);
            Tensor[] ws = new Tensor[9];
            for (int i = 0; i < ws.length; i++) ws[i] = r.normal(0, 1, 8, 12);
            for (StatefulSparsifier make : new StatefulSparsifier[]{new Transposable24(3), new AuthorsFixed24(1, 11)}) {
                Sparsifier a = (Sparsifier) make;
                for (int i = 0; i < 4; i++) a.apply(ws[i]);
                long[] state = make.exportState();
                Sparsifier b = make instanceof Transposable24 ? new Transposable24(3) : new AuthorsFixed24(1, 11);
                ((StatefulSparsifier) b).importState(state);
                for (int i = 4; i < ws.length; i++)
                    assertArrayEquals(a.apply(ws[i]).toFloatArray(), b.apply(ws[i]).toFloatArray(), make + " step " + i);
            }
        }
    }

    @Test
    void malformedStateIsRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Transposable24(3).importState(new long[]{5, 2, 4, 4, 99, 0}));
        assertTrue(e.getMessage().contains("malformed Transposable24 state"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new AuthorsFixed24(1, 1).importState(new long[]{-1, 0}));
    }
}
