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
            // BatchNorm2d then ReLU runs as one fused function (same values and gradients, one pass less each way)
            if (fuseBnRelu && layers.get(i) instanceof BatchNorm2d bn && i + 1 < layers.size() && layers.get(i + 1) instanceof ReLU) {
                x = bn.forwardRelu(x);
                i++;
            } else {
                x = layers.get(i).forward(x);
            }
        }
        return x;
    }

    /** -Dfst4j.nn.fuse=false runs batch norm and ReLU as separate functions (for comparisons). */
    static final boolean fuseBnRelu = !"false".equals(System.getProperty("fst4j.nn.fuse"));

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Sequential train(boolean on) { super.train(on); return this; }
    @Override public Sequential train() { return train(true); }
    @Override public Sequential eval() { return train(false); }
    @Override public Sequential to(fst4j.tensor.Device d) { super.to(d); return this; }
}
