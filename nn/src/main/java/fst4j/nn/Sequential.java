package fst4j.nn;

import fst4j.autograd.Var;

import java.util.List;

/** Applies its children in order; children are named "0", "1", ... as in PyTorch. */
public final class Sequential extends Module {
    private final List<Module> layers;

    public Sequential(Module... layers) {
        this.layers = List.of(layers);
        for (int i = 0; i < layers.length; i++) child(Integer.toString(i), layers[i]);
    }

    public List<Module> layers() { return layers; }

    @Override
    public Var forward(Var x) {
        for (int i = 0; i < layers.size(); i++) {
            // BatchNorm2d then ReLU runs as one fused function (same values and gradients, one pass less each way); with a
            // 2 x 2 max pool after them, the three do (the ReLU's output never stored)
            if (fuseBnRelu && layers.get(i) instanceof BatchNorm2d bn && i + 1 < layers.size() && layers.get(i + 1) instanceof ReLU) {
                if (fuseBnReluPool && i + 2 < layers.size() && layers.get(i + 2) instanceof MaxPool2d mp && mp.isTwoByTwo()) {
                    x = bn.forwardReluMaxPool2(x);
                    i += 2;
                } else {
                    x = bn.forwardRelu(x);
                    i++;
                }
            } else {
                x = layers.get(i).forward(x);
            }
        }
        return x;
    }

    /** -Dfst4j.nn.fuse=false runs batch norm and ReLU as separate functions (for comparisons). */
    static final boolean fuseBnRelu = !"false".equals(System.getProperty("fst4j.nn.fuse"));

    /**
     * Whether batch norm, ReLU and a 2 x 2 max pool run as one function (NN.batchNorm2dReluMaxPool2; else batch norm +
     * ReLU, then the pool): the same values and gradients; a switch for A/B timings (bench-interleaved's "bnpool").
     */
    public static volatile boolean fuseBnReluPool = true;

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Sequential train(boolean on) { super.train(on); return this; }
    @Override public Sequential train() { return train(true); }
    @Override public Sequential eval() { return train(false); }
    @Override public Sequential to(fst4j.tensor.Device d) { super.to(d); return this; }
}
