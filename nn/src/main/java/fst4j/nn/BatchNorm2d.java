package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.Tensor;

/** Batch norm over (N, H, W) per channel, with running statistics (momentum 0.1, eps 1e-5 by default). */
public final class BatchNorm2d extends Module {
    private final Var gamma, beta;
    private final double momentum, eps;

    public BatchNorm2d(int channels) { this(channels, 0.1, 1e-5); }

    public BatchNorm2d(int channels, double momentum, double eps) {
        this.gamma = parameter("weight", Tensor.ones(channels));
        this.beta = parameter("bias", Tensor.zeros(channels));
        buffer("running_mean", Tensor.zeros(channels));   // looked up at each forward: Module.to may replace them
        buffer("running_var", Tensor.ones(channels));
        this.momentum = momentum;
        this.eps = eps;
    }

    public Var gamma() { return gamma; }

    @Override protected String extraRepr() { return gamma.shape()[0] + ", eps=" + eps + ", momentum=" + momentum; }

    @Override
    public Var forward(Var x) {
        return NN.batchNorm2d(x, gamma, beta, buffer("running_mean"), buffer("running_var"), isTraining(), momentum, eps);
    }

    /** relu(forward(x)) in one function (NN.batchNorm2dRelu): what Sequential and BasicBlock call for BN followed by ReLU. */
    public Var forwardRelu(Var x) {
        return NN.batchNorm2dRelu(x, gamma, beta, buffer("running_mean"), buffer("running_var"), isTraining(), momentum, eps);
    }

    /** maxPool2d(relu(forward(x)), 2, 2, 0) in one function (NN.batchNorm2dReluMaxPool2): what Sequential calls for that run. */
    public Var forwardReluMaxPool2(Var x) {
        return NN.batchNorm2dReluMaxPool2(x, gamma, beta, buffer("running_mean"), buffer("running_var"), isTraining(), momentum, eps);
    }

    /** relu(forward(x) + add) in one function (NN.batchNorm2dAddRelu): what BasicBlock calls for its second batch norm. */
    public Var forwardAddRelu(Var x, Var add) {
        return NN.batchNorm2dAddRelu(x, gamma, beta, add, buffer("running_mean"), buffer("running_var"), isTraining(), momentum, eps);
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public BatchNorm2d train(boolean on) { super.train(on); return this; }
    @Override public BatchNorm2d train() { return train(true); }
    @Override public BatchNorm2d eval() { return train(false); }
    @Override public BatchNorm2d to(fst4j.tensor.Device d) { super.to(d); return this; }
}
