package fst4j.tensor;

import fst4j.shim.Native;

/**
 * Batch normalisation over [N, C, H, W] (statistics per channel over N, H, W). Statistics are computed
 * in double; outputs are in x's dtype. gamma/beta may be null (no affine transform: 1 and 0).
 */
public final class Norm {
    private Norm() {}

    /**
     * Training forward result: output, and the batch mean and 1/sqrt(var + eps) per channel ([C], x's
     * dtype, biased variance) that {@link #batchNorm2dBackward} needs. reluAffine: for a fused ReLU on the native
     * path (and {@link #reluMaskFromX}), each channel's scale and shift in float64 ([C, 2]: the output before the
     * ReLU is (float) (x * scale + shift)), from which the backward recomputes the ReLU's mask instead of reading
     * the output; null otherwise.
     */
    public record BatchNorm(Tensor output, Tensor mean, Tensor invStd, Tensor reluAffine) implements AutoCloseable {
        public BatchNorm(Tensor output, Tensor mean, Tensor invStd) { this(output, mean, invStd, null); }
        @Override public void close() {
            output.close(); mean.close(); invStd.close();
            if (reluAffine != null) reluAffine.close();
        }
    }

    /**
     * Whether the fused batch norm + ReLU keeps its scale and shift for the backward to recompute the ReLU's mask from
     * x (read there anyway) rather than read the output: one tensor fewer read in each of the backward's two passes,
     * the same mask, the same bits (switch "bnx" of bench-interleaved).
     */
    public static volatile boolean reluMaskFromX = true;

    /**
     * Gradients of batch norm: dx [N, C, H, W], dgamma and dbeta [C]; dyMasked, where asked for, dy masked by the
     * fused ReLU (the gradient of a shortcut added before that ReLU), else null.
     */
    public record BatchNormGrads(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dyMasked) implements AutoCloseable {
        public BatchNormGrads(Tensor dx, Tensor dgamma, Tensor dbeta) { this(dx, dgamma, dbeta, null); }
        @Override public void close() {
            dx.close(); dgamma.close(); dbeta.close();
            if (dyMasked != null) dyMasked.close();
        }
    }

    private static int channels(String op, Tensor x) {
        x.check();
        if (x.dim() != 4) throw new IllegalArgumentException("wrong rank: " + op + " needs input [N, C, H, W], got " + Shape.str(x.shape));
        planeSize(x);   // every path, CUDA's too, takes H * W as an int
        return x.shape[1];
    }

    private static void checkVec(String op, String name, Tensor v, int c, Tensor x) {
        if (v == null) return;
        v.check();
        if (v.dim() != 1 || v.shape[0] != c)
            throw new IllegalArgumentException("channel mismatch: " + op + " " + name + " " + Shape.str(v.shape) + " for input " + Shape.str(x.shape) + " needs [" + c + "]");
    }

    /**
     * Running statistics are updated in place in training: an expanded view (stride 0 over its channels) would have
     * every channel update the one element in turn, mixing them silently (found by a fuzzing trial). Refused by name.
     */
    private static void checkWritable(String op, Tensor... running) {
        for (Tensor v : running)
            if (v != null && v.shape[0] > 1 && v.strides[0] == 0)
                throw new IllegalArgumentException(op + ": the running statistics " + Shape.str(v.shape) + " are an expanded view (stride 0): its "
                        + v.shape[0] + " channels share one element, which training updates in place; pass a tensor of its own (copy())");
    }

    /** Float32 batch norm runs in the C shim; -Dfst4j.norm.java=true keeps the Java reference (tests compare both). */
    static boolean nativeNorm = !Boolean.getBoolean("fst4j.norm.java");

    /** Native path: every given tensor float32, vectors contiguous (x and dy are made contiguous by the caller). */
    private static boolean useNative(Tensor x, Tensor... vecs) {
        if (!nativeNorm || x.dtype != DType.F32 || !Native.isLoaded() || x.numel() == 0) return false;
        for (Tensor v : vecs) if (v != null && (v.dtype != DType.F32 || (v.dim() == 1 && !v.isContiguous()))) return false;
        return true;
    }

    private static java.lang.foreign.MemorySegment seg(Tensor v) { return v == null ? java.lang.foreign.MemorySegment.NULL : v.data(); }

    private static double at(Tensor v, int i, double dflt) { return v == null ? dflt : v.getAt(v.offset + i * v.strides[0]); }

    /**
     * Training-mode forward: normalises with the batch statistics and, when runningMean/runningVar are
     * non-null, updates them in place: running = (1 - momentum) * running + momentum * batch, with the
     * unbiased batch variance for runningVar (PyTorch's convention, momentum 0.1 there).
     */
    public static BatchNorm batchNorm2dTrain(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                             double momentum, double eps) {
        return batchNorm2dTrain(x, gamma, beta, runningMean, runningVar, momentum, eps, false);
    }

    /**
     * {@link #batchNorm2dTrain(Tensor, Tensor, Tensor, Tensor, Tensor, double, double)} followed, when relu, by a ReLU
     * applied in the same pass (output max(BN(x), 0); NaN stays NaN as in {@link Elementwise#relu}).
     */
    public static BatchNorm batchNorm2dTrain(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                             double momentum, double eps, boolean relu) {
        return batchNorm2dTrain(x, gamma, beta, runningMean, runningVar, momentum, eps, relu, null);
    }

    /**
     * {@link #batchNorm2dTrain(Tensor, Tensor, Tensor, Tensor, Tensor, double, double, boolean)} with add (or null), a
     * tensor of x's shape, added to the batch norm's output before the ReLU: max(BN(x) + add, 0), a ResNet block's end
     * (relu(bn2(conv2(h)) + shortcut)) in batch norm's own pass on the native path, with the bits of BN then
     * {@link Elementwise#addRelu} (or then add, without relu). No {@link BatchNorm#reluAffine} then: the mask is no
     * longer x's alone; the backward reads the output.
     */
    public static BatchNorm batchNorm2dTrain(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                             double momentum, double eps, boolean relu, Tensor add) {
        String op = "batchNorm2dTrain";
        int c = channels(op, x);
        if (add != null) {
            add.check();
            if (!java.util.Arrays.equals(add.shape, x.shape))
                throw new IllegalArgumentException("shape mismatch: " + op + " add " + Shape.str(add.shape) + " vs x " + Shape.str(x.shape));
            if (add.dtype != x.dtype) throw new IllegalArgumentException("dtype mismatch: " + op + " add " + add.dtype + " vs x " + x.dtype);
            if (add.storage.device != x.storage.device)
                throw new IllegalArgumentException("device mismatch: " + op + " add on " + add.storage.device + " vs x on " + x.storage.device);
            if (x.storage.device != Device.CPU || !useNative(x, gamma, beta, runningMean, runningVar)) {
                // elsewhere: the batch norm, then the add (and ReLU) as their own ops, the same formulas
                try (BatchNorm b = batchNorm2dTrain(x, gamma, beta, runningMean, runningVar, momentum, eps, false, null)) {
                    Tensor out = relu ? Elementwise.addRelu(b.output(), add) : b.output().add(add);
                    return new BatchNorm(out, b.mean().alias(), b.invStd().alias());
                }
            }
        }
        checkVec(op, "gamma", gamma, c, x); checkVec(op, "beta", beta, c, x);
        checkVec(op, "runningMean", runningMean, c, x); checkVec(op, "runningVar", runningVar, c, x);
        checkWritable(op, runningMean, runningVar);
        int n = x.shape[0], hw = planeSize(x);
        long m = (long) n * hw;
        if (m == 0) throw new IllegalArgumentException(op + ": no values per channel in input " + Shape.str(x.shape));
        // one value is its own mean: the output was zeros (beta), silently, and the running variance took the biased 0
        // for the unbiased one; PyTorch refuses it in training mode too (eval mode normalises one value fine)
        if (m == 1)
            throw new IllegalArgumentException(op + ": expected more than 1 value per channel when training, got input " + Shape.str(x.shape)
                    + " (N*H*W = 1): use a batch of at least 2, or eval mode");
        if (!(eps >= 0)) throw new IllegalArgumentException(op + ": eps must be >= 0, got " + eps);
        if (x.storage.device != Device.CPU) {
            return CudaOps.batchNorm2dTrain(x, gamma, beta, runningMean, runningVar, momentum, eps, relu);   // the ReLU in the same pass
        }
        // updated below, by the native kernel too; once the arguments are checked: a refused call changes no version
        if (runningMean != null) runningMean.markModified();
        if (runningVar != null) runningVar.markModified();
        Tensor out = Tensor.empty(x.dtype, x.shape);
        Tensor mean = Tensor.empty(x.dtype, c), invStd = Tensor.empty(x.dtype, c);
        if (useNative(x, gamma, beta, runningMean, runningVar)) {
            Tensor affine = null;
            try (Tensor xc = x.contiguous(); Tensor ac = add == null ? null : add.contiguous()) {
                if (relu && add == null && reluMaskFromX) affine = Tensor.empty(DType.F64, c, 2);
                Native.bnTrain(xc.data(), seg(gamma), seg(beta), seg(runningMean), seg(runningVar), n, c, hw, momentum, eps,
                        seg(ac), out.data(), mean.data(), invStd.data(), seg(affine), relu, Blas.threads());
            } catch (RuntimeException | Error e) {
                out.close(); mean.close(); invStd.close();
                if (affine != null) affine.close();
                throw e;
            }
            return new BatchNorm(out, mean, invStd, affine);
        }
        try (Tensor xc = x.contiguous()) {
            for (int ch = 0; ch < c; ch++) {
                double s = 0;
                for (int i = 0; i < n; i++) {
                    long base = xc.offset + ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) s += xc.getAt(base + q);
                }
                double mu = s / m, sq = 0;
                for (int i = 0; i < n; i++) {
                    long base = xc.offset + ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) { double d = xc.getAt(base + q) - mu; sq += d * d; }
                }
                double var = sq / m, is = 1 / Math.sqrt(var + eps);
                double gm = at(gamma, ch, 1), bt = at(beta, ch, 0);
                double scale = gm * is, shift = bt - mu * scale;
                for (int i = 0; i < n; i++) {
                    long base = ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) {
                        double v = xc.getAt(xc.offset + base + q) * scale + shift;
                        double st = x.dtype == DType.F32 ? (float) v : v;   // the stored value decides, as a separate ReLU would
                        if (relu && !(st > 0) && !Double.isNaN(st)) v = 0;
                        out.setAt(base + q, v);
                    }
                }
                mean.setAt(ch, mu);
                invStd.setAt(ch, is);
                if (runningMean != null) {
                    long ri = runningMean.offset + ch * runningMean.strides[0];
                    runningMean.setAt(ri, (1 - momentum) * runningMean.getAt(ri) + momentum * mu);
                }
                if (runningVar != null) {
                    long ri = runningVar.offset + ch * runningVar.strides[0];
                    double unbiased = m > 1 ? sq / (m - 1) : var;
                    runningVar.setAt(ri, (1 - momentum) * runningVar.getAt(ri) + momentum * unbiased);
                }
            }
        }
        return new BatchNorm(out, mean, invStd);
    }

    /**
     * The fused batch norm + ReLU + 2x2 / stride 2 max pool's forward: the pooled output [N, C, H/2, W/2], its argmax
     * indices (as {@link Pool#maxPool2d}'s), the batch statistics, and the scale and shift from which the backward
     * recomputes the ReLU's mask.
     */
    public record BatchNormPool(Tensor output, Pool.Indices indices, Tensor mean, Tensor invStd, Tensor reluAffine) implements AutoCloseable {
        @Override public void close() { output.close(); indices.close(); mean.close(); invStd.close(); reluAffine.close(); }
    }

    /**
     * Whether {@link #batchNorm2dReluMaxPool2Train} runs for these tensors: float32 on the CPU with the shim loaded (the
     * path {@link #batchNorm2dTrain} takes natively), planes of at least 2 x 2 and at most 16384 values. Elsewhere run batch norm + ReLU and
     * {@link Pool#maxPool2d} in turn: the same values.
     */
    /** The largest plane (H * W) the fused pool takes: each task keeps a plane on its stack in C (norm.c's BN_POOL_MAX_HW). */
    static final int POOL_MAX_PLANE = 16384;

    public static boolean reluMaxPool2Fusable(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar) {
        return x.dim() == 4 && !x.isClosed() && x.storage.device == Device.CPU && useNative(x, gamma, beta, runningMean, runningVar)
                && x.shape[2] >= 2 && x.shape[3] >= 2 && (long) x.shape[2] * x.shape[3] <= POOL_MAX_PLANE;
    }

    /**
     * max_pool2d(relu(batch_norm(x)), 2, 2) in training mode in one pass over the output, which is never stored: the
     * same pooled values, indices, statistics and running statistics as {@link #batchNorm2dTrain} with relu then
     * {@link Pool#maxPool2d}(2, 2, 0). Only where {@link #reluMaxPool2Fusable}.
     */
    public static BatchNormPool batchNorm2dReluMaxPool2Train(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                                             double momentum, double eps) {
        String op = "batchNorm2dReluMaxPool2Train";
        int c = channels(op, x);
        checkVec(op, "gamma", gamma, c, x); checkVec(op, "beta", beta, c, x);
        checkVec(op, "runningMean", runningMean, c, x); checkVec(op, "runningVar", runningVar, c, x);
        checkWritable(op, runningMean, runningVar);
        int n = x.shape[0], h = x.shape[2], w = x.shape[3];
        if (!(eps >= 0)) throw new IllegalArgumentException(op + ": eps must be >= 0, got " + eps);
        if (!reluMaxPool2Fusable(x, gamma, beta, runningMean, runningVar))
            throw new IllegalArgumentException(op + " runs on float32 CPU tensors of at least 2 x 2 with the native library only, got "
                    + x.dtype + " " + Shape.str(x.shape) + " on " + x.storage.device + "; use batchNorm2dTrain and Pool.maxPool2d");
        if (runningMean != null) runningMean.markModified();
        if (runningVar != null) runningVar.markModified();
        Tensor out = Tensor.empty(x.dtype, n, c, h / 2, w / 2), mean = Tensor.empty(x.dtype, c), invStd = Tensor.empty(x.dtype, c);
        Tensor affine = null;
        try (Tensor xc = x.contiguous()) {
            affine = Tensor.empty(DType.F64, c, 2);
            int[] idx = new int[Math.toIntExact(out.numel())];
            Native.bnReluMaxPool2Train(xc.data(), seg(gamma), seg(beta), seg(runningMean), seg(runningVar), n, c, h, w, momentum, eps,
                    out.data(), idx, mean.data(), invStd.data(), affine.data(), Blas.threads());
            return new BatchNormPool(out, new Pool.HostIndices(idx), mean, invStd, affine);
        } catch (RuntimeException | Error e) {
            out.close(); mean.close(); invStd.close();
            if (affine != null) affine.close();
            throw e;
        }
    }

    /**
     * Backward of {@link #batchNorm2dReluMaxPool2Train} from the pooled gradient dy [N, C, H/2, W/2]: the same dx,
     * dgamma and dbeta as {@link Pool#maxPool2dBackward} then {@link #batchNorm2dBackward} with the fused ReLU's mask.
     */
    public static BatchNormGrads batchNorm2dReluMaxPool2Backward(Tensor dy, Pool.Indices indices, Tensor x, Tensor gamma, Tensor mean,
                                                                 Tensor invStd, Tensor reluAffine) {
        String op = "batchNorm2dReluMaxPool2Backward";
        int c = channels(op, x);
        dy.check();
        int n = x.shape[0], h = x.shape[2], w = x.shape[3];
        if (!java.util.Arrays.equals(dy.shape, new int[]{n, c, h / 2, w / 2}))
            throw new IllegalArgumentException("shape mismatch: " + op + " dy " + Shape.str(dy.shape) + " for input " + Shape.str(x.shape)
                    + " needs [" + n + ", " + c + ", " + h / 2 + ", " + w / 2 + "]");
        checkVec(op, "gamma", gamma, c, x); checkVec(op, "mean", mean, c, x); checkVec(op, "invStd", invStd, c, x);
        reluAffine.check();
        if (reluAffine.dtype != DType.F64 || !java.util.Arrays.equals(reluAffine.shape, new int[]{c, 2}) || !reluAffine.isContiguous())
            throw new IllegalArgumentException(op + ": reluAffine must be a contiguous float64 [" + c + ", 2], got " + reluAffine.dtype + " "
                    + Shape.str(reluAffine.shape));
        if (!(indices instanceof Pool.HostIndices hi) || hi.count() != dy.numel())
            throw new IllegalArgumentException(op + ": " + indices.count() + " host indices needed one per pooled value (" + dy.numel() + ")");
        if (x.storage.device != Device.CPU || dy.storage.device != Device.CPU)
            throw new IllegalArgumentException(op + ": the forward ran on the CPU; dy on " + dy.storage.device);
        if (!useNative(x, dy, gamma, mean, invStd) || h < 2 || w < 2 || (long) h * w > POOL_MAX_PLANE) {
            // off the native path since the forward (nativeNorm turned off, a float64 gradient), or planes the fused kernel
            // does not take (a caller's own x): the pool's backward, then batch norm's with the same mask
            try (Tensor dxp = Pool.maxPool2dBackward(dy, indices, x.shape)) {
                return batchNorm2dBackward(dxp, x, gamma, mean, invStd, null, reluAffine);
            }
        }
        Tensor dx = Tensor.empty(x.dtype, x.shape), dgamma = Tensor.empty(x.dtype, c), dbeta = Tensor.empty(x.dtype, c);
        try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous()) {
            Native.bnReluMaxPool2Backward(dyc.data(), hi.values(), xc.data(), seg(gamma), seg(mean), seg(invStd), reluAffine.data(),
                    n, c, h, w, dx.data(), dgamma.data(), dbeta.data(), Blas.threads());
            return new BatchNormGrads(dx, dgamma, dbeta);
        } catch (RuntimeException | Error e) {
            dx.close(); dgamma.close(); dbeta.close();
            throw e;
        }
    }

    /** Eval-mode forward: y = gamma (x - runningMean) / sqrt(runningVar + eps) + beta. */
    public static Tensor batchNorm2dEval(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double eps) {
        String op = "batchNorm2dEval";
        int c = channels(op, x);
        if (runningMean == null || runningVar == null) throw new IllegalArgumentException(op + " needs running mean and variance");
        checkVec(op, "gamma", gamma, c, x); checkVec(op, "beta", beta, c, x);
        checkVec(op, "runningMean", runningMean, c, x); checkVec(op, "runningVar", runningVar, c, x);
        if (x.storage.device != Device.CPU) return CudaOps.batchNorm2dEval(x, gamma, beta, runningMean, runningVar, eps);
        int n = x.shape[0], hw = planeSize(x);
        Tensor out = Tensor.empty(x.dtype, x.shape);
        try (Tensor xc = x.contiguous()) {
            for (int ch = 0; ch < c; ch++) {
                double scale = at(gamma, ch, 1) / Math.sqrt(at(runningVar, ch, 1) + eps);
                double shift = at(beta, ch, 0) - at(runningMean, ch, 0) * scale;
                for (int i = 0; i < n; i++) {
                    long base = ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) out.setAt(base + q, xc.getAt(xc.offset + base + q) * scale + shift);
                }
            }
        }
        return out;
    }

    /**
     * Training-mode backward, with xhat = (x - mean) invStd and M = N*H*W:
     * dbeta = sum dy, dgamma = sum dy xhat, dx = gamma invStd / M (M dy - dbeta - xhat dgamma).
     * mean and invStd are those returned by {@link #batchNorm2dTrain}; gamma may be null (1).
     */
    public static BatchNormGrads batchNorm2dBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor invStd) {
        return batchNorm2dBackward(dy, x, gamma, mean, invStd, null);
    }

    /**
     * Backward of the fused batch norm + ReLU: reluOut is the forward's output (relu applied); dy counts only where
     * reluOut > 0. reluOut null: plain batch norm backward.
     */
    public static BatchNormGrads batchNorm2dBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor invStd, Tensor reluOut) {
        return batchNorm2dBackward(dy, x, gamma, mean, invStd, reluOut, null);
    }

    /**
     * Backward of the fused batch norm + ReLU given either the forward's output (reluOut) or its
     * {@link BatchNorm#reluAffine} (the mask recomputed from x, the same positions); with both, reluAffine is used
     * where the native path runs and reluOut elsewhere, so a caller that kept both works on every path. reluAffine
     * alone works on the native path only (float32 on the CPU with the shim loaded, where the forward made it).
     */
    public static BatchNormGrads batchNorm2dBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor invStd, Tensor reluOut,
                                                     Tensor reluAffine) {
        return batchNorm2dBackward(dy, x, gamma, mean, invStd, reluOut, reluAffine, false);
    }

    /**
     * The backward above; with wantMasked, also dy masked by the fused ReLU ({@link BatchNormGrads#dyMasked}: the
     * gradient of the tensor added before the ReLU, {@link #batchNorm2dTrain(Tensor, Tensor, Tensor, Tensor, Tensor,
     * double, double, boolean, Tensor)}'s add), written by the native path in its first pass. wantMasked needs a mask
     * (reluOut or reluAffine).
     */
    public static BatchNormGrads batchNorm2dBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor invStd, Tensor reluOut,
                                                     Tensor reluAffine, boolean wantMasked) {
        String op = "batchNorm2dBackward";
        if (wantMasked && reluOut == null && reluAffine == null)
            throw new IllegalArgumentException(op + ": dy masked by the ReLU was asked for without the ReLU's output (reluOut) or reluAffine");
        int c = channels(op, x);
        dy.check();
        if (!java.util.Arrays.equals(dy.shape, x.shape))
            throw new IllegalArgumentException("shape mismatch: " + op + " dy " + Shape.str(dy.shape) + " vs x " + Shape.str(x.shape));
        checkVec(op, "gamma", gamma, c, x); checkVec(op, "mean", mean, c, x); checkVec(op, "invStd", invStd, c, x);
        if (reluOut != null) {
            reluOut.check();
            if (!java.util.Arrays.equals(reluOut.shape, x.shape))
                throw new IllegalArgumentException("shape mismatch: " + op + " reluOut " + Shape.str(reluOut.shape) + " vs x " + Shape.str(x.shape));
        }
        if (x.storage.device != Device.CPU || dy.storage.device != Device.CPU) {
            if (x.numel() == 0) throw new IllegalArgumentException(op + ": no values per channel in input " + Shape.str(x.shape));
            if (reluOut == null && reluAffine != null)
                throw new IllegalArgumentException(op + ": reluAffine is read by the native float32 path only; pass the forward's output as reluOut");
            if (!wantMasked) return CudaOps.batchNorm2dBackward(dy, x, gamma, mean, invStd, reluOut);   // the ReLU's mask applied as dy is read
            return backwardOfMasked(Elementwise.reluBackward(dy, reluOut), x, gamma, mean, invStd, true);
        }
        if (reluAffine != null) {
            reluAffine.check();
            if (reluAffine.dtype != DType.F64 || !java.util.Arrays.equals(reluAffine.shape, new int[]{c, 2}) || !reluAffine.isContiguous())
                throw new IllegalArgumentException(op + ": reluAffine must be a contiguous float64 [" + c + ", 2] (BatchNorm.reluAffine), got "
                        + reluAffine.dtype + " " + Shape.str(reluAffine.shape));
        }
        int n = x.shape[0], hw = planeSize(x);
        long m = (long) n * hw;
        boolean nat = useNative(x, dy, gamma, mean, invStd) && (reluOut == null || reluOut.dtype == DType.F32);
        if (!nat && (reluOut != null || reluAffine != null))
            // the reference path: the ReLU's mask first (from the output, or else from x and the affine when nativeNorm was
            // turned off since the forward, say: the same mask), then the plain backward
            return backwardOfMasked(reluOut != null ? Elementwise.reluBackward(dy, reluOut) : maskFromAffine(dy, x, reluAffine),
                    x, gamma, mean, invStd, wantMasked);
        if (reluAffine != null) reluOut = null;   // the mask from x: one tensor fewer read
        Tensor dx = Tensor.empty(x.dtype, x.shape), dgamma = Tensor.empty(x.dtype, c), dbeta = Tensor.empty(x.dtype, c);
        if (nat) {
            Tensor dm = null;
            try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous(); Tensor rc = reluOut == null ? null : reluOut.contiguous()) {
                if (wantMasked) dm = Tensor.empty(x.dtype, x.shape);
                Native.bnBackward(dyc.data(), xc.data(), seg(gamma), seg(mean), seg(invStd), rc == null ? java.lang.foreign.MemorySegment.NULL : rc.data(),
                        seg(reluAffine), n, c, hw, dx.data(), dgamma.data(), dbeta.data(), seg(dm), Blas.threads());
            } catch (RuntimeException | Error e) {
                dx.close(); dgamma.close(); dbeta.close();
                if (dm != null) dm.close();
                throw e;
            }
            return new BatchNormGrads(dx, dgamma, dbeta, dm);
        }
        try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous()) {
            for (int ch = 0; ch < c; ch++) {
                double mu = at(mean, ch, 0), is = at(invStd, ch, 1), gm = at(gamma, ch, 1);
                double sdy = 0, sdyx = 0;
                for (int i = 0; i < n; i++) {
                    long base = ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) {
                        double g = dyc.getAt(dyc.offset + base + q);
                        sdy += g;
                        sdyx += g * (xc.getAt(xc.offset + base + q) - mu) * is;
                    }
                }
                double k = gm * is / m;
                for (int i = 0; i < n; i++) {
                    long base = ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) {
                        double xh = (xc.getAt(xc.offset + base + q) - mu) * is;
                        dx.setAt(base + q, k * (m * dyc.getAt(dyc.offset + base + q) - sdy - xh * sdyx));
                    }
                }
                dgamma.setAt(ch, sdyx);
                dbeta.setAt(ch, sdy);
            }
        }
        return new BatchNormGrads(dx, dgamma, dbeta);
    }

    /**
     * The plain backward of dy already masked by the ReLU (freed here unless kept as the result's dyMasked).
     */
    private static BatchNormGrads backwardOfMasked(Tensor masked, Tensor x, Tensor gamma, Tensor mean, Tensor invStd, boolean keepMasked) {
        try {
            BatchNormGrads r = batchNorm2dBackward(masked, x, gamma, mean, invStd, null);
            if (!keepMasked) masked.close();
            return keepMasked ? new BatchNormGrads(r.dx(), r.dgamma(), r.dbeta(), masked) : r;
        } catch (RuntimeException | Error e) {
            masked.close();
            throw e;
        }
    }

    /**
     * dy where the fused ReLU let the value through, +0 elsewhere, the mask recomputed from x and the forward's float64
     * scale and shift as the C backward does: (float) (x * scale + shift) > 0 (Java's double arithmetic is not contracted,
     * so the same bits). For the backwards that get reluAffine off the native path.
     */
    static Tensor maskFromAffine(Tensor dy, Tensor x, Tensor affine) {
        int n = x.shape[0], c = x.shape[1], hw = planeSize(x);
        Tensor out = Tensor.empty(dy.dtype, dy.shape);
        try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous()) {
            for (int ch = 0; ch < c; ch++) {
                double sc = affine.getAt(affine.offset + 2L * ch), sh = affine.getAt(affine.offset + 2L * ch + 1);
                for (int i = 0; i < n; i++) {
                    long base = ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) {
                        float v = (float) (xc.getAt(xc.offset + base + q) * sc + sh);
                        out.setAt(base + q, v > 0 ? dyc.getAt(dyc.offset + base + q) : 0.0);
                    }
                }
            }
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    /**
     * Eval-mode backward (running statistics are constants): dx = dy gamma / sqrt(rv + eps),
     * dgamma = sum dy (x - rm) / sqrt(rv + eps), dbeta = sum dy.
     */
    public static BatchNormGrads batchNorm2dEvalBackward(Tensor dy, Tensor x, Tensor gamma, Tensor runningMean, Tensor runningVar, double eps) {
        String op = "batchNorm2dEvalBackward";
        int c = channels(op, x);
        dy.check();
        if (!java.util.Arrays.equals(dy.shape, x.shape))
            throw new IllegalArgumentException("shape mismatch: " + op + " dy " + Shape.str(dy.shape) + " vs x " + Shape.str(x.shape));
        if (runningMean == null || runningVar == null) throw new IllegalArgumentException(op + " needs running mean and variance");
        checkVec(op, "gamma", gamma, c, x); checkVec(op, "runningMean", runningMean, c, x); checkVec(op, "runningVar", runningVar, c, x);
        if (x.storage.device != Device.CPU || dy.storage.device != Device.CPU)
            return CudaOps.batchNorm2dEvalBackward(dy, x, gamma, runningMean, runningVar, eps);
        int n = x.shape[0], hw = planeSize(x);
        Tensor dx = Tensor.empty(x.dtype, x.shape), dgamma = Tensor.empty(x.dtype, c), dbeta = Tensor.empty(x.dtype, c);
        try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous()) {
            for (int ch = 0; ch < c; ch++) {
                double mu = at(runningMean, ch, 0), is = 1 / Math.sqrt(at(runningVar, ch, 1) + eps), gm = at(gamma, ch, 1);
                double sdy = 0, sdyx = 0;
                for (int i = 0; i < n; i++) {
                    long base = ((long) i * c + ch) * hw;
                    for (int q = 0; q < hw; q++) {
                        double g = dyc.getAt(dyc.offset + base + q);
                        sdy += g;
                        sdyx += g * (xc.getAt(xc.offset + base + q) - mu) * is;
                        dx.setAt(base + q, g * gm * is);
                    }
                }
                dgamma.setAt(ch, sdyx);
                dbeta.setAt(ch, sdy);
            }
        }
        return new BatchNormGrads(dx, dgamma, dbeta);
    }

    /** H * W of an [N, C, H, W] input; refused by name past 2^31 - 1 values (the int product wrapped, and the kernels then
     * normalised a prefix of each plane, leaving the rest of the output unwritten). */
    static int planeSize(Tensor x) {
        long hw = (long) x.shape[2] * x.shape[3];
        if (hw > Integer.MAX_VALUE)
            throw new IllegalArgumentException("batch norm: a plane of " + x.shape[2] + " x " + x.shape[3] + " = " + hw
                    + " values exceeds 2^31 - 1, in input " + Shape.str(x.shape));
        return (int) hw;
    }
}
