package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** SGD given what it cannot use says so, and a refused step changes nothing. */
class SGDMisuseTest {
    @Test
    void aStepThatMeetsAClosedParameterUpdatesNoneOfThem() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.ones(2000)), b = Var.param(Tensor.ones(4));   // a on the C path, b on the Java loop
            try (SGD opt = new SGD(List.of(a, b), 0.1, 0.9, 0, false)) {
                a.mul(Var.of(Tensor.ones(2000))).sum().backward();
                b.sum().backward();
                b.value().close();
                assertThrows(IllegalStateException.class, opt::step);
                for (float v : a.value().toFloatArray()) assertEquals(1f, v, "a was stepped");
                assertNull(opt.momentumBuffer(0), "a got a momentum buffer");
                assertEquals(0, opt.steps());
            }
        }
    }

    @Test
    void aParameterListedTwiceIsRefused() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.ones(4));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(a, a), 0.1, 0, 0, false));
            assertTrue(e.getMessage().contains("twice"), e.getMessage());
        }
    }

    @Test
    void aNaNOrNegativeLearningRateIsRefused() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.ones(4));
            assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(a), Double.NaN, 0, 0, false));
            assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(a), 0.1, Double.NaN, 0, false));
            try (SGD opt = new SGD(List.of(a), 0.1, 0, 0, false)) {
                assertThrows(IllegalArgumentException.class, () -> opt.setLr(Double.NaN));
                assertThrows(IllegalArgumentException.class, () -> opt.setLr(-0.1));
                assertEquals(0.1, opt.lr());
                opt.setLr(0);
                assertEquals(0, opt.lr());
            }
        }
    }

    @Test
    void restoringABufferOfAnotherShapeOrIndexIsRefusedAndChangesNothing() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.ones(2048));   // the C update, which ran 2048 floats over a restored [1]
            try (SGD opt = new SGD(List.of(a), 0.1, 0.9, 0, false)) {
                a.sum().backward();
                opt.step();
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.restore(7, Map.of(0, Tensor.zeros(1))));
                assertTrue(e.getMessage().contains("momentum buffer 0 has shape [1], its parameter [2048]"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> opt.restore(7, Map.of(1, Tensor.zeros(2048))));
                assertTrue(e.getMessage().contains("momentum buffer 1 has no parameter"), e.getMessage());
                assertEquals(1, opt.steps());
                assertArrayEquals(Tensor.ones(2048).toFloatArray(), opt.momentumBuffer(0).toFloatArray(), "the buffer of the first step is kept");
            }
        }
    }
}
