package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.ReLU6: hardtanh(x, 0, 6) ({@link NN#relu6}). */
public final class ReLU6 extends Module {
    @Override public Var forward(Var x) { return NN.relu6(x); }
}
