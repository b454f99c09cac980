package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/** ResNet's basic block: conv3x3-BN-ReLU-conv3x3-BN plus identity (or 1x1 conv + BN projection), ReLU. */
public final class BasicBlock extends Module {
    private final Conv2d conv1, conv2;
    private final BatchNorm2d bn1, bn2;
    private final Sequential shortcut;

    public BasicBlock(int cin, int cout, int stride, SparseConfig.Method method, Rng rng, long seed) {
        conv1 = child("conv1", new Conv2d(cin, cout, 3, stride, 1, false, method.config(seed), rng));
        bn1 = child("bn1", new BatchNorm2d(cout));
        conv2 = child("conv2", new Conv2d(cout, cout, 3, 1, 1, false, method.config(seed + 1), rng));
        bn2 = child("bn2", new BatchNorm2d(cout));
        shortcut = stride != 1 || cin != cout
                ? child("downsample", new Sequential(new Conv2d(cin, cout, 1, stride, 0, false, method.config(seed + 2), rng), new BatchNorm2d(cout)))
                : null;
    }

    @Override
    public Var forward(Var x) {
        Var h = Sequential.fuseBnRelu ? bn1.forwardRelu(conv1.forward(x)) : bn1.forward(conv1.forward(x)).relu();
        h = conv2.forward(h);
        if (Sequential.fuseBnRelu && fuseBnAddRelu) {
            // the second batch norm, the shortcut's add and the ReLU in one function (the shortcut computed first)
            Var s = shortcut == null ? x : shortcut.forward(x);
            return bn2.forwardAddRelu(h, s);
        }
        h = bn2.forward(h);
        Var s = shortcut == null ? x : shortcut.forward(x);
        return Sequential.fuseBnRelu ? NN.addRelu(h, s) : h.add(s).relu();
    }

    /**
     * Whether the block ends in NN.batchNorm2dAddRelu (else batch norm, then NN.addRelu): the same values and gradients;
     * a switch for A/B timings (bench-interleaved's "bnadd").
     */
    public static volatile boolean fuseBnAddRelu = true;

    // this type, not Module, for chained calls (Module.train's note)
    @Override public BasicBlock train(boolean on) { super.train(on); return this; }
    @Override public BasicBlock train() { return train(true); }
    @Override public BasicBlock eval() { return train(false); }
    @Override public BasicBlock to(fst4j.tensor.Device d) { super.to(d); return this; }
}
