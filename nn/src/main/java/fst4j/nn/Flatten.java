package fst4j.nn;

import fst4j.autograd.Var;

/** [N, ...] -> [N, prod(...)]. */
public final class Flatten extends Module {
    @Override public Var forward(Var x) { return x.reshape(x.shape()[0], -1); }
}
