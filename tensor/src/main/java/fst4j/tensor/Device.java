package fst4j.tensor;

/** Where a tensor's storage lives. Part of a tensor's identity: ops never mix devices silently. */
public enum Device { CPU, CUDA }
