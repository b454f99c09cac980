package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Linear module on x [B, T, in], as torch.nn.Linear: over three steps the same bits, output and gradients, as a twin
 * layer given x flattened to [B*T, in], under DENSE, FST3_IR and ReSprop (whose dY' is taken over the flattened rows).
 */
class LinearModuleLeadingAxesTest {
    @Test
    void threeDimensionalInputIsTheFlattenedBatch() {
        for (Method m : new Method[]{Method.DENSE, Method.FST3_IR, Method.RESPROP})
            try (Scope s = Scope.open();
                 Linear nd = new Linear(16, 8, true, m.config(), new Rng(5)); Linear flat = new Linear(16, 8, true, m.config(), new Rng(5))) {
                Rng r = new Rng(6);
                for (int step = 0; step < 3; step++) {
                    Tensor x = r.normal(0, 1, 2, 4, 16), g = r.normal(0, 1, 2, 4, 8);
                    Var x3 = Var.param(x), x2 = Var.param(x.reshape(8, 16));
                    Var y3 = nd.forward(x3), y2 = flat.forward(x2);
                    assertArrayEquals(new int[]{2, 4, 8}, y3.shape());
                    assertArrayEquals(y2.value().toFloatArray(), y3.value().toFloatArray(), 0f, m + " y, step " + step);
                    y3.backward(g);
                    y2.backward(g.reshape(8, 8));
                    assertArrayEquals(new int[]{2, 4, 16}, x3.grad().shape());
                    assertArrayEquals(x2.grad().toFloatArray(), x3.grad().toFloatArray(), 0f, m + " dX, step " + step);
                    for (int p = 0; p < 2; p++) {
                        assertArrayEquals(flat.parameters().get(p).grad().toFloatArray(), nd.parameters().get(p).grad().toFloatArray(), 0f,
                                m + " parameter " + p + ", step " + step);
                        nd.parameters().get(p).zeroGrad();
                        flat.parameters().get(p).zeroGrad();
                    }
                }
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> nd.forward(Var.of(Tensor.zeros(2, 3, 15))));
                assertTrue(e.getMessage().contains("linear input [2, 3, 15] needs [*, 16]"), e.getMessage());
            }
    }
}
