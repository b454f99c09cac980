package fst4j.autograd;

import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/** What a Function of one's own gets wrong first in backward is said with the function's name, and leaks nothing. */
class FunctionMisuseTest {
    /** An anonymous doubling Function whose backward returns what bad gives it for g. */
    static Var doubled(Var x, Function<Tensor, Tensor[]> bad) {
        return new fst4j.autograd.Function() {
            @Override protected Tensor forward(Tensor... in) { return in[0].mul(2); }
            @Override protected Tensor[] backward(Tensor g) { return bad.apply(g); }
        }.apply(x);
    }

    static void refused(Function<Tensor, Tensor[]> bad, String... fragments) {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.ones(3));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> doubled(x, bad).sum().backward());
            assertTrue(e.getMessage().startsWith(FunctionMisuseTest.class.getName() + "$"), "names the anonymous class: " + e.getMessage());
            for (String f : fragments) assertTrue(e.getMessage().contains(f), e.getMessage() + " should contain " + f);
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void nullGradients() {
        refused(g -> null, ".backward returned null for 1 inputs");
    }

    @Test
    void tooManyGradients() {
        long before = Memory.bytesInUse();
        refused(g -> new Tensor[]{Scope.within(null, () -> g.mul(2)), Scope.within(null, () -> g.mul(2))}, ".backward returned 2 gradients for 1 inputs");
        assertEquals(before, Memory.bytesInUse(), "the gradients it returned are closed");
    }

    @Test
    void aGradientOfTheWrongShape() {
        refused(g -> new Tensor[]{Scope.within(null, () -> Tensor.ones(4))}, ".backward, input 0: gradient [4] does not broadcast to input [3]");
    }
}
