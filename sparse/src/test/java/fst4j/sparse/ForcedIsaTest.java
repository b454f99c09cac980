package fst4j.sparse;

import fst4j.shim.Native;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The executions isa-avx2 and isa-generic (this module's, tensor's and autograd's pom.xml) run every test with
 * FST4J_ISA forcing a lesser kernel family: this says that the family is the one in use, that the AVX-512-only paths
 * (the planned lowering) are off, and that the paths with an AVX2 version (the stride-2 col2im gather, the 2x2 max pool's
 * forward) take it under avx2 only, so those runs test what a CPU without AVX-512 runs. Skipped in the default execution.
 */
class ForcedIsaTest {
    @Test
    void theForcedFamilyIsTheOneInUse() {
        String forced = System.getenv("FST4J_ISA");
        Assumptions.assumeTrue(forced != null && (forced.equals("avx2") || forced.equals("generic")),
                "FST4J_ISA does not force a lesser family here (the default execution)");
        assertEquals(forced, Native.isa(), "SGEMM kernel family");
        assertEquals(forced, SparseGemm.isa(), "2:4 kernel family");
        assertFalse(Native.loweringPlan(-1), "the planned lowering is AVX-512 only");
        assertEquals(forced.equals("avx2"), Native.col2imStride2(-1), "the stride-2 col2im gather: AVX-512 or AVX2");
        assertEquals(forced.equals("avx2"), Native.maxPoolVector(-1), "the 2x2 max pool's vector forward: AVX-512 or AVX2");
    }
}
