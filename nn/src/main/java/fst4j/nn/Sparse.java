package fst4j.nn;

import fst4j.autograd.SparseConfig;

/** A layer whose GEMMs go through the Eq. 1-3 node: its sparsity can be read and overridden. */
public interface Sparse {
    SparseConfig sparsity();
    void setSparsity(SparseConfig cfg);
    fst4j.autograd.Var weight();
}
