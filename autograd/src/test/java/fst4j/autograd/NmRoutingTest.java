package fst4j.autograd;

import fst4j.autograd.SparseConfig.Method;
import fst4j.sparse.NM;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Eq. 1-3 node keeps an N:M operand on the dense-masked path: S(W) and S(W^T) at 1:4 or 2:8 are multiplied as masked
 * dense matrices (never compressed for the 2:4 kernels, even where 1:4 would fit them), while at 2:4 the same presets
 * still compress (the control that shows the check can fail). The products' values are NmLayersTest's (nn).
 */
class NmRoutingTest {
    @Test
    void nmOperandsAreDenseAndTwoFourStaysCompressed() {
        try (Scope s = Scope.open()) {
            Tensor w = new Rng(3).normal(0, 1, 16, 36);
            for (Method m : new Method[]{Method.SR_STE, Method.FST2, Method.FST3_IR, Method.FST_CODE, Method.WX})
                for (NM nm : new NM[]{new NM(1, 4), new NM(2, 8), NM.TWO_FOUR}) {
                    String what = m + " at " + nm;
                    Gemm3 node = new Gemm3(SparseConfig.of(m, nm));
                    Gemm3.Prepared p = node.prepareForward(w, DType.F32);
                    try (Gemm3.Left l = p.left()) {
                        assertEquals(nm.isTwoFour(), l.twoFour(), what + ": Eq. 1");
                    }
                    if (p.sw() != null) p.sw().close();
                    if (m == Method.SR_STE) continue;   // dense W^T
                    try (Tensor sw = SparseConfig.of(m, nm).w().apply(w); Gemm3.Left l = node.prepareInputGrad(w, sw, DType.F32)) {
                        assertEquals(nm.isTwoFour(), l.twoFour(), what + ": Eq. 2");
                        Gemm3.Left t = node.prepareInputGradTconv(w, sw, 9);
                        if (!nm.isTwoFour()) assertNull(t, what + ": a transposed convolution's 2:4 operand for N:M");
                        if (t != null) t.close();
                    }
                }
        }
    }
}
