package fst4j.autograd;

import fst4j.autograd.NN.InterpolateMode;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * NN.interpolate (F.interpolate, every mode: nearest, nearest-exact, bilinear, bicubic, area): float64 gradcheck up and
 * down, by size and by scale factor,
 * values of small cases worked by hand from torch's formulas, and bad arguments refused by name. (Against torch
 * itself: nn's InterpolateTorchTest.)
 */
class InterpolateTest {
    /** n, c, h, w, outH, outW */
    @ParameterizedTest
    @CsvSource({"1,2,3,4,6,8", "2,1,5,3,7,2", "1,3,4,4,3,9", "3,1,1,5,2,5", "1,1,6,2,6,5"})
    void gradcheckEveryModeBySize(int n, int c, int h, int w, int oh, int ow) {
        try (Scope s = Scope.open()) {
            Tensor x = rand(1, n, c, h, w);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.NEAREST, false), x);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.BILINEAR, false), x);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.BILINEAR, true), x);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.NEAREST_EXACT, false), x);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.BICUBIC, false), x);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.BICUBIC, true), x);
            NNGradTest.ok(v -> NN.interpolate(v[0], oh, ow, InterpolateMode.AREA, false), x);
        }
    }

    @Test
    void gradcheckByScaleFactor() {
        try (Scope s = Scope.open()) {
            Tensor x = rand(2, 2, 2, 5, 4);
            for (double[] sc : new double[][]{{2, 3}, {1.7, 0.6}, {0.5, 2.5}}) {
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.NEAREST, false), x);
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.BILINEAR, false), x);
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.BILINEAR, true), x);
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.NEAREST_EXACT, false), x);
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.BICUBIC, false), x);
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.BICUBIC, true), x);
                NNGradTest.ok(v -> NN.interpolateScale(v[0], sc[0], sc[1], InterpolateMode.AREA, false), x);
            }
        }
    }

    /**
     * A row [0, 1, 2] to 5: nearest reads floor(i 3/5) = 0, 0, 1, 1, 2; bilinear without align_corners reads source
     * max((i + 0.5) 3/5 - 0.5, 0) = 0, 0.4, 1, 1.6, 2.2 (the last one's neighbours both index 2); with them i 2/4.
     */
    @Test
    void valuesOfARowWorkedByHand() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.of(new double[]{0, 1, 2}, 1, 1, 1, 3));
            assertArrayEquals(new double[]{0, 0, 1, 1, 2}, NN.interpolate(x, 1, 5, InterpolateMode.NEAREST, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 0.4, 1, 1.6, 2}, NN.interpolate(x, 1, 5, InterpolateMode.BILINEAR, false).value().toDoubleArray(), 1e-15);
            assertArrayEquals(new double[]{0, 0.5, 1, 1.5, 2}, NN.interpolate(x, 1, 5, InterpolateMode.BILINEAR, true).value().toDoubleArray(), 1e-15);
            // by scale factor 1.7: out 5, source floor(i / 1.7) = 0, 0, 1, 1, 2 (in / out would be the same here), bilinear (i + 0.5) / 1.7 - 0.5
            double[] b = NN.interpolateScale(x, 1, 1.7, InterpolateMode.BILINEAR, false).value().toDoubleArray();
            for (int i = 0; i < 5; i++) assertEquals(Math.min(Math.max((i + 0.5) / 1.7 - 0.5, 0), 2), b[i], 1e-14, "at " + i);
        }
    }

    /**
     * The same row [0, 1, 2]: nearest-exact to 5 reads floor((i + 0.5) 3/5) = 0, 0, 1, 2, 2 (nearest's floor(i 3/5)
     * reads 0, 0, 1, 1, 2); area to 2 averages the windows [0, 2) and [1, 3); bicubic at the same size is the identity
     * (weights 0, 1, 0, 0), and to 5 with align_corners reads sources 0, 0.5, 1, 1.5, 2: at t = 0.5 the weights are
     * -0.09375, 0.59375, 0.59375, -0.09375, so source 0.5 (taps 0, 0, 1, 2, the first clamped) is 0.59375 + 2 (-0.09375)
     * = 0.40625 and 1.5 (taps 0, 1, 2, 2) is 0.59375 + 2 (0.59375 - 0.09375) = 1.59375.
     */
    @Test
    void newModesOfARowWorkedByHand() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.of(new double[]{0, 1, 2}, 1, 1, 1, 3));
            assertArrayEquals(new double[]{0, 0, 1, 2, 2}, NN.interpolate(x, 1, 5, InterpolateMode.NEAREST_EXACT, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0.5, 1.5}, NN.interpolate(x, 1, 2, InterpolateMode.AREA, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 1, 2}, NN.interpolate(x, 1, 3, InterpolateMode.BICUBIC, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 0.40625, 1, 1.59375, 2}, NN.interpolate(x, 1, 5, InterpolateMode.BICUBIC, true).value().toDoubleArray(), 1e-15);
            // by scale factor 1.7 nearest-exact reads floor((i + 0.5) / 1.7) = 0, 0, 1, 2, 2
            assertArrayEquals(new double[]{0, 0, 1, 2, 2}, NN.interpolateScale(x, 1, 1.7, InterpolateMode.NEAREST_EXACT, false).value().toDoubleArray());
        }
    }

    /**
     * torch 1.13's nearest forward (NCHW) reads floor(i / scale) wherever a scale is given, also where the output floors
     * to the input's size or to twice it: 1.25 on 2 rows reads 0, 0 (not a copy), 1.001 on 5 reads 0, 0, 1, 2, 3, and
     * 2.2 on 3 reads 0, 0, 0, 1, 1, 2 (not i / 2). The gradient is that map's (float64 GradCheck).
     */
    @Test
    void nearestByAScaleThatFloorsToTheSameOrTwiceTheSizeMovesIndices() {
        try (Scope s = Scope.open()) {
            Var x2 = Var.of(Tensor.of(new double[]{0, 1}, 1, 1, 1, 2)), x3 = Var.of(Tensor.of(new double[]{0, 1, 2}, 1, 1, 3, 1));
            Var x5 = Var.of(Tensor.of(new double[]{0, 1, 2, 3, 4}, 1, 1, 1, 5));
            assertArrayEquals(new double[]{0, 0}, NN.interpolateScale(x2, 1, 1.25, InterpolateMode.NEAREST, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 0, 1, 2, 3}, NN.interpolateScale(x5, 1, 1.001, InterpolateMode.NEAREST, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 0, 0, 1, 1, 2}, NN.interpolateScale(x3, 2.2, 1, InterpolateMode.NEAREST, false).value().toDoubleArray());
            // scales of exactly 1 and 2, and sizes, keep the copy and i / 2
            assertArrayEquals(new double[]{0, 1, 2, 3, 4}, NN.interpolateScale(x5, 1, 1, InterpolateMode.NEAREST, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 0, 1, 1, 2, 2}, NN.interpolateScale(x3, 2, 1, InterpolateMode.NEAREST, false).value().toDoubleArray());
            assertArrayEquals(new double[]{0, 0, 1, 1, 2, 2}, NN.interpolate(x3, 6, 1, InterpolateMode.NEAREST, false).value().toDoubleArray());
            Tensor x = rand(3, 2, 2, 3, 5);
            NNGradTest.ok(v -> NN.interpolateScale(v[0], 2.2, 1.001, InterpolateMode.NEAREST, false), x);
            NNGradTest.ok(v -> NN.interpolateScale(v[0], 1.25, 1.1, InterpolateMode.NEAREST, false), x);
        }
    }

    @Test
    void badArgumentsAreRefusedByName() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand(1, 1, 2, 3, 3));
            assertRefused("align_corners applies to bilinear and bicubic only (torch refuses it with mode 'nearest')",
                    () -> NN.interpolate(x, 4, 4, InterpolateMode.NEAREST, true));
            assertRefused("align_corners applies to bilinear and bicubic only (torch refuses it with mode 'nearest-exact')",
                    () -> NN.interpolate(x, 4, 4, InterpolateMode.NEAREST_EXACT, true));
            assertRefused("align_corners applies to bilinear and bicubic only (torch refuses it with mode 'area')",
                    () -> NN.interpolateScale(x, 0.5, 0.5, InterpolateMode.AREA, true));
            assertRefused("output size 0x4 must be positive", () -> NN.interpolate(x, 0, 4, InterpolateMode.BICUBIC, false));
            assertRefused("output size 1x0 must be positive", () -> NN.interpolateScale(x, 0.5, 0.2, InterpolateMode.AREA, false));
            assertRefused("output size 0x4 must be positive", () -> NN.interpolate(x, 0, 4, InterpolateMode.BILINEAR, false));
            assertRefused("output size 1x0 must be positive", () -> NN.interpolateScale(x, 0.5, 0.2, InterpolateMode.NEAREST, false));
            assertRefused("scale factors must be finite and positive, got -1.0x2.0", () -> NN.interpolateScale(x, -1, 2, InterpolateMode.NEAREST, false));
            assertRefused("scale factors must be finite and positive, got NaNx2.0", () -> NN.interpolateScale(x, Double.NaN, 2, InterpolateMode.NEAREST, false));
            assertRefused("wrong rank: interpolate needs input [N, C, H, W], got [2, 3, 3]",
                    () -> NN.interpolate(Var.of(rand(2, 2, 3, 3)), 4, 4, InterpolateMode.NEAREST, false));
            assertRefused("mode is null", () -> NN.interpolate(x, 4, 4, null, false));
        }
    }

    /**
     * An output past 2^31 - 1 elements is refused by interpolate's name with its shape and count, before any axis is
     * built: by a scale of 1e9 the nearest index array alone (2e9 ints) used to fill the test JVM's 2 GB heap, and by
     * 1e5 the refusal came from inside the gathers (Rows.gather's output [200000, 200000]). An intermediate past it
     * (the width resized first) is refused the same way; area, which pools into one tensor of any size, is not limited.
     */
    @Test
    void aHugeOutputIsRefusedByNameBeforeItsAxesAreBuilt() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.of(new float[]{1, 2, 3, 4}, 1, 1, 2, 2));
            for (InterpolateMode m : new InterpolateMode[]{InterpolateMode.NEAREST, InterpolateMode.NEAREST_EXACT, InterpolateMode.BILINEAR, InterpolateMode.BICUBIC}) {
                int before = Interpolate.axisBuilds();
                assertRefused("interpolate: output [1, 1, 2000000000, 2000000000] would hold 4000000000000000000 elements, more than 2^31 - 1",
                        () -> NN.interpolateScale(x, 1e9, 1e9, m, false));
                assertRefused("interpolate: output [1, 1, 200000, 200000] would hold 40000000000 elements", () -> NN.interpolateScale(x, 1e5, 1e5, m, false));
                assertRefused("interpolate: the width-resized intermediate [1, 1, 2, 1100000000] would hold 2200000000 elements",
                        () -> NN.interpolate(x, 1, 1_100_000_000, m, false));
                assertEquals(before, Interpolate.axisBuilds(), m + ": no axis built");
            }
        }
    }

    private static void assertRefused(String want, org.junit.jupiter.api.function.Executable f) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, f);
        assertTrue(e.getMessage().contains(want), e.getMessage());
    }
}
