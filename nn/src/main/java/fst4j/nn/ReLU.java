package fst4j.nn;

import fst4j.autograd.Var;

public final class ReLU extends Module {
    @Override public Var forward(Var x) { return x.relu(); }
}
