package fst4j.tensor;

import fst4j.shim.Native;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Dilated im2col / col2im on CUDA (fst_k_im2col_dil, fst_k_col2im_dil) against the CPU's fst_im2col_dil /
 * fst_col2im_dil, bit for bit: the columns are copies, and col2im gathers each element's taps in the CPU's order
 * (kernel row, then column, from +0.0f). Non-square kernels, per-axis stride, padding past the kernel's reach, a
 * permuted input, and the launchers' refusals. On the device or the host emulator (skipped with the reason otherwise).
 */
class CudaDilatedLoweringTest extends CudaTensorTestBase {
    private static Tensor rand(long seed, int... shape) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        Tensor t = Tensor.empty(shape);
        for (long i = 0; i < t.numel(); i++) t.setFlat(i, (float) r.nextDouble(-2, 2));
        return t;
    }

    /** n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw */
    @ParameterizedTest
    @CsvSource(textBlock = """
            2,3,9,8,3,3,1,1,1,1,2,2
            1,4,11,13,3,2,2,1,2,0,2,3
            3,2,7,7,2,2,1,2,3,3,3,1
            1,5,6,17,1,3,1,3,0,2,1,4
            2,1,12,5,4,1,3,1,1,0,3,1
            """)
    void loweringsEqualTheCpuBitForBit(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
        Tensor x = keep(rand(1, n, c, h, w));
        Tensor want = keep(Conv.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw));
        Tensor got = keep(Conv.im2col(gpu(x), kh, kw, sh, sw, ph, pw, dh, dw));
        assertEquals(Device.CUDA, got.device());
        assertArrayEquals(want.toFloatArray(), got.toFloatArray(), "im2col");
        // a permuted (non-contiguous) input: the same columns
        Tensor xt = keep(rand(1, n, h, c, w));
        try (Tensor pv = gpu(xt).permute(0, 2, 1, 3); Tensor pc = xt.permute(0, 2, 1, 3);
             Tensor a = Conv.im2col(pv, kh, kw, sh, sw, ph, pw, dh, dw); Tensor b = Conv.im2col(pc, kh, kw, sh, sw, ph, pw, dh, dw)) {
            assertArrayEquals(b.toFloatArray(), a.toFloatArray(), "im2col of a permuted input");
        }
        Tensor cols = keep(rand(2, want.shape()));
        Tensor dxWant = keep(Conv.col2im(cols, x.shape(), kh, kw, sh, sw, ph, pw, dh, dw));
        Tensor dxGot = keep(Conv.col2im(gpu(cols), x.shape(), kh, kw, sh, sw, ph, pw, dh, dw));
        assertEquals(Device.CUDA, dxGot.device());
        assertArrayEquals(dxWant.toFloatArray(), dxGot.toFloatArray(), "col2im");
    }

    @Test
    void launchersRefuseBadArguments() {
        Tensor x = gpu(Tensor.zeros(2, 3, 8, 8));
        // 3x3 dilated 2 at padding 1 gives 6x6
        Tensor out = keep(Tensor.zeros(Device.CUDA, DType.F32, 27, 2 * 36));
        MemorySegment xp = CudaOps.ptr(x), op = CudaOps.ptr(out);
        Native.cudaIm2colDilated(xp, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 6, 6, op, 72);   // the good call
        var e = assertThrows(IllegalArgumentException.class, () -> Native.cudaIm2colDilated(xp, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 8, 8, op, 128));
        assertTrue(e.getMessage().contains("fst_cuda_im2col_dil rejected"), e.getMessage());   // ho, wo of the undilated geometry
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaIm2colDilated(xp, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 0, 2, 6, 6, op, 72));
        assertTrue(e.getMessage().contains("invalid argument"), e.getMessage());   // dilation 0
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaIm2colDilated(xp, 2, 3, 8, 8, 3, 3, 1, 1, 0, 0, 5, 5, 1, 1, op, 2));
        assertTrue(e.getMessage().contains("invalid argument"), e.getMessage());   // extent 11 past the padded 8
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaIm2colDilated(xp, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 6, 6, op, 71));
        assertTrue(e.getMessage().contains("ldo"), e.getMessage());
        // columns over the input, both inside one allocation: the overlap check answers
        Tensor both = keep(Tensor.zeros(Device.CUDA, DType.F32, 27 * 72 + 384));
        MemorySegment bp = CudaOps.ptr(both), bo = MemorySegment.ofAddress(bp.address() + 400);
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaIm2colDilated(bp, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 6, 6, bo, 72));
        assertTrue(e.getMessage().contains("invalid argument ((const char *)out <"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaIm2colDilated(MemorySegment.NULL, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 6, 6, op, 72));
        assertTrue(e.getMessage().contains("null pointer"), e.getMessage());
        Tensor dx = keep(Tensor.zeros(Device.CUDA, DType.F32, 2, 3, 8, 8));
        MemorySegment dp = CudaOps.ptr(dx);
        Native.cudaCol2imDilated(op, 72, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 6, 6, dp);   // the good call
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaCol2imDilated(op, 72, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 1, 6, 6, dp));
        assertTrue(e.getMessage().contains("fst_cuda_col2im_dil rejected"), e.getMessage());   // wo of dilation 2, not 1
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaCol2imDilated(op, 72, 2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 2, 2, 6, 6, op));
        assertTrue(e.getMessage().contains("invalid argument ((const char *)dx <"), e.getMessage());   // dx over the columns
    }
}
