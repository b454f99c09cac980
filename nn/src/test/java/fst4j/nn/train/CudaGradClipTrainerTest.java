package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.LrSchedule;
import fst4j.nn.cli.BlasThreads;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Gradient-norm clipping in a trainer whose model is on CUDA: GradClip by hand on the device bit for bit (the norm's
 * partial sums are the CPU's split), and the norms of the CPU run within float32 rounding of differently ordered sums.
 * Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaGradClipTrainerTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    @Test
    void clippingOnCudaIsGradClipByHandAndFollowsTheCpu() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        TrainData data = CheckpointTest.tiny();
        TrainConfig base = CheckpointTest.cfg(Method.FST3_IR);
        TrainConfig cfg = base.withClipGradNorm(0.25);
        try (Trainer gpu = new Trainer(cfg, data, Device.CUDA); Trainer hand = new Trainer(base, data, Device.CUDA); Trainer cpu = new Trainer(cfg, data)) {
            LrSchedule sched = LrSchedule.cosine(base.lr(), base.warmupFor(hand.totalSteps()), hand.totalSteps(), base.minLr());
            int clipped = 0;
            for (int i = 0; i < 6; i++) {
                if (!gpu.epochHasNext()) { gpu.endEpoch(); hand.endEpoch(); cpu.endEpoch(); }
                Trainer.StepResult g = gpu.trainStep(), c = cpu.trainStep();
                double norm = GradClipTrainerTest.stepByHand(hand.model(), hand.optimizer(), hand.loader(), sched.lr(i), base, 0.25, hand.decaysPruned());
                assertEquals(norm, g.gradNorm(), 0.0, "step " + i + ": the trainer's norm is GradClip's");
                assertEquals(c.gradNorm(), g.gradNorm(), 1e-3 * c.gradNorm(), "step " + i + ": CPU and CUDA norms");
                if (g.gradNorm() > 0.25) clipped++;
            }
            assertTrue(clipped >= 3, clipped + " of 6 steps clipped");
            Map<String, float[]> h = GradClipTrainerTest.weights(hand.model()), w = GradClipTrainerTest.weights(gpu.model());
            GradClipTrainerTest.assertSameWeights(h, w, "CUDA trainer against CUDA by hand");
            assertEquals(Device.CUDA, gpu.model().parameters().get(0).value().device());
        }
    }
}
