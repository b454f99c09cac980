package fst4j.autograd;

import fst4j.autograd.Interpolate.Axis;
import fst4j.tensor.DType;

/**
 * The per-axis source indices and weights of the modes 'nearest-exact' and 'bicubic', as torch 1.13's CPU kernels
 * compute them (ATen/native/UpSample.h, UpSampleKernel.cpp's HelperInterpNearestExact and HelperInterpCubic), in the
 * same arithmetic types: float32 tensors take the scale, source index and weights in float (opmath_t), with the
 * intermediate steps that C++ promotes to double done in double here too; float64 tensors in double throughout.
 */
final class InterpolateTaps {
    private InterpolateTaps() {}

    /** Keys' cubic convolution parameter, torch's get_cubic_upsample_coefficients' A. */
    static final double A = -0.75;

    /**
     * nearest_neighbor_exact_compute_source_index: min(floorf((i + 0.5) * scale), in - 1), the scale in the
     * tensor's type and (i + 0.5) * scale a double product rounded to float by floorf's argument. No shortcut where the sizes are equal (torch has none: a given scale can move indices); null where the
     * map is the identity, since a gather would copy.
     */
    static Axis nearestExact(int in, int out, double scale, DType dt) {
        // the scale in the tensor's type (opmath_t): float for float32, double for float64 (2 rows to 209 moves an index)
        double s = dt == DType.F32 ? (scale > 0 ? (float) (1.0 / scale) : (float) in / (float) out) : scale > 0 ? 1.0 / scale : (double) in / out;
        int[] idx = new int[out];
        boolean identity = in == out;
        for (int i = 0; i < out; i++) {
            idx[i] = (int) Math.min((long) Math.floor((float) ((i + 0.5) * s)), in - 1);
            identity &= idx[i] == i;
        }
        return identity ? null : new Axis(new int[][]{idx}, null);
    }

    /**
     * Four taps per output: input rows floor(src) - 1 .. floor(src) + 2 each clamped into [0, in - 1] (upsample_bicubic2d's
     * border), weighted by the cubic convolution at t = src - floor(src); src is area_pixel_compute_source_index with
     * cubic = true (not clamped at 0 without align_corners). Never the identity (equal sizes still give weights 0, 1, 0, 0,
     * and 0 times an infinite neighbour is NaN in torch too).
     */
    static Axis bicubic(int in, int out, double scale, boolean alignCorners, DType dt) {
        boolean f32 = dt == DType.F32;
        boolean given = scale > 0;
        int[][] idx = new int[4][out];
        double[][] w = new double[4][out];
        if (f32) {
            // area_pixel_compute_scale<float>: (float) (in - 1) / (out - 1) and (float) in / out are float divisions
            float s = alignCorners ? (out > 1 ? (float) (in - 1) / (float) (out - 1) : 0f)
                    : given ? (float) (1.0 / scale) : (float) in / (float) out;
            float[] c = new float[4];
            for (int i = 0; i < out; i++) {
                // align_corners: scale * i, a float product; else scale * (i + 0.5) - 0.5 in double, stored as a float
                float real = alignCorners ? s * (float) i : (float) (s * (i + 0.5) - 0.5);
                long index = (long) Math.floor(real);
                coefficients(real - (float) index, c);
                for (int j = 0; j < 4; j++) {
                    idx[j][i] = clamp(index - 1 + j, in);
                    w[j][i] = c[j];
                }
            }
        } else {
            double s = alignCorners ? (out > 1 ? (double) (in - 1) / (out - 1) : 0) : given ? 1.0 / scale : (double) in / out;
            double[] c = new double[4];
            for (int i = 0; i < out; i++) {
                double real = alignCorners ? s * i : s * (i + 0.5) - 0.5;
                long index = (long) Math.floor(real);
                coefficients(real - index, c);
                for (int j = 0; j < 4; j++) {
                    idx[j][i] = clamp(index - 1 + j, in);
                    w[j][i] = c[j];
                }
            }
        }
        return new Axis(idx, w);
    }

    private static int clamp(long i, int in) { return (int) Math.max(Math.min(i, in - 1), 0); }

    /** get_cubic_upsample_coefficients<float>: x1 + 1.0 and 1.0 - t are doubles stored as the float parameters. */
    static void coefficients(float t, float[] c) {
        float a = (float) A;
        c[0] = conv2((float) (t + 1.0), a);
        c[1] = conv1(t, a);
        float x2 = (float) (1.0 - t);
        c[2] = conv1(x2, a);
        c[3] = conv2((float) (x2 + 1.0), a);
    }

    /** get_cubic_upsample_coefficients<double>. */
    static void coefficients(double t, double[] c) {
        c[0] = conv2(t + 1.0, A);
        c[1] = conv1(t, A);
        double x2 = 1.0 - t;
        c[2] = conv1(x2, A);
        c[3] = conv2(x2 + 1.0, A);
    }

    /** cubic_convolution1, for |x| <= 1: ((A + 2) x - (A + 3)) x x + 1. */
    private static float conv1(float x, float a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }

    private static double conv1(double x, double a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }

    /** cubic_convolution2, for 1 < |x| < 2: ((A x - 5 A) x + 8 A) x - 4 A. */
    private static float conv2(float x, float a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }

    private static double conv2(double x, double a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }
}
