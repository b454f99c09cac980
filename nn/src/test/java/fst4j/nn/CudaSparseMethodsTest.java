package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Every sparse training method (SR-STE, TSM, the Table 1 variants, FST2/FST3/FST3_IR, the authors' fixed code) on a
 * Models.resnetSmall moved to CUDA, one step next to the same model on the CPU. First at the default FP32 precision:
 * the 2:4 operands are pruned on the device and multiplied densely in float32, the IR shift and the half-K gather run
 * as kernels. Then at BF16 precision (where cuSPARSELt is there: on the device, or emulated) with Eq. 1 and 2 through
 * cuSPARSELt.
 * The forward (which prunes only W) gives the same loss; the gradients agree in relative Frobenius norm within 1e-3,
 * not element for element: pruning dY or X selects among values that differ in the last bits between the devices,
 * so a near tie may fall the other way in a few groups.
 */
class CudaSparseMethodsTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static double relFrobenius(Tensor want, Tensor got) { return relFrobenius(want.toFloatArray(), got.toFloatArray()); }

    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = "DENSE", mode = EnumSource.Mode.EXCLUDE)
    void oneStepOfEachSparseMethodOnCudaMatchesTheCpu(SparseConfig.Method method) {
        step(method, 1e-5, 1e-3, 1e-5);   // float32: the pruned operands through the dense float32 GEMM
    }

    /**
     * Eq. 1 and 2 through cuSPARSELt (bf16 operands, float32 accumulation) against the same step with the pruned
     * operands multiplied densely at the same BF16 precision: the same operand values, so the two agree up to the order
     * of float32 additions (bit for bit on the emulator). The CPU's float32 step is no tight reference here: bf16
     * rounding everywhere moves this small network's early-layer gradients by 10-20 % (relative Frobenius; batch norm
     * subtracts nearly equal terms), for DENSE as much as for the sparse methods; the loss stays within 2 %.
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "SR_STE", "TSM", "FST2", "FST3_IR", "FST_CODE" })
    void withCuSparseLtTheStepEqualsTheMaskedDenseStepAtBf16(SparseConfig.Method method) {
        var was = fst4j.tensor.CudaOps.setMatmulPrecision(fst4j.tensor.CudaOps.MatmulPrecision.BF16);
        boolean roundedWas = fst4j.tensor.CudaOps.setBf16Outputs(false), col2imWas = fst4j.tensor.CudaOps.bf16Col2im();
        try {
            assumeTrue(fst4j.tensor.CudaSpmm.enabled(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
            // where the library writes its product in bf16 (cuSPARSELt 0.8.0 on Hopper), the dense GEMMs round theirs
            // the same way in both steps, so that the two differ only in which library computed Eq. 1 and 2
            boolean bf16Out = fst4j.tensor.CudaSpmm.outputType() == Cuda.R_16BF;
            fst4j.tensor.CudaOps.setBf16Outputs(bf16Out);
            // Eq. 2 of the dense step folds back from a bf16 product only where the 2:4 one does (the library's output type)
            fst4j.tensor.CudaOps.setBf16Col2im(bf16Out);
            long before = fst4j.tensor.CudaSpmm.matmuls();
            GpuStep sparse = gpuStep(method);
            assertTrue(fst4j.tensor.CudaSpmm.matmuls() > before, method + ": no product went through cuSPARSELt");
            assumeTrue(fst4j.tensor.CudaOps.usesCublas(), () -> "cuBLAS GemmEx not available: " + Cuda.blasStatus());
            GpuStep masked;
            fst4j.tensor.CudaSpmm.setEnabled(false);
            try { masked = gpuStep(method); } finally { fst4j.tensor.CudaSpmm.setEnabled(true); }
            // bf16 outputs: where the two libraries' float32 sums differ in the last bits, a few elements round to the
            // neighbouring bf16 (2^-8 relative), which batch norm's backward spreads; 0 on the emulator (same sums)
            double lossTol = bf16Out ? 1e-4 : 1e-6, gradTol = bf16Out ? 5e-3 : 1e-3;
            assertEquals(masked.loss(), sparse.loss(), lossTol * Math.abs(masked.loss()), method + ": loss");
            for (int i = 0; i < masked.grads().size(); i++) {
                double e = relFrobenius(masked.grads().get(i), sparse.grads().get(i));
                assertTrue(e < gradTol, method + ": gradient " + i + " differs by " + e + " (relative Frobenius)");
            }
            assertEquals(cpuLoss(method), sparse.loss(), 2e-2 * Math.abs(sparse.loss()), method + ": loss against the CPU's float32 step");
        } finally {
            fst4j.tensor.CudaOps.setMatmulPrecision(was);
            fst4j.tensor.CudaOps.setBf16Outputs(roundedWas);
            fst4j.tensor.CudaOps.setBf16Col2im(col2imWas);
        }
    }

    /**
     * At BF16, Eq. 2 and Eq. 3 read dY's bf16 rounding from the one pass that lays dY out by channel (Conv.byChannel)
     * instead of rounding it per GEMM: the same operand bits, so the same step, bit for bit, DENSE (both GEMMs share it)
     * and FST3_IR (Eq. 2 through cuSPARSELt where it is there).
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "DENSE", "FST3_IR" })
    void theSharedBf16CopyOfDyChangesNoBit(SparseConfig.Method method) {
        // resnetSmall: DENSE's convolutions take dY's copy in Eq. 2 and Eq. 3; FST3_IR's in Eq. 2, and Eq. 3 the gathered half's
        switchChangesNoBit(method, fst4j.tensor.CudaOps::setShareBf16, fst4j.tensor.CudaOps::sharedBf16Uses, () -> true, "a GEMM read a shared copy");
    }

    /**
     * At BF16, Eq. 1 of a dense convolution whose planes hold a multiple of 8 positions (resnetSmall's 12x12 stem) is
     * written image by image into NCHW by one batched cuBLAS call instead of a [Cout, N*Ho*Wo] product and a permute:
     * the same per-element sums, so the same step bit for bit on the emulator (DENSE, and FST3_IR's dense stem).
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "DENSE", "FST3_IR" })
    void eq1WrittenAsNchwByTheBatchedGemmChangesNoBit(SparseConfig.Method method) {
        assumeTrue(Cuda.isEmulated(), "on a device cuBLAS may sum the batched products in another order");
        // (without kept columns: DENSE keeps a small layer's float32 columns and multiplies those, as the ResNet-18 step does not)
        withoutKeptColumns(() -> switchChangesNoBit(method, fst4j.tensor.CudaOps::setBatchedNchw, fst4j.tensor.CudaOps::batchedNchwProducts,
                fst4j.tensor.CudaOps::usesCublas, "a product was written as NCHW by the batched GEMM"));
    }

    /**
     * DENSE's Eq. 1 as one implicit-GEMM kernel (-Dfst4j.cuda.igemm=true) instead of im2col_bf16, the bf16 GEMM and the
     * permute into NCHW: as close to the float32 step as the lowered one. (Where a layer's channels are a multiple of 16
     * the kernel takes K channels fastest, a different order of the sums, so not the same bits even on the emulator.)
     */
    @org.junit.jupiter.api.Test
    void theImplicitGemmConvolutionGivesTheLoweredStep() {
        withoutKeptColumns(() ->
                closeSteps(SparseConfig.Method.DENSE, fst4j.tensor.CudaOps::setImplicitGemm, fst4j.tensor.CudaOps::implicitGemmUses, "implicit GEMM"));
    }

    /**
     * Runs body with Layers.keepColumns off, then restores it. DENSE keeps a small layer's float32 columns for Eq. 3 and
     * then runs Eq. 1 (and Eq. 3) on them; a large one (every layer of the ResNet-18 step) lowers again, which is the path
     * the implicit GEMMs replace.
     */
    private static void withoutKeptColumns(Runnable body) {
        boolean keep = fst4j.autograd.Layers.keepColumns;
        fst4j.autograd.Layers.keepColumns = false;
        try {
            body.run();
        } finally {
            fst4j.autograd.Layers.keepColumns = keep;
        }
    }

    /**
     * DENSE's Eq. 2 of its stride-1 convolutions as the implicit-GEMM convolution of dY with the tap-reversed W^T
     * (-Dfst4j.cuda.igemmEq2=true) instead of cuBLAS into bf16 and col2im: the product is no longer rounded to bf16 before
     * it is folded, so on either back end the step is compared with the float32 step (closeSteps).
     */
    @org.junit.jupiter.api.Test
    void eq2AsTheImplicitGemmConvolutionOfDyGivesTheLoweredStep() {
        closeSteps(SparseConfig.Method.DENSE, fst4j.tensor.CudaOps::setImplicitGemmEq2, fst4j.tensor.CudaOps::implicitGemmEq2Uses, "Eq. 2 implicit GEMM");
    }

    /**
     * Eq. 3 as an implicit GEMM over split ranges of positions (-Dfst4j.cuda.igemmEq3=true: no im2col matrix; FST3_IR's
     * over the fixed mask's kept half): as close to the float32 step as the lowered Eq. 3.
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "DENSE", "FST3_IR" })
    void eq3AsAnImplicitGemmGivesTheLoweredStep(SparseConfig.Method method) {
        withoutKeptColumns(() -> {
            long fused = fst4j.tensor.CudaOps.implicitGemmEq3FusedUses(), nchw = fst4j.tensor.CudaOps.implicitGemmEq3NchwUses();
            closeSteps(method, fst4j.tensor.CudaOps::setImplicitGemmEq3, fst4j.tensor.CudaOps::implicitGemmEq3Uses, "Eq. 3 implicit GEMM");
            assertTrue(fst4j.tensor.CudaOps.implicitGemmEq3NchwUses() > nchw, method + ": no Eq. 3 read dY straight from NCHW");
            // FST3_IR's half-K Eq. 3 at even widths made its shifted, gathered dY inside the kernel
            if (method == SparseConfig.Method.FST3_IR)
                assertTrue(fst4j.tensor.CudaOps.implicitGemmEq3FusedUses() > fused, "no half-K Eq. 3 took the fused shift-gather");
        });
    }

    /**
     * FST2's and FST3_IR's Eq. 1 and Eq. 2 through the 2:4 implicit GEMM on the sparse tensor cores
     * (-Dfst4j.cuda.igemmSparse=true: S(W), and S(W^T) tap-reversed for the stride-1 convolutions with Cout a multiple of
     * 32, pruned into kept values and metadata, mma.sp, no cuSPARSELt, no lowered matrix, no col2im) instead of cuSPARSELt
     * on lowered bf16 columns: as close to the float32 step as without it. (cuSPARSELt writes its product in bf16 here, the
     * kernel in float32, so the two bf16 steps differ.)
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "FST2", "FST3_IR" })
    void eq1OnTheSparseTensorCoresGivesTheLoweredStep(SparseConfig.Method method) {
        withoutKeptColumns(() -> {
            long eq2 = fst4j.tensor.CudaConv24.eq2Uses();
            closeSteps(method, fst4j.tensor.CudaConv24::setEnabled, fst4j.tensor.CudaConv24::uses, "2:4 implicit GEMM");
            // the 32- and 64-channel stride-1 convolutions' Eq. 2 ran as 2:4 convolutions of dY too
            assertTrue(fst4j.tensor.CudaConv24.eq2Uses() > eq2, method + ": no Eq. 2 ran as a 2:4 convolution of dY");
        });
    }

    /**
     * The implicit-GEMM convolutions on Hopper's warpgroup tensor cores (-Dfst4j.cuda.wgmma=true: the input converted to bf16
     * NHWC, then wgmma, or wgmma.sp on the same kept values and words): DENSE's Eq. 1 and its stride-1 Eq. 2, FST2's and
     * FST3_IR's 2:4 Eq. 2 as convolutions of dY, against the same step on the mma kernels, each against the float32 step.
     * resnetSmall's 64-channel convolution fits the 64-channel tile; the others stay on the mma kernels. The emulator models
     * wgmma and wgmma.sp; a device build without sm_90a code switches them off at the first call and this is skipped.
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "DENSE", "FST2", "FST3_IR" })
    void theWarpgroupConvolutionsGiveTheLoweredStep(SparseConfig.Method method) {
        boolean dense = method == SparseConfig.Method.DENSE;
        boolean i1 = fst4j.tensor.CudaOps.setImplicitGemm(dense), i2 = fst4j.tensor.CudaOps.setImplicitGemmEq2(dense);
        boolean sp = fst4j.tensor.CudaConv24.setEnabled(!dense);
        try {
            withoutKeptColumns(() -> closeSteps(method, fst4j.tensor.CudaOps::setWarpgroup, () -> {
                org.junit.jupiter.api.Assumptions.assumeFalse(fst4j.tensor.CudaOps.warpgroupUnavailable(),
                        "this device build has no sm_90a code: the warpgroup kernels switched themselves off");
                return fst4j.tensor.CudaOps.warpgroupUses();
            }, "warpgroup convolution"));
        } finally {
            fst4j.tensor.CudaOps.setImplicitGemm(i1);
            fst4j.tensor.CudaOps.setImplicitGemmEq2(i2);
            fst4j.tensor.CudaConv24.setEnabled(sp);
        }
    }

    /**
     * A step with a switch on and one with it off, both at BF16, each against the float32 step: the path counted,
     * and with it on the loss and every gradient as close to the float32 step as with it off: relative Frobenius error
     * within 1.25x of the switched-off one, plus 1e-3. The two BF16 steps cannot be compared with each other alone: on
     * this small batch-norm network bf16 rounding moves gradients by 4-24 % (relative Frobenius), and any change in the
     * order or rounding of a sum moves them by a similar amount. The norm, not the largest element: on a 32-value
     * gradient the largest error is one sample of that noise (run 23's H200, with the tensor cores' own accumulation
     * order, had one 1.30x of the switched-off one), while a wrong product moves the whole norm.
     */
    private static void closeSteps(SparseConfig.Method method, UnaryOperator<Boolean> set, LongSupplier taken, String path) {
        var was = fst4j.tensor.CudaOps.setMatmulPrecision(fst4j.tensor.CudaOps.MatmulPrecision.FP32);
        boolean on = set.apply(false);
        try {
            GpuStep exact = gpuStep(method);
            fst4j.tensor.CudaOps.setMatmulPrecision(fst4j.tensor.CudaOps.MatmulPrecision.BF16);
            GpuStep without = gpuStep(method);
            set.apply(true);
            long before = taken.getAsLong();
            GpuStep with = gpuStep(method);
            assertTrue(taken.getAsLong() > before, "switched on, no " + path + " ran");
            double lossErr = Math.abs(without.loss() - exact.loss());
            assertTrue(Math.abs(with.loss() - exact.loss()) <= 1.25 * lossErr + 1e-4 * Math.abs(exact.loss()),
                    method + ", " + path + ": loss " + with.loss() + " vs " + without.loss() + " without it, " + exact.loss() + " in float32");
            double worst = 0;
            for (int i = 0; i < exact.grads().size(); i++) {
                float[] e = exact.grads().get(i), a = without.grads().get(i), b = with.grads().get(i);
                double errA = relFrobenius(e, a), errB = relFrobenius(e, b);
                worst = Math.max(worst, errB / Math.max(errA, 1e-30));
                assertTrue(errB <= 1.25 * errA + 1e-3, method + ", " + path + ": gradient " + i + " (" + e.length + " values) is "
                        + errB + " from float32's (relative Frobenius), against " + errA + " without it");
            }
            // the margin a device leaves (the emulator's worst is 1.01; run 23's H200 failed the max-element form at 1.30)
            System.out.printf("closeSteps %s, %s: worst gradient error ratio with / without %.3f%n", method, path, worst);
        } finally {
            set.apply(on);
            fst4j.tensor.CudaOps.setMatmulPrecision(was);
        }
    }

    /**
     * With cuSPARSELt at BF16, a magnitude 2:4 weight is pruned straight into the bf16 operand (Eq. 1 along K, Eq. 2
     * along Cout: CudaSpmm.pruned / prunedTransposed) instead of the sparsifier's float32 copy rounded by a second pass:
     * the same operand bits, so the same step, bit for bit.
     */
    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = { "FST2", "FST3_IR" })
    void pruningStraightIntoTheBf16OperandChangesNoBit(SparseConfig.Method method) {
        switchChangesNoBit(method, fst4j.tensor.CudaSpmm::setFusedPrune, fst4j.tensor.CudaSpmm::prunedOperands, fst4j.tensor.CudaSpmm::enabled,
                "an operand was pruned straight into bf16");
    }

    /**
     * At BF16, one step with a switch on (set returns the previous setting) and one with it off: the counted path is
     * taken with it on and not with it off, and the two steps agree bit for bit (loss and every gradient). Skipped
     * where usable (asked at BF16) is false.
     */
    private static void switchChangesNoBit(SparseConfig.Method method, UnaryOperator<Boolean> set, LongSupplier taken, BooleanSupplier usable, String path) {
        var was = fst4j.tensor.CudaOps.setMatmulPrecision(fst4j.tensor.CudaOps.MatmulPrecision.BF16);
        boolean on = set.apply(true);
        try {
            assumeTrue(usable.getAsBoolean(), () -> "not usable here: " + Cuda.sparseLtStatus());
            long before = taken.getAsLong();
            GpuStep with = gpuStep(method);
            long n = taken.getAsLong() - before;
            assertTrue(n > 0, method + ": switched on, no sign that " + path);
            set.apply(false);
            GpuStep without = gpuStep(method);
            assertEquals(before + n, taken.getAsLong(), method + ": switched off, still " + path);
            assertEquals(Double.doubleToLongBits(without.loss()), Double.doubleToLongBits(with.loss()), method + ": loss");
            for (int i = 0; i < without.grads().size(); i++)
                assertArrayEquals(without.grads().get(i), with.grads().get(i), method + ": gradient " + i);
        } finally {
            set.apply(on);
            fst4j.tensor.CudaOps.setMatmulPrecision(was);
        }
    }

    private record GpuStep(double loss, List<float[]> grads) {}

    private static float[] input() {
        Random r = new Random(51);
        float[] xv = new float[4 * 3 * 12 * 12];
        for (int i = 0; i < xv.length; i++) xv[i] = (float) r.nextGaussian();
        return xv;
    }

    private static final int[] LABELS = { 1, 7, 3, 3 };

    private static GpuStep gpuStep(SparseConfig.Method method) {
        try (Sequential gpu = Models.resnetSmall(3, 10, method, 5)) {
            gpu.to(Device.CUDA);
            try (Scope s = Scope.open(); Tensor xh = Tensor.of(input(), 4, 3, 12, 12)) {
                Var loss = NN.crossEntropy(gpu.forward(Var.of(xh.to(Device.CUDA))), LABELS, 0.1);
                double l = loss.item();
                loss.backward();
                List<float[]> g = new java.util.ArrayList<>();
                for (Var p : gpu.parameters()) g.add(p.grad().toFloatArray());
                return new GpuStep(l, g);
            }
        }
    }

    private static double cpuLoss(SparseConfig.Method method) {
        try (Sequential cpu = Models.resnetSmall(3, 10, method, 5); Scope s = Scope.open()) {
            return NN.crossEntropy(cpu.forward(Var.of(Tensor.of(input(), 4, 3, 12, 12))), LABELS, 0.1).item();
        }
    }

    private static double relFrobenius(float[] a, float[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) { double d = a[i] - b[i]; num += d * d; den += (double) a[i] * a[i]; }
        return Math.sqrt(num / Math.max(den, 1e-30));
    }

    private void step(SparseConfig.Method method, double lossTol, double gradTol, double paramTol) {
        float[] xv = input();
        int[] labels = LABELS;
        try (Sequential cpu = Models.resnetSmall(3, 10, method, 5); Sequential gpu = Models.resnetSmall(3, 10, method, 5)) {
            gpu.to(Device.CUDA);
            try (SGD oc = new SGD(cpu.parameters(), 0.05, 0.9, 5e-4, true); SGD og = new SGD(gpu.parameters(), 0.05, 0.9, 5e-4, true)) {
                double lc, lg;
                try (Scope s = Scope.open()) {
                    Tensor x = Tensor.of(xv, 4, 3, 12, 12);
                    Var loss = NN.crossEntropy(cpu.forward(Var.of(x)), labels, 0.1);
                    lc = loss.item();
                    loss.backward();
                    Var lossG = NN.crossEntropy(gpu.forward(Var.of(x.to(Device.CUDA))), labels, 0.1);
                    lg = lossG.item();
                    lossG.backward();
                }
                assertEquals(lc, lg, lossTol * Math.abs(lc), method + ": loss");
                List<Var> pc = cpu.parameters(), pg = gpu.parameters();
                for (int i = 0; i < pc.size(); i++) {
                    assertEquals(Device.CUDA, pg.get(i).grad().device());
                    double e = relFrobenius(pc.get(i).grad(), pg.get(i).grad());
                    assertTrue(e < gradTol, method + ": gradient " + i + " differs by " + e + " (relative Frobenius)");
                }
                SrSte.addDecay(cpu, SrSte.DEFAULT_LAMBDA);
                SrSte.addDecay(gpu, SrSte.DEFAULT_LAMBDA);
                oc.step();
                og.step();
                Map<String, Tensor> sc = cpu.stateDict(), sg = gpu.stateDict();
                for (String k : sc.keySet()) {
                    double e = relFrobenius(sc.get(k), sg.get(k));
                    assertTrue(e < paramTol, method + ": " + k + " after the step differs by " + e);
                }
            }
        }
    }
}
