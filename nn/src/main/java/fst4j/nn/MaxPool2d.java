package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

public final class MaxPool2d extends Module {
    private final int k, stride, padding;
    public MaxPool2d(int k) { this(k, k, 0); }
    public MaxPool2d(int k, int stride, int padding) { this.k = k; this.stride = stride; this.padding = padding; }
    @Override public Var forward(Var x) { return NN.maxPool2d(x, k, stride, padding); }
    @Override protected String extraRepr() { return "kernel_size=" + k + ", stride=" + stride + ", padding=" + padding; }
    /** Whether this is the 2 x 2 / stride 2 pool without padding (which Sequential fuses with a batch norm + ReLU before it). */
    boolean isTwoByTwo() { return k == 2 && stride == 2 && padding == 0; }
}
