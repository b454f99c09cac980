package fst4j.nn;

import fst4j.autograd.InterpolateCache;
import fst4j.autograd.NN;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.Var;

/**
 * torch.nn.Upsample: F.interpolate to a fixed output size or by fixed scale factors, mode NEAREST, NEAREST_EXACT,
 * BILINEAR, BICUBIC or AREA (alignCorners for BILINEAR and BICUBIC only), on [N, C, H, W]. No parameters. See
 * {@link NN#interpolate} and {@link NN#interpolateScale}. Each axis's gather indices, scatter CSR and (bilinear, bicubic) weights stay on the input's device between forwards (an {@link InterpolateCache}
 * of a few geometries), freed when the module is closed. One instance may serve several threads at once (data-loading
 * threads sharing it): the cache is locked and hands each call references of its own.
 */
public final class Upsample extends Module {
    private final int outH, outW;           // 0 when by scale
    private final double scaleH, scaleW;    // NaN when by size
    private final InterpolateMode mode;
    private final boolean alignCorners;
    private final InterpolateCache cache = new InterpolateCache(CACHED_AXES);

    /** Axes whose weights are kept: both axes of a few input sizes (a model sees one or two), on one or two devices. */
    static final int CACHED_AXES = 8;

    private Upsample(int outH, int outW, double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners) {
        if (mode == null) throw new IllegalArgumentException("Upsample: mode is null; use one of InterpolateMode's (NEAREST, NEAREST_EXACT, BILINEAR, BICUBIC, AREA)");
        if (alignCorners && !mode.takesAlignCorners())
            throw new IllegalArgumentException("Upsample: align_corners applies to bilinear and bicubic only (torch refuses it with mode '" + mode.torchName() + "')");
        this.outH = outH; this.outW = outW; this.scaleH = scaleH; this.scaleW = scaleW; this.mode = mode; this.alignCorners = alignCorners;
    }

    /** nn.Upsample(size=(outH, outW), mode, align_corners). */
    public static Upsample size(int outH, int outW, InterpolateMode mode, boolean alignCorners) {
        if (outH <= 0 || outW <= 0) throw new IllegalArgumentException("Upsample: output size " + outH + "x" + outW + " must be positive");
        return new Upsample(outH, outW, Double.NaN, Double.NaN, mode, alignCorners);
    }

    /** nn.Upsample(scale_factor=(scaleH, scaleW), mode, align_corners): output floor(H scaleH) x floor(W scaleW). */
    public static Upsample scale(double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners) {
        if (!(scaleH > 0) || !(scaleW > 0) || Double.isInfinite(scaleH) || Double.isInfinite(scaleW))
            throw new IllegalArgumentException("Upsample: scale factors must be finite and positive, got " + scaleH + "x" + scaleW);
        return new Upsample(0, 0, scaleH, scaleW, mode, alignCorners);
    }

    @Override public Var forward(Var x) {
        return Double.isNaN(scaleH) ? cache.interpolate(x, outH, outW, mode, alignCorners) : cache.interpolateScale(x, scaleH, scaleW, mode, alignCorners);
    }

    /** The weights this module keeps (tests). */
    InterpolateCache cache() { return cache; }

    @Override public void close() {
        cache.close();
        super.close();
    }
}
