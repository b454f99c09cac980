package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Differentiable ops of a graph on CUDA give their gradients on CUDA, as the CPU ones would. Against the device or the
 * host emulator (skipped with the reason otherwise).
 */
class CudaVarOpsTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void aSliceInsideACudaGraph() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 6).to(Device.CUDA));
            Var two = Var.of(Tensor.full(2, 6).to(Device.CUDA));
            x.mul(two).slice(0, 1, 5, 2).sum().backward();
            assertEquals(Device.CUDA, x.grad().device());
            assertArrayEquals(new float[]{0, 2, 0, 2, 0, 0}, x.grad().toFloatArray());
        }
    }

    @Test
    void dropoutOfACudaTensorDrawsTheHostsMask() {
        try (Scope s = Scope.open()) {
            Tensor x = new fst4j.tensor.Rng(1).normal(0, 1, 4, 8);
            Var cpu = fst4j.autograd.NN.dropout(Var.of(x), 0.5, true, new fst4j.tensor.Rng(2));
            Var gpu = fst4j.autograd.NN.dropout(Var.of(x.to(Device.CUDA)), 0.5, true, new fst4j.tensor.Rng(2));
            assertEquals(Device.CUDA, gpu.value().device());
            assertArrayEquals(cpu.value().toFloatArray(), gpu.value().toFloatArray());
        }
    }

    @Test
    void catOfCudaTensorsAlongAnInnerAxis() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.arange(12).reshape(2, 3, 2), b = Tensor.arange(4).reshape(2, 1, 2);
            Var x = Var.param(a.to(Device.CUDA)), y = Var.param(b.to(Device.CUDA));
            Var c = Var.cat(1, x, y);
            assertEquals(Device.CUDA, c.value().device());
            assertArrayEquals(Tensor.cat(1, a, b).toFloatArray(), c.value().toFloatArray());
            c.mul(Var.of(Tensor.arange(16).reshape(2, 4, 2).to(Device.CUDA))).sum().backward();
            assertEquals(Device.CUDA, y.grad().device());
            assertArrayEquals(new float[]{6, 7, 14, 15}, y.grad().toFloatArray());
            assertArrayEquals(new float[]{0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13}, x.grad().toFloatArray());
        }
    }

    @Test
    void stackOfCudaTensorsAlongAnInnerAxis() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.arange(6).reshape(2, 3), b = a.mul(10);
            Var x = Var.param(a.to(Device.CUDA)), y = Var.param(b.to(Device.CUDA));
            Var c = Var.stack(-2, x, y);
            assertEquals(Device.CUDA, c.value().device());
            assertArrayEquals(Tensor.stack(1, a, b).toFloatArray(), c.value().toFloatArray());
            c.mul(Var.of(Tensor.arange(12).reshape(2, 2, 3).to(Device.CUDA))).sum().backward();
            assertEquals(Device.CUDA, y.grad().device());
            assertArrayEquals(new float[]{0, 1, 2, 6, 7, 8}, x.grad().toFloatArray());
            assertArrayEquals(new float[]{3, 4, 5, 9, 10, 11}, y.grad().toFloatArray());
        }
    }

    @Test
    void aLinearLayerOnCudaTakesLeadingAxes() {
        try (Scope s = Scope.open(); Linear cpu = new Linear(8, 4, true, fst4j.autograd.SparseConfig.Method.DENSE.config(), new fst4j.tensor.Rng(3));
             Linear gpu = new Linear(8, 4, true, fst4j.autograd.SparseConfig.Method.DENSE.config(), new fst4j.tensor.Rng(3)).to(Device.CUDA)) {
            Tensor x = new fst4j.tensor.Rng(4).normal(0, 1, 2, 3, 8);
            Var xc = Var.param(x.copy()), xg = Var.param(x.to(Device.CUDA));
            Var yc = cpu.forward(xc), yg = gpu.forward(xg);
            assertEquals(Device.CUDA, yg.value().device());
            assertArrayEquals(new int[]{2, 3, 4}, yg.shape());
            assertArrayEquals(yc.value().toFloatArray(), yg.value().toFloatArray(), 1e-5f);
            yc.sum().backward();
            yg.sum().backward();
            assertEquals(Device.CUDA, xg.grad().device());
            assertArrayEquals(new int[]{2, 3, 8}, xg.grad().shape());
            assertArrayEquals(xc.grad().toFloatArray(), xg.grad().toFloatArray(), 1e-5f);
            assertArrayEquals(cpu.weight().grad().toFloatArray(), gpu.weight().grad().toFloatArray(), 1e-5f);
        }
    }
}
