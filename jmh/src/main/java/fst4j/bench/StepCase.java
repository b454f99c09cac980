package fst4j.bench;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.SGD;
import fst4j.nn.SrSte;
import fst4j.nn.train.Trainer;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

/**
 * One benchmarked training step, the same for {@link StepBench} and {@link StepInterleaved} (and for
 * jmh/peers/torch_step.py): "cnn" and "resnet-small" at batch 128 on 1x28x28, "resnet18" (CIFAR stem) at batch 32 on
 * 3x32x32, random inputs, labels i % 10, SGD (lr 0.01, momentum 0.9, weight decay 5e-4), cross-entropy with label
 * smoothing 0.1 and SR-STE decay where weights are pruned.
 */
final class StepCase implements AutoCloseable {
    private final Module net;
    private final SGD opt;
    private final Tensor x;
    private final int[] labels;

    StepCase(String model, String method) {
        boolean cifar = model.equals("resnet18");
        int batch = cifar ? 32 : 128, c = cifar ? 3 : 1, hw = cifar ? 32 : 28;
        net = Models.byName(model, c, hw, hw, 10, SparseConfig.Method.parse(method), 1);
        opt = new SGD(net.parameters(), 0.01, 0.9, 5e-4, false);
        x = new Rng(2).normal(0, 1, batch, c, hw, hw);
        labels = new int[batch];
        for (int i = 0; i < batch; i++) labels[i] = i % 10;
    }

    /** Forward, loss, backward, SR-STE decay and the SGD step, everything freed by the step's scope; returns the loss. */
    double step() {
        try (Scope s = Scope.open()) {
            Var loss = NN.crossEntropy(net.forward(Var.of(x.alias())), labels, 0.1);
            double l = loss.item();
            Trainer.backwardAndUpdate(loss, net, opt, true, SrSte.DEFAULT_LAMBDA);
            return l;
        }
    }

    @Override public void close() {
        opt.close();
        net.close();
        x.close();
    }
}
