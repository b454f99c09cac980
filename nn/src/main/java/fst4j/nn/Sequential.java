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
        for (Module m : layers) x = m.forward(x);
        return x;
    }
}
