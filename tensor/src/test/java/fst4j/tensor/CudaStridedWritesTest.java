package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.Function;

import static fst4j.tensor.CudaCompare.assertSameBits;
import static fst4j.tensor.CudaCompare.randn;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Writes into strided CUDA views (kernel strided_write): copyFrom from CUDA or host tensors of any layout, broadcast,
 * converting between float32 and float64, fill, and in-place ops into a view, each done on the CPU and on CUDA to the
 * same random destination and compared over the whole storage (elements outside the view must stay). The CPU's
 * refusal of an expanded destination, its copy-first rule for a source that shares memory with the destination and its
 * row-major order for a destination whose elements overlap (an asStrided view) hold on CUDA too.
 */
class CudaStridedWritesTest extends CudaTensorTestBase {

    /** A random destination on the CPU and the same values on CUDA. */
    private Tensor[] pair(Random r, DType dtype, int... shape) {
        Tensor h = keep(keep(randn(r, shape)).to(dtype));
        if (dtype == DType.F64) {   // values with more bits than a float holds, so a float32 write shows its rounding
            double[] v = h.toDoubleArray();
            for (int i = 0; i < v.length; i++) v[i] += r.nextDouble() * 1e-9;
            h = keep(Tensor.of(v, shape));
        }
        return new Tensor[]{h, gpu(h)};
    }

    /** view(dst).copyFrom(src) on both devices (src given per device), then the whole destinations compared. */
    private void copyCase(Tensor[] dst, Function<Tensor, Tensor> view, Tensor srcCpu, Tensor srcCuda, String what) {
        Tensor vc = keep(view.apply(dst[0])), vd = keep(view.apply(dst[1]));
        int before = dst[1].version();
        vc.copyFrom(srcCpu);
        vd.copyFrom(srcCuda);
        assertEquals(before + 1, dst[1].version(), what + ": one write counted");
        assertSameBits(dst[0], dst[1], what);
    }

    @Test
    void copyFromIntoStridedViewsMatchesTheCpu() {
        Random r = new Random(91);
        for (DType dt : new DType[]{DType.F32, DType.F64}) {
            Tensor[] d = pair(r, dt, 5, 11, 7);
            Function<Tensor, Tensor> slice = t -> t.slice(1, 2, 11, 3), perm = t -> t.permute(2, 0, 1), col = t -> t.slice(2, 3, 4);
            Tensor s = keep(randn(r, 5, 3, 7));
            copyCase(d, slice, s, gpu(s), dt + " slice from a contiguous CUDA float32 source");
            Tensor sp = keep(randn(r, 7, 3, 5)), spd = gpu(sp);
            copyCase(d, slice, keep(sp.permute(2, 1, 0)), keep(spd.permute(2, 1, 0)), dt + " slice from a permuted CUDA source");
            Tensor row = keep(randn(r, 1, 7));
            copyCase(d, slice, row, gpu(row), dt + " slice from a broadcast row");
            Tensor s2 = keep(keep(randn(r, 7, 5, 11)).to(DType.F64));
            copyCase(d, perm, s2, gpu(s2), dt + " permuted view from a float64 source");
            Tensor s3 = keep(randn(r, 5, 11, 1));
            copyCase(d, col, s3, s3, dt + " column from a host source");
            Tensor s4 = keep(randn(r, 11, 5, 1));
            copyCase(d, col, keep(s4.permute(1, 0, 2)), keep(s4.permute(1, 0, 2)), dt + " column from a strided host source");
            copyCase(d, perm, keep(Tensor.scalar(2.5)), gpu(keep(Tensor.scalar(2.5))), dt + " permuted view from a scalar");
        }
    }

    @Test
    void convertingAndStridedCopiesBetweenCudaTensors() {
        Random r = new Random(92);
        Tensor x = keep(randn(r, 6, 9)), xd = gpu(x);
        // contiguous() of strided views and to(dtype), float32 and float64 both ways (refused on CUDA before)
        Tensor x64 = keep(x.to(DType.F64)), x64d = keep(xd.to(DType.F64));
        assertSameBits(x64, x64d, "float32 -> float64");
        double[] v = x64.toDoubleArray();
        for (int i = 0; i < v.length; i++) v[i] = v[i] / 3;   // not representable in float: rounded to nearest on both
        Tensor y = keep(Tensor.of(v, 6, 9)), yd = gpu(y);
        assertSameBits(keep(y.to(DType.F32)), keep(yd.to(DType.F32)), "float64 -> float32");
        assertSameBits(keep(keep(y.t()).contiguous()), keep(keep(yd.t()).contiguous()), "float64 transposed, made contiguous");
        assertSameBits(keep(keep(y.slice(1, 1, 9, 4)).to(DType.F32)), keep(keep(yd.slice(1, 1, 9, 4)).to(DType.F32)), "a strided float64 slice to float32");
        // nine dimensions that do not merge: more than a kernel takes, written one index of the first at a time
        Tensor nine = keep(randn(r, 2, 3, 2, 2, 3, 2, 2, 2, 3)), nined = gpu(nine);
        int[] rev = {8, 7, 6, 5, 4, 3, 2, 1, 0};
        assertSameBits(keep(keep(nine.permute(rev)).contiguous()), keep(keep(nined.permute(rev)).contiguous()), "nine dimensions made contiguous");
        Tensor[] d = pair(r, DType.F32, 3, 2, 2, 2, 3, 2, 2, 2, 3);
        Tensor src = keep(randn(r, 3, 2, 2, 2, 3, 2, 2, 2, 3));
        copyCase(d, t -> t.permute(rev), src, gpu(src), "a contiguous source into a nine-dimensional permuted view");
        Tensor[] e = pair(r, DType.F32, 2, 3, 2, 2, 3, 2, 2, 2, 3);
        copyCase(e, t -> t.permute(rev), keep(nine.permute(rev)), keep(nined.permute(rev)), "a permuted source into a nine-dimensional permuted view");
    }

    @Test
    void viewsPastEightDimensionsWithALeadingSize1OrExpandedAxisAreSplitAlongAnAxisThatShrinksThem() {
        // nine dimensions that do not merge behind a first axis of size 1 (or of stride 0): splitting along axis 0 gave
        // the same view again, a recursion without end (StackOverflowError) in copy, fill and hasNonFinite
        Random r = new Random(99);
        int[] rev = {0, 9, 8, 7, 6, 5, 4, 3, 2, 1};
        Tensor[] d = pair(r, DType.F32, 1, 2, 3, 2, 2, 3, 2, 2, 2, 3);
        Tensor src = keep(randn(r, 1, 3, 2, 2, 2, 3, 2, 2, 3, 2));
        copyCase(d, t -> t.permute(rev), src, gpu(src), "a contiguous source into a ten-dimensional permuted view with a leading 1");
        for (DType dt : new DType[]{DType.F32, DType.F64}) {
            Tensor[] f = pair(r, dt, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3);
            keep(f[0].permute(rev)).fill(0.1);
            keep(f[1].permute(rev)).fill(0.1);
            assertSameBits(f[0], f[1], dt + " fill of a ten-dimensional permuted view with a leading 1");
            keep(keep(f[0].permute(rev)).expand(4, 3, 2, 2, 2, 2, 2, 2, 2, 2)).fill(-2.5);
            keep(keep(f[1].permute(rev)).expand(4, 3, 2, 2, 2, 2, 2, 2, 2, 2)).fill(-2.5);
            assertSameBits(f[0], f[1], dt + " fill of a ten-dimensional view expanded along its first axis");
            assertFalse(Elementwise.hasNonFinite(keep(f[1].permute(rev))), dt + " hasNonFinite, all finite");
            keep(keep(f[1].permute(rev)).slice(9, 1, 2)).fill(Double.NaN);   // the last element: the slice's last axis
            assertTrue(Elementwise.hasNonFinite(keep(f[1].permute(rev))), dt + " hasNonFinite, one NaN");
            assertTrue(Elementwise.hasNonFinite(keep(keep(f[1].permute(rev)).expand(4, 3, 2, 2, 2, 2, 2, 2, 2, 2))), dt + " hasNonFinite, expanded");
        }
    }

    @Test
    void catWritesItsPiecesIntoStridedSlicesAndPromotesAsOnTheCpu() {
        Random r = new Random(98);
        Tensor a = keep(randn(r, 3, 2, 5)), b = keep(keep(randn(r, 3, 4, 5)).to(DType.F64)), c = keep(randn(r, 3, 1, 5));
        Tensor cpu = keep(Tensor.cat(1, a, b, c)), cuda = keep(Tensor.cat(1, gpu(a), gpu(b), gpu(c)));
        assertEquals(DType.F64, cuda.dtype(), "float64 if any piece is");
        assertSameBits(cpu, cuda, "cat of float32 and float64 pieces along axis 1");
        assertSameBits(keep(Tensor.cat(2, a, a)), keep(Tensor.cat(2, gpu(a), gpu(a))), "cat along the last axis");
    }

    @Test
    void fillOfStridedViewsMatchesTheCpu() {
        Random r = new Random(93);
        for (DType dt : new DType[]{DType.F32, DType.F64}) {
            Tensor[] d = pair(r, dt, 4, 13, 6);
            for (double v : new double[]{0.1, -0.0, Double.NaN, 1e300}) {   // 0.1 and 1e300 round in float32
                keep(d[0].slice(1, 1, 13, 5)).fill(v);
                Tensor view = keep(d[1].slice(1, 1, 13, 5));
                int before = d[1].version();
                view.fill(v);
                assertEquals(before + 1, d[1].version());
                assertSameBits(d[0], d[1], dt + " fill(" + v + ") of a strided slice");
                keep(keep(d[0].permute(2, 0, 1)).slice(0, 2, 4)).fill(-v);
                keep(keep(d[1].permute(2, 0, 1)).slice(0, 2, 4)).fill(-v);
                assertSameBits(d[0], d[1], dt + " fill(" + -v + ") of a permuted slice");
            }
            // a fill of an expanded view writes its one location (as the CPU's loop, which writes it several times)
            Tensor[] one = pair(r, dt, 1, 5);
            keep(keep(one[0].slice(1, 1, 4, 2)).expand(3, 2)).fill(7.25);
            keep(keep(one[1].slice(1, 1, 4, 2)).expand(3, 2)).fill(7.25);
            assertSameBits(one[0], one[1], dt + " fill of an expanded view");
            // and a whole contiguous float64 tensor
            Tensor z = keep(Tensor.zeros(Device.CUDA, DType.F64, 3, 4)).fill(0.3);
            assertSameBits(keep(Tensor.full(0.3, DType.F64, 3, 4)), z, "fill of a contiguous float64 CUDA tensor");
        }
    }

    @Test
    void inPlaceOpsIntoViewsMatchTheCpu() {
        Random r = new Random(94);
        Tensor[] d = pair(r, DType.F32, 6, 10);
        Tensor b = keep(randn(r, 6, 1));
        keep(d[0].slice(1, 1, 10, 3)).addInPlace(b);
        keep(d[1].slice(1, 1, 10, 3)).addInPlace(gpu(b));
        assertSameBits(d[0], d[1], "addInPlace of a broadcast column into a strided slice");
        keep(d[0].t()).addInPlace(keep(d[0].t()));   // a += a through a transposed view: both read before the write
        keep(d[1].t()).addInPlace(keep(d[1].t()));
        assertSameBits(d[0], d[1], "a += a through a transposed view");
    }

    @Test
    void sourcesSharingTheDestinationsMemoryAreReadAsTheyWere() {
        Random r = new Random(95);
        Tensor[] d = pair(r, DType.F32, 9, 8);
        // shift every second column right by one column: NumPy's copyto semantics on both
        copyCase(d, t -> t.slice(1, 1, 8, 2), keep(d[0].slice(1, 0, 7, 2)), keep(d[1].slice(1, 0, 7, 2)), "a column shift within one tensor");
        // t = t^T of a square block
        copyCase(d, t -> t.slice(0, 0, 8), keep(keep(d[0].slice(0, 0, 8)).t()), keep(keep(d[1].slice(0, 0, 8)).t()), "a block onto its transpose");
    }

    @Test
    void overlappingDestinationsKeepTheCpusLastWrite() {
        Random r = new Random(96);
        Tensor[] d = pair(r, DType.F32, 20);
        // rows of 3 that start one element apart: [4, 3] over 6 elements, several writes per element, the last wins
        Tensor src = keep(randn(r, 4, 3));
        copyCase(d, t -> t.asStrided(new int[]{4, 3}, new long[]{1, 1}, 2), src, gpu(src), "a view whose rows overlap");
        Tensor[] e = pair(r, DType.F64, 30);
        Tensor src2 = keep(randn(r, 3, 5));
        copyCase(e, t -> t.asStrided(new int[]{3, 5}, new long[]{2, 3}, 1), src2, gpu(src2), "interleaved strides, float64");
    }

    @Test
    void expandedDestinationsAreRefusedAsOnTheCpu() {
        Random r = new Random(97);
        Tensor h = keep(randn(r, 1, 4)), d = gpu(h);
        Tensor src = keep(randn(r, 3, 4));
        Tensor ve = keep(h.expand(3, 4)), vd = keep(d.expand(3, 4));
        IllegalArgumentException cpu = assertThrows(IllegalArgumentException.class, () -> ve.copyFrom(src));
        int before = d.version();
        IllegalArgumentException cuda = assertThrows(IllegalArgumentException.class, () -> vd.copyFrom(gpu(src)));
        assertEquals(cpu.getMessage(), cuda.getMessage());
        assertTrue(cuda.getMessage().contains("stride 0 along axis 0"), cuda.getMessage());
        assertEquals(before, d.version(), "nothing written");
        assertSameBits(h, d, "unchanged");
        assertThrows(IllegalArgumentException.class, () -> vd.addInPlace(gpu(src)));
        assertSameBits(h, d, "unchanged by the refused in-place add");
    }
}
