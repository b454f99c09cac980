package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.cli.BlasThreads;
import fst4j.tensor.Memory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import static org.junit.jupiter.api.Assertions.*;

/** The accumulation loop's steady state: after a warm-up, optimizer steps of N micro-batches hold no more off-heap memory. */
class AccumulateMemoryTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    @Test
    void accumulatedStepsDoNotGrowOffHeapMemory() {
        TrainData data = CheckpointTest.tiny();
        for (TrainConfig c : new TrainConfig[]{CheckpointTest.cfg(Method.FST3_IR, "cnn"), CheckpointTest.cfg(Method.RESPROP, "cnn"),
                CheckpointTest.cfg(Method.SR_STE, "mlp").withClipGradNorm(0.5)}) {
            try (Trainer t = new Trainer(c.withBatchSize(8).withAccumulate(3).withEpochs(4), data)) {
                long start = 0;
                for (int i = 0; i < 6; i++) {
                    if (!t.epochHasNext()) t.endEpoch();
                    if (i == 3) start = Memory.bytesInUse();
                    t.trainStep();
                }
                assertEquals(start, Memory.bytesInUse(), c.methodName());
            }
        }
    }
}
