package fst4j.tensor;

import fst4j.shim.Native;

/**
 * The CUDA paths of {@link Activation}: one kernel each way (fst_cuda_act, fst_cuda_act_bwd in native-cuda's
 * cuda_ops.c, the bodies k_act and k_act_bwd of fst4j_bodies.cuh), float32, with the checks and contracts of
 * {@link CudaOps#unary} and {@link CudaOps#binary}: inputs open, on CUDA and float32, a fresh contiguous output.
 */
final class CudaActivations {
    private CudaActivations() {}

    // op codes of fst_cuda_act (FST_ACT_*) and fst_cuda_act_bwd (FST_ACTB_*), enums in native-cuda/src/main/cuda/fst4j_kargs.h
    static final int GELU = 0, GELU_TANH = 1, SILU = 2, MISH = 3, LEAKY_RELU = 4, ELU = 5, SOFTPLUS = 6, CLAMP = 7;
    static final int GELU_BWD = 0, GELU_TANH_BWD = 1, SILU_BWD = 2, MISH_BWD = 3, LEAKY_RELU_BWD = 4, ELU_BWD = 5, SOFTPLUS_BWD = 6,
            HARDTANH_BWD = 7, CLAMP_BWD = 8, ABS_BWD = 9, MAX_SHARE = 10, MIN_SHARE = 11, MUL_SHARE = 12;

    /** op(x), parameters s0 and s1. */
    static Tensor forward(String op, int code, double s0, double s1, Tensor x) {
        CudaOps.require(op, x);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        try {
            CudaOps.Layout l = CudaOps.Layout.of(x.shape, x.strides);
            Native.cudaAct(code, s0, s1, l.shape(), CudaOps.ptr(x), l.strides()[0], CudaOps.ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** op(a, b) with a and b broadcast (a = the gradient, b = the forward's input, for the backward formulas). */
    static Tensor backward(String op, int code, double s0, double s1, Tensor a, Tensor b) {
        CudaOps.require(op, a, b);
        int[] shape = Shape.broadcast(a.shape, b.shape);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, shape);
        try (Tensor ea = a.expand(shape); Tensor eb = b.expand(shape)) {
            CudaOps.Layout l = CudaOps.Layout.of(shape, ea.strides, eb.strides);
            Native.cudaActBackward(code, s0, s1, l.shape(), CudaOps.ptr(ea), l.strides()[0], CudaOps.ptr(eb), l.strides()[1], CudaOps.ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }
}
