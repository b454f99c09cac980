package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

public final class MaxPool2d extends Module {
    private final int k, stride, padding;
    public MaxPool2d(int k) { this(k, k, 0); }
    public MaxPool2d(int k, int stride, int padding) { this.k = k; this.stride = stride; this.padding = padding; }
    @Override public Var forward(Var x) { return NN.maxPool2d(x, k, stride, padding); }
}
