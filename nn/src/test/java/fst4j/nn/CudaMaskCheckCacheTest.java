package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.Device;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static fst4j.nn.MaskCheckCacheTest.*;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * MaskCheckCacheTest's invalidation cases on a CUDA mask: a device mask written in place after a good forward is refused
 * on the next; a new mask in the block the caching allocator took back from a closed, validated one (the hit counted)
 * is scanned, not taken for it.
 */
class CudaMaskCheckCacheTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void deviceMasksWrittenOrReusedAreCheckedAgain() {
        try (Scope s = Scope.open(); MultiheadAttention m = mha().to(Device.CUDA)) {
            Rng rng = new Rng(6);
            Var q = Var.of(rng.normal(0, 1, B, L, E).to(Device.CUDA)), kv = Var.of(rng.normal(0, 1, B, S, E).to(Device.CUDA));
            Tensor kpm = kpm().to(Device.CUDA), bool = boolMask().to(Device.CUDA);
            int before = CheckedMasks.scans();
            run(m, q, kv, kpm, bool);
            run(m, q, kv, kpm, bool);
            assertEquals(2, CheckedMasks.scans() - before, "scanned once each");
            try (Tensor h = Tensor.full(0.5, DType.F32, L, S)) { bool.copyFrom(h); }
            refused(m, q, kv, kpm, bool, "attn_mask");
            Tensor good = boolMask().to(Device.CUDA);
            run(m, q, kv, null, good);
            good.close();
            long hits = CudaMemory.stats().cacheHits();
            try (Tensor host = Tensor.full(0.5, DType.F32, L, S); Tensor bad = host.to(Device.CUDA)) {
                assertTrue(CudaMemory.stats().cacheHits() > hits, "the new mask takes a cached block");
                refused(m, q, kv, null, bad, "attn_mask");
            }
        }
    }
}
