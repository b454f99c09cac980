package fst4j.autograd;

import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A Function whose forward returns an input (or a tensor it saved) as it is: the output does not share its lifetime. */
class FunctionOutputTest {
    @Test
    void closingTheOutputOfAnIdentityLeavesItsInputOpen() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var y = new Function() {
                @Override protected Tensor forward(Tensor... in) { return in[0]; }
                @Override protected Tensor[] backward(Tensor g) { return grads(g.alias()); }
            }.apply(x);
            y.sum().backward();
            assertArrayEquals(new float[]{1, 1, 1}, x.grad().toFloatArray());
            y.close();
            assertArrayEquals(new float[]{1, 2, 3}, x.value().toFloatArray(), "x is still open");
        }
    }

    @Test
    void anOutputThatWasSavedOutlivesBackward() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var y = new Function() {
                @Override protected Tensor forward(Tensor... in) { return save(in[0].mul(2)); }
                @Override protected Tensor[] backward(Tensor g) { return grads(g.mul(2)); }
            }.apply(x);
            y.sum().backward();   // frees the node's saved tensors
            assertArrayEquals(new float[]{2, 4, 6}, y.value().toFloatArray(), "y is still open");
        }
    }
}
