package fst4j.nn;

import fst4j.shim.Cuda;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The step-timing tool gpu/run.sh uses, run tiny (on the emulator in CI) so that it works when a GPU is lent. */
class CudaStepTimingTest {
    @Test
    void timesTrainingStepsAndReportsAFiniteLoss() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        CudaStepTiming.Result r = CudaStepTiming.time("resnetSmall", 2, 1, 2);
        assertEquals(2, r.steps());
        assertTrue(r.medianMs() > 0 && r.minMs() <= r.medianMs() && r.medianMs() <= r.maxMs(), r.toString());
        assertTrue(Double.isFinite(r.lastLoss()) && r.lastLoss() > 0, r.toString());
        assertThrows(IllegalArgumentException.class, () -> CudaStepTiming.time("vgg", 2, 0, 1));
    }
}
