package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch.nn.BatchNorm1d on [N, C] or [N, C, L]: statistics per channel over N (and L), running statistics updated in
 * training with momentum (0.1) and used in eval, eps 1e-5 ({@link NN#batchNorm1d}: BatchNorm2d's normalisation on a
 * reshaped view). Its state is BatchNorm2d's: parameters "weight" and "bias" (affine, the default) and buffers
 * "running_mean" and "running_var" (trackRunningStats, the default), the names of torch's state_dict; torch's
 * num_batches_tracked is not kept (only momentum=None reads it, which this does not offer), as BatchNorm2d keeps none.
 * Without running statistics it normalises with the batch's in eval mode too, as torch's does.
 */
public final class BatchNorm1d extends Module {
    private final int channels;
    private final Var gamma, beta;
    private final double momentum, eps;
    private final boolean trackRunningStats;

    public BatchNorm1d(int channels) { this(channels, 0.1, 1e-5, true, true); }

    public BatchNorm1d(int channels, double momentum, double eps) { this(channels, momentum, eps, true, true); }

    public BatchNorm1d(int channels, double momentum, double eps, boolean affine, boolean trackRunningStats) {
        if (channels <= 0) throw new IllegalArgumentException("BatchNorm1d needs a positive number of channels, got " + channels);
        if (!(eps >= 0) || Double.isInfinite(eps)) throw new IllegalArgumentException("BatchNorm1d: eps must be finite and >= 0, got " + eps);
        if (!Double.isFinite(momentum)) throw new IllegalArgumentException("BatchNorm1d: momentum must be finite, got " + momentum);
        this.channels = channels;
        this.gamma = affine ? parameter("weight", Tensor.ones(channels)) : null;
        this.beta = affine ? parameter("bias", Tensor.zeros(channels)) : null;
        this.trackRunningStats = trackRunningStats;
        if (trackRunningStats) {
            buffer("running_mean", Tensor.zeros(channels));   // looked up at each forward: Module.to may replace them
            buffer("running_var", Tensor.ones(channels));
        }
        this.momentum = momentum;
        this.eps = eps;
    }

    public Var gamma() { return gamma; }

    @Override protected String extraRepr() {
        return channels + ", eps=" + eps + ", momentum=" + momentum + ", affine=" + (gamma != null) + ", track_running_stats=" + trackRunningStats;
    }

    @Override
    public Var forward(Var x) {
        int[] s = x.shape();
        if ((s.length != 2 && s.length != 3) || s[1] != channels)
            throw new IllegalArgumentException("BatchNorm1d(" + channels + ") needs input [N, " + channels + "] or [N, " + channels + ", L], got " + Shape.str(s));
        if (!trackRunningStats) return NN.batchNorm1d(x, gamma, beta, null, null, true, momentum, eps);
        return NN.batchNorm1d(x, gamma, beta, buffer("running_mean"), buffer("running_var"), isTraining(), momentum, eps);
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public BatchNorm1d train(boolean on) { super.train(on); return this; }
    @Override public BatchNorm1d train() { return train(true); }
    @Override public BatchNorm1d eval() { return train(false); }
    @Override public BatchNorm1d to(fst4j.tensor.Device d) { super.to(d); return this; }
}
