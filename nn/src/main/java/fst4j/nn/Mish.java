package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.Mish: x tanh(softplus(x)) ({@link NN#mish}). */
public final class Mish extends Module {
    @Override public Var forward(Var x) { return NN.mish(x); }
}
