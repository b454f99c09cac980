package fst4j.tensor;

import fst4j.shim.Cuda;
import org.junit.jupiter.api.Test;

import static fst4j.tensor.RefusedWritesKeepTheVersionTest.assertRefusedUnchanged;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@link RefusedWritesKeepTheVersionTest} for the CUDA entry points (on a device, or on the host emulator). */
class CudaRefusedWritesKeepTheVersionTest {
    @Test
    void refusedCudaCallsLeaveTheVersion() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        try (Scope s = Scope.open()) {
            Rng r = new Rng(2);
            Tensor x = r.normal(0, 1, 1, 1, 4, 4).to(Device.CUDA);
            Lowering low = new Lowering(x, 3, 3, 1, 1, 0, 0);   // K = 9, 4 positions
            Tensor w = r.normal(0, 1, 2, 9).to(Device.CUDA), c = Tensor.zeros(Device.CUDA, DType.F32, 2, 5);
            assertRefusedUnchanged(c, () -> CudaOps.gemmLoweredBf16(w, low, c), "CudaOps.gemmLoweredBf16");
            Tensor out = Tensor.zeros(Device.CUDA, DType.F32, 1, 2, 2, 3);
            assertRefusedUnchanged(out, () -> CudaOps.convImplicitGemmBf16(w, low, out), "CudaOps.convImplicitGemmBf16");
            Tensor dy = r.normal(0, 1, 2, 4).to(Device.CUDA), dw = Tensor.zeros(Device.CUDA, DType.F32, 2, 8);
            assertRefusedUnchanged(dw, () -> CudaOps.weightGradImplicitBf16(dy, low, 0f, dw), "CudaOps.weightGradImplicitBf16");
            Tensor dy4 = r.normal(0, 1, 1, 2, 2, 2).to(Device.CUDA);
            assertRefusedUnchanged(dw, () -> CudaOps.weightGradImplicitFromNchw(dy4, low, false, 0f, 0, false, 0f, dw), "CudaOps.weightGradImplicitFromNchw");
            try (CudaSpmm sp = CudaSpmm.pruned(r.normal(0, 1, 2, 8).to(Device.CUDA))) {
                Tensor b = r.normal(0, 1, 8, 3).to(Device.CUDA), c24 = Tensor.zeros(Device.CUDA, DType.F32, 2, 4);
                assertRefusedUnchanged(c24, () -> sp.times(b, c24), "CudaSpmm.times");
            }
            try (CudaSpmm sp = CudaSpmm.pruned(w)) {
                assertRefusedUnchanged(c, () -> sp.timesLowered(low, c), "CudaSpmm.timesLowered");
                assertRefusedUnchanged(out, () -> sp.timesLoweredNchw(low, out), "CudaSpmm.timesLoweredNchw");
            }
            try (CudaConv24 cv = CudaConv24.pruned(w)) {
                assertRefusedUnchanged(out, () -> cv.timesLoweredNchw(low, out), "CudaConv24.timesLoweredNchw");
            }
            Tensor a = Tensor.zeros(Device.CUDA, DType.F32, 2, 3);
            assertRefusedUnchanged(a, () -> a.addInPlace(r.normal(0, 1, 4).to(Device.CUDA)), "addInPlace on CUDA");
            Tensor bx = r.normal(0, 1, 2, 3, 2, 2).to(Device.CUDA), stats = Tensor.zeros(Device.CUDA, DType.F32, 6), mean = stats.slice(0, 0, 6, 2);
            assertRefusedUnchanged(stats, () -> Norm.batchNorm2dTrain(bx, null, null, mean, stats.slice(0, 0, 2), 0.1, 1e-5),
                    "batchNorm2dTrain on CUDA with a running variance of the wrong size");
            Tensor m = Tensor.zeros(Device.CUDA, DType.F32, 4, 4), row = m.slice(0, 0, 1), rows = row.expand(4, 4);   // an expanded view of m
            assertRefusedUnchanged(m, () -> rows.copyFrom(Tensor.zeros(4, 4)), "copyFrom into an expanded CUDA view");
            assertRefusedUnchanged(m, () -> rows.addInPlace(Tensor.ones(4, 4).to(Device.CUDA)), "addInPlace into an expanded CUDA view");
            assertRefusedUnchanged(m, IllegalStateException.class, () -> m.set(1, 0, 0), "set on a CUDA tensor");
            assertRefusedUnchanged(m, IllegalStateException.class, () -> m.setFlat(0, 1), "setFlat on a CUDA tensor");
        }
    }
}
