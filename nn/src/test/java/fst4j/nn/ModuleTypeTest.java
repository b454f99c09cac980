package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * train(), train(boolean), eval() and to(Device) return the module's own type (this test does not compile where one
 * returns Module) and still set the mode of every child.
 */
class ModuleTypeTest {
    @Test
    void modeAndDeviceCallsKeepTheType() {
        try (Sequential m = Models.resnetSmall(1, 10, Method.DENSE, 1).eval()) {
            assertFalse(m.isTraining());
            assertFalse(m.layers().get(3).children().get("bn1").isTraining(), "children follow");
            Sequential t = m.train();
            assertTrue(t.isTraining() && m.layers().get(3).children().get("bn1").isTraining());
            Sequential e = m.train(false).to(Device.CPU);
            assertSame(m, e);
            assertFalse(e.layers().get(1).isTraining());
            BasicBlock b = ((BasicBlock) m.layers().get(3)).train();
            assertTrue(b.isTraining());
        }
        Rng rng = new Rng(1);
        try (Conv2d c = new Conv2d(1, 4, 3, 1, 1, false, Method.DENSE.config(), rng).eval().to(Device.CPU);
             Linear l = new Linear(4, 2, true, Method.DENSE.config(), rng).train(false);
             BatchNorm2d bn = new BatchNorm2d(4).eval();
             Dropout d = new Dropout(0.5, rng).eval().train()) {
            assertFalse(c.isTraining() || l.isTraining() || bn.isTraining());
            assertTrue(d.isTraining());
        }
        Module plain = new ReLU();
        assertSame(plain, plain.eval().train());   // the rest keep Module's
    }
}
