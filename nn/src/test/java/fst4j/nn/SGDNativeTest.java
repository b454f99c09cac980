package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** fst_sgd (C) and the Java loop give the same bits over several steps, for every momentum / Nesterov / decay mix. */
class SGDNativeTest {
    private static List<float[]> train(boolean nativeStep, double momentum, double wd, boolean nesterov) {
        boolean before = SGD.nativeStep;
        SGD.nativeStep = nativeStep;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(11);
            List<Var> ps = List.of(Var.param(r.normal(0, 1, 40, 77)), Var.param(r.normal(0, 1, 1500)), Var.param(r.normal(0, 1, 3)));
            try (SGD opt = new SGD(ps, 0.05, momentum, wd, nesterov)) {
                for (int step = 0; step < 4; step++) {
                    for (Var p : ps) {
                        p.zeroGrad();
                        Var loss = p.mul(Var.of(r.normal(0, 1, p.shape()))).sum();
                        loss.backward();
                    }
                    opt.step();
                }
                List<float[]> out = new ArrayList<>();
                for (Var p : ps) out.add(p.value().toFloatArray());
                for (int i = 0; i < ps.size(); i++) if (opt.momentumBuffer(i) != null) out.add(opt.momentumBuffer(i).toFloatArray());
                return out;
            }
        } finally {
            SGD.nativeStep = before;
        }
    }

    @ParameterizedTest
    @CsvSource({"0,0,false", "0,0.01,false", "0.9,0,false", "0.9,5e-4,false", "0.9,5e-4,true"})
    void nativeEqualsJava(double momentum, double wd, boolean nesterov) {
        List<float[]> j = train(false, momentum, wd, nesterov), n = train(true, momentum, wd, nesterov);
        assertEquals(j.size(), n.size());
        for (int i = 0; i < j.size(); i++) assertArrayEquals(j.get(i), n.get(i), "tensor " + i);
    }
}
