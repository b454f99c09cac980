package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The LayerNorm module as torch.nn.LayerNorm: parameters weight (ones) and bias (zeros), its forward NN.layerNorm's. */
class LayerNormModuleTest {
    @Test
    void parametersAndForwardAsTorchs() {
        try (Scope s = Scope.open(); LayerNorm ln = new LayerNorm(3, 4); LayerNorm plain = new LayerNorm(new int[]{4}, 1e-3, false)) {
            assertEquals(java.util.List.of("weight", "bias"), java.util.List.copyOf(ln.namedParameters().keySet()));
            assertArrayEquals(new float[12], ln.stateDict().get("bias").toFloatArray());
            assertArrayEquals(Tensor.ones(3, 4).toFloatArray(), ln.stateDict().get("weight").toFloatArray());
            assertTrue(plain.namedParameters().isEmpty());
            Rng r = new Rng(3);
            Tensor x = r.normal(1, 2, 2, 3, 4);
            ln.namedParameters().get("weight").value().copyFrom(r.normal(1, 0.5, 3, 4));
            ln.namedParameters().get("bias").value().copyFrom(r.normal(0, 0.5, 3, 4));
            Var y = ln.eval().forward(Var.of(x));
            Var want = NN.layerNorm(Var.of(x), new int[]{3, 4}, ln.namedParameters().get("weight"), ln.namedParameters().get("bias"), 1e-5);
            assertArrayEquals(want.value().toFloatArray(), y.value().toFloatArray(), 0f);
            y.sum().backward();
            assertNotNull(ln.namedParameters().get("weight").grad());
            float[] z = plain.forward(Var.of(x)).value().toFloatArray();
            for (int row = 0; row < 6; row++) {
                double m = 0;
                for (int j = 0; j < 4; j++) m += z[row * 4 + j];
                assertEquals(0, m, 1e-5, "each row normalized to mean 0");
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LayerNorm());
            assertTrue(e.getMessage().contains("normalized shape"), e.getMessage());
        }
    }

    /** A transformer-style block, Linear on [B, T, in] then LayerNorm then Linear, trains one SGD step. */
    @Test
    void betweenLinearLayersOnSequences() {
        try (Scope s = Scope.open(); Linear a = new Linear(8, 16, true, Method.DENSE.config(), new Rng(1)); LayerNorm ln = new LayerNorm(16);
             Linear b = new Linear(16, 4, true, Method.DENSE.config(), new Rng(2))) {
            Rng r = new Rng(4);
            Tensor x = r.normal(0, 1, 2, 5, 8), target = r.normal(0, 1, 2, 5, 4);
            Var y = b.forward(ln.forward(a.forward(Var.of(x))).relu());
            assertArrayEquals(new int[]{2, 5, 4}, y.shape());
            Var loss = NN.mseLoss(y, Var.of(target));
            loss.backward();
            for (Module m : new Module[]{a, ln, b})
                for (Var p : m.parameters()) assertTrue(p.grad().abs().sum().item() > 0, "every parameter gets a gradient");
        }
    }
}
