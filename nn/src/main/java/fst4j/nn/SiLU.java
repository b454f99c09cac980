package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.SiLU: x sigmoid(x) ({@link NN#silu}). */
public final class SiLU extends Module {
    @Override public Var forward(Var x) { return NN.silu(x); }
}
